"""KFP component: train a PyTorch tabular model (thin wrapper over ``core.train_model``)."""

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from kfp_mlops.components._shared.images import image


@dsl.component(base_image=image("train"), install_kfp_package=False)
def train(
    train: Input[Dataset],
    validation: Input[Dataset],
    test: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[HTML],
    label_column: str,
    exclude_columns: str = "",
    task: str = "auto",
    hidden_layers: str = "64,64",
    dropout: float = 0.1,
    batch_size: int = 256,
    max_epochs: int = 20,
    learning_rate: float = 0.001,
    weight_decay: float = 0.0001,
    patience: int = 3,
    seed: int = 7,
    gpu: str = "prefer",
    non_finite: str = "impute",
    early_stopping_metric: str = "",
    mlflow_tracking_uri: str = "",
    mlflow_experiment: str = "kfp-mlops",
    checkpoint_dir: str = "",
    kfp_run_id: str = "",
    kfp_task_id: str = "",
    hyperparameters: str = "",
):
    """Trains an MLP with embeddings on the train split, early-stopped on validation, evaluated on test; tracks the run in MLflow.

    Resumable: with checkpoint_dir on a volume that outlives the pod (a PVC mounted
    with kfp.kubernetes.mount_pvc), each epoch is checkpointed and a retried step
    (set_retry) continues from the last checkpoint; a retry also marks the MLflow run
    its killed attempt left RUNNING as KILLED. MLflow credentials come from the
    environment (MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN, from a
    Secret), never from parameters.

    Args:
        train: Training split (featurize output).
        validation: Validation split, for early stopping.
        test: Test split, for the reported metrics.
        model: Folder with model.pt2 (torch.export), preprocessing.json and kfp_mlops_model.json (the model contract: task, classes, features, file hashes, MLflow run); the contract is also in the metadata.
        metrics: Test metrics (accuracy, ROC AUC, F1, log loss; or RMSE, MAE, R2).
        classification_metrics: ROC curve and confusion matrix on the test split.
        report: HTML report with the learning curves.
        label_column: Column to predict.
        exclude_columns: Comma-separated columns that are not features (entity and timestamp keys).
        task: auto, binary, multiclass or regression.
        hidden_layers: Hidden layer sizes, comma-separated.
        dropout: Dropout after each hidden layer.
        batch_size: Rows per optimizer step.
        max_epochs: Upper bound on epochs.
        learning_rate: AdamW learning rate, halved when the validation metric stalls.
        weight_decay: AdamW weight decay.
        patience: Epochs without validation improvement before stopping.
        seed: Seed of initialization, shuffling and dropout (CPU runs are bit-for-bit reproducible).
        gpu: require, prefer or forbid a GPU (bf16 mixed precision on GPU).
        non_finite: impute (to the training mean) or error on NaN and infinite feature values.
        early_stopping_metric: Validation metric to stop on; empty for roc_auc, log_loss or rmse by task.
        mlflow_tracking_uri: MLflow tracking server (http://mlflow.kubeflow:5000) or an absolute sqlite:////path; empty for the step's MLFLOW_TRACKING_URI environment variable (the step fails at once when neither is set: a store inside the pod would be lost with it).
        mlflow_experiment: MLflow experiment name.
        checkpoint_dir: Where epoch checkpoints go, to resume a retried step: a path on a mounted volume; empty for scratch space that is discarded (no resume across pods).
        kfp_run_id: KFP run id, recorded as an MLflow tag.
        kfp_task_id: KFP task id, recorded as an MLflow tag.
        hyperparameters: JSON object overriding hidden_layers, learning_rate, batch_size, dropout, weight_decay or max_epochs (one sweep trial).
    """
    import os
    import tempfile
    from pathlib import Path

    from kfp_mlops.components._shared.entry import exit_on_error
    from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings, resolve_tracking_uri
    from kfp_mlops.components.train.core import TrainInputs, train_model, write_report
    from kfp_mlops.components.train.loop import TrainConfig, parse_hidden_layers

    with exit_on_error("train"):
        tracking_uri = resolve_tracking_uri(mlflow_tracking_uri, os.environ)
        if hyperparameters.strip():
            from kfp_mlops.components.sweep.core import parse_trial

            trial = parse_trial(hyperparameters)
            hidden_layers = trial.get("hidden_layers", hidden_layers)
            learning_rate = trial.get("learning_rate", learning_rate)
            batch_size = trial.get("batch_size", batch_size)
            dropout = trial.get("dropout", dropout)
            weight_decay = trial.get("weight_decay", weight_decay)
            max_epochs = trial.get("max_epochs", max_epochs)
        model_dir = Path(model.path)
        fingerprint = str(train.metadata.get("fingerprint", ""))
        tags = {"kfp.run_id": kfp_run_id, "kfp.task_id": kfp_task_id, "dataset.fingerprint": fingerprint}
        tracking = TrackingSettings(
            tracking_uri=tracking_uri,
            experiment=mlflow_experiment,
            tags=tuple((k, v) for k, v in tags.items() if v),
            attempt_key=kfp_task_id or model.uri,
        )
        with tempfile.TemporaryDirectory(prefix="checkpoints-") as scratch:
            result = train_model(
                TrainInputs(Path(train.path), Path(validation.path), Path(test.path), label_column, frozenset(filter(None, exclude_columns.split(","))), task, non_finite, fingerprint),
                TrainConfig(
                    hidden=parse_hidden_layers(hidden_layers),
                    dropout=dropout,
                    batch_size=batch_size,
                    max_epochs=max_epochs,
                    learning_rate=learning_rate,
                    weight_decay=weight_decay,
                    patience=patience,
                    seed=seed,
                    gpu=gpu,
                    early_stopping_metric=early_stopping_metric,
                ),
                model_dir=model_dir,
                tracking=tracking,
                checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else Path(scratch),
            )
        for name, value in result.test_metrics.items():
            metrics.log_metric(f"test_{name}", value)
        if result.roc is not None:
            classification_metrics.log_roc_curve(*result.roc)
        if result.confusion is not None:
            classification_metrics.log_confusion_matrix(result.preprocessing.classes, result.confusion)
        write_report(result, Path(report.path))
        model.metadata.update(result.contract.to_metadata())
        print(f"trained on {result.fit.device}: {len(result.fit.history)} epochs, {result.fit.samples_per_second:,.0f} samples/s, test {result.test_metrics}")
