//! The `defaults`, `bounds` and `stats` objects, written field by field by hand: serde's
//! derived writers of these types and a serializer to drive them were most of the `stats`,
//! `defaults` and `bounds` exports (docs/decisions/0028-wasm-size-budget.md). The names and
//! the shapes are the core's serde ones (camelCase where the core says so), which a native test
//! below checks against `serde_json`'s output for every field: a struct is a plain object with
//! every field set, a `None` is `undefined`, every integer a number (counters and byte sizes
//! stay far below 2^53, where a number stops being exact).

use fleetcache_core::config::Bounds;
use fleetcache_core::stats::{LookupCounts, PerSurface, WriteCounts};
use fleetcache_core::{Config, StatsSnapshot};
use wasm_bindgen::{JsCast, JsValue};

/// Where the fields go: a JS object in the module, a JSON value in the tests.
pub(crate) trait Sink {
    /// A number.
    fn num(&mut self, key: &'static str, v: f64);
    /// A string.
    fn text(&mut self, key: &'static str, v: &str);
    /// A boolean.
    fn flag(&mut self, key: &'static str, v: bool);
    /// `undefined`.
    fn none(&mut self, key: &'static str);
    /// Begins a nested object under `key`; the fields up to `close` are its own.
    fn open(&mut self, key: &'static str);
    /// Ends the nested object `open` began.
    fn close(&mut self);
}

/// `Config`'s fields, as `defaults()` returns them.
pub(crate) fn config(c: &Config, s: &mut dyn Sink) {
    s.text("prefix", &c.prefix);
    s.text("deployment", &c.deployment);
    s.num("maxEntryBytes", c.max_entry_bytes as f64);
    s.num("maxTtlSeconds", c.max_ttl_seconds);
    s.num("defaultTtlSeconds", c.default_ttl_seconds);
    s.num("memoryBytes", c.memory_bytes as f64);
    s.num("compressMinBytes", c.compress_min_bytes as f64);
    s.num("compressLevel", f64::from(c.compress_level));
    match c.tag_prune_after_ms {
        Some(v) => s.num("tagPruneAfterMs", v),
        None => s.none("tagPruneAfterMs"),
    }
    s.num("readTimeoutMs", c.read_timeout_ms);
    s.num("writeTimeoutMs", c.write_timeout_ms);
    s.num("connectTimeoutMs", c.connect_timeout_ms);
    s.num("breakerFailures", f64::from(c.breaker_failures));
    s.num("breakerFailureRate", c.breaker_failure_rate);
    s.num("breakerMinCalls", f64::from(c.breaker_min_calls));
    s.num("breakerWindowMs", c.breaker_window_ms);
    s.num("breakerOpenMs", c.breaker_open_ms);
    s.num("breakerMaxOpenMs", c.breaker_max_open_ms);
    s.num("outboxCapacity", f64::from(c.outbox_capacity));
    s.num("tagMirrorMaxTags", f64::from(c.tag_mirror_max_tags));
    s.flag("leases", c.leases);
    s.num("leaseTtlMs", c.lease_ttl_ms);
    s.num("leaseWaitMs", c.lease_wait_ms);
    match &c.next_release {
        Some(r) => {
            s.open("nextRelease");
            s.num("major", f64::from(r.major));
            s.num("minor", f64::from(r.minor));
            s.num("patch", f64::from(r.patch));
            s.flag("prerelease", r.prerelease);
            s.close();
        }
        None => s.none("nextRelease"),
    }
    s.flag("durableUseCache", c.durable_use_cache);
    s.flag("debug", c.debug);
}

/// `Bounds`' fields, as `bounds()` returns them.
pub(crate) fn bounds(b: &Bounds, s: &mut dyn Sink) {
    s.num("maxEntryBytes", b.max_entry_bytes as f64);
    s.num("maxTtlSeconds", b.max_ttl_seconds);
    s.num("maxBudgetMs", b.max_budget_ms);
    s.num("maxBreakerMs", b.max_breaker_ms);
    s.num("maxOutboxCapacity", f64::from(b.max_outbox_capacity));
    s.num("maxTagMirrorMaxTags", f64::from(b.max_tag_mirror_max_tags));
    s.num("maxLeaseTtlMs", b.max_lease_ttl_ms);
    s.num("maxLeaseWaitMs", b.max_lease_wait_ms);
    s.num("tagPruneMarginMs", b.tag_prune_margin_ms);
    s.num("maxCompressLevel", f64::from(b.max_compress_level));
}

/// The snapshot's fields, as `stats(now)` returns them (docs/observability.md).
pub(crate) fn stats(x: &StatsSnapshot, s: &mut dyn Sink) {
    fn lookups(c: &LookupCounts, s: &mut dyn Sink) {
        s.num("hit", c.hit as f64);
        s.num("stale", c.stale as f64);
        s.num("miss", c.miss as f64);
        s.num("expired", c.expired as f64);
        s.num("expiredByTag", c.expired_by_tag as f64);
        s.num("keyMismatch", c.key_mismatch as f64);
        s.num("corrupt", c.corrupt as f64);
    }
    fn writes(c: &WriteCounts, s: &mut dyn Sink) {
        s.num("stored", c.stored as f64);
        s.num("notCacheable", c.not_cacheable as f64);
        s.num("tooLarge", c.too_large as f64);
        s.num("invalid", c.invalid as f64);
    }
    fn per_surface<T>(
        key: &'static str,
        p: &PerSurface<T>,
        s: &mut dyn Sink,
        each: fn(&T, &mut dyn Sink),
    ) {
        s.open(key);
        s.open("useCache");
        each(&p.use_cache, s);
        s.close();
        s.open("incremental");
        each(&p.incremental, s);
        s.close();
        s.close();
    }
    per_surface("lookups", &x.lookups, s, lookups);
    per_surface("writes", &x.writes, s, writes);
    s.open("revalidations");
    s.num("expire", x.revalidations.expire as f64);
    s.num("stale", x.revalidations.stale as f64);
    s.close();
    let o = &x.outbox;
    s.open("outbox");
    s.num("length", o.length as f64);
    s.num("capacity", o.capacity as f64);
    s.num("queued", o.queued as f64);
    s.num("sent", o.sent as f64);
    s.num("dropped", o.dropped as f64);
    s.num("refused", o.refused as f64);
    s.num("parked", o.parked as f64);
    s.close();
    let b = &x.breaker;
    s.open("breaker");
    s.text("state", b.state);
    s.num("trips", b.trips as f64);
    s.num("recoveries", b.recoveries as f64);
    s.num("rejected", b.rejected as f64);
    s.close();
    let r = &x.redis;
    s.open("redis");
    s.num("ok", r.ok as f64);
    s.num("connectionErrors", r.connection_errors as f64);
    s.num("timeouts", r.timeouts as f64);
    s.num("replyErrors", r.reply_errors as f64);
    s.close();
    let l = &x.leases;
    s.open("leases");
    s.num("acquired", l.acquired as f64);
    s.num("waited", l.waited as f64);
    s.num("waitTimeouts", l.wait_timeouts as f64);
    s.num("waitReleases", l.wait_releases as f64);
    s.close();
    s.open("memory");
    s.num("bytes", x.memory.bytes as f64);
    s.num("entries", x.memory.entries as f64);
    s.close();
    s.num("tags", x.tags as f64);
    s.num("tagsFolded", x.tags_folded as f64);
}

/// A JS object being written: the objects open, innermost last, each with the key it goes
/// under in its parent.
pub(crate) struct JsObject {
    open: Vec<(&'static str, js_sys::Object)>,
    /// False once a property could not be set (a frozen object: never on fresh objects).
    ok: bool,
}

impl JsObject {
    pub(crate) fn new() -> JsObject {
        JsObject {
            open: vec![("", js_sys::Object::new())],
            ok: true,
        }
    }

    /// Any JS value under `key` (arrays, for `describeEnvelope`).
    #[cfg(feature = "tools")]
    pub(crate) fn value(&mut self, key: &str, value: &JsValue) {
        self.set(key, value);
    }

    #[inline(never)]
    fn set(&mut self, key: &str, value: &JsValue) {
        if let Some((_, obj)) = self.open.last() {
            self.ok &= js_sys::Reflect::set(obj, &JsValue::from_str(key), value).unwrap_or(false);
        }
    }

    /// The object written; `None` when a property could not be set or an `open` was not
    /// closed.
    pub(crate) fn finish(mut self) -> Option<JsValue> {
        let (_, root) = self.open.pop()?;
        (self.ok && self.open.is_empty()).then(|| root.unchecked_into())
    }
}

// Not inlined: at each of the hundred call sites, `Reflect::set`'s glue more than doubled the
// three exports (module size; these are cold paths).
impl Sink for JsObject {
    #[inline(never)]
    fn num(&mut self, key: &'static str, v: f64) {
        self.set(key, &JsValue::from_f64(v));
    }
    #[inline(never)]
    fn text(&mut self, key: &'static str, v: &str) {
        self.set(key, &JsValue::from_str(v));
    }
    #[inline(never)]
    fn flag(&mut self, key: &'static str, v: bool) {
        self.set(key, &JsValue::from_bool(v));
    }
    #[inline(never)]
    fn none(&mut self, key: &'static str) {
        self.set(key, &JsValue::UNDEFINED);
    }
    #[inline(never)]
    fn open(&mut self, key: &'static str) {
        self.open.push((key, js_sys::Object::new()));
    }
    #[inline(never)]
    fn close(&mut self) {
        if self.open.len() > 1 {
            if let Some((key, obj)) = self.open.pop() {
                self.set(key, &obj.into());
            }
        } else {
            self.ok = false;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The hand-written objects against the core's serde derives, through `serde_json`: same
    //! names, same nesting, same values, no field left out.
    use super::*;
    use serde_json::{Map, Value};

    /// Writes into a JSON object (`undefined` as `null`, as serde writes a `None`).
    struct Json(Vec<(&'static str, Map<String, Value>)>);

    impl Json {
        fn put(&mut self, key: &str, v: Value) {
            let (_, obj) = self.0.last_mut().expect("an open object");
            assert!(
                obj.insert(key.to_owned(), v).is_none(),
                "{key} written twice"
            );
        }
    }

    impl Sink for Json {
        fn num(&mut self, key: &'static str, v: f64) {
            self.put(key, serde_json::json!(v));
        }
        fn text(&mut self, key: &'static str, v: &str) {
            self.put(key, Value::from(v));
        }
        fn flag(&mut self, key: &'static str, v: bool) {
            self.put(key, Value::from(v));
        }
        fn none(&mut self, key: &'static str) {
            self.put(key, Value::Null);
        }
        fn open(&mut self, key: &'static str) {
            self.0.push((key, Map::new()));
        }
        fn close(&mut self) {
            let (key, obj) = self.0.pop().expect("an open object");
            self.put(key, Value::Object(obj));
        }
    }

    fn written(f: impl FnOnce(&mut dyn Sink)) -> Value {
        let mut j = Json(vec![("", Map::new())]);
        f(&mut j);
        assert_eq!(j.0.len(), 1, "every open closed");
        Value::Object(j.0.pop().expect("the root").1)
    }

    /// serde's JSON with every integer as the float it becomes in JS.
    fn as_numbers(v: Value) -> Value {
        match v {
            Value::Number(n) => serde_json::json!(n.as_f64().expect("a number")),
            Value::Object(m) => {
                Value::Object(m.into_iter().map(|(k, v)| (k, as_numbers(v))).collect())
            }
            other => other,
        }
    }

    fn same<T: serde::Serialize>(value: &T, hand: Value) {
        let derived = as_numbers(serde_json::to_value(value).expect("serializable"));
        assert_eq!(hand, derived);
    }

    #[test]
    fn config_bounds_and_stats_have_the_derived_shape() {
        let mut c = Config::default();
        same(&c, written(|s| config(&c, s)));
        c.tag_prune_after_ms = Some(5.0);
        c.next_release = Some(fleetcache_core::NextRelease {
            major: 16,
            minor: 1,
            patch: 2,
            prerelease: true,
        });
        same(&c, written(|s| config(&c, s)));
        let b = fleetcache_core::config::BOUNDS;
        same(&b, written(|s| bounds(&b, s)));
        // Every counter distinct, so a field written from the wrong one shows.
        let mut x = StatsSnapshot::default();
        let mut n = 0u64;
        let mut next = || {
            n += 1;
            n
        };
        for l in [&mut x.lookups.use_cache, &mut x.lookups.incremental] {
            l.hit = next();
            l.stale = next();
            l.miss = next();
            l.expired = next();
            l.expired_by_tag = next();
            l.key_mismatch = next();
            l.corrupt = next();
        }
        for w in [&mut x.writes.use_cache, &mut x.writes.incremental] {
            w.stored = next();
            w.not_cacheable = next();
            w.too_large = next();
            w.invalid = next();
        }
        x.revalidations.expire = next();
        x.revalidations.stale = next();
        let o = &mut x.outbox;
        (o.length, o.capacity, o.queued, o.sent) = (next(), next(), next(), next());
        (o.dropped, o.refused, o.parked) = (next(), next(), next());
        x.breaker.state = "half-open";
        (x.breaker.trips, x.breaker.recoveries, x.breaker.rejected) = (next(), next(), next());
        let r = &mut x.redis;
        (r.ok, r.connection_errors, r.timeouts, r.reply_errors) = (next(), next(), next(), next());
        let l = &mut x.leases;
        (l.acquired, l.waited, l.wait_timeouts, l.wait_releases) = (next(), next(), next(), next());
        (x.memory.bytes, x.memory.entries, x.tags) = (next(), next(), next());
        same(&x, written(|s| stats(&x, s)));
    }
}
