//! Planning an entry write: the envelope header, the Redis key and the TTL of what Next hands
//! over, or why it is not stored.

use std::borrow::Cow;

use crate::config::Config;
use crate::envelope::{encode_header, EntryKind, EntryMeta};
use crate::error::PlanError;
use crate::stats::{Surface, WriteOutcome};
use crate::tags::MAX_ENTRY_TAGS;
use crate::time::{duration_seconds_to_ttl_ms, is_unlimited, Millis};

/// An entry to be written, as Next hands it over (payload excluded).
#[derive(Clone, Copy, Debug)]
pub struct SetInput<'a> {
    /// Must match the interface the entry is written under.
    pub kind: EntryKind,
    /// Creation time (ms).
    pub timestamp: Millis,
    /// When the value was made, where earlier than `timestamp` (a value written back
    /// unchanged: [`EntryMeta::made_at`]).
    pub made_at: Option<Millis>,
    /// Seconds; `Infinity` (or the sentinel) for `revalidate: false`.
    pub revalidate: f64,
    /// Seconds after `timestamp` when the entry is gone; `Infinity` (or the sentinel) for
    /// "no limit".
    pub expire: f64,
    /// Seconds of client-side staleness.
    pub stale: f64,
    /// The entry's own tags.
    pub tags: &'a [&'a str],
    /// Opaque host metadata stored in the header.
    pub meta: &'a [u8],
    /// Lengths of the payload parts the host will append, in order.
    pub parts: &'a [u32],
    /// The time of the write.
    pub now: Millis,
}

/// How to write an entry.
#[derive(Clone, Debug, PartialEq)]
pub struct SetPlan {
    /// The Redis key.
    pub key: String,
    /// Envelope header; the stored value is `header ++ parts...`.
    pub header: Vec<u8>,
    /// `PX` in ms; `None` means "do not store" (already expired, `expire <= 0` or
    /// `revalidate == 0`).
    pub ttl_ms: Option<u64>,
    /// The fields `header` encodes (a compressed value's header is encoded from them again).
    pub meta: EntryMeta,
}

/// The interface an entry kind belongs to.
pub fn surface_of(kind: EntryKind) -> Surface {
    match kind {
        EntryKind::UseCache => Surface::UseCache,
        EntryKind::Incremental => Surface::Incremental,
    }
}

/// What a write plan counts as.
pub fn write_outcome(plan: &Result<SetPlan, PlanError>) -> WriteOutcome {
    match plan {
        Ok(p) if p.ttl_ms.is_some() => WriteOutcome::Stored,
        Ok(_) => WriteOutcome::NotCacheable,
        Err(PlanError::TooLarge { .. }) => WriteOutcome::TooLarge,
        Err(_) => WriteOutcome::Invalid,
    }
}

/// Plans the write of `entry` for `cache_key` at `key`, with its tags already admitted
/// (canonical, over-long ones dropped): the header to put before the payload, and the TTL.
pub fn plan(
    config: &Config,
    key: String,
    cache_key: &str,
    entry: &SetInput<'_>,
    tags: Vec<Cow<'_, str>>,
) -> Result<SetPlan, PlanError> {
    if tags.len() > MAX_ENTRY_TAGS {
        return Err(PlanError::TagLimit);
    }
    let meta = EntryMeta {
        kind: entry.kind,
        timestamp: entry.timestamp,
        made_at: entry.made_at,
        revalidate: entry.revalidate,
        expire: entry.expire,
        stale: entry.stale,
        key: cache_key.to_owned(),
        tags: tags.into_iter().map(Cow::into_owned).collect(),
        meta: entry.meta.to_vec(),
        parts: entry.parts.to_vec(),
    };
    let header = encode_header(&meta)?;
    // encode_header has checked that the parts add up within u32.
    let payload: u64 = entry.parts.iter().map(|p| u64::from(*p)).sum();
    let size = (header.len() as u64).saturating_add(payload);
    if size > config.max_entry_bytes {
        return Err(PlanError::TooLarge {
            size,
            max: config.max_entry_bytes,
        });
    }
    Ok(SetPlan {
        key,
        header,
        ttl_ms: ttl_ms(config, entry),
        meta,
    })
}

/// Redis lifetime of an entry. A finite `expire` counts from the entry's creation, not from
/// the write, so an entry is never kept past the instant Next would call it a miss.
fn ttl_ms(config: &Config, e: &SetInput<'_>) -> Option<u64> {
    if e.revalidate == 0.0 {
        return None;
    }
    let max = config.max_ttl_seconds;
    let seconds = if is_unlimited(e.expire) {
        let no_revalidate = is_unlimited(e.revalidate);
        match e.kind {
            EntryKind::Incremental if no_revalidate => config.default_ttl_seconds,
            _ => max,
        }
    } else {
        let remaining_ms = e.timestamp.0 + e.expire * 1000.0 - e.now.0;
        remaining_ms / 1000.0
    };
    match duration_seconds_to_ttl_ms(seconds, max) {
        0 => None,
        ms => Some(ms),
    }
}
