//! The `Engine` class exported to JS.

use fleetcache_core::{Config, Interface, KeyError, Millis, ScriptCall};
use js_sys::JsString;
use wasm_bindgen::prelude::*;

use crate::codes::{
    Announcement, BreakerState, CommandKind, CommandResult, OutboxRefusal, Reported,
    RevalidationMode, Wake,
};
use crate::error::{js_error, BindingError};
use crate::list::{join, split, SEP};

/// What `inspectEntry` ([`fleetcache_core::Engine::inspect`]) decided about a stored value.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Serve it.
    Fresh = 0,
    /// Serve it once and regenerate (a tag was revalidated with a profile).
    Stale = 1,
    /// A miss: past its lifetime or expired by a tag.
    Expired = 2,
    /// Another cache key hashed to the same Redis key: a miss.
    KeyMismatch = 3,
    /// Not a readable fleetcache envelope: a miss and a log line.
    Corrupt = 4,
    /// The prefix was shorter than the header: call again with `need` bytes.
    NeedMore = 5,
}

/// One process's cache engine: key derivation, envelope codec, tag mirror and the in-process
/// tier's index. Every method is synchronous; the host performs the I/O it plans.
#[wasm_bindgen]
pub struct Engine {
    pub(crate) inner: fleetcache_core::Engine,
    /// Whether the maps' hash seed came from the runtime's random source (`hashSeeded`).
    hash_seeded: bool,
}

/// Which of Next's cache interfaces a key belongs to, as a typed value the host builds once
/// per handler: `Interface.incremental()` for the singular handler, `Interface.useCache(name)`
/// for a `cacheHandlers` name. A name is never read as the singular handler, so a
/// `cacheHandlers.inc` is an ordinary `'use cache'` key space (`uc-inc`).
#[wasm_bindgen(js_name = Interface)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    /// The `cacheHandlers` name, already checked; `None` for the singular handler.
    name: Option<String>,
}

impl Iface {
    /// `parse` (a key segment) or `useCache` (a handler name): one body, so that the two
    /// exports differ only in the constant `segment` and wasm-opt keeps one copy of the glue
    /// wasm-bindgen writes around them (the wasm size budget,
    /// docs/decisions/0028-wasm-size-budget.md).
    #[inline(never)]
    fn read(text: &str, segment: bool) -> Result<Iface, JsValue> {
        let read = if segment {
            Interface::parse(text)
        } else {
            Interface::use_cache(text)
        };
        Ok(Iface {
            name: match read.map_err(|e| js_error(&e))? {
                Interface::UseCache(n) => Some(n.to_owned()),
                Interface::Incremental => None,
            },
        })
    }

    pub(crate) fn get(&self) -> Interface<'_> {
        match &self.name {
            Some(name) => Interface::UseCache(name),
            None => Interface::Incremental,
        }
    }
}

#[wasm_bindgen(js_class = Interface)]
impl Iface {
    /// The singular `cacheHandler` (ISR, full-route and fetch cache): key segment `inc`.
    pub fn incremental() -> Iface {
        Iface { name: None }
    }

    /// The `cacheHandlers.<name>` key space (`'use cache'`): key segment `uc-<name>`.
    /// Throws an `Error` with code `ERR_KEY_HANDLER_NAME` unless `name` is `[a-z-]{1,32}`.
    #[wasm_bindgen(js_name = useCache)]
    pub fn use_cache(name: &str) -> Result<Iface, JsValue> {
        Iface::read(name, false)
    }

    /// Parses a key segment as it appears in Redis keys: `inc` or `uc-<name>`.
    /// Throws an `Error` with code `ERR_KEY_INTERFACE` for anything else.
    pub fn parse(segment: &str) -> Result<Iface, JsValue> {
        Iface::read(segment, true)
    }

    /// The key segment: `inc` or `uc-<name>`. Distinct interfaces have distinct segments.
    #[wasm_bindgen(getter)]
    pub fn segment(&self) -> String {
        self.get().segment()
    }

    /// Whether this is the singular handler's interface.
    #[cfg(feature = "tools")]
    #[wasm_bindgen(getter, js_name = isIncremental)]
    pub fn is_incremental(&self) -> bool {
        self.name.is_none()
    }
}

/// The cache key as UTF-8, refusing one with a lone surrogate: converted, it would become
/// U+FFFD and share its entry with other keys (`KeyError::IllFormedCacheKey`). A key that
/// is not a string at all is refused the same way.
pub(crate) fn utf8_key(key: &JsString) -> Result<String, JsValue> {
    let err = || js_error(&KeyError::IllFormedCacheKey);
    let text = key.as_string().ok_or_else(err)?;
    // The conversion turns a lone surrogate into U+FFFD; only a key that shows one can be
    // ill-formed, so a well-formed key pays one crossing instead of two.
    // A byte scan for U+FFFD (EF BF BD): `str::contains` with a non-ASCII char runs the
    // substring searcher, about 2.7 KB of the module (docs/decisions/0028-wasm-size-budget.md).
    let replaced = text
        .as_bytes()
        .windows(3)
        .any(|w| w == "\u{FFFD}".as_bytes());
    if replaced && !key.is_well_formed() {
        return Err(err());
    }
    Ok(text)
}

/// A script call's `EVALSHA` argv as it crosses to JS: one NUL-joined string (`list.rs`), one
/// copy instead of an array of strings, whose conversion code every export returning one
/// carried (docs/decisions/0028-wasm-size-budget.md). Keys and arguments hold no NUL: prefixes
/// are `[A-Za-z0-9._-]`, tags printable text, tokens hex, numbers decimal.
pub(crate) fn script_argv(call: ScriptCall) -> String {
    call_argv(&call)
}

/// [`script_argv`] of a call the caller keeps: the read and renewal steps' `argv`, which
/// cloned the call (its key and argument vectors) only to read it.
pub(crate) fn call_argv(call: &ScriptCall) -> String {
    let mut argv = String::from("EVALSHA");
    let mut push = |item: &str| {
        argv.push(SEP);
        argv.push_str(item);
    };
    push(&call.sha1);
    push(&fleetcache_core::text::u64_text(call.keys.len() as u64));
    for item in call.keys.iter().chain(&call.args) {
        push(item);
    }
    argv
}

