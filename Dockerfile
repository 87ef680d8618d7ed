# Component images of kfp-mlops, one target per role so that a step carries only
# what it imports (ingest and validate need no torch, Feast, MLflow or Evidently).
#
#   buildah build --target data --build-arg BASE_IMAGE=... -t REGISTRY/kfp-mlops-data:VERSION .
#
# BASE_IMAGE: any Debian-like image with python3 (3.10+) and python3-venv. Where no
# registry is reachable, build one with debootstrap (tests/container/base_image.sh).
# train: torch==2.13.0 from PyPI is the CUDA build (GPU nodes). For a lean CPU image,
# point pip at the PyTorch CPU wheels: --build-arg PIP_EXTRA_INDEX_URL=<CPU wheel index>
# or --build-arg PIP_FIND_LINKS=<folder of wheels mounted into the build>.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS base
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    GX_ANALYTICS_ENABLED=false \
    DVC_NO_ANALYTICS=1 \
    NML_DISABLE_USAGE_LOGGING=1
# Debian's system python is "externally managed": everything goes into a venv.
RUN python3 -m venv /opt/venv
COPY constraints.txt /opt/kfp-mlops/constraints.txt

FROM base AS source
COPY setup.py README.md /tmp/src/
COPY kfp_mlops /tmp/src/kfp_mlops
COPY components /tmp/src/components
COPY pipelines /tmp/src/pipelines
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin kfp

# ingest (with DVC for dvc:// sources), validate
FROM source AS data
RUN pip install -c /opt/kfp-mlops/constraints.txt "/tmp/src[dvc]" \
    && rm -rf /tmp/src \
    && python -c "import kfp_mlops.components.ingest.core, kfp_mlops.components.ingest.dvc_source, kfp_mlops.components.validate.core, kfp_mlops.components.validate.gx_export"
USER 1000
WORKDIR /home/kfp

# featurize: adds Feast, DuckDB, the Redis and PostgreSQL clients
FROM source AS features
RUN pip install -c /opt/kfp-mlops/constraints.txt "/tmp/src[features]" \
    && rm -rf /tmp/src \
    && python -c "import kfp_mlops.components.featurize.core, kfp_mlops.components.featurize.asof_store"
USER 1000
WORKDIR /home/kfp

# train, train_distributed: adds torch and MLflow
FROM source AS train
ARG PIP_FIND_LINKS=""
ARG PIP_EXTRA_INDEX_URL=""
RUN pip install -c /opt/kfp-mlops/constraints.txt "/tmp/src[train]" \
    && rm -rf /tmp/src \
    && python -c "import kfp_mlops.components.train.core, kfp_mlops.components.distributed.core"
USER 1000
WORKDIR /home/kfp

# serve, deploy, the A/B gate and the monitor: the model server (KServe's Python server) with torch,
# MLflow and Feast, plus Evidently for the monitor's sample report
FROM source AS serve
ARG PIP_FIND_LINKS=""
ARG PIP_EXTRA_INDEX_URL=""
RUN pip install -c /opt/kfp-mlops/constraints.txt "/tmp/src[train,features,serve,monitor]" \
    && rm -rf /tmp/src \
    && python -c "import kserve, evidently, kfp_mlops.components.train.serving, kfp_mlops.components.deploy, kfp_mlops.components.monitor.run"
USER 1000
WORKDIR /home/kfp
EXPOSE 8080

# mlserver: the Seldon Core v2 runtime (components/serve/mlserver_runtime.py) on MLServer 1.7.1,
# which needs fastapi below 0.116: its own environment, without Feast and KServe.
FROM source AS mlserver
ARG PIP_FIND_LINKS=""
ARG PIP_EXTRA_INDEX_URL=""
RUN grep -v -E '^(fastapi|starlette)==' /opt/kfp-mlops/constraints.txt > /tmp/constraints.txt \
    && grep -v '^#' /tmp/src/components/serve/mlserver-constraints.txt >> /tmp/constraints.txt \
    && pip install -c /tmp/constraints.txt "/tmp/src[train]" mlserver \
    && rm -rf /tmp/src /tmp/constraints.txt \
    && python -c "import kfp_mlops.components.serve.mlserver_runtime"
USER 1000
WORKDIR /home/kfp
EXPOSE 8080 8081
CMD ["mlserver", "start", "/mnt/models"]
