//! The read and renewal machines exported to JS: each call converts the host's input, steps
//! the core's machine and returns one small step object. Nothing is kept between calls but
//! the machine itself, and nothing is decided here.

use fleetcache_core::read_machine as core;
use fleetcache_core::Millis;
use js_sys::JsString;
use wasm_bindgen::prelude::*;

use crate::engine::{call_argv, utf8_key, Engine, Iface};
use crate::error::js_error;
use crate::list::{items, SEP};
use crate::pack::Packer;

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
    /// The transport held it back (`ERR_REDIS_HELD_BACK`): not sent, Redis not at fault.
    HeldBack = 4,
}

impl Failure {
    /// The `Failure` whose value `n` is, for the inputs that take it as a number; when it is
    /// none, the error wasm-bindgen's glue threw for a `Failure` parameter. Returned, not
    /// thrown: a throw here would leave the machine and the engine borrowed for good, where
    /// the glue released them before throwing.
    pub(crate) fn read(n: f64) -> Result<Failure, JsValue> {
        [
            Failure::Timeout,
            Failure::ReplyError,
            Failure::NoConnection,
            Failure::CircuitOpen,
            Failure::HeldBack,
        ]
        .into_iter()
        .find(|f| f64::from(*f as u8) == n)
        .ok_or_else(|| JsError::new("invalid enum value passed").into())
    }
}

/// Which of the methods that offer bytes with a total length [`ReadMachine::offer`] runs.
#[derive(Clone, Copy)]
enum Offer {
    Tier,
    Fallback,
    StartWithTier,
    StartWithHeld,
}

/// Which input a number given to [`RenewMachine::step_with`] is.
#[derive(Clone, Copy)]
enum RenewNumber {
    /// `sent`'s script reply.
    Sent,
    /// A `Failure`.
    Failed,
}

/// Which text of the last step [`ReadMachine::text`] reads.
#[derive(Clone, Copy)]
enum StepText {
    Argv,
    Log,
    Error,
}

/// Which input a number given to [`ReadMachine::step_with`] is.
#[derive(Clone, Copy)]
enum NumberInput {
    /// `leaseReply`'s integer reply.
    LeaseReply,
    /// A `Failure`.
    Failed,
}

impl From<Failure> for core::Failure {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Timeout => core::Failure::Timeout,
            Failure::ReplyError => core::Failure::ReplyError,
            Failure::NoConnection => core::Failure::NoConnection,
            Failure::CircuitOpen => core::Failure::CircuitOpen,
            Failure::HeldBack => core::Failure::HeldBack,
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
    /// Send `argv` (a read) within `budgetMs` and call `polled` with the entry and whether
    /// the page-write sequence was at the write named (or `failed`).
    PageRead = 10,
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

/// The slots of a read machine's fields area (`ReadMachine.fields`): the numbers of the step
/// the machine answered last. Each step writes every slot; a slot that does not apply to the
/// step's kind holds 0 or NaN (as the `ReadStep` accessor of the same name).
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadField {
    /// `Get`, `Acquire`, `Poll`, `PageRead`: the command's budget (ms).
    BudgetMs = 0,
    /// `NeedMore`: bytes of prefix needed.
    Need = 1,
    /// `Wait`: the pause (ms).
    DelayMs = 2,
    /// What to do with the tier bytes given with the last call (`TierAction`).
    Tier = 3,
    /// `Keep`: until when (ms).
    KeepUntil = 4,
    /// `Keep`: 1 when served only while Redis cannot be reached.
    OutageOnly = 5,
    /// `Answer`: `Source`.
    Source = 6,
    /// `Answer`: `Served`.
    Served = 7,
    /// `Answer`: 1 when Next regenerates the key in this process.
    Regenerates = 8,
    /// `Answer`: 1 when this read won the lease (renew it with `renewal`).
    HoldsLease = 9,
    /// `Answer`: offset of the payload in the served bytes.
    PayloadOffset = 10,
    /// `'use cache'` answer: `timestamp` (ms).
    Timestamp = 11,
    /// `'use cache'` answer: `revalidate` (s).
    Revalidate = 12,
    /// `'use cache'` answer: `expire` (s).
    Expire = 13,
    /// `'use cache'` answer: `stale` (s).
    Stale = 14,
    /// Singular-handler answer: `lastModified` (ms).
    LastModified = 15,
    /// Singular-handler answer: 1 when a `cacheControl` is returned.
    HasCacheControl = 16,
    /// Singular-handler answer: `cacheControl.revalidate` (s); NaN means `false`.
    CacheRevalidate = 17,
    /// Singular-handler answer: `cacheControl.expire` (s); NaN means absent.
    CacheExpire = 18,
    /// Singular-handler answer: the value kind's code.
    ValueKind = 19,
    /// Singular-handler answer: the descriptor's flag bits.
    ValueFlags = 20,
    /// Singular-handler answer: number of `segmentData` parts.
    Segments = 21,
    /// `Answer`: 1 when `log()` has lines.
    HasLog = 22,
    /// `Answer`: 1 when `error()` has lines.
    HasError = 23,
    /// 1 when `startWithTier` gave the machine the tier bytes offered (`Tier` is then about
    /// them); 2 when `startWithHeld` gave it the store's bytes as the `Get`'s reply too (`Tier`
    /// is then about those); 0 after every other call.
    TookTier = 24,
    /// `'use cache'` answer: byte address in `memory()` of the entry's tags, NUL-joined UTF-8
    /// (valid until the machine's next step); 0 for another step.
    TagsAt = 25,
    /// `'use cache'` answer: length in bytes of those tags (0: none).
    TagsLen = 26,
    /// Singular-handler answer: byte address in `memory()` of the lengths of the parts after
    /// the payload offset, in order, as `u32`s (valid until the machine's next step).
    PartsAt = 27,
    /// Singular-handler answer: number of those lengths.
    PartsLen = 28,
    /// `Keep`: the page generation to bind the copy to (`memoryMark`), 0 for none.
    PageGen = 29,
    /// `Keep`: the number the command that brought the bytes went out under (`memoryInsert`'s
    /// `order`). `Get`, `Poll` (which never keep): the number this command goes out under; a
    /// read that joins it passes it to `reply` / `polled`.
    Order = 30,
    /// 1 when the read, made or reused and not started yet, asks for the tier first if started
    /// now (core `Engine::read_asks_tier_first`): the host then offers the tier's bytes with
    /// `startWithTier`, else it calls `start`. Written by `useCache`, `incremental` and their
    /// reuses; the first step rewrites it.
    AsksTier = 31,
    /// 1 when the step judged the tier's (or the held store's) bytes given with the call by a
    /// header the engine's index keeps with them, or left the one it judged kept there (core
    /// `ReadMachine::header_kept`): the host may offer those same bytes without a prefix
    /// (`startWithTier`, `tier`, `startWithHeld`) while it holds them.
    HeaderKept = 32,
    /// Singular-handler answer after which Next regenerates: when the read began (core
    /// `ReadAnswer::own`, `Own::start`); NaN otherwise. The handler instance keeps, per key,
    /// the least of each `Own*` field over the request's answers and hands them back with the
    /// request's write of the key (`WriteMachine.incremental`), and the core decides.
    OwnStart = 33,
    /// Singular-handler fresh answer Next may call due on its own: when the read began
    /// (`Own::fresh_at`); NaN otherwise.
    OwnFreshAt = 34,
    /// With `OwnFreshAt`: when Next calls it due (`Own::fresh_due`); NaN otherwise.
    OwnFreshDue = 35,
    /// Singular-handler answer that serves a value: the creation time a write of that very
    /// value back must carry (`Own::written_back`; `WriteMachine.incremental`'s `ownWrittenBack`
    /// for a write of the value object `get` returned); NaN otherwise.
    WrittenBack = 36,
    /// With `WrittenBack`: when that value was made, which its tags judge it by
    /// (`Own::written_back_made`, `WriteMachine.incremental`'s `ownWrittenBackMade`).
    WrittenBackMade = 37,
    /// 1 when the machine, as this step leaves it, holds more than a pooled machine may (core
    /// `ReadMachine::held_bytes` with the step and the answer's tags, over
    /// `POOLED_HOLD_BYTES`): a long cache key, an entry's thousands of tags. The host parks it
    /// (`park`) before pooling it once the read is over; 0 after `park`.
    HoldsBack = 38,
}

/// Number of slots in a read machine's fields area.
const READ_FIELDS: usize = 39;

/// One step of a read, as the Rust side sees it (the binding's tests, the fields area): the
/// accessors that do not apply to its kind read as 0, NaN, `''` or empty. JS never gets one:
/// it gets the kind, and reads the rest from the machine.
#[derive(Clone, Debug)]
pub struct ReadStep {
    inner: core::ReadStep,
    /// `Get`, `Poll`: the number the command goes out under (core `ReadMachine::order`).
    sent: u64,
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

impl ReadStep {
    /// What the host does next.
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
            core::ReadAction::PageRead { .. } => ReadStepKind::PageRead,
            core::ReadAction::Answer(_) => ReadStepKind::Answer,
        }
    }