/// Which of the engine's names [`Engine::name`] reads.
#[derive(Clone, Copy)]
enum Name {
    Deployment,
    UseCacheSegment,
    Prefix,
    TagAnnounceChannel,
    Builds,
}

/// Which count [`Engine::count`] reads.
#[derive(Clone, Copy)]
enum Count {
    Resend,
    ResendRecords,
    // Read by `tagCount` only, which no server path calls (the benchmarks do).
    #[cfg(feature = "tools")]
    Tags,
    PageHeard,
    Outbox,
    Lost,
    Folded,
}

/// Which wait [`Engine::wait_ms`] reckons.
#[derive(Clone, Copy)]
enum Wait {
    // Read by `probeInMs` only, which no server path calls.
    #[cfg(feature = "tools")]
    Probe,
    OutboxRetry,
}

/// Which number [`Engine::figure`] reads.
#[derive(Clone, Copy)]
enum Figure {
    MaxEntryBytes,
    ConnectBudget,
    BreakerTrips,
    // Read by `breakerRejected` and `outboxRefused` only, which nothing calls.
    #[cfg(feature = "tools")]
    BreakerRejected,
    OutboxHeadSeq,
    OutboxDropped,
    OutboxParked,
    #[cfg(feature = "tools")]
    OutboxRefused,
}

/// What [`Engine::note`] tells the core.
#[derive(Clone, Copy)]
enum Event {
    ConfirmPlainRedis,
    TagChannelUp,
    TagChannelDown,
    AckResend,
    MarkStandalone,
}

impl Engine {
    /// The methods that take nothing and answer nothing: one body, so that their exports
    /// differ only in the constant `event` and wasm-opt keeps one copy of the glue
    /// wasm-bindgen writes around them (the wasm size budget,
    /// docs/decisions/0028-wasm-size-budget.md).
    #[inline(never)]
    fn note(&mut self, event: Event) {
        match event {
            Event::ConfirmPlainRedis => self.inner.confirm_plain_redis(),
            Event::TagChannelUp => self.inner.tag_channel_up(),
            Event::TagChannelDown => self.inner.tag_channel_down(),
            Event::AckResend => self.inner.ack_resend(),
            Event::MarkStandalone => self.inner.mark_standalone(),
        }
    }

    /// The string getters: one body, so that their exports differ only in the constant
    /// `which` and wasm-opt keeps one copy of their glue (as [`Engine::note`]).
    #[inline(never)]
    fn name(&self, which: Name) -> String {
        let ns = self.inner.namespace();
        match which {
            Name::Deployment => ns.deployment(),
            Name::UseCacheSegment => ns.use_cache_segment(),
            Name::Prefix => ns.prefix(),
            Name::TagAnnounceChannel => self.inner.tag_announce_channel(),
            Name::Builds => return ns.builds_key(),
        }
        .to_owned()
    }

