//! The `Engine` class exported to JS.

use fleetcache_core::{
    Config, DecodedHeader, EntryKind, Interface, KeyError, Millis, Revalidation, ScriptCall,
    SetInput, Verdict,
};
use js_sys::JsString;
use wasm_bindgen::prelude::*;

use crate::error::{js_config_error, js_error};
use crate::list::{join, split};

/// What [`Engine::inspect`] decided about a stored value.
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
    /// The prefix was shorter than the header: call again with `lastNeed` bytes.
    NeedMore = 5,
}

/// One process's cache engine: key derivation, envelope codec, tag mirror and the in-process
/// tier's index. Every method is synchronous; the host performs the I/O it plans.
#[wasm_bindgen]
pub struct Engine {
    pub(crate) inner: fleetcache_core::Engine,
    last_header: Option<DecodedHeader>,
    last_need: usize,
    last_error: &'static str,
    last_ttl_ms: Option<u64>,
    /// The singular handler's decision from the last `inspectIncremental`.
    last_serve: Option<fleetcache_core::incremental::Serve>,
    /// The lease flight's pause before its next poll and its poll count.
    last_flight: Option<fleetcache_core::lease::Flight>,
    /// How the last inspected `'use cache'` entry is shown when served stale:
    /// `(timestamp, revalidate)`, `None` when it cannot be (then it is a miss).
    last_stale: Option<(Millis, f64)>,
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
    fn get(&self) -> Interface<'_> {
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
        let checked = Interface::use_cache(name).map_err(|e| js_error(e.code(), &e.to_string()))?;
        Ok(Iface {
            name: match checked {
                Interface::UseCache(n) => Some(n.to_owned()),
                Interface::Incremental => None,
            },
        })
    }

    /// Parses a key segment as it appears in Redis keys: `inc` or `uc-<name>`.
    /// Throws an `Error` with code `ERR_KEY_INTERFACE` for anything else.
    pub fn parse(segment: &str) -> Result<Iface, JsValue> {
        Ok(Iface {
            name: match Interface::parse(segment).map_err(|e| js_error(e.code(), &e.to_string()))? {
                Interface::UseCache(n) => Some(n.to_owned()),
                Interface::Incremental => None,
            },
        })
    }

    /// The key segment: `inc` or `uc-<name>`. Distinct interfaces have distinct segments.
    #[wasm_bindgen(getter)]
    pub fn segment(&self) -> String {
        self.get().segment()
    }

    /// Whether this is the singular handler's interface.
    #[wasm_bindgen(getter, js_name = isIncremental)]
    pub fn is_incremental(&self) -> bool {
        self.name.is_none()
    }
}

/// The cache key as UTF-8, refusing one with a lone surrogate: converted, it would become
/// U+FFFD and share its entry with other keys (`KeyError::IllFormedCacheKey`). A key that
/// is not a string at all is refused the same way.
fn utf8_key(key: &JsString) -> Result<String, JsValue> {
    let err = || {
        let e = KeyError::IllFormedCacheKey;
        js_error(e.code(), &e.to_string())
    };
    if !key.is_well_formed() {
        return Err(err());
    }
    key.as_string().ok_or_else(err)
}

fn script_argv(call: ScriptCall) -> Vec<String> {
    let mut argv = Vec::with_capacity(3 + call.keys.len() + call.args.len());
    argv.push("EVALSHA".to_owned());
    argv.push(call.sha1);
    argv.push(call.keys.len().to_string());
    argv.extend(call.keys);
    argv.extend(call.args);
    argv
}