    /// `Get`: the entry key to read.
    pub fn key(&self) -> String {
        match &self.inner.action {
            core::ReadAction::Get { key, .. } => key.clone(),
            _ => String::new(),
        }
    }

    /// `Acquire`, `Poll`, `PageRead`: the `EVALSHA` argv to send, NUL-joined.
    pub fn argv(&self) -> String {
        match &self.inner.action {
            core::ReadAction::Acquire { call, .. }
            | core::ReadAction::Poll { call, .. }
            | core::ReadAction::PageRead { call, .. } => call_argv(call),
            _ => String::new(),
        }
    }

    /// `Get`, `Acquire`, `Poll`, `PageRead`: the command's budget (ms).
    pub fn budget_ms(&self) -> f64 {
        match &self.inner.action {
            core::ReadAction::Get { budget_ms, .. }
            | core::ReadAction::Acquire { budget_ms, .. }
            | core::ReadAction::Poll { budget_ms, .. }
            | core::ReadAction::PageRead { budget_ms, .. } => *budget_ms,
            _ => 0.0,
        }
    }

    /// `NeedMore`: bytes of prefix needed.
    pub fn need(&self) -> u32 {
        match &self.inner.action {
            core::ReadAction::NeedMore { need } => u32_of(*need),
            _ => 0,
        }
    }

    /// `Wait`: the pause (ms).
    pub fn delay_ms(&self) -> f64 {
        match &self.inner.action {
            core::ReadAction::Wait { delay_ms } => *delay_ms,
            _ => 0.0,
        }
    }

    /// What to do with the tier bytes given with the last call.
    pub fn tier(&self) -> TierAction {
        match self.inner.tier {
            core::TierAction::None => TierAction::None,
            core::TierAction::Keep { .. } => TierAction::Keep,
            core::TierAction::Drop => TierAction::Drop,
        }
    }

    /// `Keep`: until when (ms).
    pub fn keep_until(&self) -> f64 {
        match self.inner.tier {
            core::TierAction::Keep { until, .. } => until.0,
            _ => 0.0,
        }
    }

    /// `Keep`: the number the command that brought the bytes went out under. `Get`, `Poll`
    /// (which never keep): the number this command goes out under.
    pub fn order(&self) -> f64 {
        match self.inner.tier {
            core::TierAction::Keep { order, .. } => order as f64,
            _ => self.sent as f64,
        }
    }

    /// `Keep`: served only while Redis cannot be reached.
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
    pub fn served(&self) -> Served {
        match self.answer().map(|a| a.served) {
            Some(core::Served::Fresh) => Served::Fresh,
            Some(core::Served::Stale) => Served::Stale,
            Some(core::Served::AsFresh) => Served::AsFresh,
            Some(core::Served::Miss) | None => Served::Miss,
        }
    }

    /// `Answer`: Next regenerates the key in this process.
    pub fn regenerates(&self) -> bool {
        self.answer().is_some_and(|a| a.regenerates)
    }

    /// `Answer` of the singular handler: what it leaves for the same request's write of the
    /// key (core `ReadAnswer::own`); `Own::NONE` otherwise.
    pub fn own(&self) -> fleetcache_core::regen::Own {
        self.answer()
            .map_or(fleetcache_core::regen::Own::NONE, |a| a.own)
    }

    /// `Answer`: this read won the lease; renew it with `ReadMachine.renewal`.
    pub fn holds_lease(&self) -> bool {
        self.answer().is_some_and(|a| a.holds_lease)
    }

    /// `Answer`: offset of the payload in the served bytes.
    pub fn payload_offset(&self) -> u32 {
        self.answer().map_or(0, |a| u32_of(a.payload_offset))
    }

    /// `'use cache'` answer: `timestamp` (ms).
    pub fn timestamp(&self) -> f64 {
        self.use_cache().map_or(0.0, |s| s.timestamp)
    }

    /// `'use cache'` answer: `revalidate` (s).
    pub fn revalidate(&self) -> f64 {
        self.use_cache().map_or(0.0, |s| s.revalidate)
    }

    /// `'use cache'` answer: `expire` (s).
    pub fn expire(&self) -> f64 {
        self.use_cache().map_or(0.0, |s| s.expire)
    }

    /// `'use cache'` answer: `stale` (s).
    pub fn stale(&self) -> f64 {
        self.use_cache().map_or(0.0, |s| s.stale)
    }

    /// `'use cache'` answer: the entry's tags.
    pub fn tags(&self) -> Vec<String> {
        self.use_cache()
            .map_or_else(Vec::new, |s| s.tags().to_vec())
    }

    /// Singular-handler answer: `lastModified` (ms).
    pub fn last_modified(&self) -> f64 {
        self.incremental().map_or(0.0, |s| s.last_modified)
    }

    /// Singular-handler answer: whether to return a `cacheControl`.
    pub fn has_cache_control(&self) -> bool {
        self.incremental()
            .is_some_and(|s| s.cache_control.is_some())
    }

    /// Singular-handler answer: `cacheControl.revalidate` (s); NaN means `false`.
    pub fn cache_revalidate(&self) -> f64 {
        self.incremental()
            .and_then(|s| s.cache_control)
            .and_then(|(r, _)| r)
            .unwrap_or(f64::NAN)
    }

