# syntax=docker/dockerfile:1
#
# northflank-exporter: Prometheus exporter for Northflank invoices.
#
#   docker build -t northflank-exporter .
#   docker run --rm -p 9721:9721 -e NORTHFLANK_API_TOKEN=... northflank-exporter
#   docker run --rm -p 9721:9721 northflank-exporter --demo   # simulated API, no token
#
# Stage "build" makes the wheel and installs it into the virtualenv /opt/venv; the
# runtime stage copies only that virtualenv onto the same slim base: no compiler, no
# build backend, no pip cache, no source tree. CI lints this file with hadolint and
# runs the build stage's RUN steps outside Docker (tests/test_dockerfile.py).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /dist .
# The runtime virtualenv gets no pip of its own: the build stage's pip installs into it.
RUN python -m venv --without-pip /opt/venv \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir /dist/*.whl \
    && /opt/venv/bin/northflank-exporter --help >/dev/null

FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="northflank-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Northflank invoices: spend by team, project, resource type, resource and usage dimension" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
# A numeric, non-root user (no entry in /etc/passwd is needed), so that Kubernetes'
# runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 9721
ENTRYPOINT ["northflank-exporter"]