#[wasm_bindgen]
impl Engine {
    /// Creates an engine from a configuration object (`prefix`, `deployment`, budgets).
    /// Throws an `Error` whose `code` names the invalid setting and whose `setting` is its
    /// option name.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<Engine, JsValue> {
        let config: Config = if config.is_undefined() || config.is_null() {
            Config::default()
        } else {
            serde_wasm_bindgen::from_value(config)
                .map_err(|e| js_error("ERR_CONFIG_INVALID", &e.to_string()))?
        };
        let inner = fleetcache_core::Engine::new(config).map_err(|e| js_config_error(&e))?;
        Ok(Engine {
            inner,
            last_header: None,
            last_need: 0,
            last_error: "",
            last_ttl_ms: None,
            last_serve: None,
            last_flight: None,
            last_stale: None,
        })
    }

    /// The deployment segment actually used in keys (sanitised).
    #[wasm_bindgen(getter)]
    pub fn deployment(&self) -> String {
        self.inner.namespace().deployment().to_owned()
    }

    /// The segment `'use cache'` entries are stored under: the deployment, or the Next release
    /// when `durableUseCache` is on (core: `durable_use_cache_segment`).
    #[wasm_bindgen(getter, js_name = useCacheSegment)]
    pub fn use_cache_segment(&self) -> String {
        self.inner.namespace().use_cache_segment().to_owned()
    }

    /// The key prefix in use.
    #[wasm_bindgen(getter)]
    pub fn prefix(&self) -> String {
        self.inner.namespace().prefix().to_owned()
    }

    /// Largest entry (header plus payload) that will be stored, in bytes.
    #[wasm_bindgen(getter, js_name = maxEntryBytes)]
    pub fn max_entry_bytes(&self) -> f64 {
        self.inner.config().max_entry_bytes as f64
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

    /// Encodes the envelope header for a `'use cache'` entry whose payload is `payloadLen`
    /// bytes. The host sends `header ++ payload` with `PX lastTtlMs`; when `lastTtlMs` is
    /// negative the entry must not be stored.
    #[allow(clippy::too_many_arguments)]
    #[wasm_bindgen(js_name = planUseCacheSet)]
    pub fn plan_use_cache_set(
        &mut self,
        iface: &Iface,
        cache_key: &str,
        tags: &str,
        timestamp: f64,
        revalidate: f64,
        expire: f64,
        stale: f64,
        payload_len: u32,
        now: f64,
    ) -> Result<Vec<u8>, JsValue> {
        let tags = split(tags);
        let parts = [payload_len];
        let input = SetInput {
            kind: EntryKind::UseCache,
            timestamp: Millis(timestamp),
            revalidate,
            expire,
            stale,
            tags: &tags,
            meta: &[],
            parts: &parts,
            now: Millis(now),
        };
        let plan = self
            .inner
            .plan_set(&iface.get(), cache_key, input)
            .map_err(|e| js_error(e.code(), &e.to_string()))?;
        self.last_ttl_ms = plan.ttl_ms;
        Ok(plan.header)
    }

    /// What the last `plan*Set` or `planTagUpdate` dropped from its tags
    /// (each tag longer than the core's byte limit, on its own), as one log line's text; `""`
    /// when nothing was dropped.
    #[wasm_bindgen(getter, js_name = lastDroppedTags)]
    pub fn last_dropped_tags(&self) -> String {
        let dropped = self.inner.dropped_tags();
        if dropped.is_empty() {
            String::new()
        } else {
            dropped.to_string()
        }
    }

    /// TTL in milliseconds planned by the last `plan*Set` call, or -1 for "do not store".
    #[wasm_bindgen(getter, js_name = lastTtlMs)]
    pub fn last_ttl_ms(&self) -> f64 {
        self.last_ttl_ms.map_or(-1.0, |v| v as f64)
    }

    /// Decides what a stored value is worth. `prefix` is the start of the value (4 KiB is
    /// enough for nearly every entry), `totalLen` its full length, `softTags` the request's
    /// implicit tags joined with NUL. Returns a verdict code; details through the `last*`
    /// getters. `NeedMore` asks for a longer prefix (`lastNeed` bytes).
    pub fn inspect(
        &mut self,
        cache_key: &str,
        prefix: &[u8],
        total_len: u32,
        soft_tags: &str,
        now: f64,
    ) -> Outcome {
        let soft = split(soft_tags);
        let inspection =
            self.inner
                .inspect(cache_key, prefix, total_len as usize, &soft, Millis(now));
        self.last_error = "";
        self.last_need = 0;
        self.last_header = inspection.header;
        self.last_stale = self.last_header.as_ref().and_then(|h| {
            // Next drops an entry created at or before its implicit tags' expiration, the
            // value its `getExpiration` gets for these same tags.
            let not_before = self.inner.get_expiration(&soft, Millis(now));
            fleetcache_core::lease::stale_use_cache_presentation(
                h.meta.timestamp,
                h.meta.revalidate,
                h.meta.expire,
                not_before,
                Millis(now),
            )
        });
        match inspection.verdict {
            Verdict::Fresh => Outcome::Fresh,
            Verdict::Stale => Outcome::Stale,
            Verdict::Expired => Outcome::Expired,
            Verdict::KeyMismatch => Outcome::KeyMismatch,
            Verdict::Corrupt(e) => {
                self.last_error = e.code();
                Outcome::Corrupt
            }
            Verdict::NeedMore(n) => {
                self.last_need = n;
                Outcome::NeedMore
            }
        }
    }

    /// Bytes of prefix the last `inspect` needed.
    #[wasm_bindgen(getter, js_name = lastNeed)]
    pub fn last_need(&self) -> u32 {
        u32::try_from(self.last_need).unwrap_or(u32::MAX)
    }

    /// Error code of the last `Corrupt` outcome.
    #[wasm_bindgen(getter, js_name = lastError)]
    pub fn last_error(&self) -> String {
        self.last_error.to_owned()
    }

    /// Offset of the payload in the last inspected value.
    #[wasm_bindgen(getter, js_name = lastPayloadOffset)]
    pub fn last_payload_offset(&self) -> u32 {
        self.last_header
            .as_ref()
            .map_or(0, |h| u32::try_from(h.header_len).unwrap_or(u32::MAX))
    }

    /// Creation time (ms) of the last inspected entry.
    #[wasm_bindgen(getter, js_name = lastTimestamp)]
    pub fn last_timestamp(&self) -> f64 {
        self.last_header
            .as_ref()
            .map_or(0.0, |h| h.meta.timestamp.0)
    }

    /// `revalidate` (s) of the last inspected entry.
    #[wasm_bindgen(getter, js_name = lastRevalidate)]
    pub fn last_revalidate(&self) -> f64 {
        self.last_header.as_ref().map_or(0.0, |h| h.meta.revalidate)
    }

    /// `expire` (s) of the last inspected entry.
    #[wasm_bindgen(getter, js_name = lastExpire)]
    pub fn last_expire(&self) -> f64 {
        self.last_header.as_ref().map_or(0.0, |h| h.meta.expire)
    }

    /// `timestamp` (ms) to show the last inspected `'use cache'` entry with when it is served
    /// stale (regenerated behind the answer); NaN when Next cannot be told "stale" without
    /// "expired", and the entry must be a miss instead (core: `stale_use_cache_presentation`).
    #[wasm_bindgen(getter, js_name = lastStaleTimestamp)]
    pub fn last_stale_timestamp(&self) -> f64 {
        self.last_stale.map_or(f64::NAN, |(ts, _)| ts.0)
    }

    /// `revalidate` (s) to show with `lastStaleTimestamp`; NaN when there is none.
    #[wasm_bindgen(getter, js_name = lastStaleRevalidate)]
    pub fn last_stale_revalidate(&self) -> f64 {
        self.last_stale.map_or(f64::NAN, |(_, r)| r)
    }

    /// `stale` (s) of the last inspected entry.
    #[wasm_bindgen(getter, js_name = lastStale)]
    pub fn last_stale(&self) -> f64 {
        self.last_header.as_ref().map_or(0.0, |h| h.meta.stale)
    }

    /// Tags of the last inspected entry, joined with NUL.
    #[wasm_bindgen(getter, js_name = lastTags)]
    pub fn last_tags(&self) -> String {
        self.last_header
            .as_ref()
            .map_or_else(String::new, |h| join(&h.meta.tags))
    }

    /// Records a revalidation in the local mirror at once and returns the `EVALSHA` argv
    /// that makes it fleet-wide. `mode` 0 is immediate expiry (no durations); 1 is
    /// stale-while-revalidate with `expireSeconds` (NaN when the profile has no expire).
    #[wasm_bindgen(js_name = planTagUpdate)]
    pub fn plan_tag_update(
        &mut self,
        tags: &str,
        mode: u8,
        expire_seconds: f64,
        now: f64,
    ) -> Result<Vec<String>, JsValue> {
        let rev = match mode {
            0 => Revalidation::Expire,
            1 => Revalidation::Stale {
                expire_seconds: (!expire_seconds.is_nan()).then_some(expire_seconds),
            },
            _ => return Err(js_error("ERR_TAG_MODE", "unknown revalidation mode")),
        };
        let tags = split(tags);
        let epoch = random_token()?;
        let call = self
            .inner
            .plan_tag_update(&tags, &rev, Millis(now), &epoch)
            .map_err(|e| js_error(e.code(), &e.to_string()))?;
        Ok(script_argv(call))
    }

    /// The `EVALSHA` argv that pulls tag changes since the mirror's version.
    #[wasm_bindgen(js_name = planTagRefresh)]
    pub fn plan_tag_refresh(&self) -> Vec<String> {
        script_argv(self.inner.plan_tag_refresh())
    }

    /// The `EVALSHA` argv of `planTagRefresh`, planned at `now`: following the tag state by
    /// push, the pull's start bounds how far behind the mirror may be.
    #[wasm_bindgen(js_name = planTagPull)]
    pub fn plan_tag_pull(&mut self, now: f64) -> Vec<String> {
        script_argv(self.inner.plan_tag_pull(Millis(now)))
    }

    /// Follows the tag state by push, pulling at least every `max_pull_interval_ms`: this
    /// process's updates announce what they write on `tagAnnounceChannel`.
    #[wasm_bindgen(js_name = followTagsByPush)]
    pub fn follow_tags_by_push(&mut self, max_pull_interval_ms: f64) -> Result<(), JsValue> {
        self.inner
            .follow_tags_by_push(max_pull_interval_ms)
            .map_err(|e| js_error(e.code(), &e.to_string()))
    }

    /// The sharded channel the tag updates announce on.
    #[wasm_bindgen(getter, js_name = tagAnnounceChannel)]
    pub fn tag_announce_channel(&self) -> String {
        self.inner.tag_announce_channel().to_owned()
    }

    /// The subscription to the announcement channel is confirmed.
    #[wasm_bindgen(js_name = tagChannelUp)]
    pub fn tag_channel_up(&mut self) {
        self.inner.tag_channel_up();
    }

    /// The subscription is down, reconnecting or dropped.
    #[wasm_bindgen(js_name = tagChannelDown)]
    pub fn tag_channel_down(&mut self) {
        self.inner.tag_channel_down();
    }

    /// Applies a message of the announcement channel: the number of tags applied, -1 when
    /// it was known already, -2 for a gap (the next pulls catch up).
    #[wasm_bindgen(js_name = applyAnnouncement)]
    pub fn apply_announcement(&mut self, msg: &[u8]) -> Result<i32, JsValue> {
        use fleetcache_core::tags::Announced;
        match self
            .inner
            .apply_announcement(msg)
            .map_err(|e| js_error(e.code(), &e.to_string()))?
        {
            Announced::Applied(n) => Ok(i32::try_from(n).unwrap_or(i32::MAX)),
            Announced::Known => Ok(-1),
            Announced::Gap => Ok(-2),
        }
    }

    /// Whether a request at `now` may skip the tag pull (following by push, caught up).
    #[wasm_bindgen(js_name = tagsCaughtUp)]
    pub fn tags_caught_up(&self, now: f64) -> bool {
        self.inner.tags_caught_up(Millis(now))
    }

    /// Ms until the next pull is due at `now` (0: now; always 0 when pulling per request).
    #[wasm_bindgen(js_name = tagPullInMs)]
    pub fn tag_pull_in_ms(&self, now: f64) -> f64 {
        self.inner.tag_pull_in_ms(Millis(now))
    }

    /// Merges a tag-refresh reply received at `now` into the mirror; returns how many tags
    /// changed.
    #[wasm_bindgen(js_name = applyRefresh)]
    pub fn apply_refresh(&mut self, reply: &[u8], now: f64) -> Result<u32, JsValue> {
        let summary = self
            .inner
            .apply_refresh(reply, Millis(now))
            .map_err(|e| js_error(e.code(), &e.to_string()))?;
        Ok(u32::try_from(summary.changed).unwrap_or(u32::MAX))
    }

    /// The `EVALSHA` argv that merges lost tag records back into Redis; empty when none wait.
    /// The same batch comes again until `ackResend`.
    #[wasm_bindgen(js_name = planResend)]
    pub fn plan_resend(&mut self) -> Result<Vec<String>, JsValue> {
        let candidate = random_token()?;
        match self.inner.plan_resend(&candidate) {
            Ok(Some(call)) => Ok(script_argv(call)),
            Ok(None) => Ok(Vec::new()),
            Err(e) => Err(js_error(e.code(), &e.to_string())),
        }
    }

    /// Redis applied the batch of `planResend`.
    #[wasm_bindgen(js_name = ackResend)]
    pub fn ack_resend(&mut self) {
        self.inner.ack_resend();
    }

    /// Tag records waiting to be merged back into Redis.
    #[wasm_bindgen(getter, js_name = resendLength)]
    pub fn resend_length(&self) -> u32 {
        u32::try_from(self.inner.resend_len()).unwrap_or(u32::MAX)
    }

    /// True once the mirror holds the shared tag state (or no Redis is configured).
    #[wasm_bindgen(getter, js_name = tagsSynced)]
    pub fn tags_synced(&self) -> bool {
        self.inner.mirror().is_synced()
    }

    /// No Redis is configured: this process's own revalidations are the whole tag state.
    #[wasm_bindgen(js_name = markStandalone)]
    pub fn mark_standalone(&mut self) {
        self.inner.mark_standalone();
    }

    /// Milliseconds until the circuit breaker admits its next probe; -1 while it is closed.
    #[wasm_bindgen(js_name = probeInMs)]
    pub fn probe_in_ms(&self, now: f64) -> f64 {
        match self.inner.breaker().next_probe_at() {
            Some(at) => (at.0 - now).max(0.0),
            None => -1.0,
        }
    }

    /// Takes note of a tag-update reply: the mirror's version moves only when no other
    /// instance's update came in between (otherwise the next refresh pulls those).
    #[wasm_bindgen(js_name = applyUpdateReply)]
    pub fn apply_update_reply(&mut self, reply: &[u8]) -> Result<(), JsValue> {
        self.inner
            .apply_update_reply(reply)
            .map(|_| ())
            .map_err(|e| js_error(e.code(), &e.to_string()))
    }

    /// Lua source for a script SHA, for the `NOSCRIPT` fallback to `EVAL`.
    #[wasm_bindgen(js_name = scriptSource)]
    pub fn script_source(&self, sha1: &str) -> Option<String> {
        fleetcache_core::scripts::ALL
            .iter()
            .find(|s| s.sha1() == sha1)
            .map(|s| s.source.to_owned())
    }

    /// Next's `getExpiration(tags)`: the latest expiry over the NUL-joined tags, 0 if none.
    #[wasm_bindgen(js_name = getExpiration)]
    pub fn get_expiration(&self, tags: &str, now: f64) -> f64 {
        self.inner.get_expiration(&split(tags), Millis(now)).0
    }

    /// Number of tags the mirror knows.
    #[wasm_bindgen(getter, js_name = tagCount)]
    pub fn tag_count(&self) -> u32 {
        u32::try_from(self.inner.mirror().len()).unwrap_or(u32::MAX)
    }

    /// Registers `size` bytes under `key` in the in-process tier; returns the NUL-joined keys
    /// the host must drop from its byte store (possibly `key` itself when it does not fit).
    #[wasm_bindgen(js_name = memoryInsert)]
    pub fn memory_insert(&mut self, key: &str, size: f64, expires_at: f64) -> String {
        let size = if size.is_finite() && size >= 0.0 {
            size as u64
        } else {
            u64::MAX
        };
        join(&self.inner.lru_mut().insert(key, size, Millis(expires_at)))
    }

    /// Marks `key` as just used; false when it is absent, past its lifetime, or this
    /// process's own copy that never reached Redis while Redis answers (then removed).
    #[wasm_bindgen(js_name = memoryTouch)]
    pub fn memory_touch(&mut self, key: &str, now: f64) -> bool {
        self.inner.tier_touch(key, Millis(now))
    }

    /// [`memoryTouch`](Self::memory_touch) for a tier that may keep a copy it does not serve
    /// now: 0 gone (drop the bytes), 1 serve (judge it first), 2 kept for outages only (read
    /// Redis, keep the bytes).
    #[wasm_bindgen(js_name = tierUse)]
    pub fn tier_use(&mut self, key: &str, now: f64) -> u8 {
        self.inner.tier_use(key, Millis(now)) as u8
    }

    /// After a Redis read of `key` failed: whether the tier's copy may be judged and served,
    /// whatever it is kept for; false when gone (drop the bytes).
    #[wasm_bindgen(js_name = tierFallback)]
    pub fn tier_fallback(&mut self, key: &str, now: f64) -> bool {
        self.inner.tier_fallback(key, Millis(now))
    }

    /// Marks the tier's copy of `key` as kept for outages only: served while Redis cannot be
    /// reached, never while it answers.
    #[wasm_bindgen(js_name = memoryMarkOutageOnly)]
    pub fn memory_mark_outage_only(&mut self, key: &str) -> bool {
        self.inner.lru_mut().mark_outage_only(key)
    }

    /// Marks the tier's copy of `key` as this process's own: its write to Redis failed.
    #[wasm_bindgen(js_name = memoryMarkLocal)]
    pub fn memory_mark_local(&mut self, key: &str) -> bool {
        self.inner.lru_mut().mark_local(key)
    }

    /// Forgets `key` in the in-process tier.
    #[wasm_bindgen(js_name = memoryRemove)]
    pub fn memory_remove(&mut self, key: &str) -> bool {
        self.inner.lru_mut().remove(key)
    }

    /// Bytes held by the in-process tier.
    #[wasm_bindgen(getter, js_name = memoryBytes)]
    pub fn memory_bytes(&mut self) -> f64 {
        self.inner.lru_mut().used_bytes() as f64
    }
}

