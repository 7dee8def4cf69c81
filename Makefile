# zcfuse front door. `make help` lists the targets.
#
# Go comes from PATH, else /usr/local/go/bin. Most targets need root only
# where they mount (demo, the tests) or install packages (deps).

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export GO
# Extra flags for both `go test` suites, e.g. make test GOTESTFLAGS=-v
GOTESTFLAGS ?=
export GOTESTFLAGS
# Flags for `zcfuse bench`, e.g. make bench BENCHFLAGS="--smoke" or
# BENCHFLAGS="--json docs/bench.json --plot docs/bench.png"
BENCHFLAGS ?=

ENABLE_URING := /sys/module/fuse/parameters/enable_uring

# The library's version comes from include/zcfuse.h, the one place it is set.
VERSION_PART = $(shell sed -n 's/^\#define ZCFUSE_VERSION_$(1) \([0-9]*\)/\1/p' include/zcfuse.h)
MAJOR := $(call VERSION_PART,MAJOR)
VERSION := $(MAJOR).$(call VERSION_PART,MINOR).$(call VERSION_PART,PATCH)
SONAME := libzcfuse.so.$(MAJOR)
LIB := build/libzcfuse.so.$(VERSION)
PREFIX ?= /usr/local

.DEFAULT_GOAL := build
.PHONY: build lib deps uring-on test fuzz demo bench help clean install FORCE

build: bin/zcfuse lib ## build bin/zcfuse and the library (the default target)

bin/zcfuse: FORCE
	$(GO) build -o bin/zcfuse ./gosrc/cmd/zcfuse

lib: $(LIB) ## build/libzcfuse.so (SONAME, only zcfuse_* exported) and a staged install in build/stage

# go build decides itself whether anything changed; FORCE makes make ask it.
$(LIB): FORCE
	@mkdir -p build
	$(GO) build -buildmode=c-shared \
		-ldflags "-extldflags '-Wl,-soname,$(SONAME) -Wl,--version-script=$(CURDIR)/capi/zcfuse.map'" \
		-o build/.libzcfuse.new ./capi
	@rm -f build/.libzcfuse.new.h  # cgo's generated header is not the API: include/zcfuse.h is
	@# Replace the library only when it changed, so dependents do not relink.
	@if cmp -s build/.libzcfuse.new $(LIB); then rm build/.libzcfuse.new; else mv build/.libzcfuse.new $(LIB); fi
	@ln -sf libzcfuse.so.$(VERSION) build/$(SONAME)
	@ln -sf $(SONAME) build/libzcfuse.so
	@$(MAKE) --no-print-directory install PREFIX=$(CURDIR)/build/stage SKIP_BUILD=1 >/dev/null

FORCE:

install: ## install library, header, zcfuse.pc, CMake config and CLI under PREFIX (default /usr/local)
	@[ -n "$(SKIP_BUILD)" ] || $(MAKE) --no-print-directory build
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/lib/cmake/zcfuse $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libzcfuse.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libzcfuse.so
	install -m 0644 include/zcfuse.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' capi/pkg/zcfuse.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/zcfuse.pc
	for f in zcfuseConfig.cmake zcfuseConfigVersion.cmake; do \
		sed -e 's|@VERSION@|$(VERSION)|' -e 's|@SOVERSION@|$(MAJOR)|' -e 's|@MAJOR@|$(MAJOR)|' \
			capi/pkg/$$f > $(DESTDIR)$(PREFIX)/lib/cmake/zcfuse/$$f; done
	if [ -x bin/zcfuse ]; then install -m 0755 bin/zcfuse $(DESTDIR)$(PREFIX)/bin/; fi

deps: ## install fio, cmake, pkg-config, python3-numpy/-setuptools/-wheel (apt-get, root) if missing; go mod download
	@missing=; for p in fio cmake pkg-config; do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	for p in python3-numpy python3-setuptools python3-wheel; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then \
		echo "deps: fio $$(fio --version 2>/dev/null | sed 's/^fio-//'), cmake $$(cmake --version | sed -n 's/^cmake version //p'), pkg-config, python3-numpy present"; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "deps:$$missing missing and cannot be installed here (needs root and apt-get): the fio tests will skip (fail under CI); the c suite needs cmake and pkg-config; the python suite needs python3-numpy"; \
	else \
		echo "deps: apt-get install -y$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q $$missing >/dev/null 2>&1 || { \
			echo "deps: package lists stale or missing; apt-get update first"; \
			apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; } || exit 1; \
		echo "deps: installed$$missing"; \
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

test: deps build uring-on ## vet, go test -race ./gosrc/..., go test ./tests/..., ctest, a 30 s wire fuzz run (timed)
	@scripts/run-suites.sh

fuzz: ## bounded fuzz run of the wire decoder (30 s)
	$(GO) test -run=^$$ -fuzz=FuzzDecode -fuzztime=30s ./gosrc/wire/

demo: build ## mount a temporary /dev/shm directory through zcfuse and show it working
	@ZCFUSE_BIN=bin/zcfuse scripts/demo.sh

bench: deps bin/zcfuse uring-on ## zcfuse bench: fio through dir, classic, uring, go-fuse, passthrough (BENCHFLAGS=--smoke)
	bin/zcfuse bench $(BENCHFLAGS)

help: ## list the targets
	@echo "zcfuse make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 12

clean: ## remove build outputs
	rm -rf bin build tests/out
