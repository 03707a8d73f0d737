//! The read and renew machines through the binding, in a real wasm runtime (headless Node):
//! each input answers the step kind, the step read from the machine, enums instead of codes, errors with a `code`.
#![cfg(target_arch = "wasm32")]

use fleetcache_wasm::{
    Consumer, Engine, Failure, Iface, ReadMachine, ReadStepKind, RenewStepKind, Served, Source,
    TierAction,
};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

const NOW: f64 = 1_795_690_530_487.5;
const TOKEN: &str = "0123456789abcdef";

fn engine() -> Engine {
    let obj = js_sys::Object::new();
    js_sys::Reflect::set(&obj, &"prefix".into(), &"t".into()).unwrap();
    js_sys::Reflect::set(&obj, &"deployment".into(), &"d1".into()).unwrap();
    let mut e = Engine::new(obj.into()).unwrap();
    e.mark_standalone();
    e
}

fn uc() -> Iface {
    Iface::use_cache("default").unwrap()
}

fn read(e: &Engine, key: &str, consumer: Consumer) -> ReadMachine {
    let key = js_sys::JsString::from(key);
    ReadMachine::use_cache(e, &uc(), &key, "", consumer, TOKEN.to_owned(), NOW).unwrap()
}

fn stored(e: &mut Engine, key: &str, revalidate: f64) -> Vec<u8> {
    let mut v = e
        .plan_use_cache_entry(&uc(), key, "a\0b", NOW, revalidate, 3600.0, 30.0, 3, NOW)
        .unwrap()
        .header();
    v.extend_from_slice(b"xyz");
    v
}

fn code(err: JsValue) -> Option<String> {
    js_sys::Reflect::get(&err, &"code".into())
        .unwrap()
        .as_string()
}

#[wasm_bindgen_test]
fn a_hit_is_answered_with_its_presentation_in_one_object() {
    let mut e = engine();
    let v = stored(&mut e, "k", 60.0);
    let mut m = read(&e, "k", Consumer::Serves);
    assert_eq!(m.start(&mut e, NOW).unwrap(), ReadStepKind::OwnWrite);
    assert_eq!(
        m.own_write(&mut e, None, NOW).unwrap(),
        ReadStepKind::PeekTier
    );
    m.tier(&mut e, None, 0.0, NOW).unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!(s.kind(), ReadStepKind::Get);
    assert_eq!(s.key(), m.entry_key());
    assert!(s.budget_ms() > 0.0);
    m.reply(&mut e, Some(v[..8].to_vec()), v.len() as f64, NOW)
        .unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!(s.kind(), ReadStepKind::NeedMore);
    m.reply(&mut e, Some(v.clone()), v.len() as f64, NOW)
        .unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!(s.kind(), ReadStepKind::Answer);
    assert_eq!((s.source(), s.served()), (Source::Redis, Served::Fresh));
    assert_eq!(s.tier(), TierAction::Keep);
    assert!(s.keep_until() > NOW && !s.outage_only());
    assert_eq!(&v[s.payload_offset() as usize..], b"xyz");
    assert_eq!(
        (s.timestamp(), s.revalidate(), s.expire(), s.stale()),
        (NOW, 60.0, 3600.0, 30.0)
    );
    assert_eq!(s.tags(), vec!["a".to_owned(), "b".to_owned()]);
    assert!(!s.regenerates() && !s.holds_lease());
    // Answered: any further input is the host's bug.
    let err = m.timer(&mut e, NOW).err().unwrap();
    assert_eq!(code(err).as_deref(), Some("ERR_READ_UNEXPECTED_INPUT"));
}

#[wasm_bindgen_test]
fn a_miss_wins_the_lease_and_renews_it() {
    let mut e = engine();
    let mut m = read(&e, "k", Consumer::Serves);
    m.start(&mut e, NOW).unwrap();
    m.own_write(&mut e, None, NOW).unwrap();
    m.tier(&mut e, None, 0.0, NOW).unwrap();
    m.reply(&mut e, None, 0.0, NOW).unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!(s.kind(), ReadStepKind::Acquire);
    assert_eq!(s.argv()[0], "EVALSHA");
    assert!(s.argv().iter().any(|a| a == TOKEN));
    m.lease_reply(&mut e, 1.0, NOW).unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!((s.kind(), s.served()), (ReadStepKind::Answer, Served::Miss));
    assert!(s.holds_lease() && s.regenerates());
    assert!(s.log().contains("regenerating here"));
    let mut r = m.renewal(&e).unwrap();
    let w = r.start(&mut e, NOW).unwrap();
    assert_eq!(w.kind(), RenewStepKind::Wait);
    let s = r.timer(&mut e, NOW + w.delay_ms()).unwrap();
    assert_eq!(s.kind(), RenewStepKind::Send);
    assert_eq!(s.argv()[0], "EVALSHA");
    let s = r
        .failed(&mut e, Failure::Timeout, NOW + w.delay_ms())
        .unwrap();
    assert_eq!(s.kind(), RenewStepKind::Wait);
}

#[wasm_bindgen_test]
fn a_follower_waits_then_polls() {
    let mut e = engine();
    let mut m = read(&e, "k", Consumer::Serves);
    m.start(&mut e, NOW).unwrap();
    m.own_write(&mut e, None, NOW).unwrap();
    m.tier(&mut e, None, 0.0, NOW).unwrap();
    m.reply(&mut e, None, 0.0, NOW).unwrap();
    m.lease_reply(&mut e, 0.0, NOW).unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!(s.kind(), ReadStepKind::Wait);
    assert!(s.delay_ms() > 0.0);
    m.timer(&mut e, NOW + s.delay_ms()).unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!(s.kind(), ReadStepKind::Poll);
    let v = stored(&mut e, "k", 60.0);
    m.polled(&mut e, Some(v.clone()), v.len() as f64, false, NOW + 20.0)
        .unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!((s.source(), s.served()), (Source::Poll, Served::Fresh));
}

#[wasm_bindgen_test]
fn a_failed_singular_read_is_a_miss_with_an_error_line() {
    let mut e = engine();
    let key = js_sys::JsString::from("/p");
    let mut m = ReadMachine::incremental(
        &e,
        &key,
        false,
        "",
        f64::NAN,
        Consumer::Serves,
        false,
        TOKEN.to_owned(),
        NOW,
    )
    .unwrap();
    assert_eq!(m.start(&mut e, NOW).unwrap(), ReadStepKind::Refresh);
    assert_eq!(m.refreshed(&mut e, NOW).unwrap(), ReadStepKind::PeekTier);
    m.tier(&mut e, None, 0.0, NOW).unwrap();
    m.failed(&mut e, Failure::NoConnection, NOW).unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!(s.kind(), ReadStepKind::PeekFallback);
    m.fallback(&mut e, None, 0.0, NOW).unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!(
        (s.kind(), s.served(), s.source()),
        (ReadStepKind::Answer, Served::Miss, Source::None)
    );
    assert!(s.error().contains("treated as a miss"));
    assert!(s.parts().is_empty() && s.cache_revalidate().is_nan());
}

#[wasm_bindgen_test]
fn a_key_with_a_lone_surrogate_is_refused_by_the_read() {
    let e = engine();
    let lone = js_sys::JsString::from_char_code(&[u16::from(b'k'), 0xD800]);
    let err = ReadMachine::use_cache(
        &e,
        &uc(),
        &lone,
        "",
        Consumer::Serves,
        TOKEN.to_owned(),
        NOW,
    )
    .err()
    .unwrap();
    assert_eq!(code(err).as_deref(), Some("ERR_KEY_ILL_FORMED"));
}
