//! The core's configuration defaults and bounds, for the host: it reads them here instead of
//! keeping copies of the numbers.

use fleetcache_core::config::{Config, BOUNDS};
use wasm_bindgen::prelude::*;

use crate::error::{js_error, BindingError};
use crate::js_value::to_js;

/// Every setting's default, as the object `new Engine(config)` accepts (`tagPruneAfterMs`,
/// whose default follows `maxTtlSeconds`, is absent). Cold path: called once at start-up.
#[wasm_bindgen]
pub fn defaults() -> Result<JsValue, JsValue> {
    to_js(&Config::default()).map_err(|e| js_error(&BindingError::from(e)))
}

/// The bounds `new Engine(config)` checks the settings against (`maxEntryBytes`,
/// `maxTtlSeconds`, `maxBudgetMs`, `maxBreakerMs`, `maxOutboxCapacity`, `maxLeaseTtlMs`,
/// `maxLeaseWaitMs`, `tagPruneMarginMs`). Cold path: called once at start-up.
#[wasm_bindgen]
pub fn bounds() -> Result<JsValue, JsValue> {
    to_js(&BOUNDS).map_err(|e| js_error(&BindingError::from(e)))
}
