//! The binding in a real wasm runtime (headless Node, through wasm-bindgen-test-runner).
#![cfg(target_arch = "wasm32")]

use fleetcache_wasm::{
    bounds, defaults, random_token, script_shas, BreakerState, CommandKind, CommandResult,
    Consumer, Engine, Failure, Freshness, Iface, Outcome, ReadMachine, ReadStep, ReadStepKind,
    Reported, RevalidationMode, Served, Source, ValueFlag, ValueKind, WriteMachine, WriteOutcome,
    WriteStepKind,
};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

fn config(deployment: &str) -> JsValue {
    let obj = js_sys::Object::new();
    js_sys::Reflect::set(&obj, &"prefix".into(), &"t".into()).unwrap();
    js_sys::Reflect::set(&obj, &"deployment".into(), &deployment.into()).unwrap();
    obj.into()
}

fn key(k: &str) -> js_sys::JsString {
    js_sys::JsString::from(k)
}

fn uc(name: &str) -> Iface {
    Iface::use_cache(name).unwrap()
}

const NOW: f64 = 1_795_690_530_487.5;

fn stored(engine: &mut Engine, key: &str, tags: &str, payload: &[u8]) -> Vec<u8> {
    let mut value = engine
        .plan_use_cache_entry(
            &uc("default"),
            key,
            tags,
            NOW,
            60.0,
            3600.0,
            30.0,
            payload.len() as u32,
            NOW,
        )
        .unwrap()
        .header();
    value.extend_from_slice(payload);
    value
}

/// A singular-handler read of `key` at `now` stepped to its answer, `value` being what Redis
/// holds, if anything (no tier copy, leases answered "no answer").
fn answer_incremental(e: &mut Engine, key: &str, value: Option<&[u8]>, now: f64) -> ReadStep {
    let k = js_sys::JsString::from(key);
    let mut m = ReadMachine::incremental(
        e,
        &k,
        false,
        "",
        f64::NAN,
        Consumer::Serves,
        false,
        "0123456789abcdef".to_owned(),
        now,
    )
    .unwrap();
    let mut kind = m.start(e, now).unwrap();
    for _ in 0..16 {
        kind = match kind {
            ReadStepKind::Answer => return m.last_step().unwrap().clone(),
            ReadStepKind::Refresh => m.refreshed(e, now).unwrap(),
            ReadStepKind::OwnWrite => m.own_write(e, None, now).unwrap(),
            ReadStepKind::PeekTier => m.tier(e, None, 0.0, now).unwrap(),
            ReadStepKind::Get => {
                let total = value.map_or(0, <[u8]>::len) as f64;
                m.reply(e, value.map(<[u8]>::to_vec), total, false, 0.0, now)
                    .unwrap()
            }
            ReadStepKind::Acquire => m.lease_reply(e, -1.0, now).unwrap(),
            other => panic!("unexpected step {other:?}"),
        };
    }
    panic!("no answer in 16 steps")
}

/// An engine that follows no shared tag state: its own revalidations are all there is.
fn engine(deployment: &str) -> Engine {
    let mut e = Engine::new(config(deployment)).unwrap();
    e.mark_standalone();
    e
}

#[wasm_bindgen_test]
fn nothing_tagged_is_fresh_until_the_tag_state_is_loaded() {
    let mut e = Engine::new(config("d1")).unwrap();
    assert!(!e.tags_synced());
    let value = stored(&mut e, "k", "a", b"payload");
    assert_eq!(
        e.inspect_entry(
            &uc("default"),
            "k",
            &value,
            value.len() as u32,
            "",
            NOW + 1.0
        )
        .outcome(),
        Outcome::Expired
    );
    assert_eq!(e.plan_resend().unwrap().len(), 0);
    assert_eq!(e.resend_length(), 0);
    assert_eq!(e.probe_in_ms(NOW), -1.0);
    e.mark_standalone();
    assert!(e.tags_synced());
    assert_eq!(
        e.inspect_entry(
            &uc("default"),
            "k",
            &value,
            value.len() as u32,
            "",
            NOW + 1.0
        )
        .outcome(),
        Outcome::Fresh
    );
}

#[wasm_bindgen_test]
fn set_then_inspect_round_trips_metadata() {
    let mut e = engine("d1");
    let value = stored(&mut e, "k", "a\0b", b"payload");
    let plan = e
        .plan_use_cache_entry(&uc("default"), "k", "a\0b", NOW, 60.0, 3600.0, 30.0, 7, NOW)
        .unwrap();
    assert!(plan.stored() && plan.ttl_ms() > 3_599_000.0 && plan.ttl_ms() <= 3_600_000.0);
    assert_eq!(plan.dropped_tags(), "");
    // Past its lifetime already: not stored, and no TTL.
    let over = e
        .plan_use_cache_entry(&uc("default"), "k", "", NOW, 1.0, 1.0, 1.0, 7, NOW + 5000.0)
        .unwrap();
    assert!(!over.stored() && over.ttl_ms().is_nan());
    let seen = e.inspect_entry(
        &uc("default"),
        "k",
        &value,
        value.len() as u32,
        "",
        NOW + 1.0,
    );
    assert_eq!(seen.outcome(), Outcome::Fresh);
    assert_eq!(seen.lookup(), "hit");
    let off = seen.payload_offset() as usize;
    assert_eq!(&value[off..], b"payload");
}