    /// Singular-handler answer: `cacheControl.expire` (s); NaN means absent.
    pub fn cache_expire(&self) -> f64 {
        self.incremental()
            .and_then(|s| s.cache_control)
            .and_then(|(_, e)| e)
            .unwrap_or(f64::NAN)
    }

    /// Singular-handler answer: the value kind's code (0 null, 1 APP_PAGE, 2 PAGES,
    /// 3 APP_ROUTE, 4 FETCH, 5 REDIRECT, 6 IMAGE).
    pub fn value_kind(&self) -> u8 {
        self.incremental().map_or(0, |s| s.value_kind)
    }

    /// Singular-handler answer: the descriptor's flag bits (1: `rscData` present).
    pub fn value_flags(&self) -> u8 {
        self.incremental().map_or(0, |s| s.value_flags)
    }

    /// Singular-handler answer: number of `segmentData` parts.
    pub fn segments(&self) -> u16 {
        self.incremental().map_or(0, |s| s.segments)
    }

    /// Singular-handler answer: lengths of the parts after the payload offset, in order.
    pub fn parts(&self) -> Vec<u32> {
        self.incremental()
            .map_or_else(Vec::new, |s| s.parts.clone())
    }

    /// `Answer`: debug log lines (`\n`-separated), `''` when none.
    pub fn log(&self) -> String {
        self.answer().map_or_else(String::new, |a| a.log.clone())
    }

    /// `Answer`: error log lines (`\n`-separated), `''` when none.
    pub fn error(&self) -> String {
        self.answer().map_or_else(String::new, |a| a.error.clone())
    }
}

/// One read of one cache key, stepped by the host one call at a time (docs/internals.md,
/// "Request machines").
///
/// Each input method answers only the next step's kind. The step's numbers are written into
/// the machine's fields area (`fields`: a byte address in the module's `memory()`, slots
/// `ReadField`), read by the host through one `Float64Array` view; its strings come from
/// `argv`, `log` and `error`, called only when the step needs them, but for the answer's
/// `'use cache'` tags and singular-handler part lengths, which the host reads from the
/// module's memory where the fields area says (`TagsAt`, `TagsLen`, `PartsAt`, `PartsLen`). So a step costs one call into wasm and no object to
/// allocate or free.
#[wasm_bindgen]
pub struct ReadMachine {
    inner: core::ReadMachine,
    /// The step answered last: what `argv`, `tags`, `parts`, `log` and `error` read.
    last: Option<ReadStep>,
    /// The fields area; boxed so its address stays put while the machine lives.
    fields: Box<[f64; READ_FIELDS]>,
    /// The last `'use cache'` answer's tags, NUL-joined: read by the host in place.
    tags: String,
    /// The texts area (`texts`): where the host writes a reuse's strings in place
    /// (`reuseUseCacheTexts`); empty until the host first asks for its address.
    texts: Box<[u8]>,
}

/// What a reuse through the texts area makes of the machine, with its arguments but the
/// strings: `reuseUseCacheTexts` (interface, write in flight, consumer, now) or
/// `reuseIncrementalTexts` (is FETCH, request revalidate, consumer, on demand, now).
enum TextsReuse<'a> {
    UseCache(&'a Iface, bool, Consumer, f64),
    Incremental(bool, f64, Consumer, bool, f64),
}

/// Bytes of a machine's texts area (js-host's `TEXTS_BYTES` in read-driver.ts).
const TEXT_BYTES: usize = 2048;

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

impl ReadStep {
    /// Every slot, as the accessor of the same name reads it, from one look at the step.
    fn write(&self, f: &mut [f64; READ_FIELDS]) {
        use ReadField as F;
        *f = [0.0; READ_FIELDS];
        f[F::Served as usize] = f64::from(Served::Miss as u8);
        f[F::CacheRevalidate as usize] = f64::NAN;
        f[F::CacheExpire as usize] = f64::NAN;
        if let core::TierAction::Keep {
            until,
            outage_only,
            page_gen,
            order,
        } = self.inner.tier
        {
            f[F::Tier as usize] = f64::from(TierAction::Keep as u8);
            f[F::KeepUntil as usize] = until.0;
            f[F::OutageOnly as usize] = flag(outage_only);
            f[F::PageGen as usize] = f64::from(page_gen);
            // Exact below 2^53: one number per command this process sends.
            f[F::Order as usize] = order as f64;
        } else if self.inner.tier == core::TierAction::Drop {
            f[F::Tier as usize] = f64::from(TierAction::Drop as u8);
        }
        if self.sent > 0 {
            // Exact below 2^53, as above.
            f[F::Order as usize] = self.sent as f64;
        }
        match &self.inner.action {
            core::ReadAction::Get { budget_ms, .. }
            | core::ReadAction::Acquire { budget_ms, .. }
            | core::ReadAction::Poll { budget_ms, .. }
            | core::ReadAction::PageRead { budget_ms, .. } => f[F::BudgetMs as usize] = *budget_ms,
            core::ReadAction::NeedMore { need } => f[F::Need as usize] = f64::from(u32_of(*need)),
            core::ReadAction::Wait { delay_ms } => f[F::DelayMs as usize] = *delay_ms,
            core::ReadAction::Answer(a) => {
                f[F::Source as usize] = f64::from(self.source() as u8);
                f[F::Served as usize] = f64::from(self.served() as u8);
                f[F::Regenerates as usize] = flag(a.regenerates);
                f[F::HoldsLease as usize] = flag(a.holds_lease);
                f[F::PayloadOffset as usize] = f64::from(u32_of(a.payload_offset));
                f[F::HasLog as usize] = flag(!a.log.is_empty());
                f[F::HasError as usize] = flag(!a.error.is_empty());
                f[F::OwnStart as usize] = a.own.start;
                f[F::OwnFreshAt as usize] = a.own.fresh_at;
                f[F::OwnFreshDue as usize] = a.own.fresh_due;
                f[F::WrittenBack as usize] = a.own.written_back;
                f[F::WrittenBackMade as usize] = a.own.written_back_made;
                match &a.shown {
                    core::Shown::UseCache(s) => {
                        f[F::Timestamp as usize] = s.timestamp;
                        f[F::Revalidate as usize] = s.revalidate;
                        f[F::Expire as usize] = s.expire;
                        f[F::Stale as usize] = s.stale;
                    }
                    core::Shown::Incremental(s) => {
                        f[F::LastModified as usize] = s.last_modified;
                        if let Some((r, e)) = s.cache_control {
                            f[F::HasCacheControl as usize] = 1.0;
                            f[F::CacheRevalidate as usize] = r.unwrap_or(f64::NAN);
                            f[F::CacheExpire as usize] = e.unwrap_or(f64::NAN);
                        }
                        f[F::ValueKind as usize] = f64::from(s.value_kind);
                        f[F::ValueFlags as usize] = f64::from(s.value_flags);
                        f[F::Segments as usize] = f64::from(s.segments);
                    }
                    core::Shown::Nothing => {}
                }
            }
            core::ReadAction::Refresh
            | core::ReadAction::OwnWrite
            | core::ReadAction::PeekTier
            | core::ReadAction::PeekFallback => {}
        }
    }
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

/// [`bytes`] for the tier's or the held store's bytes, which the host may offer without a
/// prefix (`undefined` with a `total_len` of at least 1) when the engine's index keeps their
/// header (`HeaderKept`).
// One copy for its three callers (module size, docs/decisions/0028-wasm-size-budget.md).
#[inline(never)]
fn offered(prefix: &Option<Vec<u8>>, total_len: f64) -> Option<core::Bytes<'_>> {
    match prefix {
        Some(_) => bytes(prefix, total(prefix, total_len)),
        // Saturates on the way to usize, as `total` does.
        None if total_len >= 1.0 => Some(core::Bytes {
            prefix: &[],
            total_len: total_len as usize,
        }),
        None => None,
    }
}

