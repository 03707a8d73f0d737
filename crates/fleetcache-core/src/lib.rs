//! Pure core of fleetcache, a Redis-backed shared cache for fleets of Next.js servers.
//!
//! This crate owns every format and decision: Redis key layout, the entry envelope, tag
//! state and its Lua scripts, and the in-process tier's index. It performs no I/O, reads no
//! clock and draws no random numbers: the host passes the time in, executes the planned
//! Redis commands, and hands the replies back. `docs/internals.md` is the binding
//! description of everything that touches Redis data.
//!
//! The entry point is [`Engine`]; the modules are usable on their own for tests and tools.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Input-derived values must never panic the host process (a panic in wasm aborts the
// instance); tests may unwrap freely.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod breaker;
pub mod compression;
pub mod config;
mod decimal;
pub mod engine;
pub mod envelope;
pub mod error;
pub mod guard;
pub mod incremental;
pub mod keyed;
pub mod keys;
pub mod lease;
pub mod lru;
pub mod netstring;
pub mod next;
pub mod outbox;
pub mod read_machine;
pub mod regen;
pub mod scripts;
pub mod seed;
pub mod stats;
pub mod strhash;
pub mod tag_fold;
pub mod tag_record;
pub mod tag_sync;
pub mod tags;
pub mod text;
pub mod tier;
pub mod time;
pub mod verdict;
pub mod write;
pub mod write_machine;

pub use breaker::{Breaker, BreakerConfig, BreakerState, CallResult, Permit};
pub use compression::{Compress, Inflation};
pub use config::Config;
pub use engine::{Engine, Wake};
pub use envelope::{
    decode_header, decode_stored_header, encode_compressed_header, encode_header, Codec,
    Compression, DecodedHeader, EntryKind, EntryMeta, Limits, FIXED_HEADER_LEN, FLAG_COMPRESSED,
    FORMAT_VERSION, MAGIC,
};
pub use error::{
    ConfigError, DecodeError, EncodeError, KeyError, NetstringError, PlanError, ProtocolError,
};
pub use guard::{Admission, OpKind};
pub use keys::{Interface, Namespace, TagKeys};
pub use lease::{Acquired, Consumer, EntryWrite, Flight, Found, LeaseConfig, LeaseTable, Step};
pub use lru::LruIndex;
pub use next::NextRelease;
pub use outbox::{Outbox, PendingUpdate};
pub use read_machine::{
    Bytes, Failure, LeaseToken, ReadAction, ReadAnswer, ReadInput, ReadMachine, ReadStep,
    RenewInput, RenewMachine, RenewStep, Served, Shown, Source, TierAction,
};
pub use scripts::{Script, ScriptCall, TAG_REFRESH, TAG_UPDATE};
pub use stats::{LeaseEvent, LookupOutcome, Stats, StatsSnapshot, Surface};
pub use strhash::HashSeed;
pub use tags::{
    admit_tags, canonical_tag, AdmittedTags, DroppedTags, Freshness, RefreshSummary, Revalidation,
    TagMirror, TagRecord, MAX_ENTRY_TAGS, MAX_TAG_BYTES,
};
pub use tier::TierUse;
pub use time::{duration_seconds_to_ttl_ms, Millis};
pub use verdict::{Inspection, Verdict};
pub use write::{SetInput, SetPlan};
pub use write_machine::{
    KeepSignal, Store, WriteCtx, WriteDone, WriteInput, WriteMachine, WriteRequest, WriteResult,
    WriteStep,
};
