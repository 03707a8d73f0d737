//! Engine settings as the host passes them (a JS object deserialised with serde).

use crate::error::ConfigError;
use crate::keys::is_valid_prefix;

/// Upper bound for `maxTtlSeconds` (100 years). Redis adds `PX` to its own clock and rejects
/// sums past `i64`, and no cache entry should outlive its deployment by decades anyway.
pub const MAX_TTL_LIMIT_SECONDS: f64 = 100.0 * 365.0 * 86_400.0;

/// Margin added to the longest entry lifetime before an unused tag is pruned, so an entry
/// written a little after the revalidation that covers it still sees that revalidation.
pub const TAG_PRUNE_MARGIN_MS: f64 = 86_400_000.0;

/// Settings of one engine. Every field has a default, and unknown fields are rejected so a
/// typo in `next.config` fails loudly instead of silently using a default.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Config {
    /// First segment of every Redis key, `[A-Za-z0-9._-]{1,64}`. Default `fleetcache`.
    pub prefix: String,
    /// Deployment (or build) id scoping entries; empty means `default`. Sanitised, never
    /// rejected (see [`Namespace::new`](crate::Namespace::new)).
    pub deployment: String,
    /// Largest stored value (envelope header plus payload) in bytes. Default 8 MiB.
    pub max_entry_bytes: u64,
    /// Longest lifetime of any entry in seconds; "no limit" durations are clamped to it.
    /// Default 30 days.
    pub max_ttl_seconds: f64,
    /// Lifetime of singular-handler entries that have neither `expire` nor a `revalidate`
    /// limit (`revalidate: false`). Clamped to `max_ttl_seconds`. Default 1 year.
    pub default_ttl_seconds: f64,
    /// Byte budget of the in-process tier; 0 disables it. Default 50 MiB.
    pub memory_bytes: u64,
    /// Entries whose payload is at least this many bytes are stored compressed in Redis, with
    /// [`crate::compression::CODEC`]; 0 stores every entry plain. Default 32 KiB: below it,
    /// inflating costs a read more than the transfer it saves over a 1 Gbit/s link
    /// (docs/decisions/0030-compression-of-stored-entries.md).
    pub compress_min_bytes: u64,
    /// Compression level, 1 (fastest) to 9 (smallest), for hosts whose codec takes one
    /// (`node:zlib`; `CompressionStream` has its own). Default 1.
    pub compress_level: u32,
    /// Age (ms since its last update) after which a tag record may be pruned. Default
    /// `max_ttl_seconds * 1000 + 1 day`; it may not be shorter than `max_ttl_seconds`, or a
    /// tag could be forgotten while entries it invalidated are still stored.
    pub tag_prune_after_ms: Option<f64>,
    /// Budget of one read (`GET`, tag refresh) in ms, enforced by the host's timers.
    /// Default 300: generous for a same-region Redis, short enough that a hung one costs a
    /// request little. At most [`MAX_BUDGET_MS`].
    pub read_timeout_ms: f64,
    /// Budget of one write (`SET`, tag update) in ms. Default 1000.
    pub write_timeout_ms: f64,
    /// Budget for (re)connecting before the first command may wait no longer, in ms.
    /// Default 1000.
    pub connect_timeout_ms: f64,
    /// Consecutive failed Redis commands that open the circuit breaker. Default 5.
    pub breaker_failures: u32,
    /// Failure rate in `(0, 1]` over `breaker_window_ms` that opens the breaker. Default 0.5.
    pub breaker_failure_rate: f64,
    /// Results needed in the window before the failure rate counts. Default 20.
    pub breaker_min_calls: u32,
    /// Failure-rate window in ms. Default 10 s.
    pub breaker_window_ms: f64,
    /// Time the breaker stays open before one probe is let through, in ms. Default 1 s.
    pub breaker_open_ms: f64,
    /// Longest open time after repeated failed probes, in ms. Default 1 s: an idle instance
    /// probes at most a second apart, so it catches up on the tag state soon after Redis is back.
    pub breaker_max_open_ms: f64,
    /// Revalidations kept while Redis cannot be reached; the oldest is dropped (and logged)
    /// beyond it. Default 1000.
    pub outbox_capacity: u32,
    /// Most tag records each process's mirror of the tag state holds exactly; past it the
    /// least recently revalidated are folded (crate::tag_fold), which bounds the mirror's
    /// memory at the cost of false staleness for entries older than what it still holds.
    /// Default 100,000.
    pub tag_mirror_max_tags: u32,
    /// One regeneration per key across the fleet (docs/decisions/0008-leases.md): followers
    /// wait for the lease holder's write instead of regenerating. Default on.
    pub leases: bool,
    /// Lifetime of a regeneration lease in ms: the longest a crashed holder delays anyone.
    /// Default 10 s.
    pub lease_ttl_ms: f64,
    /// How long a follower waits on a miss for the holder's write before it regenerates
    /// itself, in ms. Default 3 s.
    pub lease_wait_ms: f64,
    /// The Next.js release serving the handlers, when the host could read it; `None` is
    /// judged like the newest release (see [`NextRelease`](crate::NextRelease)).
    pub next_release: Option<crate::NextRelease>,
    /// Next's `experimental.durableUseCacheEntries` is on for the build being served: its
    /// `'use cache'` entries are stored under a segment that follows the Next release instead
    /// of the deployment ([`durable_use_cache_segment`](crate::next::durable_use_cache_segment)).
    /// Default off.
    pub durable_use_cache: bool,
    /// The host prints debug lines (`FLEETCACHE_DEBUG`): only then do the read, write and
    /// lease-renewal machines write theirs, so a request with debugging off builds no line it
    /// would throw away (a hit's and a stored write's included). Default off.
    pub debug: bool,
}

