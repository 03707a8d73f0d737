/**
 * Observability: the engine's counters as OpenTelemetry instruments, Redis command
 * latency and entry sizes as histograms, a span per Redis command.
 *
 * The counters live in the core, incremented where it decides (docs/decisions/0014); this
 * module only reads them when a metric reader collects (observable instruments), so the request
 * path makes no metric call. The two histograms and the spans are recorded by `guard.ts`, the
 * one place every Redis command passes through.
 *
 * `@opentelemetry/api` is an optional peer dependency, loaded once with a guarded `require`
 * when the first runtime starts. Without it `telemetry()` is `undefined` and the only cost is
 * that one check per command. Names and attributes: docs/observability.md.
 */
import type * as OtelApi from '@opentelemetry/api'

import { now } from './clock'
import type { FleetcacheStats } from './stats'
import type { Engine } from './wasm'

// The public stats types live in stats.ts: this module's declarations name @opentelemetry/api,
// an optional peer, so no public declaration may lead here.
export type { FleetcacheStats, LookupStats, WriteStats } from './stats'

const BREAKER_RANK = { closed: 0, 'half-open': 1, open: 2 } as const

/** One engine's snapshot, as the core serialises it. */
export function engineStats(engine: Engine): FleetcacheStats {
  return engine.stats(now()) as FleetcacheStats
}

/**
 * Adds two snapshots field by field. The breaker state is the worse of the two, so a process
 * with two runtimes reports an open breaker when either is open.
 */
export function addStats(a: FleetcacheStats, b: FleetcacheStats): FleetcacheStats {
  const sum = (x: unknown, y: unknown): unknown => {
    if (typeof x === 'number' && typeof y === 'number') return x + y
    if (typeof x === 'object' && x !== null && typeof y === 'object' && y !== null) {
      const out: Record<string, unknown> = {}
      for (const k of Object.keys(x)) {
        out[k] = sum((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k])
      }
      return out
    }
    return x
  }
  const out = sum(a, b) as FleetcacheStats
  out.breaker.state =
    BREAKER_RANK[b.breaker.state] > BREAKER_RANK[a.breaker.state]
      ? b.breaker.state
      : a.breaker.state
  return out
}

type Api = typeof OtelApi

/** `@opentelemetry/api` if the application has it; `null` when it does not. */
function loadApi(): Api | null {
  try {
    // Optional peer dependency: absent is normal, not an error.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@opentelemetry/api') as Api
  } catch {
    return null
  }
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const VERSION = (require('../package.json') as { version: string }).version

/** How often (ms) a command checks whether the application replaced the global MeterProvider. */
const REBIND_CHECK_MS = 1000

/** Latency buckets in seconds: a same-region Redis answers in 0.1-2 ms, budgets are 0.3-1 s. */
const DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
]
/** Entry size buckets in bytes: 1 KiB to 8 MiB (the default cap). */
const SIZE_BUCKETS = [1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 8_388_608]

/** How a guarded command ended, as `guard.ts` reports it. */
export type CommandResult = 'ok' | 'reply-error' | 'timeout' | 'connection-error'

/**
 * The process's OpenTelemetry binding. Instruments are created against the global
 * MeterProvider; since an application may register its SDK after fleetcache started (Next's
 * `instrumentation.ts` and the handlers load in no fixed order), commands check at most once a
 * second whether the provider changed, and rebind.
 */
export class Telemetry {
  private readonly engines = new Set<Engine>()
  private provider: OtelApi.MeterProvider | undefined
  private duration: OtelApi.Histogram | undefined
  private size: OtelApi.Histogram | undefined
  private nextCheck = 0
  private readonly tracer: OtelApi.Tracer

  constructor(private readonly api: Api) {
    // A ProxyTracer: spans go to whatever TracerProvider is registered, now or later.
    this.tracer = api.trace.getTracer('fleetcache', VERSION)
    this.bind()
  }

  /** Reads this engine's counters at every collection from now on. */
  track(engine: Engine): void {
    this.engines.add(engine)
  }

