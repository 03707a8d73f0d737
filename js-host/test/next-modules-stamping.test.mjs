// The own-read stamping (OwnReads, callOf in incremental-handler.ts; docs/incremental.md) driven
// by Next's own modules instead of the stand-in of the other suites: `createPatchedFetcher`
// (server/lib/patch-fetch.js), `IncrementalCache` and `unstable_cache`, from the example app's
// `next` (examples/next-app, or the release's copy with E2E_NEXT_VERSION), over the package's
// singular handler and a real redis-server.
//
// Each test serves a stale value whose regeneration begins before a tag revalidation and writes
// after it; the value it made must not be served fresh afterwards. Next shares one handler
// instance between such calls (one IncrementalCache for concurrent renders, the process's last
// one outside a render), so a write paired with the key's latest read of the instance, rather
// than its own call's, is stamped after the revalidation: 'sharing one IncrementalCache' and
// 'outside a render' fail so. The other two, one instance per render, fail when the writes are
// not paired with the instance's reads at all.
//
// No helpers.mjs here: importing it loads its stand-in `next` and makes its temp dir the cwd,
// where fleetcache resolves Next's storages; this process must resolve the app's. The Redis is
// the redis-server startTestRedis starts (tests/support/redis.mjs), stopped by PID.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, test } from 'node:test'

import { prepareAppDeps } from '../../tests/support/fleet.mjs'
import { startRedis } from '../../tests/support/redis.mjs'

let redis
let next
let fleetcache

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-next-modules-'))
  // `make test` runs this suite before the e2e set-up installs the app: `npm ci` when missing.
  const app = await prepareAppDeps({ logDir })
  // fleetcache resolves Next's storages from the cwd, as in an app, on its first use.
  process.chdir(app)
  // Next's server sets this before loading its storages (server/node-environment); they throw
  // without it.
  globalThis.AsyncLocalStorage ??= (await import('node:async_hooks')).AsyncLocalStorage
  const appRequire = createRequire(path.join(app, 'package.json'))
  next = {
    ...appRequire('next/dist/server/lib/patch-fetch.js'),
    ...appRequire('next/dist/server/app-render/work-async-storage.external.js'),
    ...appRequire('next/dist/server/app-render/work-unit-async-storage.external.js'),
    ...appRequire('next/dist/server/lib/incremental-cache/index.js'),
    ...appRequire('next/dist/server/web/spec-extension/unstable-cache.js'),
  }
  fleetcache = await import('../esm/index.mjs')
  redis = await startRedis({ logDir })
})

after(async () => {
  await fleetcache?.close()
  await redis?.stop()
})

const TAG = 't'

/**
 * The singular handler class Next is configured with, on its own key prefix. Without leases: with
 * them the call after the revalidation would wait out the lease of the held regeneration (on the
 * clock) before regenerating itself; single-flight has its own suites.
 */
const handlerClass = (prefix) =>
  fleetcache.createIncrementalCacheHandler({
    redisUrl: redis.url,
    prefix,
    deploymentId: 'd1',
    leases: false,
  })

const MANIFEST = {
  routes: {},
  dynamicRoutes: {},
  notFoundRoutes: [],
  preview: { previewModeId: 'p' },
}

/** What Next builds per request in `next start` (server/next-server.js getIncrementalCache). */
const incrementalCache = (Handler) =>
  new next.IncrementalCache({
    dev: false,
    minimalMode: false,
    requestHeaders: {},
    previewProps: MANIFEST.preview,
    prerenderManifest: MANIFEST,
    getPrerenderManifest: () => MANIFEST,
    fetchCacheKeyPrefix: '',
    CurCacheHandler: Handler,
    maxMemoryCacheSize: 0,
  })

/** A promise and what settles it. */
function gate() {
  let open
  const opened = new Promise((resolve) => (open = resolve))
  return { opened, open }
}

/**
 * The data source: answers `version` as it was when called. `holdNext()` holds the next call's
 * answer until `release()`, and `began` resolves once that call has read `version`.
 */
function source() {
  const s = { version: 'v1', calls: 0, held: null }
  s.call = async () => {
    s.calls++
    const v = s.version
    const held = s.held
    s.held = null
    if (held) {
      held.began.open()
      await held.released.opened
    }
    return v
  }
  s.holdNext = () => {
    const held = { began: gate(), released: gate() }
    s.held = held
    return { began: held.began.opened, release: held.released.open }
  }
  return s
}

/**
 * A render of a dynamic page: Next's work store and request work-unit store around `fn`, which
 * runs as a server component does. `after` settles once Next's after-response work is done (the
 * background regenerations in `pendingRevalidates`, which Next awaits after sending the response).
 */
function render(ic, fn) {
  const workStore = {
    route: '/r',
    page: '/r',
    incrementalCache: ic,
    isStaticGeneration: false,
    forceStatic: false,
    isDraftMode: false,
    fetchCache: undefined,
  }
  const unit = {
    type: 'request',
    phase: 'render',
    implicitTags: { tags: [] },
    url: { pathname: '/r', search: '' },
    revalidate: 1,
    tags: null,
  }
  const value = next.workAsyncStorage.run(workStore, () => next.workUnitAsyncStorage.run(unit, fn))
  const done = value.then(() => Promise.all(Object.values(workStore.pendingRevalidates ?? {})))
  return { value, after: done }
}