/// Upper bound of every Redis budget (one minute): a longer one would bring back the hangs
/// the budgets exist to prevent.
pub const MAX_BUDGET_MS: f64 = 60_000.0;

/// Upper bound of breaker durations (one hour).
pub const MAX_BREAKER_MS: f64 = 3_600_000.0;

/// Upper bound of `outbox_capacity`.
pub const MAX_OUTBOX_CAPACITY: u32 = 1_000_000;

/// Upper bound of `tag_mirror_max_tags`.
pub const MAX_TAG_MIRROR_MAX_TAGS: u32 = 100_000_000;

/// Longest accepted lease lifetime (10 minutes): a lease protects one regeneration.
pub const MAX_LEASE_TTL_MS: f64 = 600_000.0;
/// Longest accepted follower wait (one minute, like the Redis budgets).
pub const MAX_LEASE_WAIT_MS: f64 = 60_000.0;
/// Highest compression level (zlib's).
pub const MAX_COMPRESS_LEVEL: u32 = 9;
/// Thresholds of one breaker. Built by [`Config::breaker`]; the defaults are
/// [`Config::default`]'s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (`breakerFailures`).
    pub failures: u32,
    /// Failure rate (0..=1] over the window that opens the breaker (`breakerFailureRate`).
    pub failure_rate: f64,
    /// Results needed in the window before the rate counts (`breakerMinCalls`).
    pub min_calls: u32,
    /// Length of the failure-rate window in ms (`breakerWindowMs`).
    pub window_ms: f64,
    /// How long the breaker stays open after it trips, in ms (`breakerOpenMs`).
    pub open_ms: f64,
    /// Upper bound of the open time after repeated failed probes, in ms
    /// (`breakerMaxOpenMs`): the host probes on a timer while the breaker is open, so an
    /// instance notices within about this long that Redis answers again, and catches up on
    /// the tag state then.
    pub max_open_ms: f64,
    /// How long an unreported probe blocks the next one, in ms: the connect budget plus the
    /// longer command budget plus one second ([`Config::breaker`]).
    pub probe_timeout_ms: f64,
}

impl Default for BreakerConfig {
    /// The thresholds of [`Config::default`].
    fn default() -> Self {
        Config::default().breaker()
    }
}

/// Lease settings in effect.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeaseConfig {
    /// Leases are used at all (off: every instance regenerates on its own, as without leases).
    pub enabled: bool,
    /// Lifetime of a lease in Redis (`PX`), ms: the longest a dead holder blocks anyone.
    pub ttl_ms: f64,
    /// How long a follower waits for the holder's write on a miss before it regenerates, ms.
    pub wait_ms: f64,
}

impl LeaseConfig {
    /// The lease settings of a configuration ([`Config::lease`]).
    pub fn of(config: &Config) -> LeaseConfig {
        config.lease()
    }
}

/// Largest accepted `max_entry_bytes`: the envelope records part lengths as `u32`.
pub const MAX_ENTRY_BYTES_LIMIT: u64 = u32::MAX as u64;

