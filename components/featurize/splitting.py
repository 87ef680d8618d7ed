"""How the training set is split: by label time, or at random (seeded, stratified for classification).

``split="auto"`` splits by time when the rows have a real event time (not one generated
by ingest, and at least three distinct label times), else at random. A time split keeps
every later split's events out of the earlier ones; a random split is right when the
rows have no order in time (a plain table), and for classification it keeps each class's
share in every split within one row of its share in the whole.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.task import check_task_name, infer_task
from kfp_mlops.components.featurize.training_set import SPLITS, Split, check_fractions

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "time", "random")
RANDOM_FIX = "split the rows at random: split=random (kfp-mlops run training --split random)"


def check_split(split: object, seed: object, task: object) -> None:
    """Refuse a bad strategy, seed or task before any input is read."""
    if split not in STRATEGIES:
        raise DataError(f"split must be one of {', '.join(STRATEGIES)}, not {str(split)[:40]!r}", fix="pass split=auto, time or random (--split)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"split_seed must be a whole number of 0 or more, not {seed!r}", fix="pass e.g. split_seed=0 (--split-seed 0)")
    check_task_name(str(task))


def choose_split(requested: str, times: pa.ChunkedArray | pa.Array, *, time_generated: bool, where: str) -> tuple[str, str]:
    """The strategy for ``requested`` given the label times, and why (for the log and the metadata)."""
    distinct = len(pc.unique(times))
    if time_generated:
        missing = "the rows have no event time (ingest generated the timestamp column: the same ingestion time for every row)"
    elif distinct < 3:
        missing = f"the rows have {distinct} distinct label time(s), too few to split three ways by time"
    else:
        missing = ""
    if requested == "time":
        if missing:
            raise DataError(
                f"split=time, but {missing}",
                where=where,
                fix=f"{RANDOM_FIX}; or name the event time column: timestamp_column (--timestamp-column)",
            )
        return "time", "split=time"
    if requested == "random" or missing:
        if len(times) < 3:
            raise DataError(f"{len(times)} labelled row(s) cannot be split three ways", where=where, fix="ingest more rows")
        return "random", "split=random" if requested == "random" else f"split=auto and {missing}"
    return "time", f"split=auto and the rows have an event time ({distinct:,} distinct label times)"


def stratifies(label: pa.ChunkedArray | pa.Array, task: str) -> bool:
    """Whether a random split is stratified by ``label``: for classification, which ``auto``
    decides by the one rule validate and train use."""
    if task in ("binary", "multiclass"):
        return True
    if task == "regression":
        return False
    return infer_task(label, "auto")[0] != "regression"


def split_at_random(table: pa.Table, label: str, fractions: tuple[float, float, float], *, seed: int, stratify: bool) -> Split:
    """Rows shuffled with ``seed`` and cut by ``fractions``; per class when ``stratify``.

    The same rows in the same order and the same seed give the same splits. Each split
    keeps the input order of its rows.
    """
    fractions = check_fractions(fractions)
    n = table.num_rows
    if n < 3:
        raise DataError(f"{n} labelled row(s) cannot be split three ways", fix="ingest more rows")  # choose_split says so earlier
    rng = np.random.default_rng(seed)
    if stratify:
        codes = pc.dictionary_encode(table.column(label).combine_chunks().cast(pa.string())).indices
        groups = np.asarray(codes.fill_null(-1).to_numpy(zero_copy_only=False))
    else:
        groups = np.zeros(n, dtype=np.int64)
    classes, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    sizes = _largest_remainder(n, np.asarray(fractions))
    allocation = _allocate(counts, sizes)
    chosen: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for c in range(len(classes)):
        members = rng.permutation(np.flatnonzero(inverse == c))
        cuts = np.cumsum(allocation[c])
        for s, name in enumerate(SPLITS):
            chosen[name].append(members[cuts[s] - allocation[c, s] : cuts[s]])
    tables = {name: table.take(pa.array(np.sort(np.concatenate(parts)))) for name, parts in chosen.items()}
    return Split(tables=tables, boundaries=("", ""), strategy="random", seed=seed, stratified_by=label if stratify else "")


def _largest_remainder(total: int, shares: np.ndarray) -> np.ndarray:
    """Whole numbers summing to ``total`` in proportion to ``shares``, each at least 1 when total allows."""
    quota = total * shares / shares.sum()
    out = np.floor(quota).astype(np.int64)
    for i in np.argsort(-(quota - out), kind="stable")[: total - out.sum()]:
        out[i] += 1
    for i in np.flatnonzero(out == 0):  # every split needs a row: take it from the largest
        if total >= len(out):
            largest = int(np.argmax(out))
            out[largest] -= 1
            out[i] = 1
    return out


def _allocate(counts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Rows per (class, split): each class's rows all placed, each split its size, every cell
    within one row of ``count * size / total`` (the class's share of the split)."""
    total = counts.sum()
    quota = counts[:, None] * sizes[None, :] / total
    out = np.floor(quota).astype(np.int64)
    left = counts - out.sum(axis=1)  # rows each class still has to place
    room = sizes - out.sum(axis=0)  # rows each split still takes
    # Round up the cells with the largest fractions first, one row per cell.
    for flat in np.argsort(-(quota - out), axis=None, kind="stable"):
        c, s = divmod(int(flat), len(sizes))
        if left[c] > 0 and room[s] > 0 and quota[c, s] > out[c, s]:
            out[c, s] += 1
            left[c] -= 1
            room[s] -= 1
    for c in np.flatnonzero(left):  # rare: the greedy pass left a class short
        while left[c] > 0:
            s = int(np.argmax(room))
            out[c, s] += 1
            left[c] -= 1
            room[s] -= 1
    return out


def check_binary_test_split(test: pa.Table, label: str, task: str, where: str) -> None:
    """``task`` is the resolved task (binary, multiclass or regression), decided on the whole dataset."""
    # A binary label needs two test rows of each class for register's ROC AUC interval:
    # refused here, before training, rather than by register after it.
    if task != "binary" or label not in test.column_names:
        return
    counts = {str(row["values"]): row["counts"] for row in pc.value_counts(test.column(label).drop_null()).to_pylist()}
    if len(counts) == 2 and min(counts.values()) >= 2:
        return
    shown = ", ".join(f"{value!r}: {count}" for value, count in sorted(counts.items())) or "no labelled rows"
    raise DataError(
        f"the test split has {shown} of label {label!r}; the evaluation gate needs at least two rows of each of the two classes",
        where=where,
        fix="give the test split a larger share (split_fractions, e.g. 0.7,0.15,0.15), or ingest more rows of the rare class",
    )
