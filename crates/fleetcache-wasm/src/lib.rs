//! wasm-bindgen binding of the fleetcache engine.
//!
//! This crate makes no cache decision of its own: it converts JS values into core types and
//! back, and turns core errors into JS `Error`s carrying a `code`. The exported calls are
//! synchronous and take primitives, strings and byte slices, because an `await` or a serde
//! conversion per request costs more than the work itself (see docs/decisions).

mod config;
mod engine;
mod error;
mod list;

pub use config::{bounds, defaults};
pub use engine::{describe_envelope, random_token, Engine, Outcome};