/// The bounds [`Config::validate`] checks the settings against, in one value for the host
/// (which shows them in its own messages, or checks its options early, without a copy of the
/// numbers). Every field is one of this module's constants.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bounds {
    /// Upper bound of `maxEntryBytes` ([`MAX_ENTRY_BYTES_LIMIT`]).
    pub max_entry_bytes: u64,
    /// Upper bound of `maxTtlSeconds` ([`MAX_TTL_LIMIT_SECONDS`]).
    pub max_ttl_seconds: f64,
    /// Upper bound of the read, write and connect budgets ([`MAX_BUDGET_MS`]).
    pub max_budget_ms: f64,
    /// Upper bound of the breaker's window and open times ([`MAX_BREAKER_MS`]).
    pub max_breaker_ms: f64,
    /// Upper bound of `outboxCapacity` ([`MAX_OUTBOX_CAPACITY`]).
    pub max_outbox_capacity: u32,
    /// Upper bound of `tagMirrorMaxTags` ([`MAX_TAG_MIRROR_MAX_TAGS`]).
    pub max_tag_mirror_max_tags: u32,
    /// Upper bound of `leaseTtlMs` ([`MAX_LEASE_TTL_MS`]).
    pub max_lease_ttl_ms: f64,
    /// Upper bound of `leaseWaitMs` ([`MAX_LEASE_WAIT_MS`]; 0 is accepted).
    pub max_lease_wait_ms: f64,
    /// Added to `maxTtlSeconds` for the default `tagPruneAfterMs` ([`TAG_PRUNE_MARGIN_MS`]).
    pub tag_prune_margin_ms: f64,
    /// Upper bound of `compressLevel` ([`MAX_COMPRESS_LEVEL`]; the lowest is 1).
    pub max_compress_level: u32,
}

/// Every bound of the configuration.
pub const BOUNDS: Bounds = Bounds {
    max_entry_bytes: MAX_ENTRY_BYTES_LIMIT,
    max_ttl_seconds: MAX_TTL_LIMIT_SECONDS,
    max_budget_ms: MAX_BUDGET_MS,
    max_breaker_ms: MAX_BREAKER_MS,
    max_outbox_capacity: MAX_OUTBOX_CAPACITY,
    max_tag_mirror_max_tags: MAX_TAG_MIRROR_MAX_TAGS,
    max_lease_ttl_ms: MAX_LEASE_TTL_MS,
    max_lease_wait_ms: MAX_LEASE_WAIT_MS,
    tag_prune_margin_ms: TAG_PRUNE_MARGIN_MS,
    max_compress_level: MAX_COMPRESS_LEVEL,
};

fn in_range(v: f64, min_exclusive: f64, max: f64) -> bool {
    v.is_finite() && v > min_exclusive && v <= max
}

impl Default for Config {
    fn default() -> Self {
        Config {
            prefix: "fleetcache".to_owned(),
            deployment: String::new(),
            max_entry_bytes: 8 * 1024 * 1024,
            max_ttl_seconds: 30.0 * 86_400.0,
            default_ttl_seconds: 365.0 * 86_400.0,
            memory_bytes: 50 * 1024 * 1024,
            compress_min_bytes: 32 * 1024,
            compress_level: 1,
            tag_prune_after_ms: None,
            read_timeout_ms: 300.0,
            write_timeout_ms: 1000.0,
            connect_timeout_ms: 1000.0,
            breaker_failures: 5,
            breaker_failure_rate: 0.5,
            breaker_min_calls: 20,
            breaker_window_ms: 10_000.0,
            breaker_open_ms: 1_000.0,
            breaker_max_open_ms: 1_000.0,
            outbox_capacity: 1000,
            tag_mirror_max_tags: crate::tag_fold::DEFAULT_MAX_TAGS,
            leases: true,
            lease_ttl_ms: 10_000.0,
            lease_wait_ms: 3_000.0,
            next_release: None,
            durable_use_cache: false,
            debug: false,
        }
    }
}

