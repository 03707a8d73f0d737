//! The engine with its stats part: tests moved from `stats.rs`, which does not know the engine.

use crate::engine::Engine;
use crate::envelope::EntryKind;
use crate::stats::*;
use crate::stats::{LeaseEvent, LookupOutcome, RedisResult, Surface, WriteOutcome};
use crate::time::Millis;

#[test]
fn counters_count_and_snapshot() {
    let s = Stats::default();
    s.record_lookup(Surface::UseCache, LookupOutcome::Hit);
    s.record_lookup(Surface::UseCache, LookupOutcome::Hit);
    s.record_lookup(Surface::Incremental, LookupOutcome::ExpiredByTag);
    assert_eq!(s.last_lookup(), Some(LookupOutcome::ExpiredByTag));
    s.record_write(Surface::Incremental, WriteOutcome::TooLarge);
    s.record_revalidation(true);
    s.record_outbox_queued();
    s.record_redis(RedisResult::Timeout);
    s.record_lease(LeaseEvent::Waited);
    let snap = s.snapshot(Gauges {
        breaker_state: "open",
        tags: 3,
        ..Gauges::default()
    });
    assert_eq!(snap.lookups.use_cache.hit, 2);
    assert_eq!(snap.lookups.incremental.expired_by_tag, 1);
    assert_eq!(snap.lookups.incremental.hit, 0);
    assert_eq!(snap.writes.incremental.too_large, 1);
    assert_eq!(snap.revalidations.stale, 1);
    assert_eq!(snap.outbox.queued, 1);
    assert_eq!(snap.redis.timeouts, 1);
    assert_eq!(snap.leases.waited, 1);
    assert_eq!((snap.breaker.state, snap.tags), ("open", 3));
    assert_eq!(LookupOutcome::ExpiredByTag.name(), "expired-by-tag");
    assert_eq!(Surface::Incremental.name(), "incremental");
}

use crate::breaker::{CallResult, Permit};
use crate::config::Config;
use crate::guard::{Admission, OpKind};
use crate::incremental::{Descriptor, IncrementalSet, ValueKind};
use crate::keys::Interface;
use crate::tags::Revalidation;
use crate::write::SetInput;

const NOW: f64 = 1_795_690_530_000.0;

fn use_cache_value(e: &Engine, tags: &[&str], expire: f64) -> Vec<u8> {
    let parts = [2u32];
    let plan = e
        .plan_set(
            &Interface::UseCache("default"),
            "k",
            SetInput {
                kind: EntryKind::UseCache,
                timestamp: Millis(NOW),
                made_at: None,
                revalidate: 60.0,
                expire,
                stale: 0.0,
                tags,
                meta: b"",
                parts: &parts,
                now: Millis(NOW),
            },
        )
        .unwrap();
    let mut v = plan.header;
    v.extend([1, 2]);
    v
}

