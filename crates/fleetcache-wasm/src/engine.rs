//! The `Engine` class exported to JS.

use fleetcache_core::{
    Config, DecodedHeader, EntryKind, Interface, Millis, Revalidation, ScriptCall, SetInput,
    Verdict,
};
use wasm_bindgen::prelude::*;

use crate::error::js_error;
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
    inner: fleetcache_core::Engine,
    last_header: Option<DecodedHeader>,
    last_need: usize,
    last_error: &'static str,
    last_ttl_ms: Option<u64>,
}

fn interface(name: &str) -> Result<Interface<'_>, JsValue> {
    if name == "inc" {
        Ok(Interface::Incremental)
    } else {
        Interface::use_cache(name).map_err(|e| js_error(e.code(), &e.to_string()))
    }
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
    /// Throws an `Error` whose `code` names the invalid setting.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<Engine, JsValue> {
        let config: Config = if config.is_undefined() || config.is_null() {
            Config::default()
        } else {
            serde_wasm_bindgen::from_value(config)
                .map_err(|e| js_error("ERR_CONFIG_INVALID", &e.to_string()))?
        };
        let inner =
            fleetcache_core::Engine::new(config).map_err(|e| js_error(e.code(), &e.to_string()))?;
        Ok(Engine {
            inner,
            last_header: None,
            last_need: 0,
            last_error: "",
            last_ttl_ms: None,
        })
    }

    /// The deployment segment actually used in keys (sanitised).
    #[wasm_bindgen(getter)]
    pub fn deployment(&self) -> String {
        self.inner.namespace().deployment().to_owned()
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

    /// Redis key of the entry for `cacheKey` under interface `iface` (`inc`, or a
    /// `cacheHandlers` name such as `default`).
    #[wasm_bindgen(js_name = entryKey)]
    pub fn entry_key(&self, iface: &str, cache_key: &str) -> Result<String, JsValue> {
        Ok(self.inner.entry_key(&interface(iface)?, cache_key))
    }

    /// Encodes the envelope header for a `'use cache'` entry whose payload is `payloadLen`
    /// bytes. The host sends `header ++ payload` with `PX lastTtlMs`; when `lastTtlMs` is
    /// negative the entry must not be stored.
    #[allow(clippy::too_many_arguments)]
    #[wasm_bindgen(js_name = planUseCacheSet)]
    pub fn plan_use_cache_set(
        &mut self,
        iface: &str,
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
            .plan_set(&interface(iface)?, cache_key, input)
            .map_err(|e| js_error(e.code(), &e.to_string()))?;
        self.last_ttl_ms = plan.ttl_ms;
        Ok(plan.header)
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

    /// Merges a tag-refresh reply into the mirror; returns how many tags changed.
    #[wasm_bindgen(js_name = applyRefresh)]
    pub fn apply_refresh(&mut self, reply: &[u8]) -> Result<u32, JsValue> {
        let summary = self
            .inner
            .apply_refresh(reply)
            .map_err(|e| js_error(e.code(), &e.to_string()))?;
        Ok(u32::try_from(summary.changed).unwrap_or(u32::MAX))
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

    /// Marks `key` as just used; false when it is absent or past its lifetime (then removed).
    #[wasm_bindgen(js_name = memoryTouch)]
    pub fn memory_touch(&mut self, key: &str, now: f64) -> bool {
        self.inner.lru_mut().touch(key, Millis(now))
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

/// A random token (128 bits, hex) for lease ownership and tag-state epochs.
#[wasm_bindgen(js_name = randomToken)]
pub fn random_token() -> Result<String, JsValue> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| js_error("ERR_RANDOM", &e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
