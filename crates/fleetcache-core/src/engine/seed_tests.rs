//! The engine with its seed part: tests moved from `seed.rs`, which does not know the engine.

use crate::engine::Engine;
use crate::keys::Interface;
use crate::time::Millis;
use crate::Config;
use proptest::prelude::*;

fn engine() -> Engine {
    Engine::new(Config::default()).unwrap()
}

#[test]
fn plans_the_rest_of_the_lifetime() {
    let e = engine();
    let iface = Interface::Incremental;
    let call = e
        .plan_seed_write(&iface, "/isr", Millis(1000.5), 10_000, Millis(4000.0))
        .unwrap();
    assert_eq!(call.script.name, "seed_write");
    assert_eq!(call.keys, vec![e.entry_key(&iface, "/isr")]);
    assert_eq!(call.args, ["7000", "1000.5"]);
    assert!(crate::scripts::ALL.iter().any(|s| s.sha1() == call.sha1));
    // Expired on arrival: nothing to store.
    assert!(e
        .plan_seed_write(&iface, "/isr", Millis(0.0), 1000, Millis(1000.0))
        .is_none());
    assert!(e
        .plan_seed_write(&iface, "/isr", Millis(f64::NAN), 1000, Millis(1.0))
        .is_none());
}

#[test]
fn stamps_the_build_time_never_a_future_one() {
    let e = engine();
    assert_eq!(
        e.seed_timestamp(Millis(100.0), Millis(200.0)),
        Some(Millis(100.0))
    );
    // Within the two clocks' tolerance: taken, never later than now.
    assert_eq!(
        e.seed_timestamp(Millis(300.0), Millis(200.0)),
        Some(Millis(200.0))
    );
    // A build clock further ahead of the seeder's: no usable time (stamping `now` would pass
    // revalidations that came after the real build).
    assert_eq!(e.seed_timestamp(Millis(5_000.0), Millis(200.0)), None);
    assert_eq!(e.seed_timestamp(Millis(f64::INFINITY), Millis(1.0)), None);
    assert_eq!(e.seed_timestamp(Millis(0.0), Millis(1.0)), None);
}

proptest! {
    #[test]
    fn px_is_what_is_left_and_the_stamp_reads_back(
        created in 1.0f64..2e12,
        age in 0.0f64..1e10,
        ttl in 0u64..10_000_000_000,
    ) {
        let e = engine();
        let now = Millis(created + age);
        match e.plan_seed_write(&Interface::Incremental, "k", Millis(created), ttl, now) {
            None => prop_assert!((ttl as f64) - (now.0 - created).max(0.0) < 1.0),
            Some(call) => {
                let px: u64 = call.args[0].parse().unwrap();
                prop_assert!(px >= 1);
                prop_assert!(px as f64 <= ttl as f64 - (now.0 - created).max(0.0));
                let back: f64 = call.args[1].parse().unwrap();
                prop_assert_eq!(back.to_bits(), created.to_bits());
            }
        }
    }
}
