//! What the in-process tier may do with its copy of a key: serve it, keep it for outages
//! only, or drop it; and how long a copy lives (docs/decisions/0010-in-process-tier.md,
//! docs/decisions/0021-page-entries-out-of-the-tier.md).

use std::rc::Rc;

use crate::envelope::{DecodedHeader, EntryKind};
use crate::incremental::{Descriptor, ValueKind};
use crate::lru::{LruIndex, Marks, Touch};
use crate::time::{is_unlimited, Millis};

/// What the in-process tier may do with its copy of a key now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierUse {
    /// Absent, past its lifetime, or dropped: the host drops the bytes too.
    Gone = 0,
    /// Judge it and serve it if it is servable (it is marked as just used).
    Serve = 1,
    /// Kept for outages only, and Redis answers: read Redis, keep the bytes.
    Kept = 2,
}

/// What the tier may do with its copy of `key` at `now`; `redis_answers` while the breaker is
/// closed, `page_serving` the page generation that may serve now
/// ([`PushFollow::page_view`](crate::tag_sync::PushFollow::page_view)). While Redis
/// answers, this process's own copy that never reached Redis is dropped (the fleet's value
/// wins: read Redis), and a copy kept for outages only, or a page copy bound to another
/// generation than `page_serving`, stays unused; otherwise a live copy is served (and marked
/// as just used).
pub fn tier_use(
    lru: &mut LruIndex,
    redis_answers: bool,
    page_serving: Option<u32>,
    key: &str,
    now: Millis,
) -> TierUse {
    tier_use_kept(lru, redis_answers, page_serving, key, now, None).0
}

/// [`tier_use`], and for a copy to serve the header the index keeps for bytes `total_len`
/// long ([`LruIndex::kept_header`]): a tier hit's one lookup of its key in the index.
pub fn tier_use_kept(
    lru: &mut LruIndex,
    redis_answers: bool,
    page_serving: Option<u32>,
    key: &str,
    now: Millis,
    total_len: Option<usize>,
) -> (TierUse, Option<Rc<DecodedHeader>>) {
    match lru.touch_unless_kept(key, now, total_len, |m| {
        redis_answers && (m.local || !serves_while_redis_answers(m, page_serving))
    }) {
        (Touch::Touched, header) => (TierUse::Serve, header),
        (Touch::Declined(m), _) if m.local => {
            lru.remove(key);
            (TierUse::Gone, None)
        }
        (Touch::Declined(_), _) => (TierUse::Kept, None),
        (Touch::Absent | Touch::Expired, _) => (TierUse::Gone, None),
    }
}

/// Whether a copy with marks `m` (not this process's own) may serve while Redis answers, with
/// `page_serving` the page generation that may serve now.
pub fn serves_while_redis_answers(m: Marks, page_serving: Option<u32>) -> bool {
    !m.outage_only && (m.page_gen == 0 || Some(m.page_gen) == page_serving)
}

/// The stored lifetime of an entry in the in-process tier: until its `expire` (the same
/// instant Redis drops it), else `max_ttl_ms` from `now`.
pub fn tier_expiry(timestamp: Millis, expire: f64, now: Millis, max_ttl_ms: f64) -> Millis {
    if expire.is_finite() && !is_unlimited(expire) {
        Millis((timestamp.0 + expire * 1000.0).min(now.0 + max_ttl_ms))
    } else {
        Millis(now.0 + max_ttl_ms)
    }
}

/// Whether the in-process tier may serve an entry while Redis answers. Page and route entries
/// of the singular handler (`PAGES`, `APP_PAGE`, `APP_ROUTE`, and the `REDIRECT` and `null`
/// values of Pages routes) are rewritten by on-demand revalidation (`res.revalidate()`,
/// `x-prerender-revalidate`) on one instance, out of schedule and without a tag, which neither
/// time nor the tag mirror would tell another instance's tier about: while Redis answers they
/// are always read from Redis, and the tier keeps them for outages only
/// (docs/decisions/0021). Every other entry changes only by regeneration after its
/// `revalidate` (when the tier is bypassed) or by a tag revalidation (checked on every read).
pub fn tier_serves(header: &DecodedHeader) -> bool {
    if header.meta.kind != EntryKind::Incremental {
        return true;
    }
    match Descriptor::decode(&header.meta.meta) {
        Ok(d) => tier_serves_value(d.kind),
        Err(_) => false,
    }
}

/// [`tier_serves`] for a singular-handler value of `kind` (for the writer's own copy).
pub fn tier_serves_value(kind: ValueKind) -> bool {
    matches!(kind, ValueKind::Fetch | ValueKind::Image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_lives_until_its_expire_or_the_cap() {
        let ts = Millis(1_000_000.0);
        assert_eq!(tier_expiry(ts, 10.0, Millis(0.0), 1e9), Millis(1_010_000.0));
        assert_eq!(
            tier_expiry(ts, f64::INFINITY, Millis(5.0), 100.0),
            Millis(105.0)
        );
    }

    #[test]
    fn on_demand_revalidated_kinds_are_never_kept_in_the_tier() {
        for kind in [
            ValueKind::Pages,
            ValueKind::AppPage,
            ValueKind::AppRoute,
            ValueKind::Redirect,
            ValueKind::Null,
        ] {
            assert!(!tier_serves_value(kind), "{kind:?}");
        }
        assert!(tier_serves_value(ValueKind::Fetch));
        assert!(tier_serves_value(ValueKind::Image));
    }
}
