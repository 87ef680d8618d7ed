"""Import Feast without the two costs featurize never uses (about 4 s of its 6 s import on 2 cores).

- Feast's classes are ``@typeguard.typechecked``: at import, typeguard re-parses and
  re-compiles a whole module per decorated method (``feast.on_demand_feature_view``
  alone takes over a second). typeguard itself skips this under ``python -O``; here it
  is skipped for Feast's import only, without turning off the asserts of everything
  else. Feast's behaviour is unchanged: the checks only re-raise argument type errors,
  and featurize builds every Feast object from an already validated spec.
- ``feast.torch_wrapper`` imports PyTorch eagerly for tensor outputs featurize never asks
  for (the features image does not even hold torch). torch is hidden during the import
  only when nothing in the process has imported it yet; Feast then reports it
  unavailable, as in that image.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType
from typing import Any

_lock = threading.Lock()


def import_feast() -> ModuleType:
    """``import feast``, the first time without typeguard's instrumentation or torch."""
    with _lock:
        if "feast" in sys.modules:
            return sys.modules["feast"]
        import typeguard

        checked = typeguard.typechecked
        hide_torch = "torch" not in sys.modules
        typeguard.typechecked = _unchecked
        if hide_torch:
            sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
        try:
            return importlib.import_module("feast")
        finally:
            typeguard.typechecked = checked
            if hide_torch and sys.modules.get("torch", 0) is None:
                del sys.modules["torch"]


def _unchecked(target: Any = None, **_options: Any) -> Any:
    """``typeguard.typechecked`` as it is under ``python -O``: the target unchanged."""
    return target if target is not None else _unchecked
