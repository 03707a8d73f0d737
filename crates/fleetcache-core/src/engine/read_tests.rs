//! The read and renew machines, stepped through the engine with a fake clock: one test per
//! branch of a read (sources, judgements, the lease flight, failures, presentation).

use crate::breaker::{BreakerState, CallResult};
use crate::config::Config;
use crate::engine::Engine;
use crate::envelope::EntryKind;
use crate::guard::{Admission, OpKind};
use crate::incremental::{Descriptor, IncrementalSet, IncrementalVerdict, ValueKind};
use crate::keys::Interface;
use crate::lease::{Consumer, EntryWrite};
use crate::read_machine::*;
use crate::stats::{LeaseEvent, LookupOutcome, Surface};
use crate::tags::Revalidation;
use crate::time::Millis;
use crate::verdict::Verdict;
use crate::write::SetInput;

const NOW: f64 = 1_795_690_530_000.0;
const IFACE: Interface<'static> = Interface::UseCache("default");
const TOKEN: &str = "0123456789abcdef";

/// An engine whose host prints debug lines: the tests read the machines' lines.
fn engine() -> Engine {
    engine_debugging(true)
}

/// An engine without leases and without Redis (its mirror complete as it is).
fn engine_without_leases() -> Engine {
    let mut e = Engine::new(Config {
        prefix: "fc".into(),
        deployment: "d1".into(),
        leases: false,
        ..Config::default()
    })
    .unwrap();
    e.mark_standalone();
    e
}

fn engine_debugging(debug: bool) -> Engine {
    let mut e = Engine::new(Config {
        prefix: "fc".into(),
        deployment: "d1".into(),
        debug,
        ..Config::default()
    })
    .unwrap();
    e.mark_standalone();
    e
}

/// A `'use cache'` entry of `key` created at `created`, `revalidate` and `expire` in seconds.
fn uc_value(e: &Engine, key: &str, created: f64, revalidate: f64, tags: &[&str]) -> Vec<u8> {
    uc_value_expiring(e, key, created, revalidate, 3600.0, tags)
}

fn uc_value_expiring(
    e: &Engine,
    key: &str,
    created: f64,
    revalidate: f64,
    expire: f64,
    tags: &[&str],
) -> Vec<u8> {
    let payload = b"payload";
    let parts = [payload.len() as u32];
    let plan = e
        .plan_set(
            &IFACE,
            key,
            SetInput {
                kind: EntryKind::UseCache,
                timestamp: Millis(created),
                made_at: None,
                revalidate,
                expire,
                stale: 30.0,
                tags,
                meta: &[],
                parts: &parts,
                now: Millis(created),
            },
        )
        .unwrap();
    let mut v = plan.header;
    v.extend_from_slice(payload);
    v
}

fn inc_desc(kind: ValueKind) -> Descriptor {
    Descriptor {
        kind,
        has_rsc: false,
        segments: 0,
        revalidate_false: false,
        no_expire: false,
        no_cache_control: kind == ValueKind::Fetch,
    }
}

/// A singular-handler value whose parts are 3 bytes each, `abc` first.
fn inc_value(e: &mut Engine, key: &str, kind: ValueKind, created: f64) -> Vec<u8> {
    inc_stored(e, kind, key, &[], created, created)
}

fn b(v: &[u8]) -> Option<Bytes<'_>> {
    Some(Bytes {
        prefix: v,
        total_len: v.len(),
    })
}

fn uc(e: &Engine, key: &str, consumer: Consumer, now: f64) -> ReadMachine {
    e.read_use_cache(
        &IFACE,
        key,
        Vec::new(),
        consumer,
        TOKEN.to_owned(),
        Millis(now),
    )
}

/// A singular-handler read of `key` begun at `now`, served to the request that asked.
pub(super) fn inc(e: &Engine, key: &str, is_fetch: bool, on_demand: bool, now: f64) -> ReadMachine {
    e.read_incremental(
        key,
        is_fetch,
        Vec::new(),
        f64::NAN,
        Consumer::Serves,
        on_demand,
        TOKEN.to_owned(),
        Millis(now),
    )
}

fn go(e: &mut Engine, m: &mut ReadMachine, input: ReadInput<'_>, now: f64) -> ReadStep {
    e.read_step(m, input, Millis(now)).unwrap()
}

/// Whether a read asks for the tier first is the engine's to say before it starts, so the host
/// offers the tier's bytes with the start only then: pulling the tag state (no push, as on a
/// Redis Cluster), a singular-handler read refreshes first; a `'use cache'` read asks for the
/// tier first once the mirror is synced and no write of its own is in flight.
#[test]
fn the_engine_says_beforehand_whether_a_read_asks_for_the_tier_first() {
    let mut e = engine();
    let mut m = inc(&e, "k", false, false, NOW);
    assert!(!e.read_asks_tier_first(&m, Millis(NOW)));
    assert_eq!(
        go(&mut e, &mut m, ReadInput::Start, NOW).action,
        ReadAction::Refresh
    );
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    assert!(
        !e.read_asks_tier_first(&m, Millis(NOW)),
        "a write in flight is asked for first"
    );
    m.no_write_in_flight();
    assert!(e.read_asks_tier_first(&m, Millis(NOW)));
    assert_eq!(
        go(&mut e, &mut m, ReadInput::Start, NOW).action,
        ReadAction::PeekTier
    );
    let mut fresh = Engine::new(Config::default()).unwrap();
    let mut m = uc(&fresh, "k", Consumer::Serves, NOW);
    m.no_write_in_flight();
    assert!(
        !fresh.read_asks_tier_first(&m, Millis(NOW)),
        "never synced: a refresh first"
    );
    assert_eq!(
        go(&mut fresh, &mut m, ReadInput::Start, NOW).action,
        ReadAction::Refresh
    );
}

/// Steps a `'use cache'` read up to its tier peek (mirror synced, no write in flight).
fn to_tier(e: &mut Engine, m: &mut ReadMachine, now: f64) {
    assert_eq!(go(e, m, ReadInput::Start, now).action, ReadAction::OwnWrite);
    let s = go(e, m, ReadInput::OwnWrite(None), now);
    assert_eq!(s.action, ReadAction::PeekTier);
}

fn to_get(e: &mut Engine, m: &mut ReadMachine, now: f64) {
    to_tier(e, m, now);
    let s = go(e, m, ReadInput::Tier(None), now);
    assert!(matches!(s.action, ReadAction::Get { .. }), "{s:?}");
}

fn answer(s: &ReadStep) -> &ReadAnswer {
    match &s.action {
        ReadAction::Answer(a) => a,
        other => panic!("not an answer: {other:?}"),
    }
}

fn uc_shown(a: &ReadAnswer) -> &UseCacheShown {
    match &a.shown {
        Shown::UseCache(s) => s,
        other => panic!("not a 'use cache' presentation: {other:?}"),
    }
}

fn inc_shown(a: &ReadAnswer) -> &IncrementalShown {
    match &a.shown {
        Shown::Incremental(s) => s,
        other => panic!("not a singular-handler presentation: {other:?}"),
    }
}

/// Opens the breaker at `now` (failed reads until it is no longer closed).
pub(super) fn open_breaker(e: &mut Engine, now: f64) {
    for _ in 0..100 {
        if e.breaker_state(Millis(now)) != BreakerState::Closed {
            return;
        }
        if let Admission::Send { permit, .. } = e.admit(OpKind::Read, Millis(now)) {
            e.report(permit, CallResult::Failure, Millis(now));
        }
    }
    panic!("the breaker never opened");
}

fn lease_key(e: &Engine, key: &str) -> String {
    e.namespace().lease_key(&IFACE, key)
}

#[test]
fn a_use_cache_read_refreshes_first_only_while_the_mirror_never_synced() {
    let mut e = Engine::new(Config::default()).unwrap();
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    assert_eq!(
        go(&mut e, &mut m, ReadInput::Start, NOW).action,
        ReadAction::Refresh
    );
    let s = go(&mut e, &mut m, ReadInput::Refreshed, NOW);
    assert_eq!(s.action, ReadAction::OwnWrite);
    e.mark_standalone();
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    assert_eq!(
        go(&mut e, &mut m, ReadInput::Start, NOW).action,
        ReadAction::OwnWrite
    );
}

#[test]
fn the_own_write_in_flight_is_served_without_a_read() {
    let mut e = engine();
    let v = uc_value(&e, "k", NOW, 60.0, &["t"]);
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    go(&mut e, &mut m, ReadInput::Start, NOW);
    let s = go(&mut e, &mut m, ReadInput::OwnWrite(b(&v)), NOW + 1.0);
    let a = answer(&s);
    assert_eq!(
        (a.source, a.served, a.regenerates),
        (Source::OwnWrite, Served::Fresh, false)
    );
    let shown = uc_shown(a);
    assert_eq!((shown.timestamp, shown.revalidate), (NOW, 60.0));
    assert_eq!((shown.expire, shown.stale), (3600.0, 30.0));
    assert_eq!(shown.tags().to_vec(), vec!["t".to_owned()]);
    assert_eq!(&v[a.payload_offset..], b"payload");
    assert!(m.is_answered());
    assert!(e.read_step(&mut m, ReadInput::Timer, Millis(NOW)).is_err());
}

#[test]
fn a_stale_own_write_goes_to_the_flight_without_a_read() {
    let mut e = engine();
    let v = uc_value(&e, "k", NOW, 60.0, &[]);
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    go(&mut e, &mut m, ReadInput::Start, NOW);
    let later = NOW + 61_000.0;
    let s = go(&mut e, &mut m, ReadInput::OwnWrite(b(&v)), later);
    let ReadAction::Acquire { call, .. } = s.action else {
        panic!("{s:?}")
    };
    assert_eq!(call.args[0], TOKEN);
    assert_eq!(call.args[2], format!("{NOW}"), "the entry seen");
    assert_eq!(s.tier, TierAction::None, "the own write is not the tier's");
}

#[test]
fn a_fresh_tier_copy_is_served_and_a_gone_one_dropped() {
    let mut e = engine();
    let v = uc_value(&e, "k", NOW, 60.0, &[]);
    let key = e.entry_key(&IFACE, "k");
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e6));
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_tier(&mut e, &mut m, NOW);
    let s = go(&mut e, &mut m, ReadInput::Tier(b(&v)), NOW);
    let a = answer(&s);
    assert_eq!((a.source, a.served), (Source::Tier, Served::Fresh));
    // Bytes the index no longer knows: dropped, and the store is read.
    let mut m = uc(&e, "k2", Consumer::Serves, NOW);
    to_tier(&mut e, &mut m, NOW);
    let s = go(&mut e, &mut m, ReadInput::Tier(b(&v)), NOW);
    assert!(matches!(s.action, ReadAction::Get { ref key, .. } if key.ends_with("")));
    assert_eq!(s.tier, TierAction::Drop);
}

/// A `'use cache'` hit is a decision the debug log shows (docs/troubleshooting.md), from the
/// tier as from Redis: `get <entry key> hit`, the one line of the read.
#[test]
fn a_use_cache_hit_logs_one_hit_line() {
    let mut e = engine();
    let v = uc_value(&e, "k", NOW, 60.0, &[]);
    let key = e.entry_key(&IFACE, "k");
    for source in [Source::Redis, Source::Tier] {
        let mut m = uc(&e, "k", Consumer::Serves, NOW);
        let s = if source == Source::Redis {
            to_get(&mut e, &mut m, NOW);
            go(&mut e, &mut m, ReadInput::Reply(b(&v)), NOW)
        } else {
            e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e6));
            to_tier(&mut e, &mut m, NOW);
            go(&mut e, &mut m, ReadInput::Tier(b(&v)), NOW)
        };
        let a = answer(&s);
        assert_eq!((a.source, a.served), (source, Served::Fresh));
        assert_eq!(a.log, format!("get {key} hit"));
    }
}

/// With debugging off the host prints no debug line, so the machines write none: a hit (from
/// the tier, from Redis, of either interface), a miss, an expired entry and a lease flight
/// build no text, and the buffer a pooled machine hands on stays without capacity.
#[test]
fn with_debugging_off_a_read_writes_no_debug_line() {
    let mut e = engine_debugging(false);
    let v = uc_value(&e, "k", NOW, 60.0, &["t"]);
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    let s = go(&mut e, &mut m, ReadInput::Reply(b(&v)), NOW);
    assert_eq!(answer(&s).served, Served::Fresh);
    assert_eq!(answer(&s).log, "");
    assert_eq!(answer(&s).log.capacity(), 0, "no line was built");
    let key = e.entry_key(&IFACE, "k");
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e6));
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_tier(&mut e, &mut m, NOW);
    let s = go(&mut e, &mut m, ReadInput::Tier(b(&v)), NOW);
    assert_eq!(answer(&s).source, Source::Tier);
    assert_eq!(answer(&s).log.capacity(), 0, "no line was built");
    let page = inc_value(&mut e, "p", ValueKind::AppPage, NOW);
    let mut m = inc(&e, "p", false, false, NOW);
    assert_eq!(
        go(&mut e, &mut m, ReadInput::Start, NOW).action,
        ReadAction::Refresh
    );
    assert!(matches!(
        go(&mut e, &mut m, ReadInput::Refreshed, NOW).action,
        ReadAction::PeekTier | ReadAction::Get { .. }
    ));
    let s = match go(&mut e, &mut m, ReadInput::Tier(None), NOW).action {
        ReadAction::Get { .. } => go(&mut e, &mut m, ReadInput::Reply(b(&page)), NOW),
        other => panic!("not a read: {other:?}"),
    };
    assert_eq!(answer(&s).served, Served::Fresh);
    assert_eq!(answer(&s).log.capacity(), 0, "no line was built");
    // Expired by a tag, then the lease flight: lines on both with debugging on.
    e.plan_tag_update(&["t"], &Revalidation::Expire, Millis(NOW + 10.0), "epoch")
        .unwrap();
    let mut m = uc(&e, "k", Consumer::Serves, NOW + 20.0);
    to_get(&mut e, &mut m, NOW + 20.0);
    go(&mut e, &mut m, ReadInput::Reply(b(&v)), NOW + 20.0);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), NOW + 20.0);
    assert_eq!(answer(&s).served, Served::Miss);
    assert_eq!(answer(&s).log.capacity(), 0, "no line was built");
}

/// A read that finds an entry expired by a tag in this process's copy, then in Redis, logs
/// the verdict once, then what it does about it.
#[test]
fn the_same_verdict_on_the_tier_copy_and_the_reply_is_one_line() {
    let mut e = engine();
    let v = uc_value(&e, "k", NOW, 60.0, &["t"]);
    let key = e.entry_key(&IFACE, "k");
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e6));
    e.plan_tag_update(&["t"], &Revalidation::Expire, Millis(NOW + 10.0), "epoch")
        .unwrap();
    let mut m = uc(&e, "k", Consumer::Serves, NOW + 20.0);
    to_tier(&mut e, &mut m, NOW + 20.0);
    let s = go(&mut e, &mut m, ReadInput::Tier(b(&v)), NOW + 20.0);
    assert!(matches!(s.action, ReadAction::Get { .. }), "{s:?}");
    go(&mut e, &mut m, ReadInput::Reply(b(&v)), NOW + 20.0);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), NOW + 20.0);
    assert_eq!(
        answer(&s).log,
        format!("get {key} expired-by-tag\nget {key} miss: regenerating here")
    );
}

