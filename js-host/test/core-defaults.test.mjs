// The host keeps no copy of the core's defaults: what it was not given, the engine fills in, and
// the numbers the host needs itself it reads from the binding's defaults().
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import { test } from 'node:test'

const require = createRequire(import.meta.url)
const { resolveOptions } = require('../dist/config.js')
const wasm = require('../wasm/node/fleetcache_wasm.js')

const CORE_SETTINGS = [
  'prefix',
  'maxEntryBytes',
  'maxTtlSeconds',
  'memoryBytes',
  'defaultTtlSeconds',
  'tagMirrorMaxTags',
]

test('options not given are left to the engine, which takes the core defaults', () => {
  const resolved = resolveOptions({})
  for (const name of CORE_SETTINGS) {
    assert.equal(resolved.engine[name], undefined, `${name} is not copied into the host`)
  }
  assert.equal(resolved.connectTimeoutMs, undefined, 'the connect budget is the engine’s')
  const engine = new wasm.Engine(resolved.engine)
  const core = wasm.defaults()
  assert.equal(engine.prefix, core.prefix)
  assert.equal(engine.maxEntryBytes, core.maxEntryBytes)
  assert.equal(engine.connectBudgetMs, core.connectTimeoutMs)
})

test('options given still reach the engine, checked by name', () => {
  const resolved = resolveOptions({
    prefix: 'p1',
    maxEntryBytes: 1000,
    maxTtlSeconds: 60,
    memoryBytes: 0,
    defaultTtlSeconds: 30,
    tagMirrorMaxTags: 5000,
    connectTimeoutMs: 250,
  })
  assert.deepEqual(
    CORE_SETTINGS.map((n) => resolved.engine[n]),
    ['p1', 1000, 60, 0, 30, 5000],
  )
  assert.equal(new wasm.Engine(resolved.engine).connectBudgetMs, 250)
  assert.throws(() => resolveOptions({ maxEntryBytes: -1 }), { variable: 'maxEntryBytes' })
  assert.throws(() => resolveOptions({ memoryBytes: -1 }), { variable: 'memoryBytes' })
  assert.throws(() => resolveOptions({ tagMirrorMaxTags: 0 }), { variable: 'tagMirrorMaxTags' })
  assert.throws(() => new wasm.Engine({ deployment: 'd', tagMirrorMaxTags: 1e9 }), {
    code: 'ERR_CONFIG_TAG_MIRROR_MAX_TAGS',
  })
})

test('the host sources repeat none of the core defaults', () => {
  // The numbers as the host once copied them, in code or in doc comments.
  const copies = [
    /8 \* 1024 \* 1024/,
    /30 \* 24 \* 3600/,
    /50 \* 1024 \* 1024/,
    /365 \* 24 \* 3600/,
  ]
  const prose = [
    /Default 8 MiB/,
    /Default 30 days/,
    /Default 50 MiB/,
    /Default 1 year/,
    /Default `fleetcache`/,
  ]
  for (const file of ['src/config.ts', 'worker-src/index.ts']) {
    const text = fs.readFileSync(new URL(`../${file}`, import.meta.url), 'utf8')
    for (const re of [...copies, ...prose]) assert.doesNotMatch(text, re, file)
  }
})

test('the workers entry hands out the core defaults and bounds instead of copies', async () => {
  const worker = await import('fleetcache/worker')
  const bytes = fs.readFileSync(new URL(import.meta.resolve('fleetcache/wasm')))
  const engine = worker.createEngine(bytes)
  assert.deepEqual(worker.defaults(), wasm.defaults())
  assert.deepEqual(worker.bounds(), wasm.bounds())
  assert.equal(engine.maxEntryBytes, worker.defaults().maxEntryBytes)
})
