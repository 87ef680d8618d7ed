"""The sweep pipeline: ingest, validate, featurize once; train one model per trial in a ParallelFor; keep the best."""

from kfp import dsl

from kfp_mlops.components.sweep.component import select_best, sweep_trials
from kfp_mlops.pipelines.steps import prepare_training_data, train_on

PARALLEL_TRIALS = 4  # trials trained at the same time; ParallelFor needs it at compile time


@dsl.pipeline(name="sweep", description="Hyperparameter sweep: one training task per trial in parallel, then the best model by a validation metric (Katib's job, in plain KFP).")
def sweep(
    source_uri: str,
    label_column: str = "label",
    task: str = "auto",
    entity_column: str = "auto",
    timestamp_column: str = "auto",
    feature_spec: str = "",
    exclude_columns: str = "",
    accept_leaks: str = "",
    split: str = "auto",
    split_seed: int = 0,
    search_space: str = '{"learning_rate": [0.001, 0.003], "hidden_layers": ["64,64", "128,64"]}',
    strategy: str = "grid",
    samples: int = 4,
    metric: str = "roc_auc",
    gpu: str = "prefer",
    mlflow_tracking_uri: str = "",
):
    """Trains one model per trial setting and keeps the best.

    Args:
        source_uri: Training data: local path, file://, http(s)://, gs:// or s3:// file, prefix or glob, or dvc://REPO#PATH@REV (a DVC-tracked file at a git revision).
        label_column: Label column to predict.
        task: auto, binary, multiclass or regression; auto picks regression for a numeric label with more than 50 distinct values (counts included), else classification.
        entity_column: Entity key column; auto: entity_id if the data has it, else a generated row_id (one entity per row); empty: always a generated row_id.
        timestamp_column: Event time column (timestamps, dates, ISO text, or integer years read as 1 January UTC); auto: event_timestamp if the data has it, else none; empty: none (the rows are then split at random).
        feature_spec: Feature spec JSON; empty for a default over all columns.
        exclude_columns: Comma-separated columns that are not features (e.g. ones only known after the fact); validate does not check them for leaks.
        accept_leaks: Comma-separated columns allowed to predict the label almost perfectly; validate refuses such a column (label_leak) otherwise.
        split: auto (by time when the data has an event time, else at random), time, or random; a random split is stratified by the label for classification.
        split_seed: Seed of a random split (same data and seed, same splits).
        search_space: JSON object of lists over hidden_layers, learning_rate, batch_size, dropout, weight_decay, max_epochs.
        strategy: grid (every combination) or random (a seeded sample of `samples` trials).
        samples: Trials drawn by the random strategy.
        metric: Validation metric that picks the best trial.
        gpu: require, prefer or forbid a GPU for training.
        mlflow_tracking_uri: MLflow tracking server, e.g. http://mlflow.kubeflow:5000 (credentials from the MLflow Secret); empty for the steps' MLFLOW_TRACKING_URI environment variable. Required on a cluster: a store inside a pod is lost with it. `kfp-mlops run` fills in a local sqlite database.
    """
    prepared = prepare_training_data(
        source_uri=source_uri,
        label_column=label_column,
        entity_column=entity_column,
        timestamp_column=timestamp_column,
        file_format="",
        csv_delimiter=",",
        csv_encoding="utf-8",
        column_types="",
        fail_on_severity="error",
        feature_spec=feature_spec,
        feature_registry="",
        online_store="",
        split_fractions="0.7,0.15,0.15",
        split=split,
        split_seed=split_seed,
        task=task,
        accept_leaks=accept_leaks,
        exclude_columns=exclude_columns,
    )
    trials = sweep_trials(search_space=search_space, strategy=strategy, samples=samples)
    with dsl.ParallelFor(trials.output, parallelism=PARALLEL_TRIALS) as trial:
        trained = train_on(prepared, label_column=label_column, gpu=gpu, mlflow_tracking_uri=mlflow_tracking_uri, resumable=False, hyperparameters=trial)
    select_best(models=dsl.Collected(trained.outputs["model"]), metric=metric)
