# iotpipe: one entry point for developers and CI. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SETUP_STAMP := $(VENV)/.iotpipe-setup
# pytest markers that need a real service; `make test-unit` deselects them
SERVICE_MARKERS := kafka or hbase or flink or kube or helm or browser or e2e or images
MYPY_DIRS = $(wildcard libs/iotcommon/iotcommon stack/iotpipe_stack simulators/iot_simulators \
	services/stream_job/stream_job services/hbase_sync/hbase_sync services/ws_bridge/ws_bridge operator/iot_operator \
	bench)

.PHONY: help setup run up stop down status logs test test-unit lint lock bench clean-state kube-tools helm charts browser images image-tools

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The main venv: rebuilt only when the pins or pyproject change. The .pth puts every source root on sys.path, so
# packages added later need no reinstall.
$(SETUP_STAMP): requirements/dev.lock pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 not found (install python3.11)" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements/dev.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	$(BIN)/python -c 'import pathlib, sysconfig, tomllib; root = pathlib.Path.cwd(); \
	  where = tomllib.load(open("pyproject.toml", "rb"))["tool"]["setuptools"]["packages"]["find"]["where"]; \
	  pathlib.Path(sysconfig.get_paths()["purelib"], "iotpipe-src.pth").write_text("".join(f"{root / w}\n" for w in where))'
	@touch $@

setup: $(SETUP_STAMP) ## .venv, .venv-flink, Kafka/HBase/connector jars (jars cached in IOTPIPE_CACHE; fast when done)
	@$(BIN)/iotpipe local install >/dev/null
	@sh services/ws_bridge/fetch-uplot.sh  # the dashboard's chart library (npm, pinned + integrity-checked)

run: setup ## start the stack (+ pipeline processes) and stay in the foreground until Ctrl-C; ARGS=--detach to return
	$(BIN)/iotpipe run $(ARGS)

up: setup ## start the local stack in the background and wait until ready
	$(BIN)/iotpipe local up

stop: ## stop everything `make run` / `make up` started (no process left)
	@if [ -x $(BIN)/iotpipe ]; then $(BIN)/iotpipe local down; else echo "nothing to stop (no .venv)"; fi

down: stop

status: ## what runs where (Kafka, HBase, Thrift, Flink runtime, pipeline processes)
	@$(BIN)/iotpipe local status || true

logs: ## last log lines of every component (C=kafka for one)
	@$(BIN)/iotpipe local logs $(C)

lock: $(SETUP_STAMP) ## re-lock requirements/*.lock (with hashes) whose inputs changed: dev.txt, flink.txt, pyproject extras
	$(BIN)/python -m iotpipe_stack.locks $(ARGS)

# pytest exit 5 = "no tests collected": that must fail, not pass silently. PYTEST_WORKERS=N runs `make test` on N
# pytest-xdist workers (0, the default: one process). Two workers on this 2-core machine were slower, not faster
# (a full run 36 min at load 20-58, one process 32 min): the JVM-heavy tests then compete for the cores. conftest.py
# keeps each test module, and the tests of the local cluster and the images, on one worker.
PYTEST_WORKERS ?= 0
test: setup browser kube-tools cluster-tools helm images ## every test, including the real services (Kafka, HBase, Flink, ...) and the browser
	@set +e; $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

browser: ## headless Chromium for the browser tests (Debian's package, installed with apt-get when missing)
	@command -v chromium >/dev/null || { SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test-unit: setup ## fast tests only (no services)
	@set +e; $(BIN)/python -m pytest -m "not ($(SERVICE_MARKERS))" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-unit: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: $(SETUP_STAMP) ## ruff + mypy (strict) + import-linter contracts (pyproject.toml); CI runs it (tests/test_lint.py)
	$(BIN)/ruff check .
	$(BIN)/mypy $(MYPY_DIRS)
	$(BIN)/lint-imports

bench: setup ## run every bench/bench_*.py (each prints figures and ends with one JSON line)
	@set -e; for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

.PHONY: chaos
chaos: setup ## chaos run: every component killed with -9 during a 500k-reading load, nothing lost (docs/chaos.md)
	$(BIN)/python bench/chaos_e2e.py $(ARGS)

.PHONY: bench-e2e
bench-e2e: setup ## whole pipeline under stepped open-loop load: JSON line, docs/performance-runs.md, docs/img/perf-*.png (ARGS=--quick)
	nice -n 10 $(BIN)/python bench/bench_e2e.py --doc docs/performance-runs.md --img docs/img $(ARGS)

images: setup image-tools ## build every image with podman (local base stand-ins, cached); loads them into containerd at CONTAINERD_ADDRESS
	nice -n 10 $(BIN)/python -m iotpipe_stack.images $(ARGS)

image-tools: ## podman + runc + debootstrap (Debian's packages, installed with apt-get when missing)
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); $$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq podman runc debootstrap >/dev/null; }

kube-tools: ## build kube-apiserver, kubectl, etcd from the Go module proxy into IOTPIPE_CACHE/bin (cached per version)
	bash stack/kube/build.sh

.PHONY: cluster-tools cluster cluster-down
cluster-tools: kube-tools ## build kubelet, controller-manager, scheduler, kube-proxy, CoreDNS (Go module proxy; cached per version)
	bash stack/kube/build-cluster.sh

cluster: setup cluster-tools ## start a real single-node Kubernetes (root; docs/local-cluster.md); prints KUBECONFIG, CONTAINERD_ADDRESS
	$(BIN)/python -m iotpipe_stack.cluster up

cluster-down: ## stop the local cluster: no process, mount, interface or iptables chain stays
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m iotpipe_stack.cluster down; else echo "nothing to stop (no .venv)"; fi

helm: ## build helm from the Go module proxy into IOTPIPE_CACHE/bin (cached per version)
	bash stack/kube/build-helm.sh

charts: setup helm ## chart, image and skaffold checks: helm lint/template, schemas, hadolint, dry-run apply (kube)
	@$(BIN)/python -m pytest charts/tests $(PYTEST_ARGS)

clean-state: stop ## stop and delete the local stack data and stream job checkpoints (IOTPIPE_HOME, default ./.iotpipe)
	$(BIN)/iotpipe local down --wipe
