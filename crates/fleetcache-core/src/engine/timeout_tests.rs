//! The host's one timer ([`Engine::poll_timeout`], [`Engine::handle_timeout`]): the pull
//! timer's time and the retry's, both the engine's, the host keeping only the timer.

use crate::breaker::{BreakerState, CallResult};
use crate::engine::{Engine, Wake};
use crate::guard::{Admission, OpKind};
use crate::netstring;
use crate::outbox::MIN_RETRY_MS;
use crate::tags::Revalidation;
use crate::time::Millis;

use super::tests::shared_engine;

const NOW: f64 = 1_795_690_530_000.0;

/// A pull planned at `at` and applied 1 ms later (the state of epoch `E`, version 1).
fn pull(e: &mut Engine, at: f64) {
    e.plan_tag_pull(Millis(at));
    let full = if e.mirror().is_synced() { "0" } else { "1" };
    let mut items = vec!["E", "1", "v1", full, "0", ""];
    if full == "1" {
        items.push("0");
    }
    e.apply_refresh(&netstring::encode(items), Millis(at + 1.0))
        .unwrap();
}

/// Pulling per request (no push), the state loaded at `NOW`.
fn pulling_engine() -> Engine {
    let mut e = shared_engine();
    pull(&mut e, NOW - 1.0);
    e
}

/// Following by push (1 s bound), caught up by the pull started at `NOW`.
fn push_engine() -> Engine {
    let mut e = shared_engine();
    e.follow_tags_by_push(1000.0).unwrap();
    e.tag_channel_up();
    pull(&mut e, NOW);
    assert!(e.tags_caught_up(Millis(NOW + 1.0)));
    e
}

/// The wake `poll_timeout` gives at `now`, as ms from `now`.
fn wake_in(e: &mut Engine, now: f64) -> Option<(f64, Wake)> {
    e.poll_timeout(Millis(now)).map(|(at, w)| (at.0 - now, w))
}

/// Opens the breaker at `now` (five failed reads).
fn open_breaker(e: &mut Engine, now: f64) {
    for _ in 0..5 {
        let Admission::Send { permit, .. } = e.admit(OpKind::Read, Millis(now)) else {
            panic!("a closed breaker admits");
        };
        e.report(permit, CallResult::Failure, Millis(now));
    }
    assert_eq!(e.breaker_state(Millis(now)), BreakerState::Open);
}

#[test]
fn no_timer_when_nothing_waits() {
    let mut e = pulling_engine();
    assert_eq!(wake_in(&mut e, NOW + 10.0), None);
    assert_eq!(e.handle_timeout(Millis(NOW + 10.0)), None);
    // Following by push and not caught up (channel down): requests pull, no timer.
    let mut e = push_engine();
    e.tag_channel_down();
    assert_eq!(wake_in(&mut e, NOW + 10.0), None);
}

#[test]
fn the_periodic_pull_is_the_timers_when_nothing_else_waits() {
    let mut e = push_engine();
    assert_eq!(wake_in(&mut e, NOW + 1.0), Some((799.0, Wake::Pull)));
    assert_eq!(e.handle_timeout(Millis(NOW + 799.0)), None, "early");
    assert_eq!(e.handle_timeout(Millis(NOW + 800.0)), Some(Wake::Pull));
    // Still due until a pull is planned: handing it out moves nothing.
    assert_eq!(e.handle_timeout(Millis(NOW + 800.5)), Some(Wake::Pull));
    e.plan_tag_pull(Millis(NOW + 800.5));
    assert_eq!(wake_in(&mut e, NOW + 801.0), None, "a pull is out");
}

#[test]
fn the_breakers_probe_is_the_retrys_time() {
    let mut e = pulling_engine();
    open_breaker(&mut e, NOW);
    let probe = e.breaker().next_probe_at().unwrap().0;
    // The host arms the retry when the breaker trips (the transport's onTrip).
    e.arm_retry(Millis(NOW));
    assert_eq!(
        e.poll_timeout(Millis(NOW)),
        Some((Millis(probe), Wake::Retry))
    );
    assert_eq!(e.handle_timeout(Millis(probe - 1.0)), None);
    assert_eq!(e.handle_timeout(Millis(probe)), Some(Wake::Retry));
    assert_eq!(
        wake_in(&mut e, probe),
        None,
        "handed out once: the host arms it again if the probe fails"
    );
}