#[wasm_bindgen_test]
fn short_prefix_asks_for_more() {
    let mut e = engine("d1");
    let value = stored(&mut e, &"k".repeat(10_000), "", b"x");
    let total = value.len() as u32;
    let seen = e.inspect_entry(
        &uc("default"),
        &"k".repeat(10_000),
        &value[..4096],
        total,
        "",
        NOW,
    );
    assert_eq!(seen.outcome(), Outcome::NeedMore);
    assert_eq!(
        seen.lookup(),
        "",
        "a lookup that needs more bytes counts nothing"
    );
    let need = seen.need() as usize;
    assert_eq!(
        e.inspect_entry(
            &uc("default"),
            &"k".repeat(10_000),
            &value[..need],
            total,
            "",
            NOW
        )
        .outcome(),
        Outcome::Fresh
    );
}

#[wasm_bindgen_test]
fn garbage_is_corrupt_with_a_code() {
    let mut e = engine("d1");
    let seen = e.inspect_entry(&uc("default"), "k", b"{\"json\":1}", 10, "", NOW);
    assert_eq!(seen.outcome(), Outcome::Corrupt);
    assert!(seen.error().starts_with("ERR_"));
    assert_eq!(seen.lookup(), "corrupt");
}

#[wasm_bindgen_test]
fn tag_updates_apply_locally_and_plan_a_script() {
    let mut e = engine("d1");
    let value = stored(&mut e, "k", "products", b"v");
    let joined = e
        .plan_tag_update("products", RevalidationMode::Expire, f64::NAN, NOW + 10.0)
        .unwrap();
    let argv: Vec<&str> = joined.split('\0').collect();
    assert_eq!(argv[0], "EVALSHA");
    assert_eq!(argv[1].len(), 40);
    assert_eq!(argv[2], "3");
    assert!(e.script_source(argv[1]).is_some());
    assert_eq!(
        e.inspect_entry(
            &uc("default"),
            "k",
            &value,
            value.len() as u32,
            "",
            NOW + 20.0
        )
        .outcome(),
        Outcome::Expired
    );
    assert!(e.get_expiration("products", NOW + 20.0) >= NOW + 10.0);
    assert_eq!(e.get_expiration("other", NOW + 20.0), 0.0);
}

#[wasm_bindgen_test]
fn a_profile_with_an_expire_of_zero_is_an_expiry() {
    // `revalidateTag(tag, { expire: 0 })`: Next passes the durations as given. The tag is
    // expired at once and the revalidation counted as an expiry, as one without durations.
    let mut e = engine("d1");
    let value = stored(&mut e, "k", "products", b"v");
    e.plan_tag_update("products", RevalidationMode::Stale, 0.0, NOW + 10.0)
        .unwrap();
    let outcome = e
        .inspect_entry(
            &uc("default"),
            "k",
            &value,
            value.len() as u32,
            "",
            NOW + 20.0,
        )
        .outcome();
    assert_eq!(outcome, Outcome::Expired);
    let stats = e.stats(NOW + 20.0).unwrap();
    let counts = js_sys::Reflect::get(&stats, &"revalidations".into()).unwrap();
    let count = |kind: &str| {
        js_sys::Reflect::get(&counts, &kind.into())
            .unwrap()
            .as_f64()
    };
    assert_eq!((count("expire"), count("stale")), (Some(1.0), Some(0.0)));
}

#[wasm_bindgen_test]
fn stale_profile_is_stale_not_expired() {
    let mut e = engine("d1");
    let value = stored(&mut e, "k", "products", b"v");
    e.plan_tag_update(
        "products",
        RevalidationMode::Stale,
        31_536_000.0,
        NOW + 10.0,
    )
    .unwrap();
    assert_eq!(
        e.inspect_entry(
            &uc("default"),
            "k",
            &value,
            value.len() as u32,
            "",
            NOW + 20.0
        )
        .outcome(),
        Outcome::Stale
    );
}

#[wasm_bindgen_test]
fn invalid_config_is_an_error_with_a_code() {
    let obj = js_sys::Object::new();
    js_sys::Reflect::set(&obj, &"prefix".into(), &"no spaces allowed".into()).unwrap();
    let err = Engine::new(obj.into())
        .err()
        .expect("must reject the prefix");
    let code = js_sys::Reflect::get(&err, &"code".into()).unwrap();
    assert!(code.as_string().unwrap().starts_with("ERR_CONFIG"));
    assert!(err.is_instance_of::<js_sys::Error>());
}

