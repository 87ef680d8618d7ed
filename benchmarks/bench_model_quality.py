"""Model quality on real public tables: the trainer against HistGradientBoosting and a linear model.

Tables that ship inside PyPI packages (no download): scikit-learn's breast_cancer,
diabetes, wine and digits; statsmodels' fair (affairs > 0); palmerpenguins (species,
text categories and nulls); vega_datasets' seattle_weather (weather, five classes;
month from the date), sf_temps (hourly temperature from hour, month and weekday:
low-cardinality integers only) and cars (miles per gallon, with nulls); statsmodels' randhie
(outpatient visits, 20,190 rows: the one table above 10k rows, where the trainer's budget shrinks).

Every model gets the same splits: per seed (3 seeds), a stratified (classification)
random split into train 64% / validation 16% / test 20%, written as Parquet. Ours is
``core.train_model`` (what the train component runs) with default settings, on
those files. The baselines see the same rows and the same feature kinds as ours
(the columns our preprocessing makes categorical are categorical for them):

- HGB: HistGradientBoostingClassifier/Regressor, scikit-learn defaults, native
  categorical support, fitted on train;
- linear: LogisticRegression / Ridge on mean-imputed standardized numbers and
  one-hot categories, its C / alpha chosen on the validation split.

Metric: ROC AUC (binary), accuracy (multiclass), RMSE in label units (regression),
on the test split, averaged over the seeds. Targets: ROC AUC / accuracy no more than
0.01 below the better baseline, RMSE at most 1.05x the better baseline's.

Then the training loop's throughput against a hand-written minimal loop over the
same tensors (same net, batch size and optimizer). Target >= 0.9x.

    python benchmarks/bench_model_quality.py [--quick] [--seeds 3] [--only wine,digits] [--set ensemble_size=4 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

TARGET_GAP = 0.01
TARGET_RATIO = 1.05
QUICK = ("breast_cancer", "wine", "penguins", "diabetes", "fair")


def _frame_sklearn(loader, label: str):
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    frame = frame.rename(columns={"target": label})
    return frame


def load_breast_cancer():
    from sklearn.datasets import load_breast_cancer

    return _frame_sklearn(load_breast_cancer, "malignant"), "malignant", "binary"


def load_diabetes():
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(as_frame=True, scaled=False)
    frame = bunch.frame.rename(columns={"target": "progression"})
    frame["sex"] = frame["sex"].astype("int64")  # 1 / 2 in the raw data
    return frame, "progression", "regression"


def load_wine():
    from sklearn.datasets import load_wine

    return _frame_sklearn(load_wine, "cultivar"), "cultivar", "multiclass"


def load_digits():
    from sklearn.datasets import load_digits

    return _frame_sklearn(load_digits, "digit"), "digit", "multiclass"


def load_fair():
    import statsmodels.api as sm

    frame = sm.datasets.fair.load_pandas().data.copy()
    frame["had_affair"] = (frame.pop("affairs") > 0).astype("int64")
    for column in ("rate_marriage", "religious", "educ", "occupation", "occupation_husb"):  # integer codes, as a CSV ingest types them
        frame[column] = frame[column].astype("int64")
    return frame, "had_affair", "binary"


def load_penguins():
    import palmerpenguins

    return palmerpenguins.load_penguins(), "species", "multiclass"


def load_seattle_weather():
    from vega_datasets import local_data

    frame = local_data.seattle_weather()
    frame["month"] = frame.pop("date").dt.month.astype("int64")
    return frame, "weather", "multiclass"


def load_sf_temps():
    from vega_datasets import local_data

    frame = local_data.sf_temps()
    date = frame.pop("date")
    frame["hour"] = date.dt.hour.astype("int64")
    frame["month"] = date.dt.month.astype("int64")
    frame["weekday"] = date.dt.weekday.astype("int64")
    return frame, "temp", "regression"


def load_cars():
    from vega_datasets import local_data

    frame = local_data.cars().dropna(subset=["Miles_per_Gallon"])
    frame["model_year"] = frame.pop("Year").dt.year.astype("int64")
    return frame.drop(columns=["Name"]), "Miles_per_Gallon", "regression"


def load_randhie():
    import statsmodels.api as sm

    # RAND Health Insurance Experiment, 20,190 person-years: outpatient visits from insurance and health.
    return sm.datasets.randhie.load_pandas().data, "mdvis", "regression"


DATASETS = {
    "breast_cancer": load_breast_cancer,
    "fair": load_fair,
    "wine": load_wine,
    "digits": load_digits,
    "penguins": load_penguins,
    "seattle_weather": load_seattle_weather,
    "diabetes": load_diabetes,
    "sf_temps": load_sf_temps,
    "cars": load_cars,
    "randhie": load_randhie,
}
METRIC = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}


def split(frame, label: str, task: str, seed: int):
    from sklearn.model_selection import train_test_split

    index = np.arange(len(frame))
    stratify = frame[label].to_numpy() if task != "regression" else None
    rest, test = train_test_split(index, test_size=0.2, random_state=seed, stratify=stratify)
    train, val = train_test_split(rest, test_size=0.2, random_state=seed, stratify=stratify[rest] if stratify is not None else None)
    return {"train": frame.iloc[train].reset_index(drop=True), "validation": frame.iloc[val].reset_index(drop=True), "test": frame.iloc[test].reset_index(drop=True)}


def score(task: str, y: np.ndarray, out: np.ndarray) -> float:
    from kfp_mlops.components.train import metrics as M

    if task == "regression":
        return M.regression(y.astype(np.float64), out)["rmse"]
    return M.classification(y, out)[METRIC[task]]


def ours(parts, label: str, task: str, seed: int, overrides: dict, folder: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kfp_mlops.components.train.core import TrainInputs, train_model
    from kfp_mlops.components.train.loop import TrainConfig

    paths = {}
    for name, frame in parts.items():
        paths[name] = folder / f"{name}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), paths[name])
    config = TrainConfig(seed=seed, gpu="forbid", **overrides)
    started = time.perf_counter()
    result = train_model(TrainInputs(paths["train"], paths["validation"], paths["test"], label, task=task), config, model_dir=folder / "model")
    seconds = time.perf_counter() - started
    return result.test_metrics[METRIC[task]], result.preprocessing, seconds, len(result.fit.history)


def _encode_labels(parts, label, prep):
    if prep.task == "regression":
        return {k: v[label].to_numpy(np.float64) for k, v in parts.items()}
    import pyarrow as pa

    return {k: prep.encode_label(pa.Table.from_pandas(v[[label]], preserve_index=False)).astype(np.int64) for k, v in parts.items()}


def baselines(parts, label: str, prep, seed: int) -> tuple[float, float]:
    """(HGB, linear) test scores, with the categorical columns our preprocessing chose."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    task = prep.task
    numeric = [c.name for c in prep.numeric]
    categorical = [c.name for c in prep.categorical]
    y = _encode_labels(parts, label, prep)

    def as_hgb(frame):
        out = frame[numeric + categorical].copy()
        for c in categorical:
            out[c] = pd.Categorical(out[c].astype("string"), categories=[v for v in parts["train"][c].astype("string").dropna().unique()])
        for c in numeric:
            out[c] = out[c].astype("float64")
        return out

    def predict(model, frame):
        if task == "regression":
            return model.predict(frame)
        probs = model.predict_proba(frame)
        return probs[:, 1] if task == "binary" else probs

    hgb_cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    hgb = hgb_cls(random_state=seed, categorical_features="from_dtype").fit(as_hgb(parts["train"]), y["train"])
    hgb_score = score(task, y["test"], predict(hgb, as_hgb(parts["test"])))

    def as_linear(frame):
        out = frame[numeric + categorical].copy()
        for c in numeric:
            out[c] = out[c].astype("float64")
        for c in categorical:
            out[c] = out[c].astype("string").astype(object).where(out[c].notna(), "__missing__")
        return out

    columns = ColumnTransformer(
        [("num", make_pipeline(SimpleImputer(strategy="mean", keep_empty_features=True), StandardScaler()), numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)]
    )
    best, best_model = None, None
    for strength in (0.01, 0.1, 1.0, 10.0, 100.0):
        if task == "regression":
            model = make_pipeline(columns, Ridge(alpha=strength))
        else:
            model = make_pipeline(columns, LogisticRegression(C=strength, max_iter=5_000))
        model.fit(as_linear(parts["train"]), y["train"])
        s = score(task, y["validation"], predict(model, as_linear(parts["validation"])))
        if best is None or (s < best if task == "regression" else s > best):
            best, best_model = s, model
    linear_score = score(task, y["test"], predict(best_model, as_linear(parts["test"])))
    return hgb_score, linear_score


