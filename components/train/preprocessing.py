"""Preprocessing fitted on the training split only and saved beside the model as JSON.

Numeric columns are standardized with the training mean and standard deviation;
nulls (and, by policy, NaN and infinities) become the training mean. Categorical
columns map to vocabulary indices; index 0 is the unknown bucket for nulls and for
categories training never saw. The same JSON drives serving, so training and
serving transform identically.

Which columns are categorical (``choose_kind``, recorded per column as ``reason``):

- text and dictionary columns: categorical;
- integer columns with 3 to ``INTEGER_CATEGORY_MAX`` (32) distinct values in the
  training split (hour, weekday, month, codes): categorical, unless the name reads
  like a count or a quantity (a token such as count, num, n, qty, total, amount,
  size, age, year, days; ``num_txn_7d`` stays a number). Their values are matched as
  text, so 3 and 3.0 (an integer column with nulls reaches pandas as float) are the
  same category, and a value training never saw goes to the unknown bucket;
- every other number and boolean: numeric;
- ``categorical_columns`` / ``numeric_columns`` override the rule per column.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.task import TASKS, infer_task

MAX_VOCABULARY = 10_000
INTEGER_CATEGORY_MAX = 32
COUNT_WORDS = frozenset({"count", "counts", "cnt", "num", "number", "n", "nb", "qty", "quantity", "total", "sum", "amount", "size", "age", "year", "years", "days", "hours", "minutes"})


@dataclass
class NumericColumn:
    name: str
    mean: float
    std: float
    reason: str = "number"


@dataclass
class CategoricalColumn:
    name: str
    vocabulary: list[str]  # index i + 1; 0 is unknown
    reason: str = "text"


@dataclass
class Preprocessing:
    """The fitted transformation.

    Attributes:
        task: binary, multiclass or regression.
        label: Label column.
        classes: Class values as text (classification); the positive class is the last of two.
        numeric: Standardized columns.
        categorical: Embedded columns.
        label_mean: Regression target mean (the model predicts standardized targets).
        label_std: Regression target standard deviation.
        non_finite: impute or error: what happens to NaN and infinite numeric values.
    """

    task: str
    label: str
    classes: list[str] = field(default_factory=list)
    numeric: list[NumericColumn] = field(default_factory=list)
    categorical: list[CategoricalColumn] = field(default_factory=list)
    label_mean: float = 0.0
    label_std: float = 1.0
    non_finite: str = "impute"

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.numeric] + [c.name for c in self.categorical]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Preprocessing":
        """Read a saved preprocessing; anything malformed is a DataError (the file may come from a registry)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            data["numeric"] = [NumericColumn(str(c["name"]), float(c["mean"]), float(c["std"]), str(c.get("reason", "number"))) for c in data["numeric"]]
            data["categorical"] = [CategoricalColumn(str(c["name"]), [str(v) for v in c["vocabulary"]], str(c.get("reason", "text"))) for c in data["categorical"]]
            prep = cls(**data)
        except (OSError, ValueError, RecursionError, KeyError, TypeError) as exc:
            raise DataError(f"preprocessing.json is unreadable or malformed ({type(exc).__name__}: {str(exc)[:200]})", where=str(path), fix="pass a model folder written by kfp-mlops train") from exc
        if prep.task not in TASKS or prep.non_finite not in ("impute", "error"):
            raise DataError(f"preprocessing.json names task {prep.task!r} / non_finite {prep.non_finite!r}", where=str(path), fix="pass a model folder written by kfp-mlops train")
        return prep

    def encode_features(self, table: pa.Table, where: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Raw numeric matrix (float32, NaN where missing) and category indices (int64)."""
        missing = [n for n in self.feature_names if n not in table.schema.names]
        if missing:
            raise DataError(f"feature columns {missing} are missing", where=where, fix="pass data with the columns the model was trained on")
        numeric = np.empty((table.num_rows, len(self.numeric)), dtype=np.float32)
        for j, col in enumerate(self.numeric):
            column = table.column(col.name)
            try:
                values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls arrive as NaN
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(
                    f"numeric feature {col.name!r} has values that are not numbers ({str(exc).splitlines()[0][:120]})", where=where, fix=f"send numbers (or null) for {col.name!r}"
                ) from exc
            if self.non_finite == "error":
                nan_or_inf = int(np.sum(~np.isfinite(values))) - column.null_count
                if nan_or_inf > 0:
                    raise DataError(f"column {col.name!r} has {nan_or_inf:,} NaN or infinite values", where=where, fix="clean them, or train with non_finite='impute'")
            numeric[:, j] = np.where(np.isfinite(values), values, np.nan)
        categorical = np.zeros((table.num_rows, len(self.categorical)), dtype=np.int64)
        for j, col in enumerate(self.categorical):
            lookup = pa.array(col.vocabulary, type=pa.string())
            try:
                as_text = _as_text(table.column(col.name))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(f"categorical feature {col.name!r} cannot be read as text ({str(exc).splitlines()[0][:120]})", where=where, fix=f"send text (or null) for {col.name!r}") from exc
            idx = pc.index_in(as_text, value_set=lookup)
            categorical[:, j] = idx.fill_null(-1).to_numpy(zero_copy_only=False) + 1
        return numeric, categorical

    def encode_label(self, table: pa.Table, where: str = "") -> np.ndarray:
        if self.label not in table.schema.names:
            raise DataError(f"label column {self.label!r} is missing", where=where, fix="pass the label column the model was trained on")
        column = table.column(self.label)
        if column.null_count:
            raise DataError(f"label column {self.label!r} has {column.null_count:,} nulls", where=where, fix="drop unlabeled rows")
        if self.task == "regression":
            y = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
            return ((y - self.label_mean) / self.label_std).astype(np.float32)
        idx = pc.index_in(column.cast(pa.string()), value_set=pa.array(self.classes, type=pa.string()))
        if idx.null_count:
            unseen = pc.unique(column.cast(pa.string()).filter(idx.is_null())).to_pylist()[:5]
            raise DataError(f"label values {unseen} never occur in the training split", where=where, fix="retrain with these classes, or fix the labels")
        y = idx.to_numpy(zero_copy_only=False)
        return y.astype(np.float32) if self.task == "binary" else y.astype(np.int64)


def parse_columns(text: str | list | tuple | None, what: str) -> tuple[str, ...]:
    """Column names from a JSON list (``["hour", "weekday"]``) or comma-separated text (``hour,weekday``)."""
    if text is None:
        return ()
    if isinstance(text, (list, tuple)):
        names = list(text)
    else:
        stripped = str(text).strip()
        if stripped.startswith("["):
            try:
                names = json.loads(stripped)
            except ValueError as exc:
                raise DataError(f"{what} {stripped[:120]!r} is not a JSON list of column names ({exc})", fix='pass e.g. ["hour", "weekday"] or hour,weekday') from exc
            if not isinstance(names, list):
                raise DataError(f"{what} must be a JSON list of column names", fix='pass e.g. ["hour", "weekday"]')
        else:
            names = stripped.split(",")
    if any(not isinstance(n, str) for n in names):
        raise DataError(f"{what} must list column names as text, got {names[:10]!r}", fix='pass e.g. ["hour", "weekday"]')
    return tuple(dict.fromkeys(n.strip() for n in names if n.strip()))


def _tokens(name: str) -> set[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return {t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t}


def looks_like_count(name: str) -> bool:
    """A name such as num_txn_7d, item_count or age: a quantity whose order and distances matter."""
    return bool(_tokens(name) & COUNT_WORDS)


def choose_kind(field: pa.Field, column: pa.ChunkedArray, *, forced_categorical: bool = False, forced_numeric: bool = False) -> tuple[str, str] | None:
    """("numeric" | "categorical", reason) for a feature column, or None for a type that is not a feature (timestamps, lists)."""
    t = field.type
    number = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
    text = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t)
    if forced_categorical:
        return ("categorical", "requested (categorical_columns)") if number or text else None
    if forced_numeric:
        return ("numeric", "requested (numeric_columns)") if number else None
    if text:
        return "categorical", "text"
    if not number:
        return None
    if pa.types.is_integer(t):
        distinct = len(pc.unique(column.drop_null()))
        if 3 <= distinct <= INTEGER_CATEGORY_MAX:
            if looks_like_count(field.name):
                return "numeric", f"integer with {distinct} values, named like a count"
            return "categorical", f"integer with {distinct} distinct values (at most {INTEGER_CATEGORY_MAX})"
        return "numeric", f"integer with {distinct} distinct values" if distinct > INTEGER_CATEGORY_MAX else "integer flag"
    return "numeric", "boolean" if pa.types.is_boolean(t) else "number"


def fit(
    train: pa.Table,
    *,
    label: str,
    exclude: set[str],
    task: str = "auto",
    non_finite: str = "impute",
    where: str = "",
    categorical_columns: tuple[str, ...] | list[str] = (),
    numeric_columns: tuple[str, ...] | list[str] = (),
) -> Preprocessing:
    """Fit the preprocessing on the training split (``categorical_columns`` / ``numeric_columns`` override the kind rule)."""
    if label not in train.schema.names:
        raise DataError(f"label column {label!r} is missing; columns are {train.schema.names[:30]}", where=where, fix="pass the right label column")
    if non_finite not in ("impute", "error"):
        raise DataError(f"non_finite must be impute or error, not {non_finite!r}", fix="pass impute or error")
    forced_cat, forced_num = set(categorical_columns), set(numeric_columns)
    _check_overrides(train.schema, label=label, exclude=exclude, categorical=list(categorical_columns), numeric=list(numeric_columns), where=where)
    task, classes = infer_task(train.column(label), task)
    prep = Preprocessing(task=task, label=label, classes=classes, non_finite=non_finite)
    for f in train.schema:
        if f.name == label or f.name in exclude:
            continue
        kind = choose_kind(f, train.column(f.name), forced_categorical=f.name in forced_cat, forced_numeric=f.name in forced_num)
        if kind is None:
            continue
        if kind[0] == "numeric":
            values = train.column(f.name).cast(pa.float64()).to_numpy(zero_copy_only=False)
            finite = values[np.isfinite(values)]
            mean = float(finite.mean()) if len(finite) else 0.0
            std = float(finite.std()) if len(finite) > 1 else 1.0
            prep.numeric.append(NumericColumn(f.name, mean, std if std > 1e-12 and math.isfinite(std) else 1.0, kind[1]))
        else:
            counts = pc.value_counts(_as_text(train.column(f.name)).drop_null())
            pairs = sorted(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()), key=lambda p: (-p[1], str(p[0])))
            prep.categorical.append(CategoricalColumn(f.name, [str(v) for v, _ in pairs[:MAX_VOCABULARY]], kind[1]))
    if not prep.feature_names:
        raise DataError("no feature columns to train on", where=where, fix="check the featurize step's outputs")
    if task == "regression":
        y = train.column(label).cast(pa.float64()).to_numpy(zero_copy_only=False)
        prep.label_mean, prep.label_std = float(np.nanmean(y)), float(np.nanstd(y)) or 1.0
    encoded = prep.encode_features(train, where)  # surfaces non-finite values under the error policy
    del encoded
    return prep


def _check_overrides(schema: pa.Schema, *, label: str, exclude: set[str], categorical: list[str], numeric: list[str], where: str) -> None:
    """Every override names a feature column of a usable type; all problems in one error."""
    problems = []
    missing = [n for n in dict.fromkeys(categorical + numeric) if n not in schema.names]
    if missing:
        problems.append(f"columns {missing} named in categorical_columns/numeric_columns are not in the training split (its columns: {schema.names[:40]}{' ...' if len(schema.names) > 40 else ''})")
    both = sorted(set(categorical) & set(numeric))
    if both:
        problems.append(f"columns {both} are named both categorical and numeric")
    not_features = sorted((set(categorical) | set(numeric)) & ({label} | set(exclude)))
    if not_features:
        problems.append(f"columns {not_features} are the label or excluded, not features")
    for name in numeric:
        if name in schema.names:
            t = schema.field(name).type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
                problems.append(f"column {name!r} is {t}, not a number: it cannot be numeric")
    for name in categorical:
        if name in schema.names and choose_kind(schema.field(name), pa.chunked_array([], schema.field(name).type), forced_categorical=True) is None:
            problems.append(f"column {name!r} is {schema.field(name).type}: it cannot be categorical")
    if problems:
        raise DataError("; ".join(problems), where=where, fix="name feature columns of the training split in categorical_columns / numeric_columns, each in one list")


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Category values as text. Arrow writes an integral float without a fraction (3.0 -> "3"), so an
    integer column that reaches serving as float (pandas, with nulls) finds the same categories."""
    return column.cast(pa.string())