fn bytes(prefix: &Option<Vec<u8>>, total_len: usize) -> Option<core::Bytes<'_>> {
    prefix.as_ref().map(|p| core::Bytes {
        prefix: p,
        total_len,
    })
}

/// The entry key, soft tags and cache key written one after the other at the start of `area`
/// with these lengths, or `None` when they overrun it or one is not UTF-8.
fn written_texts(
    area: &[u8],
    entry_len: u32,
    soft_len: u32,
    key_len: u32,
) -> Option<(&str, &str, &str)> {
    let (entry_len, soft_len, key_len) = (
        usize::try_from(entry_len).ok()?,
        usize::try_from(soft_len).ok()?,
        usize::try_from(key_len).ok()?,
    );
    let (entry, rest) = area.split_at_checked(entry_len)?;
    let (soft, rest) = rest.split_at_checked(soft_len)?;
    let key = rest.get(..key_len)?;
    let text = |b| std::str::from_utf8(b).ok();
    Some((text(entry)?, text(soft)?, text(key)?))
}

impl ReadMachine {
    // Not inlined into each input method: one copy of the stepping code (module size).
    #[inline(never)]
    fn step(
        &mut self,
        engine: &mut Engine,
        input: core::ReadInput<'_>,
        now: f64,
    ) -> Result<ReadStepKind, JsValue> {
        let step = engine
            .inner
            .read_step(&mut self.inner, input, Millis(now))
            .map(|inner| {
                let asks = matches!(
                    inner.action,
                    core::ReadAction::Get { .. }
                        | core::ReadAction::Poll { .. }
                        | core::ReadAction::PageRead { .. }
                );
                let sent = if asks { self.inner.order() } else { 0 };
                ReadStep { inner, sent }
            })
            .map_err(|e| js_error(&e))?;
        let header_kept = self.inner.header_kept();
        Ok(self.show(step, header_kept))
    }

    /// Leaves `step` where the host reads it: its numbers in the fields area (`HeaderKept`
    /// from `header_kept`), an answer's tags in `tags`; it becomes the last step.
    fn show(&mut self, step: ReadStep, header_kept: bool) -> ReadStepKind {
        step.write(&mut self.fields);
        if header_kept {
            self.fields[ReadField::HeaderKept as usize] = 1.0;
        }
        if let Some(s) = step.incremental() {
            // In the step kept below (`last`): the address stays while it does.
            self.fields[ReadField::PartsAt as usize] = f64::from(s.parts.as_ptr() as usize as u32);
            self.fields[ReadField::PartsLen as usize] = f64::from(u32_of(s.parts.len()));
        }
        if let Some(s) = step.use_cache() {
            // A pooled machine keeps room for ordinary tags only, where it kept room for the
            // longest tag list it ever answered with, for the life of the process.
            let need = s.tags().iter().map(|t| t.len() + 1).sum();
            core::recycle(&mut self.tags, need);
            for (i, tag) in s.tags().iter().enumerate() {
                if i > 0 {
                    self.tags.push(SEP);
                }
                self.tags.push_str(tag);
            }
            // wasm32 addresses and lengths fit in u32 (f64 holds them exactly).
            self.fields[ReadField::TagsAt as usize] = f64::from(self.tags.as_ptr() as usize as u32);
            self.fields[ReadField::TagsLen as usize] = f64::from(u32_of(self.tags.len()));
        }
        let kind = step.kind();
        // Known here at no call: the host reads it when it pools the machine (`park`).
        let held = self.inner.held_bytes(Some(&step.inner));
        let held = held.saturating_add(self.tags.capacity());
        self.fields[ReadField::HoldsBack as usize] = flag(held > core::POOLED_HOLD_BYTES);
        self.last = Some(step);
        kind
    }

    /// `leaseReply` and `failed`: one number each, read here rather than by wasm-bindgen's
    /// glue, so that the two exports differ only in a constant and wasm-opt keeps one copy of
    /// their borrowing code (the wasm size budget, docs/decisions/0028-wasm-size-budget.md).
    #[inline(never)]
    fn step_with(
        &mut self,
        engine: &mut Engine,
        kind: NumberInput,
        n: f64,
        now: f64,
    ) -> Result<ReadStepKind, JsValue> {
        let input = match kind {
            NumberInput::LeaseReply => {
                core::ReadInput::LeaseReply(if n.is_finite() { n as i64 } else { -1 })
            }
            NumberInput::Failed => core::ReadInput::Failed(Failure::read(n)?.into()),
        };
        self.step(engine, input, now)
    }

    /// `tier`, `fallback`, `startWithTier` and `startWithHeld`, which take the same arguments:
    /// one body, so that their exports differ only in the constant `kind` and wasm-opt keeps
    /// one copy of the borrowing and byte-copying code wasm-bindgen writes around each (the
    /// wasm size budget, docs/decisions/0028-wasm-size-budget.md).
    #[inline(never)]
    fn offer(
        &mut self,
        engine: &mut Engine,
        kind: Offer,
        prefix: Option<Vec<u8>>,
        total_len: f64,
        now: f64,
    ) -> Result<ReadStepKind, JsValue> {
        match kind {
            Offer::Tier => self.step(
                engine,
                core::ReadInput::Tier(offered(&prefix, total_len)),
                now,
            ),
            Offer::Fallback => {
                let len = total(&prefix, total_len);
                self.step(engine, core::ReadInput::Fallback(bytes(&prefix, len)), now)
            }
            Offer::StartWithTier => self.start_then_tier(engine, &prefix, total_len, now),
            Offer::StartWithHeld => {
                let kind = self.start_then_tier(engine, &None, 0.0, now)?;
                let held = offered(&prefix, total_len);
                let held_len = held.map_or(0, |b| b.total_len);
                if kind != ReadStepKind::Get
                    || self.fields[ReadField::TookTier as usize] != 1.0
                    || !engine
                        .inner
                        .tier_touch_held(&mut self.inner, held_len, Millis(now))
                {
                    return Ok(kind);
                }
                let input = core::ReadInput::Held(held);
                let kind = self.step(engine, input, now)?;
                self.fields[ReadField::TookTier as usize] = 2.0;
                Ok(kind)
            }
        }
    }

    /// `startWithTier`.
    fn start_then_tier(
        &mut self,
        engine: &mut Engine,
        prefix: &Option<Vec<u8>>,
        total_len: f64,
        now: f64,
    ) -> Result<ReadStepKind, JsValue> {
        let kind = self.step(engine, core::ReadInput::Start, now)?;
        if kind != ReadStepKind::PeekTier {
            return Ok(kind);
        }
        let kind = self.step(
            engine,
            core::ReadInput::Tier(offered(prefix, total_len)),
            now,
        )?;
        self.fields[ReadField::TookTier as usize] = 1.0;
        Ok(kind)
    }

