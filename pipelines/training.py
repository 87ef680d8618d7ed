"""The training pipeline: ingest, validate, featurize, train, register behind an evaluation gate, deploy a blessed version as the challenger."""

from kfp import dsl

from kfp_mlops.components.deploy.component import deploy
from kfp_mlops.components.register.component import register
from kfp_mlops.components.train.component import check_training
from kfp_mlops.pipelines.platform import serving_arguments, with_mlflow_credentials
from kfp_mlops.pipelines.steps import prepare_training_data, train_on


@dsl.pipeline(
    name="training",
    description="Ingest a dataset, validate it, build point-in-time correct features with Feast, train a PyTorch model tracked in MLflow, register it if it beats the champion, and deploy a blessed version as the challenger at a first canary weight.",
)
def training(
    source_uri: str,
    label_column: str = "label",
    task: str = "auto",
    entity_column: str = "auto",
    timestamp_column: str = "auto",
    file_format: str = "",
    csv_delimiter: str = ",",
    csv_encoding: str = "utf-8",
    column_types: str = "",
    fail_on_severity: str = "error",
    exclude_columns: str = "",
    accept_leaks: str = "",
    feature_spec: str = "",
    feature_registry: str = "",
    online_store: str = "",
    split_fractions: str = "0.7,0.15,0.15",
    split: str = "auto",
    split_seed: int = 0,
    categorical_columns: str = "",
    numeric_columns: str = "",
    hidden_layers: str = "128,128",
    max_epochs: int = 200,
    learning_rate: float = 0.001,
    batch_size: int = 256,
    gpu: str = "prefer",
    mlflow_tracking_uri: str = "",
    model_name: str = "kfp-mlops-model",
    gate_thresholds: str = "",
    promote: bool = True,
    replace_incomparable: bool = False,
    deploy_target: str = "none",
    deploy_arms: str = "champion=90,challenger=10",
    deploy_namespace: str = "",
    log_sink: str = "",
    local_state_dir: str = "",
):
    """Ingests, validates and featurizes training data, then trains a model.

    Args:
        source_uri: Training data: local path, file://, http(s)://, gs:// or s3:// file, prefix or glob, or dvc://REPO#PATH@REV (a DVC-tracked file at a git revision).
        label_column: Label column to predict.
        task: auto, binary, multiclass or regression; auto picks regression for a numeric label with more than 50 distinct values (counts included), else classification.
        entity_column: Entity key column; auto: entity_id if the data has it, else a generated row_id (one entity per row); empty: always a generated row_id.
        timestamp_column: Event time column (timestamps, dates, ISO text, or integer years read as 1 January UTC); auto: event_timestamp if the data has it, else none; empty: none (the rows are then split at random).
        file_format: csv, parquet or jsonl; empty to detect from the extension.
        csv_delimiter: CSV field delimiter.
        csv_encoding: Text encoding of CSV files.
        column_types: JSON object forcing CSV column types, e.g. {"zip": "string", "day": "date", "at": "timestamp"}.
        fail_on_severity: Stop the run when a data anomaly is at least this severe: error, warning, info or never.
        exclude_columns: Comma-separated columns that are not features (e.g. ones only known after the fact); validate does not check them for leaks.
        accept_leaks: Comma-separated columns allowed to predict the label almost perfectly; validate refuses such a column (label_leak) otherwise.
        feature_spec: Feature spec JSON (passthrough columns, window aggregates, ttl); empty for a default over all columns.
        feature_registry: Feast registry: empty for one inside the feature repo artifact, gs:// or s3:// path, or postgresql+psycopg://user@host/db.
        online_store: Feast online store: empty for sqlite inside the feature repo artifact, or redis://host:port.
        split_fractions: Train, validation and test shares (of the label time range, or of the rows for a random split), comma-separated.
        split: auto (by time when the data has an event time, else at random), time, or random; a random split is stratified by the label for classification.
        split_seed: Seed of a random split (same data and seed, same splits).
        categorical_columns: Columns to treat as categorical whatever their type (comma-separated or a JSON list); empty: text columns and integer columns with 3 to 32 values that are not counts.
        numeric_columns: Number columns to treat as numeric even when the rule would make them categorical.
        hidden_layers: Hidden layer sizes of the MLP, comma-separated.
        max_epochs: Upper bound on training epochs; the learning rate decays over them (early stopping on validation usually ends sooner).
        learning_rate: AdamW learning rate.
        batch_size: Rows per optimizer step.
        gpu: require, prefer or forbid a GPU for training.
        mlflow_tracking_uri: MLflow tracking server, e.g. http://mlflow.kubeflow:5000 (credentials from the MLflow Secret); empty for the steps' MLFLOW_TRACKING_URI environment variable. Required on a cluster: a store inside a pod is lost with it. `kfp-mlops run` fills in a local sqlite database.
        model_name: Registered model name in the MLflow Model Registry.
        gate_thresholds: Evaluation gate per metric, e.g. {"roc_auc": {"min": 0.7, "delta": 0.0}}; empty: the statistical gate (beats chance, and the champion on the same rows, with 95% confidence; an equal model is not promoted).
        promote: Promote a blessed model to @champion right away (the old one becomes @previous).
        replace_incomparable: Let this model replace a champion that cannot be compared with it (trained on other inputs, label or classes); otherwise such a champion is kept and the gate fails naming both input sets. Usually another table wants its own model_name instead.
        deploy_target: Where a blessed version goes as the challenger: none, local, kserve, seldon or seldon-v2 (`kfp-mlops run` picks local). With promote true it is the champion too and is served alone; the rollout pipeline then gates a challenger.
        deploy_arms: The first canary step, champion and challenger weights (arms naming the same version are served once).
        deploy_namespace: Kubernetes namespace of the deployment; empty for the step's.
        log_sink: Where the model servers log predictions (s3://, gs:// or a shared folder) for the A/B analysis and monitoring; empty: off on a cluster, under local_state_dir locally.
        local_state_dir: deploy_target local: folder of the deployment's processes and logs (`kfp-mlops run` fills it in).
    """
    checked = check_training(
        split_fractions=split_fractions,
        split=split,
        split_seed=split_seed,
        hidden_layers=hidden_layers,
        max_epochs=max_epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        gpu=gpu,
        model_name=model_name,
        gate_thresholds=gate_thresholds,
        deploy_target=deploy_target,
        deploy_arms=deploy_arms,
    )
    prepared = prepare_training_data(
        source_uri=source_uri,
        label_column=label_column,
        entity_column=entity_column,
        timestamp_column=timestamp_column,
        file_format=file_format,
        csv_delimiter=csv_delimiter,
        csv_encoding=csv_encoding,
        column_types=column_types,
        fail_on_severity=fail_on_severity,
        feature_spec=feature_spec,
        feature_registry=feature_registry,
        online_store=online_store,
        split_fractions=split_fractions,
        split=split,
        split_seed=split_seed,
        task=task,
        accept_leaks=accept_leaks,
        exclude_columns=exclude_columns,
    )
    prepared.ingested.after(checked)
    trained = train_on(
        prepared,
        label_column=label_column,
        gpu=gpu,
        mlflow_tracking_uri=mlflow_tracking_uri,
        hidden_layers=hidden_layers,
        max_epochs=max_epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        categorical_columns=categorical_columns,
        numeric_columns=numeric_columns,
    ).set_retry(num_retries=2)
    registered = register(
        model=trained.outputs["model"],
        test=prepared.featurized.outputs["test"],
        train=prepared.featurized.outputs["train"],
        label_column=label_column,
        model_name=model_name,
        thresholds=gate_thresholds,
        promote=promote,
        replace_incomparable=replace_incomparable,
        mlflow_tracking_uri=mlflow_tracking_uri,
        kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    ).set_retry(num_retries=2)
    with_mlflow_credentials(registered)
    with dsl.If(deploy_target != "none", name="deploy-enabled"):
        with dsl.If(registered.outputs["Output"] == True, name="blessed"):  # noqa: E712 - a pipeline condition
            deployed = deploy(
                model_name=model_name,
                arms=deploy_arms,
                target=deploy_target,
                mlflow_tracking_uri=mlflow_tracking_uri,
                namespace=deploy_namespace,
                log_sink=log_sink,
                local_state_dir=local_state_dir,
                merge_same_version=True,
                **serving_arguments(),
            ).set_caching_options(False)
            with_mlflow_credentials(deployed)