/// The singular `cacheHandler` (`fleetcache/incremental`): value layout and decisions.
#[wasm_bindgen]
impl Engine {
    /// Encodes the envelope header of a singular-handler value. `kind`, `flags` and
    /// `segments` form the value descriptor (see the core's `incremental` module); `parts`
    /// are the lengths of the parts the host appends, its JSON part first. `revalidate` and
    /// `expire` are the value's `cacheControl` in seconds (ignored where the flags say
    /// `false` / absent). The TTL is read from `lastTtlMs` (-1: do not store). The entry is
    /// stamped with the start of the regeneration that produced it (`noteIncrementalRead`).
    #[allow(clippy::too_many_arguments)]
    #[wasm_bindgen(js_name = planIncrementalSet)]
    pub fn plan_incremental_set(
        &mut self,
        cache_key: &str,
        kind: u8,
        flags: u8,
        segments: u16,
        tags: &str,
        revalidate: f64,
        expire: f64,
        parts: &[u32],
        now: f64,
    ) -> Result<Vec<u8>, JsValue> {
        use fleetcache_core::incremental::{Descriptor, IncrementalSet};
        let desc = Descriptor::from_wire(kind, flags, segments)
            .map_err(|e| js_error(e.code(), &e.to_string()))?;
        let tags = split(tags);
        let created = self
            .inner
            .incremental_created(cache_key, desc.kind, &tags, Millis(now));
        let set = IncrementalSet {
            desc,
            revalidate,
            expire,
            tags: &tags,
            parts,
            created,
            now: Millis(now),
        };
        let plan = self
            .inner
            .plan_incremental_set(cache_key, &set)
            .map_err(|e| js_error(e.code(), &e.to_string()))?;
        self.last_ttl_ms = plan.ttl_ms;
        Ok(plan.header)
    }

