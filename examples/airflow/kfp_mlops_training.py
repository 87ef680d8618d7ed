"""Train with kfp-mlops on Kubeflow Pipelines, triggered from Airflow.

One task submits ``compiled/training.yaml`` (ingest, validate, featurize, train, register and,
when blessed, deploy) and waits for the run; it fails, naming the failed step, unless the run
succeeded. Trigger it with config, e.g.
``{"source_uri": "gs://bucket/churn.csv", "model_name": "churn", "pipeline_parameters": {"max_epochs": 50}}``.

The cluster comes from the Airflow Connection ``kfp_default`` (see kfp_submit.py).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param
from kfp_submit import KfpPipelineRunOperator, run_params

PIPELINE_PARAMS = ("source_uri", "model_name", "mlflow_tracking_uri")

with DAG(
    dag_id="kfp_mlops_training",
    description="Submit the kfp-mlops training pipeline to Kubeflow Pipelines and wait for it",
    doc_md=__doc__,
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    # Two trainings of one model racing to register and promote would decide by timing, not quality.
    max_active_runs=1,
    # A failed run fails the task at once (kfp_submit.PipelineRunFailed); an unreachable API or a wait
    # that timed out gets one more try, which follows the run the first try started (still going: waits for it;
    # ended meanwhile: takes its outcome) rather than start another.
    default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=5)},
    tags=["kfp-mlops", "kubeflow", "training"],
    params={
        "source_uri": Param(type="string", minLength=1, description="data to train on, as the cluster reads it (gs://, s3://, https://)"),
        "model_name": Param(None, type=["null", "string"], description="registered model name (default: the pipeline's, kfp-mlops-model)"),
        "mlflow_tracking_uri": Param(None, type=["null", "string"], description="MLflow tracking server (default: the compiled one)"),
        **run_params("training"),
    },
) as dag:
    KfpPipelineRunOperator(task_id="run_training_pipeline", pipeline="training", forwarded=PIPELINE_PARAMS)
