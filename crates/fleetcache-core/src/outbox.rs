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
//!
//! An update that Redis answers with an error reply stays queued too (`OOM`, `READONLY` during
//! a failover and the like pass), except for a permission error ([`is_permission_error`]): the
//! ACL user lacks a command or the key pattern, which no retry fixes, so the update is dropped
//! ([`Outbox::refuse`]), like an overflow. The first such refusal since an update last went
//! through is for the host to log, with what the user lacks ([`missing_permission`]); the
//! ones after it are only counted, so a site that revalidates on every request does not log
//! on every request.

use std::collections::VecDeque;

use crate::plan::Engine;
use crate::scripts;
use crate::tags::Revalidation;
use crate::time::Millis;

/// Starts of Redis's (and Valkey's) permission errors: a command or key the ACL user lacks,
/// sent directly (`NOPERM`) or called by a script (Redis 7.2+ and Valkey, then Redis 7.0 and
/// 7.1).
const PERMISSION_ERRORS: &[&str] = &[
    "NOPERM",
    "ERR ACL failure in script",
    "ERR The user executing the script can't",
];

/// True when an error reply says the ACL user lacks a permission: waiting will not help.
pub fn is_permission_error(error: &str) -> bool {
    PERMISSION_ERRORS.iter().any(|p| error.starts_with(p))
}

/// What a permission error says the ACL user lacks, as rules of `ACL SETUSER`: `+zadd` when
/// Redis names the command, `~<prefix>:*` for a key, the commands of the script when Redis
/// names only the script (Redis 7.0: `... can't run this command or subcommand script:
/// <sha1>, ...`). `None` for any other error, and when nothing more can be said.
pub fn missing_permission(error: &str, prefix: &str) -> Option<String> {
    if !is_permission_error(error) {
        return None;
    }
    if let Some(rest) = error.split_once("to run the '").map(|(_, r)| r) {
        if let Some((command, _)) = rest.split_once('\'') {
            if !command.is_empty() && !command.contains(char::is_whitespace) {
                return Some(format!("+{}", command.to_ascii_lowercase()));
            }
        }
    }
    if error.contains(" key") {
        return Some(format!("~{prefix}:*"));
    }
    let sha = error.split_once("script: ").map(|(_, r)| r)?;
    let script = scripts::ALL.iter().find(|s| {
        sha.get(..40)
            .is_some_and(|h| h.eq_ignore_ascii_case(&s.sha1()))
    })?;
    let commands = script_commands(script.source);
    if commands.is_empty() {
        return None;
    }
    let rules: Vec<String> = commands.iter().map(|c| format!("+{c}")).collect();
    Some(format!("one of {}", rules.join(" ")))
}