    /// A singular-handler read of `cacheKey` begun at `started` was answered with the lease
    /// step `step` (the codes of `leaseStart`); `onDemand` when the request is an on-demand
    /// revalidation. The write of that key is then stamped with the start of the regeneration
    /// this read began, not the write time.
    #[wasm_bindgen(js_name = noteIncrementalRead)]
    pub fn note_incremental_read(
        &mut self,
        cache_key: &str,
        step: u8,
        on_demand: bool,
        started: f64,
    ) {
        use fleetcache_core::lease::Step;
        let step = match step {
            0 => Step::Serve,
            1 => Step::ServeStale,
            2 => Step::ServeAsFresh,
            5 => Step::Regenerate,
            // Fallback, and anything unexpected: a regeneration here is the safe guess.
            _ => Step::Fallback,
        };
        self.inner
            .note_incremental_read(cache_key, step, on_demand, Millis(started));
    }

    /// Decides what a stored singular-handler value is worth. `softTags` (NUL-joined) are
    /// checked with the entry's own tags; `requestRevalidate` is a FETCH request's
    /// `revalidate` (NaN when none). `Fresh` and `Stale` are served: read `lastModified`,
    /// `lastCacheRevalidate`, `lastCacheExpire`, `lastHasCacheControl`, `lastValueKind`,
    /// `lastValueFlags`, `lastSegments`, `lastParts` and `lastPayloadOffset`.
    #[wasm_bindgen(js_name = inspectIncremental)]
    pub fn inspect_incremental(
        &mut self,
        cache_key: &str,
        prefix: &[u8],
        total_len: u32,
        soft_tags: &str,
        request_revalidate: f64,
        now: f64,
    ) -> Outcome {
        use fleetcache_core::incremental::IncrementalVerdict;
        let soft = split(soft_tags);
        let (verdict, header) = self.inner.inspect_incremental(
            cache_key,
            prefix,
            total_len as usize,
            &soft,
            request_revalidate,
            Millis(now),
        );
        self.last_error = "";
        self.last_need = 0;
        self.last_header = header;
        self.last_stale = None;
        self.last_serve = None;
        match verdict {
            IncrementalVerdict::Serve(s) => {
                self.last_serve = Some(s);
                if s.stale {
                    Outcome::Stale
                } else {
                    Outcome::Fresh
                }
            }
            IncrementalVerdict::Expired => Outcome::Expired,
            IncrementalVerdict::KeyMismatch => Outcome::KeyMismatch,
            IncrementalVerdict::Corrupt(code) => {
                self.last_error = code;
                Outcome::Corrupt
            }
            IncrementalVerdict::NeedMore(n) => {
                self.last_need = n;
                Outcome::NeedMore
            }
        }
    }

    /// `lastModified` (ms) to hand to Next for the last served singular-handler value.
    #[wasm_bindgen(getter, js_name = lastModified)]
    pub fn last_modified(&self) -> f64 {
        self.last_serve.map_or(0.0, |s| s.last_modified)
    }

    /// `cacheControl.revalidate` to return (s); NaN means `false`.
    #[wasm_bindgen(getter, js_name = lastCacheRevalidate)]
    pub fn last_cache_revalidate(&self) -> f64 {
        self.last_serve
            .and_then(|s| s.revalidate)
            .unwrap_or(f64::NAN)
    }

    /// `cacheControl.expire` to return (s); NaN means absent.
    #[wasm_bindgen(getter, js_name = lastCacheExpire)]
    pub fn last_cache_expire(&self) -> f64 {
        self.last_serve.and_then(|s| s.expire).unwrap_or(f64::NAN)
    }

    /// Whether to return a `cacheControl` at all (false for FETCH values).
    #[wasm_bindgen(getter, js_name = lastHasCacheControl)]
    pub fn last_has_cache_control(&self) -> bool {
        self.last_serve.is_some_and(|s| s.cache_control)
    }

    /// Value kind code of the last served value (0 null, 1 APP_PAGE, 2 PAGES, 3 APP_ROUTE,
    /// 4 FETCH, 5 REDIRECT, 6 IMAGE).
    #[wasm_bindgen(getter, js_name = lastValueKind)]
    pub fn last_value_kind(&self) -> u8 {
        self.last_serve.map_or(0, |s| s.desc.kind as u8)
    }

