"""Request decoding and response encoding for the model server, without pandas or Arrow tables.

A request becomes feature columns (name -> list of raw JSON values, ``MISSING`` where a
row did not carry the feature), then the model's inputs: the float32 numeric matrix and
the int64 category indices that ``Preprocessing.encode_features`` would build from the
same values in an Arrow table. The common values (numbers, text, null) are converted
straight from Python; the rare ones whose Arrow conversion has its own rules (text sent
for a number, a float sent for a category) go through Arrow itself, one cached value at a
time, so the two paths agree by construction. ``tests/unit/test_serve_codec.py`` checks
that over many random rows.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pyarrow as pa

from kfp_mlops.components._shared.errors import KfpMlopsError
from kfp_mlops.components.train.preprocessing import Preprocessing

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()
# Arrow refuses to cast an integer to float64 when the double cannot hold it exactly.
_EXACT_INT = 2**53
V2_NUMBER_TYPES = frozenset({"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
V2_TYPES = V2_NUMBER_TYPES | {"BYTES", "BOOL"}


class RequestError(KfpMlopsError):
    """A request the server cannot score as sent (HTTP 400, or 413 when too large)."""

    def __init__(self, problem: str, *, where: str = "", fix: str = "", status: int = 400) -> None:
        super().__init__(problem, where=where, fix=fix)
        self.status = status


def _where(request_field: str, row: int | None) -> str:
    return request_field if row is None else f"{request_field}[{row}]"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


@functools.lru_cache(maxsize=4096)
def _text_as_number(text: str) -> float | None:
    """Arrow's string -> float64 cast of one value; None when Arrow refuses it."""
    try:
        return pa.array([text], type=pa.string()).cast(pa.float64())[0].as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


@functools.lru_cache(maxsize=4096)
def _float_as_text(value: float) -> str:
    """Arrow's float64 -> string cast (3.0 -> "3", 1e-07 -> "1e-7"), which Python's repr does not match."""
    return pa.array([value], type=pa.float64()).cast(pa.string())[0].as_py()


@dataclass
class Encoded:
    """The model's inputs for n rows, and the values after casting (for the prediction log)."""

    numeric: np.ndarray  # (n, k) float32, NaN where missing
    categorical: np.ndarray  # (n, m) int64, 0 = unknown
    numeric_values: list[list[float | None]]  # per numeric feature, as cast (None = missing)
    category_texts: list[list[str | None]]  # per categorical feature, as matched against the vocabulary

    @property
    def rows(self) -> int:
        return int(self.numeric.shape[0])


