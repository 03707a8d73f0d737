//! Core errors as JS `Error` objects with a machine-readable `code`.

use wasm_bindgen::JsValue;

/// Builds `new Error(message)` with `error.code = code`.
pub(crate) fn js_error(code: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    // Reflect::set only fails on frozen objects; a fresh Error is not one.
    let _ = js_sys::Reflect::set(&err, &JsValue::from_str("code"), &JsValue::from_str(code));
    err.into()
}
