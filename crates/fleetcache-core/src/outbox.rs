//! The revalidation outbox (design §5): tag updates on their way to Redis.
//!
//! Every revalidation is applied to this process's mirror at once and queued here; the host
//! sends the queue's head, and only when Redis has answered is the head removed
//! ([`Outbox::ack`]). So an update that cannot reach Redis (breaker open, timeout, connection
//! refused) stays queued and is replayed, in issue order, as soon as Redis answers again.
//!
//! Replaying is safe even when the first attempt did reach Redis but its reply was lost (a
//! timeout): every tag rule is a max or a min over the update's own time, so applying the
//! same update twice leaves the same state. Each update carries the time it was issued, so a
//! replay minutes later invalidates exactly what the original would have, not entries
//! written in between.
//!
//! The queue is bounded: when it is full the oldest update is dropped and handed back to
//! the caller, which must log it (the process itself still honours it through its mirror;
//! the rest of the fleet will not see it).

use std::collections::VecDeque;

use crate::tags::Revalidation;
use crate::time::Millis;

/// One revalidation waiting for Redis.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingUpdate {
    /// Position in issue order, unique within one outbox.
    pub seq: u64,
    /// The tags, as validated by the engine.
    pub tags: Vec<String>,
    /// What the revalidation asks for.
    pub rev: Revalidation,
    /// When it was issued (the time sent to the update script).
    pub at: Millis,
}

/// A bounded FIFO of tag updates; see the module documentation.
#[derive(Clone, Debug)]
pub struct Outbox {
    capacity: usize,
    items: VecDeque<PendingUpdate>,
    next_seq: u64,
    dropped: u64,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` updates (at least one).
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            capacity: capacity.max(1),
            items: VecDeque::new(),
            next_seq: 1,
            dropped: 0,
        }
    }

    /// Queues an update; returns the oldest one when it had to make room.
    pub fn push(
        &mut self,
        tags: Vec<String>,
        rev: Revalidation,
        at: Millis,
    ) -> Option<PendingUpdate> {
        let dropped = if self.items.len() >= self.capacity {
            self.dropped = self.dropped.saturating_add(1);
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(PendingUpdate {
            seq: self.next_seq,
            tags,
            rev,
            at,
        });
        self.next_seq = self.next_seq.saturating_add(1);
        dropped
    }

    /// The update to send next.
    pub fn head(&self) -> Option<&PendingUpdate> {
        self.items.front()
    }

    /// Redis has applied update `seq`: removes it when it is still the head. Returns false
    /// when it is not (it was dropped to make room meanwhile), which is harmless.
    pub fn ack(&mut self, seq: u64) -> bool {
        if self.items.front().is_some_and(|u| u.seq == seq) {
            self.items.pop_front();
            true
        } else {
            false
        }
    }

    /// Updates waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Updates dropped because the outbox was full, since it was created.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tags(s: &str) -> Vec<String> {
        vec![s.to_owned()]
    }

    #[test]
    fn fifo_with_ack_and_drop_oldest() {
        let mut o = Outbox::new(2);
        assert!(o.is_empty());
        assert_eq!(o.push(tags("a"), Revalidation::Expire, Millis(1.0)), None);
        assert_eq!(o.push(tags("b"), Revalidation::Expire, Millis(2.0)), None);
        let dropped = o
            .push(tags("c"), Revalidation::Expire, Millis(3.0))
            .unwrap();
        assert_eq!((dropped.seq, dropped.tags), (1, tags("a")));
        assert_eq!(o.dropped(), 1);
        assert_eq!(o.len(), 2);
        // An ack for something that is no longer the head changes nothing.
        assert!(!o.ack(1));
        assert_eq!(o.head().unwrap().tags, tags("b"));
        assert!(o.ack(2));
        assert!(!o.ack(2));
        assert_eq!(o.head().unwrap().at, Millis(3.0));
        assert!(o.ack(3));
        assert!(o.head().is_none());
        assert_eq!(Outbox::new(0).capacity(), 1);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push,
        /// The host sent the head and Redis answered (or not).
        Send {
            ok: bool,
        },
    }

    proptest! {
        /// While the outbox has room no update is lost, every update reaches Redis exactly
        /// in issue order, and when it overflows, exactly the oldest ones are dropped and
        /// counted.
        #[test]
        fn no_update_lost_and_order_kept(
            cap in 1usize..20,
            ops in proptest::collection::vec(
                prop_oneof![Just(Op::Push), any::<bool>().prop_map(|ok| Op::Send { ok })],
                1..400,
            )
        ) {
            let mut o = Outbox::new(cap);
            let mut issued = 0u64;
            let mut sent: Vec<u64> = Vec::new();
            let mut dropped: Vec<u64> = Vec::new();
            for op in ops {
                match op {
                    Op::Push => {
                        issued += 1;
                        let at = Millis(issued as f64);
                        if let Some(d) = o.push(tags(&issued.to_string()), Revalidation::Expire, at) {
                            prop_assert_eq!(o.len(), cap);
                            dropped.push(d.seq);
                        }
                    }
                    Op::Send { ok } => {
                        if let Some(head) = o.head().cloned() {
                            if ok {
                                prop_assert!(o.ack(head.seq));
                                sent.push(head.seq);
                            }
                        }
                    }
                }
            }
            // Drain what is left, as the host does once Redis is back.
            while let Some(head) = o.head().cloned() {
                prop_assert!(o.ack(head.seq));
                sent.push(head.seq);
            }
            prop_assert_eq!(o.dropped(), dropped.len() as u64);
            // Everything issued was either sent or reported as dropped, nothing twice, and
            // both lists are in issue order.
            let mut all: Vec<u64> = sent.iter().chain(dropped.iter()).copied().collect();
            prop_assert!(sent.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(dropped.windows(2).all(|w| w[0] < w[1]));
            all.sort_unstable();
            prop_assert_eq!(all, (1..=issued).collect::<Vec<_>>());
            if dropped.is_empty() {
                prop_assert_eq!(sent.len() as u64, issued);
            }
        }
    }
}