    /// The count getters: one body, so that their exports differ only in the constant
    /// `which` and wasm-opt keeps one copy of their glue (as [`Engine::note`]).
    #[inline(never)]
    fn count(&self, which: Count) -> u32 {
        let n = match which {
            Count::Resend => self.inner.resend_len(),
            Count::ResendRecords => self.inner.resend_records(),
            #[cfg(feature = "tools")]
            Count::Tags => self.inner.mirror().len(),
            Count::PageHeard => return self.inner.page_heard(),
            Count::Outbox => self.inner.outbox().len(),
            Count::Lost => return u32::try_from(self.inner.tag_records_lost()).unwrap_or(u32::MAX),
            Count::Folded => return u32::try_from(self.inner.tags_folded()).unwrap_or(u32::MAX),
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The methods that reckon a wait from `now`: one body, so that their exports differ
    /// only in the constant `which` and wasm-opt keeps one copy of their glue (as
    /// [`Engine::note`]).
    #[inline(never)]
    fn wait_ms(&self, which: Wait, now: f64) -> f64 {
        match which {
            #[cfg(feature = "tools")]
            Wait::Probe => match self.inner.breaker().next_probe_at() {
                Some(at) => (at.0 - now).max(0.0),
                None => -1.0,
            },
            Wait::OutboxRetry => self.inner.outbox().retry_in(Millis(now)),
        }
    }

    /// `memoryRemove` (`remove`) or `memoryMarkLocal`: one body, so that the two exports
    /// differ only in the constant `remove` and wasm-opt keeps one copy of their glue (as
    /// [`Engine::note`]).
    #[inline(never)]
    fn tier_key(&mut self, key: &str, remove: bool) -> bool {
        let lru = self.inner.lru_mut();
        if remove {
            lru.remove(key)
        } else {
            lru.mark_local(key)
        }
    }

    /// The getters answering a number: one body, so that their exports differ only in the
    /// constant `which` and wasm-opt keeps one copy of their glue (as [`Engine::note`]).
    #[inline(never)]
    fn figure(&self, which: Figure) -> f64 {
        match which {
            Figure::MaxEntryBytes => self.inner.config().max_entry_bytes as f64,
            Figure::ConnectBudget => self.inner.connect_budget_ms(),
            Figure::BreakerTrips => self.inner.breaker().trips() as f64,
            #[cfg(feature = "tools")]
            Figure::BreakerRejected => self.inner.breaker().rejected() as f64,
            Figure::OutboxHeadSeq => self.inner.outbox().head().map_or(0.0, |u| u.seq as f64),
            Figure::OutboxDropped => self.inner.outbox().dropped() as f64,
            Figure::OutboxParked => self.inner.outbox().parked() as f64,
            #[cfg(feature = "tools")]
            Figure::OutboxRefused => self.inner.outbox().refused() as f64,
        }
    }

    /// `scriptSource` (`source`) or `unannouncedWrite`: one body, so that the two exports
    /// differ only in the constant `source` and wasm-opt keeps one copy of the glue
    /// wasm-bindgen writes around them (the wasm size budget,
    /// docs/decisions/0028-wasm-size-budget.md).
    #[inline(never)]
    fn text_for(&self, input: &str, source: bool) -> Option<String> {
        if source {
            fleetcache_core::scripts::ALL
                .iter()
                .find(|s| s.sha1() == input)
                .map(|s| s.source.to_owned())
        } else {
            self.inner
                .unannounced_write(&split(input))
                .map(|a| join(&a))
        }
    }
}

/// A hash seed from `crypto.getRandomValues`; `None` where the runtime refuses random values.
/// Not inlined: the constructor and [`Engine::draw_hash_seed`] share one copy in the module.
#[inline(never)]
fn drawn_seed() -> Option<fleetcache_core::HashSeed> {
    let mut seed = [0u8; 16];
    getrandom::fill(&mut seed).ok()?;
    Some(fleetcache_core::HashSeed::from_bytes(seed))
}

#[wasm_bindgen]
impl Engine {
    /// Creates an engine from a configuration object (`prefix`, `deployment`, budgets).
    /// Throws an `Error` whose `code` names the invalid setting and whose `setting` is its
    /// option name. Its maps keyed by request input are hashed with a seed drawn from
    /// `crypto.getRandomValues` (docs/decisions/0033); a runtime that refuses random values
    /// where the engine is made (a Cloudflare Worker's global scope) gets the fixed seed, and
    /// `hashSeeded` says so.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<Engine, JsValue> {
        let config: Config = if config.is_undefined() || config.is_null() {
            Config::default()
        } else {
            crate::settings::read_config(&config).map_err(|e| js_error(&e))?
        };
        let seed = drawn_seed();
        let inner = fleetcache_core::Engine::with_hash_seed(config, seed.unwrap_or_default())
            .map_err(|e| js_error(&e))?;
        Ok(Engine {
            inner,
            hash_seeded: seed.is_some(),
        })
    }

    /// False while the maps use the fixed seed: the runtime refused random values as the
    /// engine was made, and no later [`Engine::draw_hash_seed`] succeeded. Keys an attacker
    /// chooses can then collide in them, as with `std`'s hasher on this target
    /// (docs/decisions/0033).
    #[wasm_bindgen(getter, js_name = hashSeeded)]
    pub fn hash_seeded(&self) -> bool {
        self.hash_seeded
    }

    /// Draws a new seed for the maps keyed by request input from `crypto.getRandomValues` and
    /// rehashes what they hold; returns whether the runtime gave random values (when not,
    /// nothing changes). For an engine made where random values are refused (a Cloudflare
    /// Worker's global scope): the workers entry calls it at its first request-scoped call
    /// while `hashSeeded` is false.
    #[wasm_bindgen(js_name = drawHashSeed)]
    pub fn draw_hash_seed(&mut self) -> bool {
        let Some(seed) = drawn_seed() else {
            return false;
        };
        self.inner.reseed_hashes(seed);
        self.hash_seeded = true;
        true
    }

    /// The deployment segment actually used in keys (sanitised).
    #[wasm_bindgen(getter)]
    pub fn deployment(&self) -> String {
        self.name(Name::Deployment)
    }

    /// The segment `'use cache'` entries are stored under: the deployment, or the Next release
    /// when `durableUseCache` is on (core: `durable_use_cache_segment`).
    #[wasm_bindgen(getter, js_name = useCacheSegment)]
    pub fn use_cache_segment(&self) -> String {
        self.name(Name::UseCacheSegment)
    }

    /// The key prefix in use.
    #[wasm_bindgen(getter)]
    pub fn prefix(&self) -> String {
        self.name(Name::Prefix)
    }

    /// The HASH in which each server process records the build it serves under this
    /// deployment, `<prefix>:<deployment>:builds` (core: `Namespace::builds_key`).
    #[wasm_bindgen(getter, js_name = buildsKey)]
    pub fn builds_key(&self) -> String {
        self.name(Name::Builds)
    }

    /// Largest entry (header plus payload) that will be stored, in bytes.
    #[wasm_bindgen(getter, js_name = maxEntryBytes)]
    pub fn max_entry_bytes(&self) -> f64 {
        self.figure(Figure::MaxEntryBytes)
    }

    /// Redis key of the entry for `cacheKey` under interface `iface`. Every surface derives
    /// the key here before any other call about the entry, so this is where a key that is not
    /// well-formed UTF-16 is refused: it throws an `Error` with code `ERR_KEY_ILL_FORMED`.
    #[wasm_bindgen(js_name = entryKey)]
    pub fn entry_key(
        &self,
        iface: &Iface,
        #[wasm_bindgen(unchecked_param_type = "string")] cache_key: &JsString,
    ) -> Result<String, JsValue> {
        Ok(self.inner.entry_key(&iface.get(), &utf8_key(cache_key)?))
    }

    /// Records a revalidation in the local mirror at once and returns the `EVALSHA` argv
    /// that makes it fleet-wide, with `expireSeconds` NaN when a `Stale` profile has no expire.
    #[cfg(feature = "tools")]
    #[wasm_bindgen(js_name = planTagUpdate)]
    pub fn plan_tag_update(
        &mut self,
        tags: &str,
        mode: RevalidationMode,
        expire_seconds: f64,
        now: f64,
    ) -> Result<String, JsValue> {
        let rev = mode.with_expire(expire_seconds);
        let tags = split(tags);
        let epoch = random_token()?;
        let call = self
            .inner
            .plan_tag_update(&tags, &rev, Millis(now), &epoch)
            .map_err(|e| js_error(&e))?;
        Ok(script_argv(call))
    }

    /// The `EVALSHA` argv that pulls tag changes since the mirror's version (the mirror notes
    /// which of its updates the pull checks). One pull at a time: plan the next once this
    /// one's reply was applied or the call failed, and drop a reply that comes after that.
    #[wasm_bindgen(js_name = planTagRefresh)]
    pub fn plan_tag_refresh(&mut self) -> String {
        script_argv(self.inner.plan_tag_refresh())
    }

    /// The `EVALSHA` argv of `planTagRefresh`, planned at `now`: following the tag state by
    /// push, the pull's start bounds how far behind the mirror may be.
    #[wasm_bindgen(js_name = planTagPull)]
    pub fn plan_tag_pull(&mut self, now: f64) -> String {
        script_argv(self.inner.plan_tag_pull(Millis(now)))
    }

    /// Follows the tag state by push, pulling at least every `max_pull_interval_ms`: this
    /// process's updates announce what they write on `tagAnnounceChannel`.
    #[wasm_bindgen(js_name = followTagsByPush)]
    pub fn follow_tags_by_push(&mut self, max_pull_interval_ms: f64) -> Result<(), JsValue> {
        self.inner
            .follow_tags_by_push(max_pull_interval_ms)
            .map_err(|e| js_error(&e))
    }

    /// Writes of page and route entries of the singular handler announce themselves on
    /// `tagAnnounceChannel` from now on (single Redis, whatever `tagSync`:
    /// docs/decisions/0031-page-entries-in-the-tier-by-push.md).
    /// Draws this process's seed of page-write ids here, not as the engine is built: a
    /// workers runtime may refuse random values at global scope, and it never announces.
    #[wasm_bindgen(js_name = announcePageWrites)]
    pub fn announce_page_writes(&mut self) -> Result<(), JsValue> {
        // Page writes' ids: unique to this process (docs/decisions/0031).
        self.inner
            .set_write_id_seed(&random_token()?)
            .map_err(|e| js_error(&e))?;
        self.inner.announce_page_writes();
        Ok(())
    }

    /// The host got CROSSSLOT for the page write of `argv` (NUL-joined; a cluster-enabled
    /// Redis behind one URL): the returned argv writes that entry unannounced (the value
    /// appended as before; empty: a plain `SET`). `undefined` when `argv` is not an announcing
    /// page write. Later page writes still try to announce themselves.
    #[wasm_bindgen(js_name = unannouncedWrite)]
    pub fn unannounced_write(&self, argv: &str) -> Option<String> {
        self.text_for(argv, false)
    }

    /// Redis answered `CLUSTER SLOTS` with "cluster support disabled": following by push,
    /// page copies may serve from the tier (until then they are kept for outages only).
    #[wasm_bindgen(js_name = confirmPlainRedis)]
    pub fn confirm_plain_redis(&mut self) {
        self.note(Event::ConfirmPlainRedis);
    }

    /// The sharded channel the tag updates announce on.
    #[wasm_bindgen(getter, js_name = tagAnnounceChannel)]
    pub fn tag_announce_channel(&self) -> String {
        self.name(Name::TagAnnounceChannel)
    }

    /// The subscription to the announcement channel is confirmed.
    #[wasm_bindgen(js_name = tagChannelUp)]
    pub fn tag_channel_up(&mut self) {
        self.note(Event::TagChannelUp);
    }

    /// The subscription is down, reconnecting or dropped.
    #[wasm_bindgen(js_name = tagChannelDown)]
    pub fn tag_channel_down(&mut self) {
        self.note(Event::TagChannelDown);
    }

    /// The pull planned last (`planTagPull`) failed, reported at `now`: no reply of it will
    /// be applied. A revalidation it was to answer stays due, after a backoff from `now`, and
    /// the failure is retried on the one timer (`pollTimeout`).
    #[wasm_bindgen(js_name = tagPullFailed)]
    pub fn tag_pull_failed(&mut self, now: f64) {
        self.inner.tag_pull_failed(Millis(now));
    }

    /// Arms the retry at `now`, due after core `Engine::retry_in_ms` unless an armed one is due sooner: a
    /// send that failed or waits its backoff, the breaker tripped, something still waiting
    /// after a retry (core `Engine::arm_retry`).
    #[wasm_bindgen(js_name = armRetry)]
    pub fn arm_retry(&mut self, now: f64) {
        self.inner.arm_retry(Millis(now));
    }

    /// When the host's one timer should next wake, asked at `now` (the same clock): the
    /// pull time (following by push) or the retry's, whichever is earlier; negative, no timer. At or
    /// before `now`, `handleTimeout` says what to do. Ask again after every event that can
    /// move it and when the timer fires (core `Engine::poll_timeout`).
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&mut self, now: f64) -> f64 {
        self.inner
            .poll_timeout(Millis(now))
            .map_or(-1.0, |(at, _)| at.0)
    }

