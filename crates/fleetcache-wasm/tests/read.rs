//! The read and renew machines through the binding, in a real wasm runtime (headless Node):
//! each input answers the step kind, the step read from the machine, enums instead of codes, errors with a `code`.
#![cfg(target_arch = "wasm32")]

use fleetcache_wasm::{
    Consumer, Engine, Failure, Iface, ReadField, ReadMachine, ReadStepKind, RenewStepKind,
    RevalidationMode, Served, Source, TierAction, ValueFlag, ValueKind,
};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

const NOW: f64 = 1_795_690_530_487.5;
const TOKEN: &str = "0123456789abcdef";

/// An engine whose host prints debug lines: the tests read the machines' lines.
fn engine() -> Engine {
    engine_debugging(true)
}

fn engine_debugging(debug: bool) -> Engine {
    let obj = js_sys::Object::new();
    js_sys::Reflect::set(&obj, &"prefix".into(), &"t".into()).unwrap();
    js_sys::Reflect::set(&obj, &"deployment".into(), &"d1".into()).unwrap();
    js_sys::Reflect::set(&obj, &"debug".into(), &debug.into()).unwrap();
    let mut e = Engine::new(obj.into()).unwrap();
    e.mark_standalone();
    e
}

/// The `debug` setting reaches the read machines: a read that won a lease logs its decision
/// with it, and nothing without it (the host would print none).
#[wasm_bindgen_test]
fn a_read_logs_its_decisions_only_with_the_debug_setting() {
    for debug in [true, false] {
        let mut e = engine_debugging(debug);
        let mut m = read(&e, "k", Consumer::Serves);
        to_answer(&mut e, &mut m, None, 1.0);
        let s = m.last_step().unwrap().clone();
        assert!(s.holds_lease());
        assert_eq!(
            s.log().contains("miss: regenerating here"),
            debug,
            "{}",
            s.log()
        );
        assert_eq!(s.log().is_empty(), !debug, "{}", s.log());
    }
}

fn uc() -> Iface {
    Iface::use_cache("default").unwrap()
}

fn read(e: &Engine, key: &str, consumer: Consumer) -> ReadMachine {
    let key = js_sys::JsString::from(key);
    ReadMachine::use_cache(e, &uc(), &key, "", true, consumer, TOKEN.to_owned(), NOW).unwrap()
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
    m.reply(
        &mut e,
        Some(v[..8].to_vec()),
        v.len() as f64,
        false,
        0.0,
        NOW,
    )
    .unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!(s.kind(), ReadStepKind::NeedMore);
    m.reply(&mut e, Some(v.clone()), v.len() as f64, false, 0.0, NOW)
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
    m.reply(&mut e, None, 0.0, false, 0.0, NOW).unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!(s.kind(), ReadStepKind::Acquire);
    assert!(s.argv().starts_with("EVALSHA\0"));
    assert!(s.argv().split('\0').any(|a| a == TOKEN));
    m.lease_reply(&mut e, 1.0, NOW).unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!((s.kind(), s.served()), (ReadStepKind::Answer, Served::Miss));
    assert!(s.holds_lease() && s.regenerates());
    assert!(s.log().contains("regenerating here"));
    let mut r = m.renewal(&e).unwrap();
    let packed = r.start(&mut e, NOW).unwrap();
    let delay = r.last_step().unwrap().delay_ms();
    assert_eq!(r.last_step().unwrap().kind(), RenewStepKind::Wait);
    // Packed as js-host/src/read-driver.ts (`renewStep`) reads it: kind, then the pause.
    assert_eq!(
        packed[..8],
        f64::from(RenewStepKind::Wait as u8).to_le_bytes()
    );
    assert_eq!(packed[8..16], delay.to_le_bytes());
    r.timer(&mut e, NOW + delay).unwrap();
    let s = r.last_step().unwrap();
    assert_eq!(s.kind(), RenewStepKind::Send);
    assert!(s.argv().starts_with("EVALSHA\0"));
    r.failed(&mut e, f64::from(Failure::Timeout as u8), NOW + delay)
        .unwrap();
    assert_eq!(r.last_step().unwrap().kind(), RenewStepKind::Wait);
    // `sent` takes the script's reply: 1 renews and waits for the next interval, anything
    // else ends the renewals.
    let mut at = NOW + delay;
    for (reply, after) in [(1.0, RenewStepKind::Wait), (0.0, RenewStepKind::Done)] {
        at += delay;
        r.timer(&mut e, at).unwrap();
        assert_eq!(r.last_step().unwrap().kind(), RenewStepKind::Send);
        r.sent(&mut e, reply, at).unwrap();
        assert_eq!(r.last_step().unwrap().kind(), after);
    }
}

#[wasm_bindgen_test]
fn a_follower_waits_then_polls() {
    let mut e = engine();
    let mut m = read(&e, "k", Consumer::Serves);
    m.start(&mut e, NOW).unwrap();
    m.own_write(&mut e, None, NOW).unwrap();
    m.tier(&mut e, None, 0.0, NOW).unwrap();
    m.reply(&mut e, None, 0.0, false, 0.0, NOW).unwrap();
    m.lease_reply(&mut e, 0.0, NOW).unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!(s.kind(), ReadStepKind::Wait);
    assert!(s.delay_ms() > 0.0);
    m.timer(&mut e, NOW + s.delay_ms()).unwrap();
    let s = m.last_step().unwrap().clone();
    assert_eq!(s.kind(), ReadStepKind::Poll);
    let v = stored(&mut e, "k", 60.0);
    m.polled(
        &mut e,
        Some(v.clone()),
        v.len() as f64,
        false,
        false,
        0.0,
        NOW + 20.0,
    )
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
    m.failed(&mut e, f64::from(Failure::NoConnection as u8), NOW)
        .unwrap();
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
        true,
        Consumer::Serves,
        TOKEN.to_owned(),
        NOW,
    )
    .err()
    .unwrap();
    assert_eq!(code(err).as_deref(), Some("ERR_KEY_ILL_FORMED"));
}