    /// Descriptor flag bits of the last served value (1: `rscData` present).
    #[wasm_bindgen(getter, js_name = lastValueFlags)]
    pub fn last_value_flags(&self) -> u8 {
        self.last_serve.map_or(0, |s| s.desc.flags())
    }

    /// Number of `segmentData` parts of the last served value.
    #[wasm_bindgen(getter, js_name = lastSegments)]
    pub fn last_segments(&self) -> u16 {
        self.last_serve.map_or(0, |s| s.desc.segments)
    }

    /// Part lengths of the last inspected value, in order.
    #[wasm_bindgen(getter, js_name = lastParts)]
    pub fn last_parts(&self) -> Vec<u32> {
        self.last_header
            .as_ref()
            .map_or_else(Vec::new, |h| h.meta.parts.clone())
    }

    /// True when this process recorded the same revalidation (tags, `mode`, `expireSeconds`
    /// as for `planTagUpdate`) within the last few ms: the singular handler's
    /// `revalidateTag` then skips its Redis write, since Next has just sent the same event
    /// through `updateTags`.
    #[wasm_bindgen(js_name = revalidationRecorded)]
    pub fn revalidation_recorded(
        &self,
        tags: &str,
        mode: u8,
        expire_seconds: f64,
        now: f64,
    ) -> bool {
        let rev = match mode {
            0 => Revalidation::Expire,
            1 => Revalidation::Stale {
                expire_seconds: (!expire_seconds.is_nan()).then_some(expire_seconds),
            },
            _ => return false,
        };
        self.inner
            .revalidation_recorded(&split(tags), &rev, Millis(now))
    }
}

/// A random token (128 bits, hex) for lease ownership and tag-state epochs.
#[wasm_bindgen(js_name = randomToken)]
pub fn random_token() -> Result<String, JsValue> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| js_error("ERR_RANDOM", &e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Revalidation from the host's `mode` / `expireSeconds` pair (see `planTagUpdate`).
pub(crate) fn revalidation(mode: u8, expire_seconds: f64) -> Result<Revalidation, JsValue> {
    match mode {
        0 => Ok(Revalidation::Expire),
        1 => Ok(Revalidation::Stale {
            expire_seconds: (!expire_seconds.is_nan()).then_some(expire_seconds),
        }),
        _ => Err(js_error("ERR_TAG_MODE", "unknown revalidation mode")),
    }
}

/// Command kind from the host's code: 0 read, 2 lease, anything else write (the longer
/// budget, so an unknown code can only wait longer, never cut a write short).
fn op_kind(kind: u8) -> fleetcache_core::OpKind {
    match kind {
        0 => fleetcache_core::OpKind::Read,
        2 => fleetcache_core::OpKind::Lease,
        _ => fleetcache_core::OpKind::Write,
    }
}

/// Failure handling: budgets, circuit breaker, revalidation outbox.
#[wasm_bindgen]
impl Engine {
    /// Budget in ms of a command of `kind` (0 read: `GET`, tag refresh; 1 write: `SET`,
    /// tag update). The host abandons the command when it runs out.
    #[wasm_bindgen(js_name = budgetMs)]
    pub fn budget_ms(&self, kind: u8) -> f64 {
        self.inner.budget_ms(op_kind(kind))
    }

    /// Budget in ms a command may wait for a connection attempt.
    #[wasm_bindgen(getter, js_name = connectBudgetMs)]
    pub fn connect_budget_ms(&self) -> f64 {
        self.inner.connect_budget_ms()
    }

    /// Asks the circuit breaker whether a command of `kind` may be sent at `now`: a
    /// positive permit token to pass to `report`, or 0 when Redis must not be touched (a
    /// read is then a miss, a write is skipped).
    pub fn admit(&mut self, kind: u8, now: f64) -> f64 {
        match self.inner.admit(op_kind(kind), Millis(now)) {
            fleetcache_core::Admission::Send { permit, .. } => permit.to_token() as f64,
            fleetcache_core::Admission::Skip => 0.0,
        }
    }

    /// Reports how an admitted command ended: `result` 0 a reply, 1 no answer (connection),
    /// 2 timeout, 3 an error reply (Redis is reachable: a success for the breaker, counted as
    /// a reply error only). Returns true when the breaker changed state.
    pub fn report(&mut self, permit: f64, result: u8, now: f64) -> bool {
        let token = if permit.is_finite() && permit >= 0.0 {
            permit as u64
        } else {
            0
        };
        let permit = fleetcache_core::Permit::from_token(token);
        let result = match result {
            0 => fleetcache_core::CallResult::Success,
            2 => fleetcache_core::CallResult::Timeout,
            3 => return self.inner.report_reply_error(permit, Millis(now)),
            _ => fleetcache_core::CallResult::Failure,
        };
        self.inner.report(permit, result, Millis(now))
    }

    /// The breaker's state at `now`: 0 closed, 1 open, 2 half-open.
    #[wasm_bindgen(js_name = breakerState)]
    pub fn breaker_state(&self, now: f64) -> u8 {
        self.inner.breaker_state(Millis(now)) as u8
    }

    /// Times the breaker opened.
    #[wasm_bindgen(getter, js_name = breakerTrips)]
    pub fn breaker_trips(&self) -> f64 {
        self.inner.breaker().trips() as f64
    }

    /// Commands the breaker refused.
    #[wasm_bindgen(getter, js_name = breakerRejected)]
    pub fn breaker_rejected(&self) -> f64 {
        self.inner.breaker().rejected() as f64
    }

    /// The `EVALSHA` argv of the outbox's oldest revalidation, or an empty array when the
    /// outbox is empty. Its sequence number is `outboxHeadSeq`.
    #[wasm_bindgen(js_name = planOutboxHead)]
    pub fn plan_outbox_head(&self) -> Result<Vec<String>, JsValue> {
        let epoch = random_token()?;
        let head = self
            .inner
            .plan_outbox_head(&epoch)
            .map_err(|e| js_error(e.code(), &e.to_string()))?;
        Ok(head.map_or_else(Vec::new, |(_, call)| script_argv(call)))
    }

    /// Sequence number of the outbox's oldest revalidation (0 when empty).
    #[wasm_bindgen(getter, js_name = outboxHeadSeq)]
    pub fn outbox_head_seq(&self) -> f64 {
        self.inner.outbox().head().map_or(0.0, |u| u.seq as f64)
    }

    /// Redis applied revalidation `seq`: removes it from the outbox when it is the head.
    #[wasm_bindgen(js_name = ackOutbox)]
    pub fn ack_outbox(&mut self, seq: f64) -> bool {
        seq.is_finite() && seq >= 1.0 && self.inner.ack_outbox(seq as u64)
    }

    /// Revalidations waiting for Redis.
    #[wasm_bindgen(getter, js_name = outboxLength)]
    pub fn outbox_length(&self) -> u32 {
        u32::try_from(self.inner.outbox().len()).unwrap_or(u32::MAX)
    }

    /// Revalidations dropped because the outbox was full (they reached this instance only).
    #[wasm_bindgen(getter, js_name = outboxDropped)]
    pub fn outbox_dropped(&self) -> f64 {
        self.inner.outbox().dropped() as f64
    }

    /// Redis answered revalidation `seq` with the error reply `message` at `now`. 0: kept,
    /// replayed after the backoff (`retryInMs`). A permission error (`NOPERM` and its script
    /// forms) does not pass by retrying, so the revalidation is dropped (it holds on this
    /// instance only): 1 for the first such refusal since a revalidation last went through
    /// (log it, with `missingPermission`), 2 for the ones after it (count them). An error that
    /// kept coming back (`WRONGTYPE` and the like, not `OOM` or `READONLY`) parks it, and the
    /// queue moves on: 3 for the first parked since a revalidation last went through (log
    /// it), 4 for the ones after it.
    #[wasm_bindgen(js_name = refuseOutbox)]
    pub fn refuse_outbox(&mut self, seq: f64, message: &str, now: f64) -> u8 {
        if !(seq.is_finite() && seq >= 1.0) {
            return 0;
        }
        match self.inner.refuse_outbox(seq as u64, message, Millis(now)) {
            fleetcache_core::outbox::Refusal::Kept => 0,
            fleetcache_core::outbox::Refusal::Dropped { first: true } => 1,
            fleetcache_core::outbox::Refusal::Dropped { first: false } => 2,
            fleetcache_core::outbox::Refusal::Parked { first: true } => 3,
            fleetcache_core::outbox::Refusal::Parked { first: false } => 4,
        }
    }

    /// Revalidation `seq` got no reply at `now` (timeout, lost connection, open breaker): it
    /// stays queued and waits the backoff (`retryInMs`).
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
        self.inner.outbox().retry_in(Millis(now))
    }

    /// When the host's timer should next refresh the tag state and replay the outbox, in ms
    /// from `now` (the breaker's next probe or the outbox's backoff, 100 ms to 5 s).
    #[wasm_bindgen(js_name = retryInMs)]
    pub fn retry_in_ms(&self, now: f64) -> f64 {
        self.inner.retry_in_ms(Millis(now))
    }

    /// Revalidations parked because Redis kept answering them with an error retrying does not
    /// fix (they reached this instance only).
    #[wasm_bindgen(getter, js_name = outboxParked)]
    pub fn outbox_parked(&self) -> f64 {
        self.inner.outbox().parked() as f64
    }

    /// What a permission error says the ACL user lacks, as `ACL SETUSER` rules (`+zadd`,
    /// `~<prefix>:*`, or `one of +hget +hset ...` for a script); `""` for any other error and
    /// when the error names nothing.
    #[wasm_bindgen(js_name = missingPermission)]
    pub fn missing_permission(&self, message: &str) -> String {
        self.inner.missing_permission(message).unwrap_or_default()
    }

    /// Revalidations dropped because Redis refused them for want of a permission.
    #[wasm_bindgen(getter, js_name = outboxRefused)]
    pub fn outbox_refused(&self) -> f64 {
        self.inner.outbox().refused() as f64
    }
}