/// The settings object is read field by field, as the host was written against: a value of the
/// wrong type is refused with `ERR_CONFIG_INVALID` naming the setting; `null` and `undefined`
/// are "none" for an optional one; integers may be `BigInt`s; other properties are not read.
#[wasm_bindgen_test]
fn config_object_shape_rules() {
    fn build(pairs: &[(&str, JsValue)]) -> Result<Engine, JsValue> {
        let obj = js_sys::Object::new();
        for (k, v) in pairs {
            js_sys::Reflect::set(&obj, &(*k).into(), v).unwrap();
        }
        Engine::new(obj.into())
    }
    let refused = |pairs: &[(&str, JsValue)], setting: &str| {
        let err = build(pairs).err().expect("must be refused");
        let code = js_sys::Reflect::get(&err, &"code".into()).unwrap();
        assert_eq!(code.as_string().as_deref(), Some("ERR_CONFIG_INVALID"));
        let message = js_sys::Reflect::get(&err, &"message".into()).unwrap();
        assert!(
            message.as_string().unwrap().contains(setting),
            "{message:?} names {setting}"
        );
        let named = js_sys::Reflect::get(&err, &"setting".into()).unwrap();
        assert_eq!(named.as_string().as_deref(), Some(setting));
    };
    refused(&[("readTimeoutMs", "300".into())], "readTimeoutMs");
    refused(&[("leases", 1.into())], "leases");
    refused(&[("breakerFailures", (-1).into())], "breakerFailures");
    refused(&[("breakerFailures", 1.5.into())], "breakerFailures");
    refused(&[("maxEntryBytes", JsValue::UNDEFINED)], "maxEntryBytes");
    let release = js_sys::Object::new();
    js_sys::Reflect::set(&release, &"major".into(), &16.into()).unwrap();
    refused(&[("nextRelease", release.clone().into())], "nextRelease");
    let not_object = Engine::new("prefix".into()).err().expect("not an object");
    let code = js_sys::Reflect::get(&not_object, &"code".into()).unwrap();
    assert_eq!(code.as_string().as_deref(), Some("ERR_CONFIG_INVALID"));

    js_sys::Reflect::set(&release, &"minor".into(), &4.into()).unwrap();
    js_sys::Reflect::set(&release, &"patch".into(), &0.into()).unwrap();
    let e = build(&[
        ("maxEntryBytes", js_sys::BigInt::from(4096u64).into()),
        ("tagPruneAfterMs", JsValue::NULL),
        ("nextRelease", release.into()),
        ("notASetting", "ignored".into()),
    ])
    .unwrap();
    assert_eq!(e.max_entry_bytes(), 4096.0);
    assert!(build(&[("tagPruneAfterMs", JsValue::UNDEFINED)]).is_ok());

    // Each rule at its edges: a negative `BigInt`, a `u32` past its range, an integer past
    // 2^53, `null` for a setting that is not optional, a string setting given a boolean, a
    // release that is not an object or whose `prerelease` is not a boolean.
    refused(
        &[("maxEntryBytes", js_sys::BigInt::from(-1i64).into())],
        "maxEntryBytes",
    );
    refused(
        &[("breakerFailures", js_sys::BigInt::from(1u64 << 32).into())],
        "breakerFailures",
    );
    refused(
        &[("outboxCapacity", 4_294_967_296.0.into())],
        "outboxCapacity",
    );
    refused(&[("memoryBytes", 2f64.powi(60).into())], "memoryBytes");
    // Each message says what the setting must be: a whole number in the range the setting
    // takes (the core's bounds, not its type's: `1.5` for a count said 0 would do) for an
    // integer setting (a fraction, a negative number, one past the type's range, a string), a
    // number for a number setting.
    let message = |pairs: &[(&str, JsValue)]| -> String {
        let err = build(pairs).err().expect("must be refused");
        js_sys::Reflect::get(&err, &"message".into())
            .unwrap()
            .as_string()
            .unwrap()
    };
    let outbox = "must be a whole number from 1 to 1000000";
    for v in [1.5, -1.0, 4_294_967_296.0, f64::NAN] {
        assert_eq!(
            message(&[("outboxCapacity", v.into())]),
            format!("invalid fleetcache config: outboxCapacity {outbox}"),
            "{v}"
        );
    }
    for (setting, range) in [
        ("compressLevel", "1 to 9"),
        ("breakerFailures", "1 to 4294967295"),
        ("breakerMinCalls", "1 to 4294967295"),
        ("tagMirrorMaxTags", "1 to 100000000"),
        ("maxEntryBytes", "1 to 4294967295"),
        ("compressMinBytes", "0 to 9007199254740991"),
    ] {
        assert_eq!(
            message(&[(setting, 1.5.into())]),
            format!("invalid fleetcache config: {setting} must be a whole number from {range}"),
        );
    }
    assert!(message(&[("compressLevel", "3".into())]).ends_with("from 1 to 9"));
    let u64_size = "must be a whole number from 0 to 9007199254740991";
    for v in [0.5, -4096.0, 2f64.powi(60), f64::INFINITY] {
        assert_eq!(
            message(&[("memoryBytes", v.into())]),
            format!("invalid fleetcache config: memoryBytes {u64_size}"),
            "{v}"
        );
    }
    assert!(
        message(&[("maxEntryBytes", js_sys::BigInt::from(-1i64).into())])
            .ends_with("must be a whole number from 1 to 4294967295")
    );
    assert_eq!(
        message(&[("leaseTtlMs", "10".into())]),
        "invalid fleetcache config: leaseTtlMs must be a number"
    );
    assert!(
        message(&[("tagPruneAfterMs", true.into())]).ends_with("tagPruneAfterMs must be a number")
    );
    // A non-finite number for a number setting: the core's check of its range says what it
    // must be, under the setting's own code.
    for (setting, v, says) in [
        (
            "maxTtlSeconds",
            f64::INFINITY,
            "must be a finite number of seconds",
        ),
        (
            "readTimeoutMs",
            f64::NAN,
            "must be a finite number of milliseconds",
        ),
        (
            "tagPruneAfterMs",
            f64::INFINITY,
            "must be a finite number of milliseconds",
        ),
        ("leaseTtlMs", f64::INFINITY, "leaseTtlMs in [1, 600000] ms"),
        ("breakerFailureRate", f64::NAN, "rate in (0, 1]"),
    ] {
        let m = message(&[(setting, v.into())]);
        assert!(
            m.starts_with(&format!("invalid fleetcache config: {setting} ")),
            "{m}"
        );
        assert!(m.contains(says), "{m}");
    }
    // Other settings keep the general message.
    assert_eq!(
        message(&[("leases", 1.into())]),
        "invalid fleetcache config: leases has the wrong type or shape"
    );
    refused(&[("leases", JsValue::NULL)], "leases");
    refused(&[("prefix", true.into())], "prefix");
    refused(&[("nextRelease", "16.0.0".into())], "nextRelease");
    let release = js_sys::Object::new();
    for (k, v) in [("major", 16), ("minor", 0), ("patch", 0)] {
        js_sys::Reflect::set(&release, &k.into(), &v.into()).unwrap();
    }
    js_sys::Reflect::set(&release, &"prerelease".into(), &1.into()).unwrap();
    refused(&[("nextRelease", release.into())], "nextRelease");
    // A `BigInt` for a number setting, and the first wrong setting in field order is named.
    assert!(build(&[("readTimeoutMs", js_sys::BigInt::from(300u64).into())]).is_ok());
    refused(&[("leases", 1.into()), ("prefix", 1.into())], "prefix");

    // Every setting is read: each one `defaults()` lists, given a value no setting takes, is
    // refused by its name.
    let defaults = fleetcache_wasm::defaults().unwrap();
    let names = js_sys::Object::keys(defaults.unchecked_ref::<js_sys::Object>());
    assert_eq!(names.length(), 26, "{names:?}");
    for name in names.iter() {
        let name = name.as_string().unwrap();
        refused(&[(name.as_str(), js_sys::Symbol::for_("x").into())], &name);
    }
}

