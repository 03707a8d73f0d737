// What the e2e and fault tests wait for instead of sleeping: state fleetcache leaves in Redis
// (docs/internals.md: the tag state, lease keys, entry envelopes) and the counting origin's
// calls. Every wait is bounded (waitFor) and says what it waited for when it times out.
//
// `redis` is what tests/support/redis.mjs or redis-cluster.mjs return: `command(...args)` (on a
// cluster a keyed command goes to the slot's master, SCAN covers every master).
import { createRequire } from 'node:module'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { waitFor } from './util.mjs'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

/** name -> SHA-1, read from the engine once (`scriptShas`). */
let shas

/**
 * Every script the core sends, by name (its file under crates/fleetcache-core/src/lua/
 * without `.lua`), to the SHA-1 Redis knows it by (`EVALSHA`, MONITOR): the engine's own list
 * (`scriptShas` of the tools module js-host built: run make pack first), so a test names the
 * exact text the core sends.
 */
export function scriptShas() {
  if (shas === undefined) {
    const tools = createRequire(import.meta.url)(
      path.join(repoRoot, 'js-host/wasm/tools/node/fleetcache_wasm.js'),
    )
    // Name, SHA-1, name, SHA-1, ... in one NUL-joined string.
    const items = tools.scriptShas().split('\0')
    shas = new Map()
    for (let i = 0; i + 1 < items.length; i += 2) shas.set(items[i], items[i + 1])
  }
  return shas
}

/** The SHA-1 of a script of crates/fleetcache-core/src/lua/ (`tag_refresh.lua`) as sent. */
export function scriptSha(file) {
  const sha = scriptShas().get(file.replace(/\.lua$/, ''))
  if (sha === undefined) throw new Error(`${file}: the engine sends no such script (make pack?)`)
  return sha
}

/** The scripts one tag pull runs (the first page of the state, or a further page of it). */
export const tagPullShas = () => new Set([scriptSha('tag_refresh.lua'), scriptSha('tag_page.lua')])

/**
 * A MONITOR connection to the server on `port` (127.0.0.1): `onLine` gets each line it reports,
 * `+OK` first. Resolves with the socket once connected and MONITOR sent; `destroy()` ends it.
 */
export async function monitorLines(port, onLine) {
  const sock = net.connect(port, '127.0.0.1')
  await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject))
  let buf = ''
  sock.setEncoding('utf8')
  sock.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\r\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 2)
      onLine(line)
    }
  })
  sock.write('MONITOR\r\n')
  return sock
}

/**
 * A MONITOR connection to the redis-server `redis` (tests/support/redis.mjs) counting the tag
 * pulls it runs (`EVALSHA` of tagPullShas). `pullsDuring(fn)`: the pulls made while `fn` ran,
 * its commands ended by a PING through Redis, which MONITOR reports after them.
 */
export async function tagPullMonitor(redis) {
  const shas = tagPullShas()
  let pulls = 0
  let pings = 0
  const sock = await monitorLines(redis.port, (line) => {
    if (/"ping"/i.test(line)) pings += 1
    const m = /"evalsha" "([0-9a-f]{40})"/i.exec(line)
    if (m && shas.has(m[1].toLowerCase())) pulls += 1
  })
  return {
    async pullsDuring(fn) {
      const before = pulls
      await fn()
      const marker = pings + 1
      await redis.command('PING')
      await waitFor(() => pings >= marker, {
        timeoutMs: 10_000,
        intervalMs: 5,
        what: 'MONITOR to catch up',
      })
      return pulls - before
    },
    close: () => sock.destroy(),
  }
}

// waitFor, with what the probe last saw (`detail()`) added to a timeout's message.
async function waitWithDetail(probe, { detail, ...opts }) {
  try {
    return await waitFor(probe, opts)
  } catch (err) {
    err.message += `; last seen: ${detail()}`
    throw err
  }
}

export const PREFIX = 'fleetcache'

const tagStateKey = (prefix) => `${prefix}:tags:{${prefix}}:state`

// The record of `tag` in Redis's tag state, or null when Redis holds none.
export async function tagRecord(redis, tag, { prefix = PREFIX } = {}) {
  const raw = await redis.command('HGET', tagStateKey(prefix), tag)
  if (raw === null) return null
  const [stale, expired, pendingAt, pendingExp, updatedAt] = String(raw).split(',').map(Number)
  return { stale, expired, pendingAt, pendingExp, updatedAt }
}

// Resolves once Redis's tag state holds, for every tag of `tags`, a revalidation issued at or
// after `since` (ms since the epoch, this machine's clock, as the instances'): with mode
// 'expire' its `expired` time (revalidateTag(t, { expire: 0 }), revalidatePath), with 'stale'
// its `stale` time (revalidateTag(t, 'max')). Next runs a route handler's revalidation after
// the response (waitUntil), and fleetcache's update reaches Redis when that work does; every
// read that starts afterwards refreshes the tag state first (docs/failures.md, "Freshness"), on any instance.
export async function waitForRevalidation(
  redis,
  tags,
  since,
  { mode, prefix = PREFIX, timeoutMs = 15_000 } = {},
) {
  const field = { expire: 'expired', stale: 'stale' }[mode]
  if (!field) throw new Error(`waitForRevalidation: mode must be 'expire' or 'stale', got ${mode}`)
  const list = typeof tags === 'string' ? [tags] : tags
  let last = []
  await waitWithDetail(
    async () => {
      last = await Promise.all(list.map((t) => tagRecord(redis, t, { prefix })))
      return last.every((r) => r !== null && r[field] >= since)
    },
    {
      timeoutMs,
      intervalMs: 25,
      what: `Redis's tag state to record the ${mode} revalidation of ${list.join(', ')} issued at ${since}`,
      detail: () => JSON.stringify(last),
    },
  )
}

