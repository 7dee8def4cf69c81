# zcfuse front door. `make help` lists the targets.
#
# Go comes from PATH, else /usr/local/go/bin. Most targets need root only
# where they mount (demo, the tests) or install packages (deps).

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export GO
# Extra flags for both `go test` suites, e.g. make test GOTESTFLAGS=-v
GOTESTFLAGS ?=
export GOTESTFLAGS
# Flags for zcfuse-bench, e.g. make bench BENCHFLAGS="--smoke" or
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
# Debian's python3 (/usr/bin), which sees the Debian packages make deps
# installs; a python3 earlier on PATH (pyenv) may lack setuptools and wheel.
PYTHON ?= $(shell [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3)
# What `make python` needs to build a wheel and a venv without the network.
PYTHON_PKGS := python3-venv python3-pip python3-setuptools python3-wheel

.DEFAULT_GOAL := build
.PHONY: build lib deps python-deps python uring-on test fuzz demo bench help clean install FORCE

build: bin/zcfuse lib ## build bin/zcfuse and the library (the default target)

bin/zcfuse: FORCE
	$(GO) build -buildvcs=auto -o bin/zcfuse ./gosrc/cmd/zcfuse

# The benchmark harness, a tool of its own (not linked into bin/zcfuse):
# it mounts with the bin/zcfuse beside it.
bin/zcfuse-bench: FORCE
	$(GO) build -buildvcs=auto -o bin/zcfuse-bench ./gosrc/cmd/zcfuse-bench

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

# apt_install: shell lines that apt-get install the Debian packages in
# $$missing (root and apt-get needed; an update first when the lists are
# stale), or say why they cannot, naming what then fails ($(1)).
define apt_install
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "deps:$$missing missing and cannot be installed here (needs root and apt-get): $(1)"; \
	else \
		echo "deps: apt-get install -y$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q $$missing >/dev/null 2>&1 || { \
			echo "deps: package lists stale or missing; apt-get update first"; \
			apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; } || exit 1; \
		echo "deps: installed$$missing"; \
	fi
endef

deps: ## install fio, cmake, pkg-config, python3-numpy/-venv/-pip/-setuptools/-wheel (apt-get, root) if missing; go mod download
	@missing=; for p in fio cmake pkg-config; do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	for p in python3-numpy $(PYTHON_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then \
		echo "deps: fio $$(fio --version 2>/dev/null | sed 's/^fio-//'), cmake $$(cmake --version | sed -n 's/^cmake version //p'), pkg-config, python3-numpy, $(PYTHON_PKGS) present"; \
	else \
		$(call apt_install,the fio tests will skip (fail under CI); the c suite needs cmake and pkg-config; the python suite needs python3-numpy and $(PYTHON_PKGS)); \
	fi
	$(GO) mod download

python-deps: ## install python3-venv, -pip, -setuptools, -wheel (apt-get, root) if missing
	@command -v dpkg >/dev/null 2>&1 || { echo "deps: no dpkg: $(PYTHON) needs venv, ensurepip, pip, setuptools >= 61 and wheel"; exit 0; }; \
	missing=; for p in $(PYTHON_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		$(call apt_install,make python needs them); \
	fi

python: python-deps lib ## a wheel of bindings/python carrying the library (build/dist), installed in build/venv
	$(PYTHON) bindings/python/make_wheel.py --lib $(LIB) --dist build/dist --venv build/venv

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

test: deps build uring-on ## run every suite below, timed, then a summary with each one's skips
#   vet      go vet ./...
#   gosrc    go test -race ./gosrc/...
#   tests    go test ./tests/... (end to end: mounts, fio, both transports)
#   c        ctest: the C tests and examples (CMakeLists.txt), against build/
#   python   the binding's unittests (bindings/python/tests), its wheel included
#   rust     cargo test of zcfuse-sys and zcfuse (bindings/rust)
#   readme   the README's code blocks, pasted into a fresh clone
#   fuzz     a 30 s run of the wire decoder's fuzzer (make fuzz)
	@scripts/run-suites.sh

fuzz: ## bounded fuzz run of the wire decoder (30 s)
	$(GO) test -run=^$$ -fuzz=FuzzDecode -fuzztime=30s ./gosrc/wire/

demo: build ## mount a temporary /dev/shm directory through zcfuse and show it working
	@ZCFUSE_BIN=bin/zcfuse scripts/demo.sh

bench: deps bin/zcfuse bin/zcfuse-bench uring-on ## build bin/zcfuse-bench, the benchmark harness, and run it with BENCHFLAGS (e.g. --smoke)
	bin/zcfuse-bench $(BENCHFLAGS)

help: ## list the targets
	@echo "zcfuse make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 14
	@echo "make test runs these suites (scripts/run-suites.sh), in this order:"
	@sed -n '/^test:/,/^[^#]/s/^#   /  /p' $(MAKEFILE_LIST)

# Everything the targets and the suites make in the tree: bin/ and build/
# (library, staged install, cmake tree, wheel, venv), the Go suites'
# tests/out, cargo's target/, and what Python and setuptools leave in
# bindings/python when it is built or run in place.
clean: ## remove everything the build and the tests made (bin, build, tests/out, bindings/rust/target, Python leftovers)
	rm -rf bin build tests/out bindings/rust/target \
		bindings/python/build bindings/python/dist bindings/python/*.egg-info
	find bindings scripts tests examples -name __pycache__ -type d -prune -exec rm -rf {} +
