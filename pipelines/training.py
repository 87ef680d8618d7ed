"""The training pipeline: ingest, then validate (later issues add featurize, train, register)."""

from kfp import dsl

from kfp_mlops.components.ingest.component import ingest
from kfp_mlops.components.validate.component import validate
from kfp_mlops.pipelines.platform import with_storage_credentials


@dsl.pipeline(name="training", description="Ingest a dataset and validate it; later steps build on the validated data.")
def training(
    source_uri: str,
    label_column: str = "label",
    entity_column: str = "entity_id",
    timestamp_column: str = "event_timestamp",
    file_format: str = "",
    csv_delimiter: str = ",",
    csv_encoding: str = "utf-8",
    column_types: str = "",
    fail_on_severity: str = "error",
):
    """Ingests and validates training data.

    Args:
        source_uri: Training data: local path, file://, http(s)://, gs:// or s3:// file, prefix or glob.
        label_column: Label column to predict.
        entity_column: Entity key column; empty to generate a row id.
        timestamp_column: Event timestamp column; empty to use the ingestion time.
        file_format: csv, parquet or jsonl; empty to detect from the extension.
        csv_delimiter: CSV field delimiter.
        csv_encoding: Text encoding of CSV files.
        column_types: JSON object forcing column types, e.g. {"zip": "string"}.
        fail_on_severity: Stop the run when a data anomaly is at least this severe: error, warning, info or never.
    """
    ingested = ingest(
        source_uri=source_uri,
        file_format=file_format,
        csv_delimiter=csv_delimiter,
        csv_encoding=csv_encoding,
        column_types=column_types,
        entity_column=entity_column,
        timestamp_column=timestamp_column,
    )
    with_storage_credentials(ingested)
    validate(
        dataset=ingested.outputs["dataset"],
        label_column=label_column,
        entity_column=ingested.outputs["entity_column"],
        timestamp_column=ingested.outputs["timestamp_column"],
        fail_on_severity=fail_on_severity,
    )
