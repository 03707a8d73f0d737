//! wasm-bindgen binding of the fleetcache engine.
//!
//! This crate converts JS values into core types and back, and turns core errors into JS
//! `Error`s carrying a `code`. The read and renew machines (`read.rs`) and the write machine
//! (`write.rs`) decide nothing and keep nothing between calls but the machine (a read machine
//! also keeps its last step, which the host reads through the machine's fields area); the older per-call exports still
//! keep a few decisions of their own (README.md says which) until the host no longer calls them.
//! The exported calls are synchronous and take primitives, strings and byte slices, because an
//! `await` or a serde conversion per request costs more than the work itself (see
//! docs/decisions).

mod config;
mod engine;
mod error;
mod inspect;
mod js_value;
mod list;
mod read;
mod revalidate;
mod write;

pub use config::{bounds, defaults};
pub use engine::{describe_envelope, random_token, Engine, Iface, Outcome};
pub use inspect::Inspection;
pub use read::{
    wasm_memory, Consumer, Failure, ReadField, ReadMachine, ReadStep, ReadStepKind, RenewMachine,
    RenewStep, RenewStepKind, Served, Source, TierAction,
};
pub use revalidate::Revalidated;
pub use write::{WriteMachine, WriteOutcome, WriteStep, WriteStepKind};
