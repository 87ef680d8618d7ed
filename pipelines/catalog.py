"""Every component and pipeline the project ships, by name (the compile and run commands walk these)."""

from __future__ import annotations

import importlib
from typing import Any

COMPONENTS = {
    "ingest": "kfp_mlops.components.ingest.component:ingest",
    "validate": "kfp_mlops.components.validate.component:validate",
    "featurize": "kfp_mlops.components.featurize.component:featurize",
    "train": "kfp_mlops.components.train.component:train",
    "train_distributed": "kfp_mlops.components.distributed.component:train_distributed",
    "register": "kfp_mlops.components.register.component:register",
    "deploy": "kfp_mlops.components.deploy.component:deploy",
    "analyze_experiment": "kfp_mlops.components.abtest.component:analyze_experiment",
    "simulate_traffic": "kfp_mlops.components.abtest.component:simulate_traffic",
    "check_rollout": "kfp_mlops.components.abtest.component:check_rollout",
    "monitor_models": "kfp_mlops.components.monitor.component:monitor_models",
    "sweep_trials": "kfp_mlops.components.sweep.component:sweep_trials",
    "select_best": "kfp_mlops.components.sweep.component:select_best",
}
PIPELINES = {
    "training": "kfp_mlops.pipelines.training:training",
    "sweep": "kfp_mlops.pipelines.sweep:sweep",
    "deploy": "kfp_mlops.pipelines.deploy:deploy",
    "rollout": "kfp_mlops.pipelines.rollout:rollout",
    "monitoring": "kfp_mlops.pipelines.monitoring:monitoring",
}


def load(ref: str) -> Any:
    """Import ``module:attribute``."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def component(name: str) -> Any:
    return load(COMPONENTS[name])


def pipeline(name: str) -> Any:
    return load(PIPELINES[name])