/// Reading stops at the first setting refused: no later property of the object is read (its
/// getter does not run), and a getter that throws refuses its setting by name.
#[wasm_bindgen_test]
fn no_setting_is_read_after_the_first_refused() {
    // An object whose `debug` (the last setting read) counts its reads in `reads`.
    let counted = |prefix: JsValue| {
        let obj = js_sys::Object::new();
        js_sys::Reflect::set(&obj, &"prefix".into(), &prefix).unwrap();
        js_sys::Reflect::set(&obj, &"reads".into(), &0.into()).unwrap();
        let get = js_sys::Function::new_no_args("this.reads += 1; return false");
        let desc = js_sys::Object::new();
        js_sys::Reflect::set(&desc, &"get".into(), &get).unwrap();
        js_sys::Object::define_property(&obj, &"debug".into(), &desc);
        obj
    };
    let reads = |obj: &js_sys::Object| js_sys::Reflect::get(obj, &"reads".into()).unwrap();
    let read = counted("fc".into());
    assert!(Engine::new(read.clone().into()).is_ok());
    assert_eq!(reads(&read).as_f64(), Some(1.0));
    let refused = counted(true.into());
    let err = Engine::new(refused.clone().into())
        .err()
        .expect("prefix refused");
    let named = js_sys::Reflect::get(&err, &"setting".into()).unwrap();
    assert_eq!(named.as_string().as_deref(), Some("prefix"));
    assert_eq!(reads(&refused).as_f64(), Some(0.0));

    let throws = js_sys::Object::new();
    let desc = js_sys::Object::new();
    let get = js_sys::Function::new_no_args("throw new Error('no')");
    js_sys::Reflect::set(&desc, &"get".into(), &get).unwrap();
    js_sys::Object::define_property(&throws, &"leaseTtlMs".into(), &desc);
    let err = Engine::new(throws.into())
        .err()
        .expect("leaseTtlMs refused");
    let named = js_sys::Reflect::get(&err, &"setting".into()).unwrap();
    assert_eq!(named.as_string().as_deref(), Some("leaseTtlMs"));
}

#[wasm_bindgen_test]
fn keys_differ_by_deployment_and_interface() {
    let a = engine("d1");
    let b = engine("d2");
    let k1 = a.entry_key(&uc("default"), &key("k")).unwrap();
    assert_ne!(k1, b.entry_key(&uc("default"), &key("k")).unwrap());
    assert_ne!(k1, a.entry_key(&uc("remote"), &key("k")).unwrap());
    let inc = a.entry_key(&Iface::incremental(), &key("k")).unwrap();
    assert_ne!(k1, inc);
    assert!(Iface::use_cache("Bad Name").is_err());
}

#[wasm_bindgen_test]
fn a_handler_named_inc_is_a_use_cache_key_space() {
    let a = engine("d1");
    let named_inc = a.entry_key(&uc("inc"), &key("k")).unwrap();
    assert!(named_inc.contains(":uc-inc:"), "{named_inc}");
    assert_ne!(
        named_inc,
        a.entry_key(&Iface::incremental(), &key("k")).unwrap()
    );
    assert_eq!(uc("inc").segment(), "uc-inc");
    assert!(!uc("inc").is_incremental());
    assert_eq!(Iface::parse("inc").unwrap(), Iface::incremental());
    assert_eq!(Iface::parse("uc-inc").unwrap(), uc("inc"));
    assert!(Iface::parse("inc-").is_err());
}

