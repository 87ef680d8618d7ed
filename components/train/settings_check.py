"""Every setting of the training pipeline, checked before the first step reads data.

Without this, a typo in the gate thresholds or the deploy arms surfaced only after
training (minutes in, or an hour on a large table), and a bad split share only at
featurize. Each check is the one the step itself runs later (the same parser, the same
message), so the two can never disagree; all problems are reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfp_mlops.components._shared.errors import DataError, KfpMlopsError


@dataclass(frozen=True)
class TrainingSettings:
    """The training pipeline's parameters that a later step would otherwise check only when it runs."""

    split_fractions: str = "0.7,0.15,0.15"
    split: str = "auto"
    split_seed: int = 0
    hidden_layers: str = "128,128"
    max_epochs: int = 200
    learning_rate: float = 0.001
    batch_size: int = 256
    gpu: str = "prefer"
    model_name: str = "kfp-mlops-model"
    gate_thresholds: str = ""
    deploy_target: str = "none"
    deploy_arms: str = "champion=90,challenger=10"


def check_training_settings(settings: TrainingSettings) -> None:
    """Raise one ``DataError`` listing every problem (each with its fix); return when all settings can work."""
    from kfp_mlops.components.deploy.core import DeployRequest, check_request
    from kfp_mlops.components.featurize.splitting import check_split
    from kfp_mlops.components.featurize.training_set import parse_fractions
    from kfp_mlops.components.register.gate import parse_thresholds
    from kfp_mlops.components.register.registry import check_model_name
    from kfp_mlops.components.train.config import TrainConfig, parse_hidden_layers

    def train_config() -> None:
        TrainConfig(hidden=parse_hidden_layers(settings.hidden_layers), max_epochs=settings.max_epochs, learning_rate=settings.learning_rate, batch_size=settings.batch_size, gpu=settings.gpu)

    def deployment() -> None:
        if settings.deploy_target != "none":
            check_request(DeployRequest(model_name=settings.model_name, arms=settings.deploy_arms, target=settings.deploy_target))

    checks = {
        "split_fractions": lambda: parse_fractions(settings.split_fractions),
        "split": lambda: check_split(settings.split, settings.split_seed, "auto"),
        "training": train_config,
        "model_name": lambda: check_model_name(settings.model_name),
        "gate_thresholds": lambda: parse_thresholds(settings.gate_thresholds),
        "deployment": deployment,
    }
    problems = []
    for what, check in checks.items():
        try:
            check()
        except KfpMlopsError as exc:
            problems.append(f"{what}: {exc}")
    if problems:
        raise DataError(
            f"{len(problems)} training setting(s) cannot work; nothing was read or trained:\n- " + "\n- ".join(p.replace("\n", "\n  ") for p in problems),
            fix="fix the parameters named above and run again",
        )
