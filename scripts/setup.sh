#!/usr/bin/env bash
# Installs what building and testing fleetcache needs, and nothing that is already there.
# Safe to run again: every step checks first. Prints one line per step.
#
#   scripts/setup.sh            everything (wasm toolchain, wasm-bindgen-cli, wasm-pack, wasm-opt, redis, valkey,
#                               npm deps of js-host, of the package checks in tests/package and of
#                               the recipe check in tests/recipes)
#   scripts/setup.sh --print-env   print the variables the Makefile uses (no installs)
#   scripts/setup.sh --node MAJOR  install the pinned Node.js release of MAJOR (NODE_RELEASES) under
#                               $FLEETCACHE_TOOLS/node-releases and print its binary's path (make test-node)
#
# Tools built here go to $FLEETCACHE_TOOLS (default ~/.cache/fleetcache-tools), outside the
# repo, so a fresh clone on the same machine reuses them.
set -euo pipefail

WASM_BINDGEN_VERSION=0.2.130
BINARYEN_VERSION=132.0.0
# `make test-wasm` also runs the binding's tests the way its users do, with wasm-pack.
WASM_PACK_VERSION=0.15.1
# The Node.js releases `make test-node` runs the JS suite on besides the system's one, one per
# major: the lowest supported major with a newer V8, the LTS whose AsyncLocalStorage is built on
# AsyncContextFrame, and the current release.
NODE_RELEASES="22.23.5 24.22.3 26.12.1"
TOOLS=${FLEETCACHE_TOOLS:-$HOME/.cache/fleetcache-tools}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

say() { printf 'setup: %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root for: $*"; exit 1; fi
}

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq >/dev/null; apt_updated=1; fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# A rustc that already has a wasm32 std (rustup target, distro libstd) wins; otherwise
# Debian's rustc-web with std sources builds std itself (build-std).
prebuilt_std() {
  command -v rustc >/dev/null || return 1
  local d
  d=$(rustc --print target-libdir --target wasm32-unknown-unknown 2>/dev/null) || return 1
  ls "$d"/libstd-*.rlib >/dev/null 2>&1
}

debian_rust_ready() {
  [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library/std ] &&
    /usr/bin/rust-lld -flavor wasm --version >/dev/null 2>&1
}

wasm_toolchain() {
  if prebuilt_std; then
    say "wasm32 std: prebuilt ($(rustc --version))"
  elif debian_rust_ready; then
    say "wasm32 std: Debian build-std ($(/usr/bin/rustc --version))"
  else
    apt_install rustc-web cargo-web rust-web-src rust-web-llvm
    # rust-web-llvm ships /usr/bin/rust-lld as a link to lld-NN without depending on it.
    local lld
    lld=$(readlink -f /usr/bin/rust-lld 2>/dev/null || true)
    case "$lld" in */llvm-*/bin/lld) apt_install "lld-$(basename "$(dirname "$(dirname "$lld")")" | sed 's/llvm-//')" ;; *) apt_install lld-22 ;; esac
    debian_rust_ready || { say "Debian rust toolchain still incomplete"; exit 1; }
    say "wasm32 std: Debian build-std ($(/usr/bin/rustc --version))"
  fi
}

host_cargo() {
  if command -v cargo >/dev/null; then echo cargo; elif [ -x /usr/bin/cargo ]; then echo /usr/bin/cargo; else
    apt_install cargo; echo /usr/bin/cargo; fi
}