    /// What the one timer does at `now`: `undefined` when nothing is due (it fired early, or
    /// what it was set for was done or moved). A retry is handed out once (core
    /// `Engine::handle_timeout`).
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self, now: f64) -> Option<Wake> {
        self.inner.handle_timeout(Millis(now)).map(|w| match w {
            fleetcache_core::Wake::Pull => Wake::Pull,
            fleetcache_core::Wake::Retry => Wake::Retry,
            fleetcache_core::Wake::Send => Wake::Send,
        })
    }

    /// Applies a message of the announcement channel, heard at `now`: applied, known already,
    /// or a gap (the next pulls catch up).
    #[wasm_bindgen(js_name = applyAnnouncement)]
    pub fn apply_announcement(&mut self, msg: &[u8], now: f64) -> Result<Announcement, JsValue> {
        use fleetcache_core::tags::Announced;
        match self
            .inner
            .apply_announcement(msg, Millis(now))
            .map_err(|e| js_error(&e))?
        {
            Announced::Applied(_) => Ok(Announcement::Applied),
            Announced::Known => Ok(Announcement::Known),
            Announced::Gap => Ok(Announcement::Gap),
        }
    }

    /// The host's two clocks at a request's start or a pull: `now` (Next's) and `wall`
    /// (`Date.now()`). A step of one against the other since the last call (a machine resumed
    /// after a pause) takes the mirror out of caught up by push until a pull
    /// (`fleetcache_core::Engine::note_clocks`).
    #[wasm_bindgen(js_name = noteClocks)]
    pub fn note_clocks(&mut self, now: f64, wall: f64) {
        self.inner.note_clocks(Millis(now), Millis(wall));
    }

    /// How far the clocks' distance may move before a request's start tells the engine
    /// (`noteClocks`): the host's filter, read once at load, which the engine's test for a
    /// step accounts for (`fleetcache_core::time::CLOCK_NOTE_MS`).
    #[wasm_bindgen(getter, js_name = clockNoteMs)]
    pub fn clock_note_ms(&self) -> f64 {
        fleetcache_core::time::CLOCK_NOTE_MS
    }

    /// Whether a request at `now` may skip the tag pull (following by push, caught up).
    #[wasm_bindgen(js_name = tagsCaughtUp)]
    pub fn tags_caught_up(&self, now: f64) -> bool {
        self.inner.tags_caught_up(Millis(now))
    }

    /// Merges a tag-refresh reply received at `now` into the mirror; returns how many tags
    /// changed.
    #[wasm_bindgen(js_name = applyRefresh)]
    pub fn apply_refresh(&mut self, reply: &[u8], now: f64) -> Result<u32, JsValue> {
        let summary = self
            .inner
            .apply_refresh(reply, Millis(now))
            .map_err(|e| js_error(&e))?;
        Ok(u32::try_from(summary.changed).unwrap_or(u32::MAX))
    }

    /// The `EVALSHA` argv that merges lost tag records back into Redis; empty when none wait.
    /// The same batch comes again until `ackResend`.
    #[wasm_bindgen(js_name = planResend)]
    pub fn plan_resend(&mut self) -> Result<String, JsValue> {
        let candidate = random_token()?;
        match self.inner.plan_resend(&candidate) {
            Ok(Some(call)) => Ok(script_argv(call)),
            Ok(None) => Ok(String::new()),
            Err(e) => Err(js_error(&e)),
        }
    }

    /// Redis applied the batch of `planResend`.
    #[wasm_bindgen(js_name = ackResend)]
    pub fn ack_resend(&mut self) {
        self.note(Event::AckResend);
    }

    /// Tag records waiting to be merged back into Redis, and one for the tag state's meta hash
    /// when it is to be made anew (a merge of no record): a merge is due while above 0.
    #[wasm_bindgen(getter, js_name = resendLength)]
    pub fn resend_length(&self) -> u32 {
        self.count(Count::Resend)
    }

    /// Tag records waiting to be merged back into Redis, one per tag, without the meta hash
    /// `resendLength` counts: what the lines about them count.
    #[wasm_bindgen(getter, js_name = resendRecords)]
    pub fn resend_records(&self) -> u32 {
        self.count(Count::ResendRecords)
    }

    /// Tag records Redis lost, over the engine's life, that this process knew and had sent
    /// or learnt from Redis (a record still queued for Redis is not counted).
    #[wasm_bindgen(getter, js_name = tagRecordsLost)]
    pub fn tag_records_lost(&self) -> u32 {
        self.count(Count::Lost)
    }

    /// Tag records the mirror folded past `tagMirrorMaxTags`, over the engine's life.
    #[wasm_bindgen(getter, js_name = tagsFolded)]
    pub fn tags_folded(&self) -> u32 {
        self.count(Count::Folded)
    }

    /// True once the mirror holds the shared tag state (or no Redis is configured).
    #[wasm_bindgen(getter, js_name = tagsSynced)]
    pub fn tags_synced(&self) -> bool {
        self.inner.mirror().is_synced()
    }

    /// The next tag refresh makes the mirror synced unless it brings more changes to catch up
    /// on (after a load's last page, or a refresh answered in parts): a pull makes it before
    /// the request waiting on it is judged.
    #[wasm_bindgen(getter, js_name = tagsCatchingUp)]
    pub fn tags_catching_up(&self) -> bool {
        self.inner.mirror().is_catching_up()
    }

    /// No Redis is configured: this process's own revalidations are the whole tag state.
    #[wasm_bindgen(js_name = markStandalone)]
    pub fn mark_standalone(&mut self) {
        self.note(Event::MarkStandalone);
    }

    /// Milliseconds until the circuit breaker admits its next probe; -1 while it is closed.
    #[cfg(feature = "tools")]
    #[wasm_bindgen(js_name = probeInMs)]
    pub fn probe_in_ms(&self, now: f64) -> f64 {
        self.wait_ms(Wait::Probe, now)
    }

    /// Takes note of a tag-update reply: the mirror's version moves only when no other
    /// instance's update came in between (otherwise the next refresh pulls those).
    #[wasm_bindgen(js_name = applyUpdateReply)]
    pub fn apply_update_reply(&mut self, reply: &[u8]) -> Result<(), JsValue> {
        self.inner
            .apply_update_reply(reply)
            .map(|_| ())
            .map_err(|e| js_error(&e))
    }

    /// Lua source for a script SHA, for the `NOSCRIPT` fallback to `EVAL`.
    #[wasm_bindgen(js_name = scriptSource)]
    pub fn script_source(&self, sha1: &str) -> Option<String> {
        self.text_for(sha1, true)
    }

    /// Next's `getExpiration(tags)`: the latest expiry over the NUL-joined tags, 0 if none.
    #[wasm_bindgen(js_name = getExpiration)]
    pub fn get_expiration(&self, tags: &str, now: f64) -> f64 {
        self.inner.get_expiration(&split(tags), Millis(now)).0
    }

    /// Number of tags the mirror knows.
    #[cfg(feature = "tools")]
    #[wasm_bindgen(getter, js_name = tagCount)]
    pub fn tag_count(&self) -> u32 {
        self.count(Count::Tags)
    }

    /// Registers `size` bytes under `key` in the in-process tier, charged with what the item
    /// costs besides them on both sides (the host's `Map` entry and `Buffer`, the index's slot,
    /// the key: core `lru::item_overhead`, so the host passes the value's size alone); returns
    /// the NUL-joined keys the host must drop from its byte store (possibly `key` itself when
    /// it does not fit).
    /// `order`: a read step's `Order` for the bytes it keeps, 0 for this process's own write
    /// (core `LruIndex::insert_ordered`).
    #[wasm_bindgen(js_name = memoryInsert)]
    pub fn memory_insert(&mut self, key: &str, size: f64, expires_at: f64, order: f64) -> String {
        let size = if size.is_finite() && size >= 0.0 {
            size as u64
        } else {
            u64::MAX
        };
        // `as` saturates: NaN and negatives are 0, an own write's.
        let order = order as u64;
        join(
            &self
                .inner
                .lru_mut()
                .insert_ordered(key, size, Millis(expires_at), order),
        )
    }

    /// Charges the decoded value the host keeps alongside the tier's copy of `key` to the
    /// tier's budget, in place of any earlier charge; both leave together. The core reckons
    /// the charge from the copy's size and `structural`, the count of `{`, `[`, `:` and `,`
    /// bytes in the value's JSON part (core `LruIndex::charge_decoded`). Returns the NUL-joined
    /// keys evicted to make room, or undefined when `key` is not held or the copy and its
    /// charge exceed the whole budget: then keep nothing.
    #[wasm_bindgen(js_name = memoryCharge)]
    pub fn memory_charge(&mut self, key: &str, structural: f64) -> Option<String> {
        // `as` saturates: NaN and negatives are 0, infinity the largest count (refused).
        self.inner
            .lru_mut()
            .charge_decoded(key, structural as u64)
            .map(|e| join(&e))
    }

    /// Marks `key` as just used; false when it is absent, past its lifetime, or this
    /// process's own copy that never reached Redis while Redis answers (then removed).
    #[wasm_bindgen(js_name = memoryTouch)]
    pub fn memory_touch(&mut self, key: &str, now: f64) -> bool {
        self.inner.tier_touch(key, Millis(now))
    }

    /// Marks the tier's copy of `key` as a read or write step's `Keep` says: kept for outages
    /// only (served while Redis cannot be reached, never while it answers) when `outageOnly`,
    /// and bound to page generation `pageGen` (the read step's `PageGen`) when it is not 0: it
    /// serves while Redis answers only while the announcements keep that generation
    /// (docs/decisions/0031-page-entries-in-the-tier-by-push.md). False when `key` is not held.
    #[wasm_bindgen(js_name = memoryMark)]
    pub fn memory_mark(&mut self, key: &str, outage_only: bool, page_gen: f64) -> bool {
        let lru = self.inner.lru_mut();
        if outage_only {
            return lru.mark_outage_only(key);
        }
        page_gen >= 1.0 && page_gen <= f64::from(u32::MAX) && lru.bind_page(key, page_gen as u32)
    }

    /// Marks the tier's copy of `key` as this process's own: its write to Redis failed.
    #[wasm_bindgen(js_name = memoryMarkLocal)]
    pub fn memory_mark_local(&mut self, key: &str) -> bool {
        self.tier_key(key, false)
    }

    /// Forgets `key` in the in-process tier.
    #[wasm_bindgen(js_name = memoryRemove)]
    pub fn memory_remove(&mut self, key: &str) -> bool {
        self.tier_key(key, true)
    }

    /// Bytes charged to the in-process tier's budget: its values and what is charged with
    /// them (each item's bookkeeping, kept headers, decoded values).
    #[wasm_bindgen(getter, js_name = memoryBytes)]
    pub fn memory_bytes(&mut self) -> f64 {
        self.inner.lru_mut().used_bytes() as f64
    }
}