/// The commands a Lua script calls (`redis.call('HSET', ...)`), lower-case, each once, sorted.
fn script_commands(source: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for call in ["redis.call('", "redis.pcall('"] {
        for (_, rest) in source.match_indices(call).map(|(i, _)| source.split_at(i)) {
            let name = rest
                .get(call.len()..)
                .and_then(|r| r.split_once('\''))
                .map(|(n, _)| n.to_ascii_lowercase());
            if let Some(name) = name {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
    }
    out.sort_unstable();
    out
}

/// What became of an update that Redis answered with an error reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Any error but a permission error, or `seq` is no longer the head: nothing changed, the
    /// update is replayed when Redis answers again.
    Kept,
    /// A permission error: the update was dropped (it holds on this instance only). `first`
    /// is true for the first refusal since an update last went through, which the host logs.
    Dropped {
        /// The first of a run of refusals.
        first: bool,
    },
}

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
    refused: u64,
    /// An update was refused for want of a permission, and none went through since.
    refusing: bool,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` updates (at least one).
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            capacity: capacity.max(1),
            items: VecDeque::new(),
            next_seq: 1,
            dropped: 0,
            refused: 0,
            refusing: false,
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
            self.refusing = false;
            true
        } else {
            false
        }
    }

    /// Redis answered update `seq` with the error reply `error`. A permission error drops it
    /// when it is still the head; any other error keeps it. See the module documentation.
    pub fn refuse(&mut self, seq: u64, error: &str) -> Refusal {
        if !is_permission_error(error) || !self.items.front().is_some_and(|u| u.seq == seq) {
            return Refusal::Kept;
        }
        self.items.pop_front();
        self.refused = self.refused.saturating_add(1);
        let first = !self.refusing;
        self.refusing = true;
        Refusal::Dropped { first }
    }

    /// Updates dropped because Redis refused them for want of a permission.
    pub fn refused(&self) -> u64 {
        self.refused
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

/// The outbox's answer to an error reply, as an [`Engine`] method (the outbox is the engine's).
impl Engine {
    /// Redis answered outbox update `seq` with the error reply `error`: see [`Outbox::refuse`].
    pub fn refuse_outbox(&mut self, seq: u64, error: &str) -> Refusal {
        self.outbox.refuse(seq, error)
    }

    /// What a permission error says the ACL user lacks, with this engine's key prefix: see
    /// [`missing_permission`].
    pub fn missing_permission(&self, error: &str) -> Option<String> {
        missing_permission(error, self.namespace().prefix())
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

    #[test]
    fn permission_errors_drop_the_head_and_only_the_first_is_for_the_log() {
        let mut o = Outbox::new(8);
        for t in ["a", "b", "c", "d"] {
            o.push(tags(t), Revalidation::Expire, Millis(1.0));
        }
        // Errors that may pass keep the update where it is.
        for transient in [
            "OOM command not allowed when used memory > 'maxmemory'.",
            "READONLY You can't write against a read only replica.",
            "LOADING Redis is loading the dataset in memory",
            "ERR Error running script",
        ] {
            assert_eq!(o.refuse(1, transient), Refusal::Kept);
        }
        assert_eq!(o.len(), 4);
        let noperm = "NOPERM User u has no permissions to run the 'evalsha' command";
        // Not the head (any more): nothing to drop.
        assert_eq!(o.refuse(2, noperm), Refusal::Kept);
        assert_eq!(o.refuse(1, noperm), Refusal::Dropped { first: true });
        assert_eq!(o.refuse(2, noperm), Refusal::Dropped { first: false });
        assert_eq!((o.len(), o.refused(), o.dropped()), (2, 2, 0));
        // One going through ends the run: the next refusal is logged again.
        assert!(o.ack(3));
        assert_eq!(o.refuse(4, noperm), Refusal::Dropped { first: true });
        assert!(o.is_empty());
    }

    #[test]
    fn permission_errors_of_every_server_version() {
        let update = crate::scripts::TAG_UPDATE.sha1();
        let cases = [
            (
                "NOPERM this user has no permissions to run the 'get' command".to_owned(),
                Some("+get".to_owned()),
            ),
            (
                "NOPERM User u has no permissions to run the 'cluster|slots' command".to_owned(),
                Some("+cluster|slots".to_owned()),
            ),
            (
                "NOPERM this user has no permissions to access one of the keys used as arguments"
                    .to_owned(),
                Some("~fc:*".to_owned()),
            ),
            (
                "NOPERM No permissions to access a key".to_owned(),
                Some("~fc:*".to_owned()),
            ),
            (
                format!("ERR ACL failure in script: User u has no permissions to run the 'zadd' command script: {update}, on @user_script:1."),
                Some("+zadd".to_owned()),
            ),
            (
                format!("ERR ACL failure in script: No permissions to access a key script: {update}, on @user_script:1."),
                Some("~fc:*".to_owned()),
            ),
            (
                format!("ERR The user executing the script can't run this command or subcommand script: {update}, on @user_script:1."),
                Some(format!(
                    "one of {}",
                    script_commands(crate::scripts::TAG_UPDATE.source)
                        .iter()
                        .map(|c| format!("+{c}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )),
            ),
            (
                "ERR The user executing the script can't access at least one of the keys mentioned in the command arguments script: 91e0, on @user_script:1.".to_owned(),
                Some("~fc:*".to_owned()),
            ),
            // A script Redis names that is not one of ours: nothing more to say.
            (
                "ERR The user executing the script can't run this command or subcommand script: 0000000000000000000000000000000000000000, on @user_script:1.".to_owned(),
                None,
            ),
            ("ERR Error running script".to_owned(), None),
            ("OOM command not allowed".to_owned(), None),
        ];
        for (error, want) in cases {
            assert_eq!(missing_permission(&error, "fc"), want, "{error}");
        }
        assert!(is_permission_error(
            "ERR The user executing the script can't run this command or subcommand script: 0"
        ));
        assert!(!is_permission_error("ERR unknown command"));
    }

    #[test]
    fn script_commands_lists_every_call_once() {
        let commands = script_commands(crate::scripts::TAG_UPDATE.source);
        for c in [
            "hget", "hset", "hsetnx", "hdel", "hincrby", "zadd", "zrange", "zrem",
        ] {
            assert!(commands.iter().any(|x| x == c), "{c} in {commands:?}");
        }
        assert_eq!(
            script_commands("redis.call('SET', k) redis.pcall('get', k) redis.call('SET', k)"),
            ["get", "set"]
        );
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
