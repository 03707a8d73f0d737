//! The write machine exported to JS: one `set` of either Next surface, stepped one input at a
//! time. Every call returns one [`WriteStep`]; nothing is kept between calls but the machine.

use fleetcache_core::{Millis, WriteDone, WriteInput, WriteRequest, WriteResult};
use js_sys::JsString;
use wasm_bindgen::prelude::*;

use crate::codes::{Codec, ValueKind};
use crate::engine::{script_argv, utf8_key, Engine, Iface};
use crate::list::split;
use crate::read::Failure;

/// What a [`WriteStep`] asks the host to do.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteStepKind {
    /// Remember `header ++ payload` in the tier (`keepUntil`, `outageOnly`), then send it:
    /// `SET key value PX ttlMs` when `argv` is empty, else `argv` with the value appended;
    /// when `compressed`, the value is `header ++` the codec output of the Compress step
    /// before, and the tier has the plain copy already. Wait for it at most `waitMs`
    /// (counted from the first step); answer `sent` or `failed`.
    Store = 0,
    /// Send `argv` (the lease release); answer `sent` or `failed`.
    Release = 1,
    /// Nothing more: log `droppedTags` (warn), `log` (debug), `error` (error), and mark the
    /// tier's copy of `key` local when `markLocal`.
    Done = 2,
    /// Remember `header ++ payload` (the plain value) in the tier (`keepUntil`,
    /// `outageOnly`), then compress the payload with `codec` at `level`, off the event loop;
    /// answer `compressed(bytes)`, or `failed` when the codec failed (stored plain).
    Compress = 3,
}

/// How a write ended.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Not ended yet (a Store or Release step).
    Pending = 0,
    /// Written.
    Stored = 1,
    /// Not cacheable: nothing stored.
    Skipped = 2,
    /// Refused (too large, too many tags, a bad layout): `error` names the code.
    Refused = 3,
    /// The write failed, or nothing could be produced: append the error's description to
    /// `error` when it is not empty.
    Failed = 4,
    /// Not sent while the circuit breaker is open.
    Unsent = 5,
}

/// One step of a [`WriteMachine`]. Fields that do not apply to `kind` read as 0 / `''` /
/// empty / false.
#[wasm_bindgen]
#[derive(Debug)]
pub struct WriteStep {
    kind: WriteStepKind,
    key: String,
    header: Vec<u8>,
    ttl_ms: f64,
    argv: String,
    budget_ms: f64,
    wait_ms: f64,
    keep_until: f64,
    outage_only: bool,
    codec: Codec,
    level: u32,
    compressed: bool,
    outcome: WriteOutcome,
    mark_local: bool,
    dropped_tags: String,
    log: String,
    error: String,
}

impl WriteStep {
    fn empty(kind: WriteStepKind) -> WriteStep {
        WriteStep {
            kind,
            key: String::new(),
            header: Vec::new(),
            ttl_ms: 0.0,
            argv: String::new(),
            budget_ms: 0.0,
            wait_ms: 0.0,
            keep_until: 0.0,
            outage_only: false,
            codec: Codec::Deflate,
            level: 0,
            compressed: false,
            outcome: WriteOutcome::Pending,
            mark_local: false,
            dropped_tags: String::new(),
            log: String::new(),
            error: String::new(),
        }
    }

    fn from_core(step: fleetcache_core::WriteStep) -> WriteStep {
        match step {
            fleetcache_core::WriteStep::Store(s) => WriteStep {
                key: s.key,
                header: s.header,
                ttl_ms: s.ttl_ms as f64,
                argv: s.script.map_or_else(String::new, script_argv),
                budget_ms: s.budget_ms,
                wait_ms: s.wait_ms,
                keep_until: s.keep_until.0,
                outage_only: s.outage_only,
                compressed: s.compressed,
                ..WriteStep::empty(WriteStepKind::Store)
            },
            fleetcache_core::WriteStep::Compress(c) => WriteStep {
                key: c.key,
                header: c.header,
                codec: c.codec.into(),
                level: c.level,
                wait_ms: c.wait_ms,
                keep_until: c.keep_until.0,
                outage_only: c.outage_only,
                ..WriteStep::empty(WriteStepKind::Compress)
            },
            fleetcache_core::WriteStep::Release { call, budget_ms } => WriteStep {
                argv: script_argv(call),
                budget_ms,
                ..WriteStep::empty(WriteStepKind::Release)
            },
            fleetcache_core::WriteStep::Done(done) => WriteStep::done(done),
        }
    }

