"""Monitor deployed kfp-mlops models on Kubeflow Pipelines every day, scheduled by Airflow.

One task submits ``compiled/monitoring.yaml`` (drift, data quality and performance of the
registered model on current data; retraining when advised) and waits for the run; it fails,
naming the failed step, unless the run succeeded.

Set where the day's data is: ``KFP_MLOPS_MONITORING_SOURCE_URI`` in the DAG processor's
environment (the default of the ``source_uri`` param), or ``source_uri`` when triggering.
``KFP_MLOPS_MONITORING_SCHEDULE`` replaces the daily schedule (a cron expression or preset).
The cluster comes from the Airflow Connection ``kfp_default`` (see kfp_submit.py).
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, Param
from kfp_submit import KfpPipelineRunOperator, run_params

PIPELINE_PARAMS = ("source_uri", "model_name", "model_version", "mlflow_tracking_uri")

with DAG(
    dag_id="kfp_mlops_monitoring",
    description="Submit the kfp-mlops monitoring pipeline to Kubeflow Pipelines on a schedule and wait for it",
    doc_md=__doc__,
    schedule=os.environ.get("KFP_MLOPS_MONITORING_SCHEDULE", "@daily"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    # Missed days are not worth a backlog of runs on today's data: the next run looks at what is current.
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=10)},
    tags=["kfp-mlops", "kubeflow", "monitoring"],
    params={
        "source_uri": Param(os.environ.get("KFP_MLOPS_MONITORING_SOURCE_URI", ""), type="string", description="current data to monitor (prediction logs or a table with labels)"),
        "model_name": Param(None, type=["null", "string"], description="registered model to monitor (default: the pipeline's, kfp-mlops-model)"),
        "model_version": Param(None, type=["null", "string"], description="version or alias (default: champion)"),
        "mlflow_tracking_uri": Param(None, type=["null", "string"], description="MLflow tracking server (default: the compiled one)"),
        **run_params("monitoring"),
    },
) as dag:
    KfpPipelineRunOperator(task_id="run_monitoring_pipeline", pipeline="monitoring", forwarded=PIPELINE_PARAMS)
