//! The engine with its lease part: tests moved from `lease.rs`, which does not know the engine.

use crate::config::Config;
use crate::engine::Engine;
use crate::keys::Interface;
use crate::lease::*;
use crate::lease::{Acquired, Consumer, EntryWrite, Flight, Found, Step};
use crate::stats::LeaseEvent;
use crate::time::Millis;

const CFG: LeaseConfig = LeaseConfig {
    enabled: true,
    ttl_ms: 10_000.0,
    wait_ms: 1_000.0,
};

#[test]
fn a_follower_regenerates_as_soon_as_a_poll_finds_the_lease_gone() {
    // The holder released without writing; the first poll that sees it
    // ends the wait, long before the budget.
    for (found, consumer) in [
        (Found::Missing, Consumer::Serves),
        (Found::Missing, Consumer::Caches),
        (Found::Stale, Consumer::Caches),
    ] {
        let (mut f, _) = Flight::begin(found, consumer, Millis(0.0), &CFG);
        assert_eq!(f.acquired(Acquired::Lost, Millis(1.0), &CFG), Step::Poll);
        assert_eq!(f.polled(found, true, Millis(11.0), &CFG), Step::Poll);
        assert_eq!(f.polled(found, false, Millis(31.0), &CFG), Step::Released);
    }
    // A write landed with the release: served, whatever the lease.
    let (mut f, _) = Flight::begin(Found::Missing, Consumer::Serves, Millis(0.0), &CFG);
    f.acquired(Acquired::Lost, Millis(1.0), &CFG);
    assert_eq!(
        f.polled(Found::Fresh, false, Millis(11.0), &CFG),
        Step::Serve
    );
    let e = Engine::new(Config::default()).unwrap_or_else(|err| panic!("{err}"));
    let call = e.plan_lease_poll(&Interface::UseCache("default"), "k");
    assert_eq!(call.script.name, "lease_poll");
    assert_eq!(
        call.keys[0],
        e.entry_key(&Interface::UseCache("default"), "k")
    );
    assert!(call.keys[1].ends_with(":l"));
    assert!(call.args.is_empty());
}

#[test]
fn a_held_lease_is_renewed_until_written_released_or_capped() {
    // A holder renews its lease while it renders, up to the cap.
    let mut e = Engine::new(Config {
        lease_ttl_ms: 900.0,
        ..Config::default()
    })
    .unwrap_or_else(|err| panic!("{err}"));
    let iface = Interface::UseCache("default");
    assert_eq!(e.lease_renew_every_ms(), 300.0);
    assert!(e
        .plan_lease_renew(&iface, "k", Millis(0.0), Millis(300.0))
        .is_none());
    e.lease_won(&iface, "k", "tok", Millis(0.0));
    let mut now = 0.0;
    let mut renewals = 0;
    while let Some(call) = e.plan_lease_renew(&iface, "k", Millis(0.0), Millis(now)) {
        assert_eq!(call.script.name, "lease_renew");
        assert_eq!(call.args[0], "tok");
        let px: f64 = call.args[1].parse().unwrap_or(f64::NAN);
        assert!((1.0..=900.0).contains(&px));
        assert!(now + px <= MAX_RENEWED_TTLS * 900.0, "never past the cap");
        e.lease_renewed(&iface, "k", Millis(0.0), Millis(now), true);
        assert!(e.holds_lease(&iface, "k", Millis(now + px - 1.0)));
        renewals += 1;
        assert!(renewals < 100);
        now += e.lease_renew_every_ms();
    }
    assert!(
        now >= (MAX_RENEWED_TTLS - 1.0) * 900.0,
        "renewed up to the cap: {now}"
    );
    assert!(!e.holds_lease(&iface, "k", Millis(MAX_RENEWED_TTLS * 900.0)));
    // The write takes the token: no renewal after the render's end.
    e.lease_won(&iface, "w", "tok", Millis(0.0));
    assert!(e
        .plan_lease_renew(&iface, "w", Millis(0.0), Millis(300.0))
        .is_some());
    assert!(matches!(
        e.plan_entry_write(&iface, "w", 5),
        EntryWrite::WriteAndRelease(_)
    ));
    assert!(e
        .plan_lease_renew(&iface, "w", Millis(0.0), Millis(600.0))
        .is_none());
    // So does a release; and a later holding of the key is not the old timer's.
    e.lease_won(&iface, "r", "tok", Millis(0.0));
    assert!(e.plan_lease_release(&iface, "r").is_some());
    assert!(e
        .plan_lease_renew(&iface, "r", Millis(0.0), Millis(300.0))
        .is_none());
    e.lease_won(&iface, "r", "tok2", Millis(400.0));
    assert!(e
        .plan_lease_renew(&iface, "r", Millis(0.0), Millis(500.0))
        .is_none());
    assert!(e
        .plan_lease_renew(&iface, "r", Millis(400.0), Millis(500.0))
        .is_some());
    // A refused renewal extends nothing; a lapsed lease is not renewed.
    e.lease_renewed(&iface, "r", Millis(400.0), Millis(500.0), false);
    assert!(!e.holds_lease(&iface, "r", Millis(1_300.0)));
    assert!(e
        .plan_lease_renew(&iface, "r", Millis(400.0), Millis(1_300.0))
        .is_none());
}

