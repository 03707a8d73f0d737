// End to end: a prerendered page regenerated over a stale 'use cache' entry
// must not bake the old data in. Three `next start` instances of examples/next-app on one Redis
// (leases on, the default), the counting origin. /shared/static is a prerendered page and
// /shared/dynamic a dynamic one; both read the one 'use cache' entry tagged 'shared'
// (lib/data.ts getShared). After each kind of revalidation, run on A, all three instances are
// polled on both routes at once, and every one of the six must serve the origin's new version
// within FRESH_WITHIN_MS of the trigger's response, then keep serving it; ROUNDS times each.
//
// Run: node --test --test-concurrency=1 tests/e2e/fresh-regen.test.mjs
// Env: FLEETCACHE_TARBALL, E2E_KEEP_LOGS=1.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { fleetSuite } from '../support/diagnostics.mjs'
import { makeLogDir, prepareApp, startFleet } from '../support/fleet.mjs'
import { startOrigin } from '../support/origin.mjs'
import { startRedis } from '../support/redis.mjs'
import { sleep, waitFor } from '../support/util.mjs'

// The promise under test: every instance fresh on both routes this soon after the trigger
// answered (Next runs the revalidation itself after that response, through waitUntil).
const FRESH_WITHIN_MS = 2000
const POLL_MS = 50
// Bounds each polling loop whatever the clock does.
const MAX_READS = 200
const ROUTES = ['/shared/static', '/shared/dynamic']
// Each revalidation is run this many times in a row: what goes wrong here depends on which
// requests overlap (a page regeneration joining a request's pending 'use cache' read, a
// follower polling while the holder renders), and one round may miss the overlap.
const ROUNDS = 10
const NAME = 'shared'

let logDir
let redis
let origin
let nodes = []

const short = (seen) => {
  const out = []
  for (const v of seen) {
    const last = out[out.length - 1]
    if (last && last.v === v) last.n++
    else out.push({ v, n: 1 })
  }
  return out.map(({ v, n }) => (n > 1 ? `v${v} x${n}` : `v${v}`)).join(', ')
}

async function read(node, route) {
  const d = await node.getData(route)
  assert.equal(d.error, null, `${node.name} ${route} rendered an origin error: ${d.error}`)
  return d
}

/** Every instance serves `version` on both routes (a first render may take a while). */
async function settledOn(version) {
  for (const node of nodes) {
    for (const route of ROUTES) {
      await waitFor(async () => (await read(node, route)).version === version, {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: `${node.name} ${route} to serve v${version}`,
      })
    }
  }
}

/**
 * Bumps the origin, runs `trigger` on A, then polls all six (instance, route) pairs at once
 * until each has served the new version; a pair that has not when the deadline passes fails
 * the test. Every answer must be the old or the new version, and after the new one each pair
 * is read once more: it must stay new.
 */
async function freshEverywhere(trigger) {
  const oldV = origin.version(NAME)
  await settledOn(oldV)
  const newV = origin.bump(NAME)
  await nodes[0].call(trigger)
  const deadline = Date.now() + FRESH_WITHIN_MS
  const seen = new Map()
  const late = []
  await Promise.all(
    nodes.flatMap((node) =>
      ROUTES.map(async (route) => {
        const label = `${node.name} ${route}`
        const versions = []
        seen.set(label, versions)
        for (let i = 0; i < MAX_READS; i++) {
          const started = Date.now()
          const d = await read(node, route)
          versions.push(d.version)
          assert.ok(
            d.version === oldV || d.version === newV,
            `${label} served v${d.version}; expected v${oldV} or v${newV}`,
          )
          if (d.version === newV) {
            if (started > deadline) late.push(label)
            return
          }
          if (Date.now() > deadline) {
            late.push(label)
            return
          }
          await sleep(POLL_MS)
        }
        late.push(label)
      }),
    ),
  )
  const summary = [...seen].map(([label, v]) => `  ${label}: ${short(v)}`).join('\n')
  assert.deepEqual(
    late,
    [],
    `not fresh within ${FRESH_WITHIN_MS} ms of ${trigger} (old v${oldV}, new v${newV}):\n${summary}`,
  )
  for (const node of nodes) {
    for (const route of ROUTES) {
      const d = await read(node, route)
      assert.equal(d.version, newV, `${node.name} ${route} went back to v${d.version}\n${summary}`)
    }
  }
}

describe('a prerendered page and a dynamic one share a tagged use-cache entry', () => {
  const report = fleetSuite({
    tag: 'e2e-fresh-regen',
    scene: () => ({ logDir, origin, redis: [redis], instances: nodes }),
    timeout: 15 * 60_000,
    setUp: async () => {
      logDir = makeLogDir('fleetcache-e2e-fresh-regen-')
      const app = await prepareApp({ logDir })
      redis = await startRedis({ logDir })
      origin = await startOrigin()
      nodes = await startFleet({
        names: ['A', 'B', 'C'],
        env: {
          REDIS_URL: redis.url,
          ORIGIN_URL: origin.url,
          FLEETCACHE_DEBUG: process.env.FLEETCACHE_DEBUG ?? '1',
        },
        logDir,
      })
      process.stderr.write(
        `[e2e-fresh-regen] app ${app.built ? 'built' : 'up to date'} (${app.buildId}); logs=${logDir}\n`,
      )
    },
  })

  test(
    'revalidateTag(tag, { expire: 0 }): fresh everywhere',
    { timeout: 120_000 },
    report.wrap(async () => {
      for (let round = 0; round < ROUNDS; round++) await freshEverywhere(`/api/expire?tag=${NAME}`)
    }),
  )

  test(
    'revalidatePath of their layout: fresh everywhere',
    { timeout: 120_000 },
    report.wrap(async () => {
      for (let round = 0; round < ROUNDS; round++)
        await freshEverywhere('/api/revalidate-path?path=/shared&type=layout')
    }),
  )

  test(
    "revalidateTag(tag, 'max'): fresh everywhere, the static page included",
    { timeout: 120_000 },
    report.wrap(async () => {
      for (let round = 0; round < ROUNDS; round++)
        await freshEverywhere(`/api/revalidate?tag=${NAME}&profile=max`)
    }),
  )
})