def quality(names: list[str], seeds: int, overrides: dict) -> list[dict]:
    rows = []
    for name in names:
        frame, label, task = DATASETS[name]()
        per_seed = []
        for seed in range(seeds):
            parts = split(frame, label, task, seed)
            with tempfile.TemporaryDirectory(prefix=f"quality-{name}-") as tmp:
                our, prep, seconds, epochs = ours(parts, label, task, seed, overrides, Path(tmp))
            hgb, linear = baselines(parts, label, prep, seed)
            per_seed.append((our, hgb, linear, seconds, epochs))
        our, hgb, linear, seconds, epochs = (float(np.mean(v)) for v in zip(*per_seed))
        metric = METRIC[task]
        if task == "regression":
            best = min(hgb, linear)
            ratio, ok = our / best, our <= TARGET_RATIO * best
        else:
            best = max(hgb, linear)
            ratio, ok = our / best, our >= best - TARGET_GAP
        rows.append(
            dict(
                name=name,
                task=task,
                metric=metric,
                rows=len(frame),
                numeric=len(prep.numeric),
                categorical=len(prep.categorical),
                ours=our,
                hgb=hgb,
                linear=linear,
                ratio=ratio,
                ok=ok,
                seconds=seconds,
                epochs=epochs,
                seeds=[s[:3] for s in per_seed],
            )
        )
        r = rows[-1]
        print(
            f"{name:<16} {task:<10} {metric:<8} {r['rows']:>6} {r['numeric']:>3}/{r['categorical']:<3} ours {our:>8.4f}  HGB {hgb:>8.4f}  linear {linear:>8.4f}  "
            f"ratio {ratio:.3f}  {'ok' if ok else 'MISS'}  ({seconds:.1f} s, {epochs:.0f} epochs per seed)",
            flush=True,
        )
    return rows


