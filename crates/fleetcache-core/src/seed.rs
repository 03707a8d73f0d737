//! `fleetcache seed` (docs/decisions/0023): a build's prerendered entries are stored stamped
//! with the time the build produced them, and never over an entry created at or after that
//! time. The comparison runs in Redis ([`SEED_WRITE`]), atomically with the write, so a runtime
//! write that lands between a check and the write cannot be overwritten.

use crate::scripts::ScriptCall;
pub use crate::scripts::SEED_WRITE;
use crate::time::Millis;

/// Reply of [`SEED_WRITE`] when it stored the entry.
pub const SEED_STORED: i64 = 1;
/// Reply of [`SEED_WRITE`] when a newer (or equally new) entry was there and was kept.
pub const SEED_KEPT: i64 = 0;

/// The creation time to stamp on a seeded entry the build wrote at `built_at`: that time, but
/// never later than `now` (a build machine's clock ahead of the seeder's must not make an entry
/// look newer than what the fleet writes meanwhile). `None` for a time that is not a finite,
/// positive number.
pub fn seed_timestamp(built_at: Millis, now: Millis) -> Option<Millis> {
    (built_at.0.is_finite() && built_at.0 > 0.0).then(|| Millis(built_at.0.min(now.0)))
}

/// Plans the write ([`SEED_WRITE`]) at `entry_key` of a seeded entry created at `created`
/// (from [`seed_timestamp`]) whose lifetime, counted from its creation, is `ttl_ms` (the TTL a
/// write at `created` gets). Redis keeps it for what is left of that lifetime at `now`; `None`
/// when nothing is left (the entry would be expired on arrival: not stored).
pub fn plan_write(
    entry_key: String,
    created: Millis,
    ttl_ms: u64,
    now: Millis,
) -> Option<ScriptCall> {
    if !created.0.is_finite() || !now.0.is_finite() {
        return None;
    }
    let age = (now.0 - created.0).max(0.0);
    let left = ttl_ms as f64 - age;
    if left < 1.0 {
        return None;
    }
    Some(ScriptCall {
        script: &SEED_WRITE,
        sha1: SEED_WRITE.sha1(),
        keys: vec![entry_key],
        args: vec![
            (left.floor() as u64).to_string(),
            // Shortest round-trip text of the f64: Lua's tonumber reads the same value, the
            // one the envelope's header holds.
            format!("{}", created.0),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::keys::Interface;
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
        assert_eq!(
            e.seed_timestamp(Millis(300.0), Millis(200.0)),
            Some(Millis(200.0))
        );
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
}