#[test]
fn the_outbox_backoff_is_the_retrys_time() {
    let mut e = pulling_engine();
    e.queue_tag_update(&["a"], &Revalidation::Expire, Millis(NOW))
        .unwrap();
    for _ in 0..3 {
        e.fail_outbox(1, Millis(NOW));
    }
    let backoff = e.outbox().retry_in(Millis(NOW));
    assert!(backoff > MIN_RETRY_MS, "{backoff}");
    e.arm_retry(Millis(NOW));
    assert_eq!(wake_in(&mut e, NOW), Some((backoff, Wake::Send)));
    // Armed again later for a later time: the armed one stays.
    e.arm_retry(Millis(NOW + 50.0));
    assert_eq!(wake_in(&mut e, NOW), Some((backoff, Wake::Send)));
}

#[test]
fn a_retry_with_only_a_send_to_do_pulls_nothing() {
    // Armed for a revalidation whose send failed: the tag state has nothing to pull for it.
    let send_failed = |e: &mut Engine| {
        e.queue_tag_update(&["a"], &Revalidation::Expire, Millis(NOW))
            .unwrap();
        e.fail_outbox(1, Millis(NOW));
        e.arm_retry(Millis(NOW));
        wake_in(e, NOW).unwrap().0
    };
    let mut e = pulling_engine();
    let at = NOW + send_failed(&mut e);
    assert_eq!(e.handle_timeout(Millis(at)), Some(Wake::Send));
    assert_eq!(wake_in(&mut e, at), None, "handed out once");
    // A failed pull as well: the retry pulls.
    let mut e = pulling_engine();
    let at = NOW + send_failed(&mut e);
    e.plan_tag_pull(Millis(NOW + 1.0));
    e.tag_pull_failed(Millis(NOW + 2.0));
    assert_eq!(e.handle_timeout(Millis(at)), Some(Wake::Retry));
    // The breaker not closed: the retry is its probe, a pull.
    let mut e = pulling_engine();
    send_failed(&mut e);
    open_breaker(&mut e, NOW);
    let (ms, wake) = wake_in(&mut e, NOW).unwrap();
    assert_eq!(wake, Wake::Retry);
    assert_eq!(e.handle_timeout(Millis(NOW + ms)), Some(Wake::Retry));
    // The mirror not synced (the state never loaded, a load left to run): the retry pulls.
    let mut e = shared_engine();
    let at = NOW + send_failed(&mut e);
    assert_eq!(e.handle_timeout(Millis(at)), Some(Wake::Retry));
    // Following by push: the retry before the periodic pull (at 802) sends only; one that
    // wakes with the pull time come (a late timer) is one wake, which pulls.
    let push_send_failed = || {
        let mut e = push_engine();
        e.queue_tag_update(&["a"], &Revalidation::Expire, Millis(NOW + 1.0))
            .unwrap();
        pull(&mut e, NOW + 2.0);
        e.fail_outbox(1, Millis(NOW + 600.0));
        e.arm_retry(Millis(NOW + 600.0));
        assert_eq!(wake_in(&mut e, NOW + 600.0), Some((100.0, Wake::Send)));
        e
    };
    let mut e = push_send_failed();
    assert_eq!(e.handle_timeout(Millis(NOW + 700.0)), Some(Wake::Send));
    let mut e = push_send_failed();
    assert_eq!(e.handle_timeout(Millis(NOW + 802.0)), Some(Wake::Retry));
    e.plan_tag_pull(Millis(NOW + 802.0));
    assert_eq!(e.handle_timeout(Millis(NOW + 802.0)), None, "one pull");
}