#[test]
fn an_unservable_tier_copy_is_forgotten_and_a_stale_one_kept_for_failures() {
    let mut e = engine();
    let key = e.entry_key(&IFACE, "k");
    // A copy for another key: unservable, dropped from the index too.
    let other = uc_value(&e, "other", NOW, 60.0, &[]);
    e.lru_mut().insert(&key, 10, Millis(NOW + 1e6));
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_tier(&mut e, &mut m, NOW);
    let s = go(&mut e, &mut m, ReadInput::Tier(b(&other)), NOW);
    assert_eq!(s.tier, TierAction::Drop);
    assert!(!e.lru().contains(&key));
    // A stale copy: kept, and served when the read fails.
    let v = uc_value(&e, "k", NOW, 60.0, &[]);
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e7));
    let later = NOW + 120_000.0;
    let mut m = uc(&e, "k", Consumer::Serves, later);
    to_tier(&mut e, &mut m, later);
    let s = go(&mut e, &mut m, ReadInput::Tier(b(&v)), later);
    assert_eq!(s.tier, TierAction::None);
    let s = go(&mut e, &mut m, ReadInput::Failed(Failure::Timeout), later);
    let a = answer(&s);
    assert_eq!(
        (a.source, a.served, a.regenerates),
        (Source::Kept, Served::Stale, true)
    );
    assert!(
        a.log
            .contains("redis read failed (timeout), served from this process"),
        "{}",
        a.log
    );
    let shown = uc_shown(a);
    assert!(shown.timestamp <= NOW && shown.revalidate >= 1.0);
}

#[test]
fn a_failed_read_without_a_copy_is_a_miss_with_an_error_line() {
    let mut e = engine();
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    let s = go(
        &mut e,
        &mut m,
        ReadInput::Failed(Failure::NoConnection),
        NOW,
    );
    let a = answer(&s);
    assert_eq!(
        (a.source, a.served, a.regenerates),
        (Source::None, Served::Miss, true)
    );
    assert!(a.error.contains("treated as a miss"), "{}", a.error);
}

#[test]
fn a_fresh_reply_is_served_and_kept_in_the_tier() {
    let mut e = engine();
    let v = uc_value(&e, "k", NOW, 60.0, &[]);
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    let s = go(&mut e, &mut m, ReadInput::Reply(b(&v)), NOW + 5.0);
    let a = answer(&s);
    assert_eq!((a.source, a.served), (Source::Redis, Served::Fresh));
    assert_eq!(
        s.tier,
        TierAction::Keep {
            until: Millis(NOW + 3_600_000.0),
            outage_only: false,
            page_gen: 0,
            order: 1
        }
    );
    assert_eq!(e.stats().lookups(Surface::UseCache, LookupOutcome::Hit), 1);
}

/// The copy an outage serves (docs/failures.md) for `'use cache'`, whose tier copies serve while Redis answers: reads
/// whose `GET` went out before this process's write of the key, judged while the write is in
/// flight or after it ended, serve what they read and leave the writer's copy; a read sent
/// after the write ended keeps its reply again.
#[test]
fn reads_sent_before_this_process_writes_the_key_leave_the_writers_copy() {
    use crate::write_machine::{WriteInput, WriteRequest, WriteStep};
    let mut e = engine();
    let key = e.entry_key(&IFACE, "k");
    let v1 = uc_value(&e, "k", NOW - 10.0, 60.0, &[]);
    let mut during = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut during, NOW);
    let mut after = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut after, NOW);
    let mut w = e.write_start(
        WriteRequest::UseCache {
            iface: IFACE,
            cache_key: "k",
            tags: &[],
            timestamp: Millis(NOW + 1.0),
            revalidate: 60.0,
            expire: 3600.0,
            stale: 30.0,
            payload_len: 10,
        },
        Millis(NOW + 1.0),
    );
    let WriteStep::Store(st) = e.write_first(&mut w, Millis(NOW + 1.0)) else {
        panic!("expected Store")
    };
    e.lru_mut().insert(&key, 10, st.keep_until);
    let s = go(&mut e, &mut during, ReadInput::Reply(b(&v1)), NOW + 2.0);
    assert_eq!(answer(&s).source, Source::Redis);
    assert_eq!(
        s.tier,
        TierAction::None,
        "judged while the write is in flight"
    );
    let d = e.write_step(&mut w, WriteInput::Sent, Millis(NOW + 3.0));
    assert!(matches!(d, WriteStep::Done(_)), "{d:?}");
    let s = go(&mut e, &mut after, ReadInput::Reply(b(&v1)), NOW + 4.0);
    assert_eq!(answer(&s).source, Source::Redis);
    assert_eq!(s.tier, TierAction::None, "judged after the write ended");
    let mut next = uc(&e, "k", Consumer::Serves, NOW + 5.0);
    to_get(&mut e, &mut next, NOW + 5.0);
    let s = go(&mut e, &mut next, ReadInput::Reply(b(&v1)), NOW + 5.0);
    assert!(matches!(s.tier, TierAction::Keep { .. }), "{:?}", s.tier);
}

#[test]
fn a_short_prefix_asks_for_more_of_the_same_source() {
    let mut e = engine();
    let v = uc_value(&e, "k", NOW, 60.0, &[]);
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    let short = Bytes {
        prefix: &v[..8],
        total_len: v.len(),
    };
    let s = go(&mut e, &mut m, ReadInput::Reply(Some(short)), NOW);
    let ReadAction::NeedMore { need } = s.action else {
        panic!("{s:?}")
    };
    assert!(need > 8 && need <= v.len());
    let s = go(&mut e, &mut m, ReadInput::Reply(b(&v)), NOW);
    assert_eq!(answer(&s).served, Served::Fresh);
}

#[test]
fn an_empty_or_refused_read_is_a_counted_miss_and_a_lease_request() {
    for input in [
        ReadInput::Reply(None),
        ReadInput::Failed(Failure::CircuitOpen),
    ] {
        let mut e = engine();
        let mut m = uc(&e, "k", Consumer::Serves, NOW);
        to_get(&mut e, &mut m, NOW);
        let s = go(&mut e, &mut m, input, NOW);
        let ReadAction::Acquire { call, budget_ms } = s.action else {
            panic!("{s:?}")
        };
        assert_eq!(call.args[2], "-1", "no entry seen");
        assert_eq!(budget_ms, e.budget_ms(OpKind::Lease));
        assert_eq!(e.stats().lookups(Surface::UseCache, LookupOutcome::Miss), 1);
    }
}

#[test]
fn the_lease_winner_regenerates_and_renews_its_lease() {
    let mut e = engine();
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    go(&mut e, &mut m, ReadInput::Reply(None), NOW);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), NOW + 2.0);
    let a = answer(&s);
    assert_eq!(
        (a.served, a.regenerates, a.holds_lease),
        (Served::Miss, true, true)
    );
    assert!(a.log.contains("miss: regenerating here"), "{}", a.log);
    assert_eq!(e.stats().leases(LeaseEvent::Acquired), 1);
    assert_eq!(
        m.won_at(),
        Some(Millis(NOW)),
        "won when the request was sent"
    );
    assert!(e.holds_lease(&IFACE, "k", Millis(NOW + 1.0)));
    // Renewed at the lease's interval until the write takes the lease.
    let mut r = m.renewal().unwrap();
    let every = e.lease_renew_every_ms();
    let step = e
        .renew_step(&mut r, RenewInput::Start, Millis(NOW))
        .unwrap();
    assert_eq!(step, RenewStep::Wait { delay_ms: every });
    let t = NOW + every;
    let step = e.renew_step(&mut r, RenewInput::Timer, Millis(t)).unwrap();
    let RenewStep::Send { call, .. } = step else {
        panic!("{step:?}")
    };
    assert_eq!(call.keys[0], lease_key(&e, "k"));
    let step = e
        .renew_step(&mut r, RenewInput::Sent(true), Millis(t))
        .unwrap();
    assert_eq!(step, RenewStep::Wait { delay_ms: every });
    assert!(matches!(
        e.plan_entry_write(&IFACE, "k", 1000),
        EntryWrite::WriteAndRelease(_)
    ));
    let step = e
        .renew_step(&mut r, RenewInput::Timer, Millis(t + every))
        .unwrap();
    assert!(matches!(step, RenewStep::Done { .. }));
}

/// A renewal of this process's lease on `k`, started at `NOW`, at its first timer: the
/// machine and the time.
fn renewal_at_its_first_timer(e: &mut Engine) -> (RenewMachine, f64) {
    e.lease_won(&IFACE, "k", TOKEN, Millis(NOW));
    let mut r = RenewMachine::new(lease_key(e, "k"), Millis(NOW));
    e.renew_step(&mut r, RenewInput::Start, Millis(NOW))
        .unwrap();
    let t = NOW + e.lease_renew_every_ms();
    e.renew_step(&mut r, RenewInput::Timer, Millis(t)).unwrap();
    (r, t)
}

#[test]
fn a_renewal_ends_when_refused_and_waits_on_after_a_failure() {
    let mut e = engine();
    let (mut r, t) = renewal_at_its_first_timer(&mut e);
    let step = e
        .renew_step(&mut r, RenewInput::Failed(Failure::Timeout), Millis(t))
        .unwrap();
    assert!(matches!(step, RenewStep::Wait { .. }));
    e.renew_step(&mut r, RenewInput::Timer, Millis(t + 1.0))
        .unwrap();
    let step = e
        .renew_step(&mut r, RenewInput::Sent(false), Millis(t + 1.0))
        .unwrap();
    let RenewStep::Done { log } = step else {
        panic!("{step:?}")
    };
    assert!(log.contains("not renewed"));
    assert!(e.renew_step(&mut r, RenewInput::Timer, Millis(t)).is_err());
}

/// With debugging off a renewal that finds the lease no longer this process's builds no line.
#[test]
fn with_debugging_off_a_refused_renewal_writes_no_debug_line() {
    let mut e = engine_debugging(false);
    let (mut r, t) = renewal_at_its_first_timer(&mut e);
    let step = e
        .renew_step(&mut r, RenewInput::Sent(false), Millis(t))
        .unwrap();
    let RenewStep::Done { log } = step else {
        panic!("{step:?}")
    };
    assert_eq!(log.capacity(), 0, "no line was built");
}

#[test]
fn a_stale_entry_is_served_stale_by_the_winner_and_as_fresh_to_a_follower() {
    let later = NOW + 120_000.0;
    for (code, served) in [
        (1, Served::Stale),
        (0, Served::AsFresh),
        (-1, Served::Stale),
    ] {
        let mut e = engine();
        let v = uc_value(&e, "k", NOW, 60.0, &["t"]);
        let mut m = uc(&e, "k", Consumer::Serves, later);
        to_get(&mut e, &mut m, later);
        let s = go(&mut e, &mut m, ReadInput::Reply(b(&v)), later);
        assert!(matches!(s.action, ReadAction::Acquire { .. }));
        assert!(matches!(s.tier, TierAction::Keep { .. }));
        let s = go(&mut e, &mut m, ReadInput::LeaseReply(code), later);
        let a = answer(&s);
        assert_eq!(
            (a.source, a.served),
            (Source::Redis, served),
            "reply {code}"
        );
        let shown = uc_shown(a);
        if served == Served::AsFresh {
            assert_eq!(shown.timestamp, NOW);
            assert!(
                shown.revalidate > 120.0,
                "fresh for a while: {}",
                shown.revalidate
            );
            assert!(!a.regenerates);
        } else {
            assert!(shown.timestamp < later - shown.revalidate * 1000.0);
            assert!(a.regenerates);
        }
        assert_eq!(a.holds_lease, code == 1);
        // The stale hand-out is remembered: a page written here after it is stamped no later.
        let created = e.incremental_created("p", ValueKind::AppPage, &["t"], Millis(later + 5.0));
        assert!(created.0 <= NOW, "{code}: {created:?}");
    }
}

#[test]
fn a_stale_entry_for_a_cache_is_a_miss() {
    let later = NOW + 120_000.0;
    let mut e = engine();
    let v = uc_value(&e, "k", NOW, 60.0, &[]);
    let mut m = uc(&e, "k", Consumer::Caches, later);
    to_get(&mut e, &mut m, later);
    go(&mut e, &mut m, ReadInput::Reply(b(&v)), later);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), later);
    let a = answer(&s);
    assert_eq!(a.served, Served::Miss);
    assert!(a.log.contains("(for a cache"), "{}", a.log);
    // A follower for a cache waits for the holder's write.
    let mut m = uc(&e, "k2", Consumer::Caches, later);
    to_get(&mut e, &mut m, later);
    let v2 = uc_value(&e, "k2", NOW, 60.0, &[]);
    go(&mut e, &mut m, ReadInput::Reply(b(&v2)), later);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(0), later);
    assert!(matches!(s.action, ReadAction::Wait { .. }), "{s:?}");
}

#[test]
fn a_follower_waits_polls_and_serves_the_holders_write() {
    let mut e = engine();
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    go(&mut e, &mut m, ReadInput::Reply(None), NOW);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(0), NOW);
    assert_eq!(s.action, ReadAction::Wait { delay_ms: 10.0 });
    assert_eq!(e.stats().leases(LeaseEvent::Waited), 1);
    let s = go(&mut e, &mut m, ReadInput::Timer, NOW + 10.0);
    let ReadAction::Poll { call, .. } = s.action else {
        panic!("{s:?}")
    };
    assert_eq!(call.script.name, "lease_poll");
    // Nothing yet, lease alive: another pause, still the shortest (a quarter of 11 ms is less).
    let s = go(
        &mut e,
        &mut m,
        ReadInput::Polled {
            entry: None,
            leased: true,
        },
        NOW + 11.0,
    );
    assert_eq!(s.action, ReadAction::Wait { delay_ms: 10.0 });
    go(&mut e, &mut m, ReadInput::Timer, NOW + 31.0);
    let v = uc_value(&e, "k", NOW + 20.0, 60.0, &[]);
    let s = go(
        &mut e,
        &mut m,
        ReadInput::Polled {
            entry: b(&v),
            leased: false,
        },
        NOW + 32.0,
    );
    let a = answer(&s);
    assert_eq!(
        (a.source, a.served, a.holds_lease),
        (Source::Poll, Served::Fresh, false)
    );
    assert!(matches!(s.tier, TierAction::Keep { .. }));
}

#[test]
fn a_newer_entry_is_read_again_at_once() {
    let mut e = engine();
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    go(&mut e, &mut m, ReadInput::Reply(None), NOW);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(2), NOW);
    assert!(matches!(s.action, ReadAction::Poll { .. }), "{s:?}");
}

#[test]
fn a_wait_ends_on_a_released_lease_or_at_its_budget() {
    let mut e = engine();
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    go(&mut e, &mut m, ReadInput::Reply(None), NOW);
    go(&mut e, &mut m, ReadInput::LeaseReply(0), NOW);
    go(&mut e, &mut m, ReadInput::Timer, NOW + 10.0);
    let s = go(
        &mut e,
        &mut m,
        ReadInput::Polled {
            entry: None,
            leased: false,
        },
        NOW + 11.0,
    );
    let a = answer(&s);
    assert_eq!((a.served, a.regenerates), (Served::Miss, true));
    assert!(a.log.contains("let its lease go"), "{}", a.log);
    assert_eq!(e.stats().leases(LeaseEvent::WaitReleased), 1);

    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    go(&mut e, &mut m, ReadInput::Reply(None), NOW);
    let mut s = go(&mut e, &mut m, ReadInput::LeaseReply(0), NOW);
    let mut t = NOW;
    let wait = e.lease_config().wait_ms;
    while let ReadAction::Wait { delay_ms } = s.action {
        t += delay_ms;
        go(&mut e, &mut m, ReadInput::Timer, t);
        s = go(
            &mut e,
            &mut m,
            ReadInput::Polled {
                entry: None,
                leased: true,
            },
            t,
        );
        assert!(t <= NOW + wait + 1.0);
    }
    let a = answer(&s);
    assert!(
        a.log.contains("waited for another instance in vain"),
        "{}",
        a.log
    );
    assert_eq!(e.stats().leases(LeaseEvent::WaitTimedOut), 1);
}