/// The singular `cacheHandler` (`fleetcache/incremental`).
#[wasm_bindgen]
impl Engine {
    /// True when `updateTags` recorded the same revalidation (tags, `mode`, `expireSeconds`
    /// as for `planTagUpdate`) in the host's turn `turn` (`revalidate`'s) and the mirror still
    /// holds it: the singular handler's `revalidateTag` then skips its Redis write, since Next
    /// has just sent the same event through `updateTags`. True once per such revalidation.
    #[wasm_bindgen(js_name = revalidationRecorded)]
    pub fn revalidation_recorded(
        &mut self,
        tags: &str,
        mode: RevalidationMode,
        expire_seconds: f64,
        now: f64,
        turn: u32,
    ) -> bool {
        let rev = mode.with_expire(expire_seconds);
        self.inner
            .revalidation_recorded(&split(tags), &rev, Millis(now), u64::from(turn))
    }
}

/// Whether a singular-handler value of `kind` served from the tier is decoded once and kept
/// alongside the tier's copy (`memoryCharge`), core `ValueKind::memoised`. Cold path: the host
/// asks once per kind at start-up.
#[wasm_bindgen(js_name = memoisedKind)]
pub fn memoised_kind(kind: u8) -> bool {
    fleetcache_core::incremental::ValueKind::from_u8(kind).is_some_and(|k| k.memoised())
}

