//! What the engine decided, counted (docs/decisions/0014-counters-in-the-core.md).
//!
//! The counters are kept per plain outcome value ([`LookupOutcome`], [`WriteOutcome`],
//! [`LeaseEvent`], [`RedisResult`]): the modules that decide return those values, the engine
//! records them here, and this module knows nothing of the decisions themselves.
//!
//! Every number an operator needs to see the cache at work comes from a decision the core
//! makes anyway: the verdict on a read, the plan for a write, a breaker transition, an
//! outbox drop. The counters are incremented at those points and read by the host when a
//! metrics system collects them (OpenTelemetry observable instruments) or when someone asks
//! (`stats()`), so the request path makes no metric call of its own.
//!
//! The counters sit behind [`Cell`]s: the decisions are `&self` methods (a read must not need
//! exclusive access to the engine), and the engine lives on one thread (one wasm instance per
//! JS realm), so interior mutability costs nothing and changes no signature.

use std::cell::Cell;

use serde::Serialize;

/// Which of Next's two cache interfaces a lookup or write belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// `cacheHandlers` (`'use cache'`).
    UseCache = 0,
    /// The singular `cacheHandler` (ISR, full-route, fetch cache).
    Incremental = 1,
}

impl Surface {
    /// The value of the `fleetcache.interface` attribute.
    pub fn name(self) -> &'static str {
        match self {
            Surface::UseCache => "use-cache",
            Surface::Incremental => "incremental",
        }
    }
}

/// The outcome of one lookup, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupOutcome {
    /// Served as is.
    Hit = 0,
    /// Served once and regenerated in the background (a tag was revalidated with a profile).
    Stale = 1,
    /// Nothing stored under the key (reported by the host, which saw the empty reply).
    Miss = 2,
    /// Past the entry's own `expire`.
    Expired = 3,
    /// Expired by a revalidated tag (or stale in a way Next cannot be told about).
    ExpiredByTag = 4,
    /// Another cache key with the same hash.
    KeyMismatch = 5,
    /// Not a readable envelope, or of the wrong layout.
    Corrupt = 6,
}

/// Number of [`LookupOutcome`]s.
const OUTCOMES: usize = 7;

impl LookupOutcome {
    /// The value of the `fleetcache.outcome` attribute.
    pub fn name(self) -> &'static str {
        match self {
            LookupOutcome::Hit => "hit",
            LookupOutcome::Stale => "stale",
            LookupOutcome::Miss => "miss",
            LookupOutcome::Expired => "expired",
            LookupOutcome::ExpiredByTag => "expired-by-tag",
            LookupOutcome::KeyMismatch => "key-mismatch",
            LookupOutcome::Corrupt => "corrupt",
        }
    }
}

/// What a planned write came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Planned with a TTL: the host stores it.
    Stored = 0,
    /// Not stored by rule (`revalidate: 0`, `expire <= 0`, already past its lifetime).
    NotCacheable = 1,
    /// Refused as too large.
    TooLarge = 2,
    /// Refused for any other reason (tag limits, bad numbers, wrong layout).
    Invalid = 3,
}

const WRITE_OUTCOMES: usize = 4;

/// A lease event, counted for the fleet-wide single regeneration
/// (docs/decisions/0008-leases.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseEvent {
    /// This instance became the regenerating lease holder.
    Acquired = 0,
    /// Another instance held the lease: this one waited for its write.
    Waited = 1,
    /// The wait ran out of budget and this instance regenerated itself.
    WaitTimedOut = 2,
    /// The holder let its lease go without writing, so this instance stopped waiting and
    /// regenerated itself.
    WaitReleased = 3,
}

const LEASE_EVENTS: usize = 4;

/// How a Redis command ended, for the error counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedisResult {
    /// Redis answered.
    Ok = 0,
    /// The connection failed or was not available.
    ConnectionError = 1,
    /// No answer within the budget.
    Timeout = 2,
    /// Redis answered with an error reply (`NOSCRIPT`, `WRONGTYPE`, ...): Redis is healthy.
    ReplyError = 3,
}

const REDIS_RESULTS: usize = 4;

fn bump(c: &Cell<u64>) {
    c.set(c.get().saturating_add(1));
}

/// The engine's counters; see the module documentation. All counts are since the engine
/// was created and only grow.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    lookups: [[Cell<u64>; OUTCOMES]; 2],
    writes: [[Cell<u64>; WRITE_OUTCOMES]; 2],
    revalidations_expire: Cell<u64>,
    revalidations_stale: Cell<u64>,
    outbox_queued: Cell<u64>,
    outbox_sent: Cell<u64>,
    breaker_recoveries: Cell<u64>,
    redis: [Cell<u64>; REDIS_RESULTS],
    leases: [Cell<u64>; LEASE_EVENTS],
    last_lookup: Cell<Option<LookupOutcome>>,
}

