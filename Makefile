# Two commands set up everything on a fresh machine: `make dev` runs the product, `make test` tests it.
PY312 := $(shell scripts/find-python312)
VENV := .venv
BIN := $(VENV)/bin
# sam build resolves python3.12 from PATH; put the interpreter we found first.
SAM_VENV := $(VENV)/sam-cli
SAM := SAM_CLI_TELEMETRY=0 PATH=$(dir $(PY312)):$$PATH $(SAM_VENV)/bin/sam

UV_VERSION := 0.13.9
CHECKOV_VENV := $(VENV)/checkov
# What Lambda's python3.12 runtime has besides the layer: awslambdaric (runs a handler under the emulator) and boto3.
LAMBDA_VENV := $(VENV)/lambda-runtime
# The deployed template is arm64; `make invoke` and the tests run a build for this machine's architecture.
HOST_ARCH := $(shell uname -m | sed -e s/aarch64/arm64/)
HOST_TEMPLATE := .aws-sam/template-$(HOST_ARCH).yaml
HOST_BUILD := .aws-sam/build-$(HOST_ARCH)
BUILD_INPUTS := template.yaml $(shell find functions layers/common -type f -not -path '*/__pycache__/*')

# Lock files (*.txt), each compiled from its declared inputs (*.in); the layer's first, as the others are
# constrained by it. `make lock` after editing an .in file; `make lock UPGRADE=1` moves every pin to the newest.
LOCKS := layers/common/requirements requirements-lambda requirements-dev requirements-sam requirements-checkov
LOCK_OUT :=

.PHONY: dev test lint format stacks validate build deploy build-host invoke lock lock-check cold-start openapi prices bench clean

$(BIN)/uv:
	test -x $(BIN)/python || $(PY312) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)

$(BIN)/.installed: requirements-dev.txt $(BIN)/uv
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements-dev.txt
	touch $@

$(SAM_VENV)/.installed: requirements-sam.txt $(BIN)/uv
	$(BIN)/uv venv -q --allow-existing --python $(PY312) $(SAM_VENV)
	$(BIN)/uv pip install -q --python $(SAM_VENV)/bin/python -r requirements-sam.txt
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt $(BIN)/uv
	$(BIN)/uv venv -q --allow-existing --python $(PY312) $(CHECKOV_VENV)
	$(BIN)/uv pip install -q --python $(CHECKOV_VENV)/bin/python -r requirements-checkov.txt
	touch $@

$(LAMBDA_VENV)/.installed: requirements-lambda.txt $(BIN)/uv
	$(BIN)/uv venv -q --allow-existing --python $(PY312) $(LAMBDA_VENV)
	$(BIN)/uv pip install -q --python $(LAMBDA_VENV)/bin/python -r requirements-lambda.txt
	touch $@

lock: $(BIN)/uv
	for lock in $(LOCKS); do \
	  $(BIN)/uv pip compile -q --universal --python-version 3.12 --custom-compile-command "make lock" \
	    $(if $(UPGRADE),--upgrade) $$lock.in -o $(LOCK_OUT)$$lock.txt || exit 1; \
	done

# Fails when a lock file is not what `make lock` makes of the inputs (CI runs it through tests/test_locks.py).
lock-check: $(BIN)/uv
	@out=$$(mktemp -d); for lock in $(LOCKS); do mkdir -p $$out/$$(dirname $$lock); cp $$lock.txt $$out/$$lock.txt; done; \
	$(MAKE) -s lock LOCK_OUT=$$out/ && for lock in $(LOCKS); do \
	  diff -u $$lock.txt $$out/$$lock.txt || { echo "$$lock.txt is out of date: run make lock" >&2; exit 1; }; \
	done; rm -rf $$out

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

# What CloudFormation deploys: template.yaml laid out as a root stack and nested stacks (deploy/split.py), none
# near the 500 resources a stack may hold.
STACKS := .aws-sam/stacks
stacks: $(BIN)/.installed
	rm -rf $(STACKS)
	$(BIN)/python -m deploy.split $(STACKS)