// POSTs `route` on `inst` (a route handler that revalidates) and waits until Redis's tag state
// holds the revalidation of `tags` (waitForRevalidation).
export async function revalidateOn(inst, route, redis, tags, { mode, prefix, timeoutMs } = {}) {
  const since = Date.now()
  await inst.call(route)
  await waitForRevalidation(redis, tags, since, { mode, prefix, timeoutMs })
  return since
}

// Every key matching `pattern` (SCAN, all pages; on a cluster, every master).
export async function scanKeys(redis, pattern) {
  const keys = []
  let cursor = '0'
  for (let i = 0; i < 10_000; i++) {
    const [next, batch] = await redis.command('SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000')
    keys.push(...batch)
    cursor = next
    if (cursor === '0') return keys
  }
  throw new Error(`SCAN MATCH ${pattern} did not finish`)
}

// Lease keys held now (docs/internals.md, "Leases"): a regeneration that began with a read of
// fleetcache holds one from that read until its write (or the lease's TTL).
export const leaseKeys = (redis, { prefix = PREFIX } = {}) => scanKeys(redis, `${prefix}:*:l`)

// Resolves once no regeneration is in flight: two reads of Redis in a row, `intervalMs` apart,
// both find no lease key, and the origin's call counts for `names` did not move between them.
// A regeneration an instance starts from a read holds a lease from that read until its entry is
// written, so once a request's response is in, what it set off shows up as a lease until it is
// done, and an origin call it makes shows up in the counts. Needs leases on (the default).
export async function waitForQuiet({
  redis,
  origin,
  names = [],
  prefix = PREFIX,
  intervalMs = 100,
  timeoutMs = 20_000,
}) {
  const snapshot = async () => {
    const leases = await leaseKeys(redis, { prefix })
    return { leases, calls: JSON.stringify(names.map((n) => origin.calls(n))) }
  }
  let prev = await snapshot()
  let cur = prev
  await waitWithDetail(
    async () => {
      cur = await snapshot()
      const quiet = prev.leases.length === 0 && cur.leases.length === 0 && prev.calls === cur.calls
      prev = cur
      return quiet
    },
    {
      timeoutMs,
      intervalMs,
      what: 'no regeneration in flight',
      detail: () =>
        `leases held: ${cur.leases.join(', ') || 'none'}; origin calls for ${names.join(', ')}: ${cur.calls}`,
    },
  )
}

// Reads the header of the envelope stored at `key`: its creation time and the original cache
// key (docs/internals.md, "Entry envelope": timestamp f64 LE at offset 16, key_len u32 LE at
// 48, then the key). Redis's Lua decodes it, so the reply carries no binary.
const ENVELOPE_HEAD = `
local v = redis.call('GETRANGE', KEYS[1], 0, 4095)
if #v < 52 or string.sub(v, 1, 4) ~= 'FLCE' then return false end
local ts = struct.unpack('<d', v, 17)
local klen = struct.unpack('<I4', v, 49)
return { string.format('%.17g', ts), string.sub(v, 53, 52 + klen) }
`

export async function entryHead(redis, key) {
  const reply = await redis.command('EVAL', ENVELOPE_HEAD, '1', key)
  if (!reply) return null
  return { timestamp: Number(reply[0]), cacheKey: reply[1] }
}

// Resolves with the Redis key once an entry of interface `iface` ('inc', 'uc-default', ...)
// whose cache key is `cacheKey` (a string, or a predicate on it), created at or after `since`,
// is stored in Redis. Next 16.4's page keys look like `/route-cache/APP_PAGE/<hash>/$/<path>`.
export async function waitForEntry(
  redis,
  { iface, cacheKey, since = 0, prefix = PREFIX, timeoutMs = 15_000 },
) {
  const matches = typeof cacheKey === 'function' ? cacheKey : (k) => k === cacheKey
  let seen = []
  let others = []
  return waitWithDetail(
    async () => {
      seen = []
      others = []
      for (const key of await scanKeys(redis, `${prefix}:*:${iface}:*:e`)) {
        const head = await entryHead(redis, key)
        if (!head || !matches(head.cacheKey)) {
          others.push(head?.cacheKey)
          continue
        }
        seen.push(head.timestamp)
        if (head.timestamp >= since) return key
      }
      return false
    },
    {
      timeoutMs,
      intervalMs: 50,
      what: `an entry (${iface}) for cache key ${String(cacheKey)}, created at or after ${since} in Redis`,
      detail: () =>
        `entries for it created at ${seen.join(', ') || 'none'}; other entries: ${JSON.stringify(others.slice(0, 20))}`,
    },
  )
}

// Resolves with the Redis key once a 'use cache' entry of examples/next-app whose value came
// from origin key `name` (/products?list=<l> reads `products-<l>`) is stored in Redis. The
// payload is the function's RSC output, which names the origin key in JSON.
export async function waitForDataEntry(
  redis,
  name,
  { iface = 'uc-default', prefix = PREFIX, timeoutMs = 15_000 } = {},
) {
  return waitFor(
    async () => {
      for (const key of await scanKeys(redis, `${prefix}:*:${iface}:*:e`)) {
        const value = await redis.command('GET', key)
        if (value?.includes(`"${name}"`)) return key
      }
      return false
    },
    { timeoutMs, intervalMs: 50, what: `a stored '${iface}' entry of origin data ${name}` },
  )
}
