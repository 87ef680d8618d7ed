"""Data-quality checks of the current data against the reference profile.

Schema checks run before any row is read: a model input that is missing, or that can no
longer be read as the model reads it, is schema drift (an error), reported per column.
Value checks read the sketches after the pass: nulls, values outside the reference range,
unseen categories, a column gone constant.
"""

from __future__ import annotations

import math

import pyarrow as pa

from kfp_mlops.components.monitor.current import ColumnSketch, is_numeric_type
from kfp_mlops.components.monitor.reference import ModelProfile
from kfp_mlops.components.monitor.results import CATEGORICAL, ERROR, NUMERIC, WARNING, QualityFinding

_NEW_CATEGORY_SHARE = 0.01


def schema_findings(profile: ModelProfile, schema: pa.Schema) -> list[QualityFinding]:
    found = []
    for name, column in profile.columns.items():
        index = schema.get_field_index(name)
        if index < 0:
            found.append(QualityFinding(name, "missing_column", ERROR, 1 - column.null_rate if column.rows else math.nan, 0.0, f"input {name!r} is missing from the current data"))
            continue
        data_type = schema.field(index).type
        if column.kind == NUMERIC and not (is_numeric_type(data_type) or pa.types.is_null(data_type)):
            found.append(
                QualityFinding(name, "wrong_type", ERROR, math.nan, math.nan, f"input {name!r} is {data_type} in the current data; the model reads it as a number ({column.dtype} in the reference)")
            )
    return found


def value_findings(sketches: dict[str, ColumnSketch], settings, rows: int) -> list[QualityFinding]:
    """Findings from the sketches; ``settings`` is the monitor's MonitorSettings."""
    if not rows:
        return [QualityFinding("", "empty", WARNING, math.nan, 0.0, "the current data has no rows")]
    found = []
    for name, sketch in sketches.items():
        profile = sketch.profile
        reference_nulls, current_nulls = profile.null_rate, 1 - sketch.count / sketch.rows
        if not sketch.count:
            found.append(QualityFinding(name, "all_null", ERROR, reference_nulls, 1.0, f"input {name!r} has no values in the current data (all null)"))
            continue
        if current_nulls - reference_nulls > settings.null_rate_increase:
            found.append(QualityFinding(name, "null_rate", WARNING, reference_nulls, current_nulls, f"input {name!r} is null in {current_nulls:.1%} of rows (reference {reference_nulls:.1%})"))
        if profile.kind == NUMERIC:
            share = sketch.outside / sketch.count
            if share > settings.out_of_range_share:
                found.append(QualityFinding(name, "out_of_range", WARNING, 0.0, share, f"{share:.1%} of {name!r} lies outside the reference range [{profile.minimum:.4g}, {profile.maximum:.4g}]"))
            if sketch.nonfinite:
                found.append(QualityFinding(name, "nonfinite", WARNING, 0.0, sketch.nonfinite / sketch.rows, f"input {name!r} has {sketch.nonfinite} NaN or infinite values"))
            if sketch.minimum == sketch.maximum and profile.minimum != profile.maximum:
                found.append(QualityFinding(name, "constant", WARNING, math.nan, sketch.minimum, f"input {name!r} is constant ({sketch.minimum:.4g}) in the current data"))
        if profile.kind == CATEGORICAL and sketch.unseen:
            share = sum(sketch.unseen.values()) / sketch.count
            if share > _NEW_CATEGORY_SHARE:
                examples = ", ".join(repr(k[:40]) for k in list(sketch.unseen)[:5])
                found.append(QualityFinding(name, "new_category", WARNING, 0.0, share, f"{share:.1%} of {name!r} are categories the reference never had ({examples})"))
        if profile.kind == CATEGORICAL and len(sketch.counts) + len(sketch.unseen) == 1 and len(profile.counts) > 1:
            only = next(iter(sketch.counts or sketch.unseen))
            found.append(QualityFinding(name, "constant", WARNING, math.nan, math.nan, f"input {name!r} is constant ({only[:40]!r}) in the current data"))
    return found
