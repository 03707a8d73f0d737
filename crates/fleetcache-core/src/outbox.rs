//! The revalidation outbox (docs/decisions/0007-failure-handling.md): tag updates on their way to Redis.
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
//! the caller, which must log it. The process itself still honours it through its mirror, and
//! the engine queues what it wrote to be merged back into Redis after the queue is sent
//! (`Engine::queue_tag_update`, `TagMirror::give_back_unsent`).
//!
//! An update that Redis answers with an error reply stays queued too (`OOM`, `READONLY` during
//! a failover and the like pass), except for a permission error ([`is_permission_error`]): the
//! ACL user lacks a command or the key pattern, which no retry fixes, so the update is dropped
//! ([`Outbox::refuse`]), like an overflow. The first such refusal since an update last went
//! through is for the host to log, with what the user lacks ([`missing_permission`]); the
//! ones after it are only counted, so a site that revalidates on every request does not log
//! on every request.
//!
//! Any other error reply is retried, with a backoff ([`Outbox::retry_in`]: 100 ms doubling up
//! to [`MAX_RETRY_MS`]), and so is a command that got no reply ([`Outbox::fail`]); the
//! backoff of the latter ends as soon as Redis answers any command ([`Outbox::answered`]). Errors
//! that a server in trouble answers and that pass by themselves ([`is_transient_error`]:
//! `OOM`, `READONLY`, `LOADING`, `BUSY` and the like) keep the update at the head for as long
//! as they last: every later update would meet them too. Any other error reply (`WRONGTYPE`
//! after an operator wrote a tag key with another type, a script error) that the same update
//! meets [`PARK_AFTER`] times in a row is not going to pass by retrying: the update is
//! *parked* (taken out of the queue and counted, [`Outbox::parked`]; it holds on this
//! instance only) and the queue moves on. While such a run lasts (an update was parked and
//! none went through since), the next update that meets a lasting error is parked at its
//! first attempt, so the queue does not crawl at three backoffs per revalidation. As with
//! refusals, the first parked update of a run is for the host to log.

use std::collections::VecDeque;

use crate::scripts::{self, tag_update_args, ScriptCall, TAG_UPDATE};
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

/// Error codes of a server that cannot take the command now but will (memory, a failover, a
/// load, a busy script, a cluster reconfiguring, a failed save): retried for as long as they
/// last, never parked.
const TRANSIENT_ERRORS: &[&str] = &[
    "OOM",
    "READONLY",
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "NOREPLICAS",
    "MISCONF",
    "MOVED",
    "ASK",
    "NOSCRIPT",
    "UNBLOCKED",
];

/// The error code of a reply: its first word, or, for Redis 6's form of an error raised by a
/// script's call (`ERR Error running script (call to f_...): @user_script:1: WRONGTYPE ...`),
/// the code of the call's error.
fn error_code(error: &str) -> &str {
    let inner = error
        .strip_prefix("ERR Error running script")
        .and_then(|rest| after(rest, "@user_script:"))
        .and_then(|rest| after(rest, ": "));
    inner
        .unwrap_or(error)
        .split_whitespace()
        .next()
        .unwrap_or_default()
}

/// True when an error reply comes from a server that cannot take the command now but will
/// (`TRANSIENT_ERRORS`): an update that meets it is retried, never parked.
pub fn is_transient_error(error: &str) -> bool {
    TRANSIENT_ERRORS.contains(&error_code(error))
}

/// Times in a row one update may meet an error reply that is neither a permission error nor
/// transient ([`is_transient_error`]) before it is parked.
pub const PARK_AFTER: u32 = 3;

/// First backoff after a failed attempt, in ms; it doubles with every attempt in a row.
pub const MIN_RETRY_MS: f64 = 100.0;

/// Longest backoff between two attempts at the head, in ms: a Redis that answers again gets
/// the queue within this long, even from an idle instance.
pub const MAX_RETRY_MS: f64 = 5_000.0;

