//! The configuration object `new Engine(config)` reads, field by field, by hand: serde's
//! derived reader of `Config` and a deserializer to drive it were the largest part of the
//! constructor's export (docs/decisions/0028-wasm-size-budget.md).
//!
//! The rules are the ones the host was written against: a setting that is absent (`undefined`
//! and not an own or inherited property) takes its default; `null` or `undefined` is "none" for
//! an optional setting and refused for another; other properties of the object are not read; a
//! number setting takes any number or a `BigInt` in `u64`'s range; an integer setting takes a
//! safe integer or a `BigInt`, in its type's range; a setting of the wrong type is refused with
//! `ERR_CONFIG_INVALID` naming it, the first in `Config`'s field order, and saying what it must
//! be: a number, or a whole number in the range the setting takes (`1.5` given for a count or a
//! size says so, where it was "the wrong type or shape"). A number's own range, non-finite numbers
//! included, is the core's to check (`Config::validate`), with its codes and messages.

use std::cell::Cell;

use fleetcache_core::{Config, NextRelease};
use js_sys::Reflect;
use wasm_bindgen::JsValue;

use crate::error::BindingError;

/// Reads the settings object `obj` over `Config::default()`.
pub(crate) fn read_config(obj: &JsValue) -> Result<Config, BindingError> {
    if !obj.is_object() {
        return Err(BindingError::ConfigShape);
    }
    // No `?` after each setting: the first refusal is kept in `p` and ends the reading there
    // (no later property is read), so each of the settings below is one call with no error
    // path of its own (the constructor's export size, docs/decisions/0028-wasm-size-budget.md).
    let p = Props {
        obj,
        refused: Cell::new(None),
    };
    let mut c = Config::default();
    p.string("prefix", &mut c.prefix);
    p.string("deployment", &mut c.deployment);
    p.unsigned("maxEntryBytes", &mut c.max_entry_bytes, WHOLE_ENTRY_BYTES);
    p.number("maxTtlSeconds", &mut c.max_ttl_seconds);
    p.number("defaultTtlSeconds", &mut c.default_ttl_seconds);
    p.unsigned("memoryBytes", &mut c.memory_bytes, WHOLE_U64);
    p.unsigned("compressMinBytes", &mut c.compress_min_bytes, WHOLE_U64);
    p.unsigned32("compressLevel", &mut c.compress_level, WHOLE_LEVEL);
    if let Some(v) = p.get("tagPruneAfterMs") {
        c.tag_prune_after_ms = match none_or(v) {
            None => None,
            Some(v) => number(&v).or_else(|| p.refuse("tagPruneAfterMs", NOT_A_NUMBER)),
        };
    }
    p.number("readTimeoutMs", &mut c.read_timeout_ms);
    p.number("writeTimeoutMs", &mut c.write_timeout_ms);
    p.number("connectTimeoutMs", &mut c.connect_timeout_ms);
    p.unsigned32("breakerFailures", &mut c.breaker_failures, WHOLE_COUNT);
    p.number("breakerFailureRate", &mut c.breaker_failure_rate);
    p.unsigned32("breakerMinCalls", &mut c.breaker_min_calls, WHOLE_COUNT);
    p.number("breakerWindowMs", &mut c.breaker_window_ms);
    p.number("breakerOpenMs", &mut c.breaker_open_ms);
    // Unset, the longest open time is at least the first: setting that one alone above the
    // default never makes the pair invalid.
    if c.breaker_open_ms > c.breaker_max_open_ms {
        c.breaker_max_open_ms = c.breaker_open_ms;
    }
    p.number("breakerMaxOpenMs", &mut c.breaker_max_open_ms);
    p.unsigned32("outboxCapacity", &mut c.outbox_capacity, WHOLE_OUTBOX);
    p.unsigned32(
        "tagMirrorMaxTags",
        &mut c.tag_mirror_max_tags,
        WHOLE_MIRROR_TAGS,
    );
    p.boolean("leases", &mut c.leases);
    p.number("leaseTtlMs", &mut c.lease_ttl_ms);
    p.number("leaseWaitMs", &mut c.lease_wait_ms);
    if let Some(v) = p.get("nextRelease") {
        c.next_release = match none_or(v) {
            None => None,
            Some(v) => next_release(&v).or_else(|| p.refuse("nextRelease", WRONG_SHAPE)),
        };
    }
    p.boolean("durableUseCache", &mut c.durable_use_cache);
    p.boolean("debug", &mut c.debug);
    match p.refused.take() {
        Some((setting, why)) => Err(BindingError::Setting(setting, why)),
        None => Ok(c),
    }
}

