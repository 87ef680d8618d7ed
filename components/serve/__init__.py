"""Serve: the model server, built on KServe's Python model server (V1 and Open Inference Protocol V2).

Run it with ``python -m kfp_mlops.components.serve --model-uri models:/NAME@champion``.
"""
