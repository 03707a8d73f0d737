//! The engine with its incremental part: tests moved from `incremental.rs`, which does not know the engine.

use crate::config::Config;
use crate::engine::Engine;
use crate::envelope::EntryKind;
use crate::incremental::*;
use crate::incremental::{Descriptor, IncrementalSet, IncrementalVerdict, ValueKind};
use crate::keys::Interface;
use crate::tags::Revalidation;
use crate::time::Millis;
use crate::write::SetInput;
use proptest::prelude::*;

const NOW: f64 = 1_795_690_530_000.0;

/// An engine whose tag mirror is complete as it is (no shared state to wait for).
fn engine() -> Engine {
    let mut e = Engine::new(Config {
        prefix: "fc".into(),
        deployment: "d1".into(),
        ..Config::default()
    })
    .unwrap();
    e.mark_standalone();
    e
}

fn desc(kind: ValueKind) -> Descriptor {
    Descriptor {
        kind,
        has_rsc: false,
        segments: 0,
        revalidate_false: false,
        no_expire: false,
        no_cache_control: false,
    }
}

/// Writes a value with `parts` of the given lengths (filled with their index) and returns
/// the stored bytes.
fn store(e: &Engine, key: &str, set: &IncrementalSet<'_>) -> Vec<u8> {
    let plan = e.plan_incremental_set(key, set).unwrap();
    let mut v = plan.header;
    for (i, len) in set.parts.iter().enumerate() {
        v.extend(std::iter::repeat(i as u8).take(*len as usize));
    }
    v
}

fn set<'a>(d: Descriptor, tags: &'a [&'a str], parts: &'a [u32]) -> IncrementalSet<'a> {
    IncrementalSet {
        desc: d,
        revalidate: 60.0,
        expire: 3600.0,
        tags,
        parts,
        created: Millis(NOW),
        made: None,
        now: Millis(NOW),
    }
}

fn serve(v: IncrementalVerdict) -> Serve {
    match v {
        IncrementalVerdict::Serve(s) => s,
        other => panic!("expected Serve, got {other:?}"),
    }
}

#[test]
fn write_refuses_parts_that_do_not_match() {
    let e = engine();
    let err = e
        .plan_incremental_set("k", &set(desc(ValueKind::AppRoute), &[], &[1]))
        .unwrap_err();
    assert_eq!(err.code(), "ERR_LAYOUT_PARTS");
    let small = Engine::new(Config {
        max_entry_bytes: 100,
        ..Config::default()
    })
    .unwrap();
    let err = small
        .plan_incremental_set("k", &set(desc(ValueKind::AppRoute), &[], &[1, 100]))
        .unwrap_err();
    assert_eq!(err.code(), "ERR_PLAN_TOO_LARGE");
}

#[test]
fn fresh_entry_returns_its_own_cache_control() {
    let e = engine();
    let v = store(&e, "k", &set(desc(ValueKind::AppRoute), &["t"], &[10, 5]));
    let (verdict, h) = e.inspect_incremental("k", &v, v.len(), &[], f64::NAN, Millis(NOW + 1.0));
    let s = serve(verdict);
    // Fresh: shown as read now (incremental::fresh_last_modified).
    assert_eq!(s.last_modified, NOW + 1.0);
    assert_eq!((s.revalidate, s.expire), (Some(60.0), Some(3600.0)));
    assert!(s.cache_control && !s.stale);
    let h = h.unwrap();
    assert_eq!(h.meta.parts, vec![10, 5]);
    assert_eq!(h.meta.tags, vec!["t".to_owned()]);
    // revalidate false and no expire come back as such.
    let mut d = desc(ValueKind::AppPage);
    d.revalidate_false = true;
    d.no_expire = true;
    let v = store(&e, "p", &set(d, &[], &[2, 3]));
    let s = serve(
        e.inspect_incremental("p", &v, v.len(), &[], f64::NAN, Millis(NOW))
            .0,
    );
    assert_eq!((s.revalidate, s.expire), (None, None));
    // FETCH: no cacheControl; the value's revalidate is kept for the stale decision.
    let mut d = desc(ValueKind::Fetch);
    d.no_cache_control = true;
    let v = store(&e, "f", &set(d, &["x"], &[2, 3]));
    let s = serve(
        e.inspect_incremental("f", &v, v.len(), &[], f64::NAN, Millis(NOW))
            .0,
    );
    assert!(!s.cache_control);
    assert_eq!(s.expire, None);
}

