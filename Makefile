# kubecircus developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help deps venv lint test test-converter bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install the system packages the tests use (Debian/Ubuntu, as root)
	hack/install-deps.sh

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip "setuptools>=69" wheel
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/.installed ## create .venv with kubecircus (editable) and its test extras

lint: venv ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: venv lint ## lint, then the whole test suite
	$(BIN)/pytest

test-converter: venv ## only the converter's tests
	$(BIN)/pytest tests/converter

bench: venv ## converter benchmark against dcm2niix and SimpleITK (takes minutes)
	$(BIN)/python benchmarks/bench_convert.py

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info build dist
