//! The engine with its guard part: tests moved from `guard.rs`, which does not know the engine.

use crate::breaker::{BreakerState, CallResult};
use crate::config::Config;
use crate::engine::Engine;
use crate::error::PlanError;
use crate::guard::{Admission, OpKind};
use crate::tags::Freshness;
use crate::tags::Revalidation;
use crate::time::Millis;

const NOW: f64 = 1_795_690_530_000.0;

fn engine(outbox_capacity: u32) -> Engine {
    Engine::new(Config {
        prefix: "fc".into(),
        outbox_capacity,
        ..Config::default()
    })
    .unwrap()
}

#[test]
fn budgets_come_from_the_config() {
    let mut e = Engine::new(Config {
        read_timeout_ms: 123.0,
        write_timeout_ms: 456.0,
        connect_timeout_ms: 789.0,
        ..Config::default()
    })
    .unwrap();
    assert_eq!(e.budget_ms(OpKind::Read), 123.0);
    assert_eq!(e.connect_budget_ms(), 789.0);
    match e.admit(OpKind::Write, Millis(NOW)) {
        Admission::Send { budget_ms, permit } => {
            assert_eq!(budget_ms, 456.0);
            assert!(!permit.is_probe());
        }
        Admission::Skip => panic!("closed breaker skipped"),
    }
}

#[test]
fn open_breaker_skips_everything_until_the_probe() {
    let mut e = engine(10);
    for _ in 0..5 {
        let Admission::Send { permit, .. } = e.admit(OpKind::Read, Millis(NOW)) else {
            panic!()
        };
        e.report(permit, CallResult::Timeout, Millis(NOW));
    }
    assert_eq!(e.breaker_state(Millis(NOW)), BreakerState::Open);
    assert_eq!(e.admit(OpKind::Read, Millis(NOW + 10.0)), Admission::Skip);
    assert_eq!(e.admit(OpKind::Write, Millis(NOW + 10.0)), Admission::Skip);
    assert!(matches!(
        e.admit(OpKind::Read, Millis(NOW + 1000.0)),
        Admission::Send { permit, .. } if permit.is_probe()
    ));
    assert_eq!(e.breaker().trips(), 1);
}

#[test]
fn outbox_replays_in_order_with_the_original_times() {
    let mut e = engine(2);
    assert_eq!(e.plan_outbox_head("ep").unwrap(), None);
    e.queue_tag_update(&["a"], &Revalidation::Expire, Millis(NOW))
        .unwrap();
    // Applied locally at once, before Redis hears of it.
    assert_eq!(
        e.mirror().evaluate(Millis(NOW - 1.0), ["a"], Millis(NOW)),
        Freshness::Expired
    );
    e.queue_tag_update(&["b"], &Revalidation::Expire, Millis(NOW + 5.0))
        .unwrap();
    let dropped = e
        .queue_tag_update(&["c"], &Revalidation::Expire, Millis(NOW + 9.0))
        .unwrap()
        .unwrap();
    assert_eq!(dropped.tags, ["a"]);
    assert_eq!(e.outbox().dropped(), 1);
    let (seq, call) = e.plan_outbox_head("ep").unwrap().unwrap();
    assert_eq!(call.args[0], (NOW as u64 + 5).to_string());
    assert_eq!(call.args[5], "b");
    assert_eq!(
        call.keys,
        [
            "fc:tags:{fc}:state",
            "fc:tags:{fc}:log",
            "fc:tags:{fc}:meta"
        ]
    );
    assert!(e.ack_outbox(seq));
    assert!(!e.ack_outbox(seq));
    let (_, call) = e.plan_outbox_head("ep").unwrap().unwrap();
    assert_eq!(call.args[5], "c");
    // The local mirror still has the dropped revalidation.
    assert_eq!(
        e.mirror()
            .evaluate(Millis(NOW - 1.0), ["a"], Millis(NOW + 10.0)),
        Freshness::Expired
    );
}

#[test]
fn queue_refuses_bad_input() {
    let mut e = engine(4);
    let rev = Revalidation::Expire;
    assert_eq!(
        e.queue_tag_update(&[], &rev, Millis(NOW)),
        Err(PlanError::NoTags)
    );
    let long = "x".repeat(crate::tags::MAX_TAG_BYTES + 1);
    assert_eq!(
        e.queue_tag_update(&[&long], &rev, Millis(NOW)),
        Err(PlanError::TagLimit)
    );
    assert_eq!(
        e.queue_tag_update(&["a"], &rev, Millis(f64::NAN)),
        Err(PlanError::InvalidTime)
    );
    assert_eq!(e.outbox().len(), 0);
    assert!(e.mirror().is_empty());
    e.queue_tag_update(&["a"], &rev, Millis(NOW)).unwrap();
    assert_eq!(e.plan_outbox_head(""), Err(PlanError::InvalidEpoch));
}