/// A random token (128 bits, hex) for lease ownership and tag-state epochs. Exported to JS by
/// the tools module only: no host code draws one.
#[cfg_attr(feature = "tools", wasm_bindgen(js_name = randomToken))]
pub fn random_token() -> Result<String, JsValue> {
    let mut bytes = [0u8; 16];
    // Static text and a hand-written hex loop: the source's own message and `format!` would
    // bring formatting code into the module for a start-up call (docs/decisions/0028-wasm-size-budget.md).
    getrandom::fill(&mut bytes).map_err(|_| js_error(&BindingError::NoRandom))?;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(32);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    Ok(out)
}

/// Every script the core sends, as one NUL-joined list of name, SHA-1 pairs
/// (`tag_update`, its SHA-1, `tag_refresh`, ...): what the tests and benchmarks name the
/// `EVALSHA` calls they watch for by, taken from the scripts themselves rather than from a
/// second compaction of their files. In the tools module only: no host code asks.
#[cfg(feature = "tools")]
#[wasm_bindgen(js_name = scriptShas)]
pub fn script_shas() -> String {
    let mut items = Vec::with_capacity(2 * fleetcache_core::scripts::ALL.len());
    for script in fleetcache_core::scripts::ALL {
        items.push(script.name.to_owned());
        items.push(script.sha1());
    }
    join(&items)
}

/// Failure handling: budgets, circuit breaker, revalidation outbox.
#[wasm_bindgen]
impl Engine {
    /// Budget in ms of a command of `kind`. The host abandons the command when it runs out.
    #[wasm_bindgen(js_name = budgetMs)]
    pub fn budget_ms(&self, kind: CommandKind) -> f64 {
        self.inner.budget_ms(kind.into())
    }

    /// Budget in ms a command may wait for a connection attempt.
    #[wasm_bindgen(getter, js_name = connectBudgetMs)]
    pub fn connect_budget_ms(&self) -> f64 {
        self.figure(Figure::ConnectBudget)
    }

    /// Asks the circuit breaker whether a command of `kind` may be sent at `now`: a
    /// positive permit token to pass to `report`, or 0 when Redis must not be touched (a
    /// read is then a miss, a write is skipped).
    pub fn admit(&mut self, kind: CommandKind, now: f64) -> f64 {
        match self.inner.admit(kind.into(), Millis(now)) {
            fleetcache_core::Admission::Send { permit, .. } => permit.to_token() as f64,
            fleetcache_core::Admission::Skip => 0.0,
        }
    }

