/**
 * fleetcache's OpenTelemetry instruments (names and attributes: docs/observability.md): the
 * two histograms `guard.ts` records into, and the observable instruments that read the
 * engines' counters when a metric reader collects.
 */
import type * as OtelApi from '@opentelemetry/api'

import type { FleetcacheStats } from './stats'
import { BREAKER_RANK } from './stats-sum'

/** Latency buckets in seconds: a same-region Redis answers in 0.1-2 ms, budgets are 0.3-1 s. */
const DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
]
/** Entry size buckets in bytes: 1 KiB to 8 MiB (the default cap). */
const SIZE_BUCKETS = [1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 8_388_608]

/** The instruments a command records into. */
export interface CommandInstruments {
  duration: OtelApi.Histogram
  size: OtelApi.Histogram
}

/**
 * Creates every instrument on `meter`; the observable ones call `collect` at each collection
 * (undefined: nothing to report).
 */
export function createInstruments(
  api: typeof OtelApi,
  meter: OtelApi.Meter,
  collect: () => FleetcacheStats | undefined,
): CommandInstruments {
  const duration = meter.createHistogram('fleetcache.operation.duration', {
    description: 'Duration of Redis commands sent by fleetcache',
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  })
  const size = meter.createHistogram('fleetcache.entry.size', {
    description: 'Size of entries read from and written to Redis (header and payload)',
    unit: 'By',
    advice: { explicitBucketBoundaries: SIZE_BUCKETS },
  })
  const I = api.ValueType.INT
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
    description:
      "Bytes the in-process tier is charged against memoryBytes, with each entry's bookkeeping",
    unit: 'By',
    valueType: I,
  })
  const engineFailed = meter.createObservableGauge('fleetcache.engine.failed', {
    description:
      'Whether a call that held the engine trapped: 1 until the process restarts, else 0',
    unit: '1',
    valueType: I,
  })
  meter.addBatchObservableCallback(
    (r) => {
      const s = collect()
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
      r.observe(engineFailed, s.engine === 'failed' ? 1 : 0)
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
      engineFailed,
    ],
  )
  return { duration, size }
}