#[wasm_bindgen_test]
fn a_key_with_a_lone_surrogate_is_refused() {
    let a = engine("d1");
    let lone = js_sys::JsString::from_char_code(&[u16::from(b'k'), 0xD800]);
    let err = a.entry_key(&uc("default"), &lone).unwrap_err();
    let code = js_sys::Reflect::get(&err, &"code".into()).unwrap();
    assert_eq!(code.as_string().as_deref(), Some("ERR_KEY_ILL_FORMED"));
    // A surrogate pair is a well-formed key.
    let pair = js_sys::JsString::from_char_code(&[u16::from(b'k'), 0xD83D, 0xDE00]);
    assert!(a.entry_key(&uc("default"), &pair).is_ok());
}

/// A seed drawn after the engine was made (as the workers entry does inside its first request)
/// rehashes what the maps hold: every entry and tag is still found.
#[wasm_bindgen_test]
fn a_seed_drawn_later_keeps_every_entry_and_tag() {
    let mut e = Engine::new(config("d")).unwrap();
    e.mark_standalone();
    assert!(e.hash_seeded());
    for i in 0..100 {
        let k = i.to_string();
        assert_eq!(e.memory_insert(&k, 1.0, NOW + 1000.0, 0.0), "");
    }
    e.record_revalidation(
        "a\0b",
        RevalidationMode::Expire,
        f64::NAN,
        NOW,
        f64::NAN,
        false,
    )
    .unwrap();
    let entry = e.entry_key(&uc("default"), &key("k")).unwrap();
    assert!(e.draw_hash_seed());
    assert!(e.hash_seeded());
    for i in 0..100 {
        assert!(e.memory_touch(&i.to_string(), NOW), "{i}");
    }
    assert!(!e.memory_touch("100", NOW));
    assert_eq!(e.get_expiration("a", NOW + 1.0), NOW.ceil());
    assert_eq!(e.get_expiration("b", NOW + 1.0), NOW.ceil());
    assert_eq!(e.tag_count(), 2);
    assert_eq!(e.entry_key(&uc("default"), &key("k")).unwrap(), entry);
}

#[wasm_bindgen_test]
fn memory_index_evicts_under_budget() {
    // Room for one item of 60 bytes with its bookkeeping, not two.
    let each = 60 + fleetcache_core::lru::item_overhead("a");
    let budget = (2 * each - 1) as f64;
    let obj = js_sys::Object::new();
    js_sys::Reflect::set(&obj, &"memoryBytes".into(), &JsValue::from_f64(budget)).unwrap();
    let mut e = Engine::new(obj.into()).unwrap();
    assert_eq!(e.memory_insert("a", 60.0, NOW + 1000.0, 0.0), "");
    assert_eq!(e.memory_insert("b", 60.0, NOW + 1000.0, 0.0), "a");
    assert!(e.memory_touch("b", NOW));
    assert!(!e.memory_touch("b", NOW + 2000.0));
}

#[wasm_bindgen_test]
fn random_tokens_are_random() {
    let a = random_token().unwrap();
    assert_eq!(a.len(), 32);
    assert_ne!(a, random_token().unwrap());
}

#[wasm_bindgen_test]
fn script_shas_name_every_script_the_engine_sends() {
    let e = engine("d1");
    let listed = script_shas();
    let items: Vec<&str> = listed.split('\0').collect();
    let all = &fleetcache_core::scripts::ALL;
    assert_eq!(items.len(), 2 * all.len(), "{listed:?}");
    for (pair, script) in items.chunks(2).zip(all.iter()) {
        assert_eq!(pair[0], script.name);
        assert_eq!(pair[1], script.sha1());
        // The text the engine sends under that SHA-1 (the NOSCRIPT fallback's `EVAL`).
        assert_eq!(e.script_source(pair[1]).as_deref(), Some(script.source));
    }
}

fn config_with(pairs: &[(&str, f64)]) -> JsValue {
    let obj: js_sys::Object = config("d1").unchecked_into();
    for (k, v) in pairs {
        js_sys::Reflect::set(&obj, &(*k).into(), &(*v).into()).unwrap();
    }
    obj.into()
}

#[wasm_bindgen_test]
fn breaker_opens_and_probes_through_the_binding() {
    const CHANGED: u32 = Reported::BreakerChanged as u32;
    const BACKLOG: u32 = Reported::Backlog as u32;
    let mut e = Engine::new(config_with(&[
        ("readTimeoutMs", 250.0),
        ("breakerFailures", 2.0),
    ]))
    .unwrap();
    assert_eq!(e.budget_ms(CommandKind::Read), 250.0);
    assert_eq!(e.budget_ms(CommandKind::Write), 1000.0);
    // Lease commands: the longer of the two.
    assert_eq!(e.budget_ms(CommandKind::Lease), 1000.0);
    assert_eq!(e.connect_budget_ms(), 1000.0);
    let p1 = e.admit(CommandKind::Read, NOW);
    let p2 = e.admit(CommandKind::Read, NOW);
    assert!(p1 > 0.0 && p2 > 0.0);
    assert_eq!(e.report(p1, CommandResult::Timeout, NOW), 0);
    assert_eq!(e.report(p2, CommandResult::NoAnswer, NOW), CHANGED);
    assert_eq!(e.breaker_state(NOW), BreakerState::Open);
    assert_eq!(e.admit(CommandKind::Write, NOW + 1.0), 0.0);
    assert_eq!(e.breaker_rejected(), 1.0);
    // One probe after the open time, then nothing until it reports.
    let probe = e.admit(CommandKind::Read, NOW + 1000.0);
    assert!(probe > 0.0);
    assert_eq!(e.admit(CommandKind::Read, NOW + 1001.0), 0.0);
    assert_eq!(e.report(probe, CommandResult::Reply, NOW + 1002.0), CHANGED);
    assert_eq!(e.breaker_state(NOW + 1002.0), BreakerState::Closed);
    assert_eq!(e.breaker_trips(), 1.0);
    // Garbage tokens are ignored.
    assert_eq!(e.report(f64::NAN, CommandResult::NoAnswer, NOW), 0);
    assert_eq!(e.report(-3.0, CommandResult::NoAnswer, NOW), 0);
    // A revalidation waiting in the outbox: every report says so, the breaker unchanged.
    e.record_revalidation(
        "a",
        RevalidationMode::Expire,
        f64::NAN,
        NOW + 1003.0,
        f64::NAN,
        true,
    )
    .unwrap();
    let p = e.admit(CommandKind::Write, NOW + 1004.0);
    assert_eq!(
        e.report(p, CommandResult::ErrorReply, NOW + 1005.0),
        BACKLOG
    );
}