#[test]
fn tag_states_decide_miss_stale_or_fresh() {
    let mut e = engine();
    let v = store(
        &e,
        "k",
        &set(desc(ValueKind::AppPage), &["a", "b"], &[2, 3]),
    );
    let at = |e: &Engine, soft: &[&str], now: f64| {
        e.inspect_incremental("k", &v, v.len(), soft, f64::NAN, Millis(now))
            .0
    };
    let stale = Revalidation::Stale {
        expire_seconds: Some(31_536_000.0),
    };
    e.plan_tag_update(&["a"], &stale, Millis(NOW + 100.0), "ep")
        .unwrap();
    let s = serve(at(&e, &[], NOW + 200.0));
    assert!(s.stale);
    // Next will call it stale (revalidate window passed) but not expired.
    assert!(s.last_modified + 60_000.0 < NOW + 200.0);
    assert!(s.last_modified + 3_600_000.0 >= NOW + 200.0);
    assert_eq!(s.revalidate, Some(60.0));
    // A soft tag (revalidatePath) expires it.
    e.plan_tag_update(
        &["_N_T_/p"],
        &Revalidation::Expire,
        Millis(NOW + 300.0),
        "ep",
    )
    .unwrap();
    assert_eq!(
        at(&e, &["_N_T_/p"], NOW + 400.0),
        IncrementalVerdict::Expired
    );
    // Past its own expire.
    assert_eq!(at(&e, &[], NOW + 3_600_001.0), IncrementalVerdict::Expired);
    assert_eq!(
        e.inspect_incremental("other", &v, v.len(), &[], f64::NAN, Millis(NOW))
            .0,
        IncrementalVerdict::KeyMismatch
    );
    // A short prefix asks for more, up to the whole header (not the parts).
    let mut prefix = 20;
    for _ in 0..4 {
        match e
            .inspect_incremental("k", &v[..prefix], v.len(), &[], f64::NAN, Millis(NOW))
            .0
        {
            IncrementalVerdict::NeedMore(n) => prefix = n,
            other => panic!("expected NeedMore, got {other:?}"),
        }
        if prefix == v.len() - 5 {
            break;
        }
    }
    assert_eq!(prefix, v.len() - 5);
    assert_eq!(
        e.inspect_incremental("k", b"garbage!", 8, &[], f64::NAN, Millis(NOW))
            .0,
        IncrementalVerdict::Corrupt("ERR_DECODE_BAD_MAGIC")
    );
}

#[test]
fn foreign_layouts_are_corrupt() {
    let e = engine();
    // A 'use cache' entry stored under the same key space is not ours.
    let plan = e
        .plan_set(
            &Interface::UseCache("default"),
            "k",
            SetInput {
                kind: EntryKind::UseCache,
                timestamp: Millis(NOW),
                made_at: None,
                revalidate: 1.0,
                expire: 10.0,
                stale: 0.0,
                tags: &[],
                meta: &[],
                parts: &[0],
                now: Millis(NOW),
            },
        )
        .unwrap();
    let v = plan.header;
    assert_eq!(
        e.inspect_incremental("k", &v, v.len(), &[], f64::NAN, Millis(NOW))
            .0,
        IncrementalVerdict::Corrupt("ERR_LAYOUT_ENTRY_KIND")
    );
    // A descriptor claiming more parts than stored.
    let plan = e
        .plan_set(
            &Interface::Incremental,
            "k",
            SetInput {
                kind: EntryKind::Incremental,
                timestamp: Millis(NOW),
                made_at: None,
                revalidate: 1.0,
                expire: 10.0,
                stale: 0.0,
                tags: &[],
                meta: &[1, 1, 1, 0, 2, 0],
                parts: &[0, 0],
                now: Millis(NOW),
            },
        )
        .unwrap();
    let v = plan.header;
    assert_eq!(
        e.inspect_incremental("k", &v, v.len(), &[], f64::NAN, Millis(NOW))
            .0,
        IncrementalVerdict::Corrupt("ERR_LAYOUT_PARTS")
    );
}

