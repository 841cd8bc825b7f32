# immichcheck's container image: the nightly CronJob and `immichcheck bench --node NODE` Jobs
# (manifests/11-immichcheck.yaml) run it.
#
#   docker buildx build --platform linux/arm64,linux/amd64 \
#     -t ghcr.io/immichcheck/immichcheck:0.1.0 --push .
#
# Multi-arch: everything comes from Debian packages and PyPI for the target platform; nothing
# is downloaded per architecture. Runs as uid 10001 with a read-only root filesystem: it
# writes only to /tmp (HOME) and to the reports volume. The tag is the package version and
# must match the image in manifests/11-immichcheck.yaml (tests/test_dockerfile.py checks).
# To pin the base image by digest as well, append @sha256:<index digest> to both FROM lines.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- build: wheels need a compiler on platforms without prebuilt ones (hdrhistogram) -------
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY immichcheck ./immichcheck
RUN pip install . \
    && python -m compileall -q /opt/venv

# --- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="immichcheck" \
      org.opencontainers.image.description="Verify and benchmark a self-hosted Immich deployment on Kubernetes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"

# The native engines: pgbench (Debian ships it with the PostgreSQL 15 server package; no
# cluster is created), redis-benchmark (redis-tools) and fio.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 postgresql-client-15 redis-tools fio \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 immichcheck \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin immichcheck

COPY --from=build /opt/venv /opt/venv
COPY manifests /opt/immichcheck/manifests
COPY benchmarks /opt/immichcheck/benchmarks

ENV PATH=/opt/venv/bin:/usr/lib/postgresql/15/bin:$PATH \
    IMMICHCHECK_HOME=/opt/immichcheck \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Relative paths (the default --reports-dir "reports") land in the writable /tmp.
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["immichcheck"]
CMD ["--help"]
