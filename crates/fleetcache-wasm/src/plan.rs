//! An entry's envelope planned in one call returning one small result: header, TTL or "do not
//! store", and the tags left out. For writes that are not a request's (`fleetcache seed`, the
//! shared vectors, the benchmarks); a request's `set` steps a `WriteMachine`. In the tools
//! module only (the `tools` feature; docs/decisions/0028-wasm-size-budget.md, eighth pass).

use fleetcache_core::incremental::{Descriptor, IncrementalSet};
use fleetcache_core::{EntryKind, Millis, SetInput, SetPlan};
use wasm_bindgen::prelude::*;

use crate::codes::ValueKind;
use crate::engine::{Engine, Iface};
use crate::error::js_error;
use crate::list::split;
use crate::pack::Packer;

/// A planned entry: what to store, for how long, and what was left out of its tags. JS gets it
/// packed (`pack.rs`), in this order: `stored` (flag), `ttlMs`, `droppedTags` (text), `header`
/// (bytes).
pub struct PlannedEntry {
    header: Vec<u8>,
    ttl_ms: Option<u64>,
    dropped_tags: String,
}

impl PlannedEntry {
    // Not inlined, as `pack` below: one copy for both planning exports (the wasm size budget,
    // docs/decisions/0028-wasm-size-budget.md).
    #[inline(never)]
    fn new(engine: &Engine, plan: SetPlan) -> PlannedEntry {
        let dropped = engine.inner.dropped_tags();
        PlannedEntry {
            header: plan.header,
            ttl_ms: plan.ttl_ms,
            dropped_tags: if dropped.is_empty() {
                String::new()
            } else {
                dropped.message()
            },
        }
    }
}

impl PlannedEntry {
    /// The entry as JS reads it (see the type's docs for the order).
    #[inline(never)]
    fn pack(&self) -> Vec<u8> {
        Packer::default()
            .flag(self.stored())
            .num(self.ttl_ms())
            .text(&self.dropped_tags)
            .bytes(&self.header)
            .finish()
    }

    /// The envelope header: the host stores `header ++ payload`.
    pub fn header(&self) -> Vec<u8> {
        self.header.clone()
    }

    /// False when the entry must not be stored (its lifetime is already over, or it is not
    /// cacheable); `ttlMs` is then NaN.
    pub fn stored(&self) -> bool {
        self.ttl_ms.is_some()
    }

    /// The entry's TTL in milliseconds (`PX`); NaN when it must not be stored.
    pub fn ttl_ms(&self) -> f64 {
        self.ttl_ms.map_or(f64::NAN, |v| v as f64)
    }

    /// The tags left out for being longer than the core's byte limit, as one log line's text;
    /// `""` when none was.
    pub fn dropped_tags(&self) -> String {
        self.dropped_tags.clone()
    }
}

#[wasm_bindgen]
impl Engine {
    /// `planUseCacheEntry`: [`Engine::plan_use_cache_entry`], packed (`PlannedEntry`).
    #[allow(clippy::too_many_arguments)]
    #[wasm_bindgen(js_name = planUseCacheEntry)]
    pub fn plan_use_cache_entry_packed(
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
        self.plan_use_cache_entry(
            iface,
            cache_key,
            tags,
            timestamp,
            revalidate,
            expire,
            stale,
            payload_len,
            now,
        )
        .map(|p| p.pack())
    }

    /// `planIncrementalEntry`: [`Engine::plan_incremental_entry`], packed (`PlannedEntry`).
    #[allow(clippy::too_many_arguments)]
    #[wasm_bindgen(js_name = planIncrementalEntry)]
    pub fn plan_incremental_entry_packed(
        &mut self,
        cache_key: &str,
        kind: ValueKind,
        flags: u8,
        segments: u16,
        tags: &str,
        revalidate: f64,
        expire: f64,
        parts: &[u32],
        now: f64,
    ) -> Result<Vec<u8>, JsValue> {
        self.plan_incremental_entry(
            cache_key, kind, flags, segments, tags, revalidate, expire, parts, now,
        )
        .map(|p| p.pack())
    }
}

impl Engine {
    /// Plans a `'use cache'` entry of `cacheKey` under `iface` whose payload is `payloadLen`
    /// bytes, at `now`. Throws with the core's error code when the entry cannot be encoded.
    #[allow(clippy::too_many_arguments)]
    pub fn plan_use_cache_entry(
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
    ) -> Result<PlannedEntry, JsValue> {
        let tags = split(tags);
        let parts = [payload_len];
        let input = SetInput {
            kind: EntryKind::UseCache,
            timestamp: Millis(timestamp),
            made_at: None,
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
            .map_err(|e| js_error(&e))?;
        Ok(PlannedEntry::new(self, plan))
    }

    /// Plans a singular-handler entry of `cacheKey` created at `now`. `kind`, `flags` (bitwise
    /// or of `ValueFlag`s) and `segments` form the value descriptor (see the core's
    /// `incremental` module); `parts` are the lengths of the parts the host appends, its JSON
    /// part first. `revalidate` and `expire` are the value's `cacheControl` in seconds (ignored
    /// where the flags say `false` / absent). Throws with the core's error code on a bad
    /// descriptor.
    #[allow(clippy::too_many_arguments)]
    pub fn plan_incremental_entry(
        &mut self,
        cache_key: &str,
        kind: ValueKind,
        flags: u8,
        segments: u16,
        tags: &str,
        revalidate: f64,
        expire: f64,
        parts: &[u32],
        now: f64,
    ) -> Result<PlannedEntry, JsValue> {
        let desc = Descriptor::from_wire(kind as u8, flags, segments).map_err(|e| js_error(&e))?;
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
            made: None,
            now: Millis(now),
        };
        let plan = self
            .inner
            .plan_incremental_set(cache_key, &set)
            .map_err(|e| js_error(&e))?;
        Ok(PlannedEntry::new(self, plan))
    }
}