#[test]
fn ttl_from_expire_or_default() {
    let e = Engine::new(Config {
        default_ttl_seconds: 120.0,
        ..Config::default()
    })
    .unwrap();
    let ttl = |d: Descriptor, revalidate: f64, expire: f64| {
        let mut s = set(d, &[], &[1, 1]);
        s.revalidate = revalidate;
        s.expire = expire;
        e.plan_incremental_set("k", &s).unwrap().ttl_ms
    };
    let route = desc(ValueKind::AppRoute);
    assert_eq!(ttl(route, 60.0, 3600.0), Some(3_600_000));
    let mut no_limit = route;
    no_limit.revalidate_false = true;
    no_limit.no_expire = true;
    assert_eq!(ttl(no_limit, 0.0, 0.0), Some(120_000));
    let mut no_expire = route;
    no_expire.no_expire = true;
    // A revalidate limit but no expire: kept as long as allowed (30 days) for SWR.
    assert_eq!(ttl(no_expire, 60.0, 0.0), Some(2_592_000_000));
    assert_eq!(ttl(route, 0.0, 3600.0), None);
}

#[test]
fn same_revalidation_is_recorded_once() {
    let mut e = engine();
    let stale = Revalidation::Stale {
        expire_seconds: Some(3600.0),
    };
    // `updateTags` records it in turn 7, then the singular handler's `revalidateTag` asks.
    let paired = |e: &mut Engine, tags: &[&str], rev: &Revalidation| {
        e.plan_tag_update(tags, rev, Millis(NOW), "ep").unwrap();
        e.revalidation_paired(7);
    };
    assert!(!e.revalidation_recorded(&["a"], &stale, Millis(NOW), 7));
    paired(&mut e, &["a", "b"], &stale);
    // Another tag, other durations or another turn: a new event.
    assert!(!e.revalidation_recorded(&["a", "c"], &stale, Millis(NOW + 0.3), 7));
    assert!(!e.revalidation_recorded(&["a"], &Revalidation::Expire, Millis(NOW + 0.3), 7));
    let longer = Revalidation::Stale {
        expire_seconds: Some(7200.0),
    };
    // Other durations are another event, even when the records already cover them.
    assert!(!e.revalidation_recorded(&["a"], &longer, Millis(NOW + 0.3), 7));
    let shorter = Revalidation::Stale {
        expire_seconds: Some(60.0),
    };
    assert!(!e.revalidation_recorded(&["a"], &shorter, Millis(NOW + 0.3), 7));
    assert!(!e.revalidation_recorded(&["a"], &stale, Millis(NOW + 0.3), 8));
    assert!(!e.revalidation_recorded(&[], &stale, Millis(NOW), 7));
    // The same event, once: a third report is another revalidation, and written.
    assert!(e.revalidation_recorded(&["a", "b"], &stale, Millis(NOW + 0.3), 7));
    assert!(!e.revalidation_recorded(&["a"], &stale, Millis(NOW + 0.4), 7));
    paired(&mut e, &["x"], &Revalidation::Expire);
    assert!(e.revalidation_recorded(&["x"], &Revalidation::Expire, Millis(NOW + 1.0), 7));
    // Immediate expiry also covers a profile revalidation with expire 0 issued with it.
    paired(&mut e, &["x"], &Revalidation::Expire);
    let zero = Revalidation::Stale {
        expire_seconds: Some(0.0),
    };
    assert!(!e.revalidation_recorded(&["x"], &zero, Millis(NOW + 1.0), 7));
    // An immediate expiry followed within the window by a profile revalidation of the same
    // tag: two events. An entry created between them must be judged against the second,
    // so the second is written.
    paired(&mut e, &["y"], &zero);
    let max = Revalidation::Stale {
        expire_seconds: Some(31_536_000.0),
    };
    assert!(!e.revalidation_recorded(&["y"], &max, Millis(NOW + 5.0), 7));
}