/// What the messages say a setting must be (static texts: no number is formatted).
const WRONG_SHAPE: &str = "has the wrong type or shape";
const NOT_A_NUMBER: &str = "must be a number";
/// An integer setting given a fraction, a negative number, one past its type's range (for a
/// `u64` given as a JS number, `Number.MAX_SAFE_INTEGER`: only a `BigInt` goes further), or
/// not a number: the range the setting takes in the end, the core's bounds included
/// (`Config::validate`), not its type's, so that `1.5` for a count is not told that 0 would do.
/// A whole number inside the type's range but outside the core's gets the core's message.
const WHOLE_U64: &str = "must be a whole number from 0 to 9007199254740991";
const WHOLE_ENTRY_BYTES: &str = "must be a whole number from 1 to 4294967295";
const WHOLE_COUNT: &str = "must be a whole number from 1 to 4294967295";
const WHOLE_LEVEL: &str = "must be a whole number from 1 to 9";
const WHOLE_OUTBOX: &str = "must be a whole number from 1 to 1000000";
const WHOLE_MIRROR_TAGS: &str = "must be a whole number from 1 to 100000000";

/// `None` for `null` and `undefined`.
fn none_or(v: JsValue) -> Option<JsValue> {
    if v.is_null() || v.is_undefined() {
        None
    } else {
        Some(v)
    }
}

/// Any number, or a `BigInt` in `u64`'s range.
fn number(v: &JsValue) -> Option<f64> {
    match v.as_f64() {
        Some(n) => Some(n),
        None if v.is_bigint() => u64::try_from(v.clone()).ok().map(|n| n as f64),
        None => None,
    }
}

/// A safe integer or a `BigInt`, from 0 to `max`.
fn unsigned(v: &JsValue, max: u64) -> Option<u64> {
    let n = match v.as_f64() {
        Some(n) if js_sys::Number::is_safe_integer(v) && n >= 0.0 => n as u64,
        Some(_) => return None,
        None if v.is_bigint() => u64::try_from(v.clone()).ok()?,
        None => return None,
    };
    (n <= max).then_some(n)
}

/// `{ major, minor, patch, prerelease? }`: the three numbers `u32`s, `prerelease` a boolean
/// (default false).
fn next_release(v: &JsValue) -> Option<NextRelease> {
    if !v.is_object() {
        return None;
    }
    let p = Props {
        obj: v,
        refused: Cell::new(None),
    };
    let field = |name| -> Option<u32> {
        let v = p.get(name)?;
        unsigned(&v, u64::from(u32::MAX)).and_then(|n| u32::try_from(n).ok())
    };
    let prerelease = match p.get("prerelease") {
        None => false,
        Some(v) => v.as_bool()?,
    };
    if p.refused.get().is_some() {
        return None;
    }
    Some(NextRelease {
        major: field("major")?,
        minor: field("minor")?,
        patch: field("patch")?,
        prerelease,
    })
}

/// The properties of one object, read one setting at a time, and the first setting refused
/// with what it must be: once one is, nothing more is read.
struct Props<'a> {
    obj: &'a JsValue,
    refused: Cell<Option<(&'static str, &'static str)>>,
}

impl Props<'_> {
    /// The value of `name`; `None` when it is absent (`undefined` and not a property), when
    /// reading it threw (`name` is then refused) or when a setting was refused already.
    fn get(&self, name: &'static str) -> Option<JsValue> {
        if self.refused.get().is_some() {
            return None;
        }
        let key = JsValue::from_str(name);
        let Ok(v) = Reflect::get(self.obj, &key) else {
            return self.refuse(name, WRONG_SHAPE);
        };
        if v.is_undefined() && !Reflect::has(self.obj, &key).unwrap_or(false) {
            return None;
        }
        Some(v)
    }

    /// Keeps `name` as the setting refused, unless one was already; always `None`.
    fn refuse<T>(&self, name: &'static str, why: &'static str) -> Option<T> {
        if self.refused.get().is_none() {
            self.refused.set(Some((name, why)));
        }
        None
    }

    /// Sets `out` from a present setting, refusing it, with what it must be (`why`), when
    /// `read` makes nothing of it.
    fn set<T>(
        &self,
        name: &'static str,
        out: &mut T,
        read: impl FnOnce(&JsValue) -> Option<T>,
        why: &'static str,
    ) {
        if let Some(v) = self.get(name) {
            match read(&v) {
                Some(value) => *out = value,
                None => {
                    self.refuse::<()>(name, why);
                }
            }
        }
    }

    // The typed readers are not inlined: with no error to return they would be, at each of
    // their call sites, and the constructor's export grew by about 1.1 KB that way.
    #[inline(never)]
    fn string(&self, name: &'static str, out: &mut String) {
        self.set(name, out, JsValue::as_string, WRONG_SHAPE)
    }

    #[inline(never)]
    fn boolean(&self, name: &'static str, out: &mut bool) {
        self.set(name, out, JsValue::as_bool, WRONG_SHAPE)
    }

    #[inline(never)]
    fn number(&self, name: &'static str, out: &mut f64) {
        self.set(name, out, number, NOT_A_NUMBER)
    }

    #[inline(never)]
    fn unsigned(&self, name: &'static str, out: &mut u64, why: &'static str) {
        self.set(name, out, |v| unsigned(v, u64::MAX), why)
    }

    #[inline(never)]
    fn unsigned32(&self, name: &'static str, out: &mut u32, why: &'static str) {
        self.set(
            name,
            out,
            |v| unsigned(v, u64::from(u32::MAX)).and_then(|n| u32::try_from(n).ok()),
            why,
        )
    }
}
