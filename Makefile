# modelship developer workflow. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/modelship/modelship/cli.Version=$(VERSION)
BIN := bin/modelship
STATICCHECK_VERSION := v0.8.2
TEST_TIMEOUT ?= 25m

.PHONY: help setup k8s-binaries k8s-up k8s-down build run test test-short fuzz bench faults check fmt docs clean

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: ## install what tests and the quick start need (apt packages, ONNX Runtime)
	@bash scripts/setup.sh

# The linker writes its output through a shared mapping, which leaves the
# file's page cache in large folios (up to 2 MiB); Linux 6.18 maps a whole
# folio at a fault, so every modelship process (server, each replica) would
# keep tens of MB of the binary resident that it never uses. Writing the file
# again with write(2) gives it ordinary page-sized cache pages (measured in
# docs/architecture.md, "Memory"). Written beside and renamed, so running
# processes keep their binary.
build: ## build bin/modelship
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN).link ./cmd/modelship
	@cat $(BIN).link >$(BIN).new && chmod 755 $(BIN).new && mv -f $(BIN).new $(BIN) && rm -f $(BIN).link

run: setup build ## quick start: server + a model registered, served and scored (Ctrl-C stops)
	@bash scripts/quickstart.sh

k8s-binaries: ## build (once, cached by version) the Kubernetes binaries the tests run: etcd, kube-apiserver, controller-manager, scheduler, KWOK, kubelet, kube-proxy, pause
	@bash scripts/k8s-binaries.sh >/dev/null

K8S_RUN_DIR ?= /tmp/modelship-k8s-node
k8s-up: ## (root) start a real single-node Kubernetes cluster with containerd in $(K8S_RUN_DIR); prints KUBECONFIG and the node IP
	@bash scripts/k8s-node.sh up $(K8S_RUN_DIR)

k8s-down: ## (root) stop the single-node cluster of k8s-up; fails if anything is left behind
	@bash scripts/k8s-node.sh down $(K8S_RUN_DIR)

test: setup k8s-binaries ## run every test (real processes, real Python, real ONNX Runtime, a real kube-apiserver), then each fuzz target briefly
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	@bash scripts/fuzz.sh 10s

test-short: ## unit tests only
	$(GO) test -short -count=1 ./...

bench: setup build ## run the benchmarks (see BENCHMARKS.md)
	@bash scripts/bench.sh

fuzz: ## run every fuzz target for 60s
	@bash scripts/fuzz.sh 60s

faults: setup ## fault suite: replica and server kill -9, updates and traffic changes under load, slow and huge requests
	@bash scripts/faults.sh

check: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

docs: ## regenerate docs/cli.md from the command definitions
	$(GO) run ./cmd/modelship gen-docs > docs/cli.md

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build output
	rm -rf bin