fn set(obj: &js_sys::Object, key: &str, value: impl Into<JsValue>) -> Result<(), JsValue> {
    js_sys::Reflect::set(obj, &JsValue::from_str(key), &value.into()).map(|_| ())
}

fn string_array<S: AsRef<str>>(items: &[S]) -> js_sys::Array {
    items
        .iter()
        .map(|s| JsValue::from_str(s.as_ref()))
        .collect()
}

/// Decodes a stored value's envelope header for display (the `fleetcache inspect` CLI), without
/// knowing its cache key and without judging it. `value` is the start of the stored value (the
/// header is enough) and `totalLen` its full length. Returns a plain object (`formatVersion`,
/// `interface`, `timestamp`, `revalidate`, `expire`, `stale`, `key`, `tags`, `parts`,
/// `headerLen`, `payloadLen`, and for singular-handler entries `valueKind`, `rscData`,
/// `segments`, `revalidateFalse`, `noExpire`, `noCacheControl`). Throws with the decoder's
/// error code on anything that is not a readable envelope. Cold path: allocates freely.
#[wasm_bindgen(js_name = describeEnvelope)]
pub fn describe_envelope(value: &[u8], total_len: u32) -> Result<JsValue, JsValue> {
    use fleetcache_core::incremental::Descriptor;
    let h = fleetcache_core::decode_header(value, total_len as usize)
        .map_err(|e| js_error(e.code(), &e.to_string()))?;
    let m = &h.meta;
    let o = js_sys::Object::new();
    set(&o, "formatVersion", fleetcache_core::FORMAT_VERSION)?;
    set(
        &o,
        "interface",
        match m.kind {
            EntryKind::UseCache => "use-cache",
            EntryKind::Incremental => "incremental",
        },
    )?;
    set(&o, "timestamp", m.timestamp.0)?;
    set(&o, "revalidate", m.revalidate)?;
    set(&o, "expire", m.expire)?;
    set(&o, "stale", m.stale)?;
    set(&o, "key", m.key.as_str())?;
    set(&o, "tags", string_array(&m.tags))?;
    let parts: js_sys::Array = m.parts.iter().map(|p| JsValue::from(*p)).collect();
    set(&o, "parts", parts)?;
    set(&o, "headerLen", h.header_len as f64)?;
    set(&o, "payloadLen", h.payload_len as f64)?;
    if m.kind == EntryKind::Incremental {
        let d = Descriptor::decode(&m.meta).map_err(|e| js_error(e.code(), &e.to_string()))?;
        set(&o, "valueKind", d.kind as u8)?;
        set(&o, "rscData", d.has_rsc)?;
        set(&o, "segments", d.segments)?;
        set(&o, "revalidateFalse", d.revalidate_false)?;
        set(&o, "noExpire", d.no_expire)?;
        set(&o, "noCacheControl", d.no_cache_control)?;
    }
    Ok(o.into())
}

/// Observability: the counters the core keeps where it decides, read at collection
/// time. The `note*` calls report what only the host sees.
#[wasm_bindgen]
impl Engine {
    /// Every counter and gauge at `now`, as a plain object (see docs/observability.md).
    /// Cold path: called by `stats()` and by metric collection, not per request.
    pub fn stats(&self, now: f64) -> Result<JsValue, JsValue> {
        let snapshot = self.inner.stats_snapshot(Millis(now));
        serde_wasm_bindgen::to_value(&snapshot).map_err(|e| js_error("ERR_STATS", &e.to_string()))
    }

    /// The host read nothing under a key: `surface` 0 is `'use cache'`, 1 the singular handler.
    #[wasm_bindgen(js_name = noteMiss)]
    pub fn note_miss(&self, surface: u8) {
        self.inner.record_miss(surface_code(surface));
    }

    /// The outcome of the last lookup the engine judged (`hit`, `stale`, `miss`, `expired`,
    /// `expired-by-tag`, `key-mismatch`, `corrupt`), for the debug log line; `""` before any.
    #[wasm_bindgen(getter, js_name = lastLookup)]
    pub fn last_lookup(&self) -> String {
        self.inner
            .stats()
            .last_lookup()
            .map_or("", |o| o.name())
            .to_owned()
    }

