"""Real public tables through `kfp-mlops run training`: a plain table, a date column, integer years, a count label."""
# The tables ship inside PyPI packages (scikit-learn, vega_datasets, statsmodels): no download.

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

CLI = str(Path(sys.executable).with_name("kfp-mlops"))


def _write_csv(frame, path: Path) -> Path:
    frame = frame.copy()
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def _run(tmp_path: Path, source: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    workdir = tmp_path / "wd"
    proc = subprocess.run(
        [CLI, "run", "training", "--source-uri", str(source), *args, "--max-epochs", "5", "--workdir", str(workdir), "--deploy-target", "none", "--verbose"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    outputs = {}
    for step in ("ingest", "featurize", "train"):
        found = next((workdir / "runs").glob(f"*/{step}/executor_output.json"))
        artifacts = json.loads(found.read_text())["artifacts"]
        outputs[step] = {name: value["artifacts"][0]["metadata"] for name, value in artifacts.items()}
    return proc, outputs


def _features(outputs: dict) -> list[str]:
    return outputs["featurize"]["train"]["features"]


def test_plain_table_with_nothing_set_trains_on_a_stratified_random_split(tmp_path):
    from sklearn.datasets import load_breast_cancer

    source = _write_csv(load_breast_cancer(as_frame=True).frame, tmp_path / "breast_cancer.csv")
    proc, out = _run(tmp_path, source, "--label-column", "target")
    dataset = out["ingest"]["dataset"]
    assert (dataset["entity_column"], dataset["timestamp_column"]) == ("row_id", "ingested_at")
    assert dataset["entity_generated"] and dataset["timestamp_generated"]
    log = proc.stdout + proc.stderr
    assert "the data has no 'entity_id' column" in log and "featurize splits them at random" in log, "the run says what it chose"
    split = out["featurize"]["train"]
    assert (split["split_strategy"], split["split_seed"], split["stratified_by"]) == ("random", 0, "target")
    assert "no event time" in split["split_reason"]
    assert len(_features(out)) == 30 and not any("__" in f for f in _features(out)), "pass-through: no window aggregates"
    assert out["featurize"]["feature_repo"]["online_materialized"] is False
    model = out["train"]["model"]
    assert model["task"] == "binary" and model["test_roc_auc"] > 0.9


def test_date_column_as_event_time_splits_by_time(tmp_path):
    from vega_datasets import local_data

    frame = local_data.seattle_weather()
    frame["date"] = frame["date"].dt.date  # date-only text in the CSV (YYYY-MM-DD), read as date32
    source = _write_csv(frame, tmp_path / "seattle_weather.csv")
    assert (tmp_path / "seattle_weather.csv").read_text().splitlines()[1].startswith("2012-01-01,")
    proc, out = _run(tmp_path, source, "--label-column", "weather", "--timestamp-column", "date")
    assert out["ingest"]["dataset"]["columns"]["date"] == "timestamp[us, tz=UTC]"
    assert "holds dates" in proc.stdout + proc.stderr
    split = out["featurize"]["train"]
    assert split["split_strategy"] == "time" and split["validation_start"] < split["test_start"]
    assert sorted(_features(out)) == ["precipitation", "temp_max", "temp_min", "wind"]
    assert out["train"]["model"]["task"] == "multiclass"


def test_integer_year_column_is_the_event_time(tmp_path):
    import statsmodels.api as sm

    frame = sm.datasets.macrodata.load_pandas().data
    frame["year"] = frame["year"].astype(int)
    source = _write_csv(frame, tmp_path / "macrodata.csv")
    proc, out = _run(tmp_path, source, "--label-column", "infl", "--timestamp-column", "year", "--split-fractions", "0.6,0.2,0.2")
    assert out["ingest"]["dataset"]["columns"]["year"] == "timestamp[us, tz=UTC]"
    assert "holds years (int64): each is read as 1 January of that year" in proc.stdout + proc.stderr
    split = out["featurize"]["train"]
    assert split["split_strategy"] == "time" and split["validation_start"].endswith("-01-01T00:00:00+00:00")
    assert "year" not in _features(out) and not any("__" in f for f in _features(out))
    assert out["train"]["model"]["task"] == "regression"


def test_count_label_is_regression_on_an_unstratified_random_split(tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame["target"] = frame["target"].round().astype(int)  # a count: integers with many distinct values
    source = _write_csv(frame, tmp_path / "diabetes.csv")
    _, out = _run(tmp_path, source, "--label-column", "target", "--split-seed", "5")
    split = out["featurize"]["train"]
    assert (split["split_strategy"], split["split_seed"], split["stratified_by"]) == ("random", 5, "")
    assert out["train"]["model"]["task"] == "regression"
    rows = {name: out["featurize"][name]["rows"] for name in ("train", "validation", "test")}
    assert sum(rows.values()) == 442 and abs(rows["train"] - 0.7 * 442) <= 1
