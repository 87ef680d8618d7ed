"""The monitoring pipeline: prepare current data as training does, monitor it, retrain and gate when needed."""

from kfp import dsl

from kfp_mlops.components.monitor.component import monitor_models
from kfp_mlops.pipelines import catalog, training  # noqa: F401 - training is defined before this pipeline nests it
from kfp_mlops.pipelines.platform import with_mlflow_credentials
from kfp_mlops.pipelines.steps import prepare_training_data


@dsl.pipeline(
    name="monitoring",
    description="Ingest, validate and featurize current data as training did, compare it with the registered models' reference profiles (drift, data quality, prediction drift, estimated and realized performance), and when retraining is advised run the training pipeline, whose gate registers and promotes a better model.",
)
def monitoring(
    source_uri: str,
    label_column: str = "label",
    model_name: str = "kfp-mlops-model",
    model_version: str = "champion",
    column_methods: str = "",
    drift_share: float = 0.5,
    min_rows: int = 100,
    evidently_sample_rows: int = 5000,
    retrain: bool = True,
    file_format: str = "",
    fail_on_severity: str = "error",
    exclude_columns: str = "",
    accept_leaks: str = "",
    feature_spec: str = "",
    split_fractions: str = "0.7,0.15,0.15",
    hidden_layers: str = "128,128",
    max_epochs: int = 200,
    gpu: str = "prefer",
    mlflow_tracking_uri: str = "",
):
    """Monitors a registered model on current data and retrains on need.

    The current data needs the label column (realized performance, and retraining). It is
    featurized as training does; the monitor reads the earliest 98% of its rows (featurize
    keeps the newest 2% as validation and test splits). For unlabelled data or the model
    server's logs, use the monitor_models component.

    Args:
        source_uri: Current data (with the training data's columns; a label column gives realized performance and is needed to retrain): local path, file://, http(s)://, gs:// or s3://, or dvc://REPO#PATH@REV.
        label_column: Label column.
        model_name: The registered model to watch (and to retrain).
        model_version: The version to compare with: an alias (champion) or a number.
        column_methods: JSON per column overriding the drift test, e.g. {"age": {"method": "ks", "threshold": 0.01}}.
        drift_share: Dataset drift when at least this share of a model's inputs drifted.
        min_rows: Below this many current rows no retraining is advised.
        evidently_sample_rows: Rows per side of Evidently's own report; 0 skips it.
        retrain: Retrain when advised; false only reports.
        file_format: csv, parquet or jsonl; empty to detect from the extension.
        fail_on_severity: Stop before monitoring when a data anomaly is at least this severe: error, warning, info or never.
        exclude_columns: Comma-separated columns that are not features (as in training).
        accept_leaks: Comma-separated columns allowed to predict the label almost perfectly (as in training).
        feature_spec: Feature spec JSON, the same as training's (empty: the default over all columns).
        split_fractions: Train, validation and test shares of the retraining run.
        hidden_layers: Hidden layer sizes of the retrained MLP.
        max_epochs: Upper bound on the retraining epochs.
        gpu: require, prefer or forbid a GPU for retraining.
        mlflow_tracking_uri: MLflow tracking server (credentials from the MLflow Secret); empty for the steps' MLFLOW_TRACKING_URI. `kfp-mlops run` fills in the local store.
    """
    # The current rows get the training features the same way (almost all rows in the first split).
    prepared = prepare_training_data(
        source_uri=source_uri,
        label_column=label_column,
        entity_column="auto",
        timestamp_column="auto",
        file_format=file_format,
        csv_delimiter=",",
        csv_encoding="utf-8",
        column_types="",
        fail_on_severity=fail_on_severity,
        feature_spec=feature_spec,
        feature_registry="",
        online_store="",
        split_fractions="0.98,0.01,0.01",
        split="auto",
        split_seed=0,
        task="auto",
        accept_leaks=accept_leaks,
        exclude_columns=exclude_columns,
    )
    watched = monitor_models(
        current=prepared.featurized.outputs["train"],
        model_names=model_name,
        model_version=model_version,
        column_methods=column_methods,
        drift_share=drift_share,
        min_rows=min_rows,
        evidently_sample_rows=evidently_sample_rows,
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    with_mlflow_credentials(watched)
    with dsl.If(retrain == True):  # noqa: E712 - a pipeline condition, not a Python comparison
        with dsl.If(watched.outputs["Output"] == True):  # noqa: E712
            # The training pipeline built with the options this one is built with.
            catalog.pipeline("training")(
                source_uri=source_uri,
                label_column=label_column,
                file_format=file_format,
                fail_on_severity=fail_on_severity,
                exclude_columns=exclude_columns,
                accept_leaks=accept_leaks,
                feature_spec=feature_spec,
                split_fractions=split_fractions,
                hidden_layers=hidden_layers,
                max_epochs=max_epochs,
                gpu=gpu,
                mlflow_tracking_uri=mlflow_tracking_uri,
                model_name=model_name,
            )
