"""KFP component: monitor registered models for drift, data quality and performance (thin wrapper over ``monitor.run``)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from kfp_mlops.components._shared.images import image


@dsl.component(base_image=image("serve"), install_kfp_package=False)
def monitor_models(
    report: Output[HTML],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    evidently_report: Output[HTML],
    current: Input[Dataset] = None,
    model_names: str = "kfp-mlops-model",
    model_tag: str = "",
    model_version: str = "champion",
    log_sink: str = "",
    window_hours: float = 24.0,
    window_end: str = "",
    column_methods: str = "",
    drift_share: float = 0.5,
    min_rows: int = 100,
    score_with_model: bool = True,
    evidently_sample_rows: int = 5000,
    evidently_parity: bool = False,
    mlflow_tracking_uri: str = "",
) -> NamedTuple("MonitorOutputs", [("Output", bool), ("retrain", bool), ("drift_detected", bool)]):
    """Compares current data with each model's reference profile (stored with the registered version at register): per-column drift with Evidently's tests and verdicts, data quality, prediction drift, performance estimated without labels (confidence-based, as NannyML's CBPE) and realized from labels.

    Current data is a Dataset (the ingest output; a label column gives realized performance) or,
    when log_sink is set, each model's prediction logs over a time window joined with their feedback.

    Args:
        report: One HTML page: a summary across models, then per model the verdict, per-column drift with plots, data quality and performance.
        summary: The same summary in Markdown.
        metrics: Drift share, drifted columns, per-column scores and estimated performance (prefixed by model name when several).
        evidently_report: Evidently's own drift report on a bounded sample of the first model's data (evidently_sample_rows rows of each side), for readers who know it.
        current: Current data as Parquet; not needed with log_sink.
        model_names: Registered models to watch, comma-separated.
        model_tag: Also watch every registered model with this tag, as key=value (e.g. team=fraud); empty for none.
        model_version: The version to compare with: an alias (champion, challenger) or a number.
        log_sink: Prediction log of the model server (local folder, s3:// or gs:// prefix); empty to use current.
        window_hours: With log_sink: read predictions from this many hours before window_end.
        window_end: With log_sink: end of the window, ISO 8601 with a timezone; empty for now.
        column_methods: JSON per column overriding the drift test: {"age": "ks"} or {"age": {"method": "wasserstein", "threshold": 0.2}}; methods ks, chisquare (two-sample), chisquare_evidently, z, wasserstein, jensenshannon.
        drift_share: Dataset drift when at least this share of a model's inputs drifted.
        min_rows: Below this many current rows no retraining is advised.
        score_with_model: Load each model (hash-checked, no code run) to score a Dataset without a score column, for prediction drift and the performance estimate.
        evidently_sample_rows: Rows per side of the Evidently report; 0 skips it.
        evidently_parity: Reproduce Evidently's verdicts exactly, its one-sample chi-square included (which flags about 30% of same-distribution halves and any unseen category); the default uses the calibrated two-sample chi-square where Evidently picks chi-square.
        mlflow_tracking_uri: MLflow tracking URI (credentials from the MLflow Secret); empty for the step's MLFLOW_TRACKING_URI.

    Returns:
        Output: Whether retraining is advised for any model (the same as retrain; named Output so dsl.If evaluates it on every KFP runner, kfp.local included).
        retrain: Dataset drift or a performance alert, on inputs the model still gets, with at least min_rows rows.
        drift_detected: Dataset, schema or prediction drift, or an input with no values, for any model.
    """
    import os
    from collections import namedtuple

    from kfp_mlops.components._shared.entry import exit_on_error
    from kfp_mlops.components.monitor.run import MonitorRequest, run_monitor

    with exit_on_error("monitor"):
        outcome = run_monitor(
            MonitorRequest(
                current_path=current.path if current is not None else "",
                model_names=model_names,
                model_tag=model_tag,
                model_version=model_version,
                log_sink=log_sink,
                window_hours=window_hours,
                window_end=window_end,
                column_methods=column_methods,
                drift_share=drift_share,
                min_rows=min_rows,
                score_with_model=score_with_model,
                evidently_sample_rows=evidently_sample_rows,
                evidently_parity=evidently_parity,
                mlflow_tracking_uri=mlflow_tracking_uri,
            ),
            environment=dict(os.environ),
            report_path=report.path,
            summary_path=summary.path,
            evidently_path=evidently_report.path,
        )
        for key, value in outcome.metrics.items():
            metrics.log_metric(key, value)
        print(outcome.text)
    outputs = namedtuple("MonitorOutputs", ["Output", "retrain", "drift_detected"])
    return outputs(outcome.retrain, outcome.retrain, outcome.drift_detected)