#[test]
fn a_retry_armed_for_records_to_give_back_stays_armed_and_only_sends() {
    // A flush lost b's record; the merge giving it back fails with Redis answering (an error
    // reply: the breaker stays closed) and the host arms the retry for it. Nothing else waits:
    // no pull failed, the mirror synced, the outbox empty. Disarmed, the record would reach
    // Redis only after the next request's pull.
    let mut e = shared_engine();
    let full = |epoch: &str, record: &[&str]| {
        let mut items = vec![epoch, "1", "v1", "1", "0", "", "0"];
        items.extend_from_slice(record);
        netstring::encode(items)
    };
    e.plan_tag_pull(Millis(NOW));
    // An expiry 100 ms before NOW (a record far older would be pruned, not given back).
    let b = "1795690529900,1795690529900,0,0,1795690529900";
    e.apply_refresh(&full("E", &["b", b]), Millis(NOW)).unwrap();
    e.plan_tag_pull(Millis(NOW + 10.0));
    e.apply_refresh(&full("F", &[]), Millis(NOW + 10.0))
        .unwrap();
    assert!(e.mirror().is_synced());
    assert_eq!(e.resend_len(), 1, "b's record to give back");
    assert!(
        e.plan_resend("c").unwrap().is_some(),
        "the merge goes out, and fails"
    );
    e.arm_retry(Millis(NOW + 20.0));
    assert_eq!(wake_in(&mut e, NOW + 20.0), Some((1000.0, Wake::Send)));
    assert_eq!(
        e.handle_timeout(Millis(NOW + 1020.0)),
        Some(Wake::Send),
        "the merge is retried, and nothing is pulled for it"
    );
}

#[test]
fn a_send_that_finds_another_state_owes_a_pull() {
    // The retry only sent: its update reached a state other than the one the mirror follows
    // (a failover, a flush). Only a pull compares that state with the mirror and gives back
    // what it lost; an idle process would otherwise wait for its next request.
    let mut e = pulling_engine();
    e.queue_tag_update(&["a"], &Revalidation::Expire, Millis(NOW))
        .unwrap();
    e.fail_outbox(1, Millis(NOW));
    e.arm_retry(Millis(NOW));
    let (ms, _) = wake_in(&mut e, NOW).unwrap();
    assert_eq!(e.handle_timeout(Millis(NOW + ms)), Some(Wake::Send));
    e.ack_outbox(1);
    e.apply_update_reply(&netstring::encode(["F", "1", "v1", "0"]))
        .unwrap();
    assert_eq!(
        wake_in(&mut e, NOW + ms),
        Some((1000.0, Wake::Retry)),
        "the retry, armed for the pull"
    );
    // The same state: nothing owed.
    let mut e = pulling_engine();
    e.queue_tag_update(&["a"], &Revalidation::Expire, Millis(NOW))
        .unwrap();
    e.ack_outbox(1);
    e.apply_update_reply(&netstring::encode(["E", "2", "v2", "0"]))
        .unwrap();
    assert_eq!(wake_in(&mut e, NOW), None);
}

#[test]
fn a_failed_pull_is_retried_on_the_retry_when_pulling_per_request() {
    let mut e = pulling_engine();
    e.plan_tag_pull(Millis(NOW + 10.0));
    e.tag_pull_failed(Millis(NOW + 20.0));
    // Armed by the first poll after the failure, from then: the plain 1 s.
    assert_eq!(wake_in(&mut e, NOW + 20.0), Some((1000.0, Wake::Retry)));
    assert_eq!(wake_in(&mut e, NOW + 500.0), Some((520.0, Wake::Retry)));
}

#[test]
fn a_pull_that_succeeds_disarms_a_retry_nothing_else_needs() {
    // A failed pull armed the retry; a request's pull then succeeds: nothing is left for the
    // retry to answer, and its wake would be one more pull per recovery.
    let mut e = pulling_engine();
    e.plan_tag_pull(Millis(NOW + 10.0));
    e.tag_pull_failed(Millis(NOW + 20.0));
    assert_eq!(wake_in(&mut e, NOW + 20.0), Some((1000.0, Wake::Retry)));
    pull(&mut e, NOW + 600.0);
    assert_eq!(wake_in(&mut e, NOW + 700.0), None);
    assert_eq!(e.handle_timeout(Millis(NOW + 1020.0)), None);
    // The breaker's probe: a request's command succeeded as the probe and closed it.
    let mut e = pulling_engine();
    open_breaker(&mut e, NOW);
    e.arm_retry(Millis(NOW));
    let probe = e.breaker().next_probe_at().unwrap().0;
    let Admission::Send { permit, .. } = e.admit(OpKind::Read, Millis(probe)) else {
        panic!("the probe is admitted");
    };
    e.report(permit, CallResult::Success, Millis(probe + 1.0));
    assert_eq!(e.breaker_state(Millis(probe + 1.0)), BreakerState::Closed);
    assert_eq!(wake_in(&mut e, probe + 1.0), None);
}

