# dagwright developer targets.
#
# The e2e control plane (tests/e2e/cluster/plane.py) is built from pinned Go modules and run
# as local processes; no Docker is needed. On a machine with Docker, kind-up gives the same
# e2e suite a kind cluster instead (export the KUBECONFIG it prints).

PYTHON ?= python3
PLANE := $(PYTHON) -m tests.e2e.cluster.plane
PYTEST_ARGS ?=

KIND_CLUSTER ?= dagwright
KIND_NODE_IMAGE ?= kindest/node:v1.34.0
KIND_KUBECONFIG ?= $(HOME)/.cache/dagwright/cluster/kind/kubeconfig
IMAGE_TAG ?= e2e
IMAGE_TARGETS ?= operator node-runner

VENV ?= .venv
VPY := $(VENV)/bin/python

IMAGE_TAG ?= 0.1.0

.PHONY: images example test chaos redis-server lint venv cluster-build cluster-up cluster-down cluster-status e2e kind-up kind-down

## Both images, where Docker exists (not on the machines this was built on).
images:
	docker build --target operator -t dagwright-operator:$(IMAGE_TAG) .
	docker build --target node-runner -t dagwright-node-runner:$(IMAGE_TAG) .

## Run an example end to end on this machine, no cluster (installs dagwright into .venv first).
example: $(VENV)/.installed
	$(VENV)/bin/dagwright run examples/diamond.yaml

## Everything CI runs: dependencies, lint, types, and the whole test suite including e2e on the local plane.
test: $(VENV)/.installed redis-server
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
chaos: $(VENV)/.installed redis-server
	rm -f $(CHAOS_REPORT)
	DAGWRIGHT_CHAOS_WORKFLOWS=$(CHAOS_WORKFLOWS) DAGWRIGHT_CHAOS_NODES=$(CHAOS_NODES) \
	DAGWRIGHT_CHAOS_KILL_EVERY=$(CHAOS_KILL_EVERY) DAGWRIGHT_CHAOS_REPORT=$(CURDIR)/$(CHAOS_REPORT) \
	  $(VPY) -m pytest tests/e2e/chaos tests/integration/node_runner/test_redis_faults.py -q $(PYTEST_ARGS); \
	status=$$?; cat $(CHAOS_REPORT); exit $$status

## Debian's redis-server, for the tests that start a real one.
redis-server:
	@command -v redis-server >/dev/null || { echo "installing redis-server (Debian package)"; \
	  (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null; }

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[operator,runner,dev]'
	touch $@

## Build (first time: many minutes) the control-plane binaries into ~/.cache/dagwright/cluster.
cluster-build:
	$(PLANE) build

## Start the local control plane (or reuse a running one); prints export KUBECONFIG=...
cluster-up:
	$(PLANE) up

## Stop the local control plane, ending only the processes cluster-up started.
cluster-down:
	$(PLANE) down

cluster-status:
	$(PLANE) status

## The e2e suite: uses $$KUBECONFIG if set, else the local plane (started and stopped for the run).
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

kind-down:
	-$(PLANE) kwok-detach
	KIND=$$($(PLANE) kind) && $$KIND delete cluster --name $(KIND_CLUSTER)
