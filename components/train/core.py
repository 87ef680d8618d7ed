"""Train core: splits in, model, metrics, report and MLflow run out. Plain Python, no KFP."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from kfp_mlops.components._shared.atomic import atomic_path, write_text_atomic
from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.mlflow_adapter import MlflowRun, TrackingSettings
from kfp_mlops.components._shared.model_artifact import MODEL_FILE, PREPROCESSING_FILE, Feature, ModelArtifact, hash_files
from kfp_mlops.components._shared.redact import redact_uri
from kfp_mlops.components.train import metrics as M
from kfp_mlops.components.train import mlflow_model
from kfp_mlops.components.train.loop import Distributed, FitResult, Tensors, TrainConfig, fit, predict, resolve_budget
from kfp_mlops.components.train.model import export
from kfp_mlops.components.train.preprocessing import Preprocessing
from kfp_mlops.components.train.preprocessing import fit as fit_preprocessing
from kfp_mlops.components.train.report import render

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainInputs:
    """The three splits and the columns that are not features."""

    train: Path
    validation: Path
    test: Path
    label: str
    exclude: frozenset[str] = frozenset()
    task: str = "auto"
    non_finite: str = "impute"
    fingerprint: str = ""
    categorical_columns: tuple[str, ...] = ()
    numeric_columns: tuple[str, ...] = ()
    # Entity and timestamp keys: never features, and not required to be in the splits
    # (``exclude`` names the user's own choices, which must exist).
    keys: frozenset[str] = frozenset()


@dataclass
class TrainResult:
    preprocessing: Preprocessing
    fit: FitResult
    test_metrics: dict[str, float]
    roc: tuple[list[float], list[float], list[float]] | None
    confusion: list[list[int]] | None
    contract: ModelArtifact | None = None
    mlflow_log_seconds: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    config: TrainConfig | None = None

    @property
    def mlflow_run_id(self) -> str:
        return self.contract.mlflow_run_id if self.contract else ""

    @property
    def model_uri(self) -> str:
        return self.contract.mlflow_model_uri if self.contract else ""


def _read(path: Path, what: str) -> pa.Table:
    try:
        table = pq.read_table(str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read the {what} split ({exc})", where=str(path), fix="pass the featurize step's outputs") from exc
    if table.num_rows == 0:
        raise DataError(f"the {what} split has no rows", where=str(path), fix="ingest more history or change the split fractions")
    return table


def tensors(table: pa.Table, prep: Preprocessing, where: str) -> Tensors:
    numeric, categorical = prep.encode_features(table, where)
    return Tensors(torch.from_numpy(numeric), torch.from_numpy(categorical), torch.from_numpy(prep.encode_label(table, where)))


def train_model(
    inputs: TrainInputs,
    config: TrainConfig,
    *,
    model_dir: Path,
    tracking: TrackingSettings | None = None,
    checkpoint_dir: Path | None = None,
    dist: Distributed = Distributed(),
) -> TrainResult:
    """Fit preprocessing on train, train with early stopping on validation, evaluate on test.

    Writes ``model.pt2`` (torch.export) and ``preprocessing.json`` into ``model_dir``
    (main rank only), and logs the run to MLflow when ``tracking`` is given.
    """
    started = time.perf_counter()
    tables = {name: _read(path, name) for name, path in (("train", inputs.train), ("validation", inputs.validation), ("test", inputs.test))}
    unknown = sorted(set(inputs.exclude) - set(tables["train"].column_names))
    if unknown:
        raise DataError(
            f"exclude_columns names {len(unknown)} column(s) the training split does not have: {unknown}",
            where=str(inputs.train),
            fix=f"correct the names in exclude_columns (--exclude-columns); the split's columns are {tables['train'].column_names[:50]}",
        )
    prep = fit_preprocessing(
        tables["train"], label=inputs.label, exclude=set(inputs.exclude) | set(inputs.keys), task=inputs.task, non_finite=inputs.non_finite, where=str(inputs.train),
        categorical_columns=inputs.categorical_columns, numeric_columns=inputs.numeric_columns,
    )  # fmt: skip
    data = {name: tensors(t, prep, str(getattr(inputs, name))) for name, t in tables.items()}
    seconds = {"prepare": time.perf_counter() - started}
    config = resolve_budget(config, len(data["train"]) // dist.world)  # what runs is what the report and MLflow show
    with MlflowRun(tracking) if tracking is not None and dist.main else contextlib.nullcontext() as run:
        if run is not None:
            run.log_params({"task": prep.task, "features": len(prep.feature_names), "rows_train": len(data["train"]), **_params(config)})
        result = fit(data["train"], data["validation"], prep, config, checkpoint_dir=checkpoint_dir, dist=dist, on_epoch=(lambda r: run.log_metrics(r, step=int(r["epoch"]))) if run else None)
        seconds["fit"] = result.train_seconds
        outputs = predict(result.net, prep, data["test"], torch.device("cpu"))
        y = data["test"].y.numpy()
        roc = confusion = None
        if prep.task == "regression":
            test_metrics = M.regression(y * prep.label_std + prep.label_mean, outputs)
        else:
            test_metrics = M.classification(y, outputs)
            predicted = (outputs >= 0.5).astype(np.int64) if prep.task == "binary" else outputs.argmax(axis=1)
            confusion = M.confusion_matrix(y, predicted, len(prep.classes))
            if prep.task == "binary":
                roc = M.roc_curve(y, outputs)
        out = TrainResult(prep, result, test_metrics, roc, confusion, seconds=seconds, rows={name: len(d) for name, d in data.items()}, config=config)
        if dist.main:
            # The model is logged to MLflow from the temporary folder: if logging fails, no model artifact is left.
            with atomic_path(model_dir) as tmp:
                tmp.mkdir(parents=True)
                export(result.net, prep, tmp / MODEL_FILE)
                prep.save(tmp / PREPROCESSING_FILE)
                metrics = {f"test_{k}": v for k, v in test_metrics.items()} | {k: v for k, v in result.history[result.best_epoch].items() if k.startswith("val_")}
                contract = ModelArtifact(
                    task=prep.task,
                    label=prep.label,
                    classes=tuple(prep.classes),
                    features=_features(prep, tables["train"].schema),
                    files=hash_files(tmp),
                    train_fingerprint=inputs.fingerprint,
                    metrics=metrics,
                    details={"best_epoch": result.best_epoch, "epochs": len(result.history), "hyperparameters": _describe(config)},
                )
                contract.write(tmp)  # the copy logged to MLflow carries the contract too
                if run is not None:
                    run.log_metrics({f"test_{k}": v for k, v in test_metrics.items()})
                    contract = contract.with_tracking(run_id=run.run_id, model_uri=_log_model(run, tmp, contract), tracking_uri=redact_uri(run.settings.tracking_uri))
                    out.mlflow_log_seconds = run.log_seconds
                contract.write(tmp)
                out.contract = contract
    seconds["total"] = time.perf_counter() - started
    return out


def _features(prep: Preprocessing, schema: pa.Schema) -> tuple[Feature, ...]:
    return tuple(Feature(c.name, "numeric", str(schema.field(c.name).type)) for c in prep.numeric) + tuple(Feature(c.name, "categorical", str(schema.field(c.name).type)) for c in prep.categorical)


def _describe(config: TrainConfig) -> str:
    return (
        f"hidden={','.join(map(str, config.hidden))} lr={config.learning_rate} ({config.lr_schedule}) batch={config.batch_size} dropout={config.dropout} "
        f"wd={config.weight_decay} epochs<={config.max_epochs} patience={config.patience} numeric={config.numeric_embedding}"
        f"{f'/{config.numeric_bins} bins' if config.numeric_embedding == 'piecewise' else ''} ensemble={config.ensemble_size}"
    )


def _log_model(run: MlflowRun, model_folder: Path, contract: ModelArtifact) -> str:
    """Save the MLflow model folder in scratch space (never inside the output) and upload it."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlflow-model-") as scratch:
        folder = Path(scratch) / "model"
        mlflow_model.save(model_folder, folder, contract)
        return run.log_model_folder(folder)


