//! The engine's word on a read's first step ([`Engine::read_asks_tier_first`], which the host
//! follows to offer the tier's bytes with the start, docs/internals.md "AsksTier") against
//! the step the read machine takes ([`ReadInput::Start`]), in every engine state: the two
//! must agree, or the host looks bytes up for nothing, or answers a `PeekTier` it did not
//! offer for with one more call.

use proptest::prelude::*;

use crate::breaker::{BreakerState, CallResult};
use crate::config::Config;
use crate::engine::Engine;
use crate::guard::{Admission, OpKind};
use crate::keys::Interface;
use crate::lease::Consumer;
use crate::netstring;
use crate::read_machine::*;
use crate::time::Millis;

const NOW: f64 = 1_795_690_530_000.0;
const TOKEN: &str = "0123456789abcdef";
const IFACE: Interface<'static> = Interface::UseCache("default");
/// The pull interval the push engines follow with (the breaker's open period is 1 s too).
const PULL_MS: f64 = 1000.0;

/// The reads whose first step is predicted.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `'use cache'`, the host not saying whether it holds a write of the key in flight.
    UseCacheAsksOwnWrite,
    /// `'use cache'`, the host holding no write of the key in flight.
    UseCacheNoOwnWrite,
    /// A singular-handler page or route read.
    Page,
    /// A singular-handler `fetch` read.
    Fetch,
}

const KINDS: [Kind; 4] = [
    Kind::UseCacheAsksOwnWrite,
    Kind::UseCacheNoOwnWrite,
    Kind::Page,
    Kind::Fetch,
];

/// What the tier's index holds of the key read.
#[derive(Clone, Copy, Debug)]
enum Held {
    Absent,
    Plain,
    OutageOnly,
    /// This process's own copy, never written to Redis.
    Local,
    /// A page copy bound to the page generation current when it was marked.
    Bound,
}

const HELD: [Held; 5] = [
    Held::Absent,
    Held::Plain,
    Held::OutageOnly,
    Held::Local,
    Held::Bound,
];

fn read(e: &Engine, kind: Kind, now: f64) -> ReadMachine {
    let (key, is_fetch) = match kind {
        Kind::UseCacheAsksOwnWrite | Kind::UseCacheNoOwnWrite => {
            let mut m = e.read_use_cache(
                &IFACE,
                "k",
                Vec::new(),
                Consumer::Serves,
                TOKEN.to_owned(),
                Millis(now),
            );
            if matches!(kind, Kind::UseCacheNoOwnWrite) {
                m.no_write_in_flight();
            }
            return m;
        }
        Kind::Page => ("/p", false),
        Kind::Fetch => ("f1", true),
    };
    super::read_tests::inc(e, key, is_fetch, false, now)
}

/// The entry key a read of `kind` reads.
fn entry_key(e: &Engine, kind: Kind) -> String {
    match kind {
        Kind::UseCacheAsksOwnWrite | Kind::UseCacheNoOwnWrite => e.entry_key(&IFACE, "k"),
        Kind::Page => e.entry_key(&Interface::Incremental, "/p"),
        Kind::Fetch => e.entry_key(&Interface::Incremental, "f1"),
    }
}

/// Puts `held` in the tier's index under every key the reads read (replacing what is there).
fn hold(e: &mut Engine, held: Held, now: f64) {
    // The generation serving now where page copies serve (bound to it, the copy serves),
    // else any non-zero one.
    let gen = e
        .tag_sync
        .page_view(&e.mirror, Millis(now))
        .map_or(1, |p| p.gen);
    for kind in KINDS {
        let key = entry_key(e, kind);
        let lru = e.lru_mut();
        lru.remove(&key);
        if matches!(held, Held::Absent) {
            continue;
        }
        assert!(lru.insert(&key, 10, Millis(now + 1e6)).is_empty());
        match held {
            Held::Absent | Held::Plain => {}
            Held::OutageOnly => assert!(lru.mark_outage_only(&key)),
            Held::Local => assert!(lru.mark_local(&key)),
            Held::Bound => assert!(lru.bind_page(&key, gen)),
        }
    }
}

/// Whether the prediction and the first step agree for a read of `kind` begun at `now`, and
/// what the step was (the engine is stepped: the caller rebuilds it for the next read).
fn check(e: &mut Engine, kind: Kind, now: f64) -> (bool, ReadAction) {
    let mut m = read(e, kind, now);
    let asks = e.read_asks_tier_first(&m, Millis(now));
    let action = e
        .read_step(&mut m, ReadInput::Start, Millis(now))
        .expect("a new read takes Start")
        .action;
    (asks == (action == ReadAction::PeekTier), action)
}