def throughput(rows: int, epochs: int, overrides: dict, repeats: int = 2) -> tuple[float, float]:
    """(ours, hand-written) training rows/s over the same tensors, net, batch size and optimizer.

    The two alternate ``repeats`` times and each keeps its best run: on a shared
    machine the least disturbed run is the one that measures the loop.
    """
    import pyarrow as pa
    import torch

    from kfp_mlops.components.train.loop import Tensors, TrainConfig, effective_batch_size, fit, member_loss
    from kfp_mlops.components.train.model import build_net, standardize
    from kfp_mlops.components.train.preprocessing import fit as fit_preprocessing
    from kfp_mlops.demo import DemoSpec, iter_demo_batches

    table = pa.Table.from_batches(list(iter_demo_batches(DemoSpec(rows=rows, seed=1))))
    prep = fit_preprocessing(table, label="label", exclude={"entity_id", "event_timestamp"})
    numeric, categorical = prep.encode_features(table)
    data = Tensors(torch.from_numpy(numeric), torch.from_numpy(categorical), torch.from_numpy(prep.encode_label(table)))
    val = Tensors(data.numeric[:2_000], data.categorical[:2_000], data.y[:2_000])
    config = TrainConfig(gpu="forbid", max_epochs=epochs, patience=epochs + 1, **overrides)

    def hand_written() -> float:
        """The minimal loop: permute once per epoch, contiguous slices, forward, loss, backward, step."""
        torch.manual_seed(config.seed)
        mean = torch.tensor([c.mean for c in prep.numeric])
        std = torch.tensor([c.std for c in prep.numeric])  # noqa: E702
        xn, xc, y = standardize(data.numeric, mean, std), data.categorical, data.y
        net = build_net(prep, list(config.hidden), config.dropout, numeric_embedding=config.numeric_embedding, train_numeric=xn, bins=config.numeric_bins, ensemble=config.ensemble_size)
        opt = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)
        loss_fn, batch, n = member_loss(prep.task), effective_batch_size(config, len(y)), len(y)
        busy = 0.0
        for _ in range(epochs):
            started = time.perf_counter()
            perm = torch.randperm(n)
            a, b, c = xn[perm], xc[perm], y[perm]
            net.train()
            for s in range(0, n, batch):
                loss = loss_fn(net(a[s : s + batch], b[s : s + batch]), c[s : s + batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            busy += time.perf_counter() - started
        return epochs * n / busy

    ours, hand = [], []
    for _ in range(repeats):
        ours.append(fit(data, val, prep, config).samples_per_second)
        hand.append(hand_written())
    return max(ours), max(hand)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help=f"{', '.join(QUICK)}; one seed; a short throughput run")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--only", default="", help="comma-separated datasets")
    parser.add_argument("--set", nargs="*", default=[], help="TrainConfig overrides, e.g. ensemble_size=4 hidden=128,128")
    parser.add_argument("--throughput-rows", type=int, default=None)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: small tables gain nothing from more, and a shared machine loses a lot)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import torch

    from kfp_mlops.components.train.loop import TrainConfig

    torch.set_num_threads(args.threads)

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        kind = type(getattr(TrainConfig(), key))
        overrides[key] = tuple(int(v) for v in value.split(",")) if kind is tuple else kind(value)
    assert set(overrides) <= set(fields)
    names = [n for n in args.only.split(",") if n] or (list(QUICK) if args.quick else list(DATASETS))
    seeds = args.seeds or (1 if args.quick else 3)
    started = time.perf_counter()
    print(f"model quality: {seeds} seed(s), split 64/16/20, torch {torch.__version__} on {torch.get_num_threads()} CPU threads; ours = defaults{(' + ' + str(overrides)) if overrides else ''}")
    print("targets: ROC AUC / accuracy >= better baseline - 0.01; RMSE <= 1.05 x better baseline")
    rows = quality(names, seeds, overrides)
    print()
    print("| dataset | task | rows | features (num/cat) | metric | ours | HGB | linear | ours / better baseline | target |")
    print("|---|---|---:|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['name']} | {r['task']} | {r['rows']} | {r['numeric']}/{r['categorical']} | {r['metric']} | {r['ours']:.4f} | {r['hgb']:.4f} | {r['linear']:.4f} | {r['ratio']:.3f} | {'met' if r['ok'] else 'MISSED'} |"
        )
    print(f"\nquality: {sum(r['ok'] for r in rows)}/{len(rows)} tables on target, {time.perf_counter() - started:.0f} s")
    if not args.skip_throughput:
        rows_t = args.throughput_rows or (20_000 if args.quick else 100_000)
        epochs = 2
        ours_rps, hand_rps = throughput(rows_t, epochs, overrides)
        print(
            f"throughput ({rows_t:,} demo rows, {epochs} epochs, default net, {torch.get_num_threads()} thread(s), best of 2 alternating runs each): trainer {ours_rps:,.0f} rows/s, hand-written loop {hand_rps:,.0f} rows/s, ratio {ours_rps / hand_rps:.2f} (target >= 0.9)"
        )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