/// What a permission error says the ACL user lacks, as rules of `ACL SETUSER`: `+zadd` when
/// Redis names the command, `~<prefix>:*` for a key, the commands of the script when Redis
/// names only the script (Redis 7.0: `... can't run this command or subcommand script:
/// <sha1>, ...`). `None` for any other error, and when nothing more can be said.
pub fn missing_permission(error: &str, prefix: &str) -> Option<String> {
    if !is_permission_error(error) {
        return None;
    }
    if let Some(rest) = after(error, "to run the '") {
        if let Some(command) = before_quote(rest) {
            // A command name is ASCII: a byte test, not `char::is_whitespace` (its Unicode
            // table and core's char-predicate searcher in the wasm module).
            if !command.is_empty() && !command.bytes().any(|b| b.is_ascii_whitespace()) {
                return Some(crate::text!("+", command.to_ascii_lowercase()));
            }
        }
    }
    if after(error, " key").is_some() {
        return Some(crate::text!("~", prefix, ":*"));
    }
    let sha = after(error, "script: ")?;
    let script = scripts::ALL.iter().find(|s| {
        sha.get(..40)
            .is_some_and(|h| h.eq_ignore_ascii_case(&s.sha1()))
    })?;
    let commands = script_commands(script.source);
    if commands.is_empty() {
        return None;
    }
    let mut rules = String::from("one of");
    for c in &commands {
        rules.push_str(" +");
        rules.push_str(c);
    }
    Some(rules)
}

/// What follows the first `needle` in `text`. A plain byte scan: these are error paths, and
/// `str`'s substring search (`split_once`, `contains`, `match_indices` with a `&str`) is about
/// 2.7 KB of the wasm module (docs/decisions/0028-wasm-size-budget.md).
fn after<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    if needle.is_empty() {
        return Some(text);
    }
    let at = text
        .as_bytes()
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())?;
    text.get(at + needle.len()..)
}

/// What comes before the first `'` in `text`, if it has one. A byte scan, as [`after`]:
/// `split_once` with a `char` was its own instantiation of the searcher, about 330 bytes of
/// the wasm module for these two error-path uses.
fn before_quote(text: &str) -> Option<&str> {
    let at = text.bytes().position(|b| b == b'\'')?;
    text.get(..at)
}

/// The commands a Lua script calls (`redis.call('HSET', ...)`), lower-case, each once, sorted.
fn script_commands(source: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for call in ["redis.call('", "redis.pcall('"] {
        let mut rest = source;
        while let Some(tail) = after(rest, call) {
            rest = tail;
            let name = before_quote(tail).map(str::to_ascii_lowercase);
            // Kept sorted as it is built: a handful of names, and no sort instantiation in
            // the wasm module (docs/decisions/0028-wasm-size-budget.md).
            if let Some(name) = name {
                if let Err(at) = out.binary_search(&name) {
                    out.insert(at, name);
                }
            }
        }
    }
    out
}

