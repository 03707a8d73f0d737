// A CommonJS user of the installed package: every entry point through `require` (and
// `import()` for the ESM-only fleetcache/worker), used, not only loaded.
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

// fleetcache/shutdown first: it loads its own two files and nothing else of the package.
const shutdown = require('fleetcache/shutdown')
const mark = `${path.sep}fleetcache${path.sep}`
const loaded = Object.keys(require.cache)
  .filter((f) => f.includes(mark))
  .map((f) =>
    f
      .slice(f.lastIndexOf(mark) + mark.length)
      .split(path.sep)
      .join('/'),
  )
  .sort()
assert.deepEqual(loaded, ['dist/closing.js', 'dist/shutdown.js'], 'fleetcache/shutdown loads')

const root = require('fleetcache')
for (const name of ['createUseCacheHandler', 'createIncrementalCacheHandler', 'stats', 'close']) {
  assert.equal(typeof root[name], 'function', `fleetcache.${name}`)
}
assert.equal(shutdown.close, root.close, "fleetcache/shutdown's close is fleetcache's")
const useCache = require('fleetcache/use-cache')
assert.equal(typeof useCache.get, 'function', 'fleetcache/use-cache is a handler object')
const Incremental = require('fleetcache/incremental')
assert.equal(typeof Incremental, 'function', 'fleetcache/incremental is a class')
const { withFleetcache } = require('fleetcache/config')
const config = withFleetcache({})
assert.ok(fs.existsSync(config.cacheHandler), 'withFleetcache names an existing cacheHandler')
assert.equal(require('fleetcache/package.json').name, 'fleetcache')
// fleetcache/wasm is a file: resolve it and compile its bytes.
const wasm = new WebAssembly.Module(fs.readFileSync(require.resolve('fleetcache/wasm')))
assert.ok(WebAssembly.Module.exports(wasm).length > 0)

async function main() {
  const worker = await import('fleetcache/worker')
  const cache = worker.createCache({ module: wasm, prefix: 'cjs', deploymentId: 'd1' })
  assert.equal(cache.storeKind, 'memory')
  await useCache.refreshTags()
  console.log('8 entry points')
}
main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
