"""KFP components of a sweep: the trial list for a ParallelFor, and the choice of the best model."""

from typing import List

from kfp import dsl
from kfp.dsl import Input, Markdown, Model, Output

from kfp_mlops.components._shared.images import image


@dsl.component(base_image=image("data"), install_kfp_package=False)
def sweep_trials(search_space: str, strategy: str = "grid", samples: int = 8, seed: int = 0) -> list:
    """Expands a search space into trial settings, one dict per trial, for a ParallelFor.

    Args:
        search_space: JSON object of lists, e.g. {"learning_rate": [0.001, 0.003], "hidden_layers": ["64,64", "128,64"]}; tunable: hidden_layers, learning_rate, batch_size, dropout, weight_decay, max_epochs.
        strategy: grid (every combination) or random (a seeded sample).
        samples: How many trials random draws.
        seed: Seed of the random draw.

    Returns:
        The trials as JSON strings (each with every tunable hyperparameter), to pass to train's hyperparameters.
    """
    import json

    from kfp_mlops.components._shared.entry import exit_on_error
    from kfp_mlops.components.sweep.core import expand

    with exit_on_error("sweep_trials"):
        trials = expand(search_space, strategy=strategy, samples=samples, seed=seed)
        print(f"{len(trials)} trials: {trials}")
    return [json.dumps(t, sort_keys=True) for t in trials]


@dsl.component(base_image=image("data"), install_kfp_package=False)
def select_best(models: Input[List[Model]], best: Output[Model], leaderboard: Output[Markdown], metric: str = "roc_auc"):
    """Picks the trial model with the best validation metric (what a Katib experiment's best trial is) and copies it.

    Args:
        models: The trained models of every trial (their metadata holds the validation metrics).
        best: A copy of the best model, with its metadata and the winning trial's index.
        leaderboard: Markdown table of every trial, best first.
        metric: Validation metric to rank by: roc_auc, accuracy, f1, r2 (higher is better) or log_loss, rmse, mae.
    """
    import shutil

    from kfp_mlops.components._shared.atomic import atomic_path, write_text_atomic
    from kfp_mlops.components._shared.entry import exit_on_error
    from kfp_mlops.components._shared.markdown import md_table
    from kfp_mlops.components._shared.model_artifact import ModelArtifact
    from kfp_mlops.components.sweep.core import Candidate, rank

    with exit_on_error("select_best"):
        contracts = [ModelArtifact.from_metadata(m.metadata, where=m.uri) for m in models]
        ranked = rank([Candidate(i, dict(c.metrics)) for i, c in enumerate(contracts)], metric)
        winner = ranked[0][0].index
        with atomic_path(best.path) as tmp:
            shutil.copytree(models[winner].path, tmp)
        best.metadata.update({**contracts[winner].to_metadata(), "trial": winner, "selected_by": f"val_{metric}"})
        rows = [[str(c.index), f"{v:.4f}", str(contracts[c.index].details.get("hyperparameters", ""))] for c, v in ranked]
        leaderboard_text = f"# Sweep: best trial {winner} by validation {metric}\n\n" + md_table(["trial", f"val_{metric}", "hyperparameters"], rows) + "\n"
        write_text_atomic(leaderboard.path, leaderboard_text)
        print(leaderboard_text)
