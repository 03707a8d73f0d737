//! The one conversion of an error into a JS `Error` carrying a machine-readable `code` (and,
//! for an invalid setting, `setting`): every fallible export of the binding goes through
//! [`js_error`], so a caller can rely on `err.code` whichever call threw.

use fleetcache_core::incremental::{IncrementalPlanError, LayoutError};
use fleetcache_core::read_machine::UnexpectedInput;
use fleetcache_core::{
    ConfigError, DecodeError, EncodeError, KeyError, NetstringError, PlanError, ProtocolError,
};
use wasm_bindgen::JsValue;

/// An error with a stable code, as the host sees it.
pub(crate) trait Coded {
    /// The `code` property (`ERR_...`).
    fn code(&self) -> &'static str;
    /// The `message`: the core's `message()`, the text its `Display` writes, built without
    /// `core::fmt` (docs/decisions/0028-wasm-size-budget.md, sixth pass).
    fn message(&self) -> String;
    /// The `setting` property: the option name an invalid setting came from.
    fn setting(&self) -> Option<&'static str> {
        None
    }
}

macro_rules! coded {
    ($($t:ty),* $(,)?) => {$(
        impl Coded for $t {
            fn code(&self) -> &'static str {
                <$t>::code(self)
            }
            fn message(&self) -> String {
                String::from(<$t>::message(self))
            }
        }
    )*};
}

coded!(
    KeyError,
    EncodeError,
    DecodeError,
    NetstringError,
    PlanError,
    ProtocolError,
    LayoutError,
    IncrementalPlanError,
    UnexpectedInput,
);

impl Coded for ConfigError {
    fn code(&self) -> &'static str {
        ConfigError::code(self)
    }
    fn message(&self) -> String {
        ConfigError::message(self)
    }
    fn setting(&self) -> Option<&'static str> {
        Some(self.field())
    }
}

/// Errors the binding itself raises, beside the core's.
#[derive(Debug)]
pub(crate) enum BindingError {
    /// `crypto.getRandomValues` is missing or failed.
    NoRandom,
    /// The configuration object is not an object.
    ConfigShape,
    /// A setting (the first field) is not what it must be (the second: "must be a number").
    Setting(&'static str, &'static str),
    /// `stats` could not build its object.
    Stats,
    /// `describeEnvelope` could not build its object.
    #[cfg(feature = "tools")]
    Describe,
}

impl Coded for BindingError {
    fn code(&self) -> &'static str {
        match self {
            BindingError::NoRandom => "ERR_RANDOM",
            BindingError::ConfigShape | BindingError::Setting(..) => "ERR_CONFIG_INVALID",
            BindingError::Stats => "ERR_STATS",
            #[cfg(feature = "tools")]
            BindingError::Describe => "ERR_DESCRIBE",
        }
    }
    fn message(&self) -> String {
        // Static text, no `format!` machinery: docs/decisions/0028-wasm-size-budget.md.
        String::from(match self {
            BindingError::NoRandom => "no secure random source (crypto.getRandomValues)",
            BindingError::Setting(field, why) => {
                return fleetcache_core::text!("invalid fleetcache config: ", field, " ", why)
            }
            BindingError::ConfigShape => {
                "invalid fleetcache config: expected an object of settings"
            }
            BindingError::Stats => "stats not writable",
            #[cfg(feature = "tools")]
            BindingError::Describe => "envelope description not writable",
        })
    }
    fn setting(&self) -> Option<&'static str> {
        match self {
            BindingError::Setting(field, _) => Some(field),
            _ => None,
        }
    }
}

/// Builds `new Error(message)` with `error.code` (and `error.setting` for an invalid setting).
pub(crate) fn js_error(err: &dyn Coded) -> JsValue {
    let value = js_sys::Error::new(&err.message());
    // Reflect::set only fails on frozen objects; a fresh Error is not one.
    let _ = js_sys::Reflect::set(
        &value,
        &JsValue::from_str("code"),
        &JsValue::from_str(err.code()),
    );
    if let Some(setting) = err.setting() {
        let _ = js_sys::Reflect::set(
            &value,
            &JsValue::from_str("setting"),
            &JsValue::from_str(setting),
        );
    }
    value.into()
}
