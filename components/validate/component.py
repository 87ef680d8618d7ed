"""KFP component: validate a dataset (thin wrapper over ``core.validate``)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from kfp_mlops.components._shared.images import image


@dsl.component(base_image=image("data"), install_kfp_package=False)
def validate(
    dataset: Input[Dataset],
    schema: Output[Artifact],
    statistics: Output[Artifact],
    anomalies: Output[Artifact],
    report: Output[HTML],
    metrics: Output[Metrics],
    resolved_task: dsl.OutputPath(str),
    reference_schema: Input[Artifact] = None,
    label_column: str = "",
    entity_column: str = "",
    timestamp_column: str = "",
    key_columns: str = "",
    fail_on_severity: str = "error",
    max_domain_size: int = 100,
    min_class_share: float = 0.01,
    task: str = "auto",
    accept_leaks: str = "",
    exclude_columns: str = "",
    skew_threshold: float = 0.1,
):
    """Infers a schema from a dataset, or checks the dataset against a given schema, and reports anomalies.

    Fails the step, listing every anomaly, when one reaches fail_on_severity.

    Args:
        dataset: Parquet dataset (the ingest output).
        schema: The schema as JSON (inferred, or the reference schema passed through; inferred when the reference is an expectation suite); edit and reuse it as reference_schema.
        statistics: Per-column statistics as JSON.
        anomalies: The anomalies found, as a JSON list with severity, column, message and fix.
        report: HTML report of statistics and anomalies.
        metrics: Rows, columns, anomaly counts, missing-cell share, duplicate keys.
        resolved_task: The task the label calls for (binary, multiclass or regression; empty without a label), decided on the whole dataset so that later steps do not re-decide it on one split.
        reference_schema: Schema JSON to check against (e.g. the training schema, to catch serving skew), or a Great Expectations 1.x expectation suite JSON (suite.to_json_dict()) whose expectations are enforced in the same pass, each failure an anomaly of the expectation's severity (an expectation type or option kfp-mlops does not enforce is refused before the data is read); omit to infer a schema.
        label_column: Label column; its presence and class balance are checked. Empty for unlabeled data.
        entity_column: Entity key column; part of the unique key with timestamp_column.
        timestamp_column: Event timestamp column; part of the unique key with entity_column.
        key_columns: Further key columns, comma-separated.
        fail_on_severity: Fail when an anomaly is at least this severe: error, warning, info or never.
        max_domain_size: Text columns with more distinct values are free text rather than categorical.
        min_class_share: Label classes rarer than this share of rows are reported as imbalance.
        task: auto, binary, multiclass or regression, as train will be asked; label problems train would hit (too many classes, a text label for regression) fail here.
        accept_leaks: Comma-separated columns allowed to predict the label almost perfectly; by default such a column (or a few that sum to the label) is an error.
        exclude_columns: Comma-separated columns training leaves out of the features; they are not checked for leaks.
        skew_threshold: With reference_schema: the largest distribution distance (L-infinity for numbers, Jensen-Shannon for categories) that passes; a column's skew_threshold in the schema wins.
    """
    from kfp_mlops.components._shared.atomic import write_text_atomic
    from kfp_mlops.components._shared.entry import exit_on_error
    from kfp_mlops.components.validate.core import ValidateOptions, write_outputs
    from kfp_mlops.components.validate.core import validate as validate_core
    from kfp_mlops.components.validate.gx_suite import ExpectationSuite, load_reference

    with exit_on_error("validate"):
        keys = [k.strip() for k in [entity_column, timestamp_column, *key_columns.split(",")] if k.strip()]
        # Our schema or a GX suite, told apart by shape; a suite is checked whole before any data is read.
        reference = load_reference(reference_schema.path) if reference_schema is not None else None
        suite = reference if isinstance(reference, ExpectationSuite) else None
        options = ValidateOptions(
            label_column=label_column,
            key_columns=tuple(dict.fromkeys(keys)),
            fail_on_severity=fail_on_severity,
            max_domain_size=max_domain_size,
            min_class_share=min_class_share,
            task=task,
            accept_leaks=tuple(accept_leaks.split(",")),
            exclude_columns=tuple(exclude_columns.split(",")),
            skew_threshold=skew_threshold,
        )
        result = validate_core(dataset.path, options=options, reference_schema=None if suite is not None else reference, expectation_suite=suite)
        write_outputs(
            result,
            schema_path=schema.path,
            statistics_path=statistics.path,
            anomalies_path=anomalies.path,
            report_path=report.path,
            source=dataset.metadata.get("source_uri", dataset.uri),
        )
        for name, value in result.metrics().items():
            metrics.log_metric(name, value)
        schema.metadata.update({"columns": len(result.schema.columns), "mode": result.mode, "task": result.task or ""})
        write_text_atomic(resolved_task, result.task or "")
        anomalies.metadata.update({"count": len(result.anomalies)})
        for anomaly in result.anomalies:
            print(anomaly)
        print(f"validated {result.stats.rows:,} rows in {result.seconds:.2f}s: {len(result.anomalies)} anomalies")