/// The fields area after the machine's last step, slot by slot, against the step's accessors
/// (NaN where the accessor reads NaN).
fn check_fields(m: &ReadMachine) {
    let s = m.last_step().unwrap();
    let own = match s.kind() {
        ReadStepKind::Answer => s.own(),
        _ => fleetcache_core::regen::Own {
            start: 0.0,
            fresh_at: 0.0,
            fresh_due: 0.0,
            written_back: 0.0,
            written_back_made: 0.0,
        },
    };
    let f = m.fields_area();
    let want = [
        (ReadField::BudgetMs, s.budget_ms()),
        (ReadField::Need, f64::from(s.need())),
        (ReadField::DelayMs, s.delay_ms()),
        (ReadField::Tier, f64::from(s.tier() as u8)),
        (ReadField::KeepUntil, s.keep_until()),
        (ReadField::OutageOnly, f64::from(u8::from(s.outage_only()))),
        (ReadField::Source, f64::from(s.source() as u8)),
        (ReadField::Served, f64::from(s.served() as u8)),
        (ReadField::Regenerates, f64::from(u8::from(s.regenerates()))),
        (ReadField::HoldsLease, f64::from(u8::from(s.holds_lease()))),
        (ReadField::PayloadOffset, f64::from(s.payload_offset())),
        (ReadField::Timestamp, s.timestamp()),
        (ReadField::Revalidate, s.revalidate()),
        (ReadField::Expire, s.expire()),
        (ReadField::Stale, s.stale()),
        (ReadField::LastModified, s.last_modified()),
        (
            ReadField::HasCacheControl,
            f64::from(u8::from(s.has_cache_control())),
        ),
        (ReadField::CacheRevalidate, s.cache_revalidate()),
        (ReadField::CacheExpire, s.cache_expire()),
        (ReadField::ValueKind, f64::from(s.value_kind())),
        (ReadField::ValueFlags, f64::from(s.value_flags())),
        (ReadField::Segments, f64::from(s.segments())),
        (ReadField::HasLog, f64::from(u8::from(!s.log().is_empty()))),
        (
            ReadField::HasError,
            f64::from(u8::from(!s.error().is_empty())),
        ),
        (ReadField::TookTier, 0.0),
        (ReadField::HeaderKept, f64::from(u8::from(m.header_kept()))),
        // Written by the constructors and reuses, for the start to come; every step clears it.
        (ReadField::AsksTier, 0.0),
        // No step here keeps a page copy bound to a generation (core `TierAction::Keep`).
        (ReadField::PageGen, 0.0),
        (ReadField::Order, s.order()),
        (ReadField::PartsLen, s.parts().len() as f64),
        (
            ReadField::TagsLen,
            s.tags().iter().map(String::len).sum::<usize>() as f64
                + s.tags().len().saturating_sub(1) as f64,
        ),
        // An answer without them writes NaN; any other step leaves the slots cleared.
        (ReadField::OwnStart, own.start),
        (ReadField::OwnFreshAt, own.fresh_at),
        (ReadField::OwnFreshDue, own.fresh_due),
        (ReadField::WrittenBack, own.written_back),
        (ReadField::WrittenBackMade, own.written_back_made),
        // Short keys and two tags: nothing for the host to park before pooling.
        (ReadField::HoldsBack, 0.0),
    ];
    // Every slot but the tags' and parts' addresses, checked below.
    assert_eq!(want.len() + 2, f.len());
    let parts = f[ReadField::PartsLen as usize];
    assert!(parts == 0.0 || f[ReadField::PartsAt as usize] > 0.0);
    let len = f[ReadField::TagsLen as usize];
    assert!(len == 0.0 || f[ReadField::TagsAt as usize] > 0.0);
    assert_eq!(m.tags_text().len() as f64, len);
    for (slot, value) in want {
        let got = f[slot as usize];
        assert!(
            got == value || (got.is_nan() && value.is_nan()),
            "{slot:?} after {:?}: fields area {got}, accessor {value}",
            s.kind()
        );
    }
}

#[wasm_bindgen_test]
fn a_read_of_a_long_key_says_so_and_parking_clears_the_machine() {
    let mut e = engine();
    let key = "k".repeat(20 * 1024);
    let v = stored(&mut e, &key, 60.0);
    let mut m = read(&e, &key, Consumer::Serves);
    m.start(&mut e, NOW).unwrap();
    m.own_write(&mut e, None, NOW).unwrap();
    m.tier(&mut e, None, 0.0, NOW).unwrap();
    m.reply(&mut e, Some(v.clone()), v.len() as f64, false, 0.0, NOW)
        .unwrap();
    assert_eq!(m.fields_area()[ReadField::HoldsBack as usize], 1.0);
    m.park();
    assert!(m.fields_area().iter().all(|f| *f == 0.0));
    assert!(m.last_step().is_none());
    assert_eq!(m.entry_key(), "");
}

