# autodeploy: every task has one command here. `make help` lists them.
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help install run down test test-unit test-integration chaos lint format typecheck docs bench clean lag-report manifests

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-18s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv and install autodeploy with its dev tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

run: install ## start the local pipeline on this machine (Kafka broker, topics, ...)
	@command -v prometheus >/dev/null || apt-get install -y -q prometheus >/dev/null || echo "run: no prometheus (Debian: apt-get install prometheus): verify checks will hold"
	$(BIN)/autodeploy up

down: install ## stop what `make run` started
	$(BIN)/autodeploy kafka down
	$(BIN)/autodeploy cluster down

test: lint typecheck docs ## ruff, mypy, the docs build, then every test (unit, and integration against real services)
	$(BIN)/pytest

test-unit: install ## fast tests, no services
	$(BIN)/pytest tests/unit

chaos: install ## the fault suite (tests/chaos; also part of `make test`): kills and outages at scale, figures at the end
	$(BIN)/pytest tests/chaos

test-integration: install ## tests against a real Kafka broker (started from cached jars unless KAFKA_BOOTSTRAP_SERVERS is set)
	$(BIN)/pytest tests/integration

lint: install ## ruff check and format check, and the import contracts (.importlinter)
	$(BIN)/ruff check streams tests bench
	$(BIN)/ruff format --check streams tests bench
	$(BIN)/lint-imports --no-logo

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format streams tests bench
	$(BIN)/ruff check --fix streams tests bench

typecheck: install ## mypy --strict on streams/
	$(BIN)/mypy

docs: install ## build the documentation site (docs/, mkdocs.yml) into site/; --strict fails on a broken link
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: install ## benchmarks, each as a ratio to a baseline measured in the same run (results in bench/results.json)
	@command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null || { echo "bench: install wrk (Debian: apt-get install wrk)"; exit 2; }
	@command -v prometheus >/dev/null || apt-get install -y -q prometheus >/dev/null || { echo "bench: install prometheus (Debian: apt-get install prometheus)"; exit 2; }
	$(BIN)/python -m bench.signing
	$(BIN)/python -m bench.webhooks
	$(PYTHON) -m venv .venv-quix  # Quix Streams pins confluent-kafka < 2.13; autodeploy needs >= 2.16
	.venv-quix/bin/pip install -q 'quixstreams>=3.28,<4' cloudevents pyyaml jsonschema jsonschema-rs orjson msgspec pynacl
	.venv-quix/bin/pip install -q --no-deps -e .
	$(BIN)/python -m bench.join --quix .venv-quix/bin/python
	$(BIN)/python -m bench.capacity
	$(BIN)/python -m bench.rss
	$(BIN)/python -m bench.policy_memory
	$(BIN)/python -m bench.merge_latency
	$(BIN)/python -m bench.e2e
	$(BIN)/python -m bench.promotion
	$(BIN)/python -m bench.board

PROMETHEUS_URL ?= http://127.0.0.1:9090
LAG_SINCE ?= 1h
LAG_REPORT ?= lag-report.png
lag-report: $(VENV)/.report-installed ## consumer lag over time from Prometheus as a PNG (PROMETHEUS_URL, LAG_SINCE=1h, LAG_REPORT=lag-report.png)
	$(BIN)/autodeploy lag-report --prometheus $(PROMETHEUS_URL) --since $(LAG_SINCE) --out $(LAG_REPORT)

$(VENV)/.report-installed: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[report]'
	touch $@

manifests: install ## render k8s/ with kustomize: OVERLAY=dev or prod (default), base
	$(BIN)/autodeploy manifests $(or $(OVERLAY),prod)

clean: ## remove the virtualenv and test leftovers (the download cache in ~/.cache/autodeploy stays)
	rm -rf $(VENV) .venv-quix .pytest-state .pytest_cache .mypy_cache .ruff_cache site .import_linter_cache
