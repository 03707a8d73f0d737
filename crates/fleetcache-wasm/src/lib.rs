//! wasm-bindgen binding of the fleetcache engine.
//!
//! This crate converts JS values into core types and back, and turns core errors into JS
//! `Error`s carrying a `code`. A few decisions are still its own (README.md says which: the
//! `last*` state, the fresh/stale/missing reading of the last inspected entry for the lease
//! flight, TTL rounding) until they move into the core. The exported calls are
//! synchronous and take primitives, strings and byte slices, because an `await` or a serde
//! conversion per request costs more than the work itself (see docs/decisions).

mod config;
mod engine;
mod error;
mod list;
mod revalidate;

pub use config::{bounds, defaults};
pub use engine::{describe_envelope, random_token, Engine, Iface, Outcome};
pub use revalidate::Revalidated;
