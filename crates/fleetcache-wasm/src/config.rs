//! The core's configuration defaults and bounds, for the host: it reads them here instead of
//! keeping copies of the numbers.

use fleetcache_core::config::{Config, BOUNDS};
use wasm_bindgen::prelude::*;

use crate::error::js_error;

/// Every setting's default, as the object `new Engine(config)` accepts (`tagPruneAfterMs`,
/// whose default follows `maxTtlSeconds`, is absent). Cold path: called once at start-up.
#[wasm_bindgen]
pub fn defaults() -> Result<JsValue, JsValue> {
    serde_wasm_bindgen::to_value(&Config::default())
        .map_err(|e| js_error("ERR_CONFIG_INVALID", &e.to_string()))
}

/// The bounds `new Engine(config)` checks the settings against (`maxEntryBytes`,
/// `maxTtlSeconds`, `maxBudgetMs`, `maxBreakerMs`, `maxOutboxCapacity`, `maxLeaseTtlMs`,
/// `maxLeaseWaitMs`, `tagPruneMarginMs`). Cold path: called once at start-up.
#[wasm_bindgen]
pub fn bounds() -> Result<JsValue, JsValue> {
    serde_wasm_bindgen::to_value(&BOUNDS)
        .map_err(|e| js_error("ERR_CONFIG_INVALID", &e.to_string()))
}
