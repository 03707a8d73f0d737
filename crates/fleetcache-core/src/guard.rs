//! Command budgets and admission (docs/decisions/0007-failure-handling.md): what kind of
//! command gets which budget, the answer to "send it?", and how a command's end counts.
//!
//! Per Redis command the host calls [`crate::Engine::admit`] (send it or not, and with which
//! budget: [`budget_ms`]), enforces the budget with its own timer, and calls
//! [`crate::Engine::report`] with the outcome, which the breaker records and the counters count
//! as [`redis_result`]. Revalidations go through [`crate::Engine::queue_tag_update`], which
//! applies them to the mirror at once and queues them in the outbox; the host sends
//! [`crate::Engine::plan_outbox_head`] until the outbox is empty, acknowledging each with
//! [`crate::Engine::ack_outbox`].

use crate::breaker::{CallResult, Permit};
use crate::stats::RedisResult;

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

/// Budget of a command of `kind` in ms, given the configured read and write budgets.
pub fn budget_ms(kind: OpKind, read_ms: f64, write_ms: f64) -> f64 {
    match kind {
        OpKind::Read => read_ms,
        OpKind::Write => write_ms,
        OpKind::Lease => write_ms.max(read_ms),
    }
}

/// How the end of an admitted command counts.
pub fn redis_result(result: CallResult) -> RedisResult {
    match result {
        CallResult::Success => RedisResult::Ok,
        CallResult::Failure => RedisResult::ConnectionError,
        CallResult::Timeout => RedisResult::Timeout,
    }
}