    fn done(done: WriteDone) -> WriteStep {
        WriteStep {
            key: done.key.unwrap_or_default(),
            outcome: match done.result {
                WriteResult::Stored => WriteOutcome::Stored,
                WriteResult::Skipped => WriteOutcome::Skipped,
                WriteResult::Refused => WriteOutcome::Refused,
                WriteResult::Failed => WriteOutcome::Failed,
                WriteResult::Unsent => WriteOutcome::Unsent,
            },
            mark_local: done.mark_local,
            dropped_tags: done.dropped_tags.unwrap_or_default(),
            log: done.log.unwrap_or_default(),
            error: done.error.unwrap_or_default(),
            ..WriteStep::empty(WriteStepKind::Done)
        }
    }
}

#[wasm_bindgen]
impl WriteStep {
    /// What to do.
    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> WriteStepKind {
        self.kind
    }

    /// The entry's Redis key (Store; Done when a key was planned).
    #[wasm_bindgen(getter)]
    pub fn key(&self) -> String {
        self.key.clone()
    }

    /// The envelope header to put before the payload (Store; Compress: the plain value's).
    #[wasm_bindgen(getter)]
    pub fn header(&self) -> Vec<u8> {
        self.header.clone()
    }

    /// The codec to compress with (Compress).
    #[wasm_bindgen(getter)]
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The codec's level, for a codec that takes one (Compress).
    #[wasm_bindgen(getter)]
    pub fn level(&self) -> u32 {
        self.level
    }

    /// The value is `header ++` the Compress step's codec output (Store).
    #[wasm_bindgen(getter)]
    pub fn compressed(&self) -> bool {
        self.compressed
    }

    /// `PX` in ms (Store).
    #[wasm_bindgen(getter, js_name = ttlMs)]
    pub fn ttl_ms(&self) -> f64 {
        self.ttl_ms
    }

    /// The `EVALSHA` argv, NUL-joined (Store: `''` for a plain `SET`, else the value goes
    /// last; Release).
    #[wasm_bindgen(getter)]
    pub fn argv(&self) -> String {
        self.argv.clone()
    }

    /// The command's budget in ms (Store, Release).
    #[wasm_bindgen(getter, js_name = budgetMs)]
    pub fn budget_ms(&self) -> f64 {
        self.budget_ms
    }

    /// How long the caller waits for the store before resolving Next's `set`, in ms; the
    /// write goes on (Store, Compress).
    #[wasm_bindgen(getter, js_name = waitMs)]
    pub fn wait_ms(&self) -> f64 {
        self.wait_ms
    }

    /// Until when the tier keeps this process's copy (Store, Compress).
    #[wasm_bindgen(getter, js_name = keepUntil)]
    pub fn keep_until(&self) -> f64 {
        self.keep_until
    }

    /// The tier keeps the copy for outages only (Store, Compress).
    #[wasm_bindgen(getter, js_name = outageOnly)]
    pub fn outage_only(&self) -> bool {
        self.outage_only
    }

    /// How the write ended (Done).
    #[wasm_bindgen(getter)]
    pub fn outcome(&self) -> WriteOutcome {
        self.outcome
    }

    /// Mark the tier's copy of `key` as this process's own: it never reached Redis (Done).
    #[wasm_bindgen(getter, js_name = markLocal)]
    pub fn mark_local(&self) -> bool {
        self.mark_local
    }

    /// Warning line: tags dropped for being too long (Done), `''` when none.
    #[wasm_bindgen(getter, js_name = droppedTags)]
    pub fn dropped_tags(&self) -> String {
        self.dropped_tags.clone()
    }

    /// Debug line (Done), `''` when none.
    #[wasm_bindgen(getter)]
    pub fn log(&self) -> String {
        self.log.clone()
    }

    /// Error line (Done), `''` when none; with `Failed` the host appends `': '` and its
    /// error's description.
    #[wasm_bindgen(getter)]
    pub fn error(&self) -> String {
        self.error.clone()
    }
}

/// One `set` in progress. Create it with the entry Next handed over (the constructors plan it:
/// header, TTL, compression, lease write or release), then step it: `start`, then `compressed`
/// or `failed` for a Compress step, `sent` or `failed` for every Store or Release step, until
/// a Done step.
#[wasm_bindgen]
#[derive(Debug)]
pub struct WriteMachine {
    inner: fleetcache_core::WriteMachine,
}