#[wasm_bindgen_test]
fn the_fields_area_holds_what_each_step_reads() {
    let mut e = engine();
    // A hit through NeedMore, kept in the tier.
    let v = stored(&mut e, "k", 60.0);
    let mut m = read(&e, "k", Consumer::Serves);
    m.start(&mut e, NOW).unwrap();
    check_fields(&m);
    m.own_write(&mut e, None, NOW).unwrap();
    check_fields(&m);
    m.tier(&mut e, None, 0.0, NOW).unwrap();
    check_fields(&m);
    m.reply(
        &mut e,
        Some(v[..8].to_vec()),
        v.len() as f64,
        false,
        0.0,
        NOW,
    )
    .unwrap();
    check_fields(&m);
    m.reply(&mut e, Some(v.clone()), v.len() as f64, false, 0.0, NOW)
        .unwrap();
    check_fields(&m);
    // A miss: lease won, a follower's wait and poll, a stale answer from the tier.
    let mut m = read(&e, "gone", Consumer::Serves);
    m.start(&mut e, NOW).unwrap();
    m.own_write(&mut e, None, NOW).unwrap();
    m.tier(&mut e, None, 0.0, NOW).unwrap();
    m.reply(&mut e, None, 0.0, false, 0.0, NOW).unwrap();
    check_fields(&m);
    m.lease_reply(&mut e, 1.0, NOW).unwrap();
    check_fields(&m);
    let mut m = read(&e, "other", Consumer::Serves);
    m.start(&mut e, NOW).unwrap();
    m.own_write(&mut e, None, NOW).unwrap();
    m.tier(&mut e, None, 0.0, NOW).unwrap();
    m.reply(&mut e, None, 0.0, false, 0.0, NOW).unwrap();
    m.lease_reply(&mut e, 0.0, NOW).unwrap();
    check_fields(&m);
    let delay = m.last_step().unwrap().delay_ms();
    m.timer(&mut e, NOW + delay).unwrap();
    check_fields(&m);
    let stale = stored(&mut e, "other", 1.0);
    m.polled(
        &mut e,
        Some(stale.clone()),
        stale.len() as f64,
        false,
        false,
        0.0,
        NOW + 5_000.0,
    )
    .unwrap();
    check_fields(&m);
    // A singular-handler hit with its cache control, and a failed read.
    let parts = [7u32, 4, 3, 2, 1];
    let mut page = e
        .plan_incremental_entry(
            "/p",
            ValueKind::AppPage,
            ValueFlag::Rsc as u8,
            2,
            "_N_T_/p",
            60.0,
            3600.0,
            &parts,
            NOW,
        )
        .unwrap()
        .header();
    page.extend(std::iter::repeat_n(b'x', 17));
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
    m.start(&mut e, NOW).unwrap();
    check_fields(&m);
    m.refreshed(&mut e, NOW).unwrap();
    m.tier(&mut e, None, 0.0, NOW).unwrap();
    m.reply(
        &mut e,
        Some(page.clone()),
        page.len() as f64,
        false,
        0.0,
        NOW + 1.0,
    )
    .unwrap();
    let s = m.last_step().unwrap();
    assert_eq!(
        (s.kind(), s.served()),
        (ReadStepKind::Answer, Served::Fresh)
    );
    assert!(s.has_cache_control());
    check_fields(&m);
    m.reuse_incremental(
        &e,
        &key,
        None,
        false,
        "",
        f64::NAN,
        Consumer::Serves,
        false,
        NOW,
    )
    .unwrap();
    m.start(&mut e, NOW).unwrap();
    m.refreshed(&mut e, NOW).unwrap();
    m.tier(&mut e, None, 0.0, NOW).unwrap();
    m.failed(&mut e, f64::from(Failure::Timeout as u8), NOW)
        .unwrap();
    m.fallback(&mut e, None, 0.0, NOW).unwrap();
    check_fields(&m);
}

/// Steps `m` to its answer (no tier copy, `value` in Redis, leases answered `lease`): each
/// step's kind and fields area, as bits (NaN equals NaN).
fn to_answer(e: &mut Engine, m: &mut ReadMachine, value: Option<&[u8]>, lease: f64) -> Vec<u64> {
    let mut kind = m.start(e, NOW).unwrap();
    let mut seen = Vec::new();
    for _ in 0..16 {
        seen.push(kind as u64);
        // The tags' address is the machine's own buffer: what it holds is compared instead.
        let mut f = m.fields_area().to_vec();
        f[ReadField::TagsAt as usize] = 0.0;
        f[ReadField::PartsAt as usize] = 0.0;
        // The number a kept reply went out under counts the engine's commands: two runs of
        // the same read differ in it, and only in it.
        f[ReadField::Order as usize] = 0.0;
        seen.extend(f.iter().map(|x| x.to_bits()));
        seen.extend(m.tags_text().bytes().map(u64::from));
        kind = match kind {
            ReadStepKind::Answer => return seen,
            ReadStepKind::Refresh => m.refreshed(e, NOW).unwrap(),
            ReadStepKind::OwnWrite => m.own_write(e, None, NOW).unwrap(),
            ReadStepKind::PeekTier => m.tier(e, None, 0.0, NOW).unwrap(),
            ReadStepKind::Get => {
                let total = value.map_or(0, <[u8]>::len) as f64;
                m.reply(e, value.map(<[u8]>::to_vec), total, false, 0.0, NOW)
                    .unwrap()
            }
            ReadStepKind::Acquire => m.lease_reply(e, lease, NOW).unwrap(),
            other => panic!("unexpected step {other:?}"),
        };
    }
    panic!("no answer in 16 steps")
}