#[test]
fn a_failed_lease_request_is_no_lease_and_a_failed_poll_a_miss() {
    let mut e = engine();
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    go(&mut e, &mut m, ReadInput::Reply(None), NOW);
    let s = go(&mut e, &mut m, ReadInput::Failed(Failure::Timeout), NOW);
    let a = answer(&s);
    assert_eq!((a.served, a.holds_lease), (Served::Miss, false));
    assert!(
        a.log.contains("lease request failed (timeout)"),
        "{}",
        a.log
    );

    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    go(&mut e, &mut m, ReadInput::Reply(None), NOW);
    go(&mut e, &mut m, ReadInput::LeaseReply(2), NOW);
    let s = go(
        &mut e,
        &mut m,
        ReadInput::Failed(Failure::NoConnection),
        NOW,
    );
    let a = answer(&s);
    assert_eq!(a.served, Served::Miss);
    assert!(a.error.contains("lease poll"), "{}", a.error);
}

#[test]
fn an_unreadable_entry_is_an_error_line_and_never_newer() {
    let mut e = engine();
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    let junk = [0u8; 64];
    let s = go(&mut e, &mut m, ReadInput::Reply(b(&junk)), NOW);
    let ReadAction::Acquire { call, .. } = s.action else {
        panic!("{s:?}")
    };
    // Text Lua reads back as f64::MAX: no stored entry is newer.
    assert_eq!(call.args[2].parse::<f64>(), Ok(f64::MAX));
    assert_eq!(
        e.stats().lookups(Surface::UseCache, LookupOutcome::Corrupt),
        1
    );
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), NOW);
    assert!(
        answer(&s).error.contains("unreadable entry"),
        "{}",
        answer(&s).error
    );
}

#[test]
fn an_expired_or_colliding_entry_is_a_miss_with_its_reason() {
    let mut e = engine();
    let old = uc_value(&e, "k", NOW - 4_000_000.0, 60.0, &[]);
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    go(&mut e, &mut m, ReadInput::Reply(b(&old)), NOW);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), NOW);
    assert!(answer(&s).log.contains(" expired"), "{}", answer(&s).log);
    let other = uc_value(&e, "other", NOW, 60.0, &[]);
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    go(&mut e, &mut m, ReadInput::Reply(b(&other)), NOW);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), NOW);
    assert!(
        answer(&s).log.contains("hash collision"),
        "{}",
        answer(&s).log
    );
    // Expired by a tag.
    let tagged = uc_value(&e, "k", NOW, 60.0, &["t"]);
    e.plan_tag_update(&["t"], &Revalidation::Expire, Millis(NOW + 10.0), "epoch")
        .unwrap();
    let mut m = uc(&e, "k", Consumer::Serves, NOW + 20.0);
    to_get(&mut e, &mut m, NOW + 20.0);
    go(&mut e, &mut m, ReadInput::Reply(b(&tagged)), NOW + 20.0);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), NOW + 20.0);
    assert!(
        answer(&s).log.contains("expired-by-tag"),
        "{}",
        answer(&s).log
    );
}

#[test]
fn while_redis_is_down_this_process_serves_its_copy() {
    let mut e = engine();
    let key = e.entry_key(&IFACE, "k");
    let v = uc_value(&e, "k", NOW, 60.0, &[]);
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e7));
    let later = NOW + 120_000.0;
    open_breaker(&mut e, later);
    // Stale, but Redis is out of reach: served at once.
    let mut m = uc(&e, "k", Consumer::Serves, later);
    to_tier(&mut e, &mut m, later);
    let s = go(&mut e, &mut m, ReadInput::Tier(b(&v)), later);
    let a = answer(&s);
    assert_eq!((a.source, a.served), (Source::Tier, Served::Stale));
    // The decision is logged as the flight's are, with the open breaker as without it.
    assert_eq!(a.log, format!("get {key} stale: regenerating here"));
}

#[test]
fn an_empty_read_while_redis_is_down_serves_the_kept_copy() {
    let mut e = engine();
    let key = e.entry_key(&IFACE, "k");
    let v = uc_value(&e, "k", NOW, 60.0, &[]);
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e7));
    let later = NOW + 120_000.0;
    let mut m = uc(&e, "k", Consumer::Serves, later);
    to_tier(&mut e, &mut m, later);
    go(&mut e, &mut m, ReadInput::Tier(b(&v)), later);
    open_breaker(&mut e, later);
    let s = go(
        &mut e,
        &mut m,
        ReadInput::Failed(Failure::CircuitOpen),
        later,
    );
    let a = answer(&s);
    assert_eq!((a.source, a.served), (Source::Kept, Served::Stale));
    // Served, so neither logged nor counted as a miss first.
    assert_eq!(a.log, format!("get {key} stale: regenerating here"));
    assert_eq!(e.stats().lookups(Surface::UseCache, LookupOutcome::Miss), 0);
}

#[test]
fn a_stale_entry_next_cannot_be_told_about_is_a_miss() {
    // Past its revalidate, but less than a second from its expire: no backdated timestamp
    // shows it stale without also showing it expired.
    let mut e = engine();
    let v = uc_value_expiring(&e, "k", NOW, 0.5, 0.9, &[]);
    let t = NOW + 600.0;
    let mut m = uc(&e, "k", Consumer::Serves, t);
    to_get(&mut e, &mut m, t);
    go(&mut e, &mut m, ReadInput::Reply(b(&v)), t);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), t);
    assert_eq!(answer(&s).served, Served::Miss);
}

#[test]
fn leases_off_regenerate_or_serve_stale_without_asking() {
    let mut e = Engine::new(Config {
        leases: false,
        ..Config::default()
    })
    .unwrap();
    e.mark_standalone();
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    let s = go(&mut e, &mut m, ReadInput::Reply(None), NOW);
    assert_eq!(answer(&s).served, Served::Miss);
}

#[test]
fn a_singular_handler_read_refreshes_alongside_and_reads_pages_from_redis() {
    let mut e = engine();
    let v = inc_value(&mut e, "/p", ValueKind::AppPage, NOW);
    let key = e.entry_key(&Interface::Incremental, "/p");
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e7));
    e.lru_mut().mark_outage_only(&key);
    let mut m = inc(&e, "/p", false, false, NOW);
    assert_eq!(
        go(&mut e, &mut m, ReadInput::Start, NOW).action,
        ReadAction::Refresh
    );
    // Kept for outages only while Redis answers: Redis is read at once, beside the refresh,
    // without asking for bytes the host would hand over only after the refresh; they stay.
    let s = go(&mut e, &mut m, ReadInput::Refreshed, NOW);
    assert!(matches!(s.action, ReadAction::Get { .. }), "{s:?}");
    assert_eq!(s.tier, TierAction::None);
    assert!(e.lru().contains(&key));
    let s = go(&mut e, &mut m, ReadInput::Reply(b(&v)), NOW + 1.0);
    assert_eq!(
        s.tier,
        TierAction::Keep {
            until: Millis(NOW + 3_600_000.0),
            outage_only: true,
            page_gen: 0,
            order: 1
        }
    );
    let a = answer(&s);
    assert_eq!(
        (a.source, a.served, a.regenerates),
        (Source::Redis, Served::Fresh, false)
    );
    let shown = inc_shown(a);
    assert_eq!(shown.value_kind, ValueKind::AppPage as u8);
    assert_eq!(shown.last_modified, NOW + 1.0, "fresh: shown as read");
    assert_eq!(shown.cache_control, Some((Some(60.0), Some(3600.0))));
    assert_eq!(
        shown.parts,
        vec![3; inc_desc(ValueKind::AppPage).part_count()]
    );
    assert_eq!(&v[a.payload_offset..a.payload_offset + 3], b"abc");
    assert!(
        a.log.contains("inc get") && a.log.contains(" hit"),
        "{}",
        a.log
    );
}

#[test]
fn a_fetch_read_finding_a_page_is_a_miss_and_vice_versa() {
    let mut e = engine();
    let page = inc_value(&mut e, "/p", ValueKind::AppPage, NOW);
    let mut m = inc(&e, "/p", true, false, NOW);
    go(&mut e, &mut m, ReadInput::Start, NOW);
    go(&mut e, &mut m, ReadInput::Refreshed, NOW);
    go(&mut e, &mut m, ReadInput::Tier(None), NOW);
    let s = go(&mut e, &mut m, ReadInput::Reply(b(&page)), NOW);
    assert!(matches!(s.action, ReadAction::Acquire { .. }), "{s:?}");
    assert_eq!(s.tier, TierAction::None);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), NOW);
    assert!(
        answer(&s).error.contains("read as FETCH"),
        "{}",
        answer(&s).error
    );
    let fetch = inc_value(&mut e, "/f", ValueKind::Fetch, NOW);
    let mut m = inc(&e, "/f", false, false, NOW);
    go(&mut e, &mut m, ReadInput::Start, NOW);
    go(&mut e, &mut m, ReadInput::Refreshed, NOW);
    go(&mut e, &mut m, ReadInput::Tier(None), NOW);
    go(&mut e, &mut m, ReadInput::Reply(b(&fetch)), NOW);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), NOW);
    assert!(
        answer(&s).error.contains("value kind 4"),
        "{}",
        answer(&s).error
    );
}

#[test]
fn a_fresh_fetch_value_is_served_from_the_tier() {
    let mut e = engine();
    let v = inc_value(&mut e, "/f", ValueKind::Fetch, NOW);
    let key = e.entry_key(&Interface::Incremental, "/f");
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e7));
    let mut m = inc(&e, "/f", true, false, NOW);
    go(&mut e, &mut m, ReadInput::Start, NOW);
    go(&mut e, &mut m, ReadInput::Refreshed, NOW);
    let s = go(&mut e, &mut m, ReadInput::Tier(b(&v)), NOW);
    let a = answer(&s);
    assert_eq!((a.source, a.served), (Source::Tier, Served::Fresh));
    assert_eq!(
        inc_shown(a).cache_control,
        None,
        "FETCH values carry no cacheControl"
    );
}

#[test]
fn a_failed_singular_read_falls_back_to_the_copy_kept_for_outages() {
    let mut e = engine();
    let v = inc_value(&mut e, "/p", ValueKind::AppPage, NOW);
    let key = e.entry_key(&Interface::Incremental, "/p");
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e7));
    e.lru_mut().mark_outage_only(&key);
    let mut m = inc(&e, "/p", false, false, NOW);
    go(&mut e, &mut m, ReadInput::Start, NOW);
    // The copy is for outages only: straight to the read.
    go(&mut e, &mut m, ReadInput::Refreshed, NOW);
    let s = go(&mut e, &mut m, ReadInput::Failed(Failure::Timeout), NOW);
    assert_eq!(s.action, ReadAction::PeekFallback);
    let s = go(&mut e, &mut m, ReadInput::Fallback(b(&v)), NOW);
    let a = answer(&s);
    assert_eq!(
        (a.source, a.served, a.regenerates),
        (Source::Kept, Served::Stale, true)
    );
    // Nothing to fall back on: a miss, and the regeneration begins at the request's start.
    let started = NOW + 10.0;
    let mut m = inc(&e, "/q", false, false, started);
    go(&mut e, &mut m, ReadInput::Start, started);
    go(&mut e, &mut m, ReadInput::Refreshed, started);
    go(&mut e, &mut m, ReadInput::Tier(None), started);
    go(
        &mut e,
        &mut m,
        ReadInput::Failed(Failure::Timeout),
        started + 1.0,
    );
    let s = go(&mut e, &mut m, ReadInput::Fallback(None), started + 2.0);
    let a = answer(&s);
    assert_eq!(a.served, Served::Miss);
    assert!(a.error.contains("treated as a miss"), "{}", a.error);
    let created = e.incremental_created("/q", ValueKind::AppPage, &[], Millis(started + 50.0));
    assert_eq!(created, Millis(started));
}

#[test]
fn a_follower_of_the_singular_handler_sees_a_fresh_last_modified() {
    let later = NOW + 120_000.0;
    let mut e = engine();
    let v = inc_value(&mut e, "/p", ValueKind::AppPage, NOW);
    let mut m = inc(&e, "/p", false, false, later);
    go(&mut e, &mut m, ReadInput::Start, later);
    go(&mut e, &mut m, ReadInput::Refreshed, later);
    go(&mut e, &mut m, ReadInput::Tier(None), later);
    go(&mut e, &mut m, ReadInput::Reply(b(&v)), later);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(0), later + 3.0);
    let a = answer(&s);
    assert_eq!((a.served, a.regenerates), (Served::AsFresh, false));
    assert_eq!(inc_shown(a).last_modified, later + 3.0);
    assert!(a.log.contains("served as fresh"), "{}", a.log);
}

/// A stale page read for a cache (a prerender, an outer cache) is a miss regenerated here: its
/// debug line says so with the reader, as a `'use cache'` read's does, and the lease step it
/// landed on (a wait in vain included), not the number of the step.
#[test]
fn a_stale_page_for_a_cache_logs_why_it_regenerates() {
    let later = NOW + 120_000.0;
    for (code, line) in [
        (1, "miss: regenerating here (for a cache: a prerender or an outer cache)"),
        (
            2,
            "miss: the other instance let its lease go without writing, regenerating here (for a cache: a prerender or an outer cache)",
        ),
    ] {
        let mut e = engine();
        let v = inc_value(&mut e, "/p", ValueKind::AppPage, NOW);
        let mut m = e.read_incremental(
            "/p",
            false,
            Vec::new(),
            f64::NAN,
            Consumer::Caches,
            false,
            TOKEN.to_owned(),
            Millis(later),
        );
        inc_reply(&mut e, &mut m, &v, later, later);
        let s = if code == 2 {
            // Another instance holds the lease; it lets it go without writing.
            let s = go(&mut e, &mut m, ReadInput::LeaseReply(0), later);
            assert!(matches!(s.action, ReadAction::Wait { .. }), "{s:?}");
            go(&mut e, &mut m, ReadInput::Timer, later + 5.0);
            go(
                &mut e,
                &mut m,
                ReadInput::Polled {
                    entry: b(&v),
                    leased: false,
                },
                later + 5.0,
            )
        } else {
            go(&mut e, &mut m, ReadInput::LeaseReply(code), later)
        };
        let a = answer(&s);
        assert_eq!((a.served, a.regenerates), (Served::Miss, true), "{code}");
        let line = format!(":e {line}");
        assert!(a.log.lines().any(|l| l.ends_with(&line)), "{code}: {}", a.log);
        assert!(!a.log.contains("(step"), "{code}: {}", a.log);
    }
}

#[test]
fn an_on_demand_read_always_begins_a_regeneration() {
    let mut e = engine();
    let v = inc_value(&mut e, "/p", ValueKind::AppPage, NOW);
    let mut m = inc(&e, "/p", false, true, NOW);
    go(&mut e, &mut m, ReadInput::Start, NOW);
    go(&mut e, &mut m, ReadInput::Refreshed, NOW);
    go(&mut e, &mut m, ReadInput::Tier(None), NOW);
    let s = go(&mut e, &mut m, ReadInput::Reply(b(&v)), NOW + 1.0);
    let a = answer(&s);
    assert_eq!((a.served, a.regenerates), (Served::Fresh, true));
    // Its own read is a start (the request's write comes before its fresh answer's due, and
    // must still be stamped with this read).
    assert_eq!(a.own.start, NOW);
    let created = e.incremental_created("/p", ValueKind::AppPage, &[], Millis(NOW + 50.0));
    assert_eq!(created, Millis(NOW));
}

