//! The write machine exported to JS: one `set` of either Next surface, stepped one input at a
//! time. Every call returns one [`WriteStep`], packed (`pack.rs`): one buffer the host decodes
//! (js-host/src/write-driver.ts) instead of a class with a getter per field; nothing is kept
//! between calls but the machine and, for Rust callers, the step it answered last.

use fleetcache_core::{Millis, WriteDone, WriteInput, WriteRequest, WriteResult};
use js_sys::JsString;
use wasm_bindgen::prelude::*;

use crate::codes::{Codec, ValueKind};
use crate::engine::{script_argv, utf8_key, Engine, Iface};
use crate::list::split;
use crate::pack::Packer;
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
/// empty / false. JS gets it packed, in this order: `kind`, `key`, `header`, `codec`, `level`,
/// `compressed`, `ttlMs`, `argv`, `budgetMs`, `waitMs`, `keepUntil`, `outageOnly`, `outcome`,
/// `markLocal`, `droppedTags`, `log`, `error` (numbers and flags as numbers, `header` as bytes,
/// the rest as text; `argv` NUL-joined).
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

impl WriteStep {
    /// The step as JS reads it (see the type's docs for the order).
    fn pack(&self) -> Vec<u8> {
        Packer::default()
            .num(f64::from(self.kind as u8))
            .text(&self.key)
            .bytes(&self.header)
            .num(f64::from(self.codec as u8))
            .num(f64::from(self.level))
            .flag(self.compressed)
            .num(self.ttl_ms)
            .text(&self.argv)
            .num(self.budget_ms)
            .num(self.wait_ms)
            .num(self.keep_until)
            .flag(self.outage_only)
            .num(f64::from(self.outcome as u8))
            .flag(self.mark_local)
            .text(&self.dropped_tags)
            .text(&self.log)
            .text(&self.error)
            .finish()
    }
}

impl WriteStep {
    /// What to do.
    pub fn kind(&self) -> WriteStepKind {
        self.kind
    }

    /// The entry's Redis key (Store; Done when a key was planned).
    pub fn key(&self) -> String {
        self.key.clone()
    }

    /// The envelope header to put before the payload (Store; Compress: the plain value's).
    pub fn header(&self) -> Vec<u8> {
        self.header.clone()
    }

    /// The codec to compress with (Compress).
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The codec's level, for a codec that takes one (Compress).
    pub fn level(&self) -> u32 {
        self.level
    }

    /// The value is `header ++` the Compress step's codec output (Store).
    pub fn compressed(&self) -> bool {
        self.compressed
    }

    /// `PX` in ms (Store).
    pub fn ttl_ms(&self) -> f64 {
        self.ttl_ms
    }

    /// The `EVALSHA` argv, NUL-joined (Store: `''` for a plain `SET`, else the value goes
    /// last; Release).
    pub fn argv(&self) -> String {
        self.argv.clone()
    }

    /// The command's budget in ms (Store, Release).
    pub fn budget_ms(&self) -> f64 {
        self.budget_ms
    }

    /// How long the caller waits for the store before resolving Next's `set`, in ms; the
    /// write goes on (Store, Compress).
    pub fn wait_ms(&self) -> f64 {
        self.wait_ms
    }

    /// Until when the tier keeps this process's copy (Store, Compress).
    pub fn keep_until(&self) -> f64 {
        self.keep_until
    }

    /// The tier keeps the copy for outages only (Store, Compress).
    pub fn outage_only(&self) -> bool {
        self.outage_only
    }

    /// How the write ended (Done).
    pub fn outcome(&self) -> WriteOutcome {
        self.outcome
    }

    /// Mark the tier's copy of `key` as this process's own: it never reached Redis (Done).
    pub fn mark_local(&self) -> bool {
        self.mark_local
    }

    /// Warning line: tags dropped for being too long (Done), `''` when none.
    pub fn dropped_tags(&self) -> String {
        self.dropped_tags.clone()
    }

    /// Debug line (Done), `''` when none.
    pub fn log(&self) -> String {
        self.log.clone()
    }

    /// Error line (Done), `''` when none; with `Failed` the host appends `': '` and its
    /// error's description.
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
    /// The step answered last, for Rust callers (JS gets it packed).
    last: Option<WriteStep>,
}

