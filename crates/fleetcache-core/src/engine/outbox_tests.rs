//! The engine with its outbox part: tests moved from `outbox.rs`, which does not know the engine.

use crate::engine::Engine;
use crate::outbox::*;
use crate::tags::Revalidation;
use crate::time::Millis;

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value script: 1b73, on @user_script:1.";

#[test]
fn the_engine_times_the_next_replay() {
    use crate::config::Config;
    let mut e = Engine::new(Config::default()).unwrap();
    let now = Millis(1_795_690_530_000.0);
    // Nothing waits, the breaker is closed: the plain refresh retry.
    assert_eq!(e.retry_in_ms(now), 1000.0);
    e.queue_tag_update(&["a"], &Revalidation::Expire, now)
        .unwrap();
    // Due now: as soon as the timer allows.
    assert_eq!(e.retry_in_ms(now), MIN_RETRY_MS);
    for _ in 0..10 {
        e.fail_outbox(1, now);
    }
    assert_eq!(e.retry_in_ms(now), MAX_RETRY_MS);
    assert_eq!(e.refuse_outbox(1, WRONGTYPE, now), Refusal::Kept);
    assert_eq!(e.refuse_outbox(1, WRONGTYPE, now), Refusal::Kept);
    assert_eq!(
        e.refuse_outbox(1, WRONGTYPE, now),
        Refusal::Parked { first: true }
    );
    assert_eq!(e.stats_snapshot(now).outbox.parked, 1);
    assert_eq!(e.retry_in_ms(now), 1000.0);
}
