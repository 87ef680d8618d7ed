"""Type names as Great Expectations' pandas backend reads them, checked on Arrow columns.

GX 1.24 with pandas does not look at a column's values' kind but at the pandas dtype the
column has once read into a DataFrame, and compares it with what numpy, pandas and Python
call the name. We do the same without pandas: ``pandas_column`` says which dtype pyarrow's
``to_pandas()`` (what ``pd.read_parquet`` calls) gives an Arrow column, and each name is
matched the way GX matches it. Consequences that surprise, all GX's own:

* The dtype depends on the data: an integer column with a null is ``float64``, a boolean
  column with a null holds Python objects (``object``).
* ``expect_column_values_to_be_in_type_list`` compares dtypes: ``int`` is exactly int64,
  ``datetime64`` (no unit) matches no column, and no name matches a time-zone-aware column.
  ``expect_column_values_to_be_of_type`` compares the dtype's scalar type: ``datetime64``
  matches naive timestamps of any unit, ``Timestamp`` matches zoned ones.
* A column of Python objects (text, dates, decimals, booleans with nulls) is checked value
  by value against Python classes: ``str``, ``date``, ``Decimal``, ``bool`` (and ``int``,
  as ``True`` is an int); ``object`` passes it only in ``expect_column_values_to_be_of_type``.
* A dictionary-encoded column is a pandas ``category``, which no type name matches.

Names GX's pandas backend does not match on any column (SQL and Spark spellings such as
``INTEGER`` or ``StringType``, ``string``, ``category``) and the rarer numpy spellings are
refused when the suite is read, with the name to use instead: silently failing every column
would be worse. ``test_gx_comparison`` checks every name here against GX 1.24.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import pyarrow as pa

TIME_UNITS = ("s", "ms", "us", "ns")
NUMERIC_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64")
# Names numpy reads as a dtype (np.dtype(name)): GX tries these first, case as written.
NUMPY_NAMES: dict[str, str] = {
    **{name: name for name in NUMERIC_DTYPES},
    **dict.fromkeys(("int", "long", "int_"), "int64"),
    **dict.fromkeys(("float", "double"), "float64"),
    **dict.fromkeys(("bool", "bool_"), "bool"),
    **dict.fromkeys(("object", "object_", "O"), "object"),
    "str": "<U0",
    "bytes": "|S0",
    **dict.fromkeys(("datetime64", "M8"), "datetime64"),
    **{f"{prefix}[{unit}]": f"datetime64[{unit}]" for prefix in ("datetime64", "M8") for unit in TIME_UNITS},
}
# Names numpy does not know that GX finds in pandas: the class values must be instances of.
PANDAS_NAMES = {"Timestamp": "pd.Timestamp", "date": "date", "Decimal": "Decimal"}
# Python classes GX maps names onto, whatever their case.
PYTHON_NAMES = {"bool": "bool", "int": "int", "long": "int", "float": "float", "str": "str", "string_types": "str", "bytes": "bytes", "dict": "dict"}
# The numpy dtype a Python class stands for when compared with a dtype (np.dtype(int) is int64).
PYTHON_DTYPES = {"int": "int64", "float": "float64", "bool": "bool"}
# The spellings people bring from SQL, Spark or pyarrow, and what to write instead.
INSTEAD = {
    **dict.fromkeys(("integer", "bigint", "smallint", "tinyint", "integertype", "longtype", "shorttype", "bytetype", "int32_t"), "int64 (or the width the column has: int32, ...)"),
    **dict.fromkeys(("real", "numeric", "floattype", "doubletype", "double_precision", "float_", "halffloat"), "float64"),
    **dict.fromkeys(("decimal", "decimaltype"), "Decimal"),
    **dict.fromkeys(("string", "varchar", "nvarchar", "text", "char", "stringtype", "utf8", "large_string", "unicode", "str_"), "str"),
    **dict.fromkeys(("boolean", "booleantype"), "bool"),
    **dict.fromkeys(("timestamp", "datetime", "timestamptype", "timestamp_ntz"), "datetime64 with expect_column_values_to_be_of_type (no time zone), Timestamp (with one)"),
    **dict.fromkeys(("datetype", "date32", "date64"), "date"),
    **dict.fromkeys(("category", "categoricaldtype"), "nothing: GX's pandas backend matches no type name on a category column, so drop the type expectation"),
}


@dataclass(frozen=True)
class PandasColumn:
    """An Arrow column as pandas holds it after ``to_pandas()``.

    Attributes:
        dtype: numpy's or pandas' name of the dtype: ``int64``, ``object``, ``datetime64[us, UTC]``.
        scalar: The dtype's scalar type (``np.int64``, ``np.datetime64``, ``pd.Timestamp``).
        values: For an ``object`` column, the Python class of its values (``str``, ``date``, ...).
    """

    dtype: str
    scalar: str
    values: str | None = None


def _scalar(dtype: str) -> str:
    if dtype.startswith("datetime64"):
        return "np.datetime64"
    return {"<U0": "np.str_", "|S0": "np.bytes_", "object": "np.object_"}.get(dtype, f"np.{dtype}")


def _objects(values: str | None) -> PandasColumn:
    return PandasColumn("object", "np.object_", values)


def pandas_column(t: pa.DataType, has_nulls: bool) -> PandasColumn:
    """How pandas holds a column of Arrow type ``t`` (``has_nulls``: anywhere in the dataset)."""
    if pa.types.is_dictionary(t):
        return PandasColumn("category", "pd.CategoricalDtypeType")
    if pa.types.is_integer(t):
        dtype = "float64" if has_nulls else str(t)  # pyarrow's names for integer types are numpy's
        return PandasColumn(dtype, _scalar(dtype))
    if pa.types.is_floating(t):
        dtype = {16: "float16", 32: "float32"}.get(t.bit_width, "float64")
        return PandasColumn(dtype, _scalar(dtype))
    if pa.types.is_boolean(t):
        return _objects("bool") if has_nulls else PandasColumn("bool", "np.bool")
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            return PandasColumn(f"datetime64[{t.unit}, {t.tz}]", "pd.Timestamp")
        return PandasColumn(f"datetime64[{t.unit}]", "np.datetime64")
    if pa.types.is_duration(t):
        return PandasColumn(f"timedelta64[{t.unit}]", "np.timedelta64")
    if pa.types.is_null(t):
        return _objects(None)
    classes = (
        (pa.types.is_string, "str"),
        (pa.types.is_large_string, "str"),
        (pa.types.is_date, "date"),
        (pa.types.is_decimal, "Decimal"),
        (pa.types.is_binary, "bytes"),
        (pa.types.is_large_binary, "bytes"),
        (pa.types.is_fixed_size_binary, "bytes"),
        (pa.types.is_struct, "dict"),
        (pa.types.is_time, "time"),
    )
    return _objects(next((name for test, name in classes if test(t)), "other"))  # lists become numpy arrays, maps lists


@dataclass(frozen=True)
class TypeName:
    """What GX compares with for one name: a numpy dtype, and pandas or Python classes."""

    dtype: str | None
    classes: frozenset[str]

    @property
    def scalar(self) -> str | None:
        return _scalar(self.dtype) if self.dtype is not None else None


def lookup(name: str) -> TypeName | None:
    """The name as GX reads it, or None for a name we do not check."""
    classes = {PANDAS_NAMES[name]} if name in PANDAS_NAMES else set()
    if name.lower() in PYTHON_NAMES:
        classes.add(PYTHON_NAMES[name.lower()])
    dtype = NUMPY_NAMES.get(name)
    return TypeName(dtype, frozenset(classes)) if dtype is not None or classes else None


def known_names() -> list[str]:
    """The names we check, as a message lists them."""
    return [*NUMERIC_DTYPES, "int", "float", "bool", "str", "object", "datetime64", "datetime64[us]", "Timestamp", "date", "Decimal", "bytes", "dict"]


def check_type_name(name: str, error: type[Exception]) -> None:
    """Raise ``error`` for a name we do not check as GX's pandas backend does."""
    if lookup(name) is not None:
        return
    instead = INSTEAD.get(name.strip().lower())
    why = f" (Great Expectations' pandas backend matches no column with it: write {instead})" if instead else ""
    raise error(f"has the type name {name!r}, which kfp-mlops does not check{why}; names checked as GX's pandas backend does: {', '.join(known_names())}")


