"""KFP component: register the model in MLflow behind an evaluation gate (thin wrapper over ``core.register_model``)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from kfp_mlops.components._shared.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def register(
    model: Input[Model],
    test: Input[Dataset],
    report: Output[HTML],
    comparison: Output[Markdown],
    metrics: Output[Metrics],
    train: Input[Dataset] = None,
    label_column: str = "",
    model_name: str = "kfp-mlops-model",
    thresholds: str = "",
    promote: bool = True,
    mlflow_tracking_uri: str = "",
    replace_incomparable: bool = False,
    kfp_run_id: str = "",
) -> NamedTuple("RegisterOutputs", [("Output", bool), ("blessed", bool), ("version", str), ("aliases", str)]):
    """Evaluates the new model and the current @champion on the same test split, gates on thresholds, registers the new version as @challenger, and promotes it to @champion when blessed and asked to.

    Server credentials come from the environment (MLFLOW_TRACKING_USERNAME/PASSWORD or
    MLFLOW_TRACKING_TOKEN from a Secret), never from parameters.

    Args:
        model: The train step's model (its contract, in the metadata and the folder, names the MLflow run and the file hashes).
        test: Held-out test split, the same for both models.
        report: HTML comparison of both models, per metric, with the thresholds.
        comparison: The same comparison in Markdown.
        metrics: The new model's test metrics and the gate's verdict.
        train: The training split: the monitor's reference profile of the inputs is built from it (stored with the version); without it, from the test split.
        label_column: Label column of the test split; must be the model's label (empty: the model's).
        model_name: Registered model name.
        thresholds: JSON per metric: {"roc_auc": {"min": 0.7, "delta": 0.0}}; min/max bound the value, delta is the improvement required over the champion (relative: true for a share); each rule needs a finite bound, unknown keys and metrics are refused. Empty: the statistical gate, blessing only a model that beats chance with 95% confidence on the test split (ROC AUC, accuracy or RMSE interval) and, against a champion, only one a paired test on the same rows shows to be better (an equal model is not promoted).
        promote: Promote a blessed model to @champion now (the replaced champion becomes @previous); false leaves promotion to a rollout step.
        mlflow_tracking_uri: MLflow tracking URI; empty for the one the train step used (from the model contract), else the step's MLFLOW_TRACKING_URI.
        replace_incomparable: Allow replacing a champion that cannot be compared (trained on other inputs, label or classes); otherwise the gate fails naming both input sets.
        kfp_run_id: KFP run id, recorded as a version tag.

    Returns:
        Output: The same as blessed, under the name kfp.local's dsl.If resolves (branch on it).
        blessed: Whether the new model passed the gate (branch on it with dsl.If).
        version: The registered version.
        aliases: The aliases on that version after this step, comma-separated (challenger, and champion when promoted).
    """
    import os
    from collections import namedtuple
    from pathlib import Path

    from kfp_mlops import __version__
    from kfp_mlops.components._shared.atomic import write_text_atomic
    from kfp_mlops.components._shared.entry import exit_on_error
    from kfp_mlops.components._shared.errors import DataError
    from kfp_mlops.components._shared.mlflow_adapter import require_existing_store, resolve_tracking_uri
    from kfp_mlops.components._shared.model_artifact import ModelArtifact
    from kfp_mlops.components._shared.split_artifact import SplitInfo
    from kfp_mlops.components.register.core import check_model_name, comparison_html, comparison_markdown, comparison_text, register_model
    from kfp_mlops.components.register.gate import parse_thresholds
    from kfp_mlops.components.register.registry import Registry

    with exit_on_error("register"):
        check_model_name(model_name)
        gate_thresholds = parse_thresholds(thresholds)
        contract = ModelArtifact.from_metadata(model.metadata, where=model.uri)
        if label_column and label_column != contract.label:
            raise DataError(f"label_column {label_column!r} is not the model's label {contract.label!r}", fix="pass the label the model was trained on, or leave label_column empty")
        tracking_uri = resolve_tracking_uri(mlflow_tracking_uri or contract.tracking_uri, os.environ)
        require_existing_store(tracking_uri)
        result = register_model(
            Path(model.path),
            contract,
            Path(test.path),
            registry=Registry(tracking_uri),
            name=model_name,
            thresholds=gate_thresholds,
            promote=promote,
            replace_incomparable=replace_incomparable,
            reference_path=Path(train.path) if train is not None else None,
            tags={k: v for k, v in {"kfp.run_id": kfp_run_id, "kfp_mlops.version": __version__, **SplitInfo.from_metadata(test.metadata).lineage_tags()}.items() if v},
        )
        write_text_atomic(report.path, comparison_html(result))
        write_text_atomic(comparison.path, comparison_markdown(result))
        for name, value in result.new_metrics.items():
            metrics.log_metric(f"test_{name}", value)
        metrics.log_metric("blessed", 1.0 if result.gate.blessed else 0.0)
        print(comparison_text(result))
    outputs = namedtuple("RegisterOutputs", ["Output", "blessed", "version", "aliases"])
    return outputs(result.gate.blessed, result.gate.blessed, result.version.version, ",".join(result.aliases_after))