#[test]
fn a_pull_that_succeeds_leaves_the_retry_armed_for_what_still_waits() {
    // A failed pull armed the retry while a revalidation waits its send's backoff: the pull
    // that succeeds answers the first, not the second.
    let mut e = pulling_engine();
    e.queue_tag_update(&["a"], &Revalidation::Expire, Millis(NOW))
        .unwrap();
    e.fail_outbox(1, Millis(NOW));
    e.plan_tag_pull(Millis(NOW + 10.0));
    e.tag_pull_failed(Millis(NOW + 20.0));
    let (at, _) = wake_in(&mut e, NOW + 20.0).unwrap();
    pull(&mut e, NOW + 30.0);
    assert_eq!(
        wake_in(&mut e, NOW + 40.0).map(|(ms, _)| ms),
        Some(at - 20.0)
    );
    // Sent (by a later revalidation's drain) before the retry's time: nothing waits.
    e.ack_outbox(1);
    assert_eq!(wake_in(&mut e, NOW + 50.0), None);
    // Not synced (a load left to run after a merge): the retry stays for the pull.
    let mut e = shared_engine();
    e.arm_retry(Millis(NOW));
    assert_eq!(wake_in(&mut e, NOW), Some((1000.0, Wake::Retry)));
}

#[test]
fn a_failed_pull_is_retried_at_the_pull_time_after_its_backoff_while_caught_up() {
    let mut e = push_engine();
    // A revalidation of this process's own: its pull is due at once, and fails.
    e.queue_tag_update(&["a"], &Revalidation::Expire, Millis(NOW + 100.0))
        .unwrap();
    assert_eq!(e.handle_timeout(Millis(NOW + 100.5)), Some(Wake::Pull));
    e.plan_tag_pull(Millis(NOW + 101.0));
    e.tag_pull_failed(Millis(NOW + 110.0));
    assert_eq!(
        wake_in(&mut e, NOW + 110.0),
        Some((100.0, Wake::Pull)),
        "the backoff from the failure, at the pull time: no retry armed"
    );
    // The second failure in a row: 200 ms.
    e.plan_tag_pull(Millis(NOW + 210.0));
    e.tag_pull_failed(Millis(NOW + 220.0));
    assert_eq!(wake_in(&mut e, NOW + 220.0), Some((200.0, Wake::Pull)));
}

#[test]
fn a_failed_pull_left_to_the_pull_time_goes_to_the_retry_when_there_is_none() {
    let mut e = push_engine();
    e.plan_tag_pull(Millis(NOW + 800.0));
    e.tag_pull_failed(Millis(NOW + 810.0));
    assert_eq!(wake_in(&mut e, NOW + 810.0), Some((100.0, Wake::Pull)));
    // The channel goes down: no pull time, and nothing else would ask Redis again.
    e.tag_channel_down();
    assert_eq!(wake_in(&mut e, NOW + 850.0), Some((1000.0, Wake::Retry)));
    // Armed once: asking again does not put it off.
    assert_eq!(wake_in(&mut e, NOW + 900.0), Some((950.0, Wake::Retry)));
    // The same when the bound passes before the pull time (a late timer).
    let mut e = push_engine();
    e.plan_tag_pull(Millis(NOW + 800.0));
    e.tag_pull_failed(Millis(NOW + 810.0));
    assert_eq!(wake_in(&mut e, NOW + 810.0), Some((100.0, Wake::Pull)));
    assert_eq!(
        e.handle_timeout(Millis(NOW + 1000.0)),
        None,
        "past the bound"
    );
    assert_eq!(wake_in(&mut e, NOW + 1000.0), Some((1000.0, Wake::Retry)));
}

