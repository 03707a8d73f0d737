// A CommonJS user of the installed package: every entry point through `require` (and
// `import()` for the ESM-only fleetcache/worker), used, not only loaded.
const assert = require('node:assert/strict')
const fs = require('node:fs')

const root = require('fleetcache')
for (const name of ['createUseCacheHandler', 'createIncrementalCacheHandler', 'stats', 'close']) {
  assert.equal(typeof root[name], 'function', `fleetcache.${name}`)
}
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
  console.log('7 entry points')
}
main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