wasm_bindgen_cli() {
  local have
  have=$("$TOOLS/bin/wasm-bindgen" --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" = "$WASM_BINDGEN_VERSION" ] && [ -x "$TOOLS/bin/wasm-bindgen-test-runner" ]; then
    say "wasm-bindgen-cli $have: present"
    return
  fi
  say "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  local cargo
  cargo=$(host_cargo)
  # The CLI's lockfile may name crate versions this registry lacks; fall back to resolving.
  "$cargo" install --quiet --root "$TOOLS" wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --locked 2>/dev/null ||
    "$cargo" install --quiet --root "$TOOLS" wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION"
}

wasm_pack() {
  local have
  have=$("$TOOLS/bin/wasm-pack" --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" = "$WASM_PACK_VERSION" ]; then
    say "wasm-pack $have: present"
    return
  fi
  say "cargo install wasm-pack $WASM_PACK_VERSION (a few minutes, once)"
  local cargo
  cargo=$(host_cargo)
  "$cargo" install --quiet --root "$TOOLS" wasm-pack --version "=$WASM_PACK_VERSION" --locked
}

wasm_opt() {
  if [ -x "$TOOLS/node/node_modules/.bin/wasm-opt" ] &&
    [ "$("$TOOLS/node/node_modules/.bin/wasm-opt" --version 2>/dev/null | awk '{print $3}')" = "${BINARYEN_VERSION%%.*}" ]; then
    say "wasm-opt (binaryen ${BINARYEN_VERSION%%.*}): present"
    return
  fi
  # Debian's binaryen is too old for wasm-bindgen's output; npm's is current.
  say "npm install binaryen@$BINARYEN_VERSION"
  mkdir -p "$TOOLS/node"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" "binaryen@$BINARYEN_VERSION" >/dev/null
}

redis() {
  if command -v redis-server >/dev/null; then
    say "redis-server: $(redis-server --version | awk '{print $3}')"
  else
    apt_install redis-server
  fi
}

# Valkey, for `make test-valkey`: Debian 12 has no package, bookworm-backports has one. Its
# .debs are fetched with private apt lists (the system's sources stay as they are) and unpacked
# under $TOOLS/valkey, not installed.
valkey() {
  local dir=$TOOLS/valkey
  if [ -x "$dir/usr/bin/valkey-cli" ] && "$dir/usr/bin/valkey-server" --version >/dev/null 2>&1; then
    say "valkey-server: $("$dir/usr/bin/valkey-server" --version | awk '{print $3}') (bookworm-backports)"
    return
  fi
  command -v apt-get >/dev/null || { say "valkey: needs apt-get (Debian); skipped"; return; }
  say "valkey-server from bookworm-backports into $dir"
  local tmp=$dir.tmp
  rm -rf "$tmp" && mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/root"
  echo 'deb http://deb.debian.org/debian bookworm-backports main' >"$tmp/sources.list"
  local o=(-qq -o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o Debug::NoLocking=1
    -o "APT::Sandbox::User=$(id -un)")
  apt-get "${o[@]}" update >/dev/null
  (cd "$tmp" && apt-get "${o[@]}" download valkey-server valkey-tools >/dev/null)
  local deb
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
  # The libraries valkey-tools depends on; redis-server's usually brought them already.
  if ldd "$tmp/root/usr/bin/valkey-server" "$tmp/root/usr/bin/valkey-cli" | grep -q 'not found'; then
    apt_install libjemalloc2 liblzf1 libatomic1 libssl3 libsystemd0
  fi
  rm -rf "$dir" && mv "$tmp/root" "$dir" && rm -rf "$tmp"
}

node_check() {
  command -v node >/dev/null || apt_install nodejs npm
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then say "Node.js >= 20 is required (found $(node --version))"; exit 1; fi
  say "node $(node --version)"
}

npm_deps() {
  # npm ci only when the lockfile changed since the last install.
  local dir=$1
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    say "npm ci in ${dir#"$ROOT"/}"
    (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null)
  else
    say "npm deps in ${dir#"$ROOT"/}: present"
  fi
}

# A Node.js release as the npm registry ships it, in the package node-<os>-<arch> (its bin/node
# only: no npm), unpacked under $TOOLS/node-releases/<version>. The registry's client checks the
# tarball's integrity; nodejs.org is not needed. Messages go to stderr: stdout is the path.
node_release() {
  local major=$1 version= v
  for v in $NODE_RELEASES; do [ "${v%%.*}" = "$major" ] && version=$v; done
  [ -n "$version" ] || { say "no Node.js release pinned for major $major (NODE_RELEASES: $NODE_RELEASES)" >&2; exit 2; }
  local dir=$TOOLS/node-releases/$version
  if [ "$("$dir/bin/node" --version 2>/dev/null)" = "v$version" ]; then
    say "node $version: present" >&2
  else
    local os arch
    case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) say "node $version: no npm package for $(uname -s)" >&2; exit 1 ;; esac
    case "$(uname -m)" in x86_64) arch=x64 ;; aarch64 | arm64) arch=arm64 ;; *) say "node $version: no npm package for $(uname -m)" >&2; exit 1 ;; esac
    say "npm pack node-$os-$arch@$version into $dir (about 55 MB, once)" >&2
    # A directory of this run's own: two first installs at once (clones sharing $TOOLS) each
    # unpack apart, and the one that finishes second keeps the first's.
    mkdir -p "$TOOLS/node-releases"
    local tmp
    tmp=$(mktemp -d "$TOOLS/node-releases/.$version.XXXXXX")
    mkdir -p "$tmp/root"
    # npm's own error lines (a registry it cannot reach, a package it does not have) go to
    # stderr; only its progress is kept quiet.
    (cd "$tmp" && npm pack --loglevel=error "node-$os-$arch@$version" >/dev/null) || {
      say "node $version: npm pack node-$os-$arch@$version failed (registry: $(npm config get registry))" >&2
      rm -rf "$tmp"
      exit 1
    }
    tar -xzf "$tmp/node-$os-$arch-$version.tgz" -C "$tmp/root" --strip-components=1
    [ "$("$tmp/root/bin/node" --version)" = "v$version" ] || { say "node $version: the unpacked binary does not run" >&2; rm -rf "$tmp"; exit 1; }
    if [ "$("$dir/bin/node" --version 2>/dev/null)" != "v$version" ]; then
      rm -rf "$dir" && mv "$tmp/root" "$dir"
    fi
    rm -rf "$tmp"
  fi
  echo "$dir/bin/node"
}

print_env() {
  if prebuilt_std; then
    echo "WASM_CARGO=cargo"
  else
    echo "WASM_CARGO=env RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort /usr/bin/cargo"
  fi
  echo "TOOLS=$TOOLS"
}

case "${1:-all}" in
  --print-env) print_env ;;
  --node) node_release "${2:?usage: scripts/setup.sh --node MAJOR}" ;;
  all)
    node_check
    redis
    valkey
    wasm_toolchain
    wasm_bindgen_cli
    wasm_pack
    wasm_opt
    npm_deps "$ROOT/js-host"
    npm_deps "$ROOT/tests/package"
    npm_deps "$ROOT/tests/recipes"
    ;;
  *) say "unknown argument $1"; exit 2 ;;
esac
