"""Evidently's own drift report, on a bounded sample, for readers who know it.

The verdicts come from our full-data tests; this page only shows Evidently's view of a
sample (its cost grows with rows, docs/monitor-research.md). Column types are pinned
from the model so Evidently chooses the same tests.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
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
    shown = {n: _inert(n) for n in names}
    numeric = [shown[n] for n in names if profile.columns[n].kind == NUMERIC]
    categorical = [shown[n] for n in names if profile.columns[n].kind != NUMERIC]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    reference = pd.DataFrame({shown[n]: profile.sample[n] for n in names})
    frame = current.select(names).to_pandas().rename(columns=shown)
    for name in categorical:  # categories compare as text on both sides, as our tests do
        reference[name] = reference[name].map(_text)
        frame[name] = frame[name].map(_text)
    for name in numeric:
        reference[name] = pd.to_numeric(reference[name], errors="coerce").astype(float).replace([np.inf, -np.inf], np.nan)
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float).replace([np.inf, -np.inf], np.nan)
    # Evidently raises on a column with no values on one side; our report covers those columns.
    empty = [c for c in reference.columns if not reference[c].notna().any() or not frame[c].notna().any()]
    if empty:
        reference, frame = reference.drop(columns=empty), frame.drop(columns=empty)
        definition = DataDefinition(numerical_columns=[c for c in numeric if c not in empty], categorical_columns=[c for c in categorical if c not in empty])
    snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(frame, data_definition=definition), Dataset.from_pandas(reference, data_definition=definition))
    return snapshot.get_html_str(as_iframe=False)


def _text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _inert(str(value))


def _inert(text: str) -> str:
    """Text that cannot close Evidently's inline <script>: its page embeds values as unescaped JSON."""
    return text.replace("<", "\uff1c").replace(">", "\uff1e")