/// The singular handler's report comes in the same turn as `updateTags`' however long that
/// turn's synchronous work took: the first revalidation in a fresh process runs code for the
/// first time and has taken over 10 ms between the two. And the paired record's time may be
/// ahead of the report's clock: `updateTags` stamps at the wall clock when the process's is
/// behind (docs/decisions/0036).
#[test]
fn a_second_report_in_the_same_turn_is_the_same_event_however_late() {
    let max = Revalidation::Stale {
        expire_seconds: Some(31_536_000.0),
    };
    for (stamped, asked) in [(NOW, NOW + 250.0), (NOW + 5_000.0, NOW)] {
        let mut e = engine();
        e.plan_tag_update(&["t"], &max, Millis(stamped), "ep")
            .unwrap();
        e.revalidation_paired(3);
        assert!(
            e.revalidation_recorded(&["t"], &max, Millis(asked), 3),
            "stamped {stamped}, asked at {asked}"
        );
    }
}

/// With only the singular handler (no `updateTags`), each `revalidateTag` is its
/// own event, however close: the first must not make the second look recorded.
#[test]
fn a_revalidation_the_singular_handler_recorded_is_never_taken_for_a_second_report() {
    let mut e = engine();
    e.plan_tag_update(&["t"], &Revalidation::Expire, Millis(NOW), "ep")
        .unwrap();
    assert!(!e.revalidation_recorded(&["t"], &Revalidation::Expire, Millis(NOW + 0.5), 1));
    assert!(!e.revalidation_recorded(&["t"], &Revalidation::Expire, Millis(NOW + 0.5), 0));
}

fn engine_on(release: &str) -> Engine {
    let (num, pre) = release
        .split_once('-')
        .map_or((release, false), |(n, _)| (n, true));
    let v: Vec<u32> = num.split('.').map(|p| p.parse().unwrap()).collect();
    let mut e = Engine::new(Config {
        prefix: "fc".into(),
        deployment: "d1".into(),
        next_release: Some(crate::NextRelease::new(v[0], v[1], v[2], pre)),
        ..Config::default()
    })
    .unwrap();
    e.mark_standalone();
    e
}

