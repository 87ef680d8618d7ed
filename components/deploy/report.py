"""The deploy step's outputs: the manifests (or local plan) as YAML, a Markdown summary, the endpoint."""

from __future__ import annotations

from pathlib import Path

import yaml

from kfp_mlops.components._shared.atomic import write_text_atomic
from kfp_mlops.components._shared.markdown import md_code, md_table, md_text
from kfp_mlops.components._shared.redact import redact_text
from kfp_mlops.components.deploy.core import DeployRequest, DeployResult

MANIFESTS_FILE = "manifests.yaml"
LOCAL_PLAN_FILE = "local.yaml"
RBAC_FILE = "rbac.yaml"


def summary_markdown(result: DeployResult, request: DeployRequest) -> str:
    state = "deployed" if result.applied else "rendered (dry-run: nothing changed)"
    lines = [
        f"## Deploy: {md_text(request.model_name)} to {md_text(request.target)}, {state}",
        "",
        md_table(["arm", "version", "model URI", "weight %"], [[a.name, a.version, a.model_uri, a.weight] for a in result.arms]),
        "",
        f"Endpoint: {md_code(result.endpoint) if result.endpoint else 'none (dry-run)'}",
    ]
    if request.target == "local" and result.endpoint:
        url = f"{result.endpoint}/v1/models/{result.arms[0].model_name}:predict"
        command = 'curl -s -H "X-Kfp-Mlops-Key: user-1" -d @rows.json ' + url
        lines += ["", f"Try it: {md_code(command)}"]
    lines += [f"- note: {md_text(n)}" for n in result.notes]
    lines += [f"- warning: {md_text(w)}" for w in result.warnings]
    return redact_text("\n".join(lines)) + "\n"


def write_outputs(result: DeployResult, request: DeployRequest, *, manifests_dir: Path, summary_path: Path, endpoint_path: Path) -> None:
    """Write the three outputs; manifests hold no secrets (credentials travel as Secret references)."""
    from kfp_mlops.components.deploy.rbac import render_rbac

    manifests_dir.mkdir(parents=True, exist_ok=True)
    if request.target == "local":
        write_text_atomic(manifests_dir / LOCAL_PLAN_FILE, redact_text(yaml.safe_dump_all(result.manifests, sort_keys=False)))
    else:
        write_text_atomic(manifests_dir / MANIFESTS_FILE, yaml.safe_dump_all(result.manifests, sort_keys=False))
        account = request.service_account or "kfp-mlops-deployer"
        write_text_atomic(manifests_dir / RBAC_FILE, yaml.safe_dump_all(render_rbac(request.namespace, account), sort_keys=False))
    for warning in result.warnings:
        print(f"WARNING: {warning}")
    write_text_atomic(summary_path, summary_markdown(result, request))
    write_text_atomic(endpoint_path, result.endpoint)
