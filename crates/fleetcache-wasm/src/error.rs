//! Core errors as JS `Error` objects with a machine-readable `code`.

use wasm_bindgen::JsValue;

/// Builds `new Error(message)` with `error.code = code`.
pub(crate) fn js_error(code: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    // Reflect::set only fails on frozen objects; a fresh Error is not one.
    let _ = js_sys::Reflect::set(&err, &JsValue::from_str("code"), &JsValue::from_str(code));
    err.into()
}

/// Builds the `Error` of an invalid setting: `code`, and `setting`, the option's name as in
/// the JS configuration object (`prefix`, `readTimeoutMs`), so the host can name the
/// environment variable it came from.
pub(crate) fn js_config_error(err: &fleetcache_core::ConfigError) -> JsValue {
    let value = js_error(err.code(), &err.to_string());
    let _ = js_sys::Reflect::set(
        &value,
        &JsValue::from_str("setting"),
        &JsValue::from_str(err.field()),
    );
    value
}