    /// `argv`, `log` or `error` of the last step: one body, so that the three exports differ
    /// only in the constant `which` and wasm-opt keeps one copy of their glue (the wasm size
    /// budget, docs/decisions/0028-wasm-size-budget.md).
    #[inline(never)]
    fn text(&self, which: StepText) -> String {
        let Some(step) = &self.last else {
            return String::new();
        };
        match which {
            StepText::Argv => step.argv(),
            StepText::Log => step.log(),
            StepText::Error => step.error(),
        }
    }

    fn wrap(inner: core::ReadMachine) -> ReadMachine {
        ReadMachine {
            inner,
            last: None,
            fields: Box::new([0.0; READ_FIELDS]),
            tags: String::new(),
            texts: Box::default(),
        }
    }

    /// `reuseUseCache` with its lease token given.
    fn reset_use_cache(
        &mut self,
        engine: &Engine,
        iface: &Iface,
        cache_key: &JsString,
        entry_key: Option<String>,
        (soft_tags, write_in_flight, consumer, now): (&str, bool, Consumer, f64),
        token: core::LeaseToken<'_>,
    ) -> Result<(), JsValue> {
        let key = utf8_key(cache_key)?;
        let args = (soft_tags, write_in_flight, consumer, now);
        self.reset_use_cache_str(engine, iface, &key, entry_key.as_deref(), args, token);
        Ok(())
    }

    /// `reset_use_cache` with the cache key as UTF-8 (well-formed, as a `&str` is).
    fn reset_use_cache_str(
        &mut self,
        engine: &Engine,
        iface: &Iface,
        key: &str,
        entry_key: Option<&str>,
        (soft_tags, write_in_flight, consumer, now): (&str, bool, Consumer, f64),
        token: core::LeaseToken<'_>,
    ) {
        engine.inner.reset_read_use_cache(
            &mut self.inner,
            &iface.get(),
            key,
            entry_key,
            items(soft_tags),
            consumer.into(),
            token,
            Millis(now),
        );
        if !write_in_flight {
            self.inner.no_write_in_flight();
        }
        self.last = None;
        self.note_asks_tier(engine, now);
    }

    /// `reuseIncremental` with its lease token given.
    fn reset_incremental(
        &mut self,
        engine: &Engine,
        cache_key: &JsString,
        entry_key: Option<String>,
        args: (bool, &str, f64, Consumer, bool, f64),
        token: core::LeaseToken<'_>,
    ) -> Result<(), JsValue> {
        let key = utf8_key(cache_key)?;
        self.reset_incremental_str(engine, &key, entry_key.as_deref(), args, token);
        Ok(())
    }

    /// `reset_incremental` with the cache key as UTF-8 (well-formed, as a `&str` is). Not
    /// inlined: one copy for both reuses (the wasm size budget).
    #[inline(never)]
    fn reset_incremental_str(
        &mut self,
        engine: &Engine,
        key: &str,
        entry_key: Option<&str>,
        args: (bool, &str, f64, Consumer, bool, f64),
        token: core::LeaseToken<'_>,
    ) {
        let (is_fetch, soft_tags, request_revalidate, consumer, on_demand, now) = args;
        engine.inner.reset_read_incremental(
            &mut self.inner,
            key,
            entry_key,
            is_fetch,
            items(soft_tags),
            request_revalidate,
            consumer.into(),
            on_demand,
            token,
            Millis(now),
        );
        self.last = None;
        self.note_asks_tier(engine, now);
    }

    /// A reuse with its strings in the texts area, lengths `(entry, soft, key)`: one copy of
    /// the reading for both kinds of read (the wasm size budget).
    fn reuse_texts(
        &mut self,
        engine: &Engine,
        (entry_len, soft_len, key_len): (u32, u32, u32),
        reuse: TextsReuse<'_>,
    ) -> Result<(), JsValue> {
        let area = std::mem::take(&mut self.texts);
        let done = match written_texts(&area, entry_len, soft_len, key_len) {
            Some((entry, soft, key)) => {
                let entry = (!entry.is_empty()).then_some(entry);
                let token = core::LeaseToken::Next;
                match reuse {
                    TextsReuse::UseCache(iface, write_in_flight, consumer, now) => {
                        let args = (soft, write_in_flight, consumer, now);
                        self.reset_use_cache_str(engine, iface, key, entry, args, token);
                    }
                    TextsReuse::Incremental(is_fetch, revalidate, consumer, on_demand, now) => {
                        let args = (is_fetch, soft, revalidate, consumer, on_demand, now);
                        self.reset_incremental_str(engine, key, entry, args, token);
                    }
                }
                Ok(())
            }
            None => Err(js_error(&fleetcache_core::KeyError::IllFormedCacheKey)),
        };
        self.texts = area;
        done
    }

    /// Writes `AsksTier` for a read about to start at `now`. Not inlined: one copy for both
    /// resets (the wasm size budget).
    #[inline(never)]
    fn note_asks_tier(&mut self, engine: &Engine, now: f64) {
        let asks = engine.inner.read_asks_tier_first(&self.inner, Millis(now));
        self.fields[ReadField::AsksTier as usize] = f64::from(u8::from(asks));
    }

    /// Whether the last step judged by, or kept, a header in the engine's index (`HeaderKept`,
    /// for Rust callers).
    pub fn header_kept(&self) -> bool {
        self.inner.header_kept()
    }

    /// The last `'use cache'` answer's tags as the host reads them (for Rust callers).
    pub fn tags_text(&self) -> &str {
        if self.fields[ReadField::TagsLen as usize] > 0.0 {
            &self.tags
        } else {
            ""
        }
    }

    /// The step answered last, if any (for Rust callers; JS reads the fields area).
    pub fn last_step(&self) -> Option<&ReadStep> {
        self.last.as_ref()
    }

    /// The fields area as JS reads it (for Rust callers), slots `ReadField`.
    pub fn fields_area(&self) -> &[f64] {
        &self.fields[..]
    }

    /// The texts area as JS writes it (for Rust callers; see `texts`).
    pub fn texts_area(&mut self) -> &mut [u8] {
        self.texts();
        &mut self.texts[..]
    }
}

#[wasm_bindgen]
impl ReadMachine {
    /// A `'use cache'` read of `cacheKey` under `iface` with the request's implicit tags
    /// (NUL-joined), begun at `now`; `token` is a random string (`randomToken`), the lease
    /// token should the read request the lease. `writeInFlight`: the host holds a write of
    /// `cacheKey` in flight (the read then asks for it, `OwnWrite`; without one it does not).
    /// Throws `ERR_KEY_ILL_FORMED` for a key with a lone surrogate.
    #[wasm_bindgen(js_name = useCache)]
    #[allow(clippy::too_many_arguments)]
    pub fn use_cache(
        engine: &Engine,
        iface: &Iface,
        #[wasm_bindgen(unchecked_param_type = "string")] cache_key: &JsString,
        soft_tags: &str,
        write_in_flight: bool,
        consumer: Consumer,
        token: String,
        now: f64,
    ) -> Result<ReadMachine, JsValue> {
        let mut m = ReadMachine::wrap(core::ReadMachine::idle());
        let args = (soft_tags, write_in_flight, consumer, now);
        m.reset_use_cache(
            engine,
            iface,
            cache_key,
            None,
            args,
            core::LeaseToken::New(&token),
        )?;
        Ok(m)
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
        let mut m = ReadMachine::wrap(core::ReadMachine::idle());
        let args = (
            is_fetch,
            soft_tags,
            request_revalidate,
            consumer,
            on_demand,
            now,
        );
        m.reset_incremental(engine, cache_key, None, args, core::LeaseToken::New(&token))?;
        Ok(m)
    }

