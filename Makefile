# Two commands matter: `make run` (serve the embedded default) and `make test`.
SHELL := /bin/bash
# uv from PATH, else bootstrapped once into .tools/ with the machine's python3.
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv/.synced
# Never download a Python: use the machine's python3 (3.11 or newer).
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint format schema schema-check contract contract-check migrate clean

run: $(VENV)
	.venv/bin/backline migrate
	exec .venv/bin/backline serve

test: $(VENV) lint schema-check contract-check
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

# The front-end contract (frontend-contract/): typed documents and the trusted manifest
# generated from operations/*.graphql and schema.graphql. `make contract` regenerates
# them; the check fails when they are stale or an operation no longer validates.
CONTRACT := frontend-contract
CONTRACT_DEPS := $(CONTRACT)/node_modules/.installed
NPM := $(shell command -v npm 2>/dev/null)

contract: $(CONTRACT_DEPS)
	cd $(CONTRACT) && node scripts/contract.mjs

contract-check:
ifeq ($(NPM),)
	@if [ "$$CI" = true ]; then echo "CI needs Node.js 20.19+ and npm for the front-end contract" >&2; exit 1; fi
	@echo "Skipping the front-end contract (no npm on PATH; install Node.js 20.19+ to run it)."
else
	@$(MAKE) --no-print-directory $(CONTRACT_DEPS)
	cd $(CONTRACT) && node scripts/contract.mjs --check && npx tsc --noEmit -p tsconfig.json
endif

$(CONTRACT_DEPS): $(CONTRACT)/package.json $(CONTRACT)/package-lock.json
	cd $(CONTRACT) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

migrate: $(VENV)
	.venv/bin/backline migrate

$(VENV): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

clean:
	rm -rf .venv .tools .pytest_cache $(CONTRACT)/node_modules $(CONTRACT)/artifacts