  /** Stops reading an engine (its runtime was closed). */
  untrack(engine: Engine): void {
    this.engines.delete(engine)
  }

  private bind(): void {
    const provider = this.api.metrics.getMeterProvider()
    if (provider === this.provider) return
    this.provider = provider
    const meter = provider.getMeter('fleetcache', VERSION)
    this.duration = meter.createHistogram('fleetcache.operation.duration', {
      description: 'Duration of Redis commands sent by fleetcache',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    })
    this.size = meter.createHistogram('fleetcache.entry.size', {
      description: 'Size of entries read from and written to Redis (header and payload)',
      unit: 'By',
      advice: { explicitBucketBoundaries: SIZE_BUCKETS },
    })
    const I = this.api.ValueType.INT
    const lookups = meter.createObservableCounter('fleetcache.lookups', {
      description: 'Cache lookups by interface and outcome',
      unit: '{lookup}',
      valueType: I,
    })
    const writes = meter.createObservableCounter('fleetcache.writes', {
      description: 'Planned cache writes by interface and outcome',
      unit: '{write}',
      valueType: I,
    })
    const revalidations = meter.createObservableCounter('fleetcache.revalidations', {
      description: 'Tag revalidations recorded by this process',
      unit: '{revalidation}',
      valueType: I,
    })
    const errors = meter.createObservableCounter('fleetcache.errors', {
      description: 'Errors by kind (Redis failures, refused commands, unreadable entries, drops)',
      unit: '{error}',
      valueType: I,
    })
    const leaseAcquisitions = meter.createObservableCounter('fleetcache.lease.acquisitions', {
      description: 'Regeneration leases this process acquired',
      unit: '{lease}',
      valueType: I,
    })
    const leaseWaits = meter.createObservableCounter('fleetcache.lease.waits', {
      description: "Waits for another instance's regeneration, by how they ended",
      unit: '{wait}',
      valueType: I,
    })
    const outbox = meter.createObservableUpDownCounter('fleetcache.outbox.size', {
      description: 'Revalidations waiting to be sent to Redis',
      unit: '{revalidation}',
      valueType: I,
    })
    const breaker = meter.createObservableGauge('fleetcache.breaker.state', {
      description: 'Redis circuit breaker: 0 closed, 1 half-open, 2 open',
      unit: '1',
      valueType: I,
    })
    const transitions = meter.createObservableCounter('fleetcache.breaker.transitions', {
      description: 'Circuit breaker state changes, by the state entered',
      unit: '{transition}',
      valueType: I,
    })
    const memory = meter.createObservableUpDownCounter('fleetcache.memory.usage', {
      description: 'Bytes held by the in-process tier',
      unit: 'By',
      valueType: I,
    })
    meter.addBatchObservableCallback(
      (r) => {
        const s = this.collect()
        if (s === undefined) return
        for (const [iface, counts] of [
          ['use-cache', s.lookups.useCache],
          ['incremental', s.lookups.incremental],
        ] as const) {
          const o = (outcome: string, v: number): void => {
            r.observe(lookups, v, { 'fleetcache.interface': iface, 'fleetcache.outcome': outcome })
          }
          o('hit', counts.hit)
          o('stale', counts.stale)
          o('miss', counts.miss)
          o('expired', counts.expired)
          o('expired-by-tag', counts.expiredByTag)
          o('key-mismatch', counts.keyMismatch)
          o('corrupt', counts.corrupt)
        }
        for (const [iface, w] of [
          ['use-cache', s.writes.useCache],
          ['incremental', s.writes.incremental],
        ] as const) {
          const o = (outcome: string, v: number): void => {
            r.observe(writes, v, { 'fleetcache.interface': iface, 'fleetcache.outcome': outcome })
          }
          o('stored', w.stored)
          o('not-cacheable', w.notCacheable)
          o('too-large', w.tooLarge)
          o('invalid', w.invalid)
        }
        r.observe(revalidations, s.revalidations.expire, {
          'fleetcache.revalidation.mode': 'expire',
        })
        r.observe(revalidations, s.revalidations.stale, { 'fleetcache.revalidation.mode': 'stale' })
        const e = (type: string, v: number): void => {
          r.observe(errors, v, { 'error.type': type })
        }
        e('timeout', s.redis.timeouts)
        e('connection', s.redis.connectionErrors)
        e('reply', s.redis.replyErrors)
        e('circuit_open', s.breaker.rejected)
        e('corrupt_entry', s.lookups.useCache.corrupt + s.lookups.incremental.corrupt)
        e('too_large', s.writes.useCache.tooLarge + s.writes.incremental.tooLarge)
        e('invalid_write', s.writes.useCache.invalid + s.writes.incremental.invalid)
        e('outbox_overflow', s.outbox.dropped)
        e('permission_denied', s.outbox.refused)
        e('outbox_parked', s.outbox.parked)
        r.observe(leaseAcquisitions, s.leases.acquired)
        r.observe(leaseWaits, s.leases.waited - s.leases.waitTimeouts - s.leases.waitReleases, {
          'fleetcache.lease.wait.outcome': 'served',
        })
        r.observe(leaseWaits, s.leases.waitTimeouts, {
          'fleetcache.lease.wait.outcome': 'timed-out',
        })
        r.observe(leaseWaits, s.leases.waitReleases, {
          'fleetcache.lease.wait.outcome': 'released',
        })
        r.observe(outbox, s.outbox.length)
        r.observe(breaker, BREAKER_RANK[s.breaker.state])
        r.observe(transitions, s.breaker.trips, { 'fleetcache.breaker.state': 'open' })
        r.observe(transitions, s.breaker.recoveries, { 'fleetcache.breaker.state': 'closed' })
        r.observe(memory, s.memory.bytes)
      },
      [
        lookups,
        writes,
        revalidations,
        errors,
        leaseAcquisitions,
        leaseWaits,
        outbox,
        breaker,
        transitions,
        memory,
      ],
    )
  }