class FeatureCodec:
    """Turns feature columns of raw JSON values into model inputs, as ``Preprocessing.encode_features`` would."""

    def __init__(self, prep: Preprocessing) -> None:
        self.prep = prep
        self.numeric_names = [c.name for c in prep.numeric]
        self.categorical_names = [c.name for c in prep.categorical]
        self.feature_names = prep.feature_names
        self.feature_set = frozenset(self.feature_names)
        self.vocabularies = [{text: i + 1 for i, text in enumerate(c.vocabulary)} for c in prep.categorical]
        self.refuse_non_finite = prep.non_finite == "error"

    # -- columns to model inputs -------------------------------------------------------
    def encode(self, columns: dict[str, list[Any]], rows: int, request_field: str) -> Encoded:
        """Model inputs from ``columns`` (every feature present, ``rows`` values each)."""
        numeric_values = [self._numbers(name, columns[name], request_field) for name in self.numeric_names]
        category_texts = [self._texts(name, columns[name], request_field) for name in self.categorical_names]
        if numeric_values:
            flat = [math.nan if v is None else v for v in numeric_values[0]] if len(numeric_values) == 1 else None
            if flat is not None:
                numeric = np.array(flat, dtype=np.float64).reshape(rows, 1).astype(np.float32)
            else:
                numeric = np.array([[math.nan if v is None else v for v in col] for col in numeric_values], dtype=np.float64).T.astype(np.float32)
        else:
            numeric = np.empty((rows, 0), dtype=np.float32)
        if category_texts:
            indices = [[vocab.get(t, 0) if t is not None else 0 for t in col] for vocab, col in zip(self.vocabularies, category_texts)]
            categorical = np.array(indices, dtype=np.int64).T.reshape(rows, len(indices))
        else:
            categorical = np.zeros((rows, 0), dtype=np.int64)
        return Encoded(np.ascontiguousarray(numeric), np.ascontiguousarray(categorical), numeric_values, category_texts)

    def _numbers(self, name: str, values: list[Any], request_field: str) -> list[float | None]:
        out: list[float | None] = []
        append = out.append
        for row, v in enumerate(values):
            t = type(v)
            if t is float:
                x = v
            elif t is int:
                if -_EXACT_INT <= v <= _EXACT_INT:
                    x = float(v)
                else:
                    raise RequestError(
                        f"feature {name!r} is {v}, beyond the integers a float64 holds exactly (±2^53)", where=_where(request_field, row), fix=f"send a number within ±{_EXACT_INT} for {name!r}"
                    )
            elif v is None:
                append(None)
                continue
            elif t is bool:
                x = 1.0 if v else 0.0
            elif t is str:
                parsed = _text_as_number(v)
                if parsed is None:
                    raise RequestError(f"numeric feature {name!r} got text {v[:40]!r} that is not a number", where=_where(request_field, row), fix=f"send a number (or null) for {name!r}")
                x = parsed
            elif v is MISSING:
                raise RequestError(f"feature {name!r} is missing", where=_where(request_field, row), fix=f"send every feature the model takes: {self.feature_names}")
            else:
                raise RequestError(f"numeric feature {name!r} got {_kind(v)}", where=_where(request_field, row), fix=f"send a number (or null) for {name!r}")
            if x - x != 0.0:  # NaN or infinite: only text such as "inf" gets here
                if self.refuse_non_finite:
                    raise RequestError(
                        f"numeric feature {name!r} is {v!r}, not a finite number, and this model refuses non-finite values",
                        where=_where(request_field, row),
                        fix=f"send a finite number or null for {name!r}",
                    )
                append(None)
                continue
            append(x)
        return out

    def _texts(self, name: str, values: list[Any], request_field: str) -> list[str | None]:
        out: list[str | None] = []
        append = out.append
        for row, v in enumerate(values):
            t = type(v)
            if t is str:
                append(v)
            elif t is int:
                append(str(v))
            elif v is None:
                append(None)
            elif t is float:
                append(_float_as_text(v))
            elif t is bool:
                append("true" if v else "false")
            elif v is MISSING:
                raise RequestError(f"feature {name!r} is missing", where=_where(request_field, row), fix=f"send every feature the model takes: {self.feature_names}")
            else:
                raise RequestError(f"categorical feature {name!r} got {_kind(v)}", where=_where(request_field, row), fix=f"send text, a number or null for {name!r}")
        return out

    # -- requests to columns -----------------------------------------------------------
    def v1_columns(self, body: Any, extra: Iterable[str] = ()) -> tuple[dict[str, list[Any]], int, str]:
        """Feature columns of a V1 body (``instances`` or ``inputs``); ``extra`` names accepted non-features (the entity key)."""
        if not isinstance(body, dict):
            raise RequestError(f"the body is {_kind(body)}, not a JSON object", fix='send {"instances": [{feature: value, ...}, ...]}')
        field = "instances" if "instances" in body else "inputs" if "inputs" in body else ""
        if not field:
            raise RequestError("the body has no 'instances' (or 'inputs')", fix='send {"instances": [{feature: value, ...}, ...]}')
        rows = body[field]
        if not isinstance(rows, list) or not rows:
            raise RequestError(
                f"'{field}' must be a non-empty list of rows", where=field, fix=f"send at least one row: a JSON object of features, or a list of values in the order {self.feature_names}"
            )
        allowed = self.feature_set | frozenset(extra)
        names = list(self.feature_names) + [e for e in extra if e not in self.feature_set]
        columns: dict[str, list[Any]] = {name: [] for name in names}
        width = len(self.feature_names)
        for i, row in enumerate(rows):
            if type(row) is dict:
                if not row.keys() <= allowed:
                    unknown = sorted(k for k in row if k not in allowed)
                    raise RequestError(
                        f"unknown feature {unknown[0]!r}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""),
                        where=_where(field, i),
                        fix=f"send only the model's features: {self.feature_names}",
                    )
                get = row.get
                for name, column in columns.items():
                    column.append(get(name, MISSING))
            elif type(row) is list:
                if len(row) != width:
                    raise RequestError(f"the row has {len(row)} values, the model takes {width}", where=_where(field, i), fix=f"send one value per feature, in the order {self.feature_names}")
                for name, value in zip(self.feature_names, row):
                    columns[name].append(value)
                for name in names[width:]:
                    columns[name].append(MISSING)
            else:
                raise RequestError(f"the row is {_kind(row)}, not an object or a list", where=_where(field, i), fix="send each row as a JSON object of features or a list of values")
        return columns, len(rows), field

    def v2_columns(self, body: Any, extra: Iterable[str] = ()) -> tuple[dict[str, list[Any]], int, str]:
        """Feature columns of an Open Inference Protocol V2 body (one input tensor per feature)."""
        if not isinstance(body, dict):
            raise RequestError(f"the body is {_kind(body)}, not a JSON object", fix='send {"inputs": [{"name": feature, "shape": [n], "datatype": "FP64", "data": [...]}, ...]}')
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise RequestError("'inputs' must be a non-empty list of input tensors", where="inputs", fix="send one input tensor per feature")
        allowed = self.feature_set | frozenset(extra)
        columns: dict[str, list[Any]] = {}
        rows = -1
        for i, tensor in enumerate(inputs):
            where = f"inputs[{i}]"
            if not isinstance(tensor, dict):
                raise RequestError(f"the input is {_kind(tensor)}, not a tensor object", where=where, fix="send {name, shape, datatype, data}")
            name = tensor.get("name")
            if name not in allowed:
                raise RequestError(f"unknown input {name!r}", where=where, fix=f"name each input after one of the model's features: {self.feature_names}")
            if name in columns:
                raise RequestError(f"input {name!r} is sent twice", where=where, fix="send one tensor per feature")
            where = f"inputs[{i}] ({name})"
            datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
            if datatype not in V2_TYPES:
                raise RequestError(f"datatype {datatype!r} is not one of {sorted(V2_TYPES)}", where=where, fix="use FP64, FP32, INT64, INT32, BYTES or BOOL")
            if not isinstance(shape, list) or not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or not all(type(s) is int and s >= 1 for s in shape):
                raise RequestError(f"shape {shape!r} is not [n] or [n, 1]", where=where, fix="send one value per row: shape [n]")
            if not isinstance(data, list):
                raise RequestError("'data' must be a list", where=where, fix="send the values as a flat list")
            if data and type(data[0]) is list:  # row-major nested form [[v], [v], ...]
                if not all(type(d) is list and len(d) == 1 for d in data):
                    raise RequestError("nested 'data' must hold one value per row", where=where, fix="send the values as a flat list")
                data = [d[0] for d in data]
            if len(data) != shape[0]:
                raise RequestError(f"'data' holds {len(data)} values but shape says {shape[0]}", where=where, fix="make shape[0] the number of values")
            if rows not in (-1, shape[0]):
                raise RequestError(f"the input has {shape[0]} rows, earlier inputs have {rows}", where=where, fix="send the same number of rows for every feature")
            rows = shape[0]
            self._check_v2_values(name, datatype, data, where)
            columns[name] = data
        for name in list(self.feature_names) + [e for e in extra if e not in self.feature_set]:
            columns.setdefault(name, [MISSING] * rows)
        return columns, rows, "inputs"

    @staticmethod
    def _check_v2_values(name: str, datatype: str, data: list[Any], where: str) -> None:
        if datatype in V2_NUMBER_TYPES:
            integral = datatype.startswith(("INT", "UINT"))
            wanted = "whole numbers" if integral else "numbers"

            def fits(v: Any) -> bool:
                return type(v) is int or (type(v) is float and (not integral or v.is_integer()))

        elif datatype == "BOOL":
            wanted = "true/false"

            def fits(v: Any) -> bool:
                return type(v) is bool

        else:
            wanted = "text"

            def fits(v: Any) -> bool:
                return type(v) is str

        for row, v in enumerate(data):
            if v is not None and not fits(v):
                raise RequestError(f"datatype {datatype} needs {wanted} (or null), row {row} is {_kind(v)}", where=where, fix=f"send {wanted} for {name!r}, or declare the datatype that matches them")


@dataclass
class Scored:
    """Predictions for n rows, in the shapes both protocols send."""

    predictions: list[Any]  # class label text, or the regression value
    probabilities: np.ndarray | None  # (n, k) float32 for classifiers
    scores: list[float]  # the regression value, the positive-class or the predicted class probability


def score_output(out: np.ndarray, prep: Preprocessing) -> Scored:
    """Labels and probabilities exactly as ``ServingTransform.predict_frame`` derives them."""
    if prep.task == "regression":
        values = out.astype(np.float64).tolist()
        return Scored(values, None, values)
    probs = np.column_stack([1 - out, out]) if prep.task == "binary" else out
    best = probs.argmax(axis=1)
    classes = prep.classes
    labels = [classes[i] for i in best.tolist()]
    scores = out.astype(np.float64).tolist() if prep.task == "binary" else probs[np.arange(len(best)), best].astype(np.float64).tolist()
    return Scored(labels, probs, scores)