#[wasm_bindgen_test]
fn a_reused_machine_reads_as_a_new_one() {
    let mut e = engine();
    let v = stored(&mut e, "k", 60.0);
    // Used first for a read that won a lease and logged lines.
    let mut used = read(&e, "gone", Consumer::Caches);
    to_answer(&mut e, &mut used, None, 1.0);
    assert!(used.last_step().unwrap().holds_lease());
    assert!(!used.log().is_empty());
    let entry_key = used.entry_key();
    let key = js_sys::JsString::from("k");
    for remembered in [None, Some(read(&e, "k", Consumer::Serves).entry_key())] {
        let mut fresh = read(&e, "k", Consumer::Serves);
        let want = to_answer(&mut e, &mut fresh, Some(&v), 0.0);
        used.reuse_use_cache(
            &e,
            &uc(),
            &key,
            remembered,
            "_N_T_/x\0_N_T_/y",
            true,
            Consumer::Serves,
            NOW,
        )
        .unwrap();
        assert_ne!(used.entry_key(), entry_key);
        assert_eq!(used.entry_key(), fresh.entry_key());
        assert_eq!(to_answer(&mut e, &mut used, Some(&v), 0.0), want);
        assert_eq!((used.log(), used.error()), (fresh.log(), fresh.error()));
        assert!(used.renewal(&e).is_none());
        // One string, NUL-joined.
        assert_eq!(used.tags_text(), "a\0b");
    }
    // A refused key leaves the machine as it was.
    let lone = js_sys::JsString::from_char_code(&[u16::from(b'k'), 0xD800]);
    let before = used.entry_key();
    let err = used
        .reuse_use_cache(&e, &uc(), &lone, None, "", true, Consumer::Serves, NOW)
        .err()
        .unwrap();
    assert_eq!(code(err).as_deref(), Some("ERR_KEY_ILL_FORMED"));
    assert_eq!(used.entry_key(), before);
}

#[wasm_bindgen_test]
fn a_machine_reused_through_its_texts_area_reads_as_one_reused_with_strings() {
    let mut e = engine();
    let v = stored(&mut e, "k", 60.0);
    let mut used = read(&e, "gone", Consumer::Caches);
    to_answer(&mut e, &mut used, None, 1.0);
    let soft = "_N_T_/x\0_N_T_/y";
    let remembered = read(&e, "k", Consumer::Serves).entry_key();
    for entry in [String::new(), remembered] {
        let mut fresh = read(&e, "k", Consumer::Serves);
        let want = to_answer(&mut e, &mut fresh, Some(&v), 0.0);
        let texts = [entry.as_str(), soft, "k"].concat();
        used.texts_area()[..texts.len()].copy_from_slice(texts.as_bytes());
        let (entry_len, soft_len) = (entry.len() as u32, soft.len() as u32);
        used.reuse_use_cache_texts(
            &e,
            &uc(),
            entry_len,
            soft_len,
            1,
            true,
            Consumer::Serves,
            NOW,
        )
        .unwrap();
        assert_eq!(used.entry_key(), fresh.entry_key());
        assert_eq!(to_answer(&mut e, &mut used, Some(&v), 0.0), want);
        assert_eq!((used.log(), used.error()), (fresh.log(), fresh.error()));
    }
    // Lengths past the area, or bytes that are not UTF-8: refused, the machine as it was.
    let before = used.entry_key();
    let refused = |m: &mut ReadMachine, soft_len: u32, key_len: u32| {
        let err = m
            .reuse_use_cache_texts(&e, &uc(), 0, soft_len, key_len, true, Consumer::Serves, NOW)
            .err()
            .unwrap();
        assert_eq!(code(err).as_deref(), Some("ERR_KEY_ILL_FORMED"));
    };
    refused(&mut used, 2000, 49);
    used.texts_area()[..2].copy_from_slice(&[b'k', 0xFF]);
    refused(&mut used, 0, 2);
    assert_eq!(used.entry_key(), before);
}