    /// Makes this machine a new `'use cache'` read, as `useCache` with the same arguments
    /// would, keeping its JS object, its fields area and its buffers: a host that pools
    /// machines allocates and registers none per read. `entryKey`: this machine's `entryKey`
    /// for `cacheKey` under `iface` as the host remembers it (the key is then not hashed
    /// again), or `undefined`. The lease token is the machine's first one followed by `.n`
    /// for its n-th reuse. Throws `ERR_KEY_ILL_FORMED` (the machine then is unchanged).
    #[wasm_bindgen(js_name = reuseUseCache)]
    #[allow(clippy::too_many_arguments)]
    pub fn reuse_use_cache(
        &mut self,
        engine: &Engine,
        iface: &Iface,
        #[wasm_bindgen(unchecked_param_type = "string")] cache_key: &JsString,
        entry_key: Option<String>,
        soft_tags: &str,
        write_in_flight: bool,
        consumer: Consumer,
        now: f64,
    ) -> Result<(), JsValue> {
        let args = (soft_tags, write_in_flight, consumer, now);
        let token = core::LeaseToken::Next;
        self.reset_use_cache(engine, iface, cache_key, entry_key, args, token)
    }

    /// The byte address in `memory()` of this machine's texts area (2048 bytes, valid while the
    /// machine lives), where the host writes the strings of `reuseUseCacheTexts` and
    /// `reuseIncrementalTexts`.
    pub fn texts(&mut self) -> u32 {
        if self.texts.is_empty() {
            self.texts = vec![0; TEXT_BYTES].into_boxed_slice();
        }
        // wasm32 addresses fit in u32.
        self.texts.as_ptr() as usize as u32
    }

    /// `reuseUseCache`, with its strings written by the host in the texts area (`texts`) as
    /// UTF-8, one after the other: the entry key (`entryLen` bytes, 0: not remembered), the
    /// soft tags NUL-joined (`softLen`) and the cache key (`keyLen`). No string crosses and
    /// nothing is allocated for them: one call where `reuseUseCache` makes four. The host
    /// writes only a well-formed cache key (ASCII, say): its lone surrogates cannot be told
    /// here. Throws `ERR_KEY_ILL_FORMED` when the lengths overrun the area or a text is not
    /// UTF-8 (the machine then is unchanged).
    #[wasm_bindgen(js_name = reuseUseCacheTexts)]
    #[allow(clippy::too_many_arguments)]
    pub fn reuse_use_cache_texts(
        &mut self,
        engine: &Engine,
        iface: &Iface,
        entry_len: u32,
        soft_len: u32,
        key_len: u32,
        write_in_flight: bool,
        consumer: Consumer,
        now: f64,
    ) -> Result<(), JsValue> {
        let reuse = TextsReuse::UseCache(iface, write_in_flight, consumer, now);
        self.reuse_texts(engine, (entry_len, soft_len, key_len), reuse)
    }

    /// A `'use cache'` hit from the tier in one call, with no read begun: the entry key, soft
    /// tags and cache key as `reuseUseCacheTexts` reads them from the texts area (the entry
    /// key given), the tier's copy of the entry `totalLen` bytes long (`held`: the embedded
    /// store's, as `startWithHeld` takes them; the answer's source is then `Redis`), and no
    /// write of this process in flight for the cache key. True when the engine serves it fresh from the
    /// copy (core `Engine::read_tier_hit`, which makes every check a read makes): the answer
    /// is in the fields area as an `Answer` step leaves it (`HeaderKept` 1, no tier action),
    /// the machine otherwise as it was (a pooled machine stays ready for its next reuse).
    /// False: the host reads as always (`reuseUseCacheTexts`, then `startWithTier`).
    #[wasm_bindgen(js_name = tierHitTexts)]
    #[allow(clippy::too_many_arguments)]
    pub fn tier_hit_texts(
        &mut self,
        engine: &mut Engine,
        entry_len: u32,
        soft_len: u32,
        key_len: u32,
        total_len: f64,
        held: bool,
        now: f64,
    ) -> bool {
        let area = std::mem::take(&mut self.texts);
        let answer = match written_texts(&area, entry_len, soft_len, key_len) {
            // Saturates on the way to usize, as `total` does.
            Some((entry, soft, key)) if !entry.is_empty() && total_len >= 1.0 => {
                let soft: Vec<&str> = items(soft).collect();
                let len = total_len as usize;
                engine
                    .inner
                    .read_tier_hit(entry, key, &soft, len, held, Millis(now))
            }
            _ => None,
        };
        self.texts = area;
        let Some(answer) = answer else {
            return false;
        };
        let step = ReadStep {
            inner: core::ReadStep {
                action: core::ReadAction::Answer(answer),
                tier: core::TierAction::None,
            },
            sent: 0,
        };
        self.show(step, true);
        true
    }

    /// Makes this machine a new singular-handler read, as `incremental` with the same
    /// arguments would, keeping its JS object, its fields area and its buffers (see
    /// `reuseUseCache`, whose `entryKey` and lease tokens this takes too). Throws
    /// `ERR_KEY_ILL_FORMED` (the machine then is unchanged).
    #[wasm_bindgen(js_name = reuseIncremental)]
    #[allow(clippy::too_many_arguments)]
    pub fn reuse_incremental(
        &mut self,
        engine: &Engine,
        #[wasm_bindgen(unchecked_param_type = "string")] cache_key: &JsString,
        entry_key: Option<String>,
        is_fetch: bool,
        soft_tags: &str,
        request_revalidate: f64,
        consumer: Consumer,
        on_demand: bool,
        now: f64,
    ) -> Result<(), JsValue> {
        let args = (
            is_fetch,
            soft_tags,
            request_revalidate,
            consumer,
            on_demand,
            now,
        );
        let token = core::LeaseToken::Next;
        self.reset_incremental(engine, cache_key, entry_key, args, token)
    }

