"""The kwargs of each expectation type we enforce: which exist, their defaults, their checks.

Each check returns the normalized value or raises ``BadKwarg`` with what is wrong; the
suite reader collects every problem of a suite into one error. A kwarg that changes
what GX checks and that we do not evaluate (a row condition, a suite parameter) is a
problem, never skipped.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

from kfp_mlops.components.validate.gx_types import check_type_name


class BadKwarg(Exception):
    """One problem with one kwarg (collected, then reported with the others)."""


# Accepted on any expectation and without effect here: how GX presents a result or handles its own errors.
PRESENTATION_KWARGS = frozenset({"result_format", "catch_exceptions", "include_config", "batch_id"})
REFUSED_WHY = {
    "row_condition": "conditions on rows are not evaluated by kfp-mlops",
    "condition_parser": "conditions on rows are not evaluated by kfp-mlops",
    "parse_strings_as_datetimes": "a Great Expectations 0.x option, removed in 1.x",
    "windows": "windows over earlier runs need GX's metric store",
}


# --- kwarg checks: each returns the normalized value or raises BadKwarg ---------------------------


def _column(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise BadKwarg(f"must be a column name (text), got {show(value)}")
    return value


def _mostly(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise BadKwarg(f"must be a share between 0 and 1, got {show(value)}")
    return float(value)


def _bound(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadKwarg(f"must be a number or null, got {show(value)} (dates and text bounds are not supported)")
    try:
        as_float = float(value)  # GX compares with the bound as a float
    except OverflowError:
        raise BadKwarg(f"is too large for a float ({show(value)}); write null for no bound") from None
    if not math.isfinite(as_float):
        raise BadKwarg(f"must be a finite number, got {value}; write null for no bound")
    return value


def _count_bound(value: Any) -> int | None:
    if value is None:
        return None
    return _count(value)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)) or value < 0 or int(value) != value:
        raise BadKwarg(f"must be a whole number of rows, got {show(value)}")
    return int(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadKwarg(f"must be true or false, got {show(value)}")
    return value


def _names(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadKwarg(f"must be a list of column names, got {show(value)}")
    return list(value)


def _column_list(value: Any) -> list[str]:
    names = _names(value)
    if not names:
        raise BadKwarg("must name at least one column")
    return names


def _index(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadKwarg(f"must be a position from 0, got {show(value)}")
    if value == 0:
        # GX 1.24 skips a falsy column_index: with 0 the suite would pass a column at any position there.
        raise BadKwarg(
            "is 0, which Great Expectations ignores (it checks no position then), so the suite does not check what it says; "
            "drop column_index (GX checks the same then), or check positions with expect_table_columns_to_match_ordered_list"
        )
    return value


def _value_set(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise BadKwarg(f"must be a list of values, got {show(value)}")
    for item in value:
        if item is not None and not isinstance(item, (str, int, float)):
            raise BadKwarg(f"must hold text, numbers or true/false only, got {show(item)}")
        if isinstance(item, float) and not math.isfinite(item):
            raise BadKwarg(f"cannot hold {item}: missing values never count against the set")
    return value


def _type_names(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise BadKwarg(f"must be a non-empty list of type names, got {show(value)}")
    for name in value:
        check_type_name(name, BadKwarg)
    return list(value)


def _type_name(value: Any) -> str:
    if not isinstance(value, str):
        raise BadKwarg(f"must be a type name, got {show(value)}")
    check_type_name(value, BadKwarg)
    return value


def _interpolation(value: Any) -> str:
    # GX's pandas backend reads a text value as the interpolation of pandas' quantile (default
    # nearest); Spark reads a number as the approximation's relative error. Ours are exact.
    if value is None or value is False or (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1):
        return "nearest"
    if value in ("nearest", "lower", "higher"):
        return value
    raise BadKwarg(f"must be false, a relative error between 0 and 1, or one of nearest, lower, higher (exact order statistics), got {show(value)}")


def _ignore_row_if(value: Any) -> str:
    if value not in ("all_values_are_missing", "any_value_is_missing", "never"):
        raise BadKwarg(f"must be all_values_are_missing, any_value_is_missing or never, got {show(value)}")
    return value


def _quantile_ranges(value: Any) -> dict[str, list[Any]]:
    if not isinstance(value, dict) or set(value) != {"quantiles", "value_ranges"}:
        raise BadKwarg('must be {"quantiles": [...], "value_ranges": [[low, high], ...]}')
    quantiles, ranges = value["quantiles"], value["value_ranges"]
    if not isinstance(quantiles, list) or not quantiles or not all(isinstance(q, (int, float)) and not isinstance(q, bool) and 0 <= q <= 1 for q in quantiles):
        raise BadKwarg(f"'quantiles' must be a non-empty list of numbers between 0 and 1, got {show(quantiles)}")
    if not isinstance(ranges, list) or len(ranges) != len(quantiles):
        raise BadKwarg(f"'value_ranges' must hold one [low, high] per quantile ({len(quantiles)})")
    checked = []
    for pair in ranges:
        if not isinstance(pair, list) or len(pair) != 2:
            raise BadKwarg(f"each value range must be [low, high], got {show(pair)}")
        low, high = _bound(pair[0]), _bound(pair[1])
        if low is not None and high is not None and low > high:
            raise BadKwarg(f"value range {pair} has low above high")
        checked.append([low, high])
    return {"quantiles": [float(q) for q in quantiles], "value_ranges": checked}


Check = Callable[[Any], Any]
REQUIRED = object()
_BETWEEN = {"min_value": (None, _bound), "max_value": (None, _bound), "strict_min": (False, _flag), "strict_max": (False, _flag)}
# Per supported type: kwarg -> (default or REQUIRED, check).
SUPPORTED: dict[str, dict[str, tuple[Any, Check]]] = {
    "expect_column_to_exist": {"column": (REQUIRED, _column), "column_index": (None, _index)},
    "expect_table_columns_to_match_set": {"column_set": (REQUIRED, _names), "exact_match": (True, _flag)},
    "expect_table_columns_to_match_ordered_list": {"column_list": (REQUIRED, _names)},
    "expect_column_values_to_be_of_type": {"column": (REQUIRED, _column), "type_": (REQUIRED, _type_name), "mostly": (1.0, _mostly)},
    "expect_column_values_to_be_in_type_list": {"column": (REQUIRED, _column), "type_list": (REQUIRED, _type_names), "mostly": (1.0, _mostly)},
    "expect_column_values_to_not_be_null": {"column": (REQUIRED, _column), "mostly": (1.0, _mostly)},
    "expect_column_values_to_be_between": {"column": (REQUIRED, _column), **_BETWEEN, "mostly": (1.0, _mostly)},
    "expect_column_values_to_be_in_set": {"column": (REQUIRED, _column), "value_set": (REQUIRED, _value_set), "mostly": (1.0, _mostly)},
    "expect_column_values_to_be_unique": {"column": (REQUIRED, _column), "mostly": (1.0, _mostly)},
    "expect_compound_columns_to_be_unique": {"column_list": (REQUIRED, _column_list), "ignore_row_if": ("all_values_are_missing", _ignore_row_if), "mostly": (1.0, _mostly)},
    "expect_table_row_count_to_be_between": {"min_value": (None, _count_bound), "max_value": (None, _count_bound), "strict_min": (False, _flag), "strict_max": (False, _flag)},
    "expect_table_row_count_to_equal": {"value": (REQUIRED, _count)},
    "expect_column_mean_to_be_between": {"column": (REQUIRED, _column), **_BETWEEN},
    "expect_column_quantile_values_to_be_between": {"column": (REQUIRED, _column), "quantile_ranges": (REQUIRED, _quantile_ranges), "allow_relative_error": (False, _interpolation)},
}
RANGED = frozenset({"expect_column_values_to_be_between", "expect_table_row_count_to_be_between", "expect_column_mean_to_be_between"})


def show(value: Any) -> str:
    """A value as a message quotes it: short, whatever its size or depth."""
    try:
        text = json.dumps(value, default=repr) if not isinstance(value, str) else repr(value)
    except (RecursionError, ValueError):
        text = f"a deeply nested {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def _has_parameter(value: Any, depth: int = 0) -> bool:
    """A GX suite parameter (``{"$PARAMETER": ...}``) anywhere in a kwarg: its value comes from a run we do not see."""
    if depth > 20:
        return False
    if isinstance(value, dict):
        return "$PARAMETER" in value or any(_has_parameter(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_has_parameter(v, depth + 1) for v in value)
    return False


def parse_kwargs(kind: str, raw_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The kwargs of one expectation of type ``kind``, checked, with defaults; every problem in one ``BadKwarg``."""
    spec = SUPPORTED[kind]
    problems, kwargs = [], {}
    for key, value in raw_kwargs.items():
        if key in spec or key in PRESENTATION_KWARGS:
            continue
        if key in REFUSED_WHY and value in (None, ""):
            continue  # written out empty by some GX versions: no condition at all
        why = REFUSED_WHY.get(key, f"not a kwarg of {kind} that kfp-mlops enforces")
        problems.append(f"kwarg {key!r} ({why})")
    for key, (default, check) in spec.items():
        if key not in raw_kwargs or (raw_kwargs[key] is None and default is not REQUIRED):
            if default is REQUIRED:
                problems.append(f"kwarg {key!r} is required")
            kwargs[key] = default
            continue
        if _has_parameter(raw_kwargs[key]):
            problems.append(f"kwarg {key!r} is a suite parameter ($PARAMETER); write its value into the suite")
            continue
        try:
            kwargs[key] = check(raw_kwargs[key])
        except BadKwarg as exc:
            problems.append(f"kwarg {key!r} {exc}")
    if not problems and kind in RANGED:
        low, high = kwargs["min_value"], kwargs["max_value"]
        if low is None and high is None:
            problems.append("min_value and max_value are both null: it checks nothing")
        elif low is not None and high is not None and low > high:
            problems.append(f"min_value {low} is above max_value {high}")
    if problems:
        raise BadKwarg("; ".join(problems))
    return kwargs