#[wasm_bindgen_test]
fn outbox_through_the_binding() {
    let mut e = Engine::new(config_with(&[("outboxCapacity", 2.0)])).unwrap();
    e.mark_standalone();
    assert!(e.plan_outbox_head().unwrap().is_empty());
    assert_eq!(e.outbox_head_seq(), 0.0);
    let queue = |e: &mut Engine, tags: &str, mode: RevalidationMode, expire: f64| {
        e.record_revalidation(tags, mode, expire, NOW, f64::NAN, true)
    };
    assert_eq!(
        queue(&mut e, "a", RevalidationMode::Expire, f64::NAN)
            .unwrap()
            .evicted(),
        ""
    );
    assert_eq!(e.get_expiration("a", NOW + 1.0), NOW.ceil());
    assert_eq!(
        queue(&mut e, "b\0c", RevalidationMode::Stale, 60.0)
            .unwrap()
            .evicted(),
        ""
    );
    assert_eq!(
        queue(&mut e, "d", RevalidationMode::Expire, f64::NAN)
            .unwrap()
            .evicted(),
        "a"
    );
    assert_eq!(e.outbox_dropped(), 1.0);
    assert_eq!(e.outbox_length(), 2);
    let joined = e.plan_outbox_head().unwrap();
    let argv: Vec<&str> = joined.split('\0').collect();
    assert_eq!(argv[0], "EVALSHA");
    assert_eq!(&argv[argv.len() - 2..], ["b", "c"]);
    let seq = e.outbox_head_seq();
    assert!(e.ack_outbox(seq));
    assert!(!e.ack_outbox(seq));
    assert!(!e.ack_outbox(f64::NAN));
    assert_eq!(e.outbox_length(), 1);
    // A tag past the core's byte limit is dropped on its own, and said once.
    let long = "x".repeat(16 * 1024 + 1);
    let err = queue(&mut e, &long, RevalidationMode::Expire, f64::NAN)
        .err()
        .unwrap();
    let code = js_sys::Reflect::get(&err, &"code".into()).unwrap();
    assert_eq!(code.as_string().as_deref(), Some("ERR_PLAN_TAG_LIMIT"));
    let kept = queue(
        &mut e,
        &format!("{long}\0kept"),
        RevalidationMode::Expire,
        f64::NAN,
    )
    .unwrap();
    assert!(kept
        .dropped_tags()
        .starts_with("dropped 1 tag(s) longer than 16384 bytes"));
    let plain = queue(&mut e, "caf\u{e9}", RevalidationMode::Expire, f64::NAN).unwrap();
    assert_eq!(plain.dropped_tags(), "");
    // Raw and encoded forms are one tag.
    assert_eq!(e.get_expiration("caf%C3%A9", NOW + 1.0), NOW.ceil());
    assert_eq!(
        e.tag_freshness("caf%C3%A9", NOW - 1.0, NOW + 1.0),
        Freshness::Expired
    );
    // Without the outbox: applied here only, nothing queued.
    let length = e.outbox_length();
    let local = e
        .record_revalidation(
            "local",
            RevalidationMode::Expire,
            f64::NAN,
            NOW,
            f64::NAN,
            false,
        )
        .unwrap();
    assert_eq!(
        (local.dropped_tags(), local.evicted()),
        (String::new(), String::new())
    );
    assert_eq!(e.outbox_length(), length);
    assert_eq!(e.get_expiration("local", NOW + 1.0), NOW.ceil());
    let bad = Engine::new(config_with(&[("readTimeoutMs", -1.0)]))
        .err()
        .unwrap();
    let code = js_sys::Reflect::get(&bad, &"code".into()).unwrap();
    assert_eq!(
        code.as_string().as_deref(),
        Some("ERR_CONFIG_READ_TIMEOUT_MS")
    );
}