#[test]
fn the_earliest_wins_and_a_tie_is_the_retrys() {
    let mut e = push_engine();
    // The periodic pull at 800; a send's backoff (100 ms) sooner.
    e.queue_tag_update(&["a"], &Revalidation::Expire, Millis(NOW + 10.0))
        .unwrap();
    e.plan_tag_pull(Millis(NOW + 11.0));
    e.apply_refresh(
        &netstring::encode(["E", "1", "v1", "0", "0", ""]),
        Millis(NOW + 12.0),
    )
    .unwrap();
    e.fail_outbox(1, Millis(NOW + 20.0));
    e.arm_retry(Millis(NOW + 20.0));
    assert_eq!(wake_in(&mut e, NOW + 20.0), Some((100.0, Wake::Send)));
    assert_eq!(e.handle_timeout(Millis(NOW + 120.0)), Some(Wake::Send));
    // The periodic pull (11 + 800) next.
    assert_eq!(wake_in(&mut e, NOW + 120.0), Some((691.0, Wake::Pull)));
    // A retry armed for the very ms of the pull time: one wake, the retry's (it pulls).
    let mut e = push_engine();
    e.queue_tag_update(&["a"], &Revalidation::Expire, Millis(NOW + 100.0))
        .unwrap();
    e.plan_tag_pull(Millis(NOW + 101.0));
    e.tag_pull_failed(Millis(NOW + 110.0));
    assert_eq!(wake_in(&mut e, NOW + 110.0), Some((100.0, Wake::Pull)));
    e.fail_outbox(1, Millis(NOW + 110.0));
    e.arm_retry(Millis(NOW + 110.0));
    assert_eq!(wake_in(&mut e, NOW + 110.0), Some((100.0, Wake::Retry)));
    assert_eq!(e.handle_timeout(Millis(NOW + 210.0)), Some(Wake::Retry));
    e.plan_tag_pull(Millis(NOW + 210.0));
    assert_eq!(e.handle_timeout(Millis(NOW + 210.0)), None, "one pull");
}

/// xorshift64: a fixed sequence, no dependency.
struct Draw(u64);

