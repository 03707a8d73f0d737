//! Recording a revalidation: one call that says, with its result, what it dropped.

use fleetcache_core::Millis;
use wasm_bindgen::prelude::*;

use crate::codes::RevalidationMode;
use crate::engine::{random_token, Engine};
use crate::error::js_error;
use crate::list::{join, split};
use crate::pack::Packer;

/// What recording a revalidation dropped, for the host's log lines. JS gets it packed
/// (`pack.rs`), in this order: `droppedTags` (text), `evicted` (text).
pub struct Revalidated {
    dropped_tags: String,
    evicted: String,
}

impl Revalidated {
    /// The tags left out for being longer than the core's byte limit, as one log line's text;
    /// `""` when none was.
    pub fn dropped_tags(&self) -> String {
        self.dropped_tags.clone()
    }

    /// The NUL-joined tags of the oldest queued revalidation, when the full outbox dropped it
    /// to make room (what it wrote waits to be merged back into Redis); `""` otherwise.
    pub fn evicted(&self) -> String {
        self.evicted.clone()
    }
}

#[wasm_bindgen]
impl Engine {
    /// `revalidate`: [`Engine::record_revalidation`], packed (`Revalidated`). `pairedTurn`:
    /// the host's turn number when the `'use cache'` interface's `updateTags` records it (the
    /// singular handler's `revalidateTag` of the same event then finds it,
    /// `revalidationRecorded`), 0 otherwise. `wall`: the wall clock (`Date.now()`), or NaN
    /// where the host has one clock (the workers entry): the revalidation is stamped at the
    /// later of it and `now` (`fleetcache_core::time::revalidation_stamp`).
    #[allow(clippy::too_many_arguments)]
    pub fn revalidate(
        &mut self,
        tags: &str,
        mode: RevalidationMode,
        expire_seconds: f64,
        now: f64,
        wall: f64,
        queue: bool,
        paired_turn: u32,
    ) -> Result<Vec<u8>, JsValue> {
        let r = self.record_revalidation(tags, mode, expire_seconds, now, wall, queue)?;
        if paired_turn != 0 {
            self.inner.revalidation_paired(u64::from(paired_turn));
        }
        Ok(Packer::default()
            .text(&r.dropped_tags)
            .text(&r.evicted)
            .finish())
    }
}

impl Engine {
    /// Records a revalidation of the NUL-joined `tags` at `now` with the wall clock `wall`
    /// (stamped at the later of the two, `Engine::queue_tag_update_at`): in the local mirror at once
    /// and, with `queue`, in the outbox behind earlier ones, for Redis (without, this process's
    /// revalidations are the whole tag state), with `expireSeconds` NaN when a `Stale` profile
    /// has no expire. Throws when no tag is within the core's limits.
    pub fn record_revalidation(
        &mut self,
        tags: &str,
        mode: RevalidationMode,
        expire_seconds: f64,
        now: f64,
        wall: f64,
        queue: bool,
    ) -> Result<Revalidated, JsValue> {
        let rev = mode.with_expire(expire_seconds);
        let tags = split(tags);
        let evicted = if queue {
            self.inner
                .queue_tag_update_at(&tags, &rev, Millis(now), Millis(wall))
                .map_err(|e| js_error(&e))?
                .map_or_else(String::new, |d| join(&d.tags))
        } else {
            let epoch = random_token()?;
            self.inner
                .plan_tag_update_at(&tags, &rev, Millis(now), Millis(wall), &epoch)
                .map_err(|e| js_error(&e))?;
            String::new()
        };
        let dropped = self.inner.dropped_tags();
        Ok(Revalidated {
            dropped_tags: if dropped.is_empty() {
                String::new()
            } else {
                dropped.message()
            },
            evicted,
        })
    }
}
