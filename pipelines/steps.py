"""Task groups shared by the pipelines (called inside @dsl.pipeline bodies at compile time)."""

from kfp import dsl

from kfp_mlops.components.featurize.component import featurize
from kfp_mlops.components.ingest.component import ingest
from kfp_mlops.components.train.component import train
from kfp_mlops.components.validate.component import validate
from kfp_mlops.pipelines.platform import with_feature_store_credentials, with_mlflow_credentials, with_storage_credentials


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
) -> tuple[dsl.PipelineTask, dsl.PipelineTask]:
    """ingest -> validate -> featurize; returns the ingest and featurize tasks."""
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
        task=task,
    ).after(validated)
    with_feature_store_credentials(featurized)
    return ingested, featurized


def train_on(featurized: dsl.PipelineTask, ingested: dsl.PipelineTask, *, label_column, task, gpu, mlflow_tracking_uri, **hyperparameters) -> dsl.PipelineTask:
    """A train task on featurize's splits, the entity column excluded, lineage ids and MLflow credentials set."""
    splits = featurized.outputs
    trained = train(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        label_column=label_column,
        task=task,
        exclude_columns=ingested.outputs["entity_column"],
        gpu=gpu,
        mlflow_tracking_uri=mlflow_tracking_uri,
        kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        kfp_task_id=dsl.PIPELINE_TASK_ID_PLACEHOLDER,
        **hyperparameters,
    )
    return with_mlflow_credentials(trained)
