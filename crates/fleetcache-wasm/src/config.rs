//! The core's configuration defaults and bounds, for the host: it reads them here instead of
//! keeping copies of the numbers.

use fleetcache_core::config::{Config, BOUNDS};
use wasm_bindgen::prelude::*;

use crate::error::{js_error, BindingError};
use crate::objects::{self, JsObject};

/// Every setting's default, as the object `new Engine(config)` accepts (`tagPruneAfterMs`,
/// whose default follows `maxTtlSeconds`, is absent). Cold path: called once at start-up.
#[wasm_bindgen]
pub fn defaults() -> Result<JsValue, JsValue> {
    let mut obj = JsObject::new();
    objects::config(&Config::default(), &mut obj);
    obj.finish()
        .ok_or_else(|| js_error(&BindingError::ConfigShape))
}

/// The bounds `new Engine(config)` checks the settings against (`maxEntryBytes`,
/// `maxTtlSeconds`, `maxBudgetMs`, `maxBreakerMs`, `maxOutboxCapacity`, `maxTagMirrorMaxTags`,
/// `maxLeaseTtlMs`, `maxLeaseWaitMs`, `tagPruneMarginMs`, `maxCompressLevel`). Cold path:
/// called once at start-up.
#[wasm_bindgen]
pub fn bounds() -> Result<JsValue, JsValue> {
    let mut obj = JsObject::new();
    objects::bounds(&BOUNDS, &mut obj);
    obj.finish()
        .ok_or_else(|| js_error(&BindingError::ConfigShape))
}