#[wasm_bindgen]
impl WriteMachine {
    /// A `'use cache'` entry of `iface` for `cacheKey` whose payload is `payloadLen` bytes;
    /// `tags` NUL-joined. Throws `ERR_KEY_ILL_FORMED` for a key with a lone surrogate.
    #[allow(clippy::too_many_arguments)]
    #[wasm_bindgen(js_name = useCache)]
    pub fn use_cache(
        engine: &mut Engine,
        iface: &Iface,
        #[wasm_bindgen(unchecked_param_type = "string")] cache_key: &JsString,
        tags: &str,
        timestamp: f64,
        revalidate: f64,
        expire: f64,
        stale: f64,
        payload_len: u32,
        now: f64,
    ) -> Result<WriteMachine, JsValue> {
        let cache_key = utf8_key(cache_key)?;
        let tags = split(tags);
        let request = WriteRequest::UseCache {
            iface: iface.get(),
            cache_key: &cache_key,
            tags: &tags,
            timestamp: Millis(timestamp),
            revalidate,
            expire,
            stale,
            payload_len,
        };
        Ok(WriteMachine {
            inner: engine.inner.write_start(request, Millis(now)),
        })
    }

    /// A singular-handler value for `cacheKey`: `kind`, `flags` and `segments` form its
    /// descriptor, `parts` are the lengths of the parts the host appends (JSON first),
    /// `revalidate` and `expire` its `cacheControl` in seconds, `tags` NUL-joined. The entry
    /// is stamped with the start of the regeneration that produced it. Throws
    /// `ERR_KEY_ILL_FORMED` for a key with a lone surrogate.
    #[allow(clippy::too_many_arguments)]
    pub fn incremental(
        engine: &mut Engine,
        #[wasm_bindgen(unchecked_param_type = "string")] cache_key: &JsString,
        kind: ValueKind,
        flags: u8,
        segments: u16,
        tags: &str,
        revalidate: f64,
        expire: f64,
        parts: &[u32],
        now: f64,
    ) -> Result<WriteMachine, JsValue> {
        let cache_key = utf8_key(cache_key)?;
        let tags = split(tags);
        let request = WriteRequest::Incremental {
            cache_key: &cache_key,
            kind: kind as u8,
            flags,
            segments,
            tags: &tags,
            revalidate,
            expire,
            parts,
        };
        Ok(WriteMachine {
            inner: engine.inner.write_start(request, Millis(now)),
        })
    }

    /// A `set` of `cacheKey` that produced nothing to store (Next's entry rejected, the value
    /// could not be encoded): its steps release a lease this process holds on the key.
    pub fn abandoned(
        engine: &mut Engine,
        iface: &Iface,
        #[wasm_bindgen(unchecked_param_type = "string")] cache_key: &JsString,
        now: f64,
    ) -> Result<WriteMachine, JsValue> {
        let cache_key = utf8_key(cache_key)?;
        let request = WriteRequest::Abandoned {
            iface: iface.get(),
            cache_key: &cache_key,
        };
        Ok(WriteMachine {
            inner: engine.inner.write_start(request, Millis(now)),
        })
    }

    /// The first step.
    pub fn start(&mut self, engine: &mut Engine, now: f64) -> WriteStep {
        WriteStep::from_core(engine.inner.write_first(&mut self.inner, Millis(now)))
    }

    /// The last step's command was answered.
    pub fn sent(&mut self, engine: &mut Engine, now: f64) -> WriteStep {
        self.step(engine, WriteInput::Sent, now)
    }

    /// The last step's command got no usable answer.
    pub fn failed(&mut self, engine: &mut Engine, failure: Failure, now: f64) -> WriteStep {
        self.step(engine, WriteInput::Failed(failure.into()), now)
    }

    /// The Compress step's codec produced `bytes` bytes.
    pub fn compressed(&mut self, engine: &mut Engine, bytes: u32, now: f64) -> WriteStep {
        self.step(engine, WriteInput::Compressed(u64::from(bytes)), now)
    }

    /// The host could not send the planned value: nothing is stored, a held lease is let go.
    pub fn abandon(&mut self, engine: &mut Engine, now: f64) -> WriteStep {
        self.step(engine, WriteInput::Abandon, now)
    }

    fn step(&mut self, engine: &mut Engine, input: WriteInput, now: f64) -> WriteStep {
        WriteStep::from_core(engine.inner.write_step(&mut self.inner, input, Millis(now)))
    }
}