def _params(config: TrainConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: (",".join(map(str, v)) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}


def feature_rows(result: TrainResult) -> list[tuple[str, str, str, str]]:
    """(name, kind, treatment, why) per feature, for the report."""
    from kfp_mlops.components.train.model import PiecewiseLinearEmbeddings, embedding_size
    from kfp_mlops.components.train.preprocessing import MAX_VOCABULARY

    prep, net = result.preprocessing, result.fit.net
    numeric = getattr(net, "numeric", None)
    if isinstance(numeric, PiecewiseLinearEmbeddings):
        bins = (numeric.high > 0).sum(dim=1).tolist()
        embed = [f"piecewise-linear embedding ({b} quantile bins)" for b in bins]
    elif getattr(net, "numeric_embedding", "none") == "periodic":
        embed = ["periodic embedding (PLR)"] * len(prep.numeric)
    else:
        embed = ["fed as is"] * len(prep.numeric)
    rows = [(c.name, "numeric", f"standardized (mean {c.mean:.4g}, std {c.std:.4g}), missing -> mean; {e}", c.reason) for c, e in zip(prep.numeric, embed)]
    for c in prep.categorical:
        capped = f" (capped at {MAX_VOCABULARY:,}: rarer values -> unknown)" if len(c.vocabulary) >= MAX_VOCABULARY else ""
        rows.append((c.name, "categorical", f"{len(c.vocabulary):,} categories{capped} + unknown (nulls, unseen values); embedding of {embedding_size(len(c.vocabulary) + 1)}", c.reason))
    return rows


def write_report(result: TrainResult, path: Path) -> None:
    prep, fit_result = result.preprocessing, result.fit
    rows = result.rows
    stop = "early stopping (no validation improvement for patience epochs)" if fit_result.stopped_early else "max_epochs reached"
    summary = {
        "label": f"{prep.label} ({prep.task}"
        + (
            f"; classes {', '.join(prep.classes[:20])}{f' ... and {len(prep.classes) - 20} more' if len(prep.classes) > 20 else ''})"
            if prep.classes
            else f"; standardized for training with mean {prep.label_mean:.4g}, std {prep.label_std:.4g}; metrics in label units)"
        ),
        "rows": ", ".join(f"{name} {n:,}" for name, n in rows.items()) if rows else "",
        "features": f"{len(prep.numeric)} numeric, {len(prep.categorical)} categorical (table below)",
        "device": fit_result.device + (" (bf16 autocast)" if fit_result.mixed_precision else ""),
        "throughput": f"{fit_result.samples_per_second:,.0f} samples/s",
        "epochs": (f"{len(fit_result.history)} (resumed after epoch {fit_result.resumed_from})" if fit_result.resumed_from else str(len(fit_result.history))) + f", stopped by {stop}",
    }
    if result.config is not None:
        summary["settings"] = _describe(result.config)
    summary = {k: v for k, v in summary.items() if v}
    write_text_atomic(path, render(fit_result.history, result.test_metrics, task=prep.task, metric=fit_result.metric, best_epoch=fit_result.best_epoch, summary=summary, features=feature_rows(result)))
