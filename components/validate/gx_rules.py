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


def compares_as_number(t: pa.DataType) -> bool:
    """Numbers, and true/false, which pandas compares, averages and ranks as 1/0."""
    return is_numeric(t) or pa.types.is_boolean(value_type(t))


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


def between_rule(low: float | None, high: float | None, strict_low: bool, strict_high: bool) -> Callable[[pa.Array], pa.Array]:
    """The rule "outside the bounds" on numbers or true/false (1/0), compared as float64 with float bounds.

    GX reads the bounds as floats, so pandas compares every column with them in float64: an
    integer past 2**53 rounds (2**53 + 1 is not above a bound of 2**53) there and here alike.
    """

    def rule(present: pa.Array) -> pa.Array:
        values = pc.cast(present, pa.float64(), safe=False)
        outside = pa.array(np.zeros(len(values), dtype=bool))
        if low is not None:
            outside = pc.or_(outside, (pc.less_equal if strict_low else pc.less)(values, pa.scalar(float(low))))
        if high is not None:
            outside = pc.or_(outside, (pc.greater_equal if strict_high else pc.greater)(values, pa.scalar(float(high))))
        return outside

    return rule


def set_rule(t: pa.DataType, value_set: list[Any]) -> tuple[Callable[[pa.Array], pa.Array], int]:
    """The rule "not in the set" for a column of type ``t``, and how many set values can never match its type.

    Values match as pandas' ``isin`` matches them: by Python equality, so true/false equal 1/0
    (and 1.0/0.0), 2.0 equals 2, and text never equals a number. A date column holds Python
    dates, which no JSON value equals; a timestamp column reads ISO 8601 text as its times.
    """
    t = value_type(t)
    # JSON gives true/false, whole numbers and fractions: as pandas compares them, true is 1 and false 0.
    numbers = [int(v) if isinstance(v, bool) else v for v in value_set if isinstance(v, (int, float))]
    if pa.types.is_integer(t):
        # Only whole numbers the column's type can hold can match (pandas: 2.0 matches 2, 2.5 nothing).
        low, high = (0, 2**t.bit_width - 1) if pa.types.is_unsigned_integer(t) else (-(2 ** (t.bit_width - 1)), 2 ** (t.bit_width - 1) - 1)
        usable: list[Any] = [int(v) for v in numbers if (isinstance(v, int) or v.is_integer()) and low <= int(v) <= high]
        members, cast = pa.array(usable, type=t), None
    elif pa.types.is_floating(t) or pa.types.is_decimal(t):
        usable = [float(v) for v in numbers]
        members, cast = pa.array(usable, type=pa.float64()), pa.float64()
    elif pa.types.is_boolean(t):
        usable = [v == 1 for v in numbers if v in (0, 1)]
        members, cast = pa.array(usable, type=pa.bool_()), None
    elif pa.types.is_date(t):
        usable, members, cast = [], pa.array([], type=t), None
    elif pa.types.is_timestamp(t):
        # Text in the set is read as the column's times: naive text for a naive column, text with an
        # offset for a zoned one (pandas matches the same; it also reads formats other than ISO 8601).
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