impl Stats {
    /// Counts a lookup and remembers it as the last one (for the debug log line).
    pub fn record_lookup(&self, surface: Surface, outcome: LookupOutcome) {
        if let Some(row) = self.lookups.get(surface as usize) {
            if let Some(c) = row.get(outcome as usize) {
                bump(c);
            }
        }
        self.last_lookup.set(Some(outcome));
    }

    /// The outcome of the last counted lookup.
    pub fn last_lookup(&self) -> Option<LookupOutcome> {
        self.last_lookup.get()
    }

    /// Lookups of `surface` that ended in `outcome`.
    pub fn lookups(&self, surface: Surface, outcome: LookupOutcome) -> u64 {
        self.lookups
            .get(surface as usize)
            .and_then(|row| row.get(outcome as usize))
            .map_or(0, Cell::get)
    }

    /// Counts a planned write.
    pub fn record_write(&self, surface: Surface, outcome: WriteOutcome) {
        if let Some(c) = self
            .writes
            .get(surface as usize)
            .and_then(|row| row.get(outcome as usize))
        {
            bump(c);
        }
    }

    /// Planned writes of `surface` that ended in `outcome`.
    pub fn writes(&self, surface: Surface, outcome: WriteOutcome) -> u64 {
        self.writes
            .get(surface as usize)
            .and_then(|row| row.get(outcome as usize))
            .map_or(0, Cell::get)
    }

    /// Counts a revalidation recorded by this process (`stale`: with a profile).
    pub fn record_revalidation(&self, stale: bool) {
        bump(if stale {
            &self.revalidations_stale
        } else {
            &self.revalidations_expire
        });
    }

    /// Counts a revalidation queued in the outbox.
    pub fn record_outbox_queued(&self) {
        bump(&self.outbox_queued);
    }

    /// Counts a revalidation Redis acknowledged.
    pub fn record_outbox_sent(&self) {
        bump(&self.outbox_sent);
    }

    /// Counts the breaker closing again after it had opened.
    pub fn record_breaker_recovery(&self) {
        bump(&self.breaker_recoveries);
    }

    /// Counts how a Redis command ended.
    pub fn record_redis(&self, result: RedisResult) {
        if let Some(c) = self.redis.get(result as usize) {
            bump(c);
        }
    }

    /// Redis commands that ended in `result`.
    pub fn redis(&self, result: RedisResult) -> u64 {
        self.redis.get(result as usize).map_or(0, Cell::get)
    }

    /// Counts a lease event.
    pub fn record_lease(&self, event: LeaseEvent) {
        if let Some(c) = self.leases.get(event as usize) {
            bump(c);
        }
    }

    /// Lease events of one kind.
    pub fn leases(&self, event: LeaseEvent) -> u64 {
        self.leases.get(event as usize).map_or(0, Cell::get)
    }

    fn lookup_counts(&self, s: Surface) -> LookupCounts {
        let n = |o| self.lookups(s, o);
        LookupCounts {
            hit: n(LookupOutcome::Hit),
            stale: n(LookupOutcome::Stale),
            miss: n(LookupOutcome::Miss),
            expired: n(LookupOutcome::Expired),
            expired_by_tag: n(LookupOutcome::ExpiredByTag),
            key_mismatch: n(LookupOutcome::KeyMismatch),
            corrupt: n(LookupOutcome::Corrupt),
        }
    }

    fn write_counts(&self, s: Surface) -> WriteCounts {
        let n = |o| self.writes(s, o);
        WriteCounts {
            stored: n(WriteOutcome::Stored),
            not_cacheable: n(WriteOutcome::NotCacheable),
            too_large: n(WriteOutcome::TooLarge),
            invalid: n(WriteOutcome::Invalid),
        }
    }

