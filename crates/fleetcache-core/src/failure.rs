//! How a Redis command a request machine asked for ended without a usable reply.

/// Why the host has no reply for a command a machine planned. The host maps its transport's
/// error codes: `ERR_REDIS_TIMEOUT` to [`Failure::Timeout`], `ERR_REDIS_REPLY` to
/// [`Failure::ReplyError`], `ERR_REDIS_CIRCUIT_OPEN` to [`Failure::CircuitOpen`], anything
/// else to [`Failure::NoConnection`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The command's budget ran out: it may still have taken effect.
    Timeout,
    /// Redis answered with an error reply (`OOM`, `NOPERM`, ...).
    ReplyError,
    /// Redis could not be reached.
    NoConnection,
    /// Not sent: the circuit breaker keeps this process off Redis (logged once, when it
    /// opened).
    CircuitOpen,
}
