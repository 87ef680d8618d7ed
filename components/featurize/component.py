"""KFP component: featurize with Feast (thin wrapper over ``core.featurize``)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Output

from kfp_mlops.components._shared.images import image


@dsl.component(base_image=image("features"), install_kfp_package=False)
def featurize(
    dataset: Input[Dataset],
    train: Output[Dataset],
    validation: Output[Dataset],
    test: Output[Dataset],
    feature_repo: Output[Artifact],
    metrics: Output[Metrics],
    summary: Output[Markdown],
    entity_column: str,
    timestamp_column: str,
    label_column: str,
    labels: Input[Dataset] = None,
    feature_spec: str = "",
    name: str = "features",
    registry: str = "",
    online_store: str = "",
    project: str = "kfp_mlops",
    split_fractions: str = "0.7,0.15,0.15",
    duplicates: str = "error",
    split: str = "auto",
    split_seed: int = 0,
    task: str = "auto",
):
    """Computes per-entity window features, registers them in Feast, materializes them online, and builds point-in-time correct train/validation/test sets split by time or at random.

    A dataset from ingest says in its metadata whether its keys were generated: without an
    event time (timestamp_generated) split=auto splits at random; with generated row ids
    (entity_generated) nothing is materialized online, since no serving request can name a
    row id. When every entity has one row, the default spec only passes the columns through.

    Credentials are never parameters: the SQL registry's password comes from the
    PGPASSWORD environment variable, the Redis password from REDIS_PASSWORD (in a
    cluster, a Secret mounted with kfp-kubernetes). feature_repo/feature_store.yaml holds
    only ${PGPASSWORD} / ${REDIS_PASSWORD} references, which Feast expands when it opens
    the repo: every later process that opens it (a model server, a notebook) must set the
    same variables; the feature_repo metadata lists them under requires_env. A password
    written into the registry or online_store URL is used but never stored or logged by
    this step; the run's parameters still show it, so prefer the variables. Later
    processes need it in those variables all the same.

    Args:
        dataset: Events as Parquet (the ingest output): entity, timestamp, features, label.
        train: Training rows with their features as of each label's time (a time split: the earliest label times); metadata says how the rows were split (split_strategy, split_seed, stratified_by, split_reason).
        validation: Validation rows (a time split: label times between the two boundaries in the metadata).
        test: Test rows (a time split: the latest label times).
        feature_repo: The Feast repo folder: feature_store.yaml, definitions, offline feature table, registry and online store (embedded default).
        metrics: Rows per split, feature count, feature null rates.
        summary: Markdown summary of the features and splits.
        entity_column: Entity key column.
        timestamp_column: Event timestamp column.
        label_column: Label column (refused as a feature).
        labels: Optional label rows (entity, timestamp, label) to join features to; default: the dataset's own rows.
        feature_spec: Feature spec as JSON (passthrough columns, window aggregates, ttl); empty for a default spec over all columns (pass-through only when every entity has one row).
        name: Name prefix of the Feast objects when feature_spec is empty.
        registry: Empty for a registry inside feature_repo; gs:// or s3:// path for a file registry; postgresql+psycopg://user@host/db for a SQL registry (password in PGPASSWORD).
        online_store: Empty for sqlite inside feature_repo; redis://host:port[/db] (rediss:// for TLS) for Redis (password in REDIS_PASSWORD).
        project: Feast project name.
        split_fractions: Train, validation and test shares (of the label time range, or of the rows for a random split), comma-separated, each above 0, summing to 1.
        duplicates: What to do with repeated (entity, timestamp) rows: error, or last (keep the last in input order).
        split: auto (by time when the rows have an event time, else at random), time, or random.
        split_seed: Seed of a random split (same data and seed, same splits).
        task: auto, binary, multiclass or regression; a random split is stratified by the label for classification (auto: unless the label is numeric with more than 50 distinct values).
    """
    import os
    from pathlib import Path

    from kfp_mlops.components._shared.atomic import write_text_atomic
    from kfp_mlops.components._shared.entry import exit_on_error
    from kfp_mlops.components._shared.errors import DataError
    from kfp_mlops.components._shared.split_artifact import DataVersion, SplitInfo
    from kfp_mlops.components.featurize.checks import read_schema
    from kfp_mlops.components.featurize.compute import one_row_per_entity, time_span
    from kfp_mlops.components.featurize.core import FeaturizeOptions
    from kfp_mlops.components.featurize.core import featurize as featurize_core
    from kfp_mlops.components.featurize.settings import REDIS_PASSWORD_ENV, REGISTRY_PASSWORD_ENV, StoreSettings
    from kfp_mlops.components.featurize.spec import FeatureSpec, default_spec
    from kfp_mlops.components.featurize.training_set import parse_fractions

    with exit_on_error("featurize"):
        # Parameters first: a bad one must fail before the dataset is read.
        fractions = parse_fractions(split_fractions)
        settings = StoreSettings(
            registry=registry,
            online_store=online_store,
            project=project,
            redis_password=os.environ.get(REDIS_PASSWORD_ENV, ""),
            registry_password=os.environ.get(REGISTRY_PASSWORD_ENV, ""),
        )
        if feature_spec.strip():
            spec = FeatureSpec.from_json(feature_spec)
            if (spec.entity, spec.timestamp, spec.label) != (entity_column, timestamp_column, label_column):
                raise DataError(
                    f"the feature spec names entity/timestamp/label {spec.entity!r}/{spec.timestamp!r}/{spec.label!r}, the pipeline {entity_column!r}/{timestamp_column!r}/{label_column!r}",
                    fix="make them agree",
                )
        else:
            columns = {f.name: str(f.type) for f in read_schema(dataset.path)}
            span = time_span(dataset.path, timestamp_column) if timestamp_column in columns else None
            single = entity_column in columns and one_row_per_entity(dataset.path, entity_column)
            spec = default_spec(columns, entity=entity_column, timestamp=timestamp_column, label=label_column, name=name, span=span, one_row_per_entity=single)
            if single:
                print(f"every entity has one row: the default feature spec passes the {len(spec.passthrough)} columns through, with no window aggregates")
        result = featurize_core(
            dataset.path,
            spec,
            repo_dir=feature_repo.path,
            split_paths={"train": Path(train.path), "validation": Path(validation.path), "test": Path(test.path)},
            options=FeaturizeOptions(
                settings=settings,
                split_fractions=fractions,
                duplicates=duplicates,
                split=split,
                split_seed=split_seed,
                task=task,
                time_generated=bool(dataset.metadata.get("timestamp_generated")),
                entity_generated=bool(dataset.metadata.get("entity_generated")),
            ),
            labels=labels.path if labels is not None else None,
        )
        for split_name, artifact in (("train", train), ("validation", validation), ("test", test)):
            artifact.metadata.update(
                {
                    "rows": result.rows[split_name],
                    "split": split_name,
                    **result.split_metadata(),
                    "features": result.features,
                    **SplitInfo(
                        entity_column=entity_column,
                        timestamp_column=timestamp_column,
                        label_column=label_column,
                        task=task,
                        fingerprint=str(dataset.metadata.get("fingerprint", "")),
                        data_version=DataVersion.from_metadata(dataset.metadata),
                    ).to_metadata(),
                }
            )
        stores = settings.describe()  # redacted: metadata is shown in the dashboard
        feature_repo.metadata.update(
            {
                "feature_service": result.service,
                "project": project,
                "features": len(result.features),
                **stores,
                "online_materialized": not result.online_note,
                "requires_env": settings.required_env(),
            }
        )
        for metric, value in result.metrics().items():
            metrics.log_metric(metric, value)
        write_text_atomic(summary.path, result.summary_markdown())
        split_how = f"random split (seed {result.split_seed}, stratified by {result.stratified_by or 'nothing'})" if result.split_strategy == "random" else f"time split at {result.boundaries}"
        print(
            f"featurized: {result.rows} rows, {len(result.features)} features, {split_how}: {result.split_reason}; online values: {result.online_note or 'materialized'}; registry {stores['registry']}, online store {stores['online_store']}, timings {result.seconds}"
        )
