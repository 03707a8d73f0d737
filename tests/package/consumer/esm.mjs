// An ESM user of the installed package: every entry point through `import`, used, not only
// loaded, and one module graph with CommonJS (one engine per process).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'

import * as root from 'fleetcache'
import { withFleetcache } from 'fleetcache/config'
import { close } from 'fleetcache/shutdown'
import Incremental from 'fleetcache/incremental'
import useCache from 'fleetcache/use-cache'
import { createCache } from 'fleetcache/worker'
import pkg from 'fleetcache/package.json' with { type: 'json' }

const require = createRequire(import.meta.url)
for (const name of ['createUseCacheHandler', 'createIncrementalCacheHandler', 'stats', 'close']) {
  assert.equal(typeof root[name], 'function', `fleetcache.${name}`)
}
assert.equal(close, root.close, "fleetcache/shutdown's close is fleetcache's")
assert.equal(close, require('fleetcache/shutdown').close, 'import and require: one close')
assert.equal(useCache, require('fleetcache/use-cache'), 'import and require: one handler')
assert.equal(Incremental, require('fleetcache/incremental'), 'import and require: one class')
assert.equal(typeof withFleetcache({}).cacheHandlers.default, 'string')
assert.equal(pkg.name, 'fleetcache')

// The worker build, from the package's own .wasm: a value stored is a value read.
const bytes = fs.readFileSync(new URL(import.meta.resolve('fleetcache/wasm')))
const cache = createCache({
  module: new WebAssembly.Module(bytes),
  prefix: 'esm',
  deploymentId: 'd1',
})
const body = new TextEncoder().encode('hello')
await cache.set(
  'k',
  Promise.resolve({
    value: new ReadableStream({
      start(c) {
        c.enqueue(body)
        c.close()
      },
    }),
    tags: ['t'],
    stale: 60,
    timestamp: Date.now(),
    expire: 3600,
    revalidate: 60,
  }),
)
const hit = await cache.get('k', [])
assert.ok(hit, 'the worker cache returns what it stored')
assert.equal(await new Response(hit.value).text(), 'hello')

// The Node handler, in-process (no REDIS_URL): the same round trip through the Node engine.
const handler = root.createUseCacheHandler({ prefix: 'esm', deploymentId: 'd1' })
await handler.set(
  'n',
  Promise.resolve({
    value: new ReadableStream({
      start(c) {
        c.enqueue(body)
        c.close()
      },
    }),
    tags: [],
    stale: 60,
    timestamp: Date.now(),
    expire: 3600,
    revalidate: 60,
  }),
)
const got = await handler.get('n', [])
assert.equal(await new Response(got.value).text(), 'hello')
await close()
console.log('8 entry points, 2 round trips')
