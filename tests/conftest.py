"""Shared fixtures: demo data and the local storage services."""

from __future__ import annotations

import inspect
import os
from functools import lru_cache
from pathlib import Path

import pytest

from kfp_mlops.components._shared.telemetry import telemetry_off
from kfp_mlops.demo import DemoSpec, write_demo_dataset
from tests.services import free_port, python_bin, start_http_server, start_process

telemetry_off()  # before any test imports MLflow, DVC or Great Expectations; subprocesses inherit it


@pytest.fixture(scope="session")
def demo_csv(tmp_path_factory) -> Path:
    return write_demo_dataset(tmp_path_factory.mktemp("demo") / "demo.csv", DemoSpec(rows=20_000, seed=11))


@pytest.fixture(scope="session")
def demo_parquet(tmp_path_factory) -> Path:
    return write_demo_dataset(tmp_path_factory.mktemp("demo") / "demo.parquet", DemoSpec(rows=20_000, seed=11))


@pytest.fixture(scope="session")
def http_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("http")
    server = start_http_server(root)
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def gcs_emulator():
    port = free_port()
    proc = start_process([python_bin("gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"], port)
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    from google.cloud import storage

    yield storage.Client(project="test")
    proc.terminate()
    proc.wait(10)
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous


def _moto(auth_free_actions: int | None = None):
    port = free_port()
    env = {"INITIAL_NO_AUTH_ACTION_COUNT": str(auth_free_actions)} if auth_free_actions is not None else {}
    proc = start_process([python_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, env)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def s3_env(monkeypatch):
    """Point boto3 at a function-scoped moto server via the environment, as in a cluster."""
    proc, endpoint = _moto()
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    import boto3

    yield boto3.client("s3")
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def s3_locked(monkeypatch):
    """An S3 server enforcing IAM, a bucket with data, and credentials of a user with no permissions."""
    proc, endpoint = _moto(auth_free_actions=4)
    for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "admin", "AWS_SECRET_ACCESS_KEY": "admin", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    import boto3

    s3, iam = boto3.client("s3"), boto3.client("iam")
    s3.create_bucket(Bucket="locked")
    s3.put_object(Bucket="locked", Key="data.csv", Body=b"a,b\n1,2\n")
    iam.create_user(UserName="nobody")
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    yield "s3://locked/data.csv"
    proc.terminate()
    proc.wait(10)


# Test tiers: CI runs each as its own job (.github/workflows/ci.yml) and `pytest -m` selects them here.
TIER_MARKERS = {
    "unit": "core logic and compiled specs; no pipeline run, no container (tests/unit, tests/compiled)",
    "service": "needs a local service: PostgreSQL, Redis, an mlflow server, the GCS emulator or moto S3",
    "component": "whole pipelines through kfp.local, the CLI and the notebooks (tests/component)",
    "container": "image builds and the pipeline step by step in containers; needs root, buildah and podman (tests/container)",
    "slow": "too slow for the fast lane (`-m 'unit and not service and not slow'`, under 3 minutes on 2 cores)",
}
TIER_BY_FOLDER = {"unit": "unit", "compiled": "unit", "component": "component", "container": "container"}
# How a test or one of its fixtures starts or reaches a service (tests/services.py and the fixtures above).
# Matching the code, not a list of test names, keeps a new test that needs one out of the fast lane.
SERVICE_SIGNS = ("port_open(5432)", "port_open(6379)", "MlflowServer(", '"redis-server"', "gcp-storage-emulator", "_moto(")
# Fixtures that pip-install into new environments: four KFP backends' spec protos, MLServer.
SLOW_FIXTURES = frozenset({"backend_venvs", "mlserver_env"})
# The fast lane measured once with --durations on 2 busy shared cores: 1,044 s. These modules and tests took
# about 890 s of it (training runs, model servers, concurrency and statistical checks); by the same durations
# the rest takes ~155 s there, less on an idle 2-core runner.
SLOW_TESTS = frozenset(
    {
        "tests/unit/test_train.py",
        "tests/unit/test_registry_safety.py",
        "tests/unit/test_serve.py",
        "tests/unit/test_local_target.py",
        "tests/unit/test_model_safety.py",
        "tests/unit/test_register.py",
        "tests/unit/test_mlserver_runtime.py",
        "tests/unit/test_ab_stats.py::test_holm_and_bh_match_statsmodels_row_by_row",
        "tests/unit/test_monitor_drift.py::test_chi_square_on_halves_flags_as_often_as_evidentlys_goodness_of_fit_predicts",
        "tests/unit/test_monitor_drift.py::test_synthetic_columns_agree_with_evidently",
        "tests/unit/test_monitor_drift.py::test_real_tables_split_by_an_attribute_agree_with_evidently",
        "tests/unit/test_monitor_performance.py::test_band_covers_realized_metrics_under_covariate_shift",
        "tests/unit/test_monitor_performance.py::test_a_shift_that_lowers_performance_alerts_and_random_halves_do_not",
        "tests/unit/test_monitor_performance.py::test_band_keeps_covering_windows_much_larger_than_the_reference",
        "tests/unit/test_distributed.py::test_launch_end_to_end_with_a_fake_controller",
        "tests/unit/test_ingest_bad_input.py::test_http_5xx_gives_up_after_retries",
        "tests/unit/test_train_quality.py::test_more_epochs_train_longer_while_the_validation_metric_improves",
        "tests/unit/test_train_quality.py::test_embedding_and_ensemble_nets_export_load_weights_only_and_score_like_training",
        # Measured again after the interop tests came (fast lane 266 s on 2 cores): these took ~110 s of it.
        "tests/unit/test_ab_gate.py::test_promotion_moves_champion_under_the_lock_and_sends_all_traffic",
        "tests/unit/test_deploy_placement.py::test_local_serves_a_version_named_by_both_aliases_once",
        "tests/unit/test_ab_rollouts.py",
        "tests/unit/test_gate_statistics.py",
        "tests/unit/test_deploy.py",
        "tests/unit/test_monitor_run.py",
        "tests/unit/test_gx_comparison.py",
        "tests/unit/test_monitor_drift.py::test_huge_magnitudes_beyond_the_reference_range_agree_with_evidently",
        "tests/unit/test_featurize_safety.py::test_unreachable_redis_names_the_redacted_address",
        "tests/unit/test_demo_and_packaging.py::test_demo_is_deterministic_and_sized",
        "tests/unit/test_demo_and_packaging.py::test_wheel_installs_only_the_kfp_mlops_namespace",
        "tests/unit/test_ingest_safety.py::test_retry_after_sigkill_mid_write_cleans_up",
        "tests/unit/test_ingest_dvc.py",  # git and DVC repositories built and cloned
        "tests/unit/test_plain_tables.py::test_plain_table_featurizes_at_random_without_materializing",
        "tests/unit/test_plain_tables.py::test_a_test_split_without_two_rows_of_each_class_is_refused_before_training",
        "tests/unit/test_step_startup.py",  # fresh interpreters importing Feast and torch
    }
)


def pytest_configure(config: pytest.Config) -> None:
    for name, description in TIER_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


# The README's test command runs on two workers (pytest-xdist, `-n 2`). A unit of work is a whole module, so
# module fixtures are built once and a module's tests keep their order; modules that share a build on disk
# (the images under .oci/, the backend venvs under .kfp-mlops/) are one unit, built by one worker only. Units
# go out in collection order (pytest.ini), which puts the longest tiers first so that neither worker is left
# finishing a long one alone.
SHARED_BUILDS = {"tests/container/": "containers", "tests/compiled/test_portability.py": "backend-venvs", "tests/compiled/test_platform_portable.py": "backend-venvs"}
# The longest units by a measured two-worker run (--durations): the images ~12 min, then these, then the
# rest of the pipeline tier.
LONGEST_FIRST = (
    "containers",
    "tests/component/test_local_deploy.py",
    "tests/component/test_local_runs.py",
    "tests/component/test_notebooks.py",
    "tests/component/test_airflow_examples.py",
    "tests/component/test_local_monitoring.py",
    "tests/component/test_real_tables_pipeline.py",
    "tests/unit/test_register_server.py",
    "tests/unit/test_train.py",
)


def work_unit(nodeid: str) -> str:
    module = nodeid.split("::")[0]
    return next((unit for prefix, unit in SHARED_BUILDS.items() if module.startswith(prefix)), module)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_root = Path(__file__).resolve().parent
    for item in items:
        tier = _tier_of(Path(item.path).resolve(), tests_root)
        if tier:
            item.add_marker(tier)
        functions = [getattr(item, "function", None), *_fixture_functions(item)]
        if any(_uses_a_service(function) for function in functions if function is not None):
            item.add_marker("service")
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or _is_listed_slow(item, tests_root):
            item.add_marker("slow")

    items.sort(key=_run_order)  # stable: a module's tests keep their order


def _run_order(item: pytest.Item) -> int:
    unit = work_unit(item.nodeid)
    if unit in LONGEST_FIRST:
        return LONGEST_FIRST.index(unit)
    return len(LONGEST_FIRST) + (0 if item.get_closest_marker("component") else 1)


def _tier_of(path: Path, tests_root: Path) -> str | None:
    if not path.is_relative_to(tests_root):
        return None
    parts = path.relative_to(tests_root).parts
    return TIER_BY_FOLDER.get(parts[0]) if len(parts) > 1 else None


def _is_listed_slow(item: pytest.Item, tests_root: Path) -> bool:
    path = Path(item.path).resolve()
    if not path.is_relative_to(tests_root):
        return False
    module = path.relative_to(tests_root.parent).as_posix()
    return module in SLOW_TESTS or f"{module}::{getattr(item, 'originalname', item.name)}" in SLOW_TESTS


def _fixture_functions(item: pytest.Item) -> list:
    # A test's fixture closure with the definitions pytest resolved for it; pytest has no public accessor.
    info = getattr(item, "_fixtureinfo", None)
    return [definition.func for definitions in (info.name2fixturedefs.values() if info else ()) for definition in definitions]


@lru_cache(maxsize=None)
def _uses_a_service(function) -> bool:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):  # built-in fixtures (tmp_path, capfd, ...) may have no source
        return False
    return any(sign in source for sign in SERVICE_SIGNS)
