//! The engine's side of failure handling (design §5): command budgets, the circuit breaker
//! and the revalidation outbox, as [`Engine`] methods.
//!
//! Per Redis command the host calls [`Engine::admit`] (send it or not, and with which
//! budget), enforces the budget with its own timer, and calls [`Engine::report`] with the
//! outcome. Revalidations go through [`Engine::queue_tag_update`], which applies them to the
//! mirror at once and queues them; the host sends [`Engine::plan_outbox_head`] until the
//! outbox is empty, acknowledging each with [`Engine::ack_outbox`].

use crate::breaker::{Breaker, BreakerState, CallResult, Permit};
use crate::error::PlanError;
use crate::outbox::{Outbox, PendingUpdate};
use crate::plan::Engine;
use crate::scripts::{tag_update_args, ScriptCall, TAG_UPDATE};
use crate::tags::Revalidation;
use crate::time::Millis;

/// Longest epoch candidate accepted (the host sends 32 hex digits).
const MAX_EPOCH_BYTES: usize = 128;

/// What a Redis command does, which decides its budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// On a request's critical path: `GET`, tag refresh.
    Read,
    /// Off it or rare: `SET`, tag update.
    Write,
    /// The lease protocol: acquire, a follower's poll, a renewal. A late answer is not a
    /// cheap miss here: a lease request that times out makes this instance regenerate
    /// beside the holder. So it gets the longer of the read and write budgets: event-loop
    /// lag under concurrent renders must not turn one regeneration into several.
    Lease,
}

/// The decision for one command.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Admission {
    /// Send it, and give up after `budget_ms`; report the outcome with the permit.
    Send {
        /// Permission to report against.
        permit: Permit,
        /// Deadline of the command in ms from now.
        budget_ms: f64,
    },
    /// Do not touch Redis: the breaker is open (a read is a miss, a write is skipped).
    Skip,
}

impl Engine {
    /// Budget of a command of this kind, in ms.
    pub fn budget_ms(&self, kind: OpKind) -> f64 {
        match kind {
            OpKind::Read => self.config().read_timeout_ms,
            OpKind::Write => self.config().write_timeout_ms,
            OpKind::Lease => self
                .config()
                .write_timeout_ms
                .max(self.config().read_timeout_ms),
        }
    }

    /// Budget of a connection attempt that a command may wait for, in ms.
    pub fn connect_budget_ms(&self) -> f64 {
        self.config().connect_timeout_ms
    }

    /// Whether to send a command of `kind` at `now`.
    pub fn admit(&mut self, kind: OpKind, now: Millis) -> Admission {
        self.note_start(now);
        let budget_ms = self.budget_ms(kind);
        match self.breaker.admit(now) {
            Some(permit) => Admission::Send { permit, budget_ms },
            None => Admission::Skip,
        }
    }

    /// Reports the outcome of an admitted command; true when the breaker changed state.
    pub fn report(&mut self, permit: Permit, result: CallResult, now: Millis) -> bool {
        self.stats.record_redis(match result {
            CallResult::Success => crate::stats::RedisResult::Ok,
            CallResult::Failure => crate::stats::RedisResult::ConnectionError,
            CallResult::Timeout => crate::stats::RedisResult::Timeout,
        });
        if result == CallResult::Success {
            // Redis answers: an outbox update that got no reply need not wait its backoff.
            self.outbox.answered();
        }
        let changed = self.breaker.record(permit, result, now);
        if changed && self.breaker.state(now) == BreakerState::Closed {
            self.stats.record_breaker_recovery();
        }
        changed
    }

    /// The breaker (state, counters).
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The breaker's state at `now`.
    pub fn breaker_state(&self, now: Millis) -> BreakerState {
        self.breaker.state(now)
    }

    /// Records a revalidation: applied to the mirror at once, and queued for Redis behind
    /// any earlier one. Returns the oldest queued update when the outbox had to drop it (the
    /// host must log it: the rest of the fleet will not see it).
    pub fn queue_tag_update(
        &mut self,
        tags: &[&str],
        rev: &Revalidation,
        now: Millis,
    ) -> Result<Option<PendingUpdate>, PlanError> {
        if tags.is_empty() {
            return Err(PlanError::NoTags);
        }
        let admitted = self.admit_tags(tags);
        if admitted.is_empty() {
            return Err(PlanError::TagLimit);
        }
        let tags: Vec<&str> = admitted.iter().map(AsRef::as_ref).collect();
        if !(now.0.is_finite() && now.0 >= 0.0) {
            return Err(PlanError::InvalidTime);
        }
        self.mirror_mut().apply_local(&tags, rev, now);
        self.stats
            .record_revalidation(matches!(rev, Revalidation::Stale { .. }));
        self.stats.record_outbox_queued();
        let owned = tags.iter().map(|t| (*t).to_owned()).collect();
        Ok(self.outbox.push(owned, *rev, now))
    }

    /// The update script call for the outbox's head, with its sequence number for
    /// [`Engine::ack_outbox`]; `None` when nothing waits. The update keeps the time it was
    /// issued, so a late replay invalidates what the original would have.
    pub fn plan_outbox_head(
        &self,
        epoch_candidate: &str,
    ) -> Result<Option<(u64, ScriptCall)>, PlanError> {
        if epoch_candidate.is_empty() || epoch_candidate.len() > MAX_EPOCH_BYTES {
            return Err(PlanError::InvalidEpoch);
        }
        let Some(head) = self.outbox.head() else {
            return Ok(None);
        };
        let tags: Vec<&str> = head.tags.iter().map(String::as_str).collect();
        let call = ScriptCall {
            script: &TAG_UPDATE,
            sha1: TAG_UPDATE.sha1(),
            keys: self.namespace().tag_keys().to_vec(),
            args: tag_update_args(
                head.at,
                self.config().prune_after_ms(),
                epoch_candidate,
                &head.rev,
                &tags,
            ),
        };
        Ok(Some((head.seq, call)))
    }

    /// Redis applied outbox update `seq`; false when it was no longer the head.
    pub fn ack_outbox(&mut self, seq: u64) -> bool {
        let acked = self.outbox.ack(seq);
        if acked {
            self.stats.record_outbox_sent();
        }
        acked
    }

    /// The outbox (length, dropped count).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::tags::Freshness;

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
}
