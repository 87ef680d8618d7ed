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
    key_columns: str = "",
    task: str = "auto",
    hidden_layers: str = "128,128",
    dropout: float = 0.1,
    batch_size: int = 256,
    max_epochs: int = 200,
    learning_rate: float = 0.001,
    weight_decay: float = 0.0001,
    patience: int = 0,
    seed: int = 7,
    gpu: str = "prefer",
    non_finite: str = "impute",
    early_stopping_metric: str = "",
    categorical_columns: str = "",
    numeric_columns: str = "",
    numeric_embedding: str = "piecewise",
    numeric_bins: int = 32,
    ensemble_size: int = 0,
    lr_schedule: str = "cosine",
    mlflow_tracking_uri: str = "",
    mlflow_experiment: str = "kfp-mlops",
    checkpoint_dir: str = "",
    kfp_run_id: str = "",
    kfp_task_id: str = "",
    hyperparameters: str = "",
):
    """Trains a tabular network (numerical and categorical embeddings, a TabM ensemble MLP) on the train split, early-stopped on validation, evaluated on test; tracks the run in MLflow.

    Integer columns with 3 to 32 distinct training values (hour, weekday, codes) are
    categorical unless their name reads like a count (num_, _count, qty, age, year,
    ...); text columns are categorical; other numbers are numeric. The choice per
    column is in preprocessing.json and the report, and categorical_columns /
    numeric_columns override it.

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
        exclude_columns: Comma-separated columns that are not features (e.g. ones only known after the fact); each must exist.
        key_columns: Comma-separated entity and timestamp keys: never features, may be absent from the splits (a featurize split names its own keys in its metadata).
        task: auto, binary, multiclass or regression; auto takes the task a featurize split carries (resolved by validate on the whole dataset), else decides on the train split.
        hidden_layers: Hidden layer sizes, comma-separated.
        dropout: Dropout after each hidden layer.
        batch_size: Rows per optimizer step; a training split of fewer than 8 batches uses batches of 1/8 of its rows (at least 16).
        max_epochs: Upper bound on epochs; the cosine learning-rate decay spans them, so more epochs train longer and decay slower.
        learning_rate: AdamW peak learning rate (linear warm-up over the first epoch, then lr_schedule).
        weight_decay: AdamW weight decay.
        patience: Epochs without validation improvement before stopping; the best epoch's weights are kept. 0 (auto): 16, or fewer on a large training split (about 1,000 optimizer steps' worth, at least 4 epochs).
        seed: Seed of initialization, shuffling and dropout (CPU runs are bit-for-bit reproducible).
        gpu: require, prefer or forbid a GPU (bf16 mixed precision on GPU).
        non_finite: impute (to the training mean) or error on NaN and infinite feature values.
        early_stopping_metric: Validation metric to stop on; empty for roc_auc, log_loss or rmse by task.
        categorical_columns: Columns to treat as categorical whatever their type: a JSON list or comma-separated names; empty for the automatic rule.
        numeric_columns: Number columns to treat as numeric even when the rule would make them categorical: a JSON list or comma-separated names.
        numeric_embedding: piecewise (piecewise-linear encoding over quantile bins of the training split), periodic (PLR) or none (standardized values as they are).
        numeric_bins: Quantile bins per numeric feature for the piecewise embedding (2 to 256); a small training split gets fewer (at least 16 rows per bin).
        ensemble_size: Members of the TabM ensemble (shared weights, per-member adapters, predictions averaged); 1 for a plain MLP; 0 (auto): 8 up to 10,000 training rows, a plain MLP above (it scores the same there, several times faster).
        lr_schedule: cosine (decay to 5% over max_epochs) or constant, after the warm-up.
        mlflow_tracking_uri: MLflow tracking server (http://mlflow.kubeflow:5000) or an absolute sqlite:////path; empty for the step's MLFLOW_TRACKING_URI environment variable (the step fails at once when neither is set: a store inside the pod would be lost with it).
        mlflow_experiment: MLflow experiment name.
        checkpoint_dir: Where epoch checkpoints go (in a subfolder per KFP run), to resume a retried step: a path on a mounted volume; empty for scratch space that is discarded (no resume across pods).
        kfp_run_id: KFP run id, recorded as an MLflow tag.
        kfp_task_id: KFP task id, recorded as an MLflow tag.
        hyperparameters: JSON object overriding hidden_layers, learning_rate, batch_size, dropout, weight_decay or max_epochs (one sweep trial).
    """
    import os
    import re
    import tempfile
    from pathlib import Path

    from kfp_mlops.components._shared.entry import exit_on_error
    from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings, resolve_tracking_uri
    from kfp_mlops.components._shared.split_artifact import SplitInfo
    from kfp_mlops.components.train.core import TrainInputs, train_model, write_report
    from kfp_mlops.components.train.loop import TrainConfig, parse_hidden_layers
    from kfp_mlops.components.train.preprocessing import parse_columns

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
        split = SplitInfo.from_metadata(train.metadata)
        fingerprint = split.fingerprint
        if task.strip().lower() == "auto" and split.task:
            task = split.task  # resolved by validate on the whole dataset, not re-decided on this split
        tags = {"kfp.run_id": kfp_run_id, "kfp.task_id": kfp_task_id, **split.lineage_tags()}
        tracking = TrackingSettings(
            tracking_uri=tracking_uri,
            experiment=mlflow_experiment,
            tags=tuple((k, v) for k, v in tags.items() if v),
            attempt_key=kfp_task_id or model.uri,
        )
        with tempfile.TemporaryDirectory(prefix="checkpoints-") as scratch:
            result = train_model(
                TrainInputs(
                    Path(train.path),
                    Path(validation.path),
                    Path(test.path),
                    label_column,
                    frozenset(parse_columns(exclude_columns, "exclude_columns")),
                    task,
                    non_finite,
                    fingerprint,
                    categorical_columns=parse_columns(categorical_columns, "categorical_columns"),
                    numeric_columns=parse_columns(numeric_columns, "numeric_columns"),
                    keys=split.keys | frozenset(filter(None, (k.strip() for k in key_columns.split(",")))),
                ),  # fmt: skip
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
                    numeric_embedding=numeric_embedding,
                    numeric_bins=numeric_bins,
                    ensemble_size=ensemble_size,
                    lr_schedule=lr_schedule,
                ),
                model_dir=model_dir,
                tracking=tracking,
                # One folder per KFP run: runs sharing a checkpoint volume never resume each other's epochs.
                checkpoint_dir=(Path(checkpoint_dir) / re.sub(r"[^A-Za-z0-9_.-]", "_", kfp_run_id or "run")) if checkpoint_dir else Path(scratch),
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


