# kubecircus developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help deps venv lint test test-unit test-converter bench bench-staging bench-orchestration bench-queue chaos clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install the system packages the tests use (Debian/Ubuntu, as root)
	hack/install-deps.sh

$(BIN)/.installed: pyproject.toml
	hack/install-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip "setuptools>=69" wheel
	$(BIN)/python -m pip install -q -e '.[converter,worker,operator,client,test]'
	touch $@

venv: $(BIN)/.installed ## create .venv with kubecircus (editable) and every extra

lint: venv ## ruff lint and format check, generated CRDs up to date
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/kubecircus generate --check

# The end-to-end tests expire finished jobs after a minute to exercise the history TTL, and give
# up on pods that do not start after 30 s to exercise the pending deadline.
TEST_DEPLOY_VALUES ?= --set history.ttlSeconds=60 --set jobs.pendingDeadlineSeconds=30

test: venv lint cluster-up ## lint, start the cluster, deploy the chart, run the whole suite
	$(MAKE) deploy DEPLOY_VALUES="$(TEST_DEPLOY_VALUES)"
	$(BIN)/pytest

test-unit: venv lint ## only the tests that need Python alone: no cluster, no MinIO or helm binary
	$(BIN)/pytest -m "not cluster and not store and not tools"

test-converter: venv ## only the converter's tests
	$(BIN)/pytest tests/converter

bench: venv ## converter benchmark against dcm2niix and SimpleITK (takes minutes)
	$(BIN)/python benchmarks/bench_convert.py

bench-staging: venv ## P4: the stage step against a plain parallel download from MinIO (needs the MinIO binary: make cluster-up)
	$(BIN)/python benchmarks/bench_staging.py

bench-orchestration: venv deploy ## P2: a no-op PluginJob against a bare pod on the local cluster
	$(BIN)/python benchmarks/bench_orchestration.py

bench-queue: venv deploy ## queue scale: API load of 1,000 waiting jobs, writes per job, admission latency, throughput vs batch/v1 (about 10 min)
	$(BIN)/python benchmarks/bench_queue.py

chaos: venv cluster-up ## the operator SIGKILLed at random while 50 jobs run (make test runs 8; about 25 min)
	$(MAKE) deploy DEPLOY_VALUES="$(TEST_DEPLOY_VALUES)"
	KUBECIRCUS_CHAOS_JOBS=50 $(BIN)/pytest tests/e2e/test_chaos.py

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info build dist

.PHONY: cluster-deps cluster-up cluster-down images

cluster-deps: ## install the Debian packages the local cluster runs on (as root)
	hack/cluster/install-deps.sh

cluster-up: cluster-deps ## start the local single-node cluster (kind where Docker is); writes .cluster/kubeconfig
	hack/cluster/up.sh

cluster-down: ## stop the local cluster and remove its state
	hack/cluster/down.sh

images: ## build the project's images and load them into the cluster; REGISTRY=host/path [PUSH=1] also tags (and pushes) operator, worker and lesion-candidates for a real cluster
	REGISTRY=$(REGISTRY) PUSH=$(PUSH) hack/cluster/images.sh

.PHONY: generate crds crds-check deploy demo undeploy

# Local images keep their tag (:dev); the build stamp in a pod annotation restarts the operator
# when its image was rebuilt.
IMAGE_STAMPS = $${KUBECIRCUS_CACHE:-$$HOME/.cache/kubecircus}/images

generate: venv ## regenerate every generated file: crds/ (and the chart's copy) from the API models, the chart's operator environment from config.py
	$(BIN)/kubecircus generate

crds: generate

crds-check: venv ## fail if a generated file differs from its source
	$(BIN)/kubecircus generate --check

deploy: venv cluster-up images ## install the chart (release kubecircus, namespace kubecircus-system) with the local images
	.cluster/bin/kubectl --kubeconfig .cluster/kubeconfig apply --server-side -f crds/
	.cluster/bin/helm --kubeconfig .cluster/kubeconfig upgrade --install kubecircus helm/kubecircus \
	  --namespace kubecircus-system --create-namespace -f helm/kubecircus/values-local.yaml \
	  --set-string 'operator.podAnnotations.kubecircus\.io/image-build'="$$(cat $(IMAGE_STAMPS)/operator.tar.stamp)" \
	  $(DEPLOY_VALUES) --wait --timeout 5m
	.cluster/bin/kubectl --kubeconfig .cluster/kubeconfig -n kubecircus-system rollout status deployment/kubecircus-operator --timeout=120s

demo: deploy ## a real plug-in analyses a CT phantom end to end on the local cluster
	$(BIN)/python hack/demo.py

undeploy: ## uninstall the chart (CRDs and PluginJobs stay)
	.cluster/bin/helm --kubeconfig .cluster/kubeconfig uninstall kubecircus --namespace kubecircus-system