#[test]
fn an_undecodable_value_is_taken_back_as_unreadable() {
    let mut e = engine();
    let v = inc_value(&mut e, "/f", ValueKind::Fetch, NOW);
    // Served from Redis at once (fresh): taken back, the flight begins on a miss.
    let mut m = inc(&e, "/f", true, false, NOW);
    go(&mut e, &mut m, ReadInput::Start, NOW);
    go(&mut e, &mut m, ReadInput::Refreshed, NOW);
    go(&mut e, &mut m, ReadInput::Tier(None), NOW);
    let s = go(&mut e, &mut m, ReadInput::Reply(b(&v)), NOW);
    assert_eq!(answer(&s).served, Served::Fresh);
    let s = go(&mut e, &mut m, ReadInput::Undecodable, NOW);
    let ReadAction::Acquire { call, .. } = s.action else {
        panic!("{s:?}")
    };
    // Text Lua reads back as f64::MAX: no stored entry is newer.
    assert_eq!(call.args[2].parse::<f64>(), Ok(f64::MAX));
    assert_eq!(s.tier, TierAction::Drop);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), NOW);
    assert_eq!(answer(&s).served, Served::Miss);
    // Served from the tier: dropped, and the store is read.
    let key = e.entry_key(&Interface::Incremental, "/f");
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e7));
    let mut m = inc(&e, "/f", true, false, NOW);
    go(&mut e, &mut m, ReadInput::Start, NOW);
    go(&mut e, &mut m, ReadInput::Refreshed, NOW);
    let s = go(&mut e, &mut m, ReadInput::Tier(b(&v)), NOW);
    assert_eq!(answer(&s).source, Source::Tier);
    let s = go(&mut e, &mut m, ReadInput::Undecodable, NOW);
    assert!(matches!(s.action, ReadAction::Get { .. }));
    assert_eq!(s.tier, TierAction::Drop);
    assert!(!e.lru().contains(&key));
    // A miss cannot be undecodable.
    go(&mut e, &mut m, ReadInput::Reply(None), NOW);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), NOW);
    assert_eq!(answer(&s).served, Served::Miss);
    assert!(e
        .read_step(&mut m, ReadInput::Undecodable, Millis(NOW))
        .is_err());
}

#[test]
fn a_flight_is_bounded_whatever_the_replies() {
    let mut e = engine();
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    go(&mut e, &mut m, ReadInput::Reply(None), NOW);
    let mut steps = 0;
    let mut s = go(&mut e, &mut m, ReadInput::LeaseReply(2), NOW);
    // "A newer entry" forever, and polls that find nothing while the lease lives.
    while let ReadAction::Poll { .. } = s.action {
        s = go(
            &mut e,
            &mut m,
            ReadInput::Polled {
                entry: None,
                leased: true,
            },
            NOW,
        );
        if let ReadAction::Wait { .. } = s.action {
            s = go(&mut e, &mut m, ReadInput::Timer, NOW);
        }
        steps += 1;
        assert!(steps <= MAX_FLIGHT_STEPS as usize);
    }
    assert_eq!(answer(&s).served, Served::Miss);
}

#[test]
fn an_undecodable_answer_counts_the_lease_events_its_miss_brings() {
    // A follower served a stale page as fresh: its value cannot be decoded, so it waits for
    // the holder like a follower on a miss, and that wait is counted.
    let later = NOW + 120_000.0;
    let mut e = engine();
    let v = inc_value(&mut e, "/p", ValueKind::AppPage, NOW);
    let mut m = inc(&e, "/p", false, false, later);
    go(&mut e, &mut m, ReadInput::Start, later);
    go(&mut e, &mut m, ReadInput::Refreshed, later);
    go(&mut e, &mut m, ReadInput::Tier(None), later);
    go(&mut e, &mut m, ReadInput::Reply(b(&v)), later);
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(0), later);
    assert_eq!(answer(&s).served, Served::AsFresh);
    assert_eq!(e.stats().leases(LeaseEvent::Waited), 0);
    let s = go(&mut e, &mut m, ReadInput::Undecodable, later);
    assert!(matches!(s.action, ReadAction::Wait { .. }), "{s:?}");
    assert_eq!(e.stats().leases(LeaseEvent::Waited), 1);
    // The holder's write cannot be decoded either, and its lease is gone: a wait that ended
    // on a lease let go without a (usable) write.
    go(&mut e, &mut m, ReadInput::Timer, later + 10.0);
    let w = inc_value(&mut e, "/p", ValueKind::AppPage, later + 5.0);
    let s = go(
        &mut e,
        &mut m,
        ReadInput::Polled {
            entry: b(&w),
            leased: false,
        },
        later + 11.0,
    );
    assert_eq!(answer(&s).served, Served::Fresh);
    let s = go(&mut e, &mut m, ReadInput::Undecodable, later + 11.0);
    assert_eq!(answer(&s).served, Served::Miss);
    assert_eq!(e.stats().leases(LeaseEvent::WaitReleased), 1);
}

#[test]
fn an_undecodable_kept_copy_leaves_the_tier() {
    let later = NOW + 120_000.0;
    let mut e = engine();
    let v = inc_value(&mut e, "/i", ValueKind::Image, NOW);
    let key = e.entry_key(&Interface::Incremental, "/i");
    e.lru_mut()
        .insert(&key, v.len() as u64, Millis(later + 1e7));
    let mut m = inc(&e, "/i", false, false, later);
    go(&mut e, &mut m, ReadInput::Start, later);
    go(&mut e, &mut m, ReadInput::Refreshed, later);
    let s = go(&mut e, &mut m, ReadInput::Tier(b(&v)), later);
    assert!(matches!(s.action, ReadAction::Get { .. }), "stale: {s:?}");
    let s = go(&mut e, &mut m, ReadInput::Failed(Failure::Timeout), later);
    assert_eq!(answer(&s).source, Source::Kept);
    let s = go(&mut e, &mut m, ReadInput::Undecodable, later);
    assert_eq!(answer(&s).served, Served::Miss);
    // Never servable: the tier forgets it, as it forgets any copy it judged unreadable.
    assert_eq!(s.tier, TierAction::Drop);
    assert!(!e.lru().contains(&key));
}

/// Every step of a read to its answer: no write in flight, no tier copy, `value` read, lease
/// requests answered `lease`, polls with `value` and no lease left.
/// The lease token of the `Acquire` step among `steps`.
fn acquire_token(steps: &[ReadStep]) -> String {
    steps
        .iter()
        .find_map(|s| match &s.action {
            ReadAction::Acquire { call, .. } => Some(call.args[0].clone()),
            _ => None,
        })
        .expect("the read requested the lease")
}

#[test]
fn a_reset_machine_requests_leases_with_its_own_next_tokens() {
    // A miss every time (no entry), so each read requests the lease; `lease` is the script's
    // answer (0: another instance holds it, so nothing is held here between the reads).
    let mut e = engine();
    let mut m = e.read_use_cache(
        &IFACE,
        "k",
        vec![],
        Consumer::Serves,
        TOKEN.to_owned(),
        Millis(NOW),
    );
    let mut tokens = vec![acquire_token(&run(&mut e, &mut m, None, 0))];
    let mut reread = |key: &str, token: LeaseToken<'_>, lease: i64| {
        let now = Millis(NOW);
        e.reset_read_use_cache(&mut m, &IFACE, key, None, [], Consumer::Serves, token, now);
        run(&mut e, &mut m, None, lease)
    };
    for _ in 0..2 {
        tokens.push(acquire_token(&reread("k", LeaseToken::Next, 0)));
    }
    // A new token starts the machine's own count again.
    let other = "fedcba9876543210";
    tokens.push(acquire_token(&reread("k", LeaseToken::New(other), 0)));
    tokens.push(acquire_token(&reread("k", LeaseToken::Next, 0)));
    let t = TOKEN;
    assert_eq!(
        tokens,
        [
            t.to_owned(),
            format!("{t}.1"),
            format!("{t}.2"),
            other.to_owned(),
            format!("{other}.1")
        ]
    );
    // A read that wins the lease requested it with its own next token.
    let steps = reread("k2", LeaseToken::Next, 1);
    assert!(answer(steps.last().unwrap()).holds_lease);
    assert_eq!(acquire_token(&steps), format!("{other}.2"));
}

fn run(e: &mut Engine, m: &mut ReadMachine, value: Option<&[u8]>, lease: i64) -> Vec<ReadStep> {
    let mut steps = vec![go(e, m, ReadInput::Start, NOW)];
    for _ in 0..32 {
        let input = match steps.last().map(|s| &s.action) {
            Some(ReadAction::Answer(_)) => return steps,
            Some(ReadAction::Refresh) => ReadInput::Refreshed,
            Some(ReadAction::OwnWrite) => ReadInput::OwnWrite(None),
            Some(ReadAction::PeekTier) => ReadInput::Tier(None),
            Some(ReadAction::PeekFallback) => ReadInput::Fallback(None),
            Some(ReadAction::Get { .. }) => ReadInput::Reply(value.and_then(b)),
            Some(ReadAction::Acquire { .. }) => ReadInput::LeaseReply(lease),
            Some(ReadAction::Wait { .. }) => ReadInput::Timer,
            Some(ReadAction::Poll { .. }) => ReadInput::Polled {
                entry: value.and_then(b),
                leased: false,
            },
            other => panic!("unexpected {other:?}"),
        };
        let mut step = go(e, m, input, NOW);
        // The number a kept reply went out under counts this engine's commands: two runs of
        // the same read differ in it, and only in it.
        if let TierAction::Keep { order, .. } = &mut step.tier {
            *order = 0;
        }
        steps.push(step);
    }
    panic!("no answer in 32 steps")
}

#[test]
fn a_reset_machine_reads_as_a_new_one() {
    let mut e = engine();
    let v = uc_value(&e, "k", NOW - 1.0, 60.0, &["t"]);
    // Last used for a read that won a lease and logged its lines.
    let mut used = uc(&e, "gone", Consumer::Caches, NOW);
    let steps = run(&mut e, &mut used, None, 1);
    assert!(answer(steps.last().unwrap()).holds_lease);
    let soft = ["_N_T_/x", "_N_T_/y"];
    let entry_key = e.entry_key(&IFACE, "k");
    for remembered in [None, Some(entry_key.as_str())] {
        let mut fresh = e.read_use_cache(
            &IFACE,
            "k",
            soft.iter().map(|t| (*t).to_owned()).collect(),
            Consumer::Serves,
            TOKEN.to_owned(),
            Millis(NOW),
        );
        let want = run(&mut e, &mut fresh, Some(&v), 0);
        e.reset_read_use_cache(
            &mut used,
            &IFACE,
            "k",
            remembered,
            soft,
            Consumer::Serves,
            LeaseToken::New(TOKEN),
            Millis(NOW),
        );
        assert_eq!(used.entry_key(), entry_key);
        assert_eq!(run(&mut e, &mut used, Some(&v), 0), want);
        assert_eq!(used.won_at(), None);
        assert!(used.renewal().is_none());
    }
    // The implicit tags given to the reset are the ones judged with.
    e.plan_tag_update(&["_N_T_/y"], &Revalidation::Expire, Millis(NOW), "epoch")
        .unwrap();
    e.reset_read_use_cache(
        &mut used,
        &IFACE,
        "k",
        None,
        soft,
        Consumer::Serves,
        LeaseToken::New(TOKEN),
        Millis(NOW + 1.0),
    );
    let steps = run(&mut e, &mut used, Some(&v), 1);
    let a = answer(steps.last().unwrap());
    assert_eq!(a.served, Served::Miss);
    assert!(a.log.contains("expired-by-tag"), "{}", a.log);
    // And a 'use cache' machine becomes a singular-handler read.
    let page = inc_value(&mut e, "/p", ValueKind::AppPage, NOW - 1.0);
    let mut fresh = inc(&e, "/p", false, false, NOW);
    let want = run(&mut e, &mut fresh, Some(&page), 0);
    e.reset_read_incremental(
        &mut used,
        "/p",
        None,
        false,
        [],
        f64::NAN,
        Consumer::Serves,
        false,
        LeaseToken::New(TOKEN),
        Millis(NOW),
    );
    assert_eq!(run(&mut e, &mut used, Some(&page), 0), want);
    assert_eq!(answer(want.last().unwrap()).served, Served::Fresh);
}

#[test]
fn without_a_write_in_flight_the_read_goes_to_the_tier_without_asking() {
    let mut e = engine();
    let v = uc_value(&e, "k", NOW - 1.0, 60.0, &[]);
    let mut asked = uc(&e, "k", Consumer::Serves, NOW);
    let mut told = uc(&e, "k", Consumer::Serves, NOW);
    told.no_write_in_flight();
    let mut want = run(&mut e, &mut asked, Some(&v), 0);
    assert_eq!(want.remove(0).action, ReadAction::OwnWrite);
    assert_eq!(run(&mut e, &mut told, Some(&v), 0), want);
    assert_eq!(want[0].action, ReadAction::PeekTier);
    // The same after a refresh, and a reset machine asks again.
    let mut fresh = Engine::new(Config {
        prefix: "fc".into(),
        deployment: "d1".into(),
        ..Config::default()
    })
    .unwrap();
    let mut m = uc(&fresh, "k", Consumer::Serves, NOW);
    m.no_write_in_flight();
    assert_eq!(
        go(&mut fresh, &mut m, ReadInput::Start, NOW).action,
        ReadAction::Refresh
    );
    let s = go(&mut fresh, &mut m, ReadInput::Refreshed, NOW);
    assert_eq!(s.action, ReadAction::PeekTier);
    e.reset_read_use_cache(
        &mut told,
        &IFACE,
        "k",
        None,
        [],
        Consumer::Serves,
        LeaseToken::New(TOKEN),
        Millis(NOW),
    );
    assert_eq!(
        go(&mut e, &mut told, ReadInput::Start, NOW).action,
        ReadAction::OwnWrite
    );
}

#[test]
fn every_implicit_tag_is_judged_however_many() {
    let mut e = engine();
    let v = uc_value(&e, "k", NOW - 1.0, 60.0, &[]);
    let soft: Vec<String> = (0..12).map(|i| format!("_N_T_/s{i}")).collect();
    let read = |e: &Engine| {
        e.read_use_cache(
            &IFACE,
            "k",
            soft.clone(),
            Consumer::Serves,
            TOKEN.to_owned(),
            Millis(NOW),
        )
    };
    let mut m = read(&e);
    let steps = run(&mut e, &mut m, Some(&v), 0);
    assert_eq!(answer(steps.last().unwrap()).served, Served::Fresh);
    // The last of twelve (past the few kept on the stack), and one among the first eight.
    for tag in ["_N_T_/s11", "_N_T_/s3"] {
        let mut e = engine();
        e.plan_tag_update(&[tag], &Revalidation::Expire, Millis(NOW), "epoch")
            .unwrap();
        let mut m = read(&e);
        let steps = run(&mut e, &mut m, Some(&v), 1);
        let a = answer(steps.last().unwrap());
        assert_eq!(a.served, Served::Miss, "{tag}");
        assert!(a.log.contains("expired-by-tag"), "{tag}: {}", a.log);
    }
}

