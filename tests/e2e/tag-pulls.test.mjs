// End to end: the tag pulls a page request costs in pull mode (the default), against one real
// `next start` of examples/next-app and its own redis-server. Each page is warmed, then asked
// for one request at a time while a MONITOR connection counts the tag refresh scripts
// (`tag_refresh`, `tag_page`) Redis runs inside each request's window. A request makes one
// pull: the response cache's read of the page (or PPR shell) pulls, outside any render, and
// the render (a PPR resume, a regeneration) is served by that pull, because the request's scope
// opened when Next reset its IncrementalCache, before the read (docs/failures.md, "How often a
// request pulls"). The same count as `node bench/tag-refreshes.mjs`, asserted.
//
// Run: node --test tests/e2e/tag-pulls.test.mjs   (E2E_NEXT_VERSION=16.0.0 for another release)
// Env: FLEETCACHE_TARBALL, E2E_KEEP_LOGS=1.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { failureReport, tearDown } from '../support/diagnostics.mjs'
import { makeLogDir, prepareApp, startInstance } from '../support/fleet.mjs'
import { tagPullMonitor } from '../support/observe.mjs'
import { startOrigin } from '../support/origin.mjs'
import { startRedis } from '../support/redis.mjs'

const KEEP_LOGS = process.env.E2E_KEEP_LOGS === '1'

// Every page of the example app that reads through fleetcache: a PPR shell with a dynamic hole
// reading 'use cache' (/products, /remote, /ppr, /shared/dynamic), a prerendered page
// (/shared/static).
const PAGES = ['/products?list=pulls', '/remote', '/ppr', '/shared/static', '/shared/dynamic']
const ROUNDS = 10

let logDir
let redis
let origin
let inst
let mon

const report = failureReport(() => ({ logDir, origin, redis: [redis], instances: [inst] }))

/** The tag pulls one request to `pathname` made. */
function pullsOf(pathname) {
  return mon.pullsDuring(async () => {
    const d = await inst.getData(pathname)
    assert.equal(d.error, null, `${pathname} rendered an origin error: ${d.error}`)
  })
}

describe('fleetcache e2e: tag pulls per page request, pull mode', () => {
  before(
    async () => {
      try {
        logDir = makeLogDir('fleetcache-tag-pulls-')
        await prepareApp({ logDir })
        redis = await startRedis({ logDir })
        origin = await startOrigin()
        inst = await startInstance({
          name: 'a',
          env: { REDIS_URL: redis.url, ORIGIN_URL: origin.url, FLEETCACHE_TAG_SYNC: 'pull' },
          logDir,
          readyPath: '/',
        })
        for (const p of PAGES) for (let i = 0; i < 3; i++) await inst.getData(p)
        mon = await tagPullMonitor(redis)
      } catch (err) {
        report.failed = true
        throw err
      }
    },
    { timeout: 900_000 },
  )

  after(async () => {
    mon?.close()
    await tearDown({
      tag: 'tag-pulls',
      logDir,
      failed: report.failed,
      keep: KEEP_LOGS,
      instances: [inst],
      services: [origin, redis],
    })
  })

  for (const pathname of PAGES) {
    test(
      `${pathname}: one tag pull per request, shared by the page read and the render`,
      report.wrap(async () => {
        const seen = []
        for (let i = 0; i < ROUNDS; i++) seen.push(await pullsOf(pathname))
        assert.deepEqual(
          seen,
          seen.map(() => 1),
          `tag pulls per request over ${String(ROUNDS)} requests: ${seen.join(' ')}`,
        )
      }),
    )
  }
})
