//! The read and renewal machines exported to JS: each call converts the host's input, steps
//! the core's machine and returns one small step object. Nothing is kept between calls but
//! the machine itself, and nothing is decided here.

use fleetcache_core::read_machine as core;
use fleetcache_core::Millis;
use js_sys::JsString;
use wasm_bindgen::prelude::*;

use crate::codes::ValueKind;
use crate::engine::{script_argv, utf8_key, Engine, Iface};
use crate::error::js_error;
use crate::list::split;

/// Who consumes a read's answer.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consumer {
    /// A request that serves the answer: a stale entry may be served once.
    Serves = 0,
    /// A prerender, an ISR regeneration or an outer cache stores the answer: a stale entry
    /// is a miss.
    Caches = 1,
}

impl From<Consumer> for fleetcache_core::Consumer {
    fn from(c: Consumer) -> Self {
        match c {
            Consumer::Serves => fleetcache_core::Consumer::Serves,
            Consumer::Caches => fleetcache_core::Consumer::Caches,
        }
    }
}

/// Why a command brought no reply (the host maps its error codes: `ERR_REDIS_TIMEOUT`,
/// `ERR_REDIS_REPLY`, `ERR_REDIS_CIRCUIT_OPEN`, anything else no connection).
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// It ran out of its budget.
    Timeout = 0,
    /// Redis answered with an error reply.
    ReplyError = 1,
    /// No connection.
    NoConnection = 2,
    /// The circuit breaker kept it from being sent.
    CircuitOpen = 3,
}

impl From<Failure> for core::Failure {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Timeout => core::Failure::Timeout,
            Failure::ReplyError => core::Failure::ReplyError,
            Failure::NoConnection => core::Failure::NoConnection,
            Failure::CircuitOpen => core::Failure::CircuitOpen,
        }
    }
}

/// What the host does next for a read (see `ReadStep`).
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStepKind {
    /// Start the tag refresh without awaiting it, call `refreshed`, and await the refresh
    /// before the next call that carries bytes.
    Refresh = 0,
    /// Call `ownWrite` with this process's write in flight of the cache key, if any.
    OwnWrite = 1,
    /// Call `tier` with the tier's bytes for `key`, if the host holds any.
    PeekTier = 2,
    /// Call `fallback` with the tier's bytes for `key` kept for outages, if any.
    PeekFallback = 3,
    /// Read `key` within `budgetMs` and call `reply` (or `failed`).
    Get = 4,
    /// Call the same method again with at least `need` bytes of prefix.
    NeedMore = 5,
    /// Send `argv` within `budgetMs` and call `leaseReply` (or `failed`).
    Acquire = 6,
    /// Wait `delayMs`, then call `timer`.
    Wait = 7,
    /// Send `argv` within `budgetMs` and call `polled` (or `failed`).
    Poll = 8,
    /// The read is answered: `source`, `served` and the presentation fields.
    Answer = 9,
}

/// What the host does with the tier bytes it gave with its last call.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierAction {
    /// Nothing.
    None = 0,
    /// Keep them (`memoryInsert`) until `keepUntil`; for outages only when `outageOnly`.
    Keep = 1,
    /// Drop the bytes: the index has forgotten the key already.
    Drop = 2,
}

/// What Next is told.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// A hit.
    Fresh = 0,
    /// Served once; Next regenerates it behind the answer.
    Stale = 1,
    /// Stale, shown as fresh: another instance regenerates it.
    AsFresh = 2,
    /// A miss (`undefined` / `null`).
    Miss = 3,
}

/// Where the served bytes come from.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Nothing is served.
    None = 0,
    /// This process's write in flight (`ownWrite`).
    OwnWrite = 1,
    /// The bytes given to `tier`.
    Tier = 2,
    /// The bytes given to `reply`.
    Redis = 3,
    /// The bytes given to the last `polled`.
    Poll = 4,
    /// The bytes given last to `tier` or `fallback`.
    Kept = 5,
}

/// What the host does next for a renewal.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewStepKind {
    /// Wait `delayMs`, then call `timer`.
    Wait = 0,
    /// Send `argv` within `budgetMs`, then call `sent` (or `failed`).
    Send = 1,
    /// The renewals are over.
    Done = 2,
}

