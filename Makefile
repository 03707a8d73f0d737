# fleetcache build and test entry points. `make help` lists them.
#
# The wasm toolchain is detected, not configured: a rustc with a wasm32 std (rustup target,
# distro package) is used as is; otherwise Debian's rustc-web builds std from source
# (build-std). scripts/setup.sh installs whatever is missing, idempotently.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := all

TOOLS ?= $(HOME)/.cache/fleetcache-tools
export PATH := $(TOOLS)/bin:$(TOOLS)/node/node_modules/.bin:$(PATH)

WASM_TARGET := wasm32-unknown-unknown
PREBUILT_STD := $(shell d=$$(rustc --print target-libdir --target $(WASM_TARGET) 2>/dev/null) && ls "$$d"/libstd-*.rlib >/dev/null 2>&1 && echo yes)
ifeq ($(PREBUILT_STD),yes)
WASM_CARGO := cargo
else
WASM_CARGO := env RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort /usr/bin/cargo
endif
# The release module only, and only where std is built from source: a panic traps at once
# (`panic = "immediate-abort"`), with no message formatted. Nothing reads the message on
# wasm32-unknown-unknown (std's hook writes to a stderr that discards it), so the host sees the
# same trap; the module drops core::fmt's panic paths and the panic locations. A prebuilt std
# was compiled for unwinding and keeps its formatting panics. Tests (`test-wasm`) keep theirs:
# a failing assertion should say why. The same release build lowers LLVM's inlining threshold
# to 5 for every crate (profile rustflags, unstable like build-std): about 2.6 KB less, and no
# slower a hit in bench/cmp.mjs. docs/decisions/0028-wasm-size-budget.md (fifth, ninth passes).
ifeq ($(PREBUILT_STD),yes)
WASM_RELEASE_CARGO := $(WASM_CARGO)
else
WASM_RELEASE_CARGO := env CARGO_UNSTABLE_PANIC_IMMEDIATE_ABORT=true CARGO_PROFILE_RELEASE_PANIC=immediate-abort CARGO_UNSTABLE_PROFILE_RUSTFLAGS=true CARGO_PROFILE_RELEASE_RUSTFLAGS=-Cllvm-args=-inline-threshold=5 $(WASM_CARGO)
endif
# Native tests: rustup's cargo when there is one, else Debian's.
HOST_CARGO := $(shell command -v cargo >/dev/null 2>&1 && echo cargo || echo "env RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc /usr/bin/cargo")

