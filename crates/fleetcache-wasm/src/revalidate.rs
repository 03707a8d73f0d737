//! Recording a revalidation: one call that says, with its result, what it dropped.

use fleetcache_core::Millis;
use wasm_bindgen::prelude::*;

use crate::codes::RevalidationMode;
use crate::engine::{random_token, Engine};
use crate::error::js_error;
use crate::list::{join, split};

/// What recording a revalidation dropped, for the host's log lines.
#[wasm_bindgen]
pub struct Revalidated {
    dropped_tags: String,
    evicted: String,
}

#[wasm_bindgen]
impl Revalidated {
    /// The tags left out for being longer than the core's byte limit, as one log line's text;
    /// `""` when none was.
    #[wasm_bindgen(getter, js_name = droppedTags)]
    pub fn dropped_tags(&self) -> String {
        self.dropped_tags.clone()
    }

    /// The NUL-joined tags of the oldest queued revalidation, when the full outbox dropped it
    /// to make room; `""` otherwise.
    #[wasm_bindgen(getter)]
    pub fn evicted(&self) -> String {
        self.evicted.clone()
    }
}

#[wasm_bindgen]
impl Engine {
    /// Records a revalidation of the NUL-joined `tags` at `now`: in the local mirror at once
    /// and, with `queue`, in the outbox behind earlier ones, for Redis (without, this process's
    /// revalidations are the whole tag state), with `expireSeconds` NaN when a `Stale` profile
    /// has no expire. Throws when no tag is within the core's limits.
    pub fn revalidate(
        &mut self,
        tags: &str,
        mode: RevalidationMode,
        expire_seconds: f64,
        now: f64,
        queue: bool,
    ) -> Result<Revalidated, JsValue> {
        let rev = mode.with_expire(expire_seconds);
        let tags = split(tags);
        let evicted = if queue {
            self.inner
                .queue_tag_update(&tags, &rev, Millis(now))
                .map_err(|e| js_error(&e))?
                .map_or_else(String::new, |d| join(&d.tags))
        } else {
            let epoch = random_token()?;
            self.inner
                .plan_tag_update(&tags, &rev, Millis(now), &epoch)
                .map_err(|e| js_error(&e))?;
            String::new()
        };
        let dropped = self.inner.dropped_tags();
        Ok(Revalidated {
            dropped_tags: if dropped.is_empty() {
                String::new()
            } else {
                dropped.to_string()
            },
            evicted,
        })
    }
}