validate: $(SAM_VENV)/.installed stacks
	$(SAM) validate --lint
	for stack in $(STACKS)/*.yaml; do $(SAM) validate --lint -t $$stack || exit 1; done

# Lambda's python3.12 runtime has botocore (with boto3), and aws-xray-sdk (the Tracer's) pulls it and what only it
# needs into the layer all the same: 33 MB that the runtime's copies make dead weight (tests/test_built_functions.py
# holds the layer to its budget).
RUNTIME_PROVIDED := botocore botocore-*.dist-info dateutil python_dateutil-*.dist-info six.py six-*.dist-info
prune-layer = cd $(1) && rm -rf $(RUNTIME_PROVIDED)

# Lambda's file system is read-only, so Python compiles every module on every cold start unless the layer
# ships bytecode: compiling it here makes imports 2.4x faster (bench/cold_start.py). The artifact never changes
# once built, so its bytecode is not checked against the source (unchecked-hash: a start reads no .py file);
# -f rewrites every file, so a build never keeps bytecode of an older source.
COMPILE_LAYER = $(PY312) -m compileall -q -f -j 0 --invalidation-mode unchecked-hash
build: $(SAM_VENV)/.installed stacks
	$(SAM) build -t $(STACKS)/template.yaml
	$(call prune-layer,.aws-sam/build/CommonLayer/python)
	$(COMPILE_LAYER) .aws-sam/build/CommonLayer/python

# Builds and deploys with the project's own SAM CLI: guided the first time (it asks for the stack's name, region
# and parameters and saves the answers in samconfig.toml), then with what samconfig.toml says. GUIDED=1 asks again.
deploy: build
	if [ -n "$(GUIDED)" ] || ! grep -q '^parameter_overrides' samconfig.toml; then \
	  $(SAM) deploy --guided; else $(SAM) deploy; fi

# The same build for this machine's architecture, in its own folder (the template's arm64 swapped for the host's).
build-host: $(HOST_BUILD)/template.yaml
$(HOST_BUILD)/template.yaml: $(SAM_VENV)/.installed $(BUILD_INPUTS)
	mkdir -p $(dir $(HOST_TEMPLATE))
	sed -E 's/(Architectures: \[|BuildArchitecture: )arm64/\1$(HOST_ARCH)/' template.yaml > $(HOST_TEMPLATE)
	$(SAM) build -t $(HOST_TEMPLATE) --base-dir . --build-dir $(HOST_BUILD)
	$(call prune-layer,$(HOST_BUILD)/CommonLayer/python)
	$(COMPILE_LAYER) $(HOST_BUILD)/CommonLayer/python
	touch $@

# Runs a built function once under the Lambda Runtime Interface Emulator: make invoke FN=GetMeFunction EVENT=events/get_me.json
invoke: build-host $(LAMBDA_VENV)/.installed $(BIN)/.installed
	$(BIN)/python -m local_runner.emulator $(FN) $(EVENT)

cold-start: $(BIN)/.installed $(SAM_VENV)/.installed
	$(BIN)/python bench/cold_start.py

openapi: $(BIN)/.installed
	$(BIN)/python -m local_runner.openapi > layers/common/echo_control/openapi.json.new
	mv layers/common/echo_control/openapi.json.new layers/common/echo_control/openapi.json

# The layer's price snapshot from genai-prices' data (after upgrading genai-prices; tests/test_pricing.py checks it).
prices: $(BIN)/.installed
	$(BIN)/python -m local_runner.prices layers/common/echo_control/prices

bench: $(BIN)/.installed
	$(BIN)/python bench/debits.py
	$(BIN)/python bench/holds.py
	$(BIN)/python bench/analytics.py
	$(BIN)/python bench/auto_top_up.py

clean:
	rm -rf $(VENV) .aws-sam .data test-output
