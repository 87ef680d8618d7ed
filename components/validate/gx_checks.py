"""A GX suite enforced in validate's one streaming pass, without Great Expectations.

``SuiteChecker`` is an observer of ``statistics.compute_statistics``: it sees every
batch once and keeps counts (plus disk spills for exact quantiles and uniqueness), so
memory does not grow with the data. ``finish`` gives one ``Outcome`` per expectation,
in suite order; each failure becomes an anomaly of the expectation's severity.

Semantics follow GX 1.24's pandas backend on the DataFrame ``pd.read_parquet`` gives: a
value is missing when it is null or NaN; ``mostly`` is the share of non-missing values (of
all rows for not-null) that must pass, and an expectation over no non-missing values
passes; bounds are floats, and true/false compare, average and rank as 1/0; value sets
match by Python equality; types are pandas dtypes (``gx_types``); quantiles are exact order
statistics (pandas' ``nearest`` by default) and pass within GX's relative tolerance of 1e-4
of a bound. What we do not follow is refused when the suite is read (date and text bounds,
``column_index`` 0, type names GX's pandas backend matches nowhere), or differs where pandas
goes beyond Arrow: set values for a timestamp column are read as ISO 8601 only, and decimals
compare with bounds as float64.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kfp_mlops.components.validate.checks import Anomaly
from kfp_mlops.components.validate.gx_rules import (
    MapCount,
    between_rule,
    comparable_with_set,
    compares_as_number,
    decoded,
    fmt,
    interval,
    mostly_holds,
    quantile_in_range,
    quantile_rank,
    set_rule,
    value_type,
    within,
)
from kfp_mlops.components.validate.gx_spill import QuantileSpill, SpillFolder, UniqueSpill, missing_mask
from kfp_mlops.components.validate.gx_suite import Expectation, ExpectationSuite
from kfp_mlops.components.validate.gx_types import pandas_column, type_verdict
from kfp_mlops.components.validate.statistics import DatasetStats

FIXES = {
    "expect_column_to_exist": "restore the column in the export, or correct its name (and position) in the suite",
    "expect_table_columns_to_match_set": "restore or drop the columns in the export, or update column_set in the suite",
    "expect_table_columns_to_match_ordered_list": "write the columns in the suite's order, or update column_list",
    "expect_column_values_to_be_of_type": "fix the column's type in the export, or the type in the suite",
    "expect_column_values_to_be_in_type_list": "fix the column's type in the export, or the type_list in the suite",
    "expect_column_values_to_not_be_null": "fill or drop the missing values, or lower mostly in the suite",
    "expect_column_values_to_be_between": "check units and the source for those values, or widen the bounds (or lower mostly) in the suite",
    "expect_column_values_to_be_in_set": "map those values to known ones, or add them to value_set in the suite",
    "expect_column_values_to_be_unique": "deduplicate the rows, or drop the expectation if repeats are allowed",
    "expect_compound_columns_to_be_unique": "deduplicate the rows, or add the column that tells them apart to column_list",
    "expect_table_row_count_to_be_between": "check the source and its filters (a partial export?), or the bounds in the suite",
    "expect_table_row_count_to_equal": "check the source and its filters (a partial export?), or the value in the suite",
    "expect_column_mean_to_be_between": "check the source for a shift (units, filters, population), or the bounds in the suite",
    "expect_column_quantile_values_to_be_between": "check the source for a shift (units, filters, population), or the value_ranges in the suite",
}


@dataclass(frozen=True)
class Outcome:
    """Whether one expectation held, what was seen, and where."""

    expectation: Expectation
    success: bool
    observed: str
    column: str
    fix: str = ""

    def anomaly(self) -> Anomaly:
        e = self.expectation
        return Anomaly(e.severity, e.type, self.column, f"expectation #{e.index + 1}: {self.observed}"[:2000], self.fix or FIXES[e.type])


class SuiteChecker:
    """Enforces a parsed suite on the batches of one pass over a dataset with ``schema``."""

    def __init__(self, suite: ExpectationSuite, schema: pa.Schema) -> None:
        self.suite = suite
        self.names = list(schema.names)
        self.types = {f.name: f.type for f in schema}
        # By position: a Parquet file may repeat a name, and a name then matches the first column, as in the statistics.
        self.positions = {name: i for i, name in reversed(list(enumerate(schema.names)))}
        self.rows = 0
        self.failed_early: dict[int, tuple[str, str]] = {}  # (observed, fix), decided from the schema alone
        self.maps: dict[int, MapCount] = {}
        self.missing: dict[int, int] = {}
        self.unusable: dict[int, int] = {}
        self.set_notes: dict[int, str] = {}
        self.type_missing: dict[int, int] = {}  # a type's pandas dtype depends on whether the column has nulls
        self.filtered: dict[int, int] = {}
        self.inf_signs: dict[str, list[int]] = {}
        self.quantiles: dict[str, QuantileSpill] = {}
        self._folder: SpillFolder | None = None
        self._unique: UniqueSpill | None = None
        for e in suite.expectations:
            self._plan(e)

    def _spill_folder(self) -> SpillFolder:
        if self._folder is None:
            self._folder = SpillFolder()
        return self._folder

    def _plan(self, e: Expectation) -> None:
        columns = e.kwargs["column_list"] if e.type == "expect_compound_columns_to_be_unique" else [e.kwargs["column"]] if "column" in e.kwargs else []
        if e.type == "expect_column_to_exist":
            return  # decided in finish, from the column names
        absent = [c for c in columns if c not in self.types]
        if absent:
            shown = self.names[:30]
            observed = f"column{'s' if len(absent) > 1 else ''} {', '.join(map(repr, absent))} not in the dataset (its columns: {shown}{' ...' if len(self.names) > 30 else ''})"
            self.failed_early[e.index] = (observed, FIXES["expect_column_to_exist"])
            return
        t = self.types[columns[0]] if columns else None
        kw = e.kwargs
        numeric_only = ("expect_column_values_to_be_between", "expect_column_mean_to_be_between", "expect_column_quantile_values_to_be_between")
        if e.type in numeric_only and not compares_as_number(t):
            observed = f"column {columns[0]!r} has type {t}: it has no numeric values to compare"
            self.failed_early[e.index] = (observed, "point the expectation at a numeric column, or fix the column's type in the export")
            return
        if e.type == "expect_column_values_to_be_between":
            self.maps[e.index] = MapCount(between_rule(kw["min_value"], kw["max_value"], kw["strict_min"], kw["strict_max"]))
        elif e.type == "expect_column_values_to_be_in_set":
            if not comparable_with_set(t):
                self.failed_early[e.index] = (
                    f"column {columns[0]!r} has type {t}: its values cannot be looked up in a value set",
                    "point the expectation at a column of numbers, text, true/false or dates",
                )
                return
            rule, self.unusable[e.index] = set_rule(t, kw["value_set"])
            self.maps[e.index] = MapCount(rule)
            if pa.types.is_date(value_type(t)):
                self.set_notes[e.index] = "; a date column holds Python dates in pandas, which no text or number in a JSON value set equals"
        elif e.type in ("expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list"):
            self.type_missing[e.index] = 0
        elif e.type == "expect_column_values_to_not_be_null":
            self.missing[e.index] = 0
        elif e.type in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
            if self._unique is None:
                self._unique = UniqueSpill(self._spill_folder().path)
            self.filtered[e.index] = 0
        elif e.type == "expect_column_mean_to_be_between" and pa.types.is_floating(value_type(t)):
            self.inf_signs.setdefault(columns[0], [0, 0])
        elif e.type == "expect_column_quantile_values_to_be_between" and columns[0] not in self.quantiles:
            self.quantiles[columns[0]] = QuantileSpill(self._spill_folder().path, f"q{len(self.quantiles)}", value_type(t))

    def observe(self, batch: pa.RecordBatch, total_rows: int) -> None:
        self.rows += batch.num_rows
        cache: dict[str, tuple[pa.Array, np.ndarray, pa.Array]] = {}

        def prepared(name: str) -> tuple[pa.Array, np.ndarray, pa.Array]:
            if name not in cache:
                column = decoded(batch.column(self.positions[name]))
                missing = missing_mask(column)
                cache[name] = (column, missing, column.filter(pa.array(~missing)) if missing.any() else column)
            return cache[name]

        for e in self.suite.expectations:
            i = e.index
            if i in self.failed_early:
                continue
            if i in self.maps:
                self.maps[i].update(prepared(e.kwargs["column"])[2])
            elif i in self.missing:
                self.missing[i] += int(prepared(e.kwargs["column"])[1].sum())
            elif i in self.type_missing:
                self.type_missing[i] += int(prepared(e.kwargs["column"])[1].sum())
            elif i in self.filtered and self._unique is not None:
                names = e.kwargs.get("column_list") or [e.kwargs["column"]]
                masks = np.array([prepared(n)[1] for n in names])
                rule = e.kwargs.get("ignore_row_if", "any_value_is_missing")
                ignored = masks.all(axis=0) if rule == "all_values_are_missing" else masks.any(axis=0) if rule == "any_value_is_missing" else np.zeros(batch.num_rows, dtype=bool)
                self.filtered[i] += int((~ignored).sum())
                self._unique.add(i, [prepared(n)[0] for n in names], ~ignored)
        for name, signs in self.inf_signs.items():
            present = prepared(name)[2]
            signs[0] += pc.sum(pc.equal(present, math.inf)).as_py() or 0
            signs[1] += pc.sum(pc.equal(present, -math.inf)).as_py() or 0
        for name, spill in self.quantiles.items():
            spill.add(prepared(name)[2])

    def finish(self, stats: DatasetStats) -> list[Outcome]:
        """One outcome per expectation, in suite order; removes the spills."""
        try:
            repeating = self._unique.rows_repeating() if self._unique is not None else {}
            return [self._outcome(e, stats, repeating) for e in self.suite.expectations]
        finally:
            self.close()

    def close(self) -> None:
        if self._unique is not None:
            self._unique.close()
        if self._folder is not None:
            self._folder.cleanup()

    def _outcome(self, e: Expectation, stats: DatasetStats, repeating: dict[int, int]) -> Outcome:
        if e.index in self.failed_early:
            observed, fix = self.failed_early[e.index]
            return Outcome(e, False, observed, e.column, fix)
        success, observed, column = _EVALUATORS[e.type](self, e, stats, repeating)
        return Outcome(e, success, observed, e.column if column is None else column)

    # --- one evaluator per type: (success, observed text, column to name or None for the expectation's own) ---

    def _exists(self, e: Expectation, stats: DatasetStats, _: dict) -> tuple[bool, str, str | None]:
        name, index = e.kwargs["column"], e.kwargs["column_index"]
        if name not in self.names:
            return False, f"column {name!r} not in the dataset (its columns: {self.names[:30]})", None
        at = self.names.index(name)
        if index is not None and at != index:
            return False, f"column {name!r} is at position {at}, the suite expects {index}", None
        return True, f"column {name!r} present", None

    def _match_set(self, e: Expectation, stats: DatasetStats, _: dict) -> tuple[bool, str, str | None]:
        expected, actual = set(e.kwargs["column_set"]), set(self.names)
        missing, extra = sorted(expected - actual), sorted(actual - expected) if e.kwargs["exact_match"] else []
        parts = ([f"missing {missing}"] if missing else []) + ([f"not in the set {extra}"] if extra else [])
        return not parts, "; ".join(parts) or "columns match", ",".join(missing + extra)

    def _ordered(self, e: Expectation, stats: DatasetStats, _: dict) -> tuple[bool, str, str | None]:
        expected = e.kwargs["column_list"]
        if expected == self.names:
            return True, "columns in order", ""
        pairs = list(itertools.zip_longest(expected, self.names))
        differ = [i for i, (want, found) in enumerate(pairs) if want != found]
        columns = sorted({c for i in differ for c in pairs[i] if c is not None})
        return False, f"columns are {self.names[:30]}; first difference at position {differ[0]}", ",".join(columns)

    def _type(self, e: Expectation, stats: DatasetStats, _: dict) -> tuple[bool, str, str | None]:
        one_name = e.type == "expect_column_values_to_be_of_type"
        wanted = [e.kwargs["type_"]] if one_name else e.kwargs["type_list"]
        t, missing = self.types[e.kwargs["column"]], self.type_missing[e.index]
        column = pandas_column(t, has_nulls=missing > 0)
        by_value, matches = type_verdict(wanted, column, one_name=one_name)
        expected = f"expected {wanted[0] if one_name else wanted}"
        if not by_value:
            return matches, f"type {t}, in pandas {column.dtype}{'' if matches else f'; {expected}'}", None
        present = self.rows - missing
        unexpected = 0 if matches else present
        ok = mostly_holds(present, unexpected, e.kwargs["mostly"])
        return ok, f"type {t}, in pandas {column.dtype} holding Python {column.values}: {unexpected:,} of {present:,} non-missing values not of a listed type; {expected}", None

    def _not_null(self, e: Expectation, stats: DatasetStats, _: dict) -> tuple[bool, str, str | None]:
        missing, rows = self.missing[e.index], self.rows
        ok = mostly_holds(rows, missing, e.kwargs["mostly"])
        share = missing / rows if rows else 0.0
        need = "" if e.kwargs["mostly"] == 1 else f" (mostly {e.kwargs['mostly']:g} allows {1 - e.kwargs['mostly']:.2%})"
        return ok, f"{missing:,} of {rows:,} values missing (null or NaN), {share:.2%}{need}", None

    def _map(self, e: Expectation, stats: DatasetStats, _: dict) -> tuple[bool, str, str | None]:
        count, kw = self.maps[e.index], e.kwargs
        ok = mostly_holds(count.considered, count.unexpected, kw["mostly"])
        if e.type == "expect_column_values_to_be_between":
            where = f"outside {interval(kw['min_value'], kw['max_value'], kw['strict_min'], kw['strict_max'])}"
        else:
            where = f"not in the set of {len(kw['value_set'])}"
            if self.unusable.get(e.index):
                where += f" ({self.unusable[e.index]} set value(s) are not of the column's type and can never match{self.set_notes.get(e.index, '')})"
        share = count.unexpected / count.considered if count.considered else 0.0
        need = "" if kw["mostly"] == 1 else f" (mostly {kw['mostly']:g} allows {1 - kw['mostly']:.2%})"
        examples = f", e.g. {', '.join(fmt(v) for v in count.examples)}" if count.examples else ""
        return ok, f"{count.unexpected:,} of {count.considered:,} non-missing values ({share:.2%}) {where}{need}{examples}", None

    def _unique_rows(self, e: Expectation, stats: DatasetStats, repeating: dict[int, int]) -> tuple[bool, str, str | None]:
        considered, repeated = self.filtered[e.index], repeating.get(e.index, 0)
        ok = mostly_holds(considered, repeated, e.kwargs["mostly"])
        what = "values" if e.type == "expect_column_values_to_be_unique" else "rows"
        return ok, f"{repeated:,} of {considered:,} {what} ({repeated / considered if considered else 0:.2%}) share their value with another row", None

    def _row_count(self, e: Expectation, stats: DatasetStats, _: dict) -> tuple[bool, str, str | None]:
        rows, kw = stats.rows, e.kwargs
        if e.type == "expect_table_row_count_to_equal":
            return rows == kw["value"], f"{rows:,} rows, the suite expects {kw['value']:,}", ""
        ok = within(rows, kw["min_value"], kw["max_value"], kw["strict_min"], kw["strict_max"])
        return ok, f"{rows:,} rows, the suite expects {interval(kw['min_value'], kw['max_value'], kw['strict_min'], kw['strict_max'])}", ""

    def _mean(self, e: Expectation, stats: DatasetStats, _: dict) -> tuple[bool, str, str | None]:
        name, kw = e.kwargs["column"], e.kwargs
        st = stats.column(name)
        mean = st.mean if st is not None and st.moment_count else None
        positive, negative = self.inf_signs.get(name, [0, 0])
        if positive or negative:
            mean = math.inf if not negative else -math.inf if not positive else None
        bounds = interval(kw["min_value"], kw["max_value"], kw["strict_min"], kw["strict_max"])
        if mean is None:
            return False, f"no mean (no values, or both +inf and -inf); the suite expects it in {bounds}", None
        return within(mean, kw["min_value"], kw["max_value"], kw["strict_min"], kw["strict_max"]), f"mean {mean:.6g}, the suite expects {bounds}", None

    def _quantiles(self, e: Expectation, stats: DatasetStats, _: dict) -> tuple[bool, str, str | None]:
        spill, kw = self.quantiles[e.kwargs["column"]], e.kwargs
        quantiles, ranges = kw["quantile_ranges"]["quantiles"], kw["quantile_ranges"]["value_ranges"]
        if spill.count == 0:
            return False, "no non-missing values, so no quantiles", None
        ranks = [quantile_rank(spill.count, q, kw["allow_relative_error"]) for q in quantiles]
        values = spill.order_statistics(ranks)
        failing = [(q, v, r) for q, v, r in zip(quantiles, values, ranges) if not quantile_in_range(v, r)]
        seen = ", ".join(f"q{q:g}={fmt(v)}" for q, v in zip(quantiles, values))
        if not failing:
            return True, f"exact quantiles {seen}", None
        wrong = "; ".join(f"quantile {q:g} is {fmt(v)}, outside {interval(r[0], r[1], False, False)}" for q, v, r in failing)
        return False, f"{wrong} (exact quantiles: {seen})", None


_EVALUATORS: dict[str, Callable[[SuiteChecker, Expectation, DatasetStats, dict[int, int]], tuple[bool, str, str | None]]] = {
    "expect_column_to_exist": SuiteChecker._exists,
    "expect_table_columns_to_match_set": SuiteChecker._match_set,
    "expect_table_columns_to_match_ordered_list": SuiteChecker._ordered,
    "expect_column_values_to_be_of_type": SuiteChecker._type,
    "expect_column_values_to_be_in_type_list": SuiteChecker._type,
    "expect_column_values_to_not_be_null": SuiteChecker._not_null,
    "expect_column_values_to_be_between": SuiteChecker._map,
    "expect_column_values_to_be_in_set": SuiteChecker._map,
    "expect_column_values_to_be_unique": SuiteChecker._unique_rows,
    "expect_compound_columns_to_be_unique": SuiteChecker._unique_rows,
    "expect_table_row_count_to_be_between": SuiteChecker._row_count,
    "expect_table_row_count_to_equal": SuiteChecker._row_count,
    "expect_column_mean_to_be_between": SuiteChecker._mean,
    "expect_column_quantile_values_to_be_between": SuiteChecker._quantiles,
}
