"""Current data for the monitor, as record batches: a Parquet dataset, or the prediction logs over a window.

Both give the model's input columns; the logs add what the model answered (``score``,
the predicted class) and, where feedback arrived, the label. Batches keep memory
bounded whatever the number of rows.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.prediction_log import Columns, join_outcomes, read_feedback, read_predictions
from kfp_mlops.components._shared.redact import redact_uri

# What the model answered, under names no user column can take (logs only).
LOGGED_SCORE = "__kfp_mlops_score"
PREDICTED = "__kfp_mlops_predicted"


@dataclass
class CurrentData:
    """Where the batches come from, their schema, and the batches.

    Attributes:
        source: Shown in reports, without credentials.
        schema: Columns and types (a missing model input is schema drift).
        rows: Row count when known up front.
        batches: The record batches, read lazily.
    """

    source: str
    schema: pa.Schema
    rows: int
    batches: Iterator[pa.RecordBatch]


def dataset(path: str | Path, *, columns: list[str] | None = None, batch_rows: int = 1 << 18) -> CurrentData:
    """A Parquet file or folder of files (a KFP Dataset), read lazily in batches of ``columns`` (all when None).

    The schema lists every column (a missing input is schema drift); only ``columns`` are decoded.
    """
    import pyarrow.dataset as ds

    if not Path(path).exists():
        raise DataError("the current data does not exist", where=str(path), fix="pass the output of ingest or featurize, or an existing Parquet file or folder")
    try:
        data = ds.dataset(str(path), format="parquet")
        schema = data.schema
        rows = data.count_rows()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read the current data as Parquet ({str(exc).splitlines()[0]})", where=str(path), fix="pass a Parquet Dataset, e.g. the output of ingest or featurize") from exc
    wanted = None if columns is None else [c for c in columns if c in schema.names]

    def scan() -> Iterator[pa.RecordBatch]:
        # The scanner's defaults buffer whole files and decode 16 batches ahead: 7.3 GiB on a
        # 10M x 50 file; one batch ahead without pre-buffering keeps the pass at ~1.7 GiB.
        options = ds.ParquetFragmentScanOptions(pre_buffer=False)
        yield from data.to_batches(columns=wanted, batch_size=batch_rows, batch_readahead=1, fragment_readahead=1, fragment_scan_options=options)

    return CurrentData(str(path), schema, rows, scan())


def prediction_logs(sink: str, *, model_name: str, since: datetime | None, until: datetime | None, label_column: str) -> CurrentData:
    """One model's logged predictions in ``[since, until)``: its inputs, score and predicted class, and the joined outcome as ``label_column``."""
    local = sink[len("file://") :] if sink.startswith("file://") else sink
    if "://" not in local and not Path(local).is_dir():
        raise DataError("the log sink does not exist", where=redact_uri(sink), fix="pass the model server's log_sink (the folder or s3:// / gs:// prefix it writes to)")
    table = read_predictions(sink, since=since, until=until)
    table = table.filter(pc.equal(table.column(Columns.MODEL_NAME), pa.scalar(model_name, pa.string())))
    shown = f"{redact_uri(sink)} [{since.isoformat() if since else '...'}, {until.isoformat() if until else '...'}) model {model_name}"
    if not table.num_rows:
        return CurrentData(shown, pa.schema([]), 0, iter(()))
    feedback = read_feedback(sink)
    outcomes = join_outcomes(table, feedback).column(Columns.OUTCOME) if feedback.num_rows else pa.nulls(table.num_rows, pa.string())
    features = _decode_features(table.column(Columns.FEATURES), shown)
    extra = {LOGGED_SCORE: table.column(Columns.SCORE), PREDICTED: table.column(Columns.PREDICTION), label_column: outcomes}
    for name, column in extra.items():
        if name in features.schema.names:
            features = features.drop_columns([name])
        features = features.append_column(name, column)
    return CurrentData(shown, features.schema, features.num_rows, iter(features.to_batches(max_chunksize=1 << 18)))


def _decode_features(column: pa.ChunkedArray, where: str) -> pa.Table:
    """The logged JSON feature objects as columns (types inferred, as the server received them)."""
    lines = b"\n".join(value.encode() for value in column.to_pylist())
    try:
        return pajson.read_json(io.BytesIO(lines), read_options=pajson.ReadOptions(block_size=1 << 24))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"the logged features cannot be read as columns ({str(exc).splitlines()[0][:200]})",
            where=where,
            fix="log predictions with kfp-mlops serve; a feature that changes type between requests (number, then text) is a client bug",
        ) from exc