WASM_CRATE := fleetcache_wasm
# Where cargo writes: CARGO_TARGET_DIR when the caller set one (a build beside another
# checkout's), else the workspace's target/.
CARGO_OUT := $(or $(CARGO_TARGET_DIR),target)
WASM_RAW := $(CARGO_OUT)/$(WASM_TARGET)/release/$(WASM_CRATE).wasm
WASM_BINDGEN_VERSION := $(shell sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' crates/fleetcache-wasm/Cargo.toml)
RUST_SOURCES := $(shell find crates -name '*.rs' -o -name '*.lua' -o -name Cargo.toml) Cargo.toml Cargo.lock
JS_SOURCES := $(shell find js-host/src js-host/cli-src js-host/esm js-host/worker-src -type f 2>/dev/null) js-host/package.json js-host/bundle-declarations.mjs js-host/tsconfig.json js-host/tsconfig.cli.json js-host/tsconfig.worker.json
VERSION := $(shell node -p 'require("./js-host/package.json").version')
TARBALL := js-host/fleetcache-$(VERSION).tgz

.PHONY: FORCE all help setup wasm wasm-budget js pack test test-rust test-crates test-wasm test-js test-node test-node-lts test-package test-recipes test-e2e test-compat test-compat-oldest test-valkey test-faults fuzz lint fmt demo bench clean

all: pack ## build the wasm engine, the npm package and its tarball

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: ## install toolchains and dependencies (idempotent)
	@scripts/setup.sh

# ---- wasm ---------------------------------------------------------------------------------

# The build command as a file, rewritten only when it changes: a change of flags alone (the
# panic strategy above) rebuilds the module, as a change of sources does.
WASM_FLAGS := target/wasm-release-command
$(WASM_FLAGS): FORCE
	@mkdir -p target; echo '$(WASM_RELEASE_CARGO)' | cmp -s - $@ || echo '$(WASM_RELEASE_CARGO)' > $@
FORCE:

# Two modules from one build: the tools module (the binding's `tools` feature: the CLI's and the
# tests' exports) and the server module without them, which every server process compiles. The
# second cargo run shares std, the core and every dependency with the first and recompiles only
# the binding (docs/decisions/0028-wasm-size-budget.md, eighth pass). Each is copied into this
# checkout's target/ as it is built: cargo's output file is one for every checkout that points
# CARGO_TARGET_DIR at the same place, and another checkout's newer build there would look up
# to date here and be packaged instead of this one's.
WASM_TOOLS_RAW := target/wasm-tools/$(WASM_CRATE).wasm
WASM_SERVER_RAW := target/wasm-server/$(WASM_CRATE).wasm
$(WASM_SERVER_RAW): $(RUST_SOURCES) $(WASM_FLAGS)
	$(WASM_RELEASE_CARGO) build --release --target $(WASM_TARGET) -p fleetcache-wasm --features tools
	mkdir -p $(dir $(WASM_TOOLS_RAW)) && cp $(WASM_RAW) $(WASM_TOOLS_RAW)
	$(WASM_RELEASE_CARGO) build --release --target $(WASM_TARGET) -p fleetcache-wasm
	mkdir -p $(dir $@) && cp $(WASM_RAW) $@

pkg/.stamp: $(WASM_SERVER_RAW) scripts/mkpkg.sh
	@have=$$(wasm-bindgen --version | awk '{print $$2}'); \
	  if [ "$$have" != "$(WASM_BINDGEN_VERSION)" ]; then \
	    echo "wasm-bindgen-cli $$have does not match the crate's $(WASM_BINDGEN_VERSION): run make setup"; exit 1; fi
	scripts/mkpkg.sh $(WASM_SERVER_RAW) pkg
	scripts/mkpkg.sh $(WASM_TOOLS_RAW) pkg/tools tools
	@touch $@

wasm: setup pkg/.stamp ## build pkg/ (wasm engine + JS glue + .d.ts)

# The size budget of the optimized module, in bytes: the one place it is set. Why this number,
# where the bytes go and how to look: docs/decisions/0028-wasm-size-budget.md. A prebuilt std
# keeps its formatting panic paths (no immediate abort, above): its module has the budget from
# before that cut, lowered since by what later cuts took off the other (not measured there).
# 0028's "Current state" restates both values: `make lint` fails when it differs
# (scripts/check-budget-line.mjs).
ifeq ($(PREBUILT_STD),yes)
WASM_BUDGET_BYTES := 233020
else
WASM_BUDGET_BYTES := 222620
endif
wasm-budget: pkg/.stamp ## fail when pkg/fleetcache_wasm_bg.wasm (after wasm-opt) exceeds WASM_BUDGET_BYTES
	@size=$$(stat -c %s pkg/$(WASM_CRATE)_bg.wasm); \
	  if [ "$$size" -gt $(WASM_BUDGET_BYTES) ]; then \
	    echo "wasm-budget: pkg/$(WASM_CRATE)_bg.wasm is $$size bytes, over the budget of $(WASM_BUDGET_BYTES) (docs/decisions/0028-wasm-size-budget.md)"; exit 1; \
	  else echo "wasm-budget: $$size of $(WASM_BUDGET_BYTES) bytes"; fi

# ---- npm package ----------------------------------------------------------------------------

js-host/dist/.stamp: pkg/.stamp $(JS_SOURCES)
	rm -rf js-host/wasm && mkdir -p js-host/wasm && cp -r pkg/node pkg/web pkg/tools pkg/*.wasm js-host/wasm/
	# dist/ gets the JavaScript, types/ (not packed) every module's declarations.
	cd js-host && rm -rf dist types && npx tsc -p tsconfig.json
	# The CLI (the `bin`) apart from the server code, against those declarations: nothing under
	# dist/ reaches it or the tools module it loads, so no server's trace holds them
	# (docs/decisions/0011).
	cd js-host && rm -rf cli && npx tsc -p tsconfig.cli.json
	# The workers-runtime entries (ESM, no Node APIs): docs/transport.md.
	# Node-free modules of src/ are compiled in too (tsconfig.worker.json): both trees flattened
	# into worker/, so they sit beside the entries that import them; a name in both stops here.
	cd js-host && rm -rf worker && npx tsc -p tsconfig.worker.json \
	  && mv -n worker/worker-src/* worker/src/* worker/ && rmdir worker/worker-src worker/src \
	  && echo '{ "type": "module" }' > worker/package.json
	# Then each entry point's declarations as one file in dist/ and worker/, no other module's
	# there (js-host/bundle-declarations.mjs): a user's editor offers no import from internals.
	cd js-host && node bundle-declarations.mjs
	@touch $@

js: wasm js-host/dist/.stamp ## build the npm package (js-host/dist)

# `prepack` (js-host/package.json) copies the license texts and the changelog from the root.
$(TARBALL): js-host/dist/.stamp js-host/README.md LICENSE-MIT LICENSE-APACHE CHANGELOG.md
	cd js-host && npm pack --silent >/dev/null
	@echo "packed $(TARBALL)"

pack: js $(TARBALL) ## npm pack the package into js-host/fleetcache-<version>.tgz

# ---- tests ----------------------------------------------------------------------------------

test: setup lint test-rust test-crates test-wasm test-js test-node-lts test-package test-recipes test-e2e test-compat-oldest test-valkey test-faults ## lint and every test suite (starts its own Redis and Next.js)

# --profile checked: optimised, assertions and overflow checks on (Cargo.toml says why).
test-rust: ## core and binding, native
	$(HOST_CARGO) test --workspace --profile checked

# --allow-dirty: this checks what the crates contain and that they build from it, on any tree.
# cargo serves the packaged fleetcache-core to fleetcache-wasm's verify build from a local
# registry and treats it as immutable for its version: an unpacked copy under CARGO_HOME, or a
# build in the target dir, left by an earlier run would build fleetcache-wasm against an old
# fleetcache-core. So both are made anew each run (its own target dir: about a minute).
CARGO_HOME_DIR = $(or $(CARGO_HOME),$(HOME)/.cargo)
test-crates: ## cargo package: the crates as crates.io would get them, each built from its .crate
	rm -rf target/crates $(CARGO_HOME_DIR)/registry/src/-*/fleetcache-* $(CARGO_HOME_DIR)/registry/cache/-*/fleetcache-*
	CARGO_TARGET_DIR=target/crates $(HOST_CARGO) package --workspace --locked --allow-dirty

# The same tests twice: through cargo's runner (.cargo/config.toml), and through
# `wasm-pack test --node` as the binding's users run them (wasm-pack from scripts/setup.sh,
# pinned). `--mode no-install`: wasm-pack uses the wasm-bindgen-cli setup installed instead of
# downloading one, and skips its check for a wasm32 std in the sysroot, which Debian's
# build-std toolchain does not have: measured on this machine kind, the normal mode fails with
# "wasm32-unknown-unknown target not found in sysroot: /usr" or runs `rustup target add`
# itself, a download. wasm-pack runs `cargo` and `rustc` from PATH, so on that branch a shim
# directory puts Debian's first, with build-std in the environment.
ifeq ($(PREBUILT_STD),yes)
WASM_PACK := wasm-pack
else
WASM_PACK_SHIM := $(CURDIR)/target/wasm-pack-shim
WASM_PACK := env PATH=$(WASM_PACK_SHIM):$$PATH RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort wasm-pack
endif

# With the `tools` feature: the tests call every export, the CLI's too.
test-wasm: setup ## wasm-bindgen tests of the binding in headless Node (cargo, then wasm-pack)
	$(WASM_CARGO) test --target $(WASM_TARGET) -p fleetcache-wasm --features tools
ifneq ($(PREBUILT_STD),yes)
	mkdir -p $(WASM_PACK_SHIM) && for t in cargo rustc rustdoc; do ln -sf /usr/bin/$$t $(WASM_PACK_SHIM)/$$t; done
endif
	$(WASM_PACK) test --node --mode no-install crates/fleetcache-wasm --features tools

# JS_REDIS_CLUSTER=1: the main suites again, on a 3-master Redis Cluster (test/helpers.mjs).
JS_CLUSTER_TESTS := use-cache incremental single-flight telemetry page-push-races
# Files that measure retained memory need gc(): they run under node --expose-gc, the others
# exactly as before (without it).
JS_GC_TESTS := tier-memory tier-decoded-memo unanswered-values-memory tier-bookkeeping-memory read-pool-memory settled-bytes-memory cluster-client-sockets sentinel-client-sockets
JS_PLAIN_TESTS := $(filter-out $(JS_GC_TESTS:%=test/%.test.mjs),$(patsubst js-host/%,%,$(wildcard js-host/test/*.test.mjs)))
# Two files at a time: each starts its own Redis on a free port, and most of a file's time is
# spent waiting on timers and other processes (sentinel failovers, CLI runs, hung servers), not
# on a core. One at a time, this run took 431 s of the clean-clone CI of 2026-12-07, which
# took 1,801 s of its 1,800; test-node-lts's run of every file, two at a time, 236 s.
NODE_TEST_CONCURRENCY ?= 2
test-js: pack ## the npm package against a real redis-server, then its main suites on a 3-master Redis Cluster
	cd js-host && node --test --test-concurrency=$(NODE_TEST_CONCURRENCY) $(JS_PLAIN_TESTS)
	cd js-host && node --expose-gc --test --test-concurrency=1 $(JS_GC_TESTS:%=test/%.test.mjs)
	cd js-host && JS_REDIS_CLUSTER=1 node --test --test-concurrency=1 $(JS_CLUSTER_TESTS:%=test/%.test.mjs)

# The JS unit suite on other Node.js majors than the system's (its `engines` says >=20.19; every
# other target runs on the system node): each release pinned in scripts/setup.sh
# (NODE_RELEASES), from the npm registry into $(TOOLS)/node-releases, once. Every file under
# --expose-gc (the memory files need it, the others ignore it); every version runs even after one
# fails. Two files at a time (NODE_TEST_CONCURRENCY, as test-js); measured on Node 24, idle
# 2-core machine, 2026-12-07: 201 s at 2 against 366 s at 1, 545 pass either way. `make test`
# runs the current LTS only (test-node-lts; CI time); the first install adds a 55 MB download.
NODE_VERSIONS ?= 22 24 26
test-node: pack ## the JS unit suite on each Node.js major of NODE_VERSIONS (22 24 26; releases pinned in scripts/setup.sh)
	@failed=; for v in $(NODE_VERSIONS); do \
	  bin=$$(scripts/setup.sh --node $$v) || exit 1; \
	  echo "test-node: $$($$bin --version)"; start=$$(date +%s); \
	  (cd js-host && PATH=$$(dirname $$bin):$$PATH $$bin --expose-gc --test --test-concurrency=$(NODE_TEST_CONCURRENCY) test/*.test.mjs) || failed="$$failed $$v"; \
	  echo "test-node: $$($$bin --version) took $$(( $$(date +%s) - start )) s"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-node: failed on Node.js$$failed"; exit 1; fi

test-node-lts: pack ## the JS unit suite on the current Node.js LTS (24) too: part of `make test`
	$(MAKE) test-node NODE_VERSIONS=24

# publint and @arethetypeswrong/cli are pinned in tests/package (its own lockfile, installed by
# scripts/setup.sh); the rules ignored on purpose are named, with reasons, in tests/package/run.mjs.
test-package: setup pack ## the tarball as a user gets it: publint, attw, a fresh project importing every entry point (CJS, ESM, TypeScript), and one installed by pnpm
	node tests/package/run.mjs

# TypeScript and the newest @types/node are pinned in tests/recipes (its own lockfile, installed by
# scripts/setup.sh): a newer @types/node can reject what an older one accepted, in a file that
# `next build` type-checks in the user's app.
test-recipes: setup pack ## the Shutdown recipes of docs/operating.md and the example's instrumentation*.ts, type-checked (strict) against the newest @types/node, with the tarball's declarations, under bundler and (with the .ts import the docs give) nodenext resolution; the recipes' instrumentation.ts compared with the example's
	node tests/recipes/run.mjs

# The mixed-release suite runs in test-compat-oldest, which builds the 16.0.0 copies it needs.
E2E_MIXED := tests/e2e/mixed-releases.test.mjs
test-e2e: pack ## real `next start` fleets on one Redis, then the two-instance suite on a 3-master Redis Cluster
	node --test --test-concurrency=1 $(filter-out $(E2E_MIXED),$(wildcard tests/e2e/*.test.mjs))
	E2E_REDIS_CLUSTER=1 node --test --test-concurrency=1 tests/e2e/use-cache.test.mjs

# The e2e suites on other Next releases than the pinned one: each release's copy of the example
# apps under target/next-releases/<version>/ (lockfiles in tests/compat/<version>/), one build per
# release, COMPAT_TIMEOUT_MINUTES each (25; 10 for the oldest in make test); tests/compat/run.mjs
# lists the releases.
# The README's compatibility table is rewritten from the results even when a release failed.
test-compat: pack ## the two-instance e2e suites, seed, tag pulls, own-read stamping and a webpack standalone build on every Next 16 release (oldest, last patch of each minor, a canary only when newer than the newest release); writes tests/compat/RESULTS.json and the README table
	status=0; node tests/compat/run.mjs || status=$$?; node scripts/compat-table.mjs; exit $$status

# The lower bound of the package's `next` peer range, which the mixed-release suite reads too.
COMPAT_OLDEST := $(shell node -p 'require("./js-host/package.json").peerDependencies.next.split(" ")[0].slice(2)')
# Then the mixed-release suite (16.0.0 and the pinned release in one fleet on one Redis), on the
# builds the suites before it made: it pays no `next build` of its own. Both run even when the
# first fails; the target fails when either did.
test-compat-oldest: pack ## the same suites on the oldest supported Next release (16.0.0), beside the pinned one in test-e2e; then 16.0.0 and the pinned release in one fleet
	status=0; COMPAT_TIMEOUT_MINUTES=$${COMPAT_TIMEOUT_MINUTES:-10} node tests/compat/run.mjs --releases $(COMPAT_OLDEST) --results target/compat/RESULTS-oldest.json || status=$$?; \
	node --test --test-concurrency=1 --test-reporter=spec $(E2E_MIXED) || status=$$?; exit $$status

# Valkey from bookworm-backports (scripts/setup.sh puts it under $(TOOLS)/valkey). REDIS_SERVER
# and REDIS_CLI choose the binaries every test starts; REDIS_SERVER_NAME makes each start check
# INFO for server_name:valkey, so nothing here can pass on redis-server by mistake.
VALKEY_BIN ?= $(TOOLS)/valkey/usr/bin
VALKEY_ENV := REDIS_SERVER=$(VALKEY_BIN)/valkey-server REDIS_CLI=$(VALKEY_BIN)/valkey-cli REDIS_SERVER_NAME=valkey
# The package's tests that start a server (all but next-config and workerd).
VALKEY_JS_TESTS := use-cache incremental tags single-flight failures acl tls telemetry worker-transport sentinel cluster cluster-tls cluster-failover
test-valkey: setup pack ## the Lua scripts, the package's Redis suites and the two-instance e2e on Valkey
	@if [ ! -x $(VALKEY_BIN)/valkey-server ] && ! command -v apt-get >/dev/null; then \
	  echo "test-valkey: SKIPPED, no Valkey at $(VALKEY_BIN) (scripts/setup.sh fetches it on Debian; set VALKEY_BIN elsewhere)"; exit 0; fi; \
	$(VALKEY_BIN)/valkey-server --version && \
	$(VALKEY_ENV) $(HOST_CARGO) test -p fleetcache-core --profile checked --test lua_scripts && \
	(cd js-host && $(VALKEY_ENV) node --test --test-concurrency=$(NODE_TEST_CONCURRENCY) $(VALKEY_JS_TESTS:%=test/%.test.mjs)) && \
	$(VALKEY_ENV) node --test --test-concurrency=1 tests/e2e/use-cache.test.mjs

test-faults: pack ## kill, pause and restart a real redis-server under load on `next start` instances; the freshness bound around faults
	node --test --test-concurrency=1 tests/faults/

# cargo-fuzz needs nightly features: Debian's rustc with RUSTC_BOOTSTRAP stands in for nightly.
# No sanitizer: Debian ships no ASan runtime for rustc, and the core is `forbid(unsafe_code)`,
# so a panic (what the fuzzer looks for) needs none. Crashes land in fuzz/artifacts/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := envelope tag_reply
fuzz: ## fuzz the envelope decoder and the tag-reply parser, FUZZ_SECONDS each (not in `make test`)
	@command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz"; exit 1; }
	cd crates/fleetcache-core/fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t && \
	  env PATH=/usr/bin:$$PATH RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
	    cargo-fuzz run --sanitizer none $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=8192 || exit 1; \
	done

lint: setup js wasm-budget ## rustfmt, clippy, rustdoc's link checks, tsc, eslint, prettier (tsc needs the built wasm glue types), the wasm size budget, links and paths in the docs, build outputs named by tests and scripts, 0028's budget line, proptest regressions files read by their tests
	$(HOST_CARGO) fmt --all -- --check
	$(HOST_CARGO) clippy --workspace --all-targets -- -D warnings
	$(HOST_CARGO) clippy -p fleetcache-wasm --all-targets --features tools -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(HOST_CARGO) doc --workspace --no-deps --quiet
	RUSTDOCFLAGS="-D warnings" $(HOST_CARGO) doc -p fleetcache-wasm --features tools --no-deps --quiet
	cd js-host && npx tsc -p tsconfig.json --noEmit && npx tsc -p tsconfig.cli.json --noEmit && npx eslint . && npx prettier --check .
	js-host/node_modules/.bin/prettier --check bench tests scripts
	node scripts/compat-table.mjs --check
	node scripts/check-doc-links.mjs
	node scripts/check-build-paths.mjs
	node scripts/check-budget-line.mjs
	node scripts/check-proptest-regressions.mjs

fmt: ## format Rust and TypeScript
	$(HOST_CARGO) fmt --all
	cd js-host && npx prettier --write .
	js-host/node_modules/.bin/prettier --write bench tests scripts

# ---- demo and benchmarks --------------------------------------------------------------------

demo: setup pack ## a two-instance fleet on a local Redis, scripted, in a few readable lines
	node scripts/demo.mjs

# bench/tags.mjs last: it fails (after writing its section) when a fleetcache command held Redis
# more than 50 ms while processes loaded the tag state.
bench: setup pack ## benchmarks (micro, cold start, a three-instance fleet, memory bounds and tag state); writes bench/REPORT.md
	node --expose-gc bench/run.mjs
	node bench/cold-start.mjs
	node bench/fleet.mjs
	node --expose-gc bench/tags.mjs

clean:
	rm -rf target pkg js-host/dist js-host/cli js-host/wasm js-host/worker js-host/*.tgz js-host/LICENSE-* js-host/CHANGELOG.md