#[test]
fn the_engine_counts_its_decisions() {
    let mut e = Engine::new(Config::default()).unwrap();
    e.mark_standalone();
    let v = use_cache_value(&e, &["t"], 3600.0);
    let at = |e: &Engine, ms: f64| e.inspect("k", &v, v.len(), &[], Millis(NOW + ms));
    at(&e, 1.0);
    assert_eq!(e.stats().last_lookup(), Some(LookupOutcome::Hit));
    at(&e, 3_600_001.0);
    assert_eq!(e.stats().last_lookup(), Some(LookupOutcome::Expired));
    // NeedMore is not a decision: not counted.
    e.inspect("k", &v[..8], v.len(), &[], Millis(NOW));
    e.inspect("other", &v, v.len(), &[], Millis(NOW));
    e.inspect("k", b"junk", 4, &[], Millis(NOW));
    e.record_miss(Surface::UseCache);
    e.queue_tag_update(&["t"], &Revalidation::Expire, Millis(NOW + 10.0))
        .unwrap();
    at(&e, 20.0);
    assert_eq!(e.stats().last_lookup(), Some(LookupOutcome::ExpiredByTag));
    let snap = e.stats_snapshot(Millis(NOW));
    let uc = snap.lookups.use_cache;
    assert_eq!(
        (
            uc.hit,
            uc.expired,
            uc.expired_by_tag,
            uc.key_mismatch,
            uc.corrupt,
            uc.miss
        ),
        (1, 1, 1, 1, 1, 1)
    );
    assert_eq!(snap.writes.use_cache.stored, 1);
    assert_eq!((snap.revalidations.expire, snap.outbox.queued), (1, 1));
    assert_eq!((snap.outbox.length, snap.tags), (1, 1));

    // Writes: not cacheable, too large.
    let _ = use_cache_value(&e, &[], 0.0);
    let small = Config {
        max_entry_bytes: 10,
        ..Config::default()
    };
    let tiny = Engine::new(small).unwrap();
    let set = IncrementalSet {
        desc: Descriptor::from_wire(ValueKind::AppRoute as u8, 0, 0).unwrap(),
        revalidate: 60.0,
        expire: 3600.0,
        tags: &[],
        parts: &[100, 100],
        created: Millis(NOW),
        made: None,
        now: Millis(NOW),
    };
    assert!(tiny.plan_incremental_set("k", &set).is_err());
    let bad = IncrementalSet { parts: &[1], ..set };
    assert!(tiny.plan_incremental_set("k", &bad).is_err());
    let w = tiny.stats_snapshot(Millis(NOW)).writes.incremental;
    assert_eq!((w.too_large, w.invalid), (1, 1));
    assert_eq!(
        e.stats_snapshot(Millis(NOW)).writes.use_cache.not_cacheable,
        1
    );

    // Breaker: five failures open it, a successful probe closes it again.
    let permit = |e: &mut Engine, t: f64| match e.admit(OpKind::Read, Millis(t)) {
        Admission::Send { permit, .. } => Some(permit),
        Admission::Skip => None,
    };
    for _ in 0..5 {
        let p = permit(&mut e, NOW).unwrap();
        e.report(p, CallResult::Failure, Millis(NOW));
    }
    assert_eq!(e.stats_snapshot(Millis(NOW)).breaker.state, "open");
    assert!(permit(&mut e, NOW).is_none());
    let probe: Permit = permit(&mut e, NOW + 2000.0).unwrap();
    e.report(probe, CallResult::Success, Millis(NOW + 2000.0));
    let b = e.stats_snapshot(Millis(NOW + 2000.0));
    assert_eq!(
        (
            b.breaker.state,
            b.breaker.trips,
            b.breaker.recoveries,
            b.breaker.rejected
        ),
        ("closed", 1, 1, 1)
    );
    assert_eq!((b.redis.connection_errors, b.redis.ok), (5, 1));
    assert!(e.ack_outbox(1));
    // An error reply counts as that alone, not also as `ok`.
    let p = permit(&mut e, NOW).unwrap();
    assert!(!e.report_reply_error(p, Millis(NOW)));
    assert_eq!(e.stats_snapshot(Millis(NOW)).redis.ok, 1);
    e.record_lease(LeaseEvent::Acquired);
    let s = e.stats_snapshot(Millis(NOW));
    assert_eq!(
        (
            s.outbox.sent,
            s.outbox.length,
            s.redis.reply_errors,
            s.leases.acquired
        ),
        (1, 0, 1, 1)
    );
}

#[test]
fn singular_verdicts_are_counted_once() {
    let mut e = Engine::new(Config::default()).unwrap();
    e.mark_standalone();
    let set = IncrementalSet {
        desc: Descriptor::from_wire(ValueKind::AppRoute as u8, 0, 0).unwrap(),
        revalidate: 60.0,
        expire: 3600.0,
        tags: &["t"],
        parts: &[1, 1],
        created: Millis(NOW),
        made: None,
        now: Millis(NOW),
    };
    let mut v = e.plan_incremental_set("k", &set).unwrap().header;
    v.extend([1, 2]);
    e.inspect_incremental("k", &v, v.len(), &[], f64::NAN, Millis(NOW + 1.0));
    e.plan_tag_update(
        &["t"],
        &Revalidation::Stale {
            expire_seconds: None,
        },
        Millis(NOW + 2.0),
        "ep",
    )
    .unwrap();
    e.inspect_incremental("k", &v, v.len(), &[], f64::NAN, Millis(NOW + 3.0));
    let s = e.stats_snapshot(Millis(NOW));
    assert_eq!(
        (s.lookups.incremental.hit, s.lookups.incremental.stale),
        (1, 1)
    );
    assert_eq!(s.lookups.use_cache, LookupCounts::default());
    assert_eq!((s.revalidations.stale, s.writes.incremental.stored), (1, 1));
}