#[test]
fn without_a_refresh_the_tier_index_is_asked_once_per_read() {
    // A copy kept for outages only (or this process's own): with no refresh for the bytes to
    // wait on, they are asked for and `tier_use` keeps them untouched; Redis is read.
    let mut e = engine();
    let v = uc_value(&e, "k", NOW - 1.0, 60.0, &[]);
    let key = e.entry_key(&IFACE, "k");
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e7));
    e.lru_mut().mark_outage_only(&key);
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_tier(&mut e, &mut m, NOW);
    let s = go(&mut e, &mut m, ReadInput::Tier(b(&v)), NOW);
    assert!(matches!(s.action, ReadAction::Get { .. }), "{s:?}");
    assert_eq!(s.tier, TierAction::None);
    assert!(e.lru().contains(&key), "kept for outages");
    // After a refresh (a mirror never synced), Redis is read at once, as for a page.
    let mut fresh = Engine::new(Config {
        prefix: "fc".into(),
        deployment: "d1".into(),
        ..Config::default()
    })
    .unwrap();
    fresh
        .lru_mut()
        .insert(&key, v.len() as u64, Millis(NOW + 1e7));
    fresh.lru_mut().mark_outage_only(&key);
    let mut m = uc(&fresh, "k", Consumer::Serves, NOW);
    m.no_write_in_flight();
    let s = go(&mut fresh, &mut m, ReadInput::Start, NOW);
    assert_eq!(s.action, ReadAction::Refresh);
    let s = go(&mut fresh, &mut m, ReadInput::Refreshed, NOW);
    assert!(matches!(s.action, ReadAction::Get { .. }), "{s:?}");
}

/// A write machine dropped after its Store step and before its end (the JS write driver
/// frees it so on any exception in `drive`, and after MAX_STEPS; JS may free a wasm
/// `WriteMachine` at any time) ends its mark on the key with it: a later read keeps its copy
/// again (docs/failures.md, "The copy an outage serves").
#[test]
fn a_write_machine_dropped_before_its_end_does_not_mark_its_key_forever() {
    use crate::write_machine::{WriteRequest, WriteStep};
    let mut e = engine();
    let key = e.entry_key(&IFACE, "k");
    let v1 = uc_value(&e, "k", NOW - 10.0, 60.0, &[]);
    {
        let mut w = e.write_start(
            WriteRequest::UseCache {
                iface: IFACE,
                cache_key: "k",
                tags: &[],
                timestamp: Millis(NOW + 1.0),
                revalidate: 60.0,
                expire: 3600.0,
                stale: 30.0,
                payload_len: 10,
            },
            Millis(NOW + 1.0),
        );
        let WriteStep::Store(st) = e.write_first(&mut w, Millis(NOW + 1.0)) else {
            panic!("expected Store")
        };
        e.lru_mut().insert(&key, 10, st.keep_until);
        // The host drops the machine here (exception, too many steps): `w` goes out of scope.
    }
    let mut later = uc(&e, "k", Consumer::Serves, NOW + 5.0);
    to_get(&mut e, &mut later, NOW + 5.0);
    let s = go(&mut e, &mut later, ReadInput::Reply(b(&v1)), NOW + 5.0);
    assert!(
        matches!(s.tier, TierAction::Keep { .. }),
        "a read sent long after the dropped write keeps nothing: {:?} ({} keys marked)",
        s.tier,
        e.lru_mut().writes_in_flight()
    );
}

/// A copy that left the tier, through the engine: this process's write of `k` lands and ends, its copy
/// is evicted by another key's, and a read whose GET went out before the write (it brings
/// the value the write replaced) is judged after: it keeps that older value, which the next
/// outage serves though the process's own newer write landed.
#[test]
fn after_an_eviction_a_read_sent_before_this_process_wrote_the_key_keeps_nothing() {
    use crate::write_machine::{WriteInput, WriteRequest, WriteStep};
    let mut e = engine();
    let key = e.entry_key(&IFACE, "k");
    let v0 = uc_value(&e, "k", NOW - 10.0, 60.0, &[]);
    let mut before = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut before, NOW);
    let mut w = e.write_start(
        WriteRequest::UseCache {
            iface: IFACE,
            cache_key: "k",
            tags: &[],
            timestamp: Millis(NOW + 1.0),
            revalidate: 60.0,
            expire: 3600.0,
            stale: 30.0,
            payload_len: 10,
        },
        Millis(NOW + 1.0),
    );
    let WriteStep::Store(st) = e.write_first(&mut w, Millis(NOW + 1.0)) else {
        panic!("expected Store")
    };
    e.lru_mut().insert(&key, 10, st.keep_until);
    let d = e.write_step(&mut w, WriteInput::Sent, Millis(NOW + 2.0));
    assert!(matches!(d, WriteStep::Done(_)), "{d:?}");
    // Another key's copy, as large as the whole tier with its bookkeeping, pushes k's out.
    let whole = e.lru_mut().capacity() - crate::lru::item_overhead("other");
    let evicted = e.lru_mut().insert("other", whole, st.keep_until);
    assert_eq!(evicted, vec![key.clone()]);
    let s = go(&mut e, &mut before, ReadInput::Reply(b(&v0)), NOW + 3.0);
    assert_eq!(answer(&s).source, Source::Redis);
    assert_eq!(
        s.tier,
        TierAction::None,
        "the value this process's own write replaced refills the tier"
    );
}

/// Bytes the host offers from the tier with their prefix left out, as it does once a step
/// said the index keeps their header.
fn omitted(v: &[u8]) -> Option<Bytes<'_>> {
    Some(Bytes {
        prefix: &[],
        total_len: v.len(),
    })
}

/// A tier hit: the read stepped from its start through the tier peek with `bytes` (given
/// again with their prefix when the machine asks for it), to its next step.
fn tier_hit(e: &mut Engine, key: &str, bytes: &[u8], omit: bool, now: f64) -> (ReadStep, bool) {
    let mut m = uc(e, key, Consumer::Serves, now);
    to_tier(e, &mut m, now);
    let offered = if omit { omitted(bytes) } else { b(bytes) };
    let mut s = go(e, &mut m, ReadInput::Tier(offered), now);
    if let ReadAction::NeedMore { need } = s.action {
        assert!(omit, "a whole header asked for more");
        s = go(
            e,
            &mut m,
            ReadInput::Tier(b(&bytes[..need.min(bytes.len())])),
            now,
        );
    }
    (s, m.header_kept())
}

#[test]
fn a_tier_copys_header_is_kept_and_the_copy_judged_afresh_on_every_hit() {
    let mut e = engine();
    let key = e.entry_key(&IFACE, "k");
    let v = uc_value(&e, "k", NOW, 60.0, &["t"]);
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e6));
    let used = e.lru().used_bytes();
    // Not kept yet: the prefix left out is asked for, and the header judged is kept.
    let (s, kept) = tier_hit(&mut e, "k", &v, true, NOW);
    assert_eq!((answer(&s).source, kept), (Source::Tier, true));
    assert!(e.lru().used_bytes() > used, "the kept header is charged");
    // Kept: served without the prefix, as from the bytes.
    let (s, kept) = tier_hit(&mut e, "k", &v, true, NOW + 1.0);
    let a = answer(&s);
    assert_eq!(
        (a.source, a.served, kept),
        (Source::Tier, Served::Fresh, true)
    );
    assert_eq!(uc_shown(a).tags().to_vec(), vec!["t".to_owned()]);
    assert_eq!(
        (uc_shown(a).timestamp, &v[a.payload_offset..]),
        (NOW, &b"payload"[..])
    );
    // A tag revalidated since: the kept header's copy is judged against it, a miss.
    e.plan_tag_update(&["t"], &Revalidation::Expire, Millis(NOW + 10.0), "epoch")
        .unwrap();
    let (s, _) = tier_hit(&mut e, "k", &v, true, NOW + 20.0);
    assert!(matches!(s.action, ReadAction::Get { .. }), "{s:?}");
    assert_eq!(s.tier, TierAction::Drop);
    assert_eq!(e.lru().used_bytes(), 0, "the header left with its copy");
    // A copy of the same length replacing it: its own header is judged, not the old one's.
    let newer = uc_value(&e, "k", NOW + 30.0, 60.0, &["u"]);
    assert_eq!(newer.len(), v.len());
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e6));
    tier_hit(&mut e, "k", &v, false, NOW + 40.0);
    e.lru_mut()
        .insert(&key, newer.len() as u64, Millis(NOW + 1e6));
    let (s, _) = tier_hit(&mut e, "k", &newer, true, NOW + 40.0);
    assert_eq!(uc_shown(answer(&s)).tags().to_vec(), vec!["u".to_owned()]);
}

#[test]
fn an_embedded_stores_held_copy_keeps_its_header_too() {
    let mut e = engine();
    let key = e.entry_key(&IFACE, "k");
    let v = uc_value(&e, "k", NOW, 60.0, &["t"]);
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e6));
    for (omit, kept_before) in [(false, false), (true, true)] {
        let mut m = uc(&e, "k", Consumer::Serves, NOW);
        to_get(&mut e, &mut m, NOW);
        assert_eq!(e.lru().kept_header(&key, v.len()).is_some(), kept_before);
        let given = if omit { omitted(&v) } else { b(&v) };
        let s = go(&mut e, &mut m, ReadInput::Held(given), NOW);
        let a = answer(&s);
        assert_eq!((a.source, a.served), (Source::Redis, Served::Fresh));
        assert_eq!(uc_shown(a).tags().to_vec(), vec!["t".to_owned()]);
        assert!(m.header_kept());
    }
    // Not kept (the copy replaced): the prefix left out is asked for.
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e6));
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    let s = go(&mut e, &mut m, ReadInput::Held(omitted(&v)), NOW);
    assert_eq!(s.action, ReadAction::NeedMore { need: v.len() });
}

#[test]
fn a_held_hit_takes_the_header_found_by_its_touch_on_a_seeded_engine() {
    let seed = crate::strhash::HashSeed::from_bytes([0x5a; 16]);
    let mut e = Engine::with_hash_seed(engine().config().clone(), seed).unwrap();
    e.mark_standalone();
    let key = e.entry_key(&IFACE, "k");
    let v = uc_value(&e, "k", NOW, 60.0, &["t"]);
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e6));
    e.lru_mut().insert("other", 1, Millis(NOW + 1e6));
    // First hit: nothing kept, so nothing offered; the bytes' header is judged and kept.
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    assert!(e.tier_touch_held(&mut m, v.len(), Millis(NOW)));
    let s = go(&mut e, &mut m, ReadInput::Held(b(&v)), NOW);
    assert_eq!(answer(&s).served, Served::Fresh);
    assert!(m.header_kept());
    // Second hit: the touch finds the kept header, and the bytes without their prefix serve.
    e.lru_mut().touch("other", Millis(NOW));
    let mut m = uc(&e, "k", Consumer::Serves, NOW + 1.0);
    to_get(&mut e, &mut m, NOW + 1.0);
    assert!(e.tier_touch_held(&mut m, v.len(), Millis(NOW + 1.0)));
    assert_eq!(
        e.lru().keys_by_recency().first(),
        Some(&key.as_str()),
        "touched"
    );
    let s = go(&mut e, &mut m, ReadInput::Held(omitted(&v)), NOW + 1.0);
    let a = answer(&s);
    assert_eq!((a.source, a.served), (Source::Redis, Served::Fresh));
    assert_eq!(uc_shown(a).tags().to_vec(), vec!["t".to_owned()]);
    assert!(m.header_kept());
    // Bytes of another length: no header offered, the prefix left out is asked for.
    let mut m = uc(&e, "k", Consumer::Serves, NOW + 2.0);
    to_get(&mut e, &mut m, NOW + 2.0);
    assert!(e.tier_touch_held(&mut m, v.len() + 1, Millis(NOW + 2.0)));
    let longer = Bytes {
        prefix: &[],
        total_len: v.len() + 1,
    };
    let s = go(&mut e, &mut m, ReadInput::Held(Some(longer)), NOW + 2.0);
    assert_eq!(s.action, ReadAction::NeedMore { need: v.len() + 1 });
}

#[derive(Clone, Debug)]
enum TierOp {
    /// The host keeps a copy of key `k` at version `v` (`foreign`: written for the other key).
    Insert {
        k: u8,
        v: u8,
        foreign: bool,
    },
    /// A read of key `k` hits the tier, the prefix left out when the host may.
    Hit {
        k: u8,
        omit: bool,
    },
    Remove(u8),
    /// Another key's copy of this many bytes, evicting the least recently used.
    Fill(u16),
    Revalidate(u8),
    Advance(u16),
}

fn any_tier_op() -> impl Strategy<Value = TierOp> {
    prop_oneof![
        (0u8..2, 0u8..20, any::<bool>()).prop_map(|(k, v, foreign)| TierOp::Insert {
            k,
            v,
            foreign
        }),
        (0u8..2, any::<bool>()).prop_map(|(k, omit)| TierOp::Hit { k, omit }),
        (0u8..2, any::<bool>()).prop_map(|(k, omit)| TierOp::Hit { k, omit }),
        (0u8..2).prop_map(TierOp::Remove),
        (0u16..600).prop_map(TierOp::Fill),
        (0u8..2).prop_map(TierOp::Revalidate),
        (0u16..4000).prop_map(TierOp::Advance),
    ]
}

use proptest::prelude::*;

proptest! {
    /// Random sequences of inserts (a copy of the same length replacing another included),
    /// removals, evictions, expiries, tag revalidations and hits: every hit's verdict is the
    /// one the host's bytes for the key, decoded afresh, get from the engine as it is then.
    #[test]
    fn every_tier_hit_judges_as_the_bytes_held_decoded_afresh(
        budget in 200u64..1500,
        ops in proptest::collection::vec(any_tier_op(), 0..60),
    ) {
        let mut e = Engine::new(Config {
            prefix: "fc".into(),
            deployment: "d1".into(),
            memory_bytes: budget,
            ..Config::default()
        })
        .unwrap();
        e.mark_standalone();
        let mut now = NOW;
        let mut host: std::collections::HashMap<String, (Vec<u8>, f64)> = Default::default();
        let tags = ["a", "b"];
        for op in ops {
            match op {
                TierOp::Insert { k, v, foreign } => {
                    let cache_key = format!("k{}", if foreign { 1 - k } else { k });
                    let created = now - f64::from(v) * 1000.0;
                    let expire = 5.0 + f64::from(v);
                    let tag = tags[usize::from(v % 2)];
                    let bytes = uc_value_expiring(&e, &cache_key, created, 3600.0, expire, &[tag]);
                    let key = e.entry_key(&IFACE, &format!("k{k}"));
                    let until = created + expire * 1000.0;
                    for gone in e.lru_mut().insert(&key, bytes.len() as u64, Millis(until)) {
                        host.remove(&gone);
                    }
                    if e.lru().contains(&key) {
                        host.insert(key, (bytes, until));
                    }
                }
                TierOp::Hit { k, omit } => {
                    let cache_key = format!("k{k}");
                    let key = e.entry_key(&IFACE, &cache_key);
                    let Some((bytes, until)) = host.get(&key).cloned() else { continue };
                    let afresh = e.inspect(&cache_key, &bytes, bytes.len(), &[], Millis(now));
                    let (s, _) = tier_hit(&mut e, &cache_key, &bytes, omit, now);
                    if now >= until {
                        prop_assert_eq!(s.tier, TierAction::Drop);
                    } else if afresh.verdict == Verdict::Fresh {
                        let h = afresh.header.unwrap();
                        let a = answer(&s);
                        prop_assert_eq!((a.source, a.served), (Source::Tier, Served::Fresh));
                        let shown = uc_shown(a);
                        prop_assert_eq!(shown.timestamp, h.meta.timestamp.0);
                        prop_assert_eq!(shown.expire, h.meta.expire);
                        prop_assert_eq!(shown.tags(), &h.meta.tags[..]);
                        prop_assert_eq!(a.payload_offset, h.header_len);
                    } else {
                        prop_assert!(matches!(s.action, ReadAction::Get { .. }), "{:?}", s);
                        let dropped = !matches!(afresh.verdict, Verdict::Stale);
                        prop_assert_eq!(s.tier == TierAction::Drop, dropped);
                    }
                    if s.tier == TierAction::Drop {
                        host.remove(&key);
                    }
                }
                TierOp::Remove(k) => {
                    let key = e.entry_key(&IFACE, &format!("k{k}"));
                    e.lru_mut().remove(&key);
                    host.remove(&key);
                }
                TierOp::Fill(size) => {
                    for gone in e.lru_mut().insert("filler", u64::from(size), Millis(NOW + 1e9)) {
                        host.remove(&gone);
                    }
                }
                TierOp::Revalidate(t) => {
                    let tag = tags[usize::from(t)];
                    e.plan_tag_update(&[tag], &Revalidation::Expire, Millis(now), "epoch")
                        .unwrap();
                    now += 1.0;
                }
                TierOp::Advance(ms) => now += f64::from(ms),
            }
            prop_assert!(e.lru().used_bytes() <= budget);
            for key in host.keys() {
                prop_assert!(e.lru().contains(key), "the host holds bytes the index dropped");
            }
        }
    }
}