    /// Reports how an admitted command ended (an error reply means Redis is reachable: a
    /// success for the breaker, counted as a reply error only). Returns [`Reported`] bits:
    /// whether the breaker changed state, and whether revalidations wait to be sent (the
    /// outbox or the resend list), so a command's end costs one call into the module.
    pub fn report(&mut self, permit: f64, result: CommandResult, now: f64) -> u32 {
        let changed = self.report_result(permit, result, now);
        let waiting = !self.inner.outbox().is_empty() || self.inner.resend_len() > 0;
        (if changed {
            Reported::BreakerChanged as u32
        } else {
            0
        }) | (if waiting { Reported::Backlog as u32 } else { 0 })
    }

    /// `report`'s breaker part: true when the breaker changed state.
    fn report_result(&mut self, permit: f64, result: CommandResult, now: f64) -> bool {
        let token = if permit.is_finite() && permit >= 0.0 {
            permit as u64
        } else {
            0
        };
        let permit = fleetcache_core::Permit::from_token(token);
        let result = match result {
            CommandResult::Reply => fleetcache_core::CallResult::Success,
            CommandResult::Timeout => fleetcache_core::CallResult::Timeout,
            CommandResult::ErrorReply => return self.inner.report_reply_error(permit, Millis(now)),
            CommandResult::NoAnswer => fleetcache_core::CallResult::Failure,
        };
        self.inner.report(permit, result, Millis(now))
    }

    /// The breaker's state at `now`.
    #[wasm_bindgen(js_name = breakerState)]
    pub fn breaker_state(&self, now: f64) -> BreakerState {
        self.inner.breaker_state(Millis(now)).into()
    }

    /// Times the breaker opened from closed (outages; a failed probe is not one more).
    #[wasm_bindgen(getter, js_name = breakerTrips)]
    pub fn breaker_trips(&self) -> f64 {
        self.figure(Figure::BreakerTrips)
    }

    /// Commands the breaker refused.
    #[cfg(feature = "tools")]
    #[wasm_bindgen(getter, js_name = breakerRejected)]
    pub fn breaker_rejected(&self) -> f64 {
        self.figure(Figure::BreakerRejected)
    }

    /// The `EVALSHA` argv of the outbox's oldest revalidation, or an empty array when the
    /// outbox is empty. Its sequence number is `outboxHeadSeq`.
    #[wasm_bindgen(js_name = planOutboxHead)]
    pub fn plan_outbox_head(&mut self) -> Result<String, JsValue> {
        let epoch = random_token()?;
        let head = self
            .inner
            .plan_outbox_head(&epoch)
            .map_err(|e| js_error(&e))?;
        Ok(head.map_or_else(String::new, |(_, call)| script_argv(call)))
    }

    /// Sequence number of the outbox's oldest revalidation (0 when empty).
    #[wasm_bindgen(getter, js_name = outboxHeadSeq)]
    pub fn outbox_head_seq(&self) -> f64 {
        self.figure(Figure::OutboxHeadSeq)
    }

    /// Redis applied revalidation `seq`: removes it from the outbox when it is the head.
    #[wasm_bindgen(js_name = ackOutbox)]
    pub fn ack_outbox(&mut self, seq: f64) -> bool {
        seq.is_finite() && seq >= 1.0 && self.inner.ack_outbox(seq as u64)
    }

    /// Page announcements and gaps heard, this process's own page writes included (wrapping;
    /// 0 when pulling): the read driver shares a `GET` in flight only under the count it went
    /// out under.
    #[wasm_bindgen(getter, js_name = pageHeard)]
    pub fn page_heard(&self) -> u32 {
        self.count(Count::PageHeard)
    }

    /// Revalidations waiting for Redis.
    #[wasm_bindgen(getter, js_name = outboxLength)]
    pub fn outbox_length(&self) -> u32 {
        self.count(Count::Outbox)
    }

    /// Revalidations the full outbox took out of its queue (what they wrote waits to be merged
    /// back into Redis with the records given back after a loss).
    #[wasm_bindgen(getter, js_name = outboxDropped)]
    pub fn outbox_dropped(&self) -> f64 {
        self.figure(Figure::OutboxDropped)
    }

    /// Redis answered revalidation `seq` with the error reply `message` at `now`. `Kept`:
    /// replayed after the backoff (`armRetry`, `pollTimeout`). A permission error (`NOPERM` and its script
    /// forms) does not pass by retrying, so the revalidation is dropped (it holds on this
    /// instance only): `Dropped` for the first such refusal since a revalidation last went
    /// through (log it, with `missingPermission`), `DroppedAgain` for the ones after it (count
    /// them). An error that kept coming back (`WRONGTYPE` and the like, not `OOM` or
    /// `READONLY`) parks it, and the queue moves on: `Parked` for the first parked since a
    /// revalidation last went through (log it), `ParkedAgain` for the ones after it.
    #[wasm_bindgen(js_name = refuseOutbox)]
    pub fn refuse_outbox(&mut self, seq: f64, message: &str, now: f64) -> OutboxRefusal {
        if !(seq.is_finite() && seq >= 1.0) {
            return OutboxRefusal::Kept;
        }
        self.inner
            .refuse_outbox(seq as u64, message, Millis(now))
            .into()
    }

    /// Revalidation `seq` got no reply at `now` (timeout, lost connection, open breaker): it
    /// stays queued and waits the backoff (`armRetry`, `pollTimeout`).
    #[wasm_bindgen(js_name = failOutbox)]
    pub fn fail_outbox(&mut self, seq: f64, now: f64) {
        if seq.is_finite() && seq >= 1.0 {
            self.inner.fail_outbox(seq as u64, Millis(now));
        }
    }

    /// Milliseconds from `now` until the outbox's oldest revalidation may be sent again (0:
    /// now, or nothing waits).
    #[wasm_bindgen(js_name = outboxRetryInMs)]
    pub fn outbox_retry_in_ms(&self, now: f64) -> f64 {
        self.wait_ms(Wait::OutboxRetry, now)
    }

    /// Revalidations parked because Redis kept answering them with an error retrying does not
    /// fix (they reached this instance only).
    #[wasm_bindgen(getter, js_name = outboxParked)]
    pub fn outbox_parked(&self) -> f64 {
        self.figure(Figure::OutboxParked)
    }

