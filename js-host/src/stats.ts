/**
 * The types `stats()` returns. They live apart from telemetry.ts, whose declarations name
 * `@opentelemetry/api` (an optional peer dependency): a public declaration that led there
 * would fail to type-check in a project without it (`skipLibCheck: false`).
 */

/** Lookup counts of one interface (the core's `LookupCounts`). */
export interface LookupStats {
  hit: number
  stale: number
  miss: number
  expired: number
  expiredByTag: number
  keyMismatch: number
  corrupt: number
}

/** Planned writes of one interface. */
export interface WriteStats {
  stored: number
  notCacheable: number
  tooLarge: number
  invalid: number
}

/** What `stats()` returns: counts since the process started, summed over its runtimes of this package version. */
export interface FleetcacheStats {
  lookups: { useCache: LookupStats; incremental: LookupStats }
  writes: { useCache: WriteStats; incremental: WriteStats }
  revalidations: { expire: number; stale: number }
  outbox: {
    length: number
    capacity: number
    queued: number
    sent: number
    /** Revalidations the full outbox took out of its queue: what they wrote waits to be merged back. */
    dropped: number
    refused: number
    /** Revalidations set aside: Redis kept answering them with an error retrying does not fix. */
    parked: number
  }
  breaker: {
    state: 'closed' | 'open' | 'half-open'
    /** Times the breaker opened from closed: outages, not the failed probes within one. */
    trips: number
    recoveries: number
    rejected: number
  }
  redis: { ok: number; connectionErrors: number; timeouts: number; replyErrors: number }
  leases: { acquired: number; waited: number; waitTimeouts: number; waitReleases: number }
  /** The in-process tier: bytes charged to its budget (values and their bookkeeping), entries. */
  memory: { bytes: number; entries: number }
  /** Tags this process's copy of the tag state holds exactly. */
  tags: number
  /**
   * Records that copy folded past `tagMirrorMaxTags` since the process started: 0 while every
   * live tag fits (https://github.com/fleetcache/fleetcache/blob/main/docs/operating.md, "Tag state in each process").
   */
  tagsFolded: number
  /**
   * `failed` once a call that held the engine has trapped (https://github.com/fleetcache/fleetcache/blob/main/docs/failures.md, "A trap in the
   * engine"): from then on the process serves nothing from its cache and its revalidations
   * reach no other instance, until it restarts. The counts are the last ones read before.
   */
  engine: 'ok' | 'failed'
}
