"""Parse compiled KFP YAML strictly with one backend's protos (run inside that backend's venv).

Usage: python strict_parse.py KUBERNETES_PB2_PATH DOCS.json...
Each DOCS.json holds the YAML documents of one compiled file as a JSON list.
Prints one JSON line per file: {"file": ..., "errors": [...]}. Unknown fields
are errors (json_format.ParseDict without ignore_unknown_fields).
"""

import importlib.util
import json
import sys

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2


def load_kubernetes_pb2(path):
    spec = importlib.util.spec_from_file_location("kubernetes_executor_config_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(docs, k8s):
    errors = []
    try:
        json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
    except json_format.ParseError as exc:
        errors.append(f"pipeline spec: {exc}")
    for platform in docs[1:]:
        try:
            json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
        except json_format.ParseError as exc:
            errors.append(f"platform spec: {exc}")
        executors = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
        for name, config in executors.items():
            try:
                json_format.ParseDict(config, k8s.KubernetesExecutorConfig())
            except json_format.ParseError as exc:
                errors.append(f"kubernetes config of {name}: {exc}")
    return errors


def main():
    k8s = load_kubernetes_pb2(sys.argv[1])
    for path in sys.argv[2:]:
        with open(path) as handle:
            docs = json.load(handle)
        print(json.dumps({"file": path, "errors": check(docs, k8s)}))


if __name__ == "__main__":
    main()