    /// What a permission error says the ACL user lacks, as `ACL SETUSER` rules (`+zadd`,
    /// `~<prefix>:*`, or `one of +hget +hset ...` for a script); `""` for any other error and
    /// when the error names nothing.
    #[wasm_bindgen(js_name = missingPermission)]
    pub fn missing_permission(&self, message: &str) -> String {
        self.inner.missing_permission(message).unwrap_or_default()
    }

    /// Revalidations dropped because Redis refused them for want of a permission.
    #[cfg(feature = "tools")]
    #[wasm_bindgen(getter, js_name = outboxRefused)]
    pub fn outbox_refused(&self) -> f64 {
        self.figure(Figure::OutboxRefused)
    }
}

/// Decodes a stored value's envelope header for display (the `fleetcache inspect` CLI), without
/// knowing its cache key and without judging it. `value` is the start of the stored value (the
/// header is enough) and `totalLen` its full length. Returns a plain object (`formatVersion`,
/// `interface`, `timestamp`, `made` (a value written back: when it was made), `revalidate`,
/// `expire`, `stale`, `key`, `tags`, `parts`,
/// `headerLen`, `payloadLen` (as stored: a compressed value's codec output), and for
/// singular-handler entries `valueKind`, `rscData`, `segments`, `revalidateFalse`,
/// `noExpire`, `noCacheControl`).
/// Throws with the decoder's error code on anything that is not a readable envelope. Cold
/// path: allocates freely.
#[cfg(feature = "tools")]
#[wasm_bindgen(js_name = describeEnvelope)]
pub fn describe_envelope(value: &[u8], total_len: u32) -> Result<JsValue, JsValue> {
    use crate::objects::{JsObject, Sink};
    use fleetcache_core::incremental::Descriptor;
    use fleetcache_core::EntryKind;
    let h = fleetcache_core::decode_stored_header(value, total_len as usize)
        .map_err(|e| js_error(&e))?;
    let m = &h.meta;
    // The objects writer of `stats` (objects.rs): one copy of the property-setting code.
    let mut o = JsObject::new();
    o.num("formatVersion", f64::from(fleetcache_core::FORMAT_VERSION));
    o.text(
        "interface",
        match m.kind {
            EntryKind::UseCache => "use-cache",
            EntryKind::Incremental => "incremental",
        },
    );
    o.num("timestamp", m.timestamp.0);
    if let Some(made) = m.made_at {
        o.num("made", made.0);
    }
    o.num("revalidate", m.revalidate);
    o.num("expire", m.expire);
    o.num("stale", m.stale);
    o.text("key", &m.key);
    let tags: js_sys::Array = m.tags.iter().map(|t| JsValue::from_str(t)).collect();
    o.value("tags", &tags);
    let parts: js_sys::Array = m.parts.iter().map(|p| JsValue::from(*p)).collect();
    o.value("parts", &parts);
    o.num("headerLen", h.header_len as f64);
    o.num("payloadLen", h.payload_len as f64);
    if m.kind == EntryKind::Incremental {
        let d = Descriptor::decode(&m.meta).map_err(|e| js_error(&e))?;
        o.num("valueKind", f64::from(d.kind as u8));
        o.flag("rscData", d.has_rsc);
        o.num("segments", f64::from(d.segments));
        o.flag("revalidateFalse", d.revalidate_false);
        o.flag("noExpire", d.no_expire);
        o.flag("noCacheControl", d.no_cache_control);
    }
    o.finish().ok_or_else(|| js_error(&BindingError::Describe))
}

/// Observability: the counters the core keeps where it decides, read at collection
/// time. The `note*` calls report what only the host sees.
#[wasm_bindgen]
impl Engine {
    /// Every counter and gauge at `now`, as a plain object (see docs/observability.md).
    /// Cold path: called by `stats()` and by metric collection, not per request.
    ///
    /// Takes the engine mutably although it only reads: a call that trapped with the engine
    /// borrowed (shared or mutable) never released the borrow, and only a mutable borrow is
    /// refused by every such leftover, so this call throws exactly when the engine is dead
    /// (the host then reports it failed: docs/failures.md, "A trap in the engine").
    pub fn stats(&mut self, now: f64) -> Result<JsValue, JsValue> {
        let snapshot = self.inner.stats_snapshot(Millis(now));
        let mut obj = crate::objects::JsObject::new();
        crate::objects::stats(&snapshot, &mut obj);
        obj.finish().ok_or_else(|| js_error(&BindingError::Stats))
    }

    /// How the mirror judges an entry created at `timestamp` with these NUL-joined tags (the
    /// seed command skips pages revalidated since the build).
    #[cfg(feature = "tools")]
    #[wasm_bindgen(js_name = tagFreshness)]
    pub fn tag_freshness(&self, tags: &str, timestamp: f64, now: f64) -> crate::codes::Freshness {
        self.inner
            .tag_freshness(&split(tags), Millis(timestamp), Millis(now))
            .into()
    }
}

/// The seed's writes (`fleetcache seed`).
#[cfg(feature = "tools")]
#[wasm_bindgen]
impl Engine {
    /// The creation time to stamp on a seeded entry the build wrote at `builtAt` (never later
    /// than `now`); NaN when `builtAt` is not a usable time.
    #[wasm_bindgen(js_name = seedTimestamp)]
    pub fn seed_timestamp(&self, built_at: f64, now: f64) -> f64 {
        self.inner
            .seed_timestamp(Millis(built_at), Millis(now))
            .map_or(f64::NAN, |t| t.0)
    }

    /// The `EVALSHA` argv (value to append) storing a seeded entry of `cacheKey` created at
    /// `created` with a lifetime of `ttlMs` from then, unless the stored entry is as new or
    /// newer (reply 1 stored, 0 kept); an empty array when its lifetime is already over.
    #[wasm_bindgen(js_name = planSeedWrite)]
    pub fn plan_seed_write(
        &self,
        iface: &Iface,
        cache_key: &str,
        created: f64,
        ttl_ms: f64,
        now: f64,
    ) -> Result<String, JsValue> {
        let iface = iface.get();
        let ttl = if ttl_ms.is_finite() && ttl_ms >= 1.0 {
            ttl_ms.floor() as u64
        } else {
            return Ok(String::new());
        };
        Ok(self
            .inner
            .plan_seed_write(&iface, cache_key, Millis(created), ttl, Millis(now))
            .map_or_else(String::new, script_argv))
    }
}