def _values_match(column: PandasColumn, names: Iterable[TypeName]) -> bool:
    classes = frozenset().union(*(n.classes for n in names))
    return column.values in classes or (column.values == "bool" and "int" in classes)  # True is an int in Python


def type_verdict(names: list[str], column: PandasColumn, *, one_name: bool) -> tuple[bool, bool]:
    """(checked value by value, matches) for the names of a type expectation on ``column``.

    ``one_name``: expect_column_values_to_be_of_type; else expect_column_values_to_be_in_type_list.
    Value by value (an ``object`` column) every non-missing value matches or none does.
    """
    specs = [spec for spec in map(lookup, names) if spec is not None]
    if one_name:
        if column.dtype == "object" and names[0] not in ("object", "object_", "O"):
            return True, _values_match(column, specs)
        return False, any(column.scalar == s.scalar or column.scalar in s.classes for s in specs)
    if column.dtype == "object":
        return True, _values_match(column, specs)
    return False, any(column.dtype == s.dtype or column.dtype in {PYTHON_DTYPES.get(c) for c in s.classes} for s in specs)


def export_type_check(kind: str, type_text: str) -> tuple[str, dict[str, object]] | None:
    """The type expectation (type, kwargs without the column) an exported suite gives a schema column.

    Checked as our schema compares kinds where GX can say it: any integer or float width (an
    integer column with a null is float64 in pandas), decimals; true/false with or without nulls;
    text. A time column keeps its flavour: GX can check a zoned timestamp only as ``Timestamp``
    (of_type), a naive one as ``datetime64``, a date as ``date``, so a switch between the three,
    which our schema lets through, fails the suite. A dictionary-encoded column (pandas category)
    and nested or binary columns get none: no name matches them in GX's pandas backend.
    """
    if type_text.startswith("dictionary<"):
        return None
    if kind in ("integer", "float"):
        return "expect_column_values_to_be_in_type_list", {"type_list": [*NUMERIC_DTYPES, "Decimal"]}
    if kind == "boolean":
        return "expect_column_values_to_be_in_type_list", {"type_list": ["bool"]}
    if kind in ("categorical", "text"):
        return "expect_column_values_to_be_in_type_list", {"type_list": ["str"]}
    if kind == "timestamp":
        if type_text.startswith("date"):
            return "expect_column_values_to_be_of_type", {"type_": "date"}
        return "expect_column_values_to_be_of_type", {"type_": "Timestamp" if "tz=" in type_text else "datetime64"}
    return None
