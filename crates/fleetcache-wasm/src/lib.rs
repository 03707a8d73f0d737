//! wasm-bindgen binding of the fleetcache engine.
//!
//! This crate converts JS values into core types and back, and turns core errors into JS
//! `Error`s carrying a `code` (one conversion, `error.rs`). The read and renew machines
//! (`read.rs`) and the write machine (`write.rs`) step the core's and decide nothing; the engine
//! keeps no state between calls for them. A read machine keeps its own last step (per request),
//! whose numbers the host reads through the machine's fields area and whose strings it asks for
//! only when it needs them. Numeric codes cross as `#[wasm_bindgen]` enums (`codes.rs`).
//! The exported calls are synchronous and take primitives, strings and byte slices, because an
//! `await` or a serde conversion per request costs more than the work itself (see
//! docs/decisions).

mod codes;
mod config;
mod engine;
mod error;
mod inflate;
#[cfg(feature = "tools")]
mod inspect;
mod list;
mod objects;
mod pack;
#[cfg(feature = "tools")]
mod plan;
mod read;
mod revalidate;
mod settings;
mod write;

pub use codes::{
    Announcement, BreakerState, Codec, CommandKind, CommandResult, Freshness, OutboxRefusal,
    Reported, RevalidationMode, ValueFlag, ValueKind, Wake,
};
pub use config::{bounds, defaults};
#[cfg(feature = "tools")]
pub use engine::{describe_envelope, script_shas};
pub use engine::{random_token, Engine, Iface, Outcome};
#[cfg(feature = "tools")]
pub use inspect::Inspection;
#[cfg(feature = "tools")]
pub use plan::PlannedEntry;
pub use read::{
    wasm_memory, Consumer, Failure, ReadField, ReadMachine, ReadStep, ReadStepKind, RenewMachine,
    RenewStep, RenewStepKind, Served, Source, TierAction,
};
pub use revalidate::Revalidated;
pub use write::{WriteMachine, WriteOutcome, WriteStep, WriteStepKind};