/// A copy whose header is longer than the first window the host offers (js-host
/// `HEADER_WINDOW`, 4,096 bytes: a few hundred tags, a long key) is read in two steps: the
/// window, then as much as the machine asks for (`NeedMore`). From the tier, the second step is
/// a `Tier` input again, and the header judged is kept. From the embedded store, the driver
/// gives the second step as the `Get`'s reply (read-driver.ts, `K.NeedMore` -> `feed` with
/// `Given.Reply` -> `machine.reply`), a `Reply` input, which keeps no header: such a copy is
/// decoded twice on every read (the window, then the whole header) and its header is never kept.
/// End to end (300 tags, `createUseCacheHandler`, counted as bench/crossings.mjs counts): a tier
/// hit makes 2 binding / 2 wasm calls, an embedded-store hit 3 / 5 on every hit.
#[test]
fn a_held_copy_whose_header_is_past_the_first_window_keeps_its_header_as_a_tier_copy_does() {
    let tags: Vec<String> = (0..300)
        .map(|i| format!("a-tag-of-some-length-{i:04}"))
        .collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let window = crate::read_machine::HEADER_WINDOW;
    let mut kept = Vec::new();
    for held in [false, true] {
        let mut e = engine();
        let key = e.entry_key(&IFACE, "k");
        let v = uc_value(&e, "k", NOW, 60.0, &tags);
        assert!(v.len() > window + 1000, "the header is past the window");
        e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e6));
        let mut m = uc(&e, "k", Consumer::Serves, NOW);
        let first = Some(Bytes {
            prefix: &v[..window],
            total_len: v.len(),
        });
        let s = if held {
            to_get(&mut e, &mut m, NOW);
            go(&mut e, &mut m, ReadInput::Held(first), NOW)
        } else {
            to_tier(&mut e, &mut m, NOW);
            go(&mut e, &mut m, ReadInput::Tier(first), NOW)
        };
        let ReadAction::NeedMore { need } = s.action else {
            panic!("{s:?}")
        };
        let more = Some(Bytes {
            prefix: &v[..need],
            total_len: v.len(),
        });
        // What the driver gives for `NeedMore`: the same kind of input as before, except after
        // a held copy, whose bytes went in as the `Get`'s reply.
        let input = if held {
            ReadInput::Reply(more)
        } else {
            ReadInput::Tier(more)
        };
        let s = go(&mut e, &mut m, input, NOW);
        assert_eq!(answer(&s).served, Served::Fresh);
        kept.push((held, e.lru().kept_header(&key, v.len()).is_some()));
    }
    assert_eq!(kept, vec![(false, true), (true, true)]);
}

/// The engine judges a fresh page's `revalidate` with the clock of the step that
/// answers, and Next judges the same `lastModified + revalidate` again with the same clock
/// after the answer comes back (`incremental-cache/index.js`, `revalidateAfter < now`; for
/// FETCH, `age > revalidate`). With the creation time shown, any time between the two (the
/// promise hops back to Next, a GC pause, an event loop stalled) let an entry answered fresh
/// reach Next past its `revalidate`: Next regenerated it with no regeneration start noted, its
/// write was stamped with the write time, and a revalidation that resolved during that render
/// left the page it stored fresh on every instance. A fresh answer now shows the time of the
/// read, so Next regenerates only after the engine's stale answer, which notes the start.
#[test]
fn a_page_answered_fresh_at_the_end_of_its_revalidate_is_regenerated_only_by_a_stale_answer() {
    past_revalidate_at_next(ValueKind::AppPage, "/p");
}

/// The same for a `fetch` entry: Next's `age > revalidate`, with its own clock.
#[test]
fn a_fetch_entry_answered_fresh_at_the_end_of_its_revalidate_is_regenerated_only_by_a_stale_answer()
{
    past_revalidate_at_next(ValueKind::Fetch, "/f");
}

/// The hole left by showing a fresh answer as read now: an answer that takes a whole
/// `revalidate` to reach Next (an event loop stalled that long). Next finds it stale and
/// regenerates on its own, with no stale answer noting a start; the write, after a
/// revalidation during that render, must still be stamped no later than the read.
#[test]
fn a_regeneration_next_begins_after_a_stall_of_a_whole_revalidate_is_stamped_by_the_read() {
    for kind in [ValueKind::AppPage, ValueKind::Fetch] {
        let mut e = engine();
        let key = "/stalled";
        let stored =
            |e: &mut Engine, created: f64, now: f64| inc_stored(e, kind, key, &["t"], created, now);
        let v = stored(&mut e, NOW, NOW);
        let began = NOW + 30_000.0;
        let s = inc_read_from_redis(&mut e, kind, key, &v, began, began + 1.0);
        let a = answer(&s);
        assert_eq!((a.served, a.regenerates), (Served::Fresh, false));
        // The answer reaches Next a whole `revalidate` later: stale to it, it regenerates.
        let reached = began + 1.0 + 60_000.0 + 1.0;
        assert!(
            inc_shown(a).last_modified + 60_000.0 < reached,
            "{kind:?}: Next regenerates"
        );
        let (created, verdict) = written_after_a_revalidation(&mut e, kind, key, reached + 100.0);
        assert_eq!(created, Millis(began), "{kind:?}: stamped with the read");
        assert_eq!(
            verdict,
            crate::incremental::IncrementalVerdict::Expired,
            "{kind:?}: rendered before the revalidation, must not read as fresh after it"
        );
        // A write with no such answer due is stamped with its own time, as before.
        assert_eq!(
            e.incremental_created(key, kind, &["t"], Millis(reached + 300.0)),
            Millis(reached + 300.0)
        );
    }
}

/// The fresh answers `note_fresh` keeps share the 10,000-key table and its
/// oldest-first eviction with the starts of regenerations in flight. Every fresh read of a
/// new key now takes a place, so a process that reads 10,000 other keys fresh while a page
/// regenerates (fetch entries of a large catalogue: a few seconds of traffic) drops that
/// page's start, and its write, after a revalidation during the render, is stamped with the
/// write time: fresh on every instance. Before the fresh-answer record only regenerations
/// took places, and the same reads left the start alone.
#[test]
fn fresh_answers_of_other_keys_do_not_push_out_the_start_of_a_regeneration_in_flight() {
    let mut e = engine_debugging(false);
    let page = "/p";
    let v = inc_stored(&mut e, ValueKind::AppPage, page, &["t"], NOW, NOW);
    // Past its `revalidate`: answered stale, the regeneration's start noted.
    let read = NOW + 61_000.0;
    let mut m = inc(&e, page, false, false, read);
    let s = inc_reply(&mut e, &mut m, &v, read, read);
    assert!(matches!(s.action, ReadAction::Acquire { .. }), "{s:?}");
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), read);
    assert!(answer(&s).regenerates);
    // While it renders, other keys (fetch entries) are read and answered fresh.
    for i in 0..crate::regen::MAX_REGENERATIONS {
        let key = format!("/f{i}");
        let at = read + 1.0;
        let f = inc_stored(&mut e, ValueKind::Fetch, &key, &[], at, at);
        let s = inc_read_from_redis(&mut e, ValueKind::Fetch, &key, &f, at, at);
        assert_eq!(answer(&s).served, Served::Fresh);
    }
    let (created, verdict) =
        written_after_a_revalidation(&mut e, ValueKind::AppPage, page, read + 500.0);
    assert_eq!(
        verdict,
        crate::incremental::IncrementalVerdict::Expired,
        "rendered from data read before the revalidation, created at {created:?} (start {read}), \
         must not read as fresh after it"
    );
}

/// `note_fresh` keeps only the latest fresh answer, so a later one replaces an
/// earlier answer that had already fallen due, one Next may be regenerating from on its own.
/// Next's `fetch` reads of one key from different requests run concurrently (its
/// `IncrementalCache`, lock included, is made per request), and the key does not include the
/// `revalidate`: a call site with `revalidate: 1` is answered fresh, the answer reaches Next
/// after a stall of a whole second and Next refetches in the background; meanwhile another
/// call site (the entry's own 60 s) reads the key and is answered fresh. The background
/// fetch's write, after a revalidation, is stamped with its write time.
#[test]
fn a_later_fresh_answer_does_not_hide_one_that_already_fell_due() {
    let mut e = engine_debugging(false);
    let key = "/f";
    let v = inc_stored(&mut e, ValueKind::Fetch, key, &["t"], NOW, NOW);
    let read = |e: &mut Engine, request_revalidate: f64, at: f64| {
        let mut m = e.read_incremental(
            key,
            true,
            Vec::new(),
            request_revalidate,
            Consumer::Serves,
            false,
            TOKEN.to_owned(),
            Millis(at),
        );
        let s = inc_reply(e, &mut m, &v, at, at);
        let a = answer(&s);
        assert_eq!((a.served, a.regenerates), (Served::Fresh, false));
        inc_shown(a).last_modified
    };
    let first = NOW + 500.0;
    let shown = read(&mut e, 1.0, first);
    // The answer reaches Next 1.1 s later: `age > revalidate`, it refetches on its own.
    let reached = first + 1_100.0;
    assert!((reached - shown) / 1000.0 > 1.0, "Next refetches");
    // The other call site, once Next released its lock for the key.
    let second = reached + 10.0;
    let shown2 = read(&mut e, f64::NAN, second);
    assert!(shown2 + 60_000.0 > second + 1_000.0, "fresh to Next");
    // The background refetch read the upstream before a revalidation of `t`, and writes.
    let (created, verdict) =
        written_after_a_revalidation(&mut e, ValueKind::Fetch, key, second + 50.0);
    assert_eq!(
        verdict,
        crate::incremental::IncrementalVerdict::Expired,
        "refetched before the revalidation, created at {created:?} (the read that gave the \
         answer began at {first}), must not read as fresh after it"
    );
}

/// A `kind` entry of `key` (revalidate 60 s, expire 3600 s, `tags`, parts of 3 bytes each)
/// created at `created`, written at `now`, as stored.
fn inc_stored(
    e: &mut Engine,
    kind: ValueKind,
    key: &str,
    tags: &[&str],
    created: f64,
    now: f64,
) -> Vec<u8> {
    let desc = inc_desc(kind);
    let parts = vec![3u32; desc.part_count()];
    let set = IncrementalSet {
        desc,
        revalidate: 60.0,
        expire: 3600.0,
        tags,
        parts: &parts,
        created: Millis(created),
        made: None,
        now: Millis(now),
    };
    let mut v = e.plan_incremental_set(key, &set).unwrap().header;
    for _ in &parts {
        v.extend_from_slice(b"abc");
    }
    v
}

/// `m` started at `began` (refreshed, nothing in the tier), then Redis's reply `v` at `at`.
fn inc_reply(e: &mut Engine, m: &mut ReadMachine, v: &[u8], began: f64, at: f64) -> ReadStep {
    go(e, m, ReadInput::Start, began);
    go(e, m, ReadInput::Refreshed, began);
    go(e, m, ReadInput::Tier(None), began);
    go(e, m, ReadInput::Reply(b(v)), at)
}

/// A singular-handler read of `key` begun at `began`, Redis's reply `v` judged at `at`.
fn inc_read_from_redis(
    e: &mut Engine,
    kind: ValueKind,
    key: &str,
    v: &[u8],
    began: f64,
    at: f64,
) -> ReadStep {
    let mut m = inc(e, key, kind == ValueKind::Fetch, false, began);
    inc_reply(e, &mut m, v, began, at)
}

/// A revalidation of `t` at `at`, then the write of `key` (a render that read its data
/// before it) 100 ms later: its creation time, and how a read 100 ms after that judges it.
fn written_after_a_revalidation(
    e: &mut Engine,
    kind: ValueKind,
    key: &str,
    at: f64,
) -> (Millis, crate::incremental::IncrementalVerdict) {
    e.plan_tag_update(&["t"], &Revalidation::Expire, Millis(at), "ep")
        .unwrap();
    let written = at + 100.0;
    let created = e.incremental_created(key, kind, &["t"], Millis(written));
    let v = inc_stored(e, kind, key, &["t"], created.0, written);
    let (verdict, _) =
        e.inspect_incremental(key, &v, v.len(), &[], f64::NAN, Millis(written + 100.0));
    (created, verdict)
}

fn past_revalidate_at_next(kind: ValueKind, key: &str) {
    let mut e = engine();
    let stored =
        |e: &mut Engine, created: f64, now: f64| inc_stored(e, kind, key, &["t"], created, now);
    let v = stored(&mut e, NOW, NOW);
    // The read is judged at the last millisecond of the entry's `revalidate`.
    let judged = NOW + 60_000.0;
    let s = inc_read_from_redis(&mut e, kind, key, &v, judged - 5.0, judged);
    let a = answer(&s);
    assert_eq!((a.served, a.regenerates), (Served::Fresh, false));
    let shown = inc_shown(a);
    // Next judges `lastModified + revalidate` again when the answer reaches it, with the same
    // clock: a millisecond later, or after a stall of anything short of a whole `revalidate`,
    // it must still find the entry fresh, not regenerate it on its own (no start noted).
    for late in [1.0, 5.0, 59_999.0] {
        assert!(
            shown.last_modified + 60.0 * 1000.0 >= judged + late,
            "{kind:?}: Next finds it stale {late} ms after the engine answered fresh"
        );
    }
    // The next read, past the entry's own `revalidate`: the engine calls it stale and notes
    // where the regeneration it asks for begins.
    let read = judged + 10.0;
    let mut m = inc(&e, key, kind == ValueKind::Fetch, false, read);
    let s = inc_reply(&mut e, &mut m, &v, read, read);
    assert!(matches!(s.action, ReadAction::Acquire { .. }), "{s:?}");
    let s = go(&mut e, &mut m, ReadInput::LeaseReply(1), read);
    let a = answer(&s);
    assert_eq!((a.served, a.regenerates), (Served::Stale, true));
    assert!(
        inc_shown(a).last_modified + 60.0 * 1000.0 < read,
        "Next regenerates"
    );
    // The render reads its data now; a revalidation of `t` resolves while it runs.
    let (created, verdict) = written_after_a_revalidation(&mut e, kind, key, judged + 100.0);
    assert_eq!(
        verdict,
        crate::incremental::IncrementalVerdict::Expired,
        "{kind:?} rendered from data read before the revalidation, created at {created:?}, \
         must not read as fresh after it"
    );
}

