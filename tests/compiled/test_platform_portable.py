"""What the SDK writes for Secrets, KFP 2.0 rejects; the compile step's clean-up makes it portable."""
# No "from __future__ import annotations": KFP reads the pipeline signature at definition time.

import json
import subprocess
from pathlib import Path

import yaml

from kfp_mlops.pipelines.compile import make_platform_portable

STRICT_PARSE = Path(__file__).with_name("strict_parse.py")


def test_platform_fields_old_backends_reject_are_dropped(backend_venvs, tmp_path):
    """Without make_platform_portable, KFP 2.0's kfp-kubernetes protos reject what the SDK writes."""
    from kfp import compiler, dsl, kubernetes

    from kfp_mlops.components.ingest.component import ingest

    @dsl.pipeline(name="raw-secrets")
    def raw(source_uri: str):
        kubernetes.use_secret_as_env(ingest(source_uri=source_uri), secret_name="s3-creds", secret_key_to_env={"K": "K"})

    raw_yaml = tmp_path / "raw.yaml"
    compiler.Compiler().compile(raw, str(raw_yaml))
    docs = list(yaml.safe_load_all(raw_yaml.read_text()))
    python, pb2 = backend_venvs["2.0"]
    for name, payload in (("raw", docs), ("portable", [docs[0], make_platform_portable(docs[1])])):
        target = tmp_path / f"{name}.json"
        target.write_text(json.dumps(payload))
        out = subprocess.run([str(python), str(STRICT_PARSE), str(pb2), str(target)], capture_output=True, text=True, check=True).stdout
        errors = json.loads(out)["errors"]
        assert bool(errors) == (name == "raw"), (name, errors)
