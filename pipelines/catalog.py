"""Every component and pipeline the project ships, by name (the compile and run commands walk these)."""

from __future__ import annotations

import importlib
from typing import Any

COMPONENTS = {
    "ingest": "kfp_mlops.components.ingest.component:ingest",
    "validate": "kfp_mlops.components.validate.component:validate",
    "featurize": "kfp_mlops.components.featurize.component:featurize",
    "train": "kfp_mlops.components.train.component:train",
    "check_training": "kfp_mlops.components.train.component:check_training",
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


# Pipelines that run others as nested pipelines: those are built first, because kfp refuses
# to define a pipeline while another one is being defined.
NESTED = {"monitoring": ("training",)}
_BUILT: dict[tuple[str, str], Any] = {}


def pipeline(name: str, options: Any = None) -> Any:
    """The pipeline ``name``, built with ``options`` (a ClusterOptions; None: the options being built with now, else the defaults)."""
    from kfp_mlops.pipelines.options import ClusterOptions, active, building_with

    base = load(PIPELINES[name])
    options = active() if options is None else options
    if options == ClusterOptions():
        return base
    key = (name, options.key())
    if key not in _BUILT:
        from kfp import dsl

        for nested in NESTED.get(name, ()):
            pipeline(nested, options)
        # @dsl.pipeline builds the graph when it runs, so building the same function again
        # under other options gives a pipeline whose tasks carry those options.
        with building_with(options):
            _BUILT[key] = dsl.pipeline(name=base.name, description=base.description, pipeline_config=base.pipeline_config)(base.pipeline_func)
    return _BUILT[key]