    /// `reuseIncremental`, with its strings written by the host in the texts area (`texts`) as
    /// `reuseUseCacheTexts` takes them: the entry key (`entryLen` bytes, 0: not remembered),
    /// the soft tags NUL-joined (`softLen`) and the cache key (`keyLen`). One call where
    /// `reuseIncremental` makes four; the host writes only a well-formed cache key. Throws
    /// `ERR_KEY_ILL_FORMED` when the lengths overrun the area or a text is not UTF-8 (the
    /// machine then is unchanged).
    ///
    /// `tierLen` of at least 1: the host holds a tier copy of the entry that long, whose
    /// header the index keeps. When the new read asks for the tier first (`AsksTier`, as
    /// this call writes it), the read is started here at `now` with that copy offered without
    /// its prefix, as `startWithTier(engine, undefined, tierLen, now)` would start it, and its
    /// step kind is returned (`TookTier` as that call writes it); otherwise (or with 0) nothing
    /// is started and the result is undefined: the host starts the read itself. A page hit
    /// from the tier by push is then one call into wasm, not two.
    #[wasm_bindgen(js_name = reuseIncrementalTexts)]
    #[allow(clippy::too_many_arguments)]
    pub fn reuse_incremental_texts(
        &mut self,
        engine: &mut Engine,
        entry_len: u32,
        soft_len: u32,
        key_len: u32,
        is_fetch: bool,
        request_revalidate: f64,
        consumer: Consumer,
        on_demand: bool,
        tier_len: f64,
        now: f64,
    ) -> Result<Option<ReadStepKind>, JsValue> {
        let reuse = TextsReuse::Incremental(is_fetch, request_revalidate, consumer, on_demand, now);
        self.reuse_texts(engine, (entry_len, soft_len, key_len), reuse)?;
        if tier_len < 1.0 || self.fields[ReadField::AsksTier as usize] != 1.0 {
            return Ok(None);
        }
        self.start_then_tier(engine, &None, tier_len, now).map(Some)
    }

    /// The entry's Redis key: the key `Get` reads and the tier's key.
    #[wasm_bindgen(getter, js_name = entryKey)]
    pub fn entry_key(&self) -> String {
        self.inner.entry_key().to_owned()
    }

    /// Gives back what the last read left in the machine (its buffers' room, the entry
    /// headers it refers to, the last step and the answer's tags), keeping its JS object, its
    /// fields and texts areas and its lease token: for a host about to pool a machine whose
    /// last step said `HoldsBack`, which would otherwise pin its long key or many tags while
    /// idle. Every slot of the fields area reads 0 after it; a reuse makes it a read again.
    pub fn park(&mut self) {
        self.inner.park();
        self.last = None;
        self.tags = String::new();
        *self.fields = [0.0; READ_FIELDS];
    }

    /// The byte address of this machine's fields area in `memory()`: `ReadField` slots of
    /// f64, rewritten by every step, valid while the machine lives.
    pub fn fields(&self) -> u32 {
        // wasm32 addresses fit in u32.
        self.fields.as_ptr() as usize as u32
    }

    /// `Acquire`, `Poll`: the `EVALSHA` argv to send, NUL-joined (`''` for another step).
    pub fn argv(&self) -> String {
        self.text(StepText::Argv)
    }

    /// `Answer`: debug log lines (`\n`-separated), `''` when none.
    pub fn log(&self) -> String {
        self.text(StepText::Log)
    }

    /// `Answer`: error log lines (`\n`-separated), `''` when none.
    pub fn error(&self) -> String {
        self.text(StepText::Error)
    }

    /// Begins the read.
    pub fn start(&mut self, engine: &mut Engine, now: f64) -> Result<ReadStepKind, JsValue> {
        self.step(engine, core::ReadInput::Start, now)
    }

    /// Begins the read with the tier's bytes for the entry key offered up front (`prefix` of
    /// a `totalLen`-byte value; `undefined` with `totalLen` 0: the host holds none; with a
    /// `totalLen` of at least 1: the host holds bytes the last step said the index keeps the
    /// header of, `HeaderKept`, and left their prefix out, asked for with `NeedMore` if the
    /// index keeps it no longer). When the first step is
    /// `PeekTier`, the machine takes them as `tier` would and answers the step after, and
    /// `TookTier` in the fields area is 1; otherwise (a refresh first, say) it answers the
    /// first step, as `start`, and the offer is void. One call where `start` and `tier` take
    /// two, for reads that ask for the tier first (`'use cache'`; the singular handler's
    /// when its engine follows tags by push, which ask for it first while caught up).
    #[wasm_bindgen(js_name = startWithTier)]
    pub fn start_with_tier(
        &mut self,
        engine: &mut Engine,
        prefix: Option<Vec<u8>>,
        total_len: f64,
        now: f64,
    ) -> Result<ReadStepKind, JsValue> {
        self.offer(engine, Offer::StartWithTier, prefix, total_len, now)
    }

    /// `startWithTier` with no tier bytes offered, for a host whose store holds its entries
    /// in this process (the embedded store): when the step after the tier is `Get`, the store's
    /// bytes for the entry key (`prefix` of a `totalLen`-byte value; `undefined`: none held,
    /// or the prefix left out, as `startWithTier` takes it) are its reply, read in the same
    /// call, and `TookTier` is 2. Taken only while the engine's
    /// index still holds the entry (`memoryTouch` of the entry key, which it marks used, as the
    /// host's `Get` would); else `TookTier` is 1 and the host answers the `Get` itself. One
    /// call where `startWithTier`, `memoryTouch` and `reply` take three.
    #[wasm_bindgen(js_name = startWithHeld)]
    pub fn start_with_held(
        &mut self,
        engine: &mut Engine,
        prefix: Option<Vec<u8>>,
        total_len: f64,
        now: f64,
    ) -> Result<ReadStepKind, JsValue> {
        self.offer(engine, Offer::StartWithHeld, prefix, total_len, now)
    }

    /// The refresh asked for by `Refresh` is under way.
    pub fn refreshed(&mut self, engine: &mut Engine, now: f64) -> Result<ReadStepKind, JsValue> {
        self.step(engine, core::ReadInput::Refreshed, now)
    }

    /// This process's write in flight of the cache key (`undefined`: none).
    #[wasm_bindgen(js_name = ownWrite)]
    pub fn own_write(
        &mut self,
        engine: &mut Engine,
        value: Option<Vec<u8>>,
        now: f64,
    ) -> Result<ReadStepKind, JsValue> {
        let len = value.as_ref().map_or(0, Vec::len);
        self.step(engine, core::ReadInput::OwnWrite(bytes(&value, len)), now)
    }

    /// The tier's bytes for the key: `prefix` of a `totalLen`-byte value (`undefined` with
    /// `totalLen` 0: none; with a `totalLen` of at least 1: the prefix left out, as
    /// `startWithTier` takes it).
    pub fn tier(
        &mut self,
        engine: &mut Engine,
        prefix: Option<Vec<u8>>,
        total_len: f64,
        now: f64,
    ) -> Result<ReadStepKind, JsValue> {
        self.offer(engine, Offer::Tier, prefix, total_len, now)
    }

    /// The tier's bytes kept for outages (`undefined`: none), after a failed read.
    pub fn fallback(
        &mut self,
        engine: &mut Engine,
        prefix: Option<Vec<u8>>,
        total_len: f64,
        now: f64,
    ) -> Result<ReadStepKind, JsValue> {
        self.offer(engine, Offer::Fallback, prefix, total_len, now)
    }

    /// The entry read (`undefined`: none stored); `joined` when the host joined the `GET` of
    /// another read of this process instead of sending one (core `ReadMachine::joined`),
    /// `order` then that `GET`'s `Order` (ignored otherwise).
    pub fn reply(
        &mut self,
        engine: &mut Engine,
        prefix: Option<Vec<u8>>,
        total_len: f64,
        joined: bool,
        order: f64,
        now: f64,
    ) -> Result<ReadStepKind, JsValue> {
        if joined {
            // `as` saturates: NaN and negatives are 0, older than every command.
            self.inner.joined(order as u64);
        }
        let len = total(&prefix, total_len);
        self.step(engine, core::ReadInput::Reply(bytes(&prefix, len)), now)
    }

