"""KFP metric keys from user-given names (arms, models, columns): one rule for every report."""

from __future__ import annotations

import re


def metric_keys(names: list[str], fallback: str) -> list[str]:
    """Each name as [A-Za-z0-9_] (``fallback`` when nothing is left), in order; keys that collide get _2, _3, ..."""
    keys: list[str] = []
    for name in names:
        base = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or fallback
        key, suffix = base, 2
        while key in keys:
            key, suffix = f"{base}_{suffix}", suffix + 1
        keys.append(key)
    return keys