impl Config {
    /// Checks every setting; the error names the first offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_valid_prefix(&self.prefix) {
            return Err(ConfigError::Prefix);
        }
        if self.max_entry_bytes == 0 || self.max_entry_bytes > MAX_ENTRY_BYTES_LIMIT {
            return Err(ConfigError::MaxEntryBytes);
        }
        let max_ttl = self.max_ttl_seconds;
        if !(max_ttl.is_finite() && max_ttl > 0.0 && max_ttl <= MAX_TTL_LIMIT_SECONDS) {
            return Err(ConfigError::MaxTtlSeconds);
        }
        if !(self.default_ttl_seconds.is_finite() && self.default_ttl_seconds > 0.0) {
            return Err(ConfigError::DefaultTtlSeconds);
        }
        if let Some(ms) = self.tag_prune_after_ms {
            if !(ms.is_finite() && ms >= max_ttl * 1000.0) {
                return Err(ConfigError::TagPruneAfterMs);
            }
        }
        if !(1..=MAX_COMPRESS_LEVEL).contains(&self.compress_level) {
            return Err(ConfigError::CompressLevel);
        }
        self.validate_resilience()?;
        self.validate_leases()
    }

    fn validate_leases(&self) -> Result<(), ConfigError> {
        let ttl = self.lease_ttl_ms;
        if !(1.0..=MAX_LEASE_TTL_MS).contains(&ttl) {
            return Err(ConfigError::Lease("leaseTtlMs"));
        }
        let wait = self.lease_wait_ms;
        if !(wait.is_finite() && (0.0..=MAX_LEASE_WAIT_MS).contains(&wait)) {
            return Err(ConfigError::Lease("leaseWaitMs"));
        }
        Ok(())
    }

    fn validate_resilience(&self) -> Result<(), ConfigError> {
        if !in_range(self.read_timeout_ms, 0.0, MAX_BUDGET_MS) {
            return Err(ConfigError::ReadTimeoutMs);
        }
        if !in_range(self.write_timeout_ms, 0.0, MAX_BUDGET_MS) {
            return Err(ConfigError::WriteTimeoutMs);
        }
        if !in_range(self.connect_timeout_ms, 0.0, MAX_BUDGET_MS) {
            return Err(ConfigError::ConnectTimeoutMs);
        }
        if self.breaker_failures == 0 {
            return Err(ConfigError::Breaker("breakerFailures"));
        }
        if !in_range(self.breaker_failure_rate, 0.0, 1.0) {
            return Err(ConfigError::Breaker("breakerFailureRate"));
        }
        if self.breaker_min_calls == 0 {
            return Err(ConfigError::Breaker("breakerMinCalls"));
        }
        if !in_range(self.breaker_window_ms, 0.0, MAX_BREAKER_MS) {
            return Err(ConfigError::Breaker("breakerWindowMs"));
        }
        if !in_range(self.breaker_open_ms, 0.0, MAX_BREAKER_MS) {
            return Err(ConfigError::Breaker("breakerOpenMs"));
        }
        if !(in_range(self.breaker_max_open_ms, 0.0, MAX_BREAKER_MS)
            && self.breaker_max_open_ms >= self.breaker_open_ms)
        {
            return Err(ConfigError::Breaker("breakerMaxOpenMs"));
        }
        if self.outbox_capacity == 0 || self.outbox_capacity > MAX_OUTBOX_CAPACITY {
            return Err(ConfigError::OutboxCapacity);
        }
        if self.tag_mirror_max_tags == 0 || self.tag_mirror_max_tags > MAX_TAG_MIRROR_MAX_TAGS {
            return Err(ConfigError::TagMirrorMaxTags);
        }
        Ok(())
    }

    /// The breaker thresholds in effect. A probe that has not reported within the longest
    /// time a command can legitimately take (connect plus the longer budget, plus a second
    /// of slack for a busy event loop) is presumed lost.
    pub fn breaker(&self) -> BreakerConfig {
        BreakerConfig {
            failures: self.breaker_failures,
            failure_rate: self.breaker_failure_rate,
            min_calls: self.breaker_min_calls,
            window_ms: self.breaker_window_ms,
            open_ms: self.breaker_open_ms,
            max_open_ms: self.breaker_max_open_ms,
            probe_timeout_ms: self.connect_timeout_ms
                + self.read_timeout_ms.max(self.write_timeout_ms)
                + 1000.0,
        }
    }

    /// The lease settings in effect.
    pub fn lease(&self) -> LeaseConfig {
        LeaseConfig {
            enabled: self.leases,
            ttl_ms: self.lease_ttl_ms,
            wait_ms: self.lease_wait_ms,
        }
    }

    /// The pruning age in effect (the explicit setting or its default).
    pub fn prune_after_ms(&self) -> f64 {
        self.tag_prune_after_ms
            .unwrap_or(self.max_ttl_seconds * 1000.0 + TAG_PRUNE_MARGIN_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.prune_after_ms(), 2_592_000_000.0 + 86_400_000.0);
    }

    #[test]
    fn bounds_are_the_ones_validate_applies() {
        let check = |f: &dyn Fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate()
        };
        let b = BOUNDS;
        assert_eq!(check(&|c| c.max_entry_bytes = b.max_entry_bytes), Ok(()));
        assert!(check(&|c| c.max_entry_bytes = b.max_entry_bytes + 1).is_err());
        assert_eq!(check(&|c| c.max_ttl_seconds = b.max_ttl_seconds), Ok(()));
        assert!(check(&|c| c.max_ttl_seconds = b.max_ttl_seconds * 1.01).is_err());
        assert_eq!(check(&|c| c.read_timeout_ms = b.max_budget_ms), Ok(()));
        assert!(check(&|c| c.read_timeout_ms = b.max_budget_ms + 1.0).is_err());
        assert_eq!(check(&|c| c.connect_timeout_ms = b.max_budget_ms), Ok(()));
        assert!(check(&|c| c.connect_timeout_ms = b.max_budget_ms + 1.0).is_err());
        assert_eq!(check(&|c| c.breaker_window_ms = b.max_breaker_ms), Ok(()));
        assert!(check(&|c| c.breaker_window_ms = b.max_breaker_ms + 1.0).is_err());
        assert_eq!(
            check(&|c| c.outbox_capacity = b.max_outbox_capacity),
            Ok(())
        );
        assert!(check(&|c| c.outbox_capacity = b.max_outbox_capacity + 1).is_err());
        assert_eq!(
            check(&|c| c.tag_mirror_max_tags = b.max_tag_mirror_max_tags),
            Ok(())
        );
        assert!(check(&|c| c.tag_mirror_max_tags = b.max_tag_mirror_max_tags + 1).is_err());
        assert_eq!(check(&|c| c.lease_ttl_ms = b.max_lease_ttl_ms), Ok(()));
        assert!(check(&|c| c.lease_ttl_ms = b.max_lease_ttl_ms + 1.0).is_err());
        assert_eq!(check(&|c| c.lease_wait_ms = 0.0), Ok(()));
        assert_eq!(check(&|c| c.lease_wait_ms = b.max_lease_wait_ms), Ok(()));
        assert!(check(&|c| c.lease_wait_ms = b.max_lease_wait_ms + 1.0).is_err());
        let c = Config::default();
        assert_eq!(
            c.prune_after_ms(),
            c.max_ttl_seconds * 1000.0 + b.tag_prune_margin_ms
        );
    }

    #[test]
    fn rejects_each_bad_field() {
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().err()
        };
        assert_eq!(bad(|c| c.prefix = String::new()), Some(ConfigError::Prefix));
        assert_eq!(bad(|c| c.prefix = "a:b".into()), Some(ConfigError::Prefix));
        assert_eq!(
            bad(|c| c.prefix = "x".repeat(65)),
            Some(ConfigError::Prefix)
        );
        assert_eq!(
            bad(|c| c.max_entry_bytes = 0),
            Some(ConfigError::MaxEntryBytes)
        );
        assert_eq!(
            bad(|c| c.max_entry_bytes = 1 << 32),
            Some(ConfigError::MaxEntryBytes)
        );
        assert_eq!(
            bad(|c| c.max_ttl_seconds = f64::NAN),
            Some(ConfigError::MaxTtlSeconds)
        );
        assert_eq!(
            bad(|c| c.max_ttl_seconds = f64::INFINITY),
            Some(ConfigError::MaxTtlSeconds)
        );
        assert_eq!(
            bad(|c| c.max_ttl_seconds = 0.0),
            Some(ConfigError::MaxTtlSeconds)
        );
        assert_eq!(
            bad(|c| c.max_ttl_seconds = 1e12),
            Some(ConfigError::MaxTtlSeconds)
        );
        assert_eq!(
            bad(|c| c.default_ttl_seconds = -1.0),
            Some(ConfigError::DefaultTtlSeconds)
        );
        assert_eq!(
            bad(|c| c.tag_prune_after_ms = Some(1000.0)),
            Some(ConfigError::TagPruneAfterMs)
        );
        assert_eq!(
            bad(|c| c.tag_prune_after_ms = Some(f64::NAN)),
            Some(ConfigError::TagPruneAfterMs)
        );
        assert_eq!(bad(|c| c.tag_prune_after_ms = Some(3e9)), None);
        assert_eq!(bad(|c| c.deployment = "any {text}: at all".into()), None);
    }

    #[test]
    fn rejects_bad_budgets_and_thresholds() {
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().err()
        };
        for v in [-1.0, 0.0, f64::NAN, f64::INFINITY, 60_001.0] {
            let mut c = Config {
                read_timeout_ms: v,
                ..Config::default()
            };
            assert_eq!(c.validate(), Err(ConfigError::ReadTimeoutMs));
            c.read_timeout_ms = 300.0;
            c.write_timeout_ms = v;
            assert_eq!(c.validate(), Err(ConfigError::WriteTimeoutMs));
            c.write_timeout_ms = 300.0;
            c.connect_timeout_ms = v;
            assert_eq!(c.validate(), Err(ConfigError::ConnectTimeoutMs));
        }
        let breaker = |f: fn(&mut Config)| bad(f).map(|e| e.field());
        assert_eq!(breaker(|c| c.breaker_failures = 0), Some("breakerFailures"));
        assert_eq!(
            breaker(|c| c.breaker_failure_rate = 1.5),
            Some("breakerFailureRate")
        );
        assert_eq!(
            breaker(|c| c.breaker_failure_rate = 0.0),
            Some("breakerFailureRate")
        );
        assert_eq!(
            breaker(|c| c.breaker_min_calls = 0),
            Some("breakerMinCalls")
        );
        assert_eq!(
            breaker(|c| c.breaker_window_ms = -5.0),
            Some("breakerWindowMs")
        );
        assert_eq!(breaker(|c| c.breaker_open_ms = 0.0), Some("breakerOpenMs"));
        assert_eq!(
            breaker(|c| c.breaker_max_open_ms = 500.0),
            Some("breakerMaxOpenMs")
        );
        assert_eq!(
            bad(|c| c.outbox_capacity = 0),
            Some(ConfigError::OutboxCapacity)
        );
        assert_eq!(
            bad(|c| c.tag_mirror_max_tags = 0),
            Some(ConfigError::TagMirrorMaxTags)
        );
        assert_eq!(
            Config::default().breaker().probe_timeout_ms,
            1000.0 + 1000.0 + 1000.0
        );
    }

    #[test]
    fn error_names_field_and_code() {
        let e = ConfigError::Prefix;
        assert_eq!(e.field(), "prefix");
        assert_eq!(e.code(), "ERR_CONFIG_PREFIX");
        assert_eq!(ConfigError::TagPruneAfterMs.field(), "tagPruneAfterMs");
    }

    /// The message states the range `validate` checks: `1000.0` is a finite number of
    /// milliseconds > 0, as it said, and still refused under the default `maxTtlSeconds`.
    #[test]
    fn the_prune_age_message_states_its_real_bound() {
        let c = Config {
            tag_prune_after_ms: Some(1000.0),
            ..Config::default()
        };
        let err = c.validate().err();
        assert_eq!(err, Some(ConfigError::TagPruneAfterMs));
        assert_eq!(
            err.map(|e| e.message()).unwrap_or_default(),
            "invalid fleetcache config: tagPruneAfterMs must be a finite number of \
             milliseconds, at least maxTtlSeconds * 1000"
        );
    }
}

#[cfg(test)]
mod serde_tests {
    use super::*;
    use serde::de::value::{Error as ValueError, MapDeserializer};
    use serde::Deserialize;

    fn from_pairs(pairs: &[(&'static str, &'static str)]) -> Result<Config, ValueError> {
        Config::deserialize(MapDeserializer::<_, ValueError>::new(pairs.iter().copied()))
    }

    #[test]
    fn fields_are_camel_case_with_defaults() {
        let c = from_pairs(&[("prefix", "app"), ("deployment", "dpl_1")]).unwrap();
        assert_eq!(c.prefix, "app");
        assert_eq!(c.deployment, "dpl_1");
        assert_eq!(c.max_entry_bytes, Config::default().max_entry_bytes);
        assert_eq!(from_pairs(&[]).unwrap(), Config::default());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(from_pairs(&[("prefx", "app")]).is_err());
        assert!(from_pairs(&[("max_entry_bytes", "app")]).is_err());
    }
}