    /// A poll's reply: the entry (`undefined`: none) and whether its lease still exists;
    /// `joined` and `order` as for [`reply`](Self::reply).
    #[allow(clippy::too_many_arguments)]
    pub fn polled(
        &mut self,
        engine: &mut Engine,
        prefix: Option<Vec<u8>>,
        total_len: f64,
        leased: bool,
        joined: bool,
        order: f64,
        now: f64,
    ) -> Result<ReadStepKind, JsValue> {
        if joined {
            // `as` saturates: NaN and negatives are 0, older than every command.
            self.inner.joined(order as u64);
        }
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
    ) -> Result<ReadStepKind, JsValue> {
        self.step_with(engine, NumberInput::LeaseReply, code, now)
    }

    /// The command asked for brought no reply (a `Failure`). Throws for a number that is no
    /// `Failure`.
    pub fn failed(
        &mut self,
        engine: &mut Engine,
        #[wasm_bindgen(unchecked_param_type = "Failure")] failure: f64,
        now: f64,
    ) -> Result<ReadStepKind, JsValue> {
        self.step_with(engine, NumberInput::Failed, failure, now)
    }

    /// The pause asked for by `Wait` is over.
    pub fn timer(&mut self, engine: &mut Engine, now: f64) -> Result<ReadStepKind, JsValue> {
        self.step(engine, core::ReadInput::Timer, now)
    }

    /// The value the answer served could not be decoded into Next's shape: the read goes on
    /// as for an unreadable entry.
    pub fn undecodable(&mut self, engine: &mut Engine, now: f64) -> Result<ReadStepKind, JsValue> {
        self.step(engine, core::ReadInput::Undecodable, now)
    }

    /// The renewal of the lease this read won (`holdsLease`), if it won one.
    pub fn renewal(&self, _engine: &Engine) -> Option<RenewMachine> {
        self.inner
            .renewal()
            .map(|inner| RenewMachine { inner, last: None })
    }
}

/// One step of a renewal. JS gets it packed (`pack.rs`), in this order: `kind`, `delayMs`,
/// `argv` (text, NUL-joined), `budgetMs`, `log` (text).
pub struct RenewStep {
    inner: core::RenewStep,
}

impl RenewStep {
    /// The step as JS reads it (see the type's docs for the order).
    fn pack(&self) -> Vec<u8> {
        Packer::default()
            .num(f64::from(self.kind() as u8))
            .num(self.delay_ms())
            .text(&self.argv())
            .num(self.budget_ms())
            .text(self.log_text())
            .finish()
    }

    /// [`RenewStep::log`] in place: packing it needs no copy.
    fn log_text(&self) -> &str {
        match &self.inner {
            core::RenewStep::Done { log } => log,
            _ => "",
        }
    }
}

impl RenewStep {
    /// What the host does next.
    pub fn kind(&self) -> RenewStepKind {
        match self.inner {
            core::RenewStep::Wait { .. } => RenewStepKind::Wait,
            core::RenewStep::Send { .. } => RenewStepKind::Send,
            core::RenewStep::Done { .. } => RenewStepKind::Done,
        }
    }

    /// `Wait`: the pause (ms).
    pub fn delay_ms(&self) -> f64 {
        match self.inner {
            core::RenewStep::Wait { delay_ms } => delay_ms,
            _ => 0.0,
        }
    }

    /// `Send`: the `EVALSHA` argv, NUL-joined.
    pub fn argv(&self) -> String {
        match &self.inner {
            core::RenewStep::Send { call, .. } => call_argv(call),
            _ => String::new(),
        }
    }

    /// `Send`: the command's budget (ms).
    pub fn budget_ms(&self) -> f64 {
        match self.inner {
            core::RenewStep::Send { budget_ms, .. } => budget_ms,
            _ => 0.0,
        }
    }

    /// `Done`: a debug line, `''` when none.
    pub fn log(&self) -> String {
        self.log_text().to_owned()
    }
}

/// Renews a lease a read won, while this process holds it.
#[wasm_bindgen]
pub struct RenewMachine {
    inner: core::RenewMachine,
    /// The step answered last, for Rust callers (JS gets it packed).
    last: Option<RenewStep>,
}

impl RenewMachine {
    fn step(
        &mut self,
        engine: &mut Engine,
        input: core::RenewInput,
        now: f64,
    ) -> Result<Vec<u8>, JsValue> {
        let step = engine
            .inner
            .renew_step(&mut self.inner, input, Millis(now))
            .map(|inner| RenewStep { inner })
            .map_err(|e| js_error(&e))?;
        let packed = step.pack();
        self.last = Some(step);
        Ok(packed)
    }

    /// `sent` and `failed`: one number each, read here rather than by wasm-bindgen's glue, so
    /// that the two exports differ only in a constant and wasm-opt keeps one copy of their
    /// borrowing code (the wasm size budget, docs/decisions/0028-wasm-size-budget.md).
    #[inline(never)]
    fn step_with(
        &mut self,
        engine: &mut Engine,
        kind: RenewNumber,
        n: f64,
        now: f64,
    ) -> Result<Vec<u8>, JsValue> {
        let input = match kind {
            RenewNumber::Sent => core::RenewInput::Sent(n == 1.0),
            RenewNumber::Failed => core::RenewInput::Failed(Failure::read(n)?.into()),
        };
        self.step(engine, input, now)
    }

    /// The step answered last (for Rust callers; JS gets each step packed).
    pub fn last_step(&self) -> Option<&RenewStep> {
        self.last.as_ref()
    }
}

#[wasm_bindgen]
impl RenewMachine {
    /// Begins the renewals; the first step, packed (`RenewStep`).
    pub fn start(&mut self, engine: &mut Engine, now: f64) -> Result<Vec<u8>, JsValue> {
        self.step(engine, core::RenewInput::Start, now)
    }

    /// The pause asked for by `Wait` is over; the next step, packed.
    pub fn timer(&mut self, engine: &mut Engine, now: f64) -> Result<Vec<u8>, JsValue> {
        self.step(engine, core::RenewInput::Timer, now)
    }

    /// The renewal was answered with the script's integer `reply` (1: renewed; anything
    /// else, NaN included: no longer held); the next step, packed.
    pub fn sent(&mut self, engine: &mut Engine, reply: f64, now: f64) -> Result<Vec<u8>, JsValue> {
        self.step_with(engine, RenewNumber::Sent, reply, now)
    }

    /// The renewal brought no reply (a `Failure`); the next step, packed. Throws for a number
    /// that is no `Failure`.
    pub fn failed(
        &mut self,
        engine: &mut Engine,
        #[wasm_bindgen(unchecked_param_type = "Failure")] failure: f64,
        now: f64,
    ) -> Result<Vec<u8>, JsValue> {
        self.step_with(engine, RenewNumber::Failed, failure, now)
    }
}

/// The module's linear memory (a `WebAssembly.Memory`), where the machines' fields areas
/// live: the host views it once, and again only after it grew (its `buffer` changed).
#[wasm_bindgen(js_name = wasmMemory)]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}
