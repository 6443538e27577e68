# Two commands matter: `make run` (serve the embedded default) and `make test`.
SHELL := /bin/bash
# uv from PATH, else bootstrapped once into .tools/ with the machine's python3.
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv/.synced
# Never download a Python: use the machine's python3 (3.11 or newer).
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint format schema schema-check migrate clean

run: $(VENV)
	.venv/bin/backline migrate
	exec .venv/bin/backline serve

test: $(VENV) lint schema-check
	.venv/bin/pytest $(PYTEST_ARGS)

lint: $(VENV)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: $(VENV)
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

schema: $(VENV)
	.venv/bin/backline export-schema --output schema.graphql

schema-check: $(VENV)
	.venv/bin/backline export-schema --output schema.graphql --check

migrate: $(VENV)
	.venv/bin/backline migrate

$(VENV): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

clean:
	rm -rf .venv .tools .pytest_cache
