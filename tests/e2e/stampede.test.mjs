// End to end for single flight: three `next start` instances, one redis-server, the
// counting origin. When a page's data expires, 30 concurrent requests spread over the three
// instances call the origin once for that key, for a 'use cache' function (examples/next-app)
// and for ISR pages (examples/next-incremental). And with the in-process tier on (the
// default), a revalidation on A is honoured by B and C for every request that starts after it.
//
// Run: node --test tests/e2e/stampede.test.mjs
// Env: FLEETCACHE_TARBALL, E2E_KEEP_LOGS=1.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { makeLogDir, prepareApp, repoRoot, startFleet } from '../support/fleet.mjs'
import { startOrigin } from '../support/origin.mjs'
import { startRedis } from '../support/redis.mjs'
import { revalidateOn, waitForQuiet } from '../support/observe.mjs'
import { indent } from '../support/util.mjs'

// Route-handler revalidations run after the response (waitUntil): a read that must see one
// waits until Redis's tag state holds it (revalidateOn).
const KEEP_LOGS = process.env.E2E_KEEP_LOGS === '1'
const CONCURRENT = 30

/** A fleet of three on one Redis and one origin, torn down after its describe block. */
function fleetFor(appDir, tag) {
  const f = { logDir: undefined, redis: undefined, origin: undefined, nodes: [], failed: false }
  before(
    async () => {
      f.logDir = makeLogDir(`fleetcache-e2e-${tag}-`)
      const app = await prepareApp({ logDir: f.logDir, appDir })
      f.redis = await startRedis({ logDir: f.logDir })
      f.origin = await startOrigin()
      try {
        f.nodes = await startFleet({
          names: ['A', 'B', 'C'],
          env: {
            REDIS_URL: f.redis.url,
            ORIGIN_URL: f.origin.url,
            FLEETCACHE_DEBUG: process.env.FLEETCACHE_DEBUG ?? '1',
          },
          logDir: f.logDir,
          appDir,
        })
      } catch (err) {
        f.failed = true
        throw err
      }
      process.stderr.write(
        `[e2e-${tag}] app ${app.built ? 'built' : 'up to date'} (${app.buildId}); logs=${f.logDir}\n`,
      )
    },
    { timeout: 15 * 60_000 },
  )
  after(async () => {
    await Promise.allSettled(f.nodes.map((n) => n.stop()))
    await f.redis?.stop()
    await f.origin?.close()
    if (!f.failed && !KEEP_LOGS && f.logDir) fs.rmSync(f.logDir, { recursive: true, force: true })
  })
  f.diagnose = async (fn) => {
    try {
      await fn()
    } catch (err) {
      f.failed = true
      const parts = [`--- diagnostics (logs in ${f.logDir}) ---`, f.origin?.describe()]
      for (const n of f.nodes) parts.push(`--- ${n.name} ${n.url} ---\n${n.logTail(40)}`)
      throw new Error(`${err.message}\n\n${indent(parts.join('\n\n'), '  ')}`, { cause: err })
    }
  }
  return f
}

/** Lease requests that got no answer within their budget, per instance (its debug log). */
function leaseTimeouts(f) {
  return f.nodes.map((n) => {
    const file = path.join(f.logDir, `${n.name}.log`)
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''
    return text.split('\n').filter((l) => l.includes('lease request failed')).length
  })
}

/**
 * 30 requests at once, round-robin over the instances; every one must render the data. At the
 * default budgets: no lease request goes unanswered under the event-loop lag
 * of ten concurrent renders per process, since one that does regenerates beside the holder.
 */
async function stampede(f, pathname) {
  const before = leaseTimeouts(f)
  const results = await Promise.all(
    Array.from({ length: CONCURRENT }, (_, i) => f.nodes[i % f.nodes.length].getData(pathname)),
  )
  for (const d of results) assert.equal(d.error, null, `an origin error was rendered: ${d.error}`)
  const timedOut = leaseTimeouts(f).map((n, i) => n - before[i])
  process.stderr.write(
    `[stampede ${pathname}] lease requests unanswered per instance: ${timedOut}\n`,
  )
  assert.deepEqual(timedOut, [0, 0, 0], 'lease requests answered within their budget')
  return results
}

describe("stampede: a 'use cache' function on three instances", () => {
  const f = fleetFor(path.join(repoRoot, 'examples', 'next-app'), 'stampede-uc')

  test('expired data: 30 concurrent requests, one origin call', async () =>
    f.diagnose(async () => {
      const [A] = f.nodes
      const page = '/products?list=stampede'
      const key = 'products-stampede'
      // Every instance has served the page once (routes loaded, entry in memory), so the
      // stampede below starts on three warm instances at once.
      for (const n of f.nodes) assert.equal((await n.getData(page)).version, 1)
      assert.equal(f.origin.calls(key), 1)
      await revalidateOn(A, '/api/expire?tag=products', f.redis, 'products', { mode: 'expire' })
      const before = f.origin.calls(key)
      const results = await stampede(f, page)
      await waitForQuiet({ redis: f.redis, origin: f.origin, names: [key] })
      assert.equal(f.origin.calls(key) - before, 1, 'the origin was called once for the key')
      // Every response came from that one regeneration (no instance served the expired entry).
      const generations = new Set(results.map((d) => d.generatedAt))
      assert.equal(generations.size, 1, `generations: ${[...generations].join(', ')}`)
    }))

  test('in-process tier on: a revalidation on A is honoured by B and C at once', async () =>
    f.diagnose(async () => {
      const [A, B, C] = f.nodes
      const page = '/products?list=coherent'
      const key = 'products-coherent'
      // Every instance holds the entry (in Redis and in its own memory).
      for (const n of [A, B, C, B, C]) assert.equal((await n.getData(page)).version, 1)
      await fetch(`${f.origin.url}/bump/${key}`, { method: 'POST' })
      // Every request from here on starts after the revalidation reached Redis.
      await revalidateOn(A, '/api/expire?tag=products', f.redis, 'products', { mode: 'expire' })
      for (const n of [B, C, A, B, C]) {
        const d = await n.getData(page)
        assert.equal(d.version, 2, `${n.name} served v${d.version} after the revalidation`)
      }
    }))
})

describe('stampede: ISR pages on three instances (singular cacheHandler)', () => {
  const f = fleetFor(path.join(repoRoot, 'examples', 'next-incremental'), 'stampede-inc')

  test('Pages ISR, cold fleet: 30 concurrent requests, one origin call', async () =>
    f.diagnose(async () => {
      await stampede(f, '/isr')
      await waitForQuiet({ redis: f.redis, origin: f.origin, names: ['isr'] })
      assert.equal(f.origin.calls('isr'), 1, 'the origin was called once for /isr')
    }))

  test('App Router ISR after revalidatePath: 30 concurrent requests, one origin call', async () =>
    f.diagnose(async () => {
      const [A] = f.nodes
      for (const n of f.nodes) await n.getData('/app-page')
      await waitForQuiet({ redis: f.redis, origin: f.origin, names: ['app-page'] })
      await revalidateOn(A, '/api/revalidate-path?path=/app-page', f.redis, '_N_T_/app-page', {
        mode: 'expire',
      })
      const before = f.origin.calls('app-page')
      await stampede(f, '/app-page')
      await waitForQuiet({ redis: f.redis, origin: f.origin, names: ['app-page'] })
      assert.equal(f.origin.calls('app-page') - before, 1, 'the origin was called once')
    }))
})
