// Two versions of the package in one process (two copies in node_modules: a dependency that
// brings its own; package-versions.test.mjs) report apart: each version's OpenTelemetry
// binding reads the counters of its own runtimes only, under a meter and a tracer of its own
// version, and a version that finds no `@opentelemetry/api` beside it leaves the others theirs
// (docs/observability.md, "OpenTelemetry").
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { pathToFileURL } from 'node:url'

import { startRedis } from '../../tests/support/redis.mjs'
import { registerTestSdk } from './otel-sdk.mjs'
import { OURS, installCopy } from './package-copies.mjs'

// The SDK is registered before any copy is loaded, as an instrumentation hook would.
const { reader, spans } = registerTestSdk()

let redis
let tmp
const loaded = []

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-telemetry-versions-'))
  redis = await startRedis({ logDir: tmp })
})

after(async () => {
  for (const copy of loaded) await copy.close()
  await redis.stop()
  fs.rmSync(tmp, { recursive: true, force: true })
})

/** Loads a copy of the package: through CommonJS, or through its ESM entry. */
async function load(dir, how) {
  const copy =
    how === 'cjs'
      ? createRequire(path.join(dir, '..', '..', 'index.js'))('fleetcache')
      : await import(pathToFileURL(path.join(dir, 'esm', 'index.mjs')).href)
  loaded.push(copy)
  return copy
}

/** `fleetcache.lookups` (use-cache misses) per meter version of the `fleetcache` meters. */
async function missesByVersion() {
  const { resourceMetrics, errors } = await reader.collect()
  assert.deepEqual(errors, [])
  const byVersion = {}
  for (const scope of resourceMetrics.scopeMetrics) {
    if (scope.scope.name !== 'fleetcache') continue
    const m = scope.metrics.find((x) => x.descriptor.name === 'fleetcache.lookups')
    const p = m?.dataPoints.find(
      (d) =>
        d.attributes['fleetcache.interface'] === 'use-cache' &&
        d.attributes['fleetcache.outcome'] === 'miss',
    )
    byVersion[scope.scope.version] = (byVersion[scope.scope.version] ?? 0) + (p?.value ?? 0)
  }
  return byVersion
}

/** The Redis GET spans of the `fleetcache` tracers, counted per tracer version. */
function getSpansByVersion() {
  const byVersion = {}
  for (const s of spans.getFinishedSpans()) {
    if (s.instrumentationScope.name !== 'fleetcache' || s.name !== 'GET') continue
    byVersion[s.instrumentationScope.version] = (byVersion[s.instrumentationScope.version] ?? 0) + 1
  }
  return byVersion
}

// One Redis command per lookup: no in-process tier, no leases.
const options = (prefix) => ({
  redisUrl: redis.url,
  prefix,
  deploymentId: 'd1',
  memoryBytes: 0,
  leases: false,
})

/** `n` lookups of absent entries through a 'use cache' handler of `copy`: `n` misses. */
async function misses(copy, prefix, n) {
  const h = copy.createUseCacheHandler(options(prefix))
  await h.refreshTags()
  for (let i = 0; i < n; i++) assert.equal(await h.get(`absent-${i}`, []), undefined)
}

test("a version that finds no @opentelemetry/api, loaded first, leaves the others' instruments and spans", async () => {
  // No @opentelemetry/api beside this copy (nor above its directory): it cannot load it.
  const bare = installCopy(tmp, 'bare', OURS)
  assert.throws(() =>
    createRequire(path.join(bare, 'dist', 'index.js')).resolve('@opentelemetry/api'),
  )
  const otel = installCopy(tmp, 'otel', `${OURS}-otel`, ['redis', '@opentelemetry/api'])
  const first = await load(bare, 'cjs')
  await misses(first, 'bare', 1)
  const second = await load(otel, 'esm')
  await misses(second, 'otel', 2)
  assert.deepEqual(await missesByVersion(), { [`${OURS}-otel`]: 2 })
  assert.deepEqual(getSpansByVersion(), { [`${OURS}-otel`]: 2 })
})

test("two versions with the API: each reads its own runtimes' counters, under its own meter and tracer version", async () => {
  spans.reset()
  const b = installCopy(tmp, 'b', `${OURS}-b`, ['redis', '@opentelemetry/api'])
  const c = installCopy(tmp, 'c', `${OURS}-c`, ['redis', '@opentelemetry/api'])
  const first = await load(b, 'cjs')
  const second = await load(c, 'esm')
  await misses(first, 'b', 3)
  await misses(second, 'c', 4)
  const byVersion = await missesByVersion()
  assert.equal(byVersion[`${OURS}-b`], 3, JSON.stringify(byVersion))
  assert.equal(byVersion[`${OURS}-c`], 4, JSON.stringify(byVersion))
  const got = getSpansByVersion()
  assert.equal(got[`${OURS}-b`], 3, JSON.stringify(got))
  assert.equal(got[`${OURS}-c`], 4, JSON.stringify(got))
  // Each version's stats() counts the same runtimes as its instruments.
  assert.equal(first.stats().lookups.useCache.miss, 3)
  assert.equal(second.stats().lookups.useCache.miss, 4)
})

test('copies of one version (one through CommonJS, the other through its ESM entry) share one meter and tracer, and count once', async () => {
  spans.reset()
  const version = `${OURS}-same`
  const d = installCopy(tmp, 'same-d', version, ['redis', '@opentelemetry/api'])
  const e = installCopy(tmp, 'same-e', version, ['redis', '@opentelemetry/api'])
  const first = await load(d, 'cjs')
  const second = await load(e, 'esm')
  assert.notEqual(first.stats, second.stats, 'two copies of the package')
  await misses(first, 'same-d', 2)
  await misses(second, 'same-e', 3)
  const { resourceMetrics } = await reader.collect()
  const scopes = resourceMetrics.scopeMetrics.filter(
    (s) => s.scope.name === 'fleetcache' && s.scope.version === version,
  )
  assert.equal(scopes.length, 1, 'one meter for the version')
  assert.equal((await missesByVersion())[version], 5, "both copies' runtimes, each once")
  assert.equal(getSpansByVersion()[version], 5)
})

test("close() of one version stops every version's telemetry reading the engines it shut", async () => {
  const f = installCopy(tmp, 'close-f', `${OURS}-close-f`, ['redis', '@opentelemetry/api'])
  const g = installCopy(tmp, 'close-g', `${OURS}-close-g`, ['redis', '@opentelemetry/api'])
  const first = await load(f, 'cjs')
  const second = await load(g, 'esm')
  await misses(first, 'close-f', 1)
  await misses(second, 'close-g', 1)
  const slot = (v) => globalThis[Symbol.for(`fleetcache.telemetry@${v}`)]?.telemetry
  const theirs = slot(`${OURS}-close-g`)
  assert.notEqual(theirs?.collect(), undefined, "the second version's telemetry reads its engine")
  await first.close()
  assert.equal(slot(`${OURS}-close-f`).collect(), undefined, 'the closing version reads none')
  assert.equal(theirs.collect(), undefined, 'nor does the other version')
})
