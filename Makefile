# Flowmesh: the two commands a newcomer needs are `make dev` and `make test`.
export UV_FROZEN := 1

## uv: the one on PATH, else uv $(UV_VERSION) installed under $(UV_HOME) by one
## `pip install` into a virtual environment of its own (no sudo, nothing outside the project).
## UV_VERSION is pinned here only (.ci/run goes through `make uv` too).
UV_VERSION := 0.13.9
UV_HOME ?= .flowmesh/tools
PYTHON ?= python3
ifeq ($(origin UV),undefined)
UV := $(or $(shell command -v uv 2>/dev/null),$(UV_HOME)/bin/uv)
endif

.PHONY: dev test unit integration lint typecheck fmt bench schemas openapi docs sync clean uv

$(UV_HOME)/bin/uv:
	@echo "uv is not on PATH: installing uv $(UV_VERSION) under $(UV_HOME)"
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

## Find or install uv, and say which (its path, then its version).
uv: $(filter $(UV_HOME)/bin/uv,$(UV))
	@echo "$(UV)"
	@$(UV) --version

sync: $(filter $(UV_HOME)/bin/uv,$(UV))
	$(UV) sync --all-packages

## Run the whole stack locally (finds or starts NATS and PostgreSQL), with a demo tenant.
dev: sync
	$(UV) run python scripts/dev.py

## Everything CI runs: lint, type checks, then every test.
test: sync lint typecheck
	$(UV) run pytest

unit: sync
	$(UV) run pytest tests/unit

integration: sync
	$(UV) run pytest tests/integration

lint: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run lint-imports
	for p in proto shared services/* sdk/python sdk/client cli tools/devtools; do $(UV) run --no-sync deptry $$p/src --config $$p/pyproject.toml || exit 1; done

typecheck: sync
	$(UV) run mypy

fmt: sync
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

## Regenerate proto/schemas/ (JSON Schemas and asyncapi.json; a test fails when stale).
schemas: sync
	$(UV) run python -m flowmesh_proto.schemas

## Regenerate services/gateway/openapi.json from the route table (a test fails when stale).
openapi: sync
	$(UV) run python -m flowmesh_gateway.openapi

## Regenerate docs/configuration.md from the settings classes and docs/actions.md from the
## catalog (a test fails when either is stale).
docs: sync
	$(UV) run python scripts/configuration_reference.py
	$(UV) run python scripts/catalog_reference.py

## Benchmarks; results are committed under bench/results/.
bench: sync
	$(UV) run python bench/registry.py --workflows 10000 --out bench/results/registry.json
	$(UV) run python bench/gateway.py --workflows 10000 --wrk --out bench/results/gateway.json
	$(UV) run python bench/ingress.py --events 2000 --out bench/results/ingress.json
	$(UV) run python bench/noisy_neighbour.py --out bench/results/noisy_neighbour.json
	$(UV) run python bench/fairness.py --out bench/results/fairness.json
	$(UV) run python bench/history.py --out bench/results/history.json
	$(UV) run python bench/console.py --out bench/results/console.json

clean:
	rm -rf .flowmesh .pytest_cache .mypy_cache .ruff_cache .hypothesis
