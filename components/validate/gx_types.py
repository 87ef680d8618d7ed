"""GX type names (numpy, pandas, Python, SQL and Spark spellings) mapped onto Arrow types.

A name with a width (``int32``, ``float64``) means that exact Arrow type; a name without
one (``int``, ``float``, ``str``, ``INTEGER``, ``StringType``) means the whole family, as
our own schema compares kinds. Case does not matter. An unknown name is refused when the
suite is read: silently failing (or passing) every column would be worse.

GX's pandas backend differs from this in places that follow from pandas, not from the
data: there ``int`` is exactly int64, ``string`` and SQL names are unknown, and an integer
column with nulls is float64.
"""

from __future__ import annotations

from typing import Callable

import pyarrow as pa

EXACT = {
    **{f"int{w}": getattr(pa, f"int{w}")() for w in (8, 16, 32, 64)},
    **{f"uint{w}": getattr(pa, f"uint{w}")() for w in (8, 16, 32, 64)},
    "float16": pa.float16(),
    "float32": pa.float32(),
    "float64": pa.float64(),
}
FAMILY_NAMES = {
    "integer": ("int", "integer", "long", "bigint", "smallint", "tinyint", "integertype", "longtype", "shorttype", "bytetype", "int_"),
    "float": ("float", "double", "real", "numeric", "decimal", "floattype", "doubletype", "decimaltype", "double_precision", "float_"),
    "string": ("str", "string", "unicode", "string_types", "varchar", "nvarchar", "text", "char", "stringtype", "utf8", "large_string", "str_"),
    "boolean": ("bool", "boolean", "bool_", "booleantype"),
    "timestamp": ("datetime64", "datetime", "timestamp", "timestamptype", "timestamp_ntz"),
    "date": ("date", "datetype", "date32", "date64"),
    "category": ("category", "categoricaldtype"),
    # What pandas keeps as Python objects: text, bytes, nested values, decimals, dates.
    "object": ("object", "o", "object_"),
}
NAME_TO_FAMILY = {name: family for family, names in FAMILY_NAMES.items() for name in names}


def _decoded(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


FAMILY_TESTS: dict[str, Callable[[pa.DataType], bool]] = {
    "integer": lambda t: pa.types.is_integer(_decoded(t)),
    "float": lambda t: pa.types.is_floating(_decoded(t)) or pa.types.is_decimal(_decoded(t)),
    "string": lambda t: pa.types.is_string(_decoded(t)) or pa.types.is_large_string(_decoded(t)),
    "boolean": lambda t: pa.types.is_boolean(_decoded(t)),
    "timestamp": lambda t: pa.types.is_timestamp(_decoded(t)),
    "date": lambda t: pa.types.is_date(_decoded(t)),
    "category": pa.types.is_dictionary,
    "object": lambda t: not any(test(_decoded(t)) for test in (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_timestamp)),
}


def _family(name: str) -> str | None:
    lowered = name.strip().lower()
    if lowered.startswith("datetime64"):
        return "timestamp"  # datetime64[ns], datetime64[us, UTC], ...: any unit, any zone
    return NAME_TO_FAMILY.get(lowered)


def check_type_name(name: str, error: type[Exception]) -> None:
    """Raise ``error`` for a type name we cannot map."""
    if name.strip().lower() not in EXACT and _family(name) is None:
        known = sorted(EXACT) + ["int", "float", "str", "bool", "datetime64", "date", "category", "object"]
        raise error(f"has the unknown type name {name!r}; use one of {', '.join(known)} (or their SQL/Spark spellings)")


def type_matches(name: str, arrow_type: pa.DataType) -> bool:
    """Whether a column of ``arrow_type`` has the type GX calls ``name``."""
    exact = EXACT.get(name.strip().lower())
    if exact is not None:
        return _decoded(arrow_type) == exact
    family = _family(name)
    return family is not None and FAMILY_TESTS[family](arrow_type)


def names_for(kind: str, type_text: str) -> list[str]:
    """GX type names for a column of our schema (its kind and Arrow type text), as an exported suite lists them.

    Families, as our schema compares kinds: an integer column may become float and back
    (pandas makes it float on a null) and a timestamp may become a date.
    """
    if kind in ("integer", "float"):
        exact = [name for name, t in EXACT.items() if str(t) == type_text]
        return exact + ["int", "float"]
    if kind == "boolean":
        return ["bool"]
    if kind in ("categorical", "text"):
        return ["str"]
    if kind == "timestamp":
        # GX's pandas backend names a zoned timestamp column "Timestamp", a naive one datetime64.
        return ["datetime64", "Timestamp", "date"]
    return []