/// `tierHitTexts` answers a hit whose header the index keeps as the read answers it, in the
/// same fields; anything else it declines, with the machine left as it was.
#[wasm_bindgen_test]
fn a_tier_hit_in_one_call_answers_what_the_read_answers() {
    let mut e = engine_debugging(false);
    let v = stored(&mut e, "k", 60.0);
    let len = v.len() as f64;
    let made = |e: &Engine| {
        let key = js_sys::JsString::from("k");
        let token = TOKEN.to_owned();
        ReadMachine::use_cache(e, &uc(), &key, "", false, Consumer::Serves, token, NOW).unwrap()
    };
    let mut first = made(&e);
    let entry = first.entry_key();
    e.memory_insert(&entry, len, NOW + 1e6, 1.0);
    // The first hit judges the bytes' header and keeps it in the index.
    let kind = first
        .start_with_tier(&mut e, Some(v.clone()), len, NOW)
        .unwrap();
    assert_eq!(kind, ReadStepKind::Answer);
    assert_eq!(first.fields_area()[ReadField::HeaderKept as usize], 1.0);
    let mut read = made(&e);
    read.start_with_tier(&mut e, None, len, NOW + 1.0).unwrap();
    let want = read.fields_area().to_vec();
    // Another key's read, answered: what a pooled machine is when it is lent.
    let mut used = made(&e);
    let texts = [entry.as_str(), "", "k"].concat();
    used.texts_area()[..texts.len()].copy_from_slice(texts.as_bytes());
    let entry_len = entry.len() as u32;
    assert!(used.tier_hit_texts(&mut e, entry_len, 0, 1, len, false, NOW + 1.0));
    let got = used.fields_area();
    for slot in [
        ReadField::Source,
        ReadField::Served,
        ReadField::Regenerates,
        ReadField::HoldsLease,
        ReadField::PayloadOffset,
        ReadField::Timestamp,
        ReadField::Revalidate,
        ReadField::Expire,
        ReadField::Stale,
        ReadField::HasLog,
        ReadField::HasError,
        ReadField::TagsLen,
        ReadField::Tier,
        ReadField::HeaderKept,
    ] {
        let i = slot as usize;
        assert_eq!(got[i], want[i], "{slot:?}");
    }
    assert_eq!(
        got[ReadField::Source as usize],
        f64::from(Source::Tier as u8)
    );
    assert_eq!(used.tags_text(), "a\0b");
    // Declined: no entry key, lengths past the area, bytes of another length, past revalidate.
    let before = used.entry_key();
    assert!(!used.tier_hit_texts(&mut e, 0, 0, 1, len, false, NOW + 1.0));
    assert!(!used.tier_hit_texts(&mut e, entry_len, 2048, 1, len, false, NOW + 1.0));
    assert!(!used.tier_hit_texts(&mut e, entry_len, 0, 1, len + 1.0, false, NOW + 1.0));
    assert!(!used.tier_hit_texts(&mut e, entry_len, 0, 1, len, false, NOW + 61_000.0));
    assert_eq!(used.entry_key(), before);
}

/// A stored fetch entry of `/p` tagged `t`, as `e` plans it: its header and 17 payload bytes.
fn fetch_page(e: &mut Engine) -> Vec<u8> {
    let parts = [7u32, 10];
    let mut page = e
        .plan_incremental_entry("/p", ValueKind::Fetch, 0, 0, "t", 60.0, 3600.0, &parts, NOW)
        .unwrap()
        .header();
    page.extend(std::iter::repeat_n(b'x', 17));
    page
}

#[wasm_bindgen_test]
fn a_singular_machine_reused_through_its_texts_area_reads_as_one_made_with_strings() {
    // Without leases: a miss then answers at once, with nothing held between the reads.
    let obj = js_sys::Object::new();
    js_sys::Reflect::set(&obj, &"prefix".into(), &"t".into()).unwrap();
    js_sys::Reflect::set(&obj, &"deployment".into(), &"d1".into()).unwrap();
    js_sys::Reflect::set(&obj, &"leases".into(), &false.into()).unwrap();
    let mut e = Engine::new(obj.into()).unwrap();
    e.mark_standalone();
    let page = fetch_page(&mut e);
    let made_for = |e: &Engine, key: &str, soft: &str| {
        ReadMachine::incremental(
            e,
            &js_sys::JsString::from(key),
            true,
            soft,
            30.0,
            Consumer::Serves,
            false,
            TOKEN.to_owned(),
            NOW,
        )
        .unwrap()
    };
    let made = |e: &Engine, soft: &str| made_for(e, "/p", soft);
    // Another key's read, with the lease it won: what a pooled machine is before its reuse.
    let mut used = made_for(&e, "/gone", "");
    to_answer(&mut e, &mut used, None, 1.0);
    let remembered = made(&e, "").entry_key();
    // A revalidated soft tag makes the FETCH read a miss: the soft tags are read, not dropped.
    e.record_revalidation(
        "_N_T_/gone",
        RevalidationMode::Expire,
        f64::NAN,
        NOW,
        f64::NAN,
        false,
    )
    .unwrap();
    for soft in ["_N_T_/x\0_N_T_/y", "_N_T_/gone"] {
        for entry in [String::new(), remembered.clone()] {
            let mut fresh = made(&e, soft);
            let want = to_answer(&mut e, &mut fresh, Some(&page), 0.0);
            let texts = [entry.as_str(), soft, "/p"].concat();
            used.texts_area()[..texts.len()].copy_from_slice(texts.as_bytes());
            let (entry_len, soft_len) = (entry.len() as u32, soft.len() as u32);
            // A tier copy offered to a read that does not ask for the tier first (this
            // engine pulls its tag state: a refresh first) starts nothing.
            let started = used
                .reuse_incremental_texts(
                    &mut e,
                    entry_len,
                    soft_len,
                    2,
                    true,
                    30.0,
                    Consumer::Serves,
                    false,
                    page.len() as f64,
                    NOW,
                )
                .unwrap();
            assert_eq!(started, None);
            assert_eq!(used.fields_area()[ReadField::AsksTier as usize], 0.0);
            assert_eq!(used.entry_key(), fresh.entry_key());
            assert_eq!(to_answer(&mut e, &mut used, Some(&page), 0.0), want);
            assert_eq!((used.log(), used.error()), (fresh.log(), fresh.error()));
            let served = used.last_step().unwrap().served();
            assert_eq!(served == Served::Miss, soft == "_N_T_/gone", "{soft}");
        }
    }
    // Lengths past the area, or bytes that are not UTF-8: refused, the machine as it was.
    let before = used.entry_key();
    let mut refused = |m: &mut ReadMachine, soft_len: u32, key_len: u32| {
        let err = m
            .reuse_incremental_texts(
                &mut e,
                0,
                soft_len,
                key_len,
                true,
                30.0,
                Consumer::Serves,
                false,
                0.0,
                NOW,
            )
            .err()
            .unwrap();
        assert_eq!(code(err).as_deref(), Some("ERR_KEY_ILL_FORMED"));
    };
    refused(&mut used, 2000, 49);
    used.texts_area()[..2].copy_from_slice(&[b'/', 0xFF]);
    refused(&mut used, 0, 2);
    assert_eq!(used.entry_key(), before);
}

