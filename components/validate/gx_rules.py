"""The rules a GX expectation applies, as GX's pandas backend applies them, on Arrow arrays.

Each rule is exact. Where pandas decides something (what is missing, how ``mostly``
is rounded, which rank a quantile takes, how close to a bound a quantile may be), the
rule does what pandas and GX 1.24 do, so that a suite passes or fails here as it does
there; ``test_gx_comparison`` runs both on the same tables.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

EXAMPLES = 5
QUANTILE_RTOL, QUANTILE_ATOL = 1e-4, 1e-8  # GX's tolerance at a quantile's bounds


def decoded(column: pa.Array) -> pa.Array:
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


def value_type(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def is_numeric(t: pa.DataType) -> bool:
    t = value_type(t)
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def mostly_holds(considered: int, unexpected: int, mostly: float) -> bool:
    # As GX: nothing to consider passes; otherwise the share that passes, as a float, against mostly.
    return considered == 0 or (float(considered) - float(unexpected)) / float(considered) >= mostly


def fmt(value: Any) -> str:
    return f"{value:.8g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else str(value)


def interval(low: Any, high: Any, strict_low: bool, strict_high: bool) -> str:
    left = "(" if strict_low or low is None else "["
    right = ")" if strict_high or high is None else "]"
    return f"{left}{'-inf' if low is None else fmt(low)}, {'inf' if high is None else fmt(high)}{right}"


class MapCount:
    """Non-missing values seen, how many broke the rule, and a few of them."""

    def __init__(self, rule: Callable[[pa.Array], pa.Array]) -> None:
        self.rule = rule
        self.considered = 0
        self.unexpected = 0
        self.examples: list[Any] = []

    def update(self, present: pa.Array) -> None:
        self.considered += len(present)
        if not len(present):
            return
        bad = present.filter(self.rule(present))
        self.unexpected += len(bad)
        for value in pc.unique(bad).slice(0, EXAMPLES).to_pylist() if len(bad) and len(self.examples) < EXAMPLES else []:
            if len(self.examples) < EXAMPLES and value not in self.examples:
                self.examples.append(value)


def between_rule(t: pa.DataType, low: float | None, high: float | None, strict_low: bool, strict_high: bool) -> Callable[[pa.Array], pa.Array]:
    """The rule "outside the bounds". Integer columns compare with whole bounds in their own type: exact at any size."""
    t = value_type(t)
    if pa.types.is_integer(t):
        return _integer_between(t, low, high, strict_low, strict_high)

    def rule(present: pa.Array) -> pa.Array:
        values = present.cast(pa.float64()) if pa.types.is_decimal(present.type) else present
        outside = pa.array(np.zeros(len(values), dtype=bool))
        if low is not None:
            outside = pc.or_(outside, (pc.less_equal if strict_low else pc.less)(values, pa.scalar(float(low))))
        if high is not None:
            outside = pc.or_(outside, (pc.greater_equal if strict_high else pc.greater)(values, pa.scalar(float(high))))
        return outside

    return rule


def _integer_between(t: pa.DataType, low: float | None, high: float | None, strict_low: bool, strict_high: bool) -> Callable[[pa.Array], pa.Array]:
    # The smallest and largest whole numbers allowed; x > 2.5 is x >= 3, x < 2 is x <= 1.
    smallest = None if low is None else int(low) + 1 if float(low).is_integer() and strict_low else int(low) if float(low).is_integer() else math.floor(low) + 1
    largest = None if high is None else int(high) - 1 if float(high).is_integer() and strict_high else int(high) if float(high).is_integer() else math.floor(high)
    type_min, type_max = (0, 2**t.bit_width - 1) if pa.types.is_unsigned_integer(t) else (-(2 ** (t.bit_width - 1)), 2 ** (t.bit_width - 1) - 1)
    nothing_fits = (smallest is not None and smallest > type_max) or (largest is not None and largest < type_min) or (smallest is not None and largest is not None and smallest > largest)

    def rule(present: pa.Array) -> pa.Array:
        if nothing_fits:
            return pa.array(np.ones(len(present), dtype=bool))
        outside = pa.array(np.zeros(len(present), dtype=bool))
        if smallest is not None and smallest > type_min:
            outside = pc.or_(outside, pc.less(present, pa.scalar(smallest, type=present.type)))
        if largest is not None and largest < type_max:
            outside = pc.or_(outside, pc.greater(present, pa.scalar(largest, type=present.type)))
        return outside

    return rule


def set_rule(t: pa.DataType, value_set: list[Any]) -> tuple[Callable[[pa.Array], pa.Array], int]:
    """The rule "not in the set" for a column of type ``t``, and how many set values can never match its type."""
    t = value_type(t)
    numbers = [v for v in value_set if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if pa.types.is_integer(t):
        # Only whole numbers the column's type can hold can match (pandas: 2.0 matches 2, 2.5 nothing).
        low, high = (0, 2**t.bit_width - 1) if pa.types.is_unsigned_integer(t) else (-(2 ** (t.bit_width - 1)), 2 ** (t.bit_width - 1) - 1)
        usable: list[Any] = [int(v) for v in numbers if (isinstance(v, int) or v.is_integer()) and low <= int(v) <= high]
        members, cast = pa.array(usable, type=t), None
    elif pa.types.is_floating(t) or pa.types.is_decimal(t):
        usable = [float(v) for v in numbers]
        members, cast = pa.array(usable, type=pa.float64()), pa.float64()
    elif pa.types.is_boolean(t):
        usable = [v for v in value_set if isinstance(v, bool)]
        members, cast = pa.array(usable, type=pa.bool_()), None
    elif pa.types.is_timestamp(t) or pa.types.is_date(t):
        # Text in the set is read as the column's dates or times (pandas parses it the same way).
        texts = [v for v in value_set if isinstance(v, str)]
        try:
            members = pa.array(texts, type=pa.string()).cast(t)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            members = pa.array([p for p in (_parsed(v, t) for v in texts) if p is not None], type=t)
        usable, cast = members.to_pylist(), None
    elif comparable_with_set(t):
        usable = [v for v in value_set if isinstance(v, str)]
        members, cast = pa.array(usable, type=pa.string()), pa.string()
    else:
        raise ValueError(f"no value set rule for {t}")  # _plan checks comparable_with_set first
    unusable = sum(v is not None for v in value_set) - len(usable)

    def rule(present: pa.Array) -> pa.Array:
        values = present.cast(cast) if cast is not None and present.type != cast else present
        return pc.invert(pc.is_in(values, value_set=members))

    return rule, unusable


def comparable_with_set(t: pa.DataType) -> bool:
    """Whether values of ``t`` can be looked up in a JSON value set (numbers, text, true/false, dates)."""
    t = value_type(t)
    return is_numeric(t) or any(test(t) for test in (pa.types.is_boolean, pa.types.is_timestamp, pa.types.is_date, pa.types.is_string, pa.types.is_large_string))


def _parsed(text: str, t: pa.DataType) -> Any:
    try:
        return pa.array([text], type=pa.string()).cast(t)[0].as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def within(value: float, low: float | None, high: float | None, strict_low: bool, strict_high: bool) -> bool:
    above = low is None or (value > low if strict_low else value >= low)
    below = high is None or (value < high if strict_high else value <= high)
    return above and below


def quantile_rank(n: int, q: float, method: str) -> int:
    """0-based rank numpy (so pandas, so GX) takes for quantile ``q`` of ``n`` values; pandas passes q as a percent."""
    position = (n - 1) * (np.float64(q) * 100.0 / 100.0)
    if method == "lower":
        return int(np.floor(position))
    if method == "higher":
        return int(np.ceil(position))
    return int(np.around(position))  # nearest: halves to the even rank, as numpy rounds


def quantile_in_range(value: float, bounds: list[float | None]) -> bool:
    low = -math.inf if bounds[0] is None else bounds[0]
    high = math.inf if bounds[1] is None else bounds[1]

    def close(bound: float) -> bool:
        return math.isfinite(bound) and abs(value - bound) <= QUANTILE_ATOL + QUANTILE_RTOL * abs(bound)

    return close(low) or close(high) or low <= value <= high