#[wasm_bindgen_test]
fn incremental_value_round_trips_layout_and_cache_control() {
    let mut e = engine("d1");
    // APP_PAGE with rscData (flag 1) and two segments: json, html, rsc, seg, seg.
    let parts = [7u32, 4, 3, 2, 1];
    let plan = e
        .plan_incremental_entry(
            "/p",
            ValueKind::AppPage,
            ValueFlag::Rsc as u8,
            2,
            "_N_T_/p\0t",
            60.0,
            3600.0,
            &parts,
            NOW,
        )
        .unwrap();
    assert!(plan.ttl_ms() > 3_599_000.0);
    let mut value = plan.header();
    value.extend(std::iter::repeat_n(b'x', 17));
    let s = answer_incremental(&mut e, "/p", Some(&value), NOW + 1.0);
    assert_eq!((s.source(), s.served()), (Source::Redis, Served::Fresh));
    // Fresh: shown as read (the core's `incremental::fresh_last_modified`).
    assert_eq!(s.last_modified(), NOW + 1.0);
    assert_eq!(s.cache_revalidate(), 60.0);
    assert_eq!(s.cache_expire(), 3600.0);
    assert!(s.has_cache_control());
    assert_eq!(s.value_kind(), ValueKind::AppPage as u8);
    assert_eq!(s.value_flags() & ValueFlag::Rsc as u8, ValueFlag::Rsc as u8);
    assert_eq!(s.segments(), 2);
    assert_eq!(s.parts(), parts.to_vec());
    assert_eq!(s.payload_offset() as usize, value.len() - 17);
    // Wrong part count for the kind is refused with a code.
    let err = e
        .plan_incremental_entry("/r", ValueKind::AppRoute, 0, 0, "", 60.0, 3600.0, &[1], NOW)
        .err()
        .unwrap();
    let code = js_sys::Reflect::get(&err, &"code".into()).unwrap();
    assert_eq!(code.as_string().unwrap(), "ERR_LAYOUT_PARTS");
}

#[wasm_bindgen_test]
fn incremental_stale_tag_moves_last_modified_back() {
    let mut e = engine("d1");
    let mut value = e
        .plan_incremental_entry(
            "/r",
            ValueKind::AppRoute,
            0,
            0,
            "t",
            60.0,
            3600.0,
            &[2, 1],
            NOW,
        )
        .unwrap()
        .header();
    value.extend_from_slice(b"{}b");
    // Recorded by `updateTags` in the host's turn 3: the singular handler's report of it, in
    // the same turn, finds it once; other durations or another turn are another event.
    e.revalidate(
        "t",
        RevalidationMode::Stale,
        31_536_000.0,
        NOW + 10.0,
        f64::NAN,
        false,
        3,
    )
    .unwrap();
    assert!(!e.revalidation_recorded("t", RevalidationMode::Expire, f64::NAN, NOW + 11.0, 3));
    assert!(!e.revalidation_recorded("t", RevalidationMode::Stale, 31_536_000.0, NOW + 11.0, 4));
    assert!(e.revalidation_recorded("t", RevalidationMode::Stale, 31_536_000.0, NOW + 11.0, 3));
    assert!(!e.revalidation_recorded("t", RevalidationMode::Stale, 31_536_000.0, NOW + 11.0, 3));
    let s = answer_incremental(&mut e, "/r", Some(&value), NOW + 20.0);
    assert_eq!(s.served(), Served::Stale);
    assert!(s.last_modified() + 60_000.0 < NOW + 20.0);
    e.plan_tag_update("t", RevalidationMode::Expire, f64::NAN, NOW + 30.0)
        .unwrap();
    let s = answer_incremental(&mut e, "/r", Some(&value), NOW + 40.0);
    assert_eq!(s.served(), Served::Miss);
}

fn get(obj: &JsValue, path: &[&str]) -> JsValue {
    path.iter().fold(obj.clone(), |o, k| {
        js_sys::Reflect::get(&o, &JsValue::from_str(k)).unwrap()
    })
}

#[wasm_bindgen_test]
fn stats_and_describe_envelope_cross_as_plain_objects() {
    let mut engine = engine("d1");
    let value = stored(&mut engine, "k", "a\0b", b"xyz");
    assert_eq!(
        engine
            .inspect_entry(&uc("default"), "k", &value, value.len() as u32, "", NOW)
            .outcome(),
        Outcome::Fresh
    );
    // A singular read that finds nothing counts a miss (the read machine counts it).
    let s = answer_incremental(&mut engine, "/none", None, NOW);
    assert_eq!(s.served(), Served::Miss);
    let stats = engine.stats(NOW).unwrap();
    assert_eq!(
        get(&stats, &["lookups", "useCache", "hit"]).as_f64(),
        Some(1.0)
    );
    assert_eq!(
        get(&stats, &["lookups", "incremental", "miss"]).as_f64(),
        Some(1.0)
    );
    assert_eq!(
        get(&stats, &["breaker", "state"]).as_string().as_deref(),
        Some("closed")
    );

    let d = fleetcache_wasm::describe_envelope(&value, value.len() as u32).unwrap();
    assert_eq!(get(&d, &["key"]).as_string().as_deref(), Some("k"));
    assert_eq!(
        get(&d, &["interface"]).as_string().as_deref(),
        Some("use-cache")
    );
    assert_eq!(get(&d, &["payloadLen"]).as_f64(), Some(3.0));
    assert_eq!(js_sys::Array::from(&get(&d, &["tags"])).length(), 2);
    assert_eq!(get(&d, &["formatVersion"]).as_f64(), Some(1.0));
    assert!(get(&d, &["valueKind"]).is_undefined());
    // A singular-handler entry: its descriptor too.
    let plan = engine
        .plan_incremental_entry(
            "/r",
            ValueKind::AppRoute,
            0,
            0,
            "",
            60.0,
            3600.0,
            &[2, 1],
            NOW,
        )
        .unwrap();
    let mut inc = plan.header();
    inc.extend_from_slice(b"xyz");
    let d = fleetcache_wasm::describe_envelope(&inc, inc.len() as u32).unwrap();
    assert_eq!(
        get(&d, &["interface"]).as_string().as_deref(),
        Some("incremental")
    );
    assert_eq!(
        get(&d, &["valueKind"]).as_f64(),
        Some(f64::from(ValueKind::AppRoute as u8))
    );
    assert_eq!(get(&d, &["rscData"]).as_bool(), Some(false));
    assert_eq!(get(&d, &["noExpire"]).as_bool(), Some(false));
    assert_eq!(get(&d, &["segments"]).as_f64(), Some(0.0));
    let parts = js_sys::Array::from(&get(&d, &["parts"]));
    assert_eq!(parts.to_vec(), [JsValue::from(2), JsValue::from(1)]);
    let err = fleetcache_wasm::describe_envelope(&[b'x'; 64], 64).unwrap_err();
    assert_eq!(
        get(&err, &["code"]).as_string().as_deref(),
        Some("ERR_DECODE_BAD_MAGIC")
    );
}

