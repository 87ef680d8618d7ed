"""Usage reporting of our dependencies stays off unless the user turned it on themselves.

MLflow 3.17 starts a request to its telemetry endpoint at import; Great Expectations, DVC
and NannyML have analytics of their own. The images set these in their ENV; the CLI, the
model server and the tests apply them before importing any of those libraries.
"""

from __future__ import annotations

import os

TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "GX_ANALYTICS_ENABLED": "false", "DVC_NO_ANALYTICS": "1", "NML_DISABLE_USAGE_LOGGING": "1"}


def telemetry_off() -> None:
    """Set every switch in this process's environment (children inherit it); a value the user set is kept."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