    /// How the mirror judges an entry created at `timestamp` with these NUL-joined tags:
    /// 0 fresh, 1 stale, 2 expired (the seed command skips pages revalidated since the build).
    #[wasm_bindgen(js_name = tagFreshness)]
    pub fn tag_freshness(&self, tags: &str, timestamp: f64, now: f64) -> u8 {
        match self
            .inner
            .tag_freshness(&split(tags), Millis(timestamp), Millis(now))
        {
            fleetcache_core::Freshness::Fresh => 0,
            fleetcache_core::Freshness::Stale => 1,
            fleetcache_core::Freshness::Expired => 2,
        }
    }
}

fn surface_code(surface: u8) -> fleetcache_core::Surface {
    if surface == 1 {
        fleetcache_core::Surface::Incremental
    } else {
        fleetcache_core::Surface::UseCache
    }
}

/// The lease flight step from the core's, as the host's code (see `leaseStart`).
fn step_code(step: fleetcache_core::lease::Step) -> u8 {
    step as u8
}

/// Single flight: leases and the in-process tier's decisions.
///
/// Step codes: 0 serve, 1 serve stale (Next regenerates in the background), 2 serve as
/// fresh (a follower), 3 send the lease request (`planLeaseAcquire`), 4 poll after
/// `lastDelayMs` (`planLeasePoll`), 5 miss (regenerate), 6 miss after waiting (fallback), 7
/// miss because the holder let its lease go without writing (regenerate at once). Found
/// codes: 0 fresh, 1 stale, 2 missing.
#[wasm_bindgen]
impl Engine {
    /// A `'use cache'` read answered with lease step `step` an entry created at `timestamp`
    /// carrying `tags` (NUL-joined), which it judged `found` (0 fresh, 1 stale, 2 missing). A
    /// stale entry handed out is remembered: a page written by this process while its
    /// regeneration could have joined that read is stamped no later than the entry (Next 16.4
    /// shares one pending `'use cache'` invocation between requests).
    #[wasm_bindgen(js_name = noteUseCacheAnswer)]
    pub fn note_use_cache_answer(
        &mut self,
        tags: &str,
        found: u8,
        step: u8,
        timestamp: f64,
        now: f64,
    ) {
        use fleetcache_core::lease::{Found, Step};
        let step = match step {
            1 => Step::ServeStale,
            2 => Step::ServeAsFresh,
            _ => Step::Serve,
        };
        self.inner.note_use_cache_answer(
            &split(tags),
            Found::from_u8(found),
            step,
            Millis(timestamp),
            Millis(now),
        );
    }

    /// What the last `inspect` means for regeneration: 0 fresh, 1 stale (by a tag or past
    /// `revalidate`), 2 nothing servable.
    #[wasm_bindgen(js_name = useCacheFound)]
    pub fn use_cache_found(&self, outcome: Outcome, now: f64) -> u8 {
        use fleetcache_core::lease::{past_revalidate, Found};
        let found = match (outcome, self.last_header.as_ref()) {
            (Outcome::Stale, Some(_)) => Found::Stale,
            (Outcome::Fresh, Some(h)) => {
                if past_revalidate(h.meta.timestamp, h.meta.revalidate, Millis(now)) {
                    Found::Stale
                } else {
                    Found::Fresh
                }
            }
            _ => Found::Missing,
        };
        found as u8
    }

    /// What the last `inspectIncremental` means for regeneration (as `useCacheFound`);
    /// `requestRevalidate` is a FETCH request's own `revalidate` (NaN when none).
    #[wasm_bindgen(js_name = incrementalFound)]
    pub fn incremental_found(&self, outcome: Outcome, request_revalidate: f64, now: f64) -> u8 {
        use fleetcache_core::incremental::ValueKind;
        use fleetcache_core::lease::{past_revalidate, Found};
        let found = match (outcome, self.last_serve, self.last_header.as_ref()) {
            (Outcome::Fresh | Outcome::Stale, Some(s), Some(h)) => {
                let r = if s.desc.kind == ValueKind::Fetch
                    && request_revalidate.is_finite()
                    && request_revalidate != 0.0
                {
                    request_revalidate
                } else {
                    s.revalidate.unwrap_or(f64::INFINITY)
                };
                if s.stale || past_revalidate(h.meta.timestamp, r, Millis(now)) {
                    Found::Stale
                } else {
                    Found::Fresh
                }
            }
            _ => Found::Missing,
        };
        found as u8
    }

    /// `revalidate` (s) that presents the last inspected `'use cache'` entry to a follower
    /// as fresh.
    #[wasm_bindgen(js_name = followerRevalidate)]
    pub fn follower_revalidate(&self, now: f64) -> f64 {
        self.last_header.as_ref().map_or(0.0, |h| {
            fleetcache_core::lease::fresh_revalidate(
                h.meta.timestamp,
                h.meta.revalidate,
                h.meta.expire,
                Millis(now),
                self.inner.config().lease_ttl_ms,
            )
        })
    }

    /// Until when the in-process tier may keep the last inspected entry (ms): its `expire`,
    /// the instant Redis drops it too.
    #[wasm_bindgen(js_name = tierExpiry)]
    pub fn tier_expiry(&self, now: f64) -> f64 {
        let max_ttl_ms = self.inner.config().max_ttl_seconds * 1000.0;
        self.last_header.as_ref().map_or(now, |h| {
            fleetcache_core::tier::tier_expiry(
                h.meta.timestamp,
                h.meta.expire,
                Millis(now),
                max_ttl_ms,
            )
            .0
        })
    }

    /// True when the tier may keep the last inspected entry for outages only (pages and
    /// routes of the singular handler: `memoryMarkOutageOnly`).
    #[wasm_bindgen(getter, js_name = tierOutageOnly)]
    pub fn tier_outage_only(&self) -> bool {
        self.last_header
            .as_ref()
            .is_some_and(|h| !fleetcache_core::tier::tier_serves(h))
    }

    /// Whether the in-process tier may serve this process's own write of a singular-handler
    /// value of `kind` (the descriptor's code) while Redis answers; else it keeps it for
    /// outages only.
    #[wasm_bindgen(js_name = tierServesValue)]
    pub fn tier_serves_value(&self, kind: u8) -> bool {
        fleetcache_core::incremental::ValueKind::from_u8(kind)
            .is_some_and(fleetcache_core::tier::tier_serves_value)
    }

    /// Starts a lease flight for a read that found `found` (0 fresh, 1 stale, 2 missing) at
    /// `now`; `caches` is true when the read's consumer will store the result in a server cache
    /// (a prerender, an ISR regeneration, an outer cache): then a stale entry is a miss.
    /// Returns the step code.
    #[wasm_bindgen(js_name = leaseStart)]
    pub fn lease_start(&mut self, found: u8, now: f64, caches: bool) -> u8 {
        use fleetcache_core::lease::{Consumer, Found};
        let (flight, step) = self.inner.lease_begin(
            Found::from_u8(found),
            Consumer::from_caches(caches),
            Millis(now),
        );
        self.last_flight = Some(flight);
        step_code(step)
    }

