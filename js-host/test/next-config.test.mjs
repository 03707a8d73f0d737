// withFleetcache: what it sets, what it leaves alone.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import path from 'node:path'
import { test } from 'node:test'

import { withFleetcache } from '../esm/config.mjs'

const require = createRequire(import.meta.url)

test('sets both cache interfaces by absolute path and keeps the rest of the config', () => {
  const user = {
    reactStrictMode: true,
    serverExternalPackages: ['sharp'],
    cacheHandlers: { custom: '/somewhere/else.js' },
    outputFileTracingIncludes: { '/api/*': ['./data/**'] },
  }
  const out = withFleetcache(user, { projectDir: path.resolve('..') })
  assert.equal(out.reactStrictMode, true)
  assert.equal(out.cacheHandler, require.resolve('fleetcache/incremental'))
  assert.ok(path.isAbsolute(out.cacheHandler))
  assert.equal(out.cacheMaxMemorySize, 0)
  assert.equal(withFleetcache({ cacheMaxMemorySize: 1024 }).cacheMaxMemorySize, 1024)
  assert.equal(out.cacheHandlers.default, require.resolve('fleetcache/use-cache'))
  assert.equal(out.cacheHandlers.remote, out.cacheHandlers.default)
  assert.equal(out.cacheHandlers.custom, '/somewhere/else.js')
  assert.deepEqual(out.serverExternalPackages, ['sharp', 'fleetcache'])
  assert.deepEqual(out.outputFileTracingIncludes['/api/*'], ['./data/**'])
  assert.deepEqual(out.outputFileTracingIncludes['/*'], ['js-host/wasm/**'])
  // The caller's object is untouched, and applying twice changes nothing more.
  assert.deepEqual(user.serverExternalPackages, ['sharp'])
  assert.equal(user.cacheHandler, undefined)
  assert.deepEqual(withFleetcache(out, { projectDir: path.resolve('..') }), out)
})

test('options choose the interfaces and add named handlers', () => {
  const out = withFleetcache({}, { incremental: false, useCache: false, handlers: ['products'] })
  assert.equal(out.cacheHandler, undefined)
  assert.deepEqual(Object.keys(out.cacheHandlers), ['products'])
  assert.throws(() => withFleetcache({}, { handlers: ['private'] }), /private/)
  assert.throws(() => withFleetcache({}, { handlers: ['Bad'] }), /Bad/)
})

test('the CommonJS entry is the same function', () => {
  assert.equal(require('fleetcache/config').withFleetcache, withFleetcache)
})
