"""What the statistics pass collects besides statistics: a row sample and the label's values.

Both ride along the one streaming pass, so leakage checks and histograms cost no
second read of the file and memory stays bounded by the sample, not the data.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kfp_mlops.components._shared.task import MAX_CLASSES, decide_task

SAMPLE_ROWS = 20_000


def _decoded(column: pa.Array) -> pa.Array:
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


class RowSampler:
    """A uniform random sample of about ``target`` rows (every row when the file is smaller).

    Each row is kept with probability target / total rows, so the sample spreads over
    the whole file: a file sorted by time is not judged by its first rows.
    """

    def __init__(self, target: int = SAMPLE_ROWS, seed: int = 0) -> None:
        self.target = target
        self.rng = np.random.default_rng(seed)
        self.parts: list[pa.Table] = []

    def observe(self, batch: pa.RecordBatch, total_rows: int) -> None:
        share = min(1.0, self.target / max(total_rows, 1))
        if share >= 1.0:
            keep = batch
        else:
            rows = np.flatnonzero(self.rng.random(batch.num_rows) < share)
            if not len(rows):
                return
            keep = batch.take(pa.array(rows))
        self.parts.append(pa.table([_decoded(c) for c in keep.columns], names=keep.schema.names))

    def table(self) -> pa.Table | None:
        if not self.parts:
            return None
        return pa.concat_tables(self.parts, promote_options="permissive").combine_chunks()


class LabelTracker:
    """The label's distinct values (up to just past ``MAX_CLASSES``) with their counts, and its nulls."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.type: pa.DataType | None = None
        self.nulls = 0
        self.values: pa.Array | None = None
        self.counts: pa.Array | None = None
        self.more_distinct = False
        self.unsupported = ""

    def observe(self, batch: pa.RecordBatch, total_rows: int) -> None:
        if self.label not in batch.schema.names:
            return
        column = _decoded(batch.column(self.label))
        self.type = column.type
        self.nulls += column.null_count
        if self.more_distinct or self.unsupported or column.null_count == len(column):
            return
        try:
            found = pc.value_counts(column.drop_null())
            values, counts = found.field("values"), found.field("counts")
            if self.values is not None:
                merged = pa.table({"v": pa.concat_arrays([self.values, values]), "n": pa.concat_arrays([self.counts, counts])}).group_by("v").aggregate([("n", "sum")])
                values, counts = merged.column("v").combine_chunks(), merged.column("n_sum").combine_chunks()
            values.cast(pa.string())  # class names are this text form
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            self.unsupported = str(exc).splitlines()[0][:160]
            return
        # Past MAX_CLASSES the exact values no longer matter (the rule only needs "too many");
        # stop here so a float label with a million values costs one batch, not the file.
        if len(values) > MAX_CLASSES:
            self.more_distinct = True
            self.values, self.counts = values.slice(0, MAX_CLASSES + 1), None
            return
        self.values, self.counts = values, counts

    def decide(self, requested: str) -> tuple[str, list[str]]:
        """The task rule (``task.decide_task``) on the values seen; raises LabelTaskError."""
        values = self.values if self.values is not None else pa.array([], type=self.type or pa.null())
        return decide_task(self.type or pa.null(), values, requested, more_distinct=self.more_distinct)

    def class_counts(self) -> dict[str, int]:
        """Rows per label value, named as the task rule names classes (Arrow's text form)."""
        if self.values is None or self.counts is None:
            return {}
        return dict(zip(self.values.cast(pa.string()).to_pylist(), self.counts.to_pylist()))

    def legacy_names(self) -> dict[str, str]:
        """Arrow's text form -> Python's (``true`` -> ``True``), as schemas of earlier releases named classes."""
        if self.values is None:
            return {}
        return dict(zip(self.values.cast(pa.string()).to_pylist(), (str(v) for v in self.values.to_pylist())))
