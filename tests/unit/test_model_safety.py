"""The model contract and the serving transform: one way to score, and loading never runs code."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from kfp_mlops.components._shared.errors import DataError
from kfp_mlops.components._shared.mlflow_adapter import TrackingSettings
from kfp_mlops.components._shared.model_artifact import CONTRACT_FILE, MODEL_FILE, ModelArtifact, hash_files
from kfp_mlops.components.register.core import register_model
from kfp_mlops.components.register.registry import CHAMPION, Registry
from kfp_mlops.components.train.core import TrainInputs, tensors, train_model
from kfp_mlops.components.train.loop import TrainConfig, predict
from kfp_mlops.components.train.serving import ServingTransform, load_program
from tests.unit.test_train import KEYS, _splits

FAST = TrainConfig(hidden=(16,), max_epochs=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("safety")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    paths = _splits(tmp / "data", rows=5_000)
    result = train_model(TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS), FAST, model_dir=tmp / "model", tracking=TrackingSettings(uri, experiment="safety"))
    return tmp, uri, paths, result


def _with_nulls(path: Path) -> pa.Table:
    """The test split with nulls in an integer feature (and a category never seen in training)."""
    table = pq.read_table(path)
    age = table.column("age")
    assert pa.types.is_integer(age.type)
    mask = pa.array(np.arange(table.num_rows) % 7 == 0)
    table = table.set_column(table.schema.get_field_index("age"), "age", pc.if_else(mask, pa.scalar(None, age.type), age))
    country = table.column("country")
    return table.set_column(table.schema.get_field_index("country"), "country", pc.if_else(mask, pa.scalar("atlantis"), country))


def test_contract_travels_in_the_folder_and_the_metadata(trained):
    tmp, uri, _, result = trained
    contract = ModelArtifact.read(tmp / "model")
    assert contract == result.contract == ModelArtifact.from_metadata(json.loads(json.dumps(contract.to_metadata())))
    assert contract.mlflow_run_id and contract.mlflow_model_uri == f"runs:/{contract.mlflow_run_id}/model" and contract.tracking_uri == uri
    assert contract.files == hash_files(tmp / "model") and contract.task == "binary" and contract.classes == ("0", "1")
    assert {f.name: f.dtype for f in contract.features}["age"] == "int64"
    with pytest.raises(DataError, match="no kfp-mlops model contract"):
        ModelArtifact.from_metadata({"mlflow_model_uri": "models:/x"})
    with pytest.raises(DataError, match="unknown model contract"):
        ModelArtifact.from_dict({**contract.to_dict(), "schema": "other/v9"})


def test_training_path_serving_transform_and_pyfunc_score_alike_with_nulls_in_integer_columns(trained):
    """The same rows through the training code, the transform every step uses, and MLflow's pyfunc."""
    import mlflow

    tmp, uri, paths, result = trained
    table = _with_nulls(paths["test"])
    training_path = predict(result.fit.net, result.preprocessing, tensors(table, result.preprocessing, "test"), torch.device("cpu"))
    transform = ServingTransform.load(tmp / "model")
    served = transform.predict_table(table)
    features = table.select(transform.prep.feature_names).to_pandas()
    assert features["age"].isna().sum() > 0 and features["age"].dtype == np.float64, "an integer column with nulls reaches pandas as float"
    mlflow.set_tracking_uri(uri)  # the pyfunc user's own setup (runs:/ URIs resolve through it)
    try:
        pyfunc = mlflow.pyfunc.load_model(result.model_uri)
        frame = pyfunc.predict(features)
    finally:
        mlflow.set_tracking_uri(None)
    assert np.abs(served - training_path).max() < 1e-6
    assert np.abs(frame["probability_1"].to_numpy() - served).max() < 1e-6
    assert list(frame.columns) == ["prediction", "probability_0", "probability_1"]
    assert (frame["prediction"] == np.where(served >= 0.5, "1", "0")).all()


def test_bad_inputs_to_the_transform_name_the_column(trained):
    tmp, _, paths, _ = trained
    transform = ServingTransform.load(tmp / "model")
    frame = pq.read_table(paths["test"]).to_pandas().head(4)
    with pytest.raises(DataError, match="missing"):
        transform.predict_frame(frame.drop(columns=["age"]))
    frame["age"] = ["ten", "11", None, "x"]
    with pytest.raises(DataError, match="'age'"):
        transform.predict_frame(frame)


def _evil_pickle(marker: Path) -> bytes:
    class Evil:
        def __reduce__(self):
            return (subprocess.call, (["touch", str(marker)],))

    buffer = io.BytesIO()
    torch.save({"inputs": Evil()}, buffer)
    return buffer.getvalue()


def _replace_entry(archive: Path, suffix: str, payload: bytes) -> None:
    original = archive.read_bytes()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(archive, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, payload if info.filename.endswith(suffix) else src.read(info.filename))


def test_a_crafted_archive_is_refused_and_runs_nothing(trained, tmp_path):
    """A pickle in the sample inputs: plain torch.export.load runs it; our loader refuses it."""
    tmp, _, _, _ = trained
    crafted = tmp_path / "crafted"
    shutil.copytree(tmp / "model", crafted)
    marker = tmp_path / "pwned"
    _replace_entry(crafted / MODEL_FILE, "sample_inputs/model.pt", _evil_pickle(marker))
    with pytest.raises(DataError, match="does not match the hash"):
        ServingTransform.load(crafted)  # the recorded hash catches the edit first
    contract = ModelArtifact.read(crafted)
    ModelArtifact(**{**contract.__dict__, "files": hash_files(crafted)}).write(crafted)  # an attacker who rewrites the hashes too
    with pytest.raises(DataError, match="cannot be loaded safely"):
        ServingTransform.load(crafted)
    with pytest.raises(DataError, match="cannot be loaded safely"):
        load_program(crafted / MODEL_FILE)
    assert not marker.exists(), "nothing ran"
    probe = f"import torch; torch.export.load({str(crafted / MODEL_FILE)!r})"
    subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=120)
    assert marker.exists(), "the archive really is hostile: torch's own loader runs it"


