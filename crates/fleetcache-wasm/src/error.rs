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

/// Builds the `Error` (code `ERR_CONFIG_INVALID`) of a configuration object that does not have
/// the expected shape: a setting of the wrong type, or not an object at all.
pub(crate) fn config_shape_error(err: &crate::js_value::Error) -> JsValue {
    let mut message = String::from("invalid fleetcache config: ");
    match err.field {
        Some(field) => {
            message.push_str(field);
            message.push_str(" has the wrong type or shape");
        }
        None => message.push_str("expected an object of settings"),
    }
    js_error("ERR_CONFIG_INVALID", &message)
}
