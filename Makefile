# kubecircus developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help deps venv lint test test-unit test-go test-converter bench clean

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

test: venv lint test-go cluster-up ## lint, bring the local cluster up, run the whole suite
	$(BIN)/pytest

test-unit: venv lint ## only the tests that need no cluster
	$(BIN)/pytest -m "not cluster"

test-go: ## unit tests of the cluster's Go parts (the NetworkPolicy enforcer)
	cd hack/cluster/kube && go vet ./netpol/ && go test ./netpol/

test-converter: venv ## only the converter's tests
	$(BIN)/pytest tests/converter

bench: venv ## converter benchmark against dcm2niix and SimpleITK (takes minutes)
	$(BIN)/python benchmarks/bench_convert.py

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info build dist

.PHONY: cluster-deps cluster-up cluster-down images

cluster-deps: ## install the Debian packages the local cluster runs on (as root)
	hack/cluster/install-deps.sh

cluster-up: cluster-deps ## start the local single-node cluster (kind where Docker is); writes .cluster/kubeconfig
	hack/cluster/up.sh

cluster-down: ## stop the local cluster and remove its state
	hack/cluster/down.sh

images: ## build the project's images and load them into the cluster
	hack/cluster/images.sh