/// What became of an update that Redis answered with an error reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A transient error, a lasting one met fewer than [`PARK_AFTER`] times, or `seq` is no
    /// longer the head: the update stays at the head and is replayed after the backoff
    /// ([`Outbox::retry_in`]).
    Kept,
    /// A permission error: the update was dropped (it holds on this instance only). `first`
    /// is true for the first refusal since an update last went through, which the host logs.
    Dropped {
        /// The first of a run of refusals.
        first: bool,
    },
    /// A lasting error, met [`PARK_AFTER`] times in a row (or once, while a run of parked
    /// updates lasts): the update was parked (it holds on this instance only) and the queue
    /// moves on. `first` is true for the first parked update since one last went through,
    /// which the host logs.
    Parked {
        /// The first of a run of parked updates.
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
    parked: u64,
    /// An update was parked, and none went through since.
    parking: bool,
    /// Failed attempts at the current head in a row (no reply, or an error reply).
    attempts: u32,
    /// Lasting error replies the current head met in a row.
    lasting: u32,
    /// The head is not sent again before this time.
    retry_at: Millis,
    /// The head's last attempt got no reply: Redis answering anything ends its backoff.
    no_reply: bool,
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
            parked: 0,
            parking: false,
            attempts: 0,
            lasting: 0,
            retry_at: Millis::ZERO,
            no_reply: false,
        }
    }

    /// A new head: its attempts start from zero.
    fn next_head(&mut self) {
        self.items.pop_front();
        self.attempts = 0;
        self.lasting = 0;
        self.retry_at = Millis::ZERO;
        self.no_reply = false;
    }

    /// One more failed attempt at the head at `now`: the next one waits the backoff.
    fn back_off(&mut self, now: Millis) {
        self.attempts = self.attempts.saturating_add(1);
        let exp = self.attempts.saturating_sub(1).min(16);
        let delay = (MIN_RETRY_MS * f64::from(1u32 << exp)).min(MAX_RETRY_MS);
        self.retry_at = if now.0.is_finite() {
            Millis(now.0 + delay)
        } else {
            Millis::ZERO
        };
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
            let head = self.items.front().cloned();
            self.next_head();
            head
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
            self.next_head();
            self.refusing = false;
            self.parking = false;
            true
        } else {
            false
        }
    }

    /// Update `seq` got no reply at `now` (timeout, lost connection, open breaker): it stays
    /// at the head and waits the backoff. Nothing happens when it is no longer the head.
    pub fn fail(&mut self, seq: u64, now: Millis) {
        if self.items.front().is_some_and(|u| u.seq == seq) {
            self.back_off(now);
            self.no_reply = true;
        }
    }

    /// Redis answered a command (any command, an error reply included): when the head's last
    /// attempt got no reply, what kept it from Redis is gone, and it may be sent at once. The
    /// backoff after an error reply stays: Redis answering does not change that answer.
    pub fn answered(&mut self) {
        if self.no_reply {
            self.no_reply = false;
            self.retry_at = Millis::ZERO;
        }
    }

    /// Redis answered update `seq` with the error reply `error` at `now`: a permission error
    /// drops it, a transient error keeps it, a lasting error parks it the [`PARK_AFTER`]th
    /// time in a row (the first time while a run of parked updates lasts). What is kept waits
    /// the backoff. Nothing happens when `seq` is no longer the head. See the module
    /// documentation.
    pub fn refuse(&mut self, seq: u64, error: &str, now: Millis) -> Refusal {
        if !self.items.front().is_some_and(|u| u.seq == seq) {
            return Refusal::Kept;
        }
        if is_permission_error(error) {
            self.next_head();
            self.refused = self.refused.saturating_add(1);
            let first = !self.refusing;
            self.refusing = true;
            return Refusal::Dropped { first };
        }
        self.no_reply = false;
        if !is_transient_error(error) {
            self.lasting = self.lasting.saturating_add(1);
            if self.lasting >= PARK_AFTER || self.parking {
                self.next_head();
                self.parked = self.parked.saturating_add(1);
                let first = !self.parking;
                self.parking = true;
                return Refusal::Parked { first };
            }
        }
        self.back_off(now);
        Refusal::Kept
    }

    /// Milliseconds from `now` until the head may be sent again: 0 when it may be sent now
    /// (or nothing waits), at most [`MAX_RETRY_MS`].
    pub fn retry_in(&self, now: Millis) -> f64 {
        if self.items.is_empty() || !now.0.is_finite() {
            return 0.0;
        }
        (self.retry_at.0 - now.0).clamp(0.0, MAX_RETRY_MS)
    }

    /// Failed attempts at the current head in a row.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Updates dropped because Redis refused them for want of a permission.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Updates parked because Redis kept answering them with an error that retrying does
    /// not fix.
    pub fn parked(&self) -> u64 {
        self.parked
    }

    /// Updates waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Updates dropped because the outbox was full, since it was created (what they wrote is
    /// merged back instead: `TagMirror::give_back_unsent`).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl Outbox {
    /// The update script call ([`TAG_UPDATE`]) for the head, on the tag-state `tag_keys`, with
    /// its sequence number for [`Outbox::ack`]; `None` when nothing waits. The update keeps
    /// the time it was issued, so a late replay invalidates what the original would have.
    pub fn plan_head(
        &self,
        tag_keys: Vec<String>,
        prune_after_ms: f64,
        epoch_candidate: &str,
    ) -> Option<(u64, ScriptCall)> {
        let head = self.head()?;
        let tags: Vec<&str> = head.tags.iter().map(String::as_str).collect();
        let call = ScriptCall {
            script: &TAG_UPDATE,
            sha1: TAG_UPDATE.sha1(),
            keys: tag_keys,
            args: tag_update_args(head.at, prune_after_ms, epoch_candidate, &head.rev, &tags),
        };
        Some((head.seq, call))
    }

    /// When the host's timer should next refresh the tag state and replay the outbox, in ms
    /// from `now`, given when the breaker admits its next probe (`probe_at`): the later of
    /// that and when the head may be sent again, at least [`MIN_RETRY_MS`] and at most
    /// [`MAX_RETRY_MS`]; 1 s when neither says (a refresh failed while the breaker stayed
    /// closed).
    pub fn timer_ms(&self, probe_at: Option<Millis>, now: Millis) -> f64 {
        let probe = probe_at.map(|at| at.0 - now.0);
        let outbox = (!self.is_empty()).then(|| self.retry_in(now));
        let ms = match (probe, outbox) {
            (Some(p), Some(o)) => p.max(o),
            (Some(p), None) => p,
            (None, Some(o)) => o,
            (None, None) => 1000.0,
        };
        if ms.is_finite() {
            ms.clamp(MIN_RETRY_MS, MAX_RETRY_MS)
        } else {
            MAX_RETRY_MS
        }
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
            assert_eq!(o.refuse(1, transient, Millis(1.0)), Refusal::Kept);
        }
        assert_eq!(o.len(), 4);
        let noperm = "NOPERM User u has no permissions to run the 'evalsha' command";
        // Not the head (any more): nothing to drop.
        assert_eq!(o.refuse(2, noperm, Millis(1.0)), Refusal::Kept);
        assert_eq!(
            o.refuse(1, noperm, Millis(1.0)),
            Refusal::Dropped { first: true }
        );
        assert_eq!(
            o.refuse(2, noperm, Millis(1.0)),
            Refusal::Dropped { first: false }
        );
        assert_eq!((o.len(), o.refused(), o.dropped()), (2, 2, 0));
        // One going through ends the run: the next refusal is logged again.
        assert!(o.ack(3));
        assert_eq!(
            o.refuse(4, noperm, Millis(1.0)),
            Refusal::Dropped { first: true }
        );
        assert!(o.is_empty());
    }

    const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value script: 1b73, on @user_script:1.";

    #[test]
    fn error_codes_of_every_server_version() {
        // Every code docs/failures.md lists as kept at the head: one parked instead would
        // be lost to the rest of the fleet.
        for transient in [
            "OOM command not allowed when used memory > 'maxmemory'.",
            "READONLY You can't write against a read only replica.",
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script.",
            "MASTERDOWN Link with MASTER is down",
            "CLUSTERDOWN The cluster is down",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "NOREPLICAS Not enough good replicas to write.",
            "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
            "MOVED 3999 127.0.0.1:6381",
            "ASK 3999 127.0.0.1:6381",
            "NOSCRIPT No matching script. Please use EVAL.",
            "UNBLOCKED force unblocked by CLIENT UNBLOCK",
            "ERR Error running script (call to f_1b73): @user_script:1: OOM command not allowed",
        ] {
            assert!(is_transient_error(transient), "{transient}");
        }
        for lasting in [
            WRONGTYPE,
            "ERR Error running script (call to f_1b73): @user_script:1: WRONGTYPE Operation against a key holding the wrong kind of value",
            "ERR Error running script",
            "ERR fleetcache TAG_UPDATE: bad arguments",
            "",
        ] {
            assert!(!is_transient_error(lasting), "{lasting}");
        }
    }

    #[test]
    fn a_lasting_error_parks_the_head_and_the_queue_moves_on() {
        let mut o = Outbox::new(8);
        for t in ["a", "b", "c", "d"] {
            o.push(tags(t), Revalidation::Expire, Millis(1.0));
        }
        let t = 1000.0;
        // Retried with a doubling backoff, then parked at the PARK_AFTER-th attempt.
        assert_eq!(o.refuse(1, WRONGTYPE, Millis(t)), Refusal::Kept);
        assert_eq!(o.retry_in(Millis(t)), MIN_RETRY_MS);
        assert_eq!(o.refuse(1, WRONGTYPE, Millis(t)), Refusal::Kept);
        assert_eq!(o.retry_in(Millis(t)), 2.0 * MIN_RETRY_MS);
        assert_eq!(o.retry_in(Millis(t + 150.0)), 50.0);
        assert_eq!(
            o.refuse(1, WRONGTYPE, Millis(t)),
            Refusal::Parked { first: true }
        );
        assert_eq!((o.head().unwrap().seq, o.parked(), o.len()), (2, 1, 3));
        // The new head is sent at once, and while the run lasts, parked at its first lasting
        // error; the log hears of the first one only.
        assert_eq!(o.retry_in(Millis(t)), 0.0);
        assert_eq!(
            o.refuse(2, WRONGTYPE, Millis(t)),
            Refusal::Parked { first: false }
        );
        // A transient error never parks, however long it lasts; the backoff stays bounded.
        for _ in 0..40 {
            assert_eq!(
                o.refuse(3, "OOM command not allowed", Millis(t)),
                Refusal::Kept
            );
        }
        assert_eq!(o.retry_in(Millis(t)), MAX_RETRY_MS);
        // Redis answering does not end the backoff of an error reply...
        o.answered();
        assert_eq!(o.retry_in(Millis(t)), MAX_RETRY_MS);
        // ... but ends that of a command that got no reply. No reply: never parked.
        o.fail(3, Millis(t));
        assert_eq!((o.head().unwrap().seq, o.attempts()), (3, 41));
        assert_eq!(o.retry_in(Millis(t)), MAX_RETRY_MS);
        o.answered();
        assert_eq!(o.retry_in(Millis(t)), 0.0);
        // One going through ends the run: the next lasting error is retried again first.
        assert!(o.ack(3));
        assert_eq!((o.attempts(), o.retry_in(Millis(t))), (0, 0.0));
        assert_eq!(o.refuse(4, WRONGTYPE, Millis(t)), Refusal::Kept);
        // Not the head: nothing changes.
        assert_eq!(o.refuse(9, WRONGTYPE, Millis(t)), Refusal::Kept);
        o.fail(9, Millis(t));
        assert_eq!(o.attempts(), 1);
        assert_eq!((o.parked(), o.refused(), o.dropped()), (2, 0, 0));
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
            // Not a command name: no `+` rule made of it.
            (
                "NOPERM User u has no permissions to run the 'get\tset' command".to_owned(),
                None,
            ),
            (
                "NOPERM User u has no permissions to run the 'get set' command".to_owned(),
                None,
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

    /// How Redis answered an attempt at the head.
    #[derive(Clone, Copy, Debug)]
    enum Answer {
        Ok,
        NoReply,
        Transient,
        Lasting,
        Permission,
    }

    fn answer() -> impl Strategy<Value = Answer> {
        prop_oneof![
            Just(Answer::Ok),
            Just(Answer::NoReply),
            Just(Answer::Transient),
            Just(Answer::Lasting),
            Just(Answer::Permission),
        ]
    }

    proptest! {
        /// Whatever Redis answers, every update is sent, dropped, refused or parked exactly
        /// once and in issue order; a head is parked only after PARK_AFTER lasting errors in a
        /// row (or one, during a run of parked updates), never for a transient error or no
        /// reply; the wait before the next attempt never exceeds MAX_RETRY_MS; and lasting
        /// errors alone never hold the head for more than PARK_AFTER attempts.
        #[test]
        fn lasting_errors_never_block_the_queue(
            cap in 1usize..8,
            ops in proptest::collection::vec(
                prop_oneof![Just(None), answer().prop_map(Some)],
                1..300,
            )
        ) {
            let mut o = Outbox::new(cap);
            let mut issued = 0u64;
            let mut done: Vec<u64> = Vec::new();
            let mut t = 0.0;
            let mut lasting_in_a_row = 0u32;
            let mut run = false;
            for op in ops {
                t += 7.0;
                let Some(answer) = op else {
                    issued += 1;
                    if let Some(d) = o.push(tags("x"), Revalidation::Expire, Millis(t)) {
                        done.push(d.seq);
                        lasting_in_a_row = 0;
                    }
                    continue;
                };
                let Some(head) = o.head().cloned() else { continue };
                let before = o.len();
                match answer {
                    Answer::Ok => {
                        prop_assert!(o.ack(head.seq));
                        run = false;
                    }
                    Answer::NoReply => o.fail(head.seq, Millis(t)),
                    Answer::Transient => {
                        prop_assert_eq!(o.refuse(head.seq, "LOADING wait", Millis(t)), Refusal::Kept);
                    }
                    Answer::Permission => {
                        let r = o.refuse(head.seq, "NOPERM no", Millis(t));
                        prop_assert!(matches!(r, Refusal::Dropped { .. }), "not dropped");
                    }
                    Answer::Lasting => {
                        lasting_in_a_row += 1;
                        match o.refuse(head.seq, WRONGTYPE, Millis(t)) {
                            Refusal::Parked { first } => {
                                prop_assert!(lasting_in_a_row >= PARK_AFTER || run);
                                prop_assert_eq!(first, !run);
                                run = true;
                            }
                            Refusal::Kept => prop_assert!(lasting_in_a_row < PARK_AFTER && !run),
                            Refusal::Dropped { .. } => prop_assert!(false, "dropped"),
                        }
                    }
                }
                if o.len() < before {
                    done.push(head.seq);
                    lasting_in_a_row = 0;
                }
                prop_assert!(o.retry_in(Millis(t)) <= MAX_RETRY_MS);
            }
            while let Some(head) = o.head().cloned() {
                prop_assert!(o.ack(head.seq));
                done.push(head.seq);
            }
            prop_assert_eq!(done, (1..=issued).collect::<Vec<_>>());
        }

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
