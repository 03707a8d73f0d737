// Where the time goes between `revalidateTag('products', 'max')` and an instance showing the new
// page, request by request, without the fleet benchmark's load: three `next start` instances of
// examples/next-app (built by `node bench/fleet.mjs` or the e2e tests), one redis-server and
// the counting origin, all on loopback and started here, stopped by their PIDs at the end.
// Each round changes the probe page's origin data, revalidates on instance A, then asks each
// polled instance for the page every TRACE_POLL_MS until it shows the new data, and prints
// `started+took:old|new` per request (ms after the revalidation's reply).
// Knobs: TRACE_CACHE=fleetcache|push|default (Next's per-process cache: only A is polled, the
// others never learn of it), TRACE_POLLED=1|2|3 instances polled (default 3), TRACE_ROUNDS.
import {
  DEFAULT_CACHE_ENV,
  makeLogDir,
  parseDataElement,
  startFleet,
} from '../tests/support/fleet.mjs'
import { startOrigin } from '../tests/support/origin.mjs'
import { startRedis } from '../tests/support/redis.mjs'
import { sleep } from '../tests/support/util.mjs'

const CACHE = process.env.TRACE_CACHE ?? 'fleetcache'
const ROUNDS = Number(process.env.TRACE_ROUNDS ?? 4)
const POLL_MS = Number(process.env.TRACE_POLL_MS ?? 20)
const POLLED = CACHE === 'default' ? 1 : Number(process.env.TRACE_POLLED ?? 3)
const MAX_REQUESTS = 40

const logDir = makeLogDir('fleetcache-trace-')
const redis = await startRedis({ logDir })
const origin = await startOrigin()
const env =
  CACHE === 'default'
    ? { ORIGIN_URL: origin.url, ...DEFAULT_CACHE_ENV }
    : {
        ORIGIN_URL: origin.url,
        REDIS_URL: redis.url,
        ...(CACHE === 'push' ? { FLEETCACHE_TAG_SYNC: 'push' } : {}),
      }
let fleet = []
try {
  fleet = await startFleet({ names: ['a', 'b', 'c'], env, logDir, startTimeoutMs: 90_000 })
  const page = async (inst) => {
    const t = performance.now()
    const res = await fetch(inst.url + '/products?list=probe', {
      signal: AbortSignal.timeout(10_000),
    })
    const data = parseDataElement(await res.text())
    return { ms: performance.now() - t, version: data?.version ?? -1 }
  }
  for (const inst of fleet) for (let i = 0; i < 5; i++) await page(inst)
  console.log(`${CACHE}, ${String(POLLED)} of 3 instances polled every ${String(POLL_MS)} ms`)
  for (let round = 1; round <= ROUNDS; round++) {
    const want = origin.bump('products-probe')
    const t0 = performance.now()
    await fleet[0].call('/api/revalidate?tag=products&profile=max')
    const took = performance.now() - t0
    const lines = await Promise.all(
      fleet.slice(0, POLLED).map(async (inst) => {
        const out = []
        const start = performance.now()
        for (let n = 0; n < MAX_REQUESTS; n++) {
          const at = performance.now() - start
          const { ms, version } = await page(inst)
          const fresh = version >= want
          out.push(`${at.toFixed(0)}+${ms.toFixed(0)}:${fresh ? 'new' : 'old'}`)
          if (fresh) break
          await sleep(POLL_MS)
        }
        return `${inst.name}: ${out.join(' ')}`
      }),
    )
    console.log(
      `round ${String(round)} (revalidateTag took ${took.toFixed(0)} ms)  ${lines.join('   ')}`,
    )
    await sleep(1000)
  }
} finally {
  await Promise.allSettled(fleet.map((i) => i.stop()))
  await origin.close()
  await redis.stop()
}