def test_pickled_weights_are_refused(trained, tmp_path):
    tmp, _, _, _ = trained
    crafted = tmp_path / "pickled"
    shutil.copytree(tmp / "model", crafted)
    with zipfile.ZipFile(crafted / MODEL_FILE) as archive:
        config = json.loads(archive.read("model/data/weights/model_weights_config.json"))
    first = next(iter(config["config"]))
    config["config"][first]["use_pickle"] = True
    _replace_entry(crafted / MODEL_FILE, "model_weights_config.json", json.dumps(config).encode())
    with pytest.raises(DataError, match="pickled tensors"):
        load_program(crafted / MODEL_FILE)


def test_register_never_runs_the_champions_code_and_checks_its_hashes(trained, tmp_path):
    """An edited models-as-code file and a swapped model file in the artifact store: nothing runs, the swap is caught."""
    tmp, uri, paths, result = trained
    registry = Registry(uri)
    first = register_model(tmp / "model", result.contract, paths["test"], registry=registry, name="guarded", thresholds=None, promote=True, tags={})
    assert first.promoted
    stored = Path(registry.client.get_model_version_download_uri("guarded", "1").removeprefix("file://"))
    marker = tmp_path / "code-ran"
    code_files = list(stored.rglob("*.py"))
    assert code_files, "the pyfunc's code is in the artifact store"
    for code in code_files:
        code.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n" + code.read_text())
    second_dir = tmp_path / "second"
    second = train_model(
        TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS),
        TrainConfig(hidden=(8,), max_epochs=1, seed=3),
        model_dir=second_dir,
        tracking=TrackingSettings(uri, experiment="safety"),
    )
    out = register_model(second_dir, second.contract, paths["test"], registry=registry, name="guarded", thresholds=None, promote=False, tags={})
    assert out.champion_metrics is not None and not marker.exists(), "the champion was scored from its files, its code never imported"
    model_files = [p for p in stored.rglob(MODEL_FILE)]
    model_files[0].write_bytes(model_files[0].read_bytes() + b"\0")
    third = register_model(second_dir, second.contract, paths["test"], registry=registry, name="guarded", thresholds=None, promote=False, tags={})
    assert third.gate.against == "incomparable champion" and "hash" in third.incomparable_reason
    assert not marker.exists()
    assert registry.alias("guarded", CHAMPION).version == "1"


def test_float_and_bool_binary_labels_train(tmp_path):
    for kind, cast in (("float", pa.float64()), ("bool", pa.bool_())):
        convert = lambda t, c=cast: t.set_column(t.schema.get_field_index("label"), "label", t.column("label").cast(c))  # noqa: E731
        paths = _splits(tmp_path / kind, rows=3_000, transform=convert)
        result = train_model(TrainInputs(paths["train"], paths["validation"], paths["test"], "label", KEYS), TrainConfig(hidden=(8,), max_epochs=1), model_dir=tmp_path / kind / "m")
        assert result.preprocessing.task == "binary" and len(result.preprocessing.classes) == 2, kind
        assert ModelArtifact.read(tmp_path / kind / "m").classes == (("0", "1") if kind == "float" else ("false", "true"))
        assert (tmp_path / kind / "m" / CONTRACT_FILE).exists()


def test_the_model_file_carries_no_rows_of_the_data(trained):
    """Example inputs cut from the test split used to drag the whole split into model.pt2."""
    tmp, _, _, _ = trained
    with zipfile.ZipFile(tmp / "model" / MODEL_FILE) as archive:
        samples = [n for n in archive.namelist() if "sample_inputs" in n]
        payload = archive.read(samples[0])
    loaded = torch.load(io.BytesIO(payload), weights_only=True)
    tensors = [t for t in torch.utils._pytree.tree_leaves(loaded) if isinstance(t, torch.Tensor)]
    # A slice of the test split would carry the split's whole storage: 750 rows here.
    assert tensors and all(t.shape[0] <= 2 and t.untyped_storage().nbytes() <= 2 * 64 * 8 and not t.any() for t in tensors), [(t.shape, t.untyped_storage().nbytes()) for t in tensors]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"max_epochs": 0}, "max_epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"hidden": ()}, "hidden_layers"),
        ({"hidden": (0, 8)}, "hidden_layers"),
        ({"dropout": 1.0}, "dropout"),
        ({"gpu": "maybe"}, "gpu"),
        ({"early_stopping_metric": "auc"}, "early_stopping_metric"),
        ({"patience": -3}, "patience"),
    ],
)
def test_training_settings_that_cannot_work_are_refused_up_front(settings, named):
    from kfp_mlops.components.train.loop import TrainError

    with pytest.raises(TrainError, match=named) as raised:
        TrainConfig(**settings)
    assert raised.value.exit_code == 2


def test_hidden_layers_text_is_parsed_with_a_clear_error():
    from kfp_mlops.components.train.loop import TrainError, parse_hidden_layers

    assert parse_hidden_layers("64, 32") == (64, 32)
    with pytest.raises(TrainError, match="'a,b' is not comma-separated integers"):
        parse_hidden_layers("a,b")
