"""KFP component: ingest a source into a Parquet Dataset (thin wrapper over ``core.ingest``)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Output

from kfp_mlops.components._shared.images import image


@dsl.component(base_image=image("data"), install_kfp_package=False)
def ingest(
    source_uri: str,
    dataset: Output[Dataset],
    summary: Output[Markdown],
    file_format: str = "",
    csv_delimiter: str = ",",
    csv_header: bool = True,
    csv_encoding: str = "utf-8",
    column_types: str = "",
    entity_column: str = "auto",
    timestamp_column: str = "auto",
    max_cell_bytes: int = 100000,
    dvc_repo: str = "",
    dvc_rev: str = "",
) -> NamedTuple("IngestOutputs", [("entity_column", str), ("timestamp_column", str), ("rows", int), ("fingerprint", str)]):
    """Streams CSV, Parquet or JSON Lines from a file, prefix, glob or DVC repository into one Parquet dataset.

    Credentials are never parameters: gs:// uses Application Default Credentials,
    s3:// the AWS environment variables (AWS_ENDPOINT_URL for MinIO); in a
    cluster mount them from a Kubernetes Secret. For http(s) basic auth, mount a
    .netrc from a Secret and set NETRC to its path: a password in the URL is a
    parameter, which KFP shows in the run and its log. User info or a signature in
    an http(s) URL is still used, but this step never writes it to metadata, the
    summary or its own log lines.

    Columns must be flat: nested values (struct, list, map) fail the step; flatten
    them upstream. Whole numbers beyond the int64 range (e.g. 20-digit ids) are kept
    exactly, as text, and listed in the summary and in metadata integer_text_columns.
    Compressed files (.gz, .bz2, .zst, .lz4) are read by their content; a file named
    .gz that is not gzip fails as bad data.

    DVC-versioned data: source_uri dvc://REPO#PATH@REV (e.g. dvc:///srv/git/data.git#data/train.csv@v1,
    dvc://https://host/org/repo.git#data/train.parquet@main) reads one file at a git tag,
    branch or commit, streamed from the repository's default DVC remote. REPO is
    everything up to the one '#' (so git@host:org/repo.git works), REV everything after
    the last '@'. For a repository URL holding '#' or a revision holding '@', pass
    dvc_repo and dvc_rev and the file's path as source_uri. Credentials in the
    repository URL are refused: git takes them from the environment (ssh key, credential
    helper), the DVC remote from its own (AWS_*, GOOGLE_APPLICATION_CREDENTIALS).

    Args:
        source_uri: Local path, file://, http(s)://, gs:// or s3:// URI of a file, a folder/prefix, or a glob; or dvc://REPO#PATH@REV for one file of a DVC repository at a git revision; with dvc_repo, the file's path inside that repository.
        dataset: The data as one Parquet file; metadata holds rows, columns, fingerprint, source, the key columns, whether each was generated (entity_generated, timestamp_generated) and notes on what was chosen; for DVC data also dvc_repo (without credentials), dvc_path, dvc_rev, dvc_commit (the commit the revision resolved to) and dvc_md5 (DVC's md5 of the file).
        summary: A Markdown summary of the dataset.
        file_format: csv, parquet or jsonl; empty to detect from the file extension.
        csv_delimiter: CSV field delimiter (one character; \\t for TSV).
        csv_header: Whether the first CSV line holds the column names.
        csv_encoding: Text encoding of CSV files (utf-8, latin-1, cp1252, ...).
        column_types: JSON object forcing CSV column types, e.g. {"zip": "string", "day": "date", "at": "timestamp"}; empty to infer. A date or timestamp value that does not parse fails the step naming its row.
        entity_column: Entity key column; auto: entity_id if the data has it, else a generated row_id (one entity per row); empty: always a generated row_id.
        timestamp_column: Event time column (timestamps, dates, ISO text, or integer years read as 1 January UTC); auto: event_timestamp if the data has it, else none; empty: none. Without an event time, ingested_at holds the ingestion time and featurize splits the rows at random.
        max_cell_bytes: Longest text cell accepted; a longer one fails the step as bad data.
        dvc_repo: DVC repository (what git clone takes, without credentials) holding the file source_uri names; empty when source_uri is a URI.
        dvc_rev: Git tag, branch or commit to read the file at (HEAD: the commit the repository's HEAD names: a hosted repository's default branch, the branch checked out in a local folder); needed with dvc_repo.

    Returns:
        entity_column: The entity key column in the dataset (given, found or generated).
        timestamp_column: The event timestamp column in the dataset (given, found or generated).
        rows: Number of rows ingested.
        fingerprint: Content fingerprint of the data (same data, same fingerprint).
    """
    import json
    from collections import namedtuple

    from kfp_mlops.components._shared.atomic import write_text_atomic
    from kfp_mlops.components._shared.entry import exit_on_error
    from kfp_mlops.components._shared.errors import DataError
    from kfp_mlops.components.ingest.core import IngestOptions
    from kfp_mlops.components.ingest.core import ingest as ingest_core
    from kfp_mlops.components.ingest.formats import CsvOptions

    with exit_on_error("ingest"):
        try:
            types = json.loads(column_types) if column_types.strip() else {}
        except json.JSONDecodeError as exc:
            raise DataError(f"column_types is not valid JSON ({exc})", fix='pass e.g. {"zip": "string"}') from exc
        options = IngestOptions(
            file_format=file_format,
            csv=CsvOptions(delimiter=csv_delimiter, header=csv_header, encoding=csv_encoding, column_types=types),
            entity_column=entity_column,
            timestamp_column=timestamp_column,
            max_cell_bytes=max_cell_bytes,
        )
        result = ingest_core(source_uri, dataset.path, options=options, dvc_repo=dvc_repo, dvc_rev=dvc_rev)
        dataset.metadata.update(result.metadata())
        write_text_atomic(summary.path, result.summary_markdown())
        print(f"ingested {result.rows:,} rows from {result.source_uri} into {dataset.path}")
    outputs = namedtuple("IngestOutputs", ["entity_column", "timestamp_column", "rows", "fingerprint"])
    return outputs(result.entity_column, result.timestamp_column, result.rows, result.fingerprint)