/// Netstrings, as a tag pull's reply carries them.
fn netstrings(items: &[&str]) -> Vec<u8> {
    items
        .iter()
        .flat_map(|i| format!("{}:{i},", i.len()).into_bytes())
        .collect()
}

/// A singular read reused through the texts area with a tier copy's length (`tierLen`) starts
/// itself when it asks for the tier first (following by push, caught up): the same step and
/// fields as the reuse then `startWithTier` with the prefix left out, in two calls.
#[wasm_bindgen_test]
fn a_singular_reuse_given_a_tier_copy_starts_the_read_as_start_with_tier_would() {
    let mut e = engine_debugging(false);
    e.follow_tags_by_push(1000.0).unwrap();
    e.tag_channel_up();
    e.confirm_plain_redis();
    e.plan_tag_pull(NOW - 10.0);
    // The first pull of epoch E at version 1, after page write 1: the mirror is synced.
    let reply = netstrings(&["E", "1", "v1", "1", "1", "w1", "0"]);
    e.apply_refresh(&reply, NOW - 9.0).unwrap();
    assert!(e.tags_caught_up(NOW));
    let page = fetch_page(&mut e);
    let made = |e: &Engine| {
        let key = js_sys::JsString::from("/p");
        let serves = Consumer::Serves;
        let token = TOKEN.to_owned();
        ReadMachine::incremental(e, &key, false, "", f64::NAN, serves, false, token, NOW).unwrap()
    };
    let (mut one, mut two) = (made(&e), made(&e));
    let entry = one.entry_key();
    e.memory_insert(&entry, page.len() as f64, NOW + 60_000.0, 0.0);
    let total = page.len() as f64;
    let texts = [entry.as_str(), "/p"].concat();
    let reuse = |m: &mut ReadMachine, e: &mut Engine, tier_len: f64| {
        m.texts_area()[..texts.len()].copy_from_slice(texts.as_bytes());
        let entry_len = entry.len() as u32;
        let serves = Consumer::Serves;
        m.reuse_incremental_texts(
            e,
            entry_len,
            0,
            2,
            false,
            f64::NAN,
            serves,
            false,
            tier_len,
            NOW,
        )
        .unwrap()
    };
    // Without a copy's length nothing is started; the host starts the read.
    assert_eq!(reuse(&mut two, &mut e, 0.0), None);
    assert_eq!(two.fields_area()[ReadField::AsksTier as usize], 1.0);
    let want = two.start_with_tier(&mut e, None, total, NOW).unwrap();
    let got = reuse(&mut one, &mut e, total);
    assert_eq!(got, Some(want));
    let took = |m: &ReadMachine| m.fields_area()[ReadField::TookTier as usize];
    assert_eq!((took(&one), took(&two)), (1.0, 1.0));
    let (a, b) = (one.fields_area(), two.fields_area());
    for i in 0..a.len() {
        // The addresses of each machine's own buffers differ, and only they.
        if i == ReadField::TagsAt as usize || i == ReadField::PartsAt as usize {
            continue;
        }
        assert!(a[i] == b[i] || (a[i].is_nan() && b[i].is_nan()), "slot {i}");
    }
}

