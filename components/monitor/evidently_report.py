"""Evidently's own drift report, on a bounded sample, for readers who know it.

The verdicts come from our full-data tests; this page only shows Evidently's view of a
sample (its cost grows with rows, docs/monitor-research.md). Column types are pinned
from the model so Evidently chooses the same tests.
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa

from kfp_mlops.components.monitor.reference import ModelProfile
from kfp_mlops.components.monitor.results import NUMERIC


def evidently_html(profile: ModelProfile, current: pa.Table) -> str:
    """The HTML of ``Report([DataDriftPreset()])`` on the profile's reference sample and ``current`` (the model's inputs)."""
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    names = [n for n in profile.columns if n in current.schema.names and n in profile.sample]
    numeric = [n for n in names if profile.columns[n].kind == NUMERIC]
    categorical = [n for n in names if n not in numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    reference = pd.DataFrame({n: profile.sample[n] for n in names})
    frame = current.select(names).to_pandas()
    for name in categorical:  # categories compare as text on both sides, as our tests do
        reference[name] = reference[name].map(_text)
        frame[name] = frame[name].map(_text)
    for name in numeric:
        reference[name] = pd.to_numeric(reference[name], errors="coerce")
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(frame, data_definition=definition), Dataset.from_pandas(reference, data_definition=definition))
    return snapshot.get_html_str(as_iframe=False)


def _text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