  /** The sum of every tracked engine's counters; undefined when none is tracked. */
  collect(): FleetcacheStats | undefined {
    let total: FleetcacheStats | undefined
    for (const engine of this.engines) {
      const s = engineStats(engine)
      total = total === undefined ? s : addStats(total, s)
    }
    return total
  }

  /** A client span for one Redis command (a child of the active span, if any). */
  startSpan(command: string): OtelApi.Span {
    return this.tracer.startSpan(command, {
      kind: this.api.SpanKind.CLIENT,
      attributes: { 'db.system.name': 'redis', 'db.operation.name': command },
    })
  }

  /**
   * Records one finished command: its duration, the entry size for GET/SET, and ends its
   * span. `t` is the time it finished (ms), used to throttle the provider check.
   */
  recordCommand(
    command: string,
    result: CommandResult,
    seconds: number,
    bytes: number | undefined,
    span: OtelApi.Span,
    t: number,
  ): void {
    if (t >= this.nextCheck) {
      this.nextCheck = t + REBIND_CHECK_MS
      this.bind()
    }
    const attributes: OtelApi.Attributes = { 'db.operation.name': command }
    if (result !== 'ok') attributes['error.type'] = result
    this.duration?.record(seconds, attributes)
    if (bytes !== undefined) this.size?.record(bytes, { 'db.operation.name': command })
    if (result !== 'ok') {
      span.setAttribute('error.type', result)
      span.setStatus({ code: this.api.SpanStatusCode.ERROR })
    }
    span.end()
  }
}

const SLOT = Symbol.for('fleetcache.telemetry')

type Slot = { telemetry: Telemetry | undefined }

/**
 * The process's telemetry, created on first call: `undefined` when `@opentelemetry/api` is not
 * installed. Kept on `globalThis` like the runtime registry, so a package loaded twice (ESM and
 * CommonJS) registers its instruments once.
 */
export function telemetry(): Telemetry | undefined {
  const g = globalThis as unknown as Record<symbol, Slot | undefined>
  let slot = g[SLOT]
  if (slot === undefined) {
    const api = loadApi()
    slot = { telemetry: api === null ? undefined : new Telemetry(api) }
    g[SLOT] = slot
  }
  return slot.telemetry
}
