# zcfuse front door. `make help` lists the targets.
#
# Go comes from PATH, else /usr/local/go/bin. Most targets need root only
# where they mount (demo, the tests) or install packages (deps).

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export GO
# Extra flags for both `go test` suites, e.g. make test GOTESTFLAGS=-v
GOTESTFLAGS ?=
export GOTESTFLAGS
# Flags for scripts/bench-first.sh, e.g. make bench BENCHFLAGS=--quick
BENCHFLAGS ?=

ENABLE_URING := /sys/module/fuse/parameters/enable_uring

.DEFAULT_GOAL := build
.PHONY: build deps uring-on test demo bench help clean

build: ## build bin/zcfuse (the default target)
	$(GO) build -o bin/zcfuse ./gosrc/cmd/zcfuse

deps: ## install fio (apt-get, root) if missing; go mod download
	@if command -v fio >/dev/null 2>&1; then \
		echo "deps: fio $$(fio --version 2>/dev/null | sed 's/^fio-//') present"; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "deps: fio is missing and cannot be installed here (needs root and apt-get): the fio tests will skip (fail under CI)"; \
	else \
		echo "deps: apt-get install -y fio"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q fio >/dev/null 2>&1 || { \
			echo "deps: package lists stale or missing; apt-get update first"; \
			apt-get update -q >/dev/null && apt-get install -y -q fio >/dev/null; } || exit 1; \
		echo "deps: installed $$(fio --version)"; \
	fi
	$(GO) mod download

uring-on: ## switch FUSE-over-io_uring on (root), or say why not
	@p=$(ENABLE_URING); \
	if [ ! -e $$p ] && [ "$$(id -u)" = 0 ]; then modprobe fuse 2>/dev/null || true; fi; \
	if [ ! -e $$p ]; then \
		echo "uring: $$p does not exist (kernel without FUSE-over-io_uring, needs 6.14+ with CONFIG_FUSE_IO_URING): uring tests will skip"; \
	elif [ "$$(cat $$p)" = Y ]; then \
		echo "uring: $$p is already Y"; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo Y > $$p && echo "uring: switched on: echo Y > $$p"; \
	else \
		echo "uring: $$p is $$(cat $$p) and we are not root: uring tests will skip"; \
	fi

test: deps build uring-on ## vet, go test -race ./gosrc/..., go test ./tests/... (timed)
	@scripts/run-suites.sh

demo: build ## mount a temporary /dev/shm directory through zcfuse and show it working
	@ZCFUSE_BIN=bin/zcfuse scripts/demo.sh

bench: deps ## first measurement: fio through dir, classic, uring, go-fuse (BENCHFLAGS=--quick)
	@scripts/bench-first.sh $(BENCHFLAGS)

help: ## list the targets
	@echo "zcfuse make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 12

clean: ## remove build outputs
	rm -rf bin build tests/out
