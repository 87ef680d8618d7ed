"""The gate's decision: statistical by default, the user's point thresholds when given.

Default (no thresholds): bless only when the new model beats chance with 95% confidence
on the test split (binary: ROC AUC's lower bound above 0.5; multiclass: accuracy's lower
bound above the majority class's share; regression: a paired bootstrap shows its RMSE
below the constant predictor's), and, when there is a champion, only when a paired
comparison on the same rows shows an improvement (the interval's lower end above 0): an
equal model is not promoted. With thresholds, their min/max/delta rules decide.

Either way a champion that cannot be compared (other inputs, label or classes, files that
no longer match their hashes) is never replaced silently: the gate fails naming why,
unless the user asks for the replacement (``replace_incomparable``).
"""

from __future__ import annotations

import numpy as np

from kfp_mlops.components.register import stats
from kfp_mlops.components.register.evaluate import Scored
from kfp_mlops.components.register.gate import Check, GateResult, Threshold, decide


def statistical_checks(new: Scored, champion: Scored | None) -> list[Check]:
    checks: list[Check] = []
    if new.task == "binary":
        chance = stats.auc_interval(new.y, new.predictions)
        checks.append(Check("roc_auc", "beats chance", chance.estimate, None, 0.5, chance.low > 0.5, f"{chance.method} 95% CI {chance.text()}"))
        if champion is not None:
            gain = stats.auc_difference(new.y, new.predictions, champion.predictions)
            checks.append(Check("roc_auc", "beats champion", new.metrics["roc_auc"], champion.metrics["roc_auc"], 0.0, gain.low > 0, f"{gain.method} 95% CI of the gain {gain.text()}"))
    elif new.task == "multiclass":
        correct = new.predictions.argmax(axis=1) == new.y
        majority = float(np.bincount(new.y.astype(np.int64)).max() / len(new.y))
        accuracy = stats.share_interval(correct)
        checks.append(Check("accuracy", "beats chance", accuracy.estimate, None, majority, accuracy.low > majority, f"95% CI {accuracy.text()} vs the majority class's share"))
        if champion is not None:
            gain = stats.share_interval(correct.astype(np.float64) - (champion.predictions.argmax(axis=1) == new.y))
            checks.append(Check("accuracy", "beats champion", new.metrics["accuracy"], champion.metrics["accuracy"], 0.0, gain.low > 0, f"paired 95% CI of the gain {gain.text()}"))
    else:
        constant = np.full_like(new.y, new.constant, dtype=np.float64)
        gain = stats.rmse_difference(new.y, constant, new.predictions)
        checks.append(Check("rmse", "beats a constant", new.metrics["rmse"], None, 0.0, gain.low > 0, f"{gain.method} 95% CI of the RMSE saved over the training mean {gain.text()}"))
        if champion is not None:
            gain = stats.rmse_difference(new.y, champion.predictions, new.predictions)
            checks.append(Check("rmse", "beats champion", new.metrics["rmse"], champion.metrics["rmse"], 0.0, gain.low > 0, f"{gain.method} 95% CI of the RMSE saved {gain.text()}"))
    return checks


def gate(new: Scored, champion: Scored | None, *, had_champion: bool, thresholds: list[Threshold], incomparable_reason: str = "", replace_incomparable: bool = False) -> GateResult:
    """The decision, with every check it made."""
    comparable = champion is not None
    if thresholds:
        result = decide(new.metrics, champion.metrics if comparable else ({} if had_champion else None), thresholds, comparable=comparable or not had_champion)
        checks = list(result.checks)
    else:
        checks = statistical_checks(new, champion)
    against = "champion" if comparable else ("incomparable champion" if had_champion else "no champion")
    if had_champion and not comparable:
        note = incomparable_reason + (
            "; replaced as asked (replace_incomparable)"
            if replace_incomparable
            else "; kept: if this is another model, give it its own name (--model-name); to replace the champion anyway, pass replace_incomparable=true (--replace-incomparable true)"
        )
        checks.append(Check("inputs", "comparable champion", float("nan"), None, 0.0, replace_incomparable, note))
    return GateResult(blessed=all(c.passed for c in checks), checks=checks, against=against)