/// One step of a read: the fields that do not apply to its kind read as 0, NaN, `''` or
/// empty.
#[wasm_bindgen]
pub struct ReadStep {
    inner: core::ReadStep,
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl ReadStep {
    fn answer(&self) -> Option<&core::ReadAnswer> {
        match &self.inner.action {
            core::ReadAction::Answer(a) => Some(a),
            _ => None,
        }
    }

    fn use_cache(&self) -> Option<&core::UseCacheShown> {
        match self.answer().map(|a| &a.shown) {
            Some(core::Shown::UseCache(s)) => Some(s),
            _ => None,
        }
    }

    fn incremental(&self) -> Option<&core::IncrementalShown> {
        match self.answer().map(|a| &a.shown) {
            Some(core::Shown::Incremental(s)) => Some(s),
            _ => None,
        }
    }
}

#[wasm_bindgen]
impl ReadStep {
    /// What the host does next.
    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> ReadStepKind {
        match &self.inner.action {
            core::ReadAction::Refresh => ReadStepKind::Refresh,
            core::ReadAction::OwnWrite => ReadStepKind::OwnWrite,
            core::ReadAction::PeekTier => ReadStepKind::PeekTier,
            core::ReadAction::PeekFallback => ReadStepKind::PeekFallback,
            core::ReadAction::Get { .. } => ReadStepKind::Get,
            core::ReadAction::NeedMore { .. } => ReadStepKind::NeedMore,
            core::ReadAction::Acquire { .. } => ReadStepKind::Acquire,
            core::ReadAction::Wait { .. } => ReadStepKind::Wait,
            core::ReadAction::Poll { .. } => ReadStepKind::Poll,
            core::ReadAction::Answer(_) => ReadStepKind::Answer,
        }
    }

    /// `Get`: the entry key to read.
    #[wasm_bindgen(getter)]
    pub fn key(&self) -> String {
        match &self.inner.action {
            core::ReadAction::Get { key, .. } => key.clone(),
            _ => String::new(),
        }
    }

    /// `Acquire`, `Poll`: the `EVALSHA` argv to send.
    #[wasm_bindgen(getter)]
    pub fn argv(&self) -> Vec<String> {
        match &self.inner.action {
            core::ReadAction::Acquire { call, .. } | core::ReadAction::Poll { call, .. } => {
                script_argv(call.clone())
            }
            _ => Vec::new(),
        }
    }

    /// `Get`, `Acquire`, `Poll`: the command's budget (ms).
    #[wasm_bindgen(getter, js_name = budgetMs)]
    pub fn budget_ms(&self) -> f64 {
        match &self.inner.action {
            core::ReadAction::Get { budget_ms, .. }
            | core::ReadAction::Acquire { budget_ms, .. }
            | core::ReadAction::Poll { budget_ms, .. } => *budget_ms,
            _ => 0.0,
        }
    }

    /// `NeedMore`: bytes of prefix needed.
    #[wasm_bindgen(getter)]
    pub fn need(&self) -> u32 {
        match &self.inner.action {
            core::ReadAction::NeedMore { need } => u32_of(*need),
            _ => 0,
        }
    }

    /// `Wait`: the pause (ms).
    #[wasm_bindgen(getter, js_name = delayMs)]
    pub fn delay_ms(&self) -> f64 {
        match &self.inner.action {
            core::ReadAction::Wait { delay_ms } => *delay_ms,
            _ => 0.0,
        }
    }

    /// What to do with the tier bytes given with the last call.
    #[wasm_bindgen(getter)]
    pub fn tier(&self) -> TierAction {
        match self.inner.tier {
            core::TierAction::None => TierAction::None,
            core::TierAction::Keep { .. } => TierAction::Keep,
            core::TierAction::Drop => TierAction::Drop,
        }
    }

    /// `Keep`: until when (ms).
    #[wasm_bindgen(getter, js_name = keepUntil)]
    pub fn keep_until(&self) -> f64 {
        match self.inner.tier {
            core::TierAction::Keep { until, .. } => until.0,
            _ => 0.0,
        }
    }