#[wasm_bindgen_test]
fn tier_bytes_offered_up_front_are_taken_when_the_tier_is_asked_first() {
    let mut e = engine();
    let v = stored(&mut e, "k", 60.0);
    let took = |m: &ReadMachine| m.fields_area()[ReadField::TookTier as usize];
    // The same answer as `start` then `tier`, in one call.
    let key = js_sys::JsString::from("k");
    let mut two = read(&e, "k", Consumer::Serves);
    let mut one = read(&e, "k", Consumer::Serves);
    // The tier's index holds the key (as after a read kept it).
    e.memory_insert(&one.entry_key(), v.len() as f64, NOW + 60_000.0, 0.0);
    two.reuse_use_cache(&e, &uc(), &key, None, "", false, Consumer::Serves, NOW)
        .unwrap();
    two.start(&mut e, NOW).unwrap();
    two.tier(&mut e, Some(v.clone()), v.len() as f64, NOW)
        .unwrap();
    assert_eq!(two.last_step().unwrap().kind(), ReadStepKind::Answer);
    // The machine says beforehand whether its start asks for the tier (`AsksTier`).
    let asks = |m: &ReadMachine| m.fields_area()[ReadField::AsksTier as usize];
    assert_eq!(asks(&one), 0.0, "a write in flight is asked for first");
    // A write in flight: the own write is asked first, the offer is void.
    assert_eq!(
        one.start_with_tier(&mut e, Some(v.clone()), v.len() as f64, NOW)
            .unwrap(),
        ReadStepKind::OwnWrite
    );
    assert_eq!(took(&one), 0.0);
    one.reuse_use_cache(&e, &uc(), &key, None, "", false, Consumer::Serves, NOW)
        .unwrap();
    assert_eq!(asks(&one), 1.0);
    assert_eq!(
        one.start_with_tier(&mut e, Some(v.clone()), v.len() as f64, NOW)
            .unwrap(),
        ReadStepKind::Answer
    );
    assert_eq!(took(&one), 1.0);
    let (a, b) = (one.fields_area(), two.fields_area());
    // Up to the slots only `startWithTier` and the tags' buffer make differ.
    let slots = ReadField::TookTier as usize;
    assert_eq!(a[..slots].len(), b[..slots].len());
    for i in 0..slots {
        assert!(a[i] == b[i] || (a[i].is_nan() && b[i].is_nan()), "slot {i}");
    }
    assert_eq!(one.tags_text(), "a\0b");
    // None offered: straight to the read; the next call clears the slot.
    one.reuse_use_cache(&e, &uc(), &key, None, "", false, Consumer::Serves, NOW)
        .unwrap();
    assert_eq!(
        one.start_with_tier(&mut e, None, 0.0, NOW).unwrap(),
        ReadStepKind::Get
    );
    assert_eq!(took(&one), 1.0);
    one.reply(&mut e, None, 0.0, false, 0.0, NOW).unwrap();
    assert_eq!(took(&one), 0.0);
    // A refresh first: the offer is void, the tier asked for later.
    let config = js_sys::Object::new();
    js_sys::Reflect::set(&config, &"prefix".into(), &"t".into()).unwrap();
    let mut fresh = Engine::new(config.into()).unwrap();
    let mut m = read(&fresh, "k", Consumer::Serves);
    m.reuse_use_cache(&fresh, &uc(), &key, None, "", false, Consumer::Serves, NOW)
        .unwrap();
    assert_eq!(asks(&m), 0.0, "never synced: a refresh first");
    // Pulling the tag state (no push: a Redis Cluster's), a singular-handler read refreshes
    // first: nothing to offer.
    let inc = ReadMachine::incremental(
        &e,
        &key,
        false,
        "",
        f64::NAN,
        Consumer::Serves,
        false,
        "t0".to_owned(),
        NOW,
    )
    .unwrap();
    assert_eq!(asks(&inc), 0.0);
    assert_eq!(
        m.start_with_tier(&mut fresh, Some(v.clone()), v.len() as f64, NOW)
            .unwrap(),
        ReadStepKind::Refresh
    );
    assert_eq!(took(&m), 0.0);
}

#[wasm_bindgen_test]
fn a_store_s_bytes_offered_up_front_are_the_get_s_reply_while_its_index_holds_them() {
    let mut e = engine();
    let v = stored(&mut e, "k", 60.0);
    let took = |m: &ReadMachine| m.fields_area()[ReadField::TookTier as usize];
    let key = js_sys::JsString::from("k");
    let reused = |e: &Engine, m: &mut ReadMachine| {
        m.reuse_use_cache(e, &uc(), &key, None, "", false, Consumer::Serves, NOW)
            .unwrap();
    };
    // The embedded store's index holds the entry (as after its write).
    let mut three = read(&e, "k", Consumer::Serves);
    let entry_key = three.entry_key();
    e.memory_insert(&entry_key, v.len() as f64, NOW + 60_000.0, 0.0);
    // As a host answers the `Get` itself: the start, the index asked, the reply.
    reused(&e, &mut three);
    assert_eq!(
        three.start_with_tier(&mut e, None, 0.0, NOW).unwrap(),
        ReadStepKind::Get
    );
    assert!(e.memory_touch(&entry_key, NOW));
    three
        .reply(&mut e, Some(v.clone()), v.len() as f64, false, 0.0, NOW)
        .unwrap();
    // The same answer in one call.
    let mut one = read(&e, "k", Consumer::Serves);
    reused(&e, &mut one);
    assert_eq!(
        one.start_with_held(&mut e, Some(v.clone()), v.len() as f64, NOW)
            .unwrap(),
        ReadStepKind::Answer
    );
    assert_eq!(took(&one), 2.0);
    let (a, b) = (one.fields_area(), three.fields_area());
    let slots = ReadField::TookTier as usize;
    for i in 0..slots {
        assert!(a[i] == b[i] || (a[i].is_nan() && b[i].is_nan()), "slot {i}");
    }
    assert_eq!(
        a[ReadField::Source as usize],
        f64::from(Source::Redis as u8)
    );
    assert_eq!(one.tags_text(), "a\0b");
    // Gone from the index (evicted, past its lifetime): the bytes are not taken, the host
    // answers the `Get` (and drops them, as `memoryTouch` tells it).
    assert!(e.memory_remove(&entry_key));
    reused(&e, &mut one);
    assert_eq!(
        one.start_with_held(&mut e, Some(v.clone()), v.len() as f64, NOW)
            .unwrap(),
        ReadStepKind::Get
    );
    assert_eq!(took(&one), 1.0);
    // Nothing held then: a miss, which asks for the lease.
    assert_eq!(
        one.reply(&mut e, None, 0.0, false, 0.0, NOW).unwrap(),
        ReadStepKind::Acquire
    );
    assert_eq!(took(&one), 0.0);
    // A refresh first: nothing is taken, the store is read after it.
    let config = js_sys::Object::new();
    js_sys::Reflect::set(&config, &"prefix".into(), &"t".into()).unwrap();
    let mut fresh = Engine::new(config.into()).unwrap();
    let mut m = read(&fresh, "k", Consumer::Serves);
    reused(&fresh, &mut m);
    assert_eq!(
        m.start_with_held(&mut fresh, Some(v.clone()), v.len() as f64, NOW)
            .unwrap(),
        ReadStepKind::Refresh
    );
    assert_eq!(took(&m), 0.0);
}

