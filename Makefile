# Two commands set up everything on a fresh machine: `make dev` runs the product, `make test` tests it.
PY312 := $(shell scripts/find-python312)
VENV := .venv
BIN := $(VENV)/bin
# sam build resolves python3.12 from PATH; put the interpreter we found first.
SAM_VENV := $(VENV)/sam-cli
SAM := SAM_CLI_TELEMETRY=0 PATH=$(dir $(PY312)):$$PATH $(SAM_VENV)/bin/sam

.PHONY: dev test lint format validate build cold-start openapi bench clean

$(BIN)/.installed: requirements-dev.txt layers/common/requirements.txt
	test -x $(BIN)/python || $(PY312) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements-dev.txt
	touch $@

$(SAM_VENV)/.installed: requirements-sam.txt $(BIN)/.installed
	$(BIN)/uv venv -q --python $(PY312) $(SAM_VENV)
	$(BIN)/uv pip install -q --python $(SAM_VENV)/bin/python -r requirements-sam.txt
	touch $@

dev: $(BIN)/.installed
	$(BIN)/python -m local_runner

test: $(BIN)/.installed
	scripts/ensure-chromium
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

validate: $(SAM_VENV)/.installed
	$(SAM) validate --lint

# Lambda's file system is read-only, so Python compiles every module on every cold start unless the layer
# ships bytecode: compiling it here makes imports 2.4x faster (bench/cold_start.py).
build: $(SAM_VENV)/.installed
	$(SAM) build
	$(PY312) -m compileall -q -j 0 --invalidation-mode checked-hash .aws-sam/build/CommonLayer/python

cold-start: $(BIN)/.installed
	$(BIN)/python bench/cold_start.py

openapi: $(BIN)/.installed
	$(BIN)/python -m local_runner.openapi > layers/common/echo_control/openapi.json.new
	mv layers/common/echo_control/openapi.json.new layers/common/echo_control/openapi.json

bench: $(BIN)/.installed
	$(BIN)/python bench/debits.py
	$(BIN)/python bench/analytics.py

clean:
	rm -rf $(VENV) .aws-sam .data test-output
