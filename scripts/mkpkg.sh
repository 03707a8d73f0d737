#!/usr/bin/env bash
# Turns the cargo-built .wasm into pkg/: one optimized .wasm and two JS glues around it.
#
#   pkg/fleetcache_wasm_bg.wasm   wasm-opt -Oz output, shared by both glues
#   pkg/node/                     --target nodejs (CommonJS; loads ../fleetcache_wasm_bg.wasm with fs)
#   pkg/web/                      --target web (ESM; initSync({ module }) from a WebAssembly.Module
#                                 or bytes: workers-style runtimes with no fs)
#   pkg/tools/                    the tools module (third argument `tools`, below): its own
#                                 optimized .wasm and a Node glue in node/, for the CLI
#
# Why these targets: docs/decisions/0001-wasm-output-targets.md.
#
# With a third argument `tools`, the module built with the binding's `tools` feature (the CLI's
# and the tests' exports, docs/decisions/0028-wasm-size-budget.md, eighth pass): the Node glue
# only, since only the `fleetcache` CLI loads it.
set -euo pipefail

raw=$1
out=$2
kind=${3:-server}
name=fleetcache_wasm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

wasm-bindgen --target nodejs --out-dir "$tmp/node" "$raw"
if [ "$kind" != tools ]; then
  wasm-bindgen --target web --omit-default-module-path --out-dir "$tmp/web" "$raw"
  # Both glues were generated from the same module, so their .wasm files are identical; keep one.
  cmp -s "$tmp/node/${name}_bg.wasm" "$tmp/web/${name}_bg.wasm" || {
    echo "mkpkg: the two wasm-bindgen outputs differ" >&2
    exit 1
  }
fi

rm -rf "$out"
mkdir -p "$out/node"
# --converge repeats -Oz while it still shrinks the module (about 230 bytes); the producers and
# target-features sections are metadata for linkers and tools, not read when instantiating
# (about 280 bytes). --low-memory-unused lets wasm-opt fold small constant address offsets into
# loads and stores (about 1 KB): it assumes nothing lives in the first 1 KiB, which holds here
# because rustc puts the 1 MiB stack first (growing down from 1 MiB, so its lowest KiB is only
# reached a KiB before overflowing) and data and heap above it. docs/decisions/0028-wasm-size-budget.md.
lowest=$(wasm-dis "$tmp/node/${name}_bg.wasm" | sed -n 's/^ (data [^ ]* (i32.const \([0-9]*\)).*/\1/p' | sort -n | head -1)
[ "${lowest:-0}" -ge 1024 ] || {
  echo "mkpkg: a data segment starts below 1 KiB (${lowest:-none}); --low-memory-unused no longer holds" >&2
  exit 1
}
wasm-opt -Oz --converge --low-memory-unused --strip-producers --strip-target-features --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-reference-types --enable-multivalue --enable-mutable-globals \
  "$tmp/node/${name}_bg.wasm" -o "$out/${name}_bg.wasm"

# The Node glue reads the .wasm next to itself; point it one directory up, and fail loudly if
# wasm-bindgen ever changes the line this relies on.
node_glue="$tmp/node/${name}.js"
grep -q "__dirname}/${name}_bg.wasm" "$node_glue" || {
  echo "mkpkg: the Node glue no longer loads the wasm by __dirname; update mkpkg.sh" >&2
  exit 1
}
sed "s|__dirname}/${name}_bg.wasm|__dirname}/../${name}_bg.wasm|" "$node_glue" >"$out/node/${name}.js"
cp "$tmp/node/${name}.d.ts" "$out/node/"

if [ "$kind" = tools ]; then
  # The tools module must instantiate and have what the server module leaves out.
  node -e "
const m = require(require('node:path').resolve(process.argv[1]));
const e = new m.Engine({ prefix: 'check', deployment: 'mkpkg' });
if (typeof e.planSeedWrite !== 'function' || typeof m.describeEnvelope !== 'function') throw new Error('no tools exports');
" "$out/node/${name}.js"
  printf 'mkpkg: %s (%s bytes, %s gzipped; the CLI'"'"'s module)\n' "$out/${name}_bg.wasm" \
    "$(stat -c %s "$out/${name}_bg.wasm")" "$(gzip -9c "$out/${name}_bg.wasm" | wc -c)"
  exit 0
fi

mkdir -p "$out/web"
# A WebAssembly.Module from another realm (workerd, Next's edge sandbox) fails wasm-bindgen's
# `instanceof WebAssembly.Module` check; accept it by its tag as well.
web_glue="$tmp/web/${name}.js"
check='module instanceof WebAssembly.Module'
grep -q "$check" "$web_glue" || {
  echo "mkpkg: the web glue no longer checks instanceof WebAssembly.Module; update mkpkg.sh" >&2
  exit 1
}
sed "s|$check|(module instanceof WebAssembly.Module \|\| Object.prototype.toString.call(module) === '[object WebAssembly.Module]')|g" \
  "$web_glue" >"$out/web/${name}.js"
cp "$tmp/web/${name}.d.ts" "$out/web/"
# The web glue is ESM: say so, or Node (and tools that follow its rules) guess, and warn.
echo '{ "type": "module" }' >"$out/web/package.json"

# The optimized module must still instantiate and run.
node -e "
const m = require(require('node:path').resolve(process.argv[1]));
const e = new m.Engine({ prefix: 'check', deployment: 'mkpkg' });
if (typeof e.entryKey(m.Interface.useCache('default'), 'k') !== 'string') throw new Error('engine did not answer');
if ('planSeedWrite' in e || 'describeEnvelope' in m) throw new Error('the server module has the tools exports');
" "$out/node/${name}.js"
printf 'mkpkg: %s (%s bytes, %s gzipped)\n' "$out/${name}_bg.wasm" \
  "$(stat -c %s "$out/${name}_bg.wasm")" "$(gzip -9c "$out/${name}_bg.wasm" | wc -c)"