/// A tier copy of `'use cache'` key `k` (tag `t`, revalidate 60 s) whose header the index
/// keeps, as after a first hit: what `read_tier_hit` answers from. Debugging off (on, the
/// machine logs the hit, and the shortcut is not taken).
fn kept_copy(e: &mut Engine) -> (String, Vec<u8>) {
    kept_copy_until(e, NOW + 1e7)
}

/// [`kept_copy`], living in the index until `until`.
fn kept_copy_until(e: &mut Engine, until: f64) -> (String, Vec<u8>) {
    let key = e.entry_key(&IFACE, "k");
    let v = uc_value(e, "k", NOW, 60.0, &["t"]);
    e.lru_mut().insert(&key, v.len() as u64, Millis(until));
    let header = std::rc::Rc::new(crate::envelope::decode_header(&v, v.len()).unwrap());
    assert!(e.lru_mut().keep_header(&key, v.len(), &header));
    (key, v)
}

/// The shortcut's answer for cache key `cache_key` read from `entry_key`'s copy.
fn shortcut(
    e: &mut Engine,
    entry_key: &str,
    cache_key: &str,
    soft: &[&str],
    len: usize,
    now: f64,
) -> Option<ReadAnswer> {
    e.read_tier_hit(entry_key, cache_key, soft, len, false, Millis(now))
}

#[test]
fn a_tier_hit_without_a_machine_answers_what_the_machine_answers() {
    let mut e = engine_debugging(false);
    let (key, v) = kept_copy(&mut e);
    let fast = shortcut(&mut e, &key, "k", &[], v.len(), NOW + 1.0).expect("a hit");
    let (s, kept) = tier_hit(&mut e, "k", &v, true, NOW + 1.0);
    let slow = answer(&s);
    assert!(kept);
    assert_eq!(s.tier, TierAction::None);
    assert_eq!(
        (fast.source, fast.served, fast.regenerates, fast.holds_lease),
        (slow.source, slow.served, slow.regenerates, slow.holds_lease)
    );
    assert_eq!((fast.source, fast.served), (Source::Tier, Served::Fresh));
    assert_eq!(fast.payload_offset, slow.payload_offset);
    let (f, m) = (uc_shown(&fast), uc_shown(slow));
    assert_eq!(
        (f.timestamp, f.revalidate, f.expire, f.stale, f.tags()),
        (m.timestamp, m.revalidate, m.expire, m.stale, m.tags())
    );
    assert_eq!(&v[fast.payload_offset..], b"payload");
    assert!(fast.log.is_empty() && fast.error.is_empty());
    // Counted as the machine counts its hit.
    let hits = |e: &Engine| e.stats().lookups(Surface::UseCache, LookupOutcome::Hit);
    let before = hits(&e);
    shortcut(&mut e, &key, "k", &[], v.len(), NOW + 2.0).expect("a hit");
    assert_eq!(hits(&e), before + 1);
}

/// Every check of the machine's tier hit is the shortcut's too: each case below serves from
/// the shortcut just before the one change that must stop it.
#[test]
fn a_tier_hit_without_a_machine_makes_every_check_the_machine_makes() {
    let t = NOW + 1.0;
    // A tag revalidated since the entry was made: expired, then (with durations) stale.
    for rev in [
        Revalidation::Expire,
        Revalidation::Stale {
            expire_seconds: None,
        },
    ] {
        let mut e = engine_debugging(false);
        let (key, v) = kept_copy(&mut e);
        assert!(shortcut(&mut e, &key, "k", &[], v.len(), t).is_some());
        e.plan_tag_update(&["t"], &rev, Millis(t), "epoch").unwrap();
        assert!(
            shortcut(&mut e, &key, "k", &[], v.len(), t + 1.0).is_none(),
            "{rev:?}"
        );
    }
    // A soft tag (Next's implicit tags) revalidated since.
    let mut e = engine_debugging(false);
    let (key, v) = kept_copy(&mut e);
    assert!(shortcut(&mut e, &key, "k", &["_N_T_/p"], v.len(), t).is_some());
    e.plan_tag_update(&["_N_T_/p"], &Revalidation::Expire, Millis(t), "epoch")
        .unwrap();
    assert!(shortcut(&mut e, &key, "k", &["_N_T_/p"], v.len(), t + 1.0).is_none());
    // Past its revalidate (60 s), and past its expire (3600 s).
    let mut e = engine_debugging(false);
    let (key, v) = kept_copy(&mut e);
    assert!(shortcut(&mut e, &key, "k", &[], v.len(), NOW + 59_000.0).is_some());
    assert!(shortcut(&mut e, &key, "k", &[], v.len(), NOW + 61_000.0).is_none());
    let (key, v) = kept_copy(&mut e);
    assert!(shortcut(&mut e, &key, "k", &[], v.len(), NOW + 3_601_000.0).is_none());
    // Another cache key's read (a hash collision of entry keys): the stored key differs.
    let mut e = engine_debugging(false);
    let (key, v) = kept_copy(&mut e);
    assert!(shortcut(&mut e, &key, "k2", &[], v.len(), t).is_none());
    // Bytes of another length than the kept header's, and a copy the index does not hold
    // (another namespace's key).
    assert!(shortcut(&mut e, &key, "k", &[], v.len() + 1, t).is_none());
    let other = Engine::new(Config {
        prefix: "fc".into(),
        deployment: "d2".into(),
        ..Config::default()
    })
    .unwrap()
    .entry_key(&IFACE, "k");
    assert_ne!(other, key);
    assert!(shortcut(&mut e, &other, "k", &[], v.len(), t).is_none());
    // The copy kept for outages only, or this process's own (never written to Redis), while
    // Redis answers.
    assert!(shortcut(&mut e, &key, "k", &[], v.len(), t).is_some());
    assert!(e.lru_mut().mark_outage_only(&key));
    assert!(shortcut(&mut e, &key, "k", &[], v.len(), t).is_none());
    let (key, v) = kept_copy(&mut e);
    assert!(shortcut(&mut e, &key, "k", &[], v.len(), t).is_some());
    assert!(e.lru_mut().mark_local(&key));
    assert!(shortcut(&mut e, &key, "k", &[], v.len(), t).is_none());
    // The tier's copy gone past its lifetime in the index.
    let mut e = engine_debugging(false);
    let (key, v) = kept_copy_until(&mut e, NOW + 10_000.0);
    assert!(shortcut(&mut e, &key, "k", &[], v.len(), NOW + 9_999.0).is_some());
    assert!(shortcut(&mut e, &key, "k", &[], v.len(), NOW + 10_000.0).is_none());
    // The tag mirror not synced yet (the machine refreshes first), and debugging on (the
    // machine logs the hit).
    let mut e = Engine::new(engine_debugging(false).config().clone()).unwrap();
    let (key, v) = kept_copy(&mut e);
    assert!(shortcut(&mut e, &key, "k", &[], v.len(), t).is_none());
    e.mark_standalone();
    assert!(shortcut(&mut e, &key, "k", &[], v.len(), t).is_some());
    let mut e = engine_debugging(true);
    let (key, v) = kept_copy(&mut e);
    assert!(shortcut(&mut e, &key, "k", &[], v.len(), t).is_none());
}

/// The embedded store's hit answered the same way: what the machine answers reading the held
/// bytes as the `Get`'s reply.
#[test]
fn an_embedded_store_hit_without_a_machine_answers_what_the_machine_answers() {
    let mut e = engine_debugging(false);
    let (key, v) = kept_copy(&mut e);
    let t = Millis(NOW + 1.0);
    let fast = e
        .read_tier_hit(&key, "k", &[], v.len(), true, t)
        .expect("a hit");
    let mut m = uc(&e, "k", Consumer::Serves, t.0);
    to_get(&mut e, &mut m, t.0);
    assert!(e.tier_touch_held(&mut m, v.len(), t));
    let s = go(&mut e, &mut m, ReadInput::Held(omitted(&v)), t.0);
    let slow = answer(&s);
    assert_eq!(
        (fast.source, fast.served, fast.regenerates, fast.holds_lease),
        (slow.source, slow.served, slow.regenerates, slow.holds_lease)
    );
    assert_eq!((fast.source, fast.served), (Source::Redis, Served::Fresh));
    assert_eq!(fast.payload_offset, slow.payload_offset);
    let (f, m) = (uc_shown(&fast), uc_shown(slow));
    assert_eq!(
        (f.timestamp, f.revalidate, f.expire, f.stale, f.tags()),
        (m.timestamp, m.revalidate, m.expire, m.stale, m.tags())
    );
    // Its checks are the tier's: a tag revalidated since is a miss.
    e.plan_tag_update(&["t"], &Revalidation::Expire, t, "epoch")
        .unwrap();
    assert!(e
        .read_tier_hit(&key, "k", &[], v.len(), true, Millis(t.0 + 1.0))
        .is_none());
}

/// One random state for the `'use cache'` hit shortcut against the machine.
#[derive(Clone, Debug)]
struct ShortcutCase {
    /// How long before `NOW` the entry was made (ms).
    age: f64,
    revalidate: f64,
    expire: f64,
    /// Which of "a", "b" the entry carries.
    tags: (bool, bool),
    /// Whether the read has the soft tag "_N_T_/p".
    soft: bool,
    /// Whether the index keeps the header (as after a first hit).
    kept: bool,
    /// The index's lifetime of the copy, after `NOW` (ms; may be past).
    until: f64,
    /// 0: plain; 1: kept for outages only; 2: this process's own.
    mark: u8,
    /// Tag revalidations: (0 "a", 1 "b", 2 "_N_T_/p"; 0 expire, 1 stale, 2 stale with an
    /// expire of `e` s; when, relative to the entry's creation, ms).
    revalidations: Vec<(u8, u8, f64, f64)>,
    breaker_open: bool,
    /// The read, after `NOW` (ms).
    at: f64,
    /// The copy is of another cache key with the same entry key (a hash collision).
    other_key: bool,
    /// The host's bytes are one byte longer than the kept ones.
    longer: bool,
    held: bool,
}

fn any_shortcut_case() -> impl Strategy<Value = ShortcutCase> {
    (
        (
            0.0f64..200_000.0,
            prop_oneof![Just(1.0), Just(30.0), Just(60.0), Just(600.0)],
        ),
        (
            prop_oneof![Just(2.0), Just(120.0), Just(3600.0)],
            any::<(bool, bool)>(),
        ),
        (
            any::<bool>(),
            prop_oneof![4 => Just(true), 1 => Just(false)],
        ),
        (
            -10_000.0f64..1_000_000.0,
            prop_oneof![4 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        ),
        proptest::collection::vec(
            (0u8..3, 0u8..3, 0.0f64..100.0, -100_000.0f64..300_000.0),
            0..3,
        ),
        (
            prop_oneof![5 => Just(false), 1 => Just(true)],
            0.0f64..700_000.0,
        ),
        (
            prop_oneof![9 => Just(false), 1 => Just(true)],
            prop_oneof![9 => Just(false), 1 => Just(true)],
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (age, revalidate),
                (expire, tags),
                (soft, kept),
                (until, mark),
                revalidations,
                (breaker_open, at),
                (other_key, longer, held),
            )| ShortcutCase {
                age,
                revalidate,
                expire,
                tags,
                soft,
                kept,
                until,
                mark,
                revalidations,
                breaker_open,
                at,
                other_key,
                longer,
                held,
            },
        )
}

/// Builds the engine of `c` (twice, for two engines in the same state): the entry key, the
/// bytes the host holds, the read's cache key, soft tags and time.
fn shortcut_engine(c: &ShortcutCase) -> (Engine, String, Vec<u8>, String, Vec<&'static str>, f64) {
    let mut e = engine_debugging(false);
    let created = NOW - c.age;
    let tags: Vec<&str> = [("a", c.tags.0), ("b", c.tags.1)]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(t, _)| *t)
        .collect();
    let key = e.entry_key(&IFACE, "k");
    // A hash collision: the bytes at "k"'s entry key are another cache key's.
    let stored = if c.other_key { "k2" } else { "k" };
    let mut v = uc_value_expiring(&e, stored, created, c.revalidate, c.expire, &tags);
    e.lru_mut()
        .insert(&key, v.len() as u64, Millis(NOW + c.until));
    if c.kept {
        let header = std::rc::Rc::new(crate::envelope::decode_header(&v, v.len()).unwrap());
        e.lru_mut().keep_header(&key, v.len(), &header);
    }
    match if c.held { 0 } else { c.mark } {
        1 => {
            e.lru_mut().mark_outage_only(&key);
        }
        2 => {
            e.lru_mut().mark_local(&key);
        }
        _ => {}
    }
    let now = NOW + c.at;
    for &(t, kind, exp, when) in &c.revalidations {
        let tag = ["a", "b", "_N_T_/p"][usize::from(t)];
        let rev = match kind {
            0 => Revalidation::Expire,
            1 => Revalidation::Stale {
                expire_seconds: None,
            },
            _ => Revalidation::Stale {
                expire_seconds: Some(exp),
            },
        };
        let at = (created + when).min(now);
        e.plan_tag_update(&[tag], &rev, Millis(at), "epoch")
            .unwrap();
    }
    if c.breaker_open {
        open_breaker(&mut e, now);
    }
    if c.longer {
        v.push(b'!');
    }
    let soft = if c.soft { vec!["_N_T_/p"] } else { vec![] };
    (e, key, v, "k".to_owned(), soft, now)
}

/// The machine's read of `c`'s state, as the host drives it (the tier's bytes, or the embedded
/// store's as the `Get`'s reply), to its first step that is not `NeedMore`.
fn machine_read(
    e: &mut Engine,
    c: &ShortcutCase,
    cache_key: &str,
    soft: &[&str],
    v: &[u8],
    now: f64,
) -> ReadStep {
    let mut m = e.read_use_cache(
        &IFACE,
        cache_key,
        soft.iter().map(|s| (*s).to_owned()).collect(),
        Consumer::Serves,
        TOKEN.to_owned(),
        Millis(now),
    );
    let s = if c.held {
        // The binding's `startWithHeld`: the held bytes go in when the index serves them;
        // else the driver's `getHeld`, whose `getNow` gives them if `memoryTouch` holds them.
        to_get(e, &mut m, now);
        if e.tier_touch_held(&mut m, v.len(), Millis(now)) {
            go(e, &mut m, ReadInput::Held(b(v)), now)
        } else {
            let key = m.entry_key().to_owned();
            let held = if e.tier_touch(&key, Millis(now)) {
                b(v)
            } else {
                None
            };
            go(e, &mut m, ReadInput::Held(held), now)
        }
    } else {
        to_tier(e, &mut m, now);
        go(e, &mut m, ReadInput::Tier(b(v)), now)
    };
    assert!(!matches!(s.action, ReadAction::NeedMore { .. }), "{s:?}");
    s
}

