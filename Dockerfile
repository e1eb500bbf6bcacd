# syntax=docker/dockerfile:1
# One image for every IPS component, chosen by command:
#   docker run IMAGE api      the REST API (SERVER_PORT, default 8080)
#   docker run IMAGE worker   the Temporal worker (metrics on METRICS_PORT, default 9090)
#   docker run IMAGE sim      kubesim, the simulated cluster (compose profile `sim`)
# Build: docker build -t ips:0.1.0 .      Docs: docs/deploy.md

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: resolve and install into a venv; nothing from this stage but the venv ships ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/ips
COPY pyproject.toml README.md ./
COPY common ./common
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY worker ./worker
COPY kubesim ./kubesim
COPY cli ./cli
COPY client/python ./client/python
# Two wheels, ips and ips-client (the `ips create/get/list/cancel/watch` commands), installed
# from those files: ips-client is not on any index, so it never comes from one (docs/deploy.md).
# dumb-init (a static binary shipped as a wheel) runs as PID 1: it forwards SIGTERM to the
# process group and reaps zombies, so `kubectl delete pod` drains the worker gracefully.
RUN /opt/ips/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ./client/python . \
    && /opt/ips/bin/pip install --no-cache-dir /wheels/*.whl dumb-init==1.2.5.post1 \
    && /opt/ips/bin/python -m compileall -q /opt/ips/lib

# ---- runtime: the same slim base, no compilers, no pip cache, no source tree, non-root ----
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="ips" \
      org.opencontainers.image.description="Image Prewarm Service: API, worker and kubesim" \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/ips/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IPS_LOG_FORMAT=json
# A fixed numeric UID/GID, so Kubernetes can verify runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 ips \
    && useradd --system --uid 10001 --gid ips --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin ips
COPY --from=build /opt/ips /opt/ips
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 9090
ENTRYPOINT ["dumb-init", "--", "ips"]
CMD ["api"]