    /// `Keep`: served only while Redis cannot be reached.
    #[wasm_bindgen(getter, js_name = outageOnly)]
    pub fn outage_only(&self) -> bool {
        matches!(
            self.inner.tier,
            core::TierAction::Keep {
                outage_only: true,
                ..
            }
        )
    }

    /// `Answer`: where the served bytes come from.
    #[wasm_bindgen(getter)]
    pub fn source(&self) -> Source {
        match self.answer().map(|a| a.source) {
            Some(core::Source::OwnWrite) => Source::OwnWrite,
            Some(core::Source::Tier) => Source::Tier,
            Some(core::Source::Redis) => Source::Redis,
            Some(core::Source::Poll) => Source::Poll,
            Some(core::Source::Kept) => Source::Kept,
            Some(core::Source::None) | None => Source::None,
        }
    }

    /// `Answer`: what Next is told.
    #[wasm_bindgen(getter)]
    pub fn served(&self) -> Served {
        match self.answer().map(|a| a.served) {
            Some(core::Served::Fresh) => Served::Fresh,
            Some(core::Served::Stale) => Served::Stale,
            Some(core::Served::AsFresh) => Served::AsFresh,
            Some(core::Served::Miss) | None => Served::Miss,
        }
    }

    /// `Answer`: Next regenerates the key in this process.
    #[wasm_bindgen(getter)]
    pub fn regenerates(&self) -> bool {
        self.answer().is_some_and(|a| a.regenerates)
    }

    /// `Answer`: this read won the lease; renew it with `ReadMachine.renewal`.
    #[wasm_bindgen(getter, js_name = holdsLease)]
    pub fn holds_lease(&self) -> bool {
        self.answer().is_some_and(|a| a.holds_lease)
    }

    /// `Answer`: offset of the payload in the served bytes.
    #[wasm_bindgen(getter, js_name = payloadOffset)]
    pub fn payload_offset(&self) -> u32 {
        self.answer().map_or(0, |a| u32_of(a.payload_offset))
    }

    /// `'use cache'` answer: `timestamp` (ms).
    #[wasm_bindgen(getter)]
    pub fn timestamp(&self) -> f64 {
        self.use_cache().map_or(0.0, |s| s.timestamp)
    }

    /// `'use cache'` answer: `revalidate` (s).
    #[wasm_bindgen(getter)]
    pub fn revalidate(&self) -> f64 {
        self.use_cache().map_or(0.0, |s| s.revalidate)
    }

    /// `'use cache'` answer: `expire` (s).
    #[wasm_bindgen(getter)]
    pub fn expire(&self) -> f64 {
        self.use_cache().map_or(0.0, |s| s.expire)
    }

    /// `'use cache'` answer: `stale` (s).
    #[wasm_bindgen(getter)]
    pub fn stale(&self) -> f64 {
        self.use_cache().map_or(0.0, |s| s.stale)
    }

    /// `'use cache'` answer: the entry's tags.
    #[wasm_bindgen(getter)]
    pub fn tags(&self) -> Vec<String> {
        self.use_cache().map_or_else(Vec::new, |s| s.tags.clone())
    }

    /// Singular-handler answer: `lastModified` (ms).
    #[wasm_bindgen(getter, js_name = lastModified)]
    pub fn last_modified(&self) -> f64 {
        self.incremental().map_or(0.0, |s| s.last_modified)
    }

    /// Singular-handler answer: whether to return a `cacheControl`.
    #[wasm_bindgen(getter, js_name = hasCacheControl)]
    pub fn has_cache_control(&self) -> bool {
        self.incremental()
            .is_some_and(|s| s.cache_control.is_some())
    }

    /// Singular-handler answer: `cacheControl.revalidate` (s); NaN means `false`.
    #[wasm_bindgen(getter, js_name = cacheRevalidate)]
    pub fn cache_revalidate(&self) -> f64 {
        self.incremental()
            .and_then(|s| s.cache_control)
            .and_then(|(r, _)| r)
            .unwrap_or(f64::NAN)
    }

    /// Singular-handler answer: `cacheControl.expire` (s); NaN means absent.
    #[wasm_bindgen(getter, js_name = cacheExpire)]
    pub fn cache_expire(&self) -> f64 {
        self.incremental()
            .and_then(|s| s.cache_control)
            .and_then(|(_, e)| e)
            .unwrap_or(f64::NAN)
    }