#[test]
fn before_16_4_a_soft_revalidation_of_a_page_is_a_blocking_regeneration() {
    let stale = Revalidation::Stale {
        expire_seconds: Some(31_536_000.0),
    };
    let mut static_page = desc(ValueKind::AppPage);
    static_page.revalidate_false = true;
    static_page.no_expire = true;
    for (release, served_stale) in [("16.0.11", false), ("16.3.8", false), ("16.4.6", true)] {
        let mut e = engine_on(release);
        let v = store(&e, "p", &set(static_page, &["t"], &[2, 3]));
        e.plan_tag_update(&["t"], &stale, Millis(NOW + 100.0), "ep")
            .unwrap();
        let (verdict, _) =
            e.inspect_incremental("p", &v, v.len(), &[], f64::NAN, Millis(NOW + 200.0));
        match verdict {
            IncrementalVerdict::Serve(s) => {
                assert!(served_stale && s.stale, "{release}");
                assert_eq!(s.revalidate, Some(1.0));
            }
            IncrementalVerdict::Expired => assert!(!served_stale, "{release}"),
            other => panic!("{release}: {other:?}"),
        }
    }
    // A page with a time limit neither: this Next judges `lastModified` against this
    // process's own last write of the route, which may carry a longer `revalidate` than the
    // stored entry (another instance wrote it since), and would take the old page for fresh.
    let mut e = engine_on("16.3.8");
    let v = store(&e, "q", &set(desc(ValueKind::AppPage), &["t"], &[2, 3]));
    e.plan_tag_update(&["t"], &stale, Millis(NOW + 100.0), "ep")
        .unwrap();
    assert_eq!(
        e.inspect_incremental("q", &v, v.len(), &[], f64::NAN, Millis(NOW + 200.0))
            .0,
        IncrementalVerdict::Expired
    );
    // On 16.4 the same entry is served stale once, with the entry's own `revalidate`.
    let mut e = engine_on("16.4.0");
    let v = store(&e, "q", &set(desc(ValueKind::AppPage), &["t"], &[2, 3]));
    e.plan_tag_update(&["t"], &stale, Millis(NOW + 100.0), "ep")
        .unwrap();
    let s = serve(
        e.inspect_incremental("q", &v, v.len(), &[], f64::NAN, Millis(NOW + 200.0))
            .0,
    );
    assert!(s.stale && s.last_modified + 60_000.0 < NOW + 200.0);
    // FETCH is judged by its own revalidate on every release: unchanged.
    let mut d = desc(ValueKind::Fetch);
    d.no_cache_control = true;
    d.revalidate_false = true;
    let v = store(&e, "f", &set(d, &["t"], &[2, 3]));
    assert_eq!(
        e.inspect_incremental("f", &v, v.len(), &[], f64::NAN, Millis(NOW + 200.0))
            .0,
        IncrementalVerdict::Expired,
        "a FETCH without a time limit cannot be stale on any release"
    );
}

#[test]
fn before_16_4_fresh_entries_keep_their_own_lifetime() {
    let e = engine_on("16.2.12");
    let v = store(&e, "r", &set(desc(ValueKind::AppRoute), &[], &[2, 3]));
    let at = |now: f64| {
        serve(
            e.inspect_incremental("r", &v, v.len(), &[], f64::NAN, Millis(now))
                .0,
        )
    };
    // Inside its revalidate (60 s): shown as written now, so Next's 1 s guess for a route
    // it does not know never calls it stale.
    let s = at(NOW + 30_000.0);
    assert_eq!(s.last_modified, NOW + 30_000.0);
    assert!(!s.stale);
    // Past it: its creation time, stale under any window Next may use up to 60 s.
    let s = at(NOW + 61_000.0);
    assert_eq!(s.last_modified, NOW);
    // FETCH, judged with the value's (or the request's) revalidate on every release: the same
    // inside it, its creation time past it.
    let mut d = desc(ValueKind::Fetch);
    d.no_cache_control = true;
    let v = store(&e, "f", &set(d, &[], &[2, 3]));
    let fetch_at = |now: f64, request: f64| {
        serve(
            e.inspect_incremental("f", &v, v.len(), &[], request, Millis(now))
                .0,
        )
        .last_modified
    };
    assert_eq!(fetch_at(NOW + 30_000.0, f64::NAN), NOW + 30_000.0);
    assert_eq!(
        fetch_at(NOW + 30_000.0, 10.0),
        NOW,
        "past the request's own"
    );
    // From 16.4 on (and when the release is unknown) the same (fresh_last_modified).
    let e = engine();
    let v = store(&e, "r", &set(desc(ValueKind::AppRoute), &[], &[2, 3]));
    let s = serve(
        e.inspect_incremental("r", &v, v.len(), &[], f64::NAN, Millis(NOW + 30_000.0))
            .0,
    );
    assert_eq!(s.last_modified, NOW + 30_000.0);
}