/**
 * One request as Next handles it outside a render (Pages Router): in an async context of its own,
 * its IncrementalCache made the process's last (`globalThis.__incrementalCache`, which
 * `unstable_cache` falls back to) and reset (the scope fleetcache opens per request).
 */
const request = (Handler, fn) =>
  new Promise((resolve, reject) =>
    setImmediate(() => {
      const ic = incrementalCache(Handler)
      globalThis.__incrementalCache = ic
      ic.resetRequestCache()
      fn(ic).then(resolve, reject)
    }),
  )

/**
 * Waits out the revalidate period (1 s, the least Next allows) of an entry just written, so that
 * it is stale: a wait on the clock, which no ordering below depends on.
 */
const untilStale = () => sleep(1_100)

/** Revalidates TAG from another handler instance, as a Server Action on another request does. */
const revalidate = (Handler) =>
  new Handler({ dev: false, revalidatedTags: [] }).revalidateTag([TAG], { expire: 0 })

const BEFORE = 'v2-made-before-the-revalidation'

// A stale fetch served, its refetch in the background (after the response), the tag revalidated
// while the refetch waits on the origin; a render after the revalidation refetches and writes
// first, then the stale render's refetch writes.
async function fetchRegeneration(prefix, { shareCache }) {
  const Handler = handlerClass(prefix)
  const shared = incrementalCache(Handler)
  const cacheFor = () => (shareCache ? shared : incrementalCache(Handler))
  const origin = source()
  const fetch = next.createPatchedFetcher(
    async () => new Response(JSON.stringify(await origin.call()), { status: 200 }),
    { workAsyncStorage: next.workAsyncStorage, workUnitAsyncStorage: next.workUnitAsyncStorage },
  )
  const page = (ic = cacheFor()) =>
    render(ic, async () => {
      const res = await fetch('http://origin.test/data', { next: { revalidate: 1, tags: [TAG] } })
      return res.json()
    })

  const seed = page()
  assert.equal(await seed.value, 'v1')
  await seed.after
  await untilStale()

  origin.version = BEFORE
  const refetch = origin.holdNext()
  const stale = page()
  assert.equal(await stale.value, 'v1', 'the stale value is served')
  await refetch.began
  await revalidate(Handler)
  origin.version = 'v3'
  const fresh = page()
  assert.equal(await fresh.value, 'v3', 'after the revalidation a render fetches anew')
  await fresh.after
  refetch.release()
  await stale.after

  origin.version = 'v4'
  const later = page(incrementalCache(Handler))
  assert.notEqual(await later.value, BEFORE, 'a value made before the revalidation served fresh')
  await later.after
}

test('fetch: two concurrent renders sharing one IncrementalCache', async () => {
  await fetchRegeneration(`nm-fetch-shared-${Date.now()}`, { shareCache: true })
})

test('fetch: one IncrementalCache per render', async () => {
  await fetchRegeneration(`nm-fetch-own-${Date.now()}`, { shareCache: false })
})

// unstable_cache: a stale entry served and regenerated, the regeneration held past a tag
// revalidation, while request B (begun before, so that A's IncrementalCache is the process's
// last one) reads after the revalidation and writes first. In a render the regeneration runs
// after the response; outside one (Pages Router) in the foreground, through the shared cache.
async function unstableCacheRegeneration(prefix, { inRender }) {
  const Handler = handlerClass(prefix)
  const data = source()
  const cached = next.unstable_cache(() => data.call(), [prefix], { revalidate: 1, tags: [TAG] })
  const call = (ic) =>
    inRender ? render(ic, () => cached()) : { value: cached(), after: Promise.resolve() }
  const served = async (ic) => {
    const c = call(ic)
    const v = await c.value
    await c.after
    return v
  }

  assert.equal(await request(Handler, served), 'v1')
  await untilStale()

  data.version = BEFORE
  const regeneration = data.holdNext()
  const bBegan = gate()
  const bGo = gate()
  const b = request(Handler, async (ic) => {
    bBegan.open()
    await bGo.opened
    return served(ic)
  })
  await bBegan.opened
  const a = request(Handler, async (ic) => {
    const c = call(ic)
    // In a render the stale value is served at once; outside one the call waits on the source.
    if (inRender) assert.equal(await c.value, 'v1', 'the stale value is served')
    return c
  })
  await regeneration.began
  await revalidate(Handler)
  data.version = 'v3'
  bGo.open()
  assert.equal(await b, 'v3', 'after the revalidation a call regenerates anew')
  regeneration.release()
  const aCall = await a
  await aCall.value
  await aCall.after

  data.version = 'v4'
  const later = await request(Handler, served)
  assert.notEqual(later, BEFORE, 'a value made before the revalidation served fresh')
}

test('unstable_cache in a render', async () => {
  await unstableCacheRegeneration(`nm-uc-render-${Date.now()}`, { inRender: true })
})

test('unstable_cache outside a render, through the shared global IncrementalCache', async () => {
  await unstableCacheRegeneration(`nm-uc-pages-${Date.now()}`, { inRender: false })
})