fn lookup_counts(e: &Engine) -> Vec<u64> {
    use LookupOutcome as O;
    [
        O::Hit,
        O::Stale,
        O::Miss,
        O::Expired,
        O::ExpiredByTag,
        O::KeyMismatch,
        O::Corrupt,
    ]
    .iter()
    .map(|o| e.stats().lookups(Surface::UseCache, *o))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Over random entries, index states, tag revalidations (expire, stale, stale
    /// with an expire; tags and soft tags), an open breaker, collisions and lengths, the
    /// shortcut answers exactly the machine's answer when it answers (and counts as it
    /// counts), declines whenever the machine's answer is not a fresh serve, and a declined
    /// shortcut leaves the machine's read that follows as it would be without it.
    #[test]
    fn the_tier_hit_shortcut_is_the_machines_fresh_hit_and_nothing_else(
        c in any_shortcut_case(),
    ) {
        let (mut fast_e, key, v, cache_key, soft, now) = shortcut_engine(&c);
        let (mut slow_e, _, _, _, _, _) = shortcut_engine(&c);
        let fast = fast_e.read_tier_hit(&key, &cache_key, &soft, v.len(), c.held, Millis(now));
        let slow = machine_read(&mut slow_e, &c, &cache_key, &soft, &v, now);
        match fast {
            Some(f) => {
                let ReadAction::Answer(a) = &slow.action else {
                    return Err(TestCaseError::fail(format!("shortcut served, machine {slow:?}")));
                };
                prop_assert_eq!(&f, a);
                prop_assert_eq!(lookup_counts(&fast_e), lookup_counts(&slow_e));
                prop_assert_eq!(fast_e.lru().used_bytes(), slow_e.lru().used_bytes());
            }
            None => {
                if let ReadAction::Answer(a) = &slow.action {
                    prop_assert!(
                        a.served != Served::Fresh || !c.kept || c.longer,
                        "the machine served fresh from a kept header, the shortcut declined: {a:?}"
                    );
                }
                // The host then reads with the machine: as if no shortcut was tried.
                let after = machine_read(&mut fast_e, &c, &cache_key, &soft, &v, now);
                prop_assert_eq!(&after.action, &slow.action);
                prop_assert_eq!(&after.tier, &slow.tier);
                prop_assert_eq!(lookup_counts(&fast_e), lookup_counts(&slow_e));
                prop_assert_eq!(fast_e.lru().used_bytes(), slow_e.lru().used_bytes());
            }
        }
    }
}

/// An on-demand revalidation's read of a fresh page is shown with the time of its
/// answer as `lastModified` (`fresh_last_modified`), later than the read began. When the
/// regeneration fails, Next 16.5 writes that value back (`retainPreviousCacheEntry`) and the
/// host hands the core the shown time (`Own::written_back`): the old value is stamped later
/// than the read began, while the same request's successful write is stamped with the start.
/// A revalidation that resolved between the two (after the read's tag pull) is then masked.
#[test]
fn a_value_written_back_after_an_on_demand_read_is_no_newer_than_the_read() {
    let mut e = engine();
    let v = inc_value(&mut e, "/p", ValueKind::AppPage, NOW);
    let mut m = inc(&e, "/p", false, true, NOW);
    go(&mut e, &mut m, ReadInput::Start, NOW);
    go(&mut e, &mut m, ReadInput::Refreshed, NOW);
    go(&mut e, &mut m, ReadInput::Tier(None), NOW);
    // The GET's reply comes 40 ms after the read began.
    let s = go(&mut e, &mut m, ReadInput::Reply(b(&v)), NOW + 40.0);
    let a = answer(&s);
    assert_eq!((a.served, a.regenerates), (Served::Fresh, true));
    assert!(
        inc_shown(a).last_modified > NOW,
        "shown as read at the answer"
    );
    // What the host passes for a write of the very value object `get` returned.
    let back = crate::regen::Own {
        written_back: a.own.written_back,
        ..crate::regen::Own::NONE
    };
    let key = e.namespace.entry_key(&Interface::Incremental, "/p");
    let created = crate::regen::incremental_created(
        &mut e.regenerations,
        (&e.stale_handouts, &e.fills, &e.mirror, None),
        (&key, back),
        ValueKind::AppPage,
        &[],
        (Millis(NOW + 500.0), 0.0),
    );
    assert!(
        created.0 <= NOW,
        "written back stamped {} ms after the read began",
        created.0 - NOW
    );
}

/// A page Next 16.5 writes back after a failed regeneration was stamped with one time
/// for its lifetime and its tags: at best the start of the writer's last complete pull. A
/// revalidation issued before that time but reaching Redis after it (replayed from its
/// instance's outbox after an outage, or on its way while the pull ran) then found the old
/// page newer than itself, fresh on every instance for the written-back entry's `revalidate`.
/// Now the entry keeps when the value was made apart from its stamp: tags judge it by the
/// first, its lifetime (Next's retry delay) counts from the second.
#[test]
fn a_value_written_back_keeps_when_it_was_made_for_its_tags() {
    let made = NOW - 60_000.0;
    let mut writer = engine_without_leases();
    let v = inc_stored(&mut writer, ValueKind::AppPage, "/p", &["t"], made, made);
    // Stale by time only (60 s old, `revalidate` 60 s): served stale, Next regenerates, fails,
    // and writes the value it was served back.
    let mut m = inc(&writer, "/p", false, false, NOW);
    let s = inc_reply(&mut writer, &mut m, &v, NOW, NOW + 3.0);
    let a = answer(&s);
    assert_eq!(a.served, Served::Stale);
    assert_eq!((a.own.written_back, a.own.written_back_made), (NOW, made));
    let key = writer.namespace.entry_key(&Interface::Incremental, "/p");
    let back = crate::regen::Own {
        written_back: a.own.written_back,
        written_back_made: a.own.written_back_made,
        ..crate::regen::Own::NONE
    };
    let now = Millis(NOW + 500.0);
    let desc = inc_desc(ValueKind::AppPage);
    let parts = vec![3u32; desc.part_count()];
    let set = IncrementalSet {
        desc,
        // What Next gives a retained entry: 3 to 30 s.
        revalidate: 30.0,
        expire: 3600.0,
        tags: &["t"],
        parts: &parts,
        created: crate::regen::incremental_created(
            &mut writer.regenerations,
            (&writer.stale_handouts, &writer.fills, &writer.mirror, None),
            (&key, back),
            ValueKind::AppPage,
            &["t"],
            (now, 0.0),
        ),
        made: back.made(),
        now,
    };
    let mut w = writer.plan_incremental_set("/p", &set).unwrap().header;
    for _ in &parts {
        w.extend_from_slice(b"abc");
    }
    let judged = |revalidated_at: Option<f64>| {
        let mut other = engine_without_leases();
        if let Some(at) = revalidated_at {
            other
                .plan_tag_update(
                    &["t"],
                    &Revalidation::Stale {
                        expire_seconds: None,
                    },
                    Millis(at),
                    "ep",
                )
                .unwrap();
        }
        let (verdict, header) =
            other.inspect_incremental("/p", &w, w.len(), &[], f64::NAN, Millis(NOW + 600.0));
        let header = header.unwrap();
        assert_eq!(
            (header.meta.timestamp, header.meta.made_at),
            (Millis(NOW), Some(Millis(made)))
        );
        match verdict {
            IncrementalVerdict::Serve(s) => s.stale,
            v => panic!("expected a servable value, got {v:?}"),
        }
    };
    // Nothing revalidated: fresh for its 30 s from the read, so Next waits before trying again.
    assert!(!judged(None));
    // Revalidated between when the value was made and the write-back (however late that
    // reached Redis, hence this instance): stale.
    assert!(judged(Some(NOW - 1_000.0)));
    assert!(judged(Some(made)));
}

/// A value written back unchanged is the old entry's bytes, not a render: it joined
/// no `'use cache'` entry. Yet the write's stamp is lowered to the creation of any stale
/// `'use cache'` entry with one of its tags this process handed out since the read began
/// (`StaleHandouts`, meant for a regeneration that may have joined one), and the made time is
/// dropped as no longer earlier. The failing regeneration's own render reads such entries (a
/// page stale by time usually holds `'use cache'` data stale by time, with the page's tags):
/// the entry written back is then stale by time at once, and Next's retry delay is void (a
/// regeneration on every request while the backend fails). Its tags already judge it by when
/// it was made, so the hand-outs add nothing to its freshness.
#[test]
fn a_value_written_back_keeps_its_retry_delay_after_stale_use_cache_hand_outs() {
    let mut e = engine_without_leases();
    let made = NOW - 60_000.0;
    let v = inc_stored(&mut e, ValueKind::AppPage, "/p", &["t"], made, made);
    // Stale by time only: served stale, Next regenerates.
    let mut m = inc(&e, "/p", false, false, NOW);
    let s = inc_reply(&mut e, &mut m, &v, NOW, NOW + 3.0);
    let a = answer(&s);
    assert_eq!(a.served, Served::Stale);
    let own = crate::regen::Own {
        written_back: a.own.written_back,
        written_back_made: a.own.written_back_made,
        ..crate::regen::Own::NONE
    };
    // The regeneration's render reads a `'use cache'` entry tagged `t`, stale by time (made
    // before the page), and then fails.
    e.note_use_cache_answer(
        &["t"],
        crate::lease::Found::Stale,
        crate::lease::Step::ServeStale,
        Millis(made - 1_000.0),
        Millis(NOW + 100.0),
    );
    let desc = inc_desc(ValueKind::AppPage);
    let parts = vec![3u32; desc.part_count()];
    let req = crate::write_machine::WriteRequest::Incremental {
        cache_key: "/p",
        kind: ValueKind::AppPage as u8,
        flags: 0,
        segments: 0,
        tags: &["t"],
        // Next's retry delay for the retained entry.
        revalidate: 30.0,
        expire: 3600.0,
        parts: &parts,
        own,
    };
    let at = Millis(NOW + 500.0);
    let mut w = e.write_start(req, at);
    let header = match e.write_first(&mut w, at) {
        crate::write_machine::WriteStep::Store(s) => s.header,
        other => panic!("expected a store, got {other:?}"),
    };
    let total = header.len() + parts.iter().sum::<u32>() as usize;
    let meta = crate::envelope::decode_header(&header, total).unwrap().meta;
    assert_eq!(
        (meta.timestamp, meta.made_at),
        (Millis(NOW), Some(Millis(made))),
        "stamped {} ms before the read began: due again at once",
        NOW - meta.timestamp.0
    );
}

/// Every lookup this engine counted for `surface`, whatever its outcome.
fn lookups_counted(e: &Engine, surface: Surface) -> Vec<(LookupOutcome, u64)> {
    use LookupOutcome::*;
    [
        Hit,
        Stale,
        Miss,
        Expired,
        ExpiredByTag,
        KeyMismatch,
        Corrupt,
    ]
    .into_iter()
    .map(|o| (o, e.stats().lookups(surface, o)))
    .filter(|&(_, n)| n > 0)
    .collect()
}

/// A read that judges this process's copy, then Redis's reply, is one lookup: the reply's
/// verdict, as it logs one line (`fleetcache.lookups` counts reads, the hit ratio divides by
/// them).
#[test]
fn a_read_judged_on_the_tier_copy_then_on_the_reply_counts_one_lookup() {
    // Past its revalidate in both (a hit for the counters: served, regenerated behind it).
    let mut e = engine();
    let key = e.entry_key(&IFACE, "k");
    let v = uc_value(&e, "k", NOW, 60.0, &[]);
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e7));
    let later = NOW + 120_000.0;
    let mut m = uc(&e, "k", Consumer::Serves, later);
    to_tier(&mut e, &mut m, later);
    let s = go(&mut e, &mut m, ReadInput::Tier(b(&v)), later);
    assert!(matches!(s.action, ReadAction::Get { .. }), "{s:?}");
    go(&mut e, &mut m, ReadInput::Reply(b(&v)), later);
    assert_eq!(
        lookups_counted(&e, Surface::UseCache),
        [(LookupOutcome::Hit, 1)]
    );
    // Expired by a tag in both.
    let mut e = engine();
    let v = uc_value(&e, "k", NOW, 60.0, &["t"]);
    let key = e.entry_key(&IFACE, "k");
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e6));
    e.plan_tag_update(&["t"], &Revalidation::Expire, Millis(NOW + 10.0), "epoch")
        .unwrap();
    let mut m = uc(&e, "k", Consumer::Serves, NOW + 20.0);
    to_tier(&mut e, &mut m, NOW + 20.0);
    go(&mut e, &mut m, ReadInput::Tier(b(&v)), NOW + 20.0);
    go(&mut e, &mut m, ReadInput::Reply(b(&v)), NOW + 20.0);
    assert_eq!(
        lookups_counted(&e, Surface::UseCache),
        [(LookupOutcome::ExpiredByTag, 1)]
    );
}

/// The copy's verdict counts when no reply comes to judge: a failed read serves the copy.
#[test]
fn a_stale_tier_copy_served_after_a_failed_read_counts_one_lookup() {
    let mut e = engine();
    let key = e.entry_key(&IFACE, "k");
    let v = uc_value(&e, "k", NOW, 60.0, &[]);
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e7));
    let later = NOW + 120_000.0;
    let mut m = uc(&e, "k", Consumer::Serves, later);
    to_tier(&mut e, &mut m, later);
    go(&mut e, &mut m, ReadInput::Tier(b(&v)), later);
    let s = go(&mut e, &mut m, ReadInput::Failed(Failure::Timeout), later);
    assert_eq!(answer(&s).source, Source::Kept);
    assert_eq!(
        lookups_counted(&e, Surface::UseCache),
        [(LookupOutcome::Hit, 1)]
    );
    // And with the breaker open when the read would go out.
    let mut e = engine();
    let v = uc_value(&e, "k", NOW, 60.0, &[]);
    e.lru_mut().insert(&key, v.len() as u64, Millis(NOW + 1e7));
    let mut m = uc(&e, "k", Consumer::Serves, later);
    to_tier(&mut e, &mut m, later);
    go(&mut e, &mut m, ReadInput::Tier(b(&v)), later);
    open_breaker(&mut e, later);
    let s = go(
        &mut e,
        &mut m,
        ReadInput::Failed(Failure::CircuitOpen),
        later,
    );
    assert_eq!(answer(&s).source, Source::Kept);
    assert_eq!(
        lookups_counted(&e, Surface::UseCache),
        [(LookupOutcome::Hit, 1)]
    );
}

/// A follower's lease polls are its wait (`fleetcache.lease.waits`), not lookups of their
/// own: the read counts the miss it began with, however many polls it makes.
#[test]
fn a_followers_polls_count_no_lookups() {
    let mut e = engine();
    let mut m = uc(&e, "k", Consumer::Serves, NOW);
    to_get(&mut e, &mut m, NOW);
    go(&mut e, &mut m, ReadInput::Reply(None), NOW);
    go(&mut e, &mut m, ReadInput::LeaseReply(0), NOW);
    let mut at = NOW;
    for _ in 0..5 {
        at += 10.0;
        go(&mut e, &mut m, ReadInput::Timer, at);
        at += 1.0;
        let s = go(
            &mut e,
            &mut m,
            ReadInput::Polled {
                entry: None,
                leased: true,
            },
            at,
        );
        assert!(matches!(s.action, ReadAction::Wait { .. }), "{s:?}");
    }
    let s = go(&mut e, &mut m, ReadInput::Timer, at + 20.0);
    assert!(matches!(s.action, ReadAction::Poll { .. }), "{s:?}");
    let v = uc_value(&e, "k", at, 60.0, &[]);
    let s = go(
        &mut e,
        &mut m,
        ReadInput::Polled {
            entry: b(&v),
            leased: false,
        },
        at + 21.0,
    );
    assert_eq!(answer(&s).served, Served::Fresh);
    assert_eq!(
        lookups_counted(&e, Surface::UseCache),
        [(LookupOutcome::Miss, 1)]
    );
}