    /// Singular-handler answer: the value's kind.
    #[wasm_bindgen(getter, js_name = valueKind)]
    pub fn value_kind(&self) -> ValueKind {
        ValueKind::from_wire(self.incremental().map_or(0, |s| s.value_kind))
    }

    /// Singular-handler answer: the descriptor's flag bits (`ValueFlag`s; `Rsc`: `rscData`).
    #[wasm_bindgen(getter, js_name = valueFlags)]
    pub fn value_flags(&self) -> u8 {
        self.incremental().map_or(0, |s| s.value_flags)
    }

    /// Singular-handler answer: number of `segmentData` parts.
    #[wasm_bindgen(getter)]
    pub fn segments(&self) -> u16 {
        self.incremental().map_or(0, |s| s.segments)
    }

    /// Singular-handler answer: lengths of the parts after the payload offset, in order.
    #[wasm_bindgen(getter)]
    pub fn parts(&self) -> Vec<u32> {
        self.incremental()
            .map_or_else(Vec::new, |s| s.parts.clone())
    }

    /// `Answer`: debug log lines (`\n`-separated), `''` when none.
    #[wasm_bindgen(getter)]
    pub fn log(&self) -> String {
        self.answer().map_or_else(String::new, |a| a.log.clone())
    }

    /// `Answer`: error log lines (`\n`-separated), `''` when none.
    #[wasm_bindgen(getter)]
    pub fn error(&self) -> String {
        self.answer().map_or_else(String::new, |a| a.error.clone())
    }
}

/// One read of one cache key, stepped by the host one call at a time (docs/internals.md,
/// "Request machines").
#[wasm_bindgen]
pub struct ReadMachine {
    inner: core::ReadMachine,
}

fn total(prefix: &Option<Vec<u8>>, total_len: f64) -> usize {
    let given = prefix.as_ref().map_or(0, Vec::len);
    if total_len.is_finite() && total_len >= given as f64 {
        // Saturates on the way to usize: a length beyond the address space is no real value.
        total_len as usize
    } else {
        given
    }
}

fn bytes(prefix: &Option<Vec<u8>>, total_len: usize) -> Option<core::Bytes<'_>> {
    prefix.as_ref().map(|p| core::Bytes {
        prefix: p,
        total_len,
    })
}

impl ReadMachine {
    fn step(
        &mut self,
        engine: &mut Engine,
        input: core::ReadInput<'_>,
        now: f64,
    ) -> Result<ReadStep, JsValue> {
        engine
            .inner
            .read_step(&mut self.inner, input, Millis(now))
            .map(|inner| ReadStep { inner })
            .map_err(|e| js_error(&e))
    }
}

#[wasm_bindgen]
impl ReadMachine {
    /// A `'use cache'` read of `cacheKey` under `iface` with the request's implicit tags
    /// (NUL-joined), begun at `now`; `token` is a random string (`randomToken`), the lease
    /// token should the read request the lease. Throws `ERR_KEY_ILL_FORMED` for a key with a
    /// lone surrogate.
    #[wasm_bindgen(js_name = useCache)]
    pub fn use_cache(
        engine: &Engine,
        iface: &Iface,
        #[wasm_bindgen(unchecked_param_type = "string")] cache_key: &JsString,
        soft_tags: &str,
        consumer: Consumer,
        token: String,
        now: f64,
    ) -> Result<ReadMachine, JsValue> {
        let key = utf8_key(cache_key)?;
        let soft = split(soft_tags).into_iter().map(str::to_owned).collect();
        Ok(ReadMachine {
            inner: engine.inner.read_use_cache(
                &iface.get(),
                &key,
                soft,
                consumer.into(),
                token,
                Millis(now),
            ),
        })
    }

