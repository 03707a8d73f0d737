//! Why a command a machine asked for has no usable reply, as the host reports it.

use wasm_bindgen::prelude::*;

/// How a Redis command ended without a usable reply. The host maps its error's `code`:
/// `ERR_REDIS_TIMEOUT` to `Timeout`, `ERR_REDIS_REPLY` to `ReplyError`,
/// `ERR_REDIS_CIRCUIT_OPEN` to `CircuitOpen`, anything else to `NoConnection`.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The budget ran out.
    Timeout = 0,
    /// Redis answered with an error.
    ReplyError = 1,
    /// Redis could not be reached.
    NoConnection = 2,
    /// Not sent: the circuit breaker is open.
    CircuitOpen = 3,
}

impl From<Failure> for fleetcache_core::Failure {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Timeout => fleetcache_core::Failure::Timeout,
            Failure::ReplyError => fleetcache_core::Failure::ReplyError,
            Failure::NoConnection => fleetcache_core::Failure::NoConnection,
            Failure::CircuitOpen => fleetcache_core::Failure::CircuitOpen,
        }
    }
}