#[wasm_bindgen_test]
fn a_copy_whose_header_the_index_keeps_is_offered_without_its_prefix() {
    let mut e = engine();
    let v = stored(&mut e, "k", 60.0);
    let len = v.len() as f64;
    let field = |m: &ReadMachine, f: ReadField| m.fields_area()[f as usize];
    let key = js_sys::JsString::from("k");
    let reused = |e: &Engine, m: &mut ReadMachine| {
        m.reuse_use_cache(e, &uc(), &key, None, "", false, Consumer::Serves, NOW)
            .unwrap();
    };
    let mut m = read(&e, "k", Consumer::Serves);
    let entry_key = m.entry_key();
    e.memory_insert(&entry_key, len, NOW + 60_000.0, 0.0);
    for prefix in [Some(v.clone()), None] {
        reused(&e, &mut m);
        let kind = m.start_with_tier(&mut e, prefix, len, NOW).unwrap();
        assert_eq!(kind, ReadStepKind::Answer);
        assert_eq!(field(&m, ReadField::TookTier), 1.0);
        assert_eq!(field(&m, ReadField::HeaderKept), 1.0);
        assert_eq!(m.tags_text(), "a\0b");
    }
    // The copy replaced (by an insert of the same length): the prefix is asked for, and the
    // new copy's header kept.
    e.memory_insert(&entry_key, len, NOW + 60_000.0, 0.0);
    reused(&e, &mut m);
    assert_eq!(
        m.start_with_tier(&mut e, None, len, NOW).unwrap(),
        ReadStepKind::NeedMore
    );
    assert_eq!(field(&m, ReadField::Need), len.min(4096.0));
    assert_eq!(field(&m, ReadField::HeaderKept), 0.0);
    let kind = m.tier(&mut e, Some(v.clone()), len, NOW).unwrap();
    assert_eq!(kind, ReadStepKind::Answer);
    assert_eq!(field(&m, ReadField::HeaderKept), 1.0);
    // Asked for later (`PeekTier` after the start), the same way.
    let mut later = read(&e, "k", Consumer::Serves);
    assert_eq!(later.start(&mut e, NOW).unwrap(), ReadStepKind::OwnWrite);
    assert_eq!(
        later.own_write(&mut e, None, NOW).unwrap(),
        ReadStepKind::PeekTier
    );
    assert_eq!(
        later.tier(&mut e, None, len, NOW).unwrap(),
        ReadStepKind::Answer
    );
    assert_eq!(field(&later, ReadField::HeaderKept), 1.0);
    assert_eq!(later.tags_text(), "a\0b");
    // The embedded store's bytes, the same way.
    e.memory_insert(&entry_key, len, NOW + 60_000.0, 0.0);
    let mut held = read(&e, "k", Consumer::Serves);
    for (prefix, kept) in [(None, false), (Some(v.clone()), true), (None, true)] {
        reused(&e, &mut held);
        let kind = held
            .start_with_held(&mut e, prefix.clone(), len, NOW)
            .unwrap();
        let want = if prefix.is_none() && !kept {
            ReadStepKind::NeedMore
        } else {
            ReadStepKind::Answer
        };
        assert_eq!((kind, field(&held, ReadField::TookTier)), (want, 2.0));
        assert_eq!(
            field(&held, ReadField::HeaderKept),
            f64::from(u8::from(kept))
        );
    }
}

#[wasm_bindgen_test]
fn a_reused_machine_requests_leases_with_tokens_of_its_own() {
    let mut e = engine();
    let key = js_sys::JsString::from("k");
    let mut m = read(&e, "k", Consumer::Serves);
    let mut tokens = Vec::new();
    for _ in 0..3 {
        m.start(&mut e, NOW).unwrap();
        m.own_write(&mut e, None, NOW).unwrap();
        m.tier(&mut e, None, 0.0, NOW).unwrap();
        m.reply(&mut e, None, 0.0, false, 0.0, NOW).unwrap();
        let joined = m.last_step().unwrap().argv();
        let argv: Vec<&str> = joined.split('\0').collect();
        assert_eq!(argv[0], "EVALSHA");
        tokens.push(argv[5].to_owned());
        // Another instance holds the lease: no renewal here, and the read ends as a wait.
        m.lease_reply(&mut e, 0.0, NOW).unwrap();
        m.reuse_use_cache(&e, &uc(), &key, None, "", true, Consumer::Serves, NOW)
            .unwrap();
    }
    assert_eq!(
        tokens,
        vec![TOKEN.to_owned(), format!("{TOKEN}.1"), format!("{TOKEN}.2")]
    );
}