/// A pull applied at `at`, finding state `E` at `version` after page write `pver` (`w<pver>`).
fn pull(e: &mut Engine, version: u64, pver: u64, at: f64) {
    e.plan_tag_pull(Millis(at));
    let (version, vid, pver, pvid) = (
        version.to_string(),
        format!("v{version}"),
        pver.to_string(),
        format!("w{pver}"),
    );
    let full = if e.mirror().is_synced() { "0" } else { "1" };
    let mut items = vec!["E", &version, &vid, full, &pver, &pvid];
    if full == "1" {
        items.push("0");
    }
    e.apply_refresh(&netstring::encode(items), Millis(at + 1.0))
        .expect("a well-formed pull reply");
}

/// A command admitted at `now` reported with `result`; false when the breaker refused it.
fn call(e: &mut Engine, result: CallResult, now: f64) -> bool {
    match e.admit(OpKind::Read, Millis(now)) {
        Admission::Send { permit, .. } => {
            e.report(permit, result, Millis(now));
            true
        }
        Admission::Skip => false,
    }
}

fn trip(e: &mut Engine, now: f64) {
    for _ in 0..e.config().breaker().failures {
        call(e, CallResult::Failure, now);
    }
    assert_ne!(e.breaker_state(Millis(now)), BreakerState::Closed);
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Age {
    /// Never pulled: the mirror is not synced.
    Never,
    /// Pulled just now.
    Fresh,
    /// Pulled longer ago than the pull interval.
    Old,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Breaker {
    Closed,
    Open,
    /// The open period is over, no probe sent yet.
    HalfOpen,
    /// The open period is over and the probe is in flight.
    Probing,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Gap {
    None,
    /// A tag announcement the mirror could not take: not caught up until the next pull.
    Tags,
    /// A page write announced out of sequence: a new page generation.
    Pages,
}

#[derive(Clone, Copy, Debug)]
struct State {
    push: bool,
    channel_up: bool,
    plain: bool,
    age: Age,
    breaker: Breaker,
    gap: Gap,
    held: Held,
}

fn engine_in(s: State) -> Engine {
    let mut e = Engine::new(Config {
        prefix: "fc".into(),
        deployment: "d1".into(),
        ..Config::default()
    })
    .expect("a valid config");
    if s.push {
        e.follow_tags_by_push(PULL_MS).expect("a valid interval");
    }
    let open_ms = e.config().breaker().open_ms;
    match s.breaker {
        Breaker::Closed => {}
        Breaker::Open => trip(&mut e, NOW - 1.0),
        Breaker::HalfOpen => trip(&mut e, NOW - open_ms - 1.0),
        Breaker::Probing => {
            trip(&mut e, NOW - open_ms - 1.0);
            assert!(matches!(
                e.admit(OpKind::Read, Millis(NOW - 0.5)),
                Admission::Send { .. }
            ));
        }
    }
    if s.channel_up {
        e.tag_channel_up();
    }
    match s.age {
        Age::Never => {}
        Age::Fresh => pull(&mut e, 1, 1, NOW - 10.0),
        Age::Old => pull(&mut e, 1, 1, NOW - 2.0 * PULL_MS),
    }
    // Asked once the subscription is confirmed (the host's CLUSTER SLOTS answer), before or
    // after the pull.
    if s.plain {
        e.confirm_plain_redis();
    }
    match s.gap {
        Gap::None => {}
        Gap::Tags => {
            // Unreadable: a gap (and an error) whatever the mirror.
            let _ = e.apply_announcement(b"not a netstring", Millis(NOW - 5.0));
        }
        Gap::Pages => {
            let msg = netstring::encode(["p", "E", "7", "w7", "fc:other"]);
            let _ = e.apply_announcement(&msg, Millis(NOW - 5.0));
        }
    }
    let expected = match s.breaker {
        Breaker::Closed => BreakerState::Closed,
        Breaker::Open => BreakerState::Open,
        Breaker::HalfOpen | Breaker::Probing => BreakerState::HalfOpen,
    };
    assert_eq!(e.breaker_state(Millis(NOW)), expected, "{s:?}");
    hold(&mut e, s.held, NOW);
    e
}

/// Every combination of the states a read may start in, for every read kind.
#[test]
fn the_predicted_first_step_is_the_machines_in_every_state() {
    let mut states = Vec::new();
    for push in [false, true] {
        for channel_up in [false, true] {
            for plain in [false, true] {
                for age in [Age::Never, Age::Fresh, Age::Old] {
                    for breaker in [
                        Breaker::Closed,
                        Breaker::Open,
                        Breaker::HalfOpen,
                        Breaker::Probing,
                    ] {
                        for gap in [Gap::None, Gap::Tags, Gap::Pages] {
                            for held in HELD {
                                states.push(State {
                                    push,
                                    channel_up,
                                    plain,
                                    age,
                                    breaker,
                                    gap,
                                    held,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    // Which first steps were seen per kind: each side of the prediction is exercised.
    let mut peeks = [0usize; 4];
    let mut others = [0usize; 4];
    let mut caught_up_pages = [0usize; 2];
    for s in states {
        for (i, kind) in KINDS.into_iter().enumerate() {
            let mut e = engine_in(s);
            let caught_up = e.tags_caught_up(Millis(NOW));
            let (agree, action) = check(&mut e, kind, NOW);
            assert!(agree, "{kind:?} in {s:?}: first step {action:?}");
            if action == ReadAction::PeekTier {
                peeks[i] += 1;
            } else {
                others[i] += 1;
            }
            if caught_up && matches!(kind, Kind::Page) {
                caught_up_pages[usize::from(action == ReadAction::PeekTier)] += 1;
            }
        }
    }
    assert!(peeks[1..].iter().all(|&n| n > 0), "{peeks:?}");
    // Asking for its own write first, a 'use cache' read never starts at the tier.
    assert_eq!(peeks[0], 0);
    assert!(others.iter().all(|&n| n > 0), "{others:?}");
    // Caught up, a page read goes both ways (to the tier while page copies may serve, else
    // to Redis).
    assert!(
        caught_up_pages.iter().all(|&n| n > 0),
        "{caught_up_pages:?}"
    );
}

/// An event in an engine's life, after `dt` ms.
#[derive(Clone, Debug)]
enum Ev {
    ChannelUp,
    ChannelDown,
    ConfirmPlain,
    /// A pull finding the next tag version, and page write `pver`.
    Pull {
        pver: u64,
    },
    PullFailed,
    /// A page write's announcement of the key read, as page write `pver`.
    PageAnnounced {
        pver: u64,
    },
    UnreadableAnnouncement,
    Call(u8),
    Hold(u8),
}

fn any_ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        Just(Ev::ChannelUp),
        Just(Ev::ChannelDown),
        Just(Ev::ConfirmPlain),
        (1u64..4).prop_map(|pver| Ev::Pull { pver }),
        Just(Ev::PullFailed),
        (1u64..4).prop_map(|pver| Ev::PageAnnounced { pver }),
        Just(Ev::UnreadableAnnouncement),
        (0u8..3).prop_map(Ev::Call),
        (0u8..5).prop_map(Ev::Hold),
    ]
}

proptest! {
    /// Random lives of an engine (the channel going up and down, pulls, announcements, the
    /// breaker opening, probing and closing, the tier's copy changing), with times that cross
    /// the pull interval and the breaker's open period: after each event, every read kind's
    /// predicted first step is the one it takes.
    #[test]
    fn the_predicted_first_step_is_the_machines_along_any_history(
        push in any::<bool>(),
        evs in proptest::collection::vec((any_ev(), 0u16..1500), 1..40),
    ) {
        let mut e = Engine::new(Config {
            prefix: "fc".into(),
            deployment: "d1".into(),
            ..Config::default()
        })
        .expect("a valid config");
        if push {
            e.follow_tags_by_push(PULL_MS).expect("a valid interval");
        }
        let mut now = NOW;
        let mut version = 0;
        for (ev, dt) in evs {
            now += f64::from(dt);
            match ev {
                Ev::ChannelUp => e.tag_channel_up(),
                Ev::ChannelDown => e.tag_channel_down(),
                Ev::ConfirmPlain => e.confirm_plain_redis(),
                Ev::Pull { pver } => {
                    version += 1;
                    pull(&mut e, version, pver, now);
                }
                Ev::PullFailed => {
                    e.plan_tag_pull(Millis(now));
                    e.tag_pull_failed(Millis(now));
                }
                Ev::PageAnnounced { pver } => {
                    let key = entry_key(&e, Kind::Page);
                    let msg = netstring::encode([
                        "p".to_owned(),
                        "E".to_owned(),
                        pver.to_string(),
                        format!("w{pver}"),
                        key,
                    ]);
                    let _ = e.apply_announcement(&msg, Millis(now));
                }
                Ev::UnreadableAnnouncement => {
                    let _ = e.apply_announcement(b"not a netstring", Millis(now));
                }
                Ev::Call(r) => {
                    let result = [CallResult::Success, CallResult::Failure, CallResult::Timeout];
                    call(&mut e, result[usize::from(r)], now);
                }
                Ev::Hold(h) => hold(&mut e, HELD[usize::from(h)], now),
            }
            for kind in KINDS {
                // A read steps the index (a touch, a drop): judged on the engine as it is,
                // then the next kind on the same engine, as reads follow one another.
                let (agree, action) = check(&mut e, kind, now);
                prop_assert!(agree, "{:?} after {:?}: first step {:?}", kind, ev, action);
            }
        }
    }
}
