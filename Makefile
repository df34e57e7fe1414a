# dagwright developer targets.
#
# The e2e control plane (tests/e2e/cluster/plane.py) is built from pinned Go modules and run
# as local processes, with kwok's fake nodes and one real kubelet node (tests/e2e/cluster/node.py)
# whose containers come from images built here (no registry). On a machine with Docker and a
# registry, kind-up gives the same e2e suite a kind cluster instead (export the KUBECONFIG it prints).
# `make help` lists the targets.

PYTHON ?= python3
PLANE := $(PYTHON) -m tests.e2e.cluster.plane
PYTEST_ARGS ?=

KIND_CLUSTER ?= dagwright
KIND_NODE_IMAGE ?= kindest/node:v1.34.0
KIND_KUBECONFIG ?= $(HOME)/.cache/dagwright/cluster/kind/kubeconfig
# The package version, written once in pyproject.toml; the images' version label and default tag.
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml | head -n 1)
IMAGE_TAG ?= $(VERSION)
IMAGE_TARGETS ?= operator node-runner
# docker: plain `docker build` (official Python base, from a registry); local: tests/e2e/cluster/images.py (a
# debootstrap base and a dockerd of its own, no registry). Empty: docker when `docker info` answers (and is not
# the dockerd of images.py, which `docker-env` points DOCKER_HOST at), else local.
IMAGE_BUILDER ?=

VENV ?= .venv
VPY := $(VENV)/bin/python

.PHONY: help images example test chaos system-packages lint venv cluster-build cluster-up cluster-down cluster-status e2e kind-up kind-down

## List the targets with what each does (the ## lines above each target in this Makefile).
help:
	@awk '/^## /{doc = doc substr($$0, 4) " "; next} /^[a-z0-9-]+:/{if (doc) {sub(/:.*/, "", $$1); \
	  printf "  %-16s %s\n", $$1, doc}; doc = ""; next} /^$$/{doc = ""}' $(MAKEFILE_LIST)

## Both images. With a Docker that reaches a registry: docker build (official Python base). Without (here): the
## local base made by debootstrap and a dockerd of our own; also tags :dev and adds the Redis and pause images.
images:
	@if [ "$(IMAGE_BUILDER)" = docker ] || { [ -z "$(IMAGE_BUILDER)" ] && docker info >/dev/null 2>&1 \
	    && case "$$DOCKER_HOST" in *.cache/dagwright/docker/*) false;; esac; }; then \
	  for target in $(IMAGE_TARGETS); do \
	    docker build --build-arg VERSION=$(VERSION) --target $$target -t dagwright-$$target:$(IMAGE_TAG) . || exit 1; \
	  done; \
	else \
	  $(PYTHON) -m tests.e2e.cluster.images build --tag $(IMAGE_TAG); \
	fi

## Run an example end to end on this machine, no cluster (installs dagwright into .venv first).
example: $(VENV)/.installed
	$(VENV)/bin/dagwright run examples/diamond.yaml

## Everything CI runs: dependencies, lint, types, and the whole test suite including e2e on the local plane.
test: $(VENV)/.installed system-packages
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VPY) -m pytest $(PYTEST_ARGS)

## The long chaos run: 50 workflows of 20 nodes with the operator SIGKILLed every 1-10 s, two replicas with the
## leader killed again and again, kube-apiserver/etcd restarts, cut connections, Redis killed under writers.
## Prints a report line per scenario (counts of workflows, Jobs, faults and violations). `make test` runs a
## short version of the same tests.
CHAOS_WORKFLOWS ?= 50
CHAOS_NODES ?= 20
CHAOS_KILL_EVERY ?= 1-10
CHAOS_REPORT ?= chaos-report.jsonl
chaos: $(VENV)/.installed system-packages
	rm -f $(CHAOS_REPORT)
	DAGWRIGHT_CHAOS_WORKFLOWS=$(CHAOS_WORKFLOWS) DAGWRIGHT_CHAOS_NODES=$(CHAOS_NODES) \
	DAGWRIGHT_CHAOS_KILL_EVERY=$(CHAOS_KILL_EVERY) DAGWRIGHT_CHAOS_REPORT=$(CURDIR)/$(CHAOS_REPORT) \
	  $(VPY) -m pytest tests/e2e/chaos tests/integration/node_runner/test_redis_faults.py -q $(PYTEST_ARGS); \
	status=$$?; cat $(CHAOS_REPORT); exit $$status

## Debian packages the tests use: a real Redis, Docker and containerd (the image tests and the real node),
## debootstrap (the local base image), CNI plugins, iptables, socat and conntrack (the real node's network), gcc
## (the pause image), chromium (the web UI's browser tests). Installs only what is missing.
SYSTEM_PACKAGES ?= redis-server docker.io containerd runc debootstrap containernetworking-plugins iptables socat \
  conntrack gcc libc6-dev chromium
system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f '$${db:Status-Status}' $$p 2>/dev/null | grep -qx installed || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null; \
	fi

## ruff, ruff format --check and mypy --strict, as make test runs them.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

## Create .venv with dagwright and its operator, runner and dev extras (reinstalled when pyproject.toml changes).
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[operator,runner,dev]'
	touch $@

## Build (first time: many minutes) the control-plane binaries into ~/.cache/dagwright/cluster.
cluster-build:
	$(PLANE) build

## Start the local control plane (or reuse a running one) and join the real node where this machine can run one
## (root, make system-packages); prints export KUBECONFIG=...
cluster-up:
	$(PLANE) up

## Stop the local control plane (and its real node), ending only the processes cluster-up started.
cluster-down:
	$(PLANE) down

## Say whether the plane runs, with its processes and memory.
cluster-status:
	$(PLANE) status

## The e2e suite: uses KUBECONFIG if set, else the local plane (started and stopped for the run).
e2e:
	$(PYTHON) -m pytest tests/e2e -m e2e $(PYTEST_ARGS)

## kind, for machines with Docker: cluster, images (Dockerfile targets) loaded, kwok with fake nodes for the
## annotated pod fates. The real nodes are tainted so that test pods land on the fake ones; the
## operator's own pod must tolerate dagwright.io/real-node.
kind-up:
	$(PLANE) build
	@mkdir -p $(dir $(KIND_KUBECONFIG))
	KIND=$$($(PLANE) kind) && \
	  if ! $$KIND get clusters | grep -qx '$(KIND_CLUSTER)'; then \
	    $$KIND create cluster --name $(KIND_CLUSTER) --image $(KIND_NODE_IMAGE) --kubeconfig $(KIND_KUBECONFIG) --wait 120s; \
	  fi && \
	  $$KIND get kubeconfig --name $(KIND_CLUSTER) > $(KIND_KUBECONFIG) && \
	  for target in $(IMAGE_TARGETS); do \
	    docker build --target $$target -t dagwright-$$target:$(IMAGE_TAG) . && \
	    $$KIND load docker-image dagwright-$$target:$(IMAGE_TAG) --name $(KIND_CLUSTER) || exit 1; \
	  done
	KUBECONFIG=$(KIND_KUBECONFIG) $$($(PLANE) which kubectl) taint nodes --all dagwright.io/real-node=true:NoSchedule --overwrite
	$(PLANE) kwok-attach --kubeconfig $(KIND_KUBECONFIG)
	@echo "export KUBECONFIG=$(KIND_KUBECONFIG)   # then: make e2e"

## Delete the kind cluster and the kwok that kind-up attached.
kind-down:
	-$(PLANE) kwok-detach
	KIND=$$($(PLANE) kind) && $$KIND delete cluster --name $(KIND_CLUSTER)
