"""Task groups shared by the pipelines (called inside @dsl.pipeline bodies at compile time)."""

from typing import Any, NamedTuple

from kfp import dsl

from kfp_mlops.components.featurize.component import featurize
from kfp_mlops.components.ingest.component import ingest
from kfp_mlops.components.train.component import train
from kfp_mlops.components.validate.component import validate
from kfp_mlops.pipelines.platform import checkpoint_dir, on_training_nodes, with_feature_store_credentials, with_mlflow_credentials, with_storage_credentials


class PreparedData(NamedTuple):
    """The tasks that prepared the training data, and the user's column exclusions."""

    ingested: dsl.PipelineTask
    validated: dsl.PipelineTask
    featurized: dsl.PipelineTask
    exclude_columns: Any


def prepare_training_data(
    *,
    source_uri,
    label_column,
    entity_column,
    timestamp_column,
    file_format,
    csv_delimiter,
    csv_encoding,
    column_types,
    fail_on_severity,
    feature_spec,
    feature_registry,
    online_store,
    split_fractions,
    split,
    split_seed,
    task,
    accept_leaks,
    exclude_columns,
) -> "PreparedData":
    """ingest -> validate -> featurize."""
    ingested = ingest(
        source_uri=source_uri,
        file_format=file_format,
        csv_delimiter=csv_delimiter,
        csv_encoding=csv_encoding,
        column_types=column_types,
        entity_column=entity_column,
        timestamp_column=timestamp_column,
    )
    with_storage_credentials(ingested)
    validated = validate(
        dataset=ingested.outputs["dataset"],
        label_column=label_column,
        entity_column=ingested.outputs["entity_column"],
        timestamp_column=ingested.outputs["timestamp_column"],
        fail_on_severity=fail_on_severity,
        task=task,
        accept_leaks=accept_leaks,
        exclude_columns=exclude_columns,
    )
    featurized = featurize(
        dataset=ingested.outputs["dataset"],
        entity_column=ingested.outputs["entity_column"],
        timestamp_column=ingested.outputs["timestamp_column"],
        label_column=label_column,
        feature_spec=feature_spec,
        registry=feature_registry,
        online_store=online_store,
        split_fractions=split_fractions,
        split=split,
        split_seed=split_seed,
        # Decided once, by validate, on the whole dataset: a time split's training rows
        # alone can make a count label look like classes.
        task=validated.outputs["resolved_task"],
    )
    with_feature_store_credentials(featurized)
    return PreparedData(ingested, validated, featurized, exclude_columns)


def train_on(prepared: PreparedData, *, label_column, gpu, mlflow_tracking_uri, resumable: bool = True, **hyperparameters) -> dsl.PipelineTask:
    """A train task on featurize's splits (which carry the task validate resolved and the keys), the user's exclusions left out, lineage ids, MLflow credentials, GPUs and placement set; checkpoints on the cluster's checkpoint volume when ``resumable`` and one is configured."""
    splits = prepared.featurized.outputs
    trained = train(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        label_column=label_column,
        # The task and the keys travel in the splits' metadata (SplitInfo), not as task
        # outputs: kfp.local replaces every task-output input of a ParallelFor body with
        # the loop item, so a sweep's trials would get the trial settings as their task.
        exclude_columns=prepared.exclude_columns,
        gpu=gpu,
        mlflow_tracking_uri=mlflow_tracking_uri,
        kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        kfp_task_id=dsl.PIPELINE_TASK_ID_PLACEHOLDER,
        **({"checkpoint_dir": checkpoint_dir()} if resumable and checkpoint_dir() else {}),
        **hyperparameters,
    )
    return on_training_nodes(with_mlflow_credentials(trained))