fn number(obj: &JsValue, name: &str) -> f64 {
    js_sys::Reflect::get(obj, &name.into())
        .unwrap()
        .as_f64()
        .unwrap_or_else(|| panic!("{name} is not a number"))
}

#[wasm_bindgen_test]
fn defaults_are_the_cores_and_build_an_engine() {
    let d = defaults().unwrap();
    let core = fleetcache_core::Config::default();
    assert_eq!(number(&d, "readTimeoutMs"), core.read_timeout_ms);
    assert_eq!(number(&d, "leaseWaitMs"), core.lease_wait_ms);
    assert_eq!(number(&d, "maxEntryBytes"), core.max_entry_bytes as f64);
    assert_eq!(
        js_sys::Reflect::get(&d, &"prefix".into())
            .unwrap()
            .as_string(),
        Some(core.prefix)
    );
    let e = Engine::new(d).unwrap();
    assert_eq!(e.max_entry_bytes(), core.max_entry_bytes as f64);
}

#[wasm_bindgen_test]
fn bounds_are_the_ones_the_constructor_applies() {
    let b = bounds().unwrap();
    let max_wait = number(&b, "maxLeaseWaitMs");
    let with_wait = |ms: f64| {
        let c = config("d");
        js_sys::Reflect::set(&c, &"leaseWaitMs".into(), &ms.into()).unwrap();
        Engine::new(c)
    };
    assert!(with_wait(max_wait).is_ok());
    assert!(with_wait(max_wait + 1.0).is_err());
}

#[wasm_bindgen_test]
fn a_write_machine_plans_a_set_and_ends_on_the_reply() {
    let mut e = engine("d1");
    let mut m = WriteMachine::use_cache(
        &mut e,
        &uc("default"),
        &key("k"),
        "a",
        NOW,
        60.0,
        3600.0,
        30.0,
        4,
        NOW,
        NOW,
    )
    .unwrap();
    let packed = m.start(&mut e, NOW);
    let step = m.last_step().unwrap();
    // The packed step starts with its kind and its key (js-host/src/write-driver.ts reads on).
    assert_eq!(
        packed[..8],
        f64::from(WriteStepKind::Store as u8).to_le_bytes()
    );
    let key_len = step.key().len();
    assert_eq!(packed[8..12], u32::try_from(key_len).unwrap().to_le_bytes());
    assert_eq!(&packed[12..12 + key_len], step.key().as_bytes());
    assert_eq!(step.kind(), WriteStepKind::Store);
    assert_eq!(step.key(), e.entry_key(&uc("default"), &key("k")).unwrap());
    assert_eq!(step.ttl_ms(), 3_600_000.0);
    assert!(step.argv().is_empty());
    let mut value = step.header();
    value.extend_from_slice(b"body");
    let described = fleetcache_wasm::describe_envelope(&value, value.len() as u32).unwrap();
    let stored_key = js_sys::Reflect::get(&described, &"key".into()).unwrap();
    assert_eq!(stored_key.as_string().as_deref(), Some("k"));
    m.failed(&mut e, f64::from(Failure::Timeout as u8), NOW)
        .unwrap();
    let done = m.last_step().unwrap();
    assert_eq!(done.kind(), WriteStepKind::Done);
    assert_eq!(done.outcome(), WriteOutcome::Failed);
    assert!(done.mark_local());
    assert_eq!(done.error(), "set failed, entry not stored");
}

#[wasm_bindgen_test]
fn a_write_machine_refuses_an_ill_formed_key() {
    let mut e = engine("d1");
    let lone = js_sys::JsString::from_char_code1(0xd800);
    let err = WriteMachine::use_cache(
        &mut e,
        &uc("default"),
        &lone,
        "",
        NOW,
        60.0,
        3600.0,
        30.0,
        4,
        NOW,
        NOW,
    )
    .unwrap_err();
    let code = js_sys::Reflect::get(&err, &"code".into()).unwrap();
    assert_eq!(code.as_string().as_deref(), Some("ERR_KEY_ILL_FORMED"));
}
