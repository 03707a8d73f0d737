// Counts the tag refresh round trips a page request costs: one `next start` of the example app
// against a redis-server of its own, each page warmed, then requested one at a time while a
// MONITOR connection counts the tag refresh scripts (`tag_refresh`, `tag_page`) Redis runs.
//
//   node bench/tag-refreshes.mjs            (FLEETCACHE_TAG_SYNC=push measures push mode)
//
// Needs the example built with the current package (tests/support/fleet.mjs prepareApp does it).
import net from 'node:net'
import { makeLogDir, prepareApp, startInstance } from '../tests/support/fleet.mjs'
import { tagPullShas } from '../tests/support/observe.mjs'
import { startRedis } from '../tests/support/redis.mjs'
import { waitFor } from '../tests/support/util.mjs'

// The SHA-1s of the scripts as the core sends them (stripped of comments and indentation).
const REFRESH = tagPullShas()

const PAGES = ['/products', '/remote', '/ppr', '/shared/static', '/shared/dynamic']
const ROUNDS = Number(process.env.ROUNDS ?? 20)

/** A MONITOR connection: `count()` is the number of tag refresh scripts seen so far. */
async function monitor(port) {
  const sock = net.connect(port, '127.0.0.1')
  await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject))
  let seen = 0
  let pings = 0
  let buf = ''
  sock.setEncoding('utf8')
  sock.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\r\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 2)
      if (/"ping"/i.test(line)) pings += 1
      const m = /"evalsha" "([0-9a-f]{40})"/i.exec(line)
      if (m && REFRESH.has(m[1].toLowerCase())) seen += 1
    }
  })
  sock.write('MONITOR\r\n')
  return {
    count: () => seen,
    pings: () => pings,
    close: () => sock.destroy(),
  }
}

const logDir = makeLogDir('fleetcache-tag-refreshes-')
await prepareApp({ logDir })
const redis = await startRedis({ logDir })
const env = { REDIS_URL: redis.url }
if (process.env.FLEETCACHE_TAG_SYNC) env.FLEETCACHE_TAG_SYNC = process.env.FLEETCACHE_TAG_SYNC
const inst = await startInstance({ name: 'a', env, logDir, readyPath: '/' })
try {
  for (const p of PAGES) for (let i = 0; i < 3; i++) await inst.request(p)
  const mon = await monitor(redis.port)
  const rows = []
  for (const p of PAGES) {
    let refreshes = 0
    for (let i = 0; i < ROUNDS; i++) {
      // A PING through the monitor marks where this request's commands end.
      const before = mon.count()
      await inst.request(p)
      const marker = mon.pings() + 1
      await redis.command('PING')
      await waitFor(() => mon.pings() >= marker, {
        timeoutMs: 10_000,
        intervalMs: 5,
        what: 'MONITOR to catch up',
      })
      refreshes += mon.count() - before
    }
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