#[test]
fn lease_requests_get_at_least_the_write_budget() {
    // A lease command has the lease budget, the longer of read and write.
    use crate::guard::OpKind;
    let e = Engine::new(Config::default()).unwrap_or_else(|err| panic!("{err}"));
    assert!(e.budget_ms(OpKind::Lease) >= e.budget_ms(OpKind::Write));
    assert!(e.budget_ms(OpKind::Lease) >= e.budget_ms(OpKind::Read));
    let long_reads = Engine::new(Config {
        read_timeout_ms: 5_000.0,
        ..Config::default()
    })
    .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(long_reads.budget_ms(OpKind::Lease), 5_000.0);
}

#[test]
fn engine_plans_and_releases() {
    let mut e = Engine::new(Config::default()).unwrap();
    let iface = Interface::UseCache("default");
    let call = e
        .plan_lease_acquire(&iface, "k", "tok", Some(Millis(1_795_690_530_000.5)))
        .unwrap();
    assert_eq!(call.keys[0], e.entry_key(&iface, "k"));
    assert_eq!(call.keys[1], e.namespace().lease_key(&iface, "k"));
    assert_eq!(call.args, ["tok", "10000", "1795690530000.5"]);
    assert!(e.plan_lease_acquire(&iface, "k", "", None).is_err());
    assert_eq!(
        e.plan_lease_acquire(&iface, "k", "t", None).unwrap().args[2],
        "-1"
    );
    assert_eq!(e.plan_entry_write(&iface, "k", 5), EntryWrite::Set);
    e.lease_won(&iface, "k", "tok", Millis(0.0));
    assert!(e.holds_lease(&iface, "k", Millis(9_999.0)));
    assert!(!e.holds_lease(&iface, "k", Millis(10_000.0)));
    match e.plan_entry_write(&iface, "k", 5) {
        EntryWrite::WriteAndRelease(c) => {
            assert_eq!(c.script.name, "lease_write");
            assert_eq!(c.args, ["5", "tok"]);
        }
        EntryWrite::Set => panic!("expected the lease write"),
    }
    assert_eq!(e.plan_entry_write(&iface, "k", 5), EntryWrite::Set);
    e.lease_won(&iface, "k", "tok2", Millis(0.0));
    let rel = e.plan_lease_release(&iface, "k").unwrap();
    assert_eq!(rel.args, ["tok2"]);
    assert!(e.plan_lease_release(&iface, "k").is_none());
}

#[test]
fn lease_outcomes_are_counted() {
    let e = Engine::new(Config::default()).unwrap_or_else(|err| panic!("{err}"));
    let (mut won, _) = e.lease_begin(Found::Missing, Consumer::Serves, Millis(0.0));
    assert_eq!(
        e.lease_answered(&mut won, Acquired::Won, Millis(1.0)),
        Step::Regenerate
    );
    let (mut lost, _) = e.lease_begin(Found::Missing, Consumer::Serves, Millis(0.0));
    assert_eq!(
        e.lease_answered(&mut lost, Acquired::Lost, Millis(1.0)),
        Step::Poll
    );
    let late = Millis(e.lease_config().wait_ms + 1.0);
    assert_eq!(
        e.lease_polled(&mut lost, Found::Missing, true, late),
        Step::Fallback
    );
    let (mut released, _) = e.lease_begin(Found::Missing, Consumer::Serves, Millis(0.0));
    e.lease_answered(&mut released, Acquired::Lost, Millis(1.0));
    assert_eq!(
        e.lease_polled(&mut released, Found::Missing, false, Millis(20.0)),
        Step::Released
    );
    // A follower that serves the stale entry as fresh does not wait: not counted.
    let (mut stale, _) = e.lease_begin(Found::Stale, Consumer::Serves, Millis(0.0));
    assert_eq!(
        e.lease_answered(&mut stale, Acquired::Lost, Millis(1.0)),
        Step::ServeAsFresh
    );
    let s = e.stats();
    assert_eq!(s.leases(LeaseEvent::Acquired), 1);
    assert_eq!(s.leases(LeaseEvent::Waited), 2);
    assert_eq!(s.leases(LeaseEvent::WaitTimedOut), 1);
    assert_eq!(s.leases(LeaseEvent::WaitReleased), 1);
}

#[test]
fn with_no_wait_budget_a_follower_on_a_miss_regenerates_at_once_uncounted() {
    let config = Config {
        lease_wait_ms: 0.0,
        ..Config::default()
    };
    let e = Engine::new(config).unwrap_or_else(|err| panic!("{err}"));
    for (found, consumer) in [
        (Found::Missing, Consumer::Serves),
        (Found::Missing, Consumer::Caches),
        (Found::Stale, Consumer::Caches),
    ] {
        let (mut f, step) = e.lease_begin(found, consumer, Millis(0.0));
        assert_eq!(step, Step::Acquire, "a lease is still asked for");
        assert_eq!(
            e.lease_answered(&mut f, Acquired::Lost, Millis(0.0)),
            Step::Fallback
        );
    }
    // A stale entry is still served as fresh while the holder regenerates it once.
    let (mut f, _) = e.lease_begin(Found::Stale, Consumer::Serves, Millis(0.0));
    assert_eq!(
        e.lease_answered(&mut f, Acquired::Lost, Millis(0.0)),
        Step::ServeAsFresh
    );
    let s = e.stats();
    assert_eq!(s.leases(LeaseEvent::Waited), 0);
    assert_eq!(s.leases(LeaseEvent::WaitTimedOut), 0);
}
