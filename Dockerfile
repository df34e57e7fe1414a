# Two images from one file:
#   docker build --build-arg VERSION=<pyproject version> --target operator    -t dagwright-operator .
#   docker build --build-arg VERSION=<pyproject version> --target node-runner -t dagwright-node-runner .
# (`make images` passes VERSION from pyproject.toml, the one place the version is written.)
# Both install the package from this repository into a virtualenv in a build stage; the final stages carry
# no compilers or pip caches and run as a non-root user (uid 10001).
# No `# syntax=` line: nothing here needs a newer frontend, and naming one makes BuildKit pull an image, which
# fails on a machine without a registry. The classic builder (DOCKER_BUILDKIT=0) builds this file as well.
#
# PYTHON_IMAGE is any Debian-based image with Python 3.11+, the venv module, groupadd and useradd. Without a
# registry, tests/e2e/cluster/images.py makes one with debootstrap (dagwright-base:bookworm) and passes it here.

ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY node-runner ./node-runner
COPY crds ./crds
RUN python -m venv /opt/dagwright \
 && /opt/dagwright/bin/pip install --no-compile ".[operator,runner,ui]"

FROM ${PYTHON_IMAGE} AS base
ARG VERSION
LABEL org.opencontainers.image.title="dagwright" \
      org.opencontainers.image.description="Workflow DAGs as Kubernetes Jobs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 dagwright \
 && useradd --system --uid 10001 --gid dagwright --home-dir /nonexistent --shell /usr/sbin/nologin dagwright
COPY --from=build /opt/dagwright /opt/dagwright
ENV PATH=/opt/dagwright/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001

# Node images get node-runner either by `pip install "dagwright[runner]"` (any image with Python 3.11+), or by
# building FROM this image and adding their own tools; nodes then set `nodeRunner: true`.
FROM base AS node-runner
LABEL org.opencontainers.image.title="dagwright-node-runner"
ENTRYPOINT ["dagwright-node-runner", "--"]

FROM base AS operator
LABEL org.opencontainers.image.title="dagwright-operator"
EXPOSE 8000 8080
ENTRYPOINT ["dagwright", "operator"]
CMD ["--log-format", "json"]
