// Counts the tag refresh round trips a page request costs: one `next start` of the example app
// against a redis-server of its own, each page warmed, then requested one at a time while a
// MONITOR connection counts the tag refresh scripts (`tag_refresh`, `tag_page`) Redis runs.
//
//   node bench/tag-refreshes.mjs            (FLEETCACHE_TAG_SYNC=push measures push mode)
//
// Needs the example built with the current package (tests/support/fleet.mjs prepareApp does it).
import { makeLogDir, prepareApp, startInstance } from '../tests/support/fleet.mjs'
import { tagPullMonitor } from '../tests/support/observe.mjs'
import { startRedis } from '../tests/support/redis.mjs'

const PAGES = ['/products', '/remote', '/ppr', '/shared/static', '/shared/dynamic']
const ROUNDS = Number(process.env.ROUNDS ?? 20)

const logDir = makeLogDir('fleetcache-tag-refreshes-')
await prepareApp({ logDir })
const redis = await startRedis({ logDir })
const env = { REDIS_URL: redis.url }
if (process.env.FLEETCACHE_TAG_SYNC) env.FLEETCACHE_TAG_SYNC = process.env.FLEETCACHE_TAG_SYNC
const inst = await startInstance({ name: 'a', env, logDir, readyPath: '/' })
try {
  for (const p of PAGES) for (let i = 0; i < 3; i++) await inst.request(p)
  const mon = await tagPullMonitor(redis)
  const rows = []
  for (const p of PAGES) {
    let refreshes = 0
    for (let i = 0; i < ROUNDS; i++) refreshes += await mon.pullsDuring(() => inst.request(p))
    rows.push([p, (refreshes / ROUNDS).toFixed(2)])
  }
  mon.close()
  console.log(
    `tag refresh round trips per page request (${ROUNDS} requests each, one at a time, mode ${env.FLEETCACHE_TAG_SYNC ?? 'pull'}):`,
  )
  for (const [p, n] of rows) console.log(`  ${p.padEnd(16)} ${n}`)
} finally {
  await inst.stop()
  await redis.stop()
}
