/**
 * Two builds under one deployment id serve each other's entries as hits (from Next 16.3.8 on,
 * page, route and fetch keys are the same in every release; separate builds of the same code
 * differ in build id): a page naming another build's script chunks, RSC payloads of another
 * build id. Each server process records its build under its deployment, in the HASH
 * `<prefix>:<deployment>:builds` (the engine's `buildsKey`): field `<next release> <build id>`,
 * value the time (ms, this process's wall clock) until which that build's entries may still be
 * served, now + `maxTtlSeconds`. At the first connection and then every `maxTtlSeconds / 2`, at
 * most an hour and at least a second apart, it writes its field and gives the key its own
 * lifetime, reads the fields (`HSCAN`, which the documented ACL user may send; `HGETALL` it may
 * not), deletes those whose time has passed, sets the key to expire at the furthest time when
 * another's is further than its own, and warns once per other live build
 * (docs/configuration.md, "Deployment namespace").
 *
 * Bookkeeping for a warning, off every request's path: the commands go on the unguarded
 * connection (they neither count for the circuit breaker nor wait behind it), each under the
 * write budget, and any failure is a debug line. A renewal in flight when `stop()` is called
 * (close) sends nothing more and logs nothing; what it sent already left the key with a TTL.
 */
import { docLink } from './doc-link'
import { describe, type Logger } from './log'
import type { Transport } from './transport'

/** The longest wait between two renewals of the record. */
export const BUILDS_RENEW_MAX_MS = 3_600_000
/** The shortest (a `maxTtlSeconds` under 2 s would otherwise renew it in a tight loop). */
export const BUILDS_RENEW_MIN_MS = 1000
/** `HSCAN`'s `COUNT`: a hash of up to 128 fields (listpack) comes whole in one page anyway. */
const SCAN_COUNT = 1000
/** The most `HSCAN` pages one renewal reads (a field per build: never near in practice). */
const SCAN_MAX_PAGES = 100

/** What one process records, and where. */
export interface BuildRecordOptions {
  /** The unguarded connection. */
  transport: Transport
  /** `<prefix>:<deployment>:builds` (the engine's `buildsKey`). */
  key: string
  /** The deployment id as configured, for the warning. */
  deploymentId: string
  /** Where it was read (the namespace line's `deployment from`): the setting to change. */
  deploymentSource: string
  /** `<prefix>:<deployment segment>`, as the namespace line names it. */
  namespace: string
  /** The Next release this process serves (`runningNextVersion`), undefined when none found. */
  release: string | undefined
  /** The build id of the build it serves (`.next/BUILD_ID`). */
  buildId: string
  /** The longest entry lifetime the engine allows (`maxTtlSeconds`), in ms. */
  maxTtlMs: number
  /** The budget of each command (the engine's write budget), in ms. */
  budgetMs: number
  log: Logger
  /** The wall clock (ms); `Date.now` but in tests. */
  clock?: () => number
}

/** The release of a field whose process found none. */
const UNKNOWN_RELEASE = 'unknown'

/** The field of a build: `<next release> <build id>` (a release has no space). */
export function buildField(release: string | undefined, buildId: string): string {
  return `${release ?? UNKNOWN_RELEASE} ${buildId}`
}

/** The build id of a field (after the release and its space). */
function idOf(field: string): string {
  const space = field.indexOf(' ')
  return space < 0 ? '' : field.slice(space + 1)
}

/**
 * Whether two different fields name one build: the same build id where one of them has no
 * release (`unknown`: that process found no `next`), which tells nothing apart.
 */
function sameBuild(a: string, b: string): boolean {
  return (
    idOf(a) === idOf(b) &&
    (a.startsWith(`${UNKNOWN_RELEASE} `) || b.startsWith(`${UNKNOWN_RELEASE} `))
  )
}

/** A field as the warning names it. */
function described(field: string): string {
  const space = field.indexOf(' ')
  const release = space < 0 ? field : field.slice(0, space)
  const id = space < 0 ? '' : field.slice(space + 1)
  return `Next ${release === UNKNOWN_RELEASE ? '(release not found)' : release}, build id ${id}`
}

/**
 * One `HSCAN` reply, `[cursor, [field, value, ...]]` (Buffers or strings): the next cursor
 * (`'0'` when done) and the page's flat list of fields and values.
 */
export function scanPage(reply: unknown): { cursor: string; items: unknown[] } {
  if (!Array.isArray(reply) || reply.length < 2) return { cursor: '0', items: [] }
  const items: unknown = reply[1]
  return { cursor: String(reply[0]), items: Array.isArray(items) ? items : [] }
}

/** The other builds' fields whose time has not passed, and those whose time has. */
export interface BuildsSeen {
  /** Other builds still served, with their times (not a field of this build with no release). */
  live: Map<string, number>
  /** Fields whose time has passed (or that hold no time): deleted. */
  past: string[]
  /** The furthest time of any live field, this process's own included. */
  furthest: number
}

/**
 * Sorts the fields read (the `[field, value, ...]` items of the `HSCAN` pages; an object of
 * fields or a Map, as an `HGETALL` reply comes from node-redis, is read too) against `now`:
 * `own` counts as live until `ownUntil`, whatever was read (written with it, or by a process of
 * the same build).
 */