impl Draw {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A command out: when its reply (or failure) comes, and its permit (`None`: the breaker kept
/// it from Redis, it fails at once).
struct Out {
    at: f64,
    permit: Option<crate::breaker::Permit>,
}

/// The host, as js-host/src/tag-sync.ts is, reduced to what moves the timer: one timer whose
/// time is the engine's, one pull and one send out at a time, the retry armed where the host
/// arms it. Its timers run late (up to 3 ms) or early (half a ms, as Node's cached clock does).
struct Host {
    e: Engine,
    now: f64,
    draw: Draw,
    /// The time the timer was set for, and when it runs.
    timer: Option<(f64, f64)>,
    pull: Option<Out>,
    /// A retry waits for the pull out, then sends and arms again while something waits.
    retry_after_pull: bool,
    send: Option<(Out, u64)>,
    redis_up: bool,
    /// Something that calls for a pull happened since the last one started.
    reason: bool,
    /// The retry was armed (or a pull failed) since the last retry.
    retry_reason: bool,
    last_pull: f64,
    pulls: u32,
    /// Pulls, retries that pull, retries that send only.
    wakes: [u32; 3],
    failed_pulls: u32,
    /// The last pull failed (no pull succeeded since).
    last_failed: bool,
}

impl Host {
    fn poll(&mut self) {
        match self.e.poll_timeout(Millis(self.now)) {
            None => self.timer = None,
            Some((at, _)) if self.timer.is_some_and(|(set, _)| set == at.0) => {}
            Some((at, _)) => {
                let late = [-0.5, 0.0, 1.0, 2.0, 3.0][self.draw.next(5) as usize];
                self.timer = Some((at.0, (at.0 + late).max(self.now)));
            }
        }
    }

    fn admit(&mut self, kind: OpKind) -> Option<crate::breaker::Permit> {
        match self.e.admit(kind, Millis(self.now)) {
            Admission::Send { permit, .. } => Some(permit),
            Admission::Skip => None,
        }
    }

    fn start_pull(&mut self, by_wake: Option<Wake>) {
        if by_wake == Some(Wake::Retry) {
            assert!(
                std::mem::take(&mut self.retry_reason),
                "at {}: a retry nothing armed",
                self.now
            );
        }
        if self.pull.is_some() {
            return;
        }
        if by_wake == Some(Wake::Pull) {
            assert!(
                self.reason || self.now >= self.last_pull + 800.0,
                "at {}: a second pull for one answer (the last at {})",
                self.now,
                self.last_pull
            );
        }
        self.reason = false;
        self.last_pull = self.now;
        self.pulls += 1;
        self.drain();
        self.e.plan_tag_pull(Millis(self.now));
        let permit = self.admit(OpKind::Read);
        let at = self.now
            + if permit.is_some() {
                1.0 + self.draw.next(150) as f64
            } else {
                0.0
            };
        self.pull = Some(Out { at, permit });
    }

    /// The outcome of a command admitted with `permit`, now; true when it succeeded.
    fn outcome(&mut self, permit: Option<crate::breaker::Permit>) -> bool {
        let Some(permit) = permit else { return false };
        let result = if self.redis_up {
            CallResult::Success
        } else {
            CallResult::Failure
        };
        let changed = self.e.report(permit, result, Millis(self.now));
        // The transport's onTrip: the breaker opened.
        if changed && self.e.breaker_state(Millis(self.now)) == BreakerState::Open {
            self.arm();
        }
        self.redis_up
    }

    fn arm(&mut self) {
        self.reason = true;
        self.retry_reason = true;
        self.e.arm_retry(Millis(self.now));
    }

    fn pull_done(&mut self, out: Out) {
        if self.outcome(out.permit) {
            let full = if self.e.mirror().is_synced() {
                "0"
            } else {
                "1"
            };
            let mut items = vec!["E", "1", "v1", full, "0", ""];
            if full == "1" {
                items.push("0");
            }
            self.e
                .apply_refresh(&netstring::encode(items), Millis(self.now))
                .unwrap();
            self.last_failed = false;
        } else {
            self.failed_pulls += 1;
            self.last_failed = true;
            self.reason = true;
            self.retry_reason = true;
            self.e.tag_pull_failed(Millis(self.now));
        }
        if std::mem::take(&mut self.retry_after_pull) {
            self.drain();
            let open = self.e.breaker_state(Millis(self.now)) != BreakerState::Closed;
            if open || !self.e.outbox().is_empty() {
                self.arm();
            }
        }
    }

    fn drain(&mut self) {
        if self.send.is_some() || self.e.outbox().is_empty() {
            return;
        }
        if self.e.outbox().retry_in(Millis(self.now)) > 0.0 {
            self.arm();
            return;
        }
        let seq = self.e.outbox().head().unwrap().seq;
        let permit = self.admit(OpKind::Write);
        let at = self.now
            + if permit.is_some() {
                1.0 + self.draw.next(50) as f64
            } else {
                0.0
            };
        self.send = Some((Out { at, permit }, seq));
    }

    fn send_done(&mut self, out: Out, seq: u64) {
        if self.outcome(out.permit) {
            self.e.ack_outbox(seq);
            self.drain();
        } else {
            self.e.fail_outbox(seq, Millis(self.now));
            self.arm();
        }
    }

    /// What happens at `now`, in the order the host would see it.
    fn step(&mut self) {
        if self.pull.as_ref().is_some_and(|o| o.at <= self.now) {
            let out = self.pull.take().unwrap();
            self.pull_done(out);
            self.poll();
        }
        if self.send.as_ref().is_some_and(|(o, _)| o.at <= self.now) {
            let (out, seq) = self.send.take().unwrap();
            self.send_done(out, seq);
            self.poll();
        }
        match self.draw.next(2000) {
            0..=3 => {
                self.reason = true;
                self.e
                    .queue_tag_update(&["t"], &Revalidation::Expire, Millis(self.now))
                    .unwrap();
                self.poll();
                self.drain();
            }
            4 => self.redis_up = !self.redis_up,
            5 if self.e.tags_caught_up(Millis(self.now)) => {
                self.reason = true;
                self.e.tag_channel_down();
                self.poll();
            }
            6 => {
                self.reason = true;
                self.e.tag_channel_up();
                self.start_pull(None);
                self.poll();
            }
            _ => {}
        }
        if self.timer.is_some_and(|(_, runs)| runs <= self.now) {
            self.timer = None;
            match self.e.handle_timeout(Millis(self.now)) {
                Some(Wake::Pull) => {
                    self.wakes[0] += 1;
                    self.start_pull(Some(Wake::Pull));
                }
                Some(Wake::Retry) => {
                    self.wakes[1] += 1;
                    // A pull or a send since it was armed may have done what it was for; a
                    // retry left only a send to do pulls nothing.
                    let closed = self.e.breaker_state(Millis(self.now)) == BreakerState::Closed;
                    assert!(
                        self.last_failed || !self.e.outbox().is_empty() || !closed,
                        "at {}: a retry with nothing left to do",
                        self.now
                    );
                    assert!(
                        self.last_failed
                            || !closed
                            || self
                                .e
                                .tag_pull_timeout(Millis(self.now))
                                .is_some_and(|p| p.0 <= self.now),
                        "at {}: a retry that pulls with only a send to do",
                        self.now
                    );
                    self.retry_after_pull = true;
                    self.start_pull(Some(Wake::Retry));
                }
                Some(Wake::Send) => {
                    self.wakes[2] += 1;
                    assert!(
                        std::mem::take(&mut self.retry_reason),
                        "at {}: a retry nothing armed",
                        self.now
                    );
                    assert!(
                        !self.e.outbox().is_empty(),
                        "at {}: a send with nothing to send",
                        self.now
                    );
                    self.drain();
                }
                None => {}
            }
            self.poll();
            // No 0 ms loop: what the wake did (or nothing due) leaves no time already come.
            assert!(
                self.timer.map_or(true, |(at, _)| at > self.now),
                "at {}: the timer set again for {:?}, a time come",
                self.now,
                self.timer
            );
        }
    }

    /// Never no timer while something waits (a failed pull's retry, a revalidation queued, the
    /// breaker's probe, a pull due) and nothing is out to move it.
    fn check(&self) {
        if self.pull.is_some() || self.send.is_some() {
            return;
        }
        let waits = self.last_failed
            || !self.e.outbox().is_empty()
            || self.e.breaker_state(Millis(self.now)) != BreakerState::Closed
            || self.e.tag_pull_timeout(Millis(self.now)).is_some();
        assert!(
            !waits || self.timer.is_some(),
            "at {}: no timer, the last pull failed {}, {} queued, the breaker {:?}, the pull time {:?}",
            self.now,
            self.last_failed,
            self.e.outbox().len(),
            self.e.breaker_state(Millis(self.now)),
            self.e.tag_pull_timeout(Millis(self.now))
        );
    }
}

/// 60 s of a push follower driven only by the engine's one timeout (late and early timers),
/// Redis going down and up, the channel down and up, revalidations made now and then: never
/// no timer while something waits, never a second pull by the timer for one answer.
#[test]
fn the_one_timer_never_leaves_a_wait_unwoken_nor_pulls_twice_for_one_answer() {
    let mut h = Host {
        e: push_engine(),
        now: NOW + 2.0,
        draw: Draw(0x2545_f491_4f6c_dd1d),
        timer: None,
        pull: None,
        retry_after_pull: false,
        send: None,
        redis_up: true,
        reason: false,
        retry_reason: false,
        last_pull: NOW,
        pulls: 0,
        wakes: [0, 0, 0],
        failed_pulls: 0,
        last_failed: false,
    };
    h.e.confirm_plain_redis();
    h.poll();
    while h.now < NOW + 60_000.0 {
        h.step();
        h.check();
        h.now += 0.25 * (1 + h.draw.next(8)) as f64;
    }
    // Every source was there: periodic and learned pulls, retries, failed pulls.
    assert!(h.wakes[0] >= 15, "{:?}", h.wakes);
    assert!(h.wakes[1] >= 30, "{:?}", h.wakes);
    assert!(h.wakes[2] >= 5, "{:?}", h.wakes);
    assert!(h.failed_pulls >= 30, "{}", h.failed_pulls);
    assert!(h.pulls >= 80, "{}", h.pulls);
}
