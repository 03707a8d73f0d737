//! `fleetcache seed` (docs/decisions/0023): a build's prerendered entries are stored stamped
//! with the time the build produced them, and never over an entry created at or after that
//! time. The comparison runs in Redis ([`SEED_WRITE`]), atomically with the write, so a runtime
//! write that lands between a check and the write cannot be overwritten.

pub use crate::scripts::SEED_WRITE;
use crate::scripts::{entry_write_call, ScriptCall};
use crate::time::Millis;

/// Reply of [`SEED_WRITE`] when it stored the entry.
pub const SEED_STORED: i64 = 1;
/// Reply of [`SEED_WRITE`] when a newer (or equally new) entry was there and was kept.
pub const SEED_KEPT: i64 = 0;

/// How far a build time may lie ahead of the seeder's clock and still be taken: file times
/// come from the system clock, the seeder's `now` from the clock Next stamps entries with
/// (`performance.timeOrigin + performance.now()`), and the two differ by a few milliseconds.
pub const SEED_CLOCK_TOLERANCE_MS: f64 = 1000.0;

/// The creation time to stamp on a seeded entry the build wrote at `built_at`: that time, at
/// most `now`. `None` for a time that is not a finite, positive number, or that is later than
/// `now` by more than [`SEED_CLOCK_TOLERANCE_MS`]: the build machine's clock was ahead of the
/// seeder's, so the build time says nothing about which revalidations came after the build,
/// and stamping `now` instead would make the entry newer than a revalidation that came after
/// the real build (fresh, with the data from before it).
pub fn seed_timestamp(built_at: Millis, now: Millis) -> Option<Millis> {
    (built_at.0.is_finite() && built_at.0 > 0.0 && built_at.0 <= now.0 + SEED_CLOCK_TOLERANCE_MS)
        .then(|| Millis(built_at.0.min(now.0)))
}

/// Plans the write ([`SEED_WRITE`]) at `entry_key` of a seeded entry created at `created`
/// (from [`seed_timestamp`]) whose lifetime, counted from its creation, is `ttl_ms` (the TTL a
/// write at `created` gets). Redis keeps it for what is left of that lifetime at `now`; `None`
/// when nothing is left (the entry would be expired on arrival: not stored).
/// With `announce` (the tag state's meta key and channel), [`ENTRY_WRITE`](crate::scripts::ENTRY_WRITE) in its seed mode
/// writes it and announces a stored entry there
/// (docs/decisions/0031-page-entries-in-the-tier-by-push.md).
pub fn plan_write(
    entry_key: String,
    created: Millis,
    ttl_ms: u64,
    now: Millis,
    announce: Option<(&str, &str, String)>,
) -> Option<ScriptCall> {
    if !created.0.is_finite() || !now.0.is_finite() {
        return None;
    }
    let age = (now.0 - created.0).max(0.0);
    let left = ttl_ms as f64 - age;
    if left < 1.0 {
        return None;
    }
    let px = crate::text::u64_text(left.floor() as u64);
    // Exact text of the f64: Lua's tonumber reads the same value, the one the envelope's
    // header holds.
    let created = crate::decimal::exact_decimal(created.0);
    Some(match announce {
        Some((meta, channel, id)) => {
            entry_write_call(&[&entry_key, meta, channel], &[&px, "s", &created, &id])
        }
        None => ScriptCall {
            script: &SEED_WRITE,
            sha1: SEED_WRITE.sha1(),
            keys: vec![entry_key],
            args: vec![px, created],
        },
    })
}