    /// A singular-handler read of `cacheKey` begun at `now`. A FETCH read (`isFetch`) is
    /// judged with `softTags` (its tags and the route's implicit tags, NUL-joined) and its own
    /// `requestRevalidate` (NaN when none); `onDemand` for an on-demand revalidation. Throws
    /// `ERR_KEY_ILL_FORMED` for a key with a lone surrogate.
    #[allow(clippy::too_many_arguments)]
    pub fn incremental(
        engine: &Engine,
        #[wasm_bindgen(unchecked_param_type = "string")] cache_key: &JsString,
        is_fetch: bool,
        soft_tags: &str,
        request_revalidate: f64,
        consumer: Consumer,
        on_demand: bool,
        token: String,
        now: f64,
    ) -> Result<ReadMachine, JsValue> {
        let key = utf8_key(cache_key)?;
        let soft = split(soft_tags).into_iter().map(str::to_owned).collect();
        Ok(ReadMachine {
            inner: engine.inner.read_incremental(
                &key,
                is_fetch,
                soft,
                request_revalidate,
                consumer.into(),
                on_demand,
                token,
                Millis(now),
            ),
        })
    }

    /// The entry's Redis key.
    #[wasm_bindgen(getter, js_name = entryKey)]
    pub fn entry_key(&self) -> String {
        self.inner.entry_key().to_owned()
    }

    /// Begins the read.
    pub fn start(&mut self, engine: &mut Engine, now: f64) -> Result<ReadStep, JsValue> {
        self.step(engine, core::ReadInput::Start, now)
    }

    /// The refresh asked for by `Refresh` is under way.
    pub fn refreshed(&mut self, engine: &mut Engine, now: f64) -> Result<ReadStep, JsValue> {
        self.step(engine, core::ReadInput::Refreshed, now)
    }

    /// This process's write in flight of the cache key (`undefined`: none).
    #[wasm_bindgen(js_name = ownWrite)]
    pub fn own_write(
        &mut self,
        engine: &mut Engine,
        value: Option<Vec<u8>>,
        now: f64,
    ) -> Result<ReadStep, JsValue> {
        let len = value.as_ref().map_or(0, Vec::len);
        self.step(engine, core::ReadInput::OwnWrite(bytes(&value, len)), now)
    }

    /// The tier's bytes for the key (`undefined`: none): `prefix` of a `totalLen`-byte value.
    pub fn tier(
        &mut self,
        engine: &mut Engine,
        prefix: Option<Vec<u8>>,
        total_len: f64,
        now: f64,
    ) -> Result<ReadStep, JsValue> {
        let len = total(&prefix, total_len);
        self.step(engine, core::ReadInput::Tier(bytes(&prefix, len)), now)
    }

    /// The tier's bytes kept for outages (`undefined`: none), after a failed read.
    pub fn fallback(
        &mut self,
        engine: &mut Engine,
        prefix: Option<Vec<u8>>,
        total_len: f64,
        now: f64,
    ) -> Result<ReadStep, JsValue> {
        let len = total(&prefix, total_len);
        self.step(engine, core::ReadInput::Fallback(bytes(&prefix, len)), now)
    }

    /// The entry read (`undefined`: none stored).
    pub fn reply(
        &mut self,
        engine: &mut Engine,
        prefix: Option<Vec<u8>>,
        total_len: f64,
        now: f64,
    ) -> Result<ReadStep, JsValue> {
        let len = total(&prefix, total_len);
        self.step(engine, core::ReadInput::Reply(bytes(&prefix, len)), now)
    }

    /// A poll's reply: the entry (`undefined`: none) and whether its lease still exists.
    pub fn polled(
        &mut self,
        engine: &mut Engine,
        prefix: Option<Vec<u8>>,
        total_len: f64,
        leased: bool,
        now: f64,
    ) -> Result<ReadStep, JsValue> {
        let len = total(&prefix, total_len);
        let input = core::ReadInput::Polled {
            entry: bytes(&prefix, len),
            leased,
        };
        self.step(engine, input, now)
    }

    /// The lease script's integer reply; -1 when Redis did not answer or there is no Redis.
    #[wasm_bindgen(js_name = leaseReply)]
    pub fn lease_reply(
        &mut self,
        engine: &mut Engine,
        code: f64,
        now: f64,
    ) -> Result<ReadStep, JsValue> {
        let code = if code.is_finite() { code as i64 } else { -1 };
        self.step(engine, core::ReadInput::LeaseReply(code), now)
    }

