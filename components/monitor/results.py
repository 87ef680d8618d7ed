"""What one monitoring run finds, as plain typed records: the report, the metrics and the decision read them.

Everything here is JSON-able through ``to_dict`` so the summary across models, the
Markdown and the KFP ``Metrics`` are all drawn from the same objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

NUMERIC, CATEGORICAL = "numeric", "categorical"
ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Histogram:
    """Shares per display bin of the reference and the current data (for the per-column plots).

    Attributes:
        labels: Bin labels ("[0.1, 0.2)", a category, "other", "unseen").
        reference: Share of reference values per bin (sums to 1 over non-null values).
        current: Share of current values per bin.
    """

    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]


@dataclass(frozen=True)
class ColumnDrift:
    """The drift verdict of one column (or of the model's prediction).

    Attributes:
        column: Column name.
        kind: numeric or categorical (pinned from the model contract, never inferred per batch).
        method: ks, chisquare, z, wasserstein or jensenshannon (Evidently's choice by type and size, or the override).
        score: p-value (ks, chisquare, z) or distance (wasserstein normed by the reference std, jensenshannon).
        threshold: Drift when p <= / < threshold (tests) or distance >= threshold.
        drifted: The verdict.
        n_reference: Non-null, finite reference values.
        n_current: Non-null, finite current values.
        note: What else a reader should know (unseen categories, no values to compare).
        histogram: Reference and current shares for the plot.
    """

    column: str
    kind: str
    method: str
    score: float
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    note: str = ""
    histogram: Histogram | None = None


@dataclass(frozen=True)
class QualityFinding:
    """A data-quality problem of the current data against the reference.

    Attributes:
        column: Column name ("" for the whole table).
        check: missing_column, wrong_type, null_rate, all_null, out_of_range, new_category, constant, empty.
        severity: error (schema drift: the model cannot score these rows as trained) or warning.
        reference: The reference value of the checked quantity (a share, or NaN).
        current: The current value.
        message: One sentence for the report.
    """

    column: str
    check: str
    severity: str
    reference: float
    current: float
    message: str


@dataclass(frozen=True)
class PerformanceResult:
    """Model performance on the current data: estimated without labels, realized with them.

    Attributes:
        metric: accuracy, roc_auc, ...
        reference: The metric on the reference (held-out test) rows.
        estimated: Confidence-based estimate (NaN when the model gives no usable scores).
        lower: Lower end of the estimate's band (estimate - 3 standard errors, clipped to [0, 1]).
        upper: Upper end of the band.
        realized: The metric from joined labels (NaN when no labels arrived).
        n_labelled: Rows with a label.
        alert_below: Alert when the estimate (or the realized value) falls below this.
        alert: Whether it did.
        realized_alert: Whether the realized value raised it (enough labels, below alert_below); the
            estimate raised it when ``estimated < alert_below``. Reports colour the value that alerted.
    """

    metric: str
    reference: float
    estimated: float
    lower: float
    upper: float
    realized: float
    n_labelled: int
    alert_below: float
    alert: bool
    realized_alert: bool = False

    @property
    def estimate_alert(self) -> bool:
        return self.estimated < self.alert_below


@dataclass
class MonitorResult:
    """One model's monitoring run.

    Attributes:
        model_name: Registered model name.
        model_version: The version whose reference profile was used.
        source: Where the current data came from (a path, or the log sink and window), without credentials.
        n_rows: Current rows read.
        columns: Per-column drift of the model's inputs.
        prediction: Drift of the model's score (or predicted value), when it could be computed.
        quality: Data-quality findings.
        performance: Estimated and realized performance.
        drift_share: Share of input columns that drifted.
        drift_share_threshold: Dataset drift when drift_share >= this (Evidently's default 0.5).
        dataset_drift: drift_share >= drift_share_threshold.
        schema_drift: A model input is missing or has an incompatible type.
        drift_detected: Dataset drift, schema drift or prediction drift.
        retrain: Whether retraining is advised (dataset drift or a performance alert, and the schema intact).
        reasons: Why drift_detected / retrain are what they are, one sentence each.
        warnings: Things a reader should check.
        seconds: Time per phase.
        error: Why the model could not be monitored ("" when it was).
    """

    model_name: str
    model_version: str
    source: str
    n_rows: int
    columns: list[ColumnDrift] = field(default_factory=list)
    prediction: ColumnDrift | None = None
    quality: list[QualityFinding] = field(default_factory=list)
    performance: list[PerformanceResult] = field(default_factory=list)
    drift_share: float = 0.0
    drift_share_threshold: float = 0.5
    dataset_drift: bool = False
    schema_drift: bool = False
    drift_detected: bool = False
    retrain: bool = False
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    error: str = ""

    @property
    def failed(self) -> bool:
        """The model could not be monitored (no profile, unknown version, ...): the reasons say why."""
        return bool(self.error)

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