export function sortBuilds(reply: unknown, own: string, ownUntil: number, now: number): BuildsSeen {
  const pairs: [string, string][] = []
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2)
      pairs.push([String(reply[i]), String(reply[i + 1])])
  } else if (reply instanceof Map) {
    for (const [f, v] of reply) pairs.push([String(f), String(v)])
  } else if (typeof reply === 'object' && reply !== null) {
    // node-redis maps an HGETALL reply to an object of fields, RESP2 or not.
    for (const [f, v] of Object.entries(reply)) pairs.push([f, String(v)])
  }
  const live = new Map<string, number>()
  const past: string[] = []
  let furthest = ownUntil
  for (const [field, value] of pairs) {
    const until = Number(value)
    if (field === own) {
      if (until > furthest) furthest = until
      continue
    }
    if (!Number.isFinite(until) || until <= now) {
      past.push(field)
      continue
    }
    if (until > furthest) furthest = until
    // A process of this build that found no release (or this one, where another did).
    if (!sameBuild(field, own)) live.set(field, until)
  }
  return { live, past, furthest }
}

/** How many other builds a warning names; it counts the rest. */
const WARNING_NAMES = 3

/** The other builds this process has warned of, by builds key: one warning each per process. */
const WARNED = Symbol.for('fleetcache.builds-warned')

function warnedOf(key: string, field: string): boolean {
  const g = globalThis as unknown as Record<symbol, Set<string> | undefined>
  const set = (g[WARNED] ??= new Set())
  const id = `${key}\0${field}`
  if (set.has(id)) return true
  set.add(id)
  return false
}

/** The record of this process's build: `start()` at the first connection, `stop()` at close. */
export interface BuildRecord {
  start(): void
  stop(): void
}

/** The record for `o`; nothing is sent before `start()`. */
export function buildRecord(o: BuildRecordOptions): BuildRecord {
  const clock = o.clock ?? Date.now
  const own = buildField(o.release, o.buildId)
  const renewMs = Math.max(BUILDS_RENEW_MIN_MS, Math.min(BUILDS_RENEW_MAX_MS, o.maxTtlMs / 2))
  const send = (argv: string[]): Promise<unknown> =>
    o.transport.send(argv, { kind: 'write', timeoutMs: o.budgetMs })
  let timer: ReturnType<typeof setTimeout> | undefined
  let started = false
  let stopped = false

  // Read anew after each await (stop() may come meanwhile; a bare `stopped` narrows to false).
  const closed = (): boolean => stopped

  const check = async (): Promise<void> => {
    const now = clock()
    const until = now + o.maxTtlMs
    const ttl = String(Math.ceil(o.maxTtlMs))
    // One round trip (node-redis pipelines the three): the key has a lifetime from the very
    // write that may create it, whatever becomes of the rest of the renewal (a close, a
    // timeout, an ACL without HDEL).
    const [, , first] = await Promise.all([
      send(['HSET', o.key, own, String(until)]),
      send(['PEXPIRE', o.key, ttl]),
      send(['HSCAN', o.key, '0', 'COUNT', String(SCAN_COUNT)]),
    ])
    const items: unknown[] = []
    let page = scanPage(first)
    items.push(...page.items)
    for (let n = 1; page.cursor !== '0' && n < SCAN_MAX_PAGES; n++) {
      if (closed()) return
      page = scanPage(await send(['HSCAN', o.key, page.cursor, 'COUNT', String(SCAN_COUNT)]))
      items.push(...page.items)
    }
    // Closed meanwhile: nothing more is sent, nothing logged.
    if (closed()) return
    const seen = sortBuilds(items, own, until, now)
    await Promise.all([
      seen.past.length > 0 ? send(['HDEL', o.key, ...seen.past]) : undefined,
      // Set above to this process's own time; further only for another's.
      seen.furthest > until
        ? send(['PEXPIRE', o.key, String(Math.ceil(seen.furthest - now))])
        : undefined,
    ])
    if (closed()) return
    o.log.debug(
      `builds under ${o.namespace}: ${own} recorded until ${new Date(until).toISOString()}; ` +
        `${String(seen.live.size)} other live, ${String(seen.past.length)} past their time removed; ` +
        `renewed in ${String(Math.round(renewMs))} ms`,
    )
    // One line for those not warned of yet, naming a few: an id kept across a month of
    // deploys is some thirty builds, and a line each from every process that starts.
    const fresh = [...seen.live.keys()].filter((field) => !warnedOf(o.key, field))
    if (fresh.length > 0) {
      const named = fresh.slice(0, WARNING_NAMES).map(described).join('; ')
      const rest = fresh.length - WARNING_NAMES
      o.log.warn(
        `two builds serve under one deployment id "${o.deploymentId}" (from ` +
          `${o.deploymentSource}, namespace ${o.namespace}): this process, ${described(own)}, ` +
          `and ${fresh.length === 1 ? 'another' : `${String(fresh.length)} others`}, ${named}` +
          `${rest > 0 ? ` and ${String(rest)} more` : ''}; they serve each other's entries as hits (HTML ` +
          `naming the other build's script chunks, RSC payloads of another build id); give ` +
          `each deploy its own deployment id, and separate builds of one deploy one build id ` +
          `(generateBuildId): ${docLink('docs/configuration.md#deployment-namespace')}`,
      )
    }
  }

  const run = (): void => {
    timer = undefined
    if (stopped) return
    check()
      .catch((err: unknown) => {
        // A failure of a renewal cut short by close: nothing to say after close.
        if (stopped) return
        o.log.debug(`builds under ${o.namespace}: ${own} not recorded: ${describe(err)}`)
      })
      .finally(() => {
        if (stopped) return
        timer = setTimeout(run, renewMs)
        timer.unref()
      })
  }

  return {
    start: () => {
      if (started || stopped) return
      started = true
      run()
    },
    stop: () => {
      stopped = true
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
    },
  }
}