@dsl.component(base_image=image("train"), install_kfp_package=False)
def check_training(
    split_fractions: str = "0.7,0.15,0.15",
    split: str = "auto",
    split_seed: int = 0,
    hidden_layers: str = "128,128",
    max_epochs: int = 200,
    learning_rate: float = 0.001,
    batch_size: int = 256,
    gpu: str = "prefer",
    model_name: str = "kfp-mlops-model",
    gate_thresholds: str = "",
    deploy_target: str = "none",
    deploy_arms: str = "champion=90,challenger=10",
):
    """Checks every training setting that a later step would check only when it runs (split shares, network and optimizer, model name, gate thresholds, deploy target and arms), before any data is read; lists every problem at once.

    Args:
        split_fractions: Train, validation and test shares, comma-separated.
        split: auto, time or random.
        split_seed: Seed of a random split.
        hidden_layers: Hidden layer sizes of the MLP, comma-separated.
        max_epochs: Upper bound on training epochs.
        learning_rate: AdamW learning rate.
        batch_size: Rows per optimizer step.
        gpu: require, prefer or forbid.
        model_name: Registered model name.
        gate_thresholds: register's evaluation gate per metric (JSON), empty for the statistical gate.
        deploy_target: none, local, kserve, seldon or seldon-v2.
        deploy_arms: The first canary step's weights, e.g. champion=90,challenger=10.
    """
    settings = dict(locals())
    from kfp_mlops.components._shared.entry import exit_on_error

    with exit_on_error("check_training"):
        from kfp_mlops.components.train.settings_check import TrainingSettings, check_training_settings

        check_training_settings(TrainingSettings(**settings))
        print("training settings checked: nothing is wrong before reading data")