#[wasm_bindgen]
impl WriteMachine {
    /// A `'use cache'` entry of `iface` for `cacheKey` whose payload is `payloadLen` bytes;
    /// `tags` NUL-joined. `wall`: the wall clock (`Date.now()`), or NaN where the host has
    /// one clock: an entry written while `now` runs ahead of it is stamped on it
    /// (`fleetcache_core::time::ahead_of_wall`). Throws `ERR_KEY_ILL_FORMED` for a key with a
    /// lone surrogate.
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
        wall: f64,
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
            inner: engine
                .inner
                .write_start_at(request, Millis(now), Millis(wall)),
            last: None,
        })
    }

    /// A singular-handler value for `cacheKey`: `kind`, `flags` and `segments` form its
    /// descriptor, `parts` are the lengths of the parts the host appends (JSON first),
    /// `revalidate` and `expire` its `cacheControl` in seconds, `tags` NUL-joined. The entry
    /// is stamped with the start of the regeneration that produced it, which the core picks
    /// from what the writing request's own reads of the key answered: `ownStart`,
    /// `ownFreshAt` and `ownFreshDue` the least of their answers' `OwnStart`/`OwnFreshAt`/
    /// `OwnFreshDue` fields, `ownWrittenBack` and `ownWrittenBackMade` the `WrittenBack` and
    /// `WrittenBackMade` of the answer that served the value written (NaN for each when none),
    /// else the engine's record of the key; `wall` as for `useCache`. Throws
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
        own_start: f64,
        own_fresh_at: f64,
        own_fresh_due: f64,
        own_written_back: f64,
        own_written_back_made: f64,
        now: f64,
        wall: f64,
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
            own: fleetcache_core::regen::Own {
                start: own_start,
                fresh_at: own_fresh_at,
                fresh_due: own_fresh_due,
                written_back: own_written_back,
                written_back_made: own_written_back_made,
            },
        };
        Ok(WriteMachine {
            inner: engine
                .inner
                .write_start_at(request, Millis(now), Millis(wall)),
            last: None,
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
            last: None,
        })
    }

    /// The first step, packed (`WriteStep`).
    pub fn start(&mut self, engine: &mut Engine, now: f64) -> Vec<u8> {
        self.step(engine, None, now)
    }

    /// The last step's command was answered; the next step, packed.
    pub fn sent(&mut self, engine: &mut Engine, now: f64) -> Vec<u8> {
        self.step(engine, Some(WriteInput::Sent), now)
    }

    /// The last step's command got no usable answer (a `Failure`); the next step, packed.
    /// Throws for a number that is no `Failure`.
    pub fn failed(
        &mut self,
        engine: &mut Engine,
        #[wasm_bindgen(unchecked_param_type = "Failure")] failure: f64,
        now: f64,
    ) -> Result<Vec<u8>, JsValue> {
        self.step_with(engine, NumberInput::Failed, failure, now)
    }

    /// The Compress step's codec produced `bytes` bytes; the next step, packed.
    pub fn compressed(
        &mut self,
        engine: &mut Engine,
        bytes: f64,
        now: f64,
    ) -> Result<Vec<u8>, JsValue> {
        self.step_with(engine, NumberInput::Compressed, bytes, now)
    }

    /// The host could not send the planned value: nothing is stored, a held lease is let go.
    /// The next step, packed.
    pub fn abandon(&mut self, engine: &mut Engine, now: f64) -> Vec<u8> {
        self.step(engine, Some(WriteInput::Abandon), now)
    }
}

/// Which input a number given to [`WriteMachine::step_with`] is.
#[derive(Clone, Copy)]
enum NumberInput {
    /// A `Failure`.
    Failed,
    /// `compressed`'s byte count.
    Compressed,
}

impl WriteMachine {
    // Not inlined into each input method: one copy of the stepping and packing code (the wasm
    // size budget, docs/decisions/0028-wasm-size-budget.md), as the read machine's `step`.
    // `None` is the first step (`start`): with it here, `start`, `sent` and `abandon` differ
    // only in a constant and wasm-opt keeps one copy of the glue wasm-bindgen writes around
    // them.
    #[inline(never)]
    fn step(&mut self, engine: &mut Engine, input: Option<WriteInput>, now: f64) -> Vec<u8> {
        let step = match input {
            None => engine.inner.write_first(&mut self.inner, Millis(now)),
            Some(input) => engine.inner.write_step(&mut self.inner, input, Millis(now)),
        };
        self.answer(step)
    }

    /// `failed` and `compressed`: one number each, read here rather than by wasm-bindgen's
    /// glue, so that the two exports differ only in a constant and wasm-opt keeps one copy of
    /// their borrowing code (the wasm size budget, docs/decisions/0028-wasm-size-budget.md).
    #[inline(never)]
    fn step_with(
        &mut self,
        engine: &mut Engine,
        kind: NumberInput,
        n: f64,
        now: f64,
    ) -> Result<Vec<u8>, JsValue> {
        let input = match kind {
            NumberInput::Failed => WriteInput::Failed(Failure::read(n)?.into()),
            // `as` saturates: NaN and negatives are 0.
            NumberInput::Compressed => WriteInput::Compressed(n as u64),
        };
        Ok(self.step(engine, Some(input), now))
    }

    fn answer(&mut self, step: fleetcache_core::WriteStep) -> Vec<u8> {
        let step = WriteStep::from_core(step);
        let packed = step.pack();
        self.last = Some(step);
        packed
    }

    /// The step answered last (for Rust callers; JS gets each step packed).
    pub fn last_step(&self) -> Option<&WriteStep> {
        self.last.as_ref()
    }
}
