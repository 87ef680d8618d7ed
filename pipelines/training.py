"""The training pipeline: ingest, validate, featurize (later issues add train, register)."""

from kfp import dsl

from kfp_mlops.components.featurize.component import featurize
from kfp_mlops.components.ingest.component import ingest
from kfp_mlops.components.validate.component import validate
from kfp_mlops.pipelines.platform import with_feature_store_credentials, with_storage_credentials


@dsl.pipeline(name="training", description="Ingest a dataset, validate it, and build point-in-time correct features and time-split training sets with Feast.")
def training(
    source_uri: str,
    label_column: str = "label",
    entity_column: str = "entity_id",
    timestamp_column: str = "event_timestamp",
    file_format: str = "",
    csv_delimiter: str = ",",
    csv_encoding: str = "utf-8",
    column_types: str = "",
    fail_on_severity: str = "error",
    feature_spec: str = "",
    feature_registry: str = "",
    online_store: str = "",
    split_fractions: str = "0.7,0.15,0.15",
):
    """Ingests and validates training data.

    Args:
        source_uri: Training data: local path, file://, http(s)://, gs:// or s3:// file, prefix or glob.
        label_column: Label column to predict.
        entity_column: Entity key column; empty to generate a row id.
        timestamp_column: Event timestamp column; empty to use the ingestion time.
        file_format: csv, parquet or jsonl; empty to detect from the extension.
        csv_delimiter: CSV field delimiter.
        csv_encoding: Text encoding of CSV files.
        column_types: JSON object forcing column types, e.g. {"zip": "string"}.
        fail_on_severity: Stop the run when a data anomaly is at least this severe: error, warning, info or never.
        feature_spec: Feature spec JSON (passthrough columns, window aggregates, ttl); empty for a default over all columns.
        feature_registry: Feast registry: empty for one inside the feature repo artifact, gs:// or s3:// path, or postgresql+psycopg://user@host/db.
        online_store: Feast online store: empty for sqlite inside the feature repo artifact, or redis://host:port.
        split_fractions: Train, validation and test shares of the label time range, comma-separated.
    """
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
    ).after(validated)
    with_feature_store_credentials(featurized)