    /// The lease request of a flight (`found`, `started` as passed to `leaseStart`) was
    /// answered: `reply` is the script's integer (1 won, 0 held by another, 2 a newer entry),
    /// or -1 when Redis did not answer; `caches` as for `leaseStart`. Returns the step code.
    #[wasm_bindgen(js_name = leaseAcquired)]
    pub fn lease_acquired(
        &mut self,
        found: u8,
        started: f64,
        reply: f64,
        now: f64,
        caches: bool,
    ) -> u8 {
        use fleetcache_core::lease::{Acquired, Consumer, Flight, Found};
        let reply = if reply.is_finite() { reply as i64 } else { -1 };
        let mut flight = Flight::resume(
            Found::from_u8(found),
            Consumer::from_caches(caches),
            Millis(started),
            0,
        );
        let step = self
            .inner
            .lease_answered(&mut flight, Acquired::from_reply(reply), Millis(now));
        self.last_flight = Some(flight);
        step_code(step)
    }

    /// A poll of a flight found `foundNow`, and `leased`: the entry's lease still existed
    /// (`planLeasePoll`'s second reply); `polls` is `lastPolls` of the previous step, `caches`
    /// as for `leaseStart`. Returns the step code.
    #[wasm_bindgen(js_name = leasePolled)]
    #[allow(clippy::too_many_arguments)]
    pub fn lease_polled(
        &mut self,
        found: u8,
        started: f64,
        polls: u32,
        found_now: u8,
        leased: bool,
        now: f64,
        caches: bool,
    ) -> u8 {
        use fleetcache_core::lease::{Consumer, Flight, Found};
        let mut flight = Flight::resume(
            Found::from_u8(found),
            Consumer::from_caches(caches),
            Millis(started),
            polls,
        );
        let step =
            self.inner
                .lease_polled(&mut flight, Found::from_u8(found_now), leased, Millis(now));
        self.last_flight = Some(flight);
        step_code(step)
    }

    /// Pause (ms) before the poll the last lease step asked for.
    #[wasm_bindgen(getter, js_name = lastDelayMs)]
    pub fn last_delay_ms(&self) -> f64 {
        self.last_flight.map_or(0.0, |f| f.delay_ms)
    }

    /// Polls made by the flight of the last lease step.
    #[wasm_bindgen(getter, js_name = lastPolls)]
    pub fn last_polls(&self) -> u32 {
        self.last_flight.map_or(0, |f| f.polls)
    }

    /// The `EVALSHA` argv of a lease request for `cacheKey`, with a fresh random `token`
    /// from the host; `seenTimestamp` is the creation time of the stale entry the read found
    /// (NaN when it found none).
    #[wasm_bindgen(js_name = planLeaseAcquire)]
    pub fn plan_lease_acquire(
        &self,
        iface: &Iface,
        cache_key: &str,
        token: &str,
        seen_timestamp: f64,
    ) -> Result<Vec<String>, JsValue> {
        let seen = seen_timestamp.is_finite().then_some(Millis(seen_timestamp));
        let call = self
            .inner
            .plan_lease_acquire(&iface.get(), cache_key, token, seen)
            .map_err(|e| js_error(e.code(), &e.to_string()))?;
        Ok(script_argv(call))
    }

    /// The lease request sent at `sentAt` with `token` was won.
    #[wasm_bindgen(js_name = leaseWon)]
    pub fn lease_won(
        &mut self,
        iface: &Iface,
        cache_key: &str,
        token: &str,
        sent_at: f64,
    ) -> Result<(), JsValue> {
        let iface = iface.get();
        self.inner
            .lease_won(&iface, cache_key, token, Millis(sent_at));
        Ok(())
    }

    /// The `EVALSHA` argv of a follower's poll of `cacheKey`: replies `[entry or null, 1 when
    /// the lease still exists else 0]`.
    #[wasm_bindgen(js_name = planLeasePoll)]
    pub fn plan_lease_poll(&self, iface: &Iface, cache_key: &str) -> Result<Vec<String>, JsValue> {
        Ok(script_argv(
            self.inner.plan_lease_poll(&iface.get(), cache_key),
        ))
    }

    /// How often (ms) to renew a lease this process holds (`planLeaseRenew`).
    #[wasm_bindgen(getter, js_name = leaseRenewEveryMs)]
    pub fn lease_renew_every_ms(&self) -> f64 {
        self.inner.lease_renew_every_ms()
    }

    /// The `EVALSHA` argv renewing, at `now`, the lease on `cacheKey` won by the request sent
    /// at `wonAt`; an empty array ends the renewals (written, released, lapsed, replaced or at
    /// its cap). Report the reply with `leaseRenewed`.
    #[wasm_bindgen(js_name = planLeaseRenew)]
    pub fn plan_lease_renew(
        &self,
        iface: &Iface,
        cache_key: &str,
        won_at: f64,
        now: f64,
    ) -> Result<Vec<String>, JsValue> {
        let iface = iface.get();
        Ok(self
            .inner
            .plan_lease_renew(&iface, cache_key, Millis(won_at), Millis(now))
            .map_or_else(Vec::new, script_argv))
    }

    /// The renewal planned at `sentAt` of the lease won at `wonAt` was answered: `renewed`
    /// when the script replied 1.
    #[wasm_bindgen(js_name = leaseRenewed)]
    pub fn lease_renewed(
        &mut self,
        iface: &Iface,
        cache_key: &str,
        won_at: f64,
        sent_at: f64,
        renewed: bool,
    ) -> Result<(), JsValue> {
        let iface = iface.get();
        self.inner
            .lease_renewed(&iface, cache_key, Millis(won_at), Millis(sent_at), renewed);
        Ok(())
    }

    /// How to store the entry of `cacheKey` for `ttlMs`: an `EVALSHA` argv that writes it and
    /// releases this process's lease (append the value as the last argument), or an empty
    /// array for a plain `SET`.
    #[wasm_bindgen(js_name = planEntryWrite)]
    pub fn plan_entry_write(
        &mut self,
        iface: &Iface,
        cache_key: &str,
        ttl_ms: f64,
    ) -> Result<Vec<String>, JsValue> {
        let iface = iface.get();
        let ttl = if ttl_ms.is_finite() && ttl_ms >= 1.0 {
            ttl_ms.ceil() as u64
        } else {
            1
        };
        Ok(match self.inner.plan_entry_write(&iface, cache_key, ttl) {
            fleetcache_core::lease::EntryWrite::Set => Vec::new(),
            fleetcache_core::lease::EntryWrite::WriteAndRelease(call) => script_argv(call),
        })
    }

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
    ) -> Result<Vec<String>, JsValue> {
        let iface = iface.get();
        let ttl = if ttl_ms.is_finite() && ttl_ms >= 1.0 {
            ttl_ms.floor() as u64
        } else {
            return Ok(Vec::new());
        };
        Ok(self
            .inner
            .plan_seed_write(&iface, cache_key, Millis(created), ttl, Millis(now))
            .map_or_else(Vec::new, script_argv))
    }

    /// The `EVALSHA` argv releasing this process's lease on `cacheKey` without a write, or an
    /// empty array when it holds none.
    #[wasm_bindgen(js_name = planLeaseRelease)]
    pub fn plan_lease_release(
        &mut self,
        iface: &Iface,
        cache_key: &str,
    ) -> Result<Vec<String>, JsValue> {
        let iface = iface.get();
        Ok(self
            .inner
            .plan_lease_release(&iface, cache_key)
            .map_or_else(Vec::new, script_argv))
    }
}