fn arb_desc() -> impl Strategy<Value = Descriptor> {
    (0u8..7, any::<bool>(), 0u16..20, any::<[bool; 3]>()).prop_map(|(k, rsc, segs, f)| {
        let kind = ValueKind::from_u8(k).unwrap();
        let page = kind == ValueKind::AppPage;
        Descriptor {
            kind,
            has_rsc: page && rsc,
            segments: if page { segs } else { 0 },
            revalidate_false: f[0],
            no_expire: f[1],
            no_cache_control: f[2],
        }
    })
}

proptest! {
    /// Every shape and every part layout survives write and read exactly, and the
    /// decision on a fresh entry returns what was written.
    #[test]
    fn layout_round_trips(
        d in arb_desc(),
        lens in proptest::collection::vec(0u32..300, 25),
        tags in proptest::collection::vec("[a-z_/]{1,12}", 0..5),
        revalidate in 1.0f64..1e6,
        expire_extra in 0.0f64..1e6,
    ) {
        let e = engine();
        let parts = &lens[..d.part_count()];
        let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        let s = IncrementalSet {
            desc: d,
            revalidate,
            expire: revalidate + expire_extra,
            tags: &tag_refs,
            parts,
            created: Millis(NOW),
            made: None,
            now: Millis(NOW),
        };
        let v = store(&e, "key", &s);
        let (verdict, h) =
            e.inspect_incremental("key", &v, v.len(), &[], f64::NAN, Millis(NOW));
        let got = serve(verdict);
        prop_assert_eq!(got.desc, d);
        prop_assert_eq!(got.last_modified, NOW);
        prop_assert_eq!(got.revalidate, (!d.revalidate_false).then_some(revalidate));
        let expire = (!d.no_expire && !d.no_cache_control).then_some(revalidate + expire_extra);
        prop_assert_eq!(got.expire, expire);
        let h = h.unwrap();
        prop_assert_eq!(&h.meta.parts[..], parts);
        // Stored once each, in the order first given.
        let mut once: Vec<String> = Vec::new();
        for t in &tags {
            if !once.contains(t) {
                once.push(t.clone());
            }
        }
        prop_assert_eq!(&h.meta.tags, &once);
        // The parts sit where the lengths say.
        let mut off = h.header_len;
        for (i, len) in parts.iter().enumerate() {
            let end = off + *len as usize;
            prop_assert!(v[off..end].iter().all(|b| *b == i as u8));
            off = end;
        }
        prop_assert_eq!(off, v.len());
    }

    /// Decoding arbitrary descriptor bytes never panics, and whatever decodes re-encodes
    /// to the same bytes.
    #[test]
    fn descriptor_decode_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..10)) {
        if let Ok(d) = Descriptor::decode(&bytes) {
            prop_assert_eq!(&d.encode()[..], &bytes[..]);
        }
    }

    /// A stale presentation always reads as stale-but-not-expired to Next.
    #[test]
    fn stale_presentation_is_stale_not_expired(
        k in 0u8..7,
        age in 0.0f64..1e7,
        revalidate in proptest::option::of(0.001f64..1e6),
        expire in proptest::option::of(0.001f64..1e7),
        request in proptest::option::of(0.001f64..1e6),
    ) {
        let kind = ValueKind::from_u8(k).unwrap();
        let now = NOW;
        let ts = now - age;
        let req = request.unwrap_or(f64::NAN);
        if let Some((lm, shown)) = stale_presentation(kind, ts, revalidate, expire, req, now) {
            prop_assert!(lm <= ts);
            if kind == ValueKind::Fetch {
                let r = request.or(revalidate).unwrap();
                prop_assert!((now - lm) / 1000.0 > r);
                prop_assert_eq!(shown, revalidate);
            } else {
                let r = shown.unwrap();
                prop_assert!(lm + r * 1000.0 < now);
                if let Some(e) = expire {
                    prop_assert!(lm + e * 1000.0 >= now);
                }
            }
        }
    }
}