    /// The command asked for brought no reply.
    pub fn failed(
        &mut self,
        engine: &mut Engine,
        failure: Failure,
        now: f64,
    ) -> Result<ReadStep, JsValue> {
        self.step(engine, core::ReadInput::Failed(failure.into()), now)
    }

    /// The pause asked for by `Wait` is over.
    pub fn timer(&mut self, engine: &mut Engine, now: f64) -> Result<ReadStep, JsValue> {
        self.step(engine, core::ReadInput::Timer, now)
    }

    /// The value the answer served could not be decoded into Next's shape: the read goes on
    /// as for an unreadable entry.
    pub fn undecodable(&mut self, engine: &mut Engine, now: f64) -> Result<ReadStep, JsValue> {
        self.step(engine, core::ReadInput::Undecodable, now)
    }

    /// The renewal of the lease this read won (`holdsLease`), if it won one.
    pub fn renewal(&self, _engine: &Engine) -> Option<RenewMachine> {
        self.inner.renewal().map(|inner| RenewMachine { inner })
    }
}

/// One step of a renewal.
#[wasm_bindgen]
pub struct RenewStep {
    inner: core::RenewStep,
}

#[wasm_bindgen]
impl RenewStep {
    /// What the host does next.
    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> RenewStepKind {
        match self.inner {
            core::RenewStep::Wait { .. } => RenewStepKind::Wait,
            core::RenewStep::Send { .. } => RenewStepKind::Send,
            core::RenewStep::Done { .. } => RenewStepKind::Done,
        }
    }

    /// `Wait`: the pause (ms).
    #[wasm_bindgen(getter, js_name = delayMs)]
    pub fn delay_ms(&self) -> f64 {
        match self.inner {
            core::RenewStep::Wait { delay_ms } => delay_ms,
            _ => 0.0,
        }
    }

    /// `Send`: the `EVALSHA` argv.
    #[wasm_bindgen(getter)]
    pub fn argv(&self) -> Vec<String> {
        match &self.inner {
            core::RenewStep::Send { call, .. } => script_argv(call.clone()),
            _ => Vec::new(),
        }
    }

    /// `Send`: the command's budget (ms).
    #[wasm_bindgen(getter, js_name = budgetMs)]
    pub fn budget_ms(&self) -> f64 {
        match self.inner {
            core::RenewStep::Send { budget_ms, .. } => budget_ms,
            _ => 0.0,
        }
    }

    /// `Done`: a debug line, `''` when none.
    #[wasm_bindgen(getter)]
    pub fn log(&self) -> String {
        match &self.inner {
            core::RenewStep::Done { log } => log.clone(),
            _ => String::new(),
        }
    }
}

/// Renews a lease a read won, while this process holds it.
#[wasm_bindgen]
pub struct RenewMachine {
    inner: core::RenewMachine,
}

impl RenewMachine {
    fn step(
        &mut self,
        engine: &mut Engine,
        input: core::RenewInput,
        now: f64,
    ) -> Result<RenewStep, JsValue> {
        engine
            .inner
            .renew_step(&mut self.inner, input, Millis(now))
            .map(|inner| RenewStep { inner })
            .map_err(|e| js_error(&e))
    }
}

#[wasm_bindgen]
impl RenewMachine {
    /// Begins the renewals.
    pub fn start(&mut self, engine: &mut Engine, now: f64) -> Result<RenewStep, JsValue> {
        self.step(engine, core::RenewInput::Start, now)
    }

    /// The pause asked for by `Wait` is over.
    pub fn timer(&mut self, engine: &mut Engine, now: f64) -> Result<RenewStep, JsValue> {
        self.step(engine, core::RenewInput::Timer, now)
    }

    /// The renewal was answered: `renewed` when the script replied 1.
    pub fn sent(
        &mut self,
        engine: &mut Engine,
        renewed: bool,
        now: f64,
    ) -> Result<RenewStep, JsValue> {
        self.step(engine, core::RenewInput::Sent(renewed), now)
    }

    /// The renewal brought no reply.
    pub fn failed(
        &mut self,
        engine: &mut Engine,
        failure: Failure,
        now: f64,
    ) -> Result<RenewStep, JsValue> {
        self.step(engine, core::RenewInput::Failed(failure.into()), now)
    }
}