    /// A plain copy of every counter plus the gauges the engine passes in.
    pub fn snapshot(&self, gauges: Gauges) -> StatsSnapshot {
        StatsSnapshot {
            lookups: PerSurface {
                use_cache: self.lookup_counts(Surface::UseCache),
                incremental: self.lookup_counts(Surface::Incremental),
            },
            writes: PerSurface {
                use_cache: self.write_counts(Surface::UseCache),
                incremental: self.write_counts(Surface::Incremental),
            },
            revalidations: RevalidationCounts {
                expire: self.revalidations_expire.get(),
                stale: self.revalidations_stale.get(),
            },
            outbox: OutboxCounts {
                length: gauges.outbox_length,
                capacity: gauges.outbox_capacity,
                queued: self.outbox_queued.get(),
                sent: self.outbox_sent.get(),
                dropped: gauges.outbox_dropped,
                refused: gauges.outbox_refused,
                parked: gauges.outbox_parked,
            },
            breaker: BreakerCounts {
                state: gauges.breaker_state,
                trips: gauges.breaker_trips,
                recoveries: self.breaker_recoveries.get(),
                rejected: gauges.breaker_rejected,
            },
            redis: RedisCounts {
                ok: self.redis(RedisResult::Ok),
                connection_errors: self.redis(RedisResult::ConnectionError),
                timeouts: self.redis(RedisResult::Timeout),
                reply_errors: self.redis(RedisResult::ReplyError),
            },
            leases: LeaseCounts {
                acquired: self.leases(LeaseEvent::Acquired),
                waited: self.leases(LeaseEvent::Waited),
                wait_timeouts: self.leases(LeaseEvent::WaitTimedOut),
                wait_releases: self.leases(LeaseEvent::WaitReleased),
            },
            memory: MemoryGauges {
                bytes: gauges.memory_bytes,
                entries: gauges.memory_entries,
            },
            tags: gauges.tags,
            tags_folded: gauges.tags_folded,
        }
    }
}

/// Values the engine reads from its other parts for a snapshot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    /// `"closed"`, `"open"` or `"half-open"`.
    pub breaker_state: &'static str,
    /// Times the breaker opened from closed (outages; a failed probe is not one more).
    pub breaker_trips: u64,
    /// Commands the breaker refused.
    pub breaker_rejected: u64,
    /// Revalidations waiting for Redis.
    pub outbox_length: u64,
    /// The outbox's bound.
    pub outbox_capacity: u64,
    /// Revalidations the full outbox took out of its queue (what they wrote waits to be merged
    /// back into Redis).
    pub outbox_dropped: u64,
    /// Revalidations Redis refused for want of an ACL permission (dropped, not retried).
    pub outbox_refused: u64,
    /// Revalidations parked: Redis kept answering them with an error retrying does not fix.
    pub outbox_parked: u64,
    /// Bytes in the in-process tier.
    pub memory_bytes: u64,
    /// Entries in the in-process tier.
    pub memory_entries: u64,
    /// Tags the mirror holds exactly.
    pub tags: u64,
    /// Records the mirror folded past its bound, over its life.
    pub tags_folded: u64,
}

/// Lookup counts of one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct LookupCounts {
    pub hit: u64,
    pub stale: u64,
    pub miss: u64,
    pub expired: u64,
    pub expired_by_tag: u64,
    pub key_mismatch: u64,
    pub corrupt: u64,
}

/// Write counts of one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct WriteCounts {
    pub stored: u64,
    pub not_cacheable: u64,
    pub too_large: u64,
    pub invalid: u64,
}

/// A pair of counts, one per interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct PerSurface<T> {
    pub use_cache: T,
    pub incremental: T,
}

/// Revalidations recorded by this process, by mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct RevalidationCounts {
    pub expire: u64,
    pub stale: u64,
}

/// The revalidation outbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct OutboxCounts {
    pub length: u64,
    pub capacity: u64,
    pub queued: u64,
    pub sent: u64,
    pub dropped: u64,
    pub refused: u64,
    pub parked: u64,
}

/// The circuit breaker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct BreakerCounts {
    pub state: &'static str,
    pub trips: u64,
    pub recoveries: u64,
    pub rejected: u64,
}

/// How Redis commands ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct RedisCounts {
    pub ok: u64,
    pub connection_errors: u64,
    pub timeouts: u64,
    pub reply_errors: u64,
}

/// Lease events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct LeaseCounts {
    pub acquired: u64,
    pub waited: u64,
    pub wait_timeouts: u64,
    pub wait_releases: u64,
}

/// The in-process tier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct MemoryGauges {
    pub bytes: u64,
    pub entries: u64,
}

/// Every counter and gauge at one moment: what `stats()` returns to users.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct StatsSnapshot {
    pub lookups: PerSurface<LookupCounts>,
    pub writes: PerSurface<WriteCounts>,
    pub revalidations: RevalidationCounts,
    pub outbox: OutboxCounts,
    pub breaker: BreakerCounts,
    pub redis: RedisCounts,
    pub leases: LeaseCounts,
    pub memory: MemoryGauges,
    /// Tags the mirror holds exactly.
    pub tags: u64,
    /// Records the mirror folded past its bound (`tagMirrorMaxTags`), over its life.
    #[serde(rename = "tagsFolded")]
    pub tags_folded: u64,
}
