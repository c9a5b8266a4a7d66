# The pipeline image: every flow (ingestion, training, retraining), the CLI, the Prefect server and worker, and
# the MLflow server, installed from the lock file. One image, two variants:
#
#   docker build -t textclf-pipeline:latest-cpu .                          # CPU torch (the default)
#   docker build -t textclf-pipeline:latest-cuda --build-arg VARIANT=cuda .  # CUDA torch
#
# The CUDA variant takes torch's CUDA build, which brings its own CUDA and cuDNN libraries; the host needs only
# the NVIDIA driver and the NVIDIA Container Toolkit. BASE_IMAGE swaps the base (e.g. an nvidia/cuda image that
# has Python 3.11), TORCH_VERSION and TORCH_INDEX_URL pin another torch build.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=
ARG PIPELINE_UID=10001

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIPELINE_HOME=/var/lib/pipeline \
    PREFECT_HOME=/var/lib/pipeline/prefect \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    TOKENIZERS_PARALLELISM=false \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# torch first, from the index of the chosen variant: the lock file leaves it out on purpose.
RUN set -eu; \
    case "$VARIANT" in \
      cpu) index="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}" ;; \
      cuda) index="${TORCH_INDEX_URL:-https://pypi.org/simple}" ;; \
      *) echo "VARIANT must be cpu or cuda, not '$VARIANT'" >&2; exit 2 ;; \
    esac; \
    python -m pip install --index-url "$index" "torch==${TORCH_VERSION}"

WORKDIR /opt/pipeline
# Dependencies from the lock (exact versions and hashes), in their own layer so code changes rebuild fast.
COPY requirements/lock.txt requirements/lock.txt
RUN python -m pip install --no-deps --require-hashes -r requirements/lock.txt

COPY pyproject.toml README.md ./
COPY src src
COPY flows flows
COPY tasks tasks
COPY deployments deployments
COPY expectations expectations
RUN python -m pip install --no-deps . && python -m pip check \
    && python -c "import pipeline.flows.retraining, pipeline.flows.ingestion, pipeline.deployments.serve"

RUN useradd --uid "${PIPELINE_UID}" --create-home --home-dir /home/pipeline pipeline \
    && mkdir -p /var/lib/pipeline /var/lib/mlflow \
    && chown -R pipeline:pipeline /var/lib/pipeline /var/lib/mlflow
USER pipeline
VOLUME ["/var/lib/pipeline"]

# Prefect's Docker and Kubernetes workers run `prefect flow-run execute` in this image; `pipeline deploy`
# deploys the flows and runs a process worker; `prefect server start` and `mlflow server` run the servers.
CMD ["pipeline", "--help"]
