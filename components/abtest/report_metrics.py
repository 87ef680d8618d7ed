"""The flat KFP metrics of an A/B analysis, and the per-arm facts that its tables show too."""

from __future__ import annotations

import math

import numpy as np

from kfp_mlops.components._shared.metric_keys import metric_keys
from kfp_mlops.components.abtest.analysis import PRIMARY, AnalysisResult
from kfp_mlops.components.abtest.logs import ArmData


def last_value(values: np.ndarray | float) -> float:
    array = np.asarray(values, dtype=float)
    return float(array.reshape(-1)[-1]) if array.size else float("nan")


def arm_names(result: AnalysisResult) -> list[str]:
    """Control first, then the design's arms, then any arm seen only in the log."""
    names = [result.settings.control, *result.srm.expected_shares, *result.srm.counts, *result.data.arms]
    return list(dict.fromkeys(names))


def arm_metric(arm: ArmData | None) -> float:
    if arm is None or last_value(arm.metric.n) <= 0:
        return float("nan")
    if arm.metric.has_ratio:
        den = last_value(arm.metric.den_sum)
        return last_value(arm.metric.sum) / den if den else float("nan")
    return last_value(arm.metric.mean)


def arm_facts(arm: ArmData | None) -> dict[str, float]:
    if arm is None:
        return {"units": 0.0, "requests": 0.0, "error_rate": float("nan"), "mean_latency_ms": float("nan"), "p95_latency_ms": float("nan"), "awaiting": 0.0}
    requests = last_value(arm.requests)
    return {
        "units": last_value(arm.units),
        "requests": requests,
        "error_rate": last_value(arm.errors) / requests if requests > 0 else float("nan"),
        "mean_latency_ms": last_value(arm.latency.mean),
        "p95_latency_ms": arm.p95_latency_ms if last_value(arm.latency.n) > 0 else float("nan"),
        "awaiting": float(arm.awaiting_outcome),
    }


def metrics(result: AnalysisResult) -> dict[str, float]:
    """Flat numeric metrics for KFP's Metrics artifact; only finite values, keys in [A-Za-z0-9_].

    Args:
        result: The analysis.

    Returns:
        e.g. srm_chi_square_p, units_<arm>, <metric>_<arm>, effect_<challenger>,
        adjusted_p_<challenger>, guardrail_latency_effect_<challenger>, units_needed.
    """
    names = arm_names(result)
    key = dict(zip(names, metric_keys(names, "arm")))
    out: dict[str, float] = {
        "srm_chi_square_p": result.srm.chi_square_p,
        "srm_sequential_p": result.srm.sequential_p,
        "srm_mismatch": float(result.srm.mismatch),
        f"decision_{result.decision.action}": 1.0,
        "family_size": float(result.family_size),
    }
    for name in names:
        arm = result.data.arms.get(name)
        facts = arm_facts(arm)
        out[f"units_{key[name]}"] = facts["units"]
        out[f"{result.settings.metric}_{key[name]}"] = arm_metric(arm)
        out[f"requests_{key[name]}"] = facts["requests"]
        out[f"error_rate_{key[name]}"] = facts["error_rate"]
        out[f"mean_latency_ms_{key[name]}"] = facts["mean_latency_ms"]
        out[f"p95_latency_ms_{key[name]}"] = facts["p95_latency_ms"]
    for c in result.comparisons:
        arm_key = key.get(c.challenger) or metric_keys([c.challenger], "arm")[0]
        prefix = "" if c.role == PRIMARY else f"guardrail_{c.metric}_"
        values = {"p_value": c.p_value, "adjusted_p": c.adjusted_p, "significant": float(c.significant)}
        if c.role == PRIMARY or c.metric != result.settings.metric:  # the primary's harm test shares its interval
            values.update(effect=c.effect, lower=c.lower, upper=c.upper)
        out.update({f"{prefix}{name}_{arm_key}": value for name, value in values.items()})
    if result.power is not None:
        p = result.power
        out.update(mde=p.mde, units_needed=p.units_needed, units_needed_sequential=p.units_needed_sequential, units_so_far=p.units_so_far, remaining_s=p.remaining_s)
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and math.isfinite(v)}
