//! Tags as Next produces them, through the engine's public API:
//! any number of tags per entry and per revalidation, tags up to 256 x 9 bytes once
//! percent-encoded, and the raw and encoded forms of a tag (Next before and after 16.2.7)
//! reaching each other in every direction a tag enters the engine.

use fleetcache_core::incremental::{Descriptor, IncrementalSet, IncrementalVerdict};
use fleetcache_core::{
    Config, Engine, EntryKind, Interface, Millis, Revalidation, SetInput, Verdict,
};
use proptest::prelude::*;

const NOW: f64 = 1_795_690_530_000.0;
const DEFAULT: Interface<'static> = Interface::UseCache("default");

/// An engine whose tag mirror is complete as it is (no shared state to load first).
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

/// Next's `encodeHeaderSafe` (dist/server/lib/encode-header-safe.js): runs of characters
/// outside tab and printable ASCII through `encodeURIComponent`.
fn next_encode(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c == '\t' || (' '..='~').contains(&c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Writes a `'use cache'` entry created at `NOW` with these tags; returns the stored header.
fn store(e: &Engine, key: &str, tags: &[&str]) -> Vec<u8> {
    let plan = e
        .plan_set(
            &DEFAULT,
            key,
            SetInput {
                kind: EntryKind::UseCache,
                timestamp: Millis(NOW),
                made_at: None,
                revalidate: 900.0,
                expire: f64::INFINITY,
                stale: 300.0,
                tags,
                meta: &[],
                parts: &[],
                now: Millis(NOW),
            },
        )
        .unwrap_or_else(|err| panic!("entry with {} tags not stored: {err}", tags.len()));
    assert!(plan.ttl_ms.is_some());
    plan.header
}

fn verdict(e: &Engine, key: &str, value: &[u8], soft: &[&str], now: f64) -> Verdict {
    e.inspect(key, value, value.len(), soft, Millis(now))
        .verdict
}

fn numbered(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn entries_with_129_and_2000_tags_are_stored_and_invalidated_by_any_of_them() {
    for n in [129, 2000] {
        let mut e = engine();
        let tags = numbered(n, "t");
        let value = store(&e, "k", &refs(&tags));
        assert_eq!(verdict(&e, "k", &value, &[], NOW + 1.0), Verdict::Fresh);
        // The last tag, past Next's per-call 128, counts as much as the first.
        e.plan_tag_update(
            &[&tags[n - 1]],
            &Revalidation::Expire,
            Millis(NOW + 2.0),
            "ep",
        )
        .unwrap();
        assert_eq!(verdict(&e, "k", &value, &[], NOW + 3.0), Verdict::Expired);
    }
}

#[test]
fn a_revalidation_of_129_tags_reaches_every_one() {
    let mut e = engine();
    let tags = numbered(129, "r");
    let values: Vec<Vec<u8>> = tags
        .iter()
        .map(|t| store(&e, &format!("k-{t}"), &[t]))
        .collect();
    let call = e
        .plan_tag_update(&refs(&tags), &Revalidation::Expire, Millis(NOW + 2.0), "ep")
        .unwrap();
    // EVALSHA argv: five fixed arguments, then every tag.
    assert_eq!(call.args.len(), 5 + 129);
    for (t, v) in tags.iter().zip(&values) {
        assert_eq!(
            verdict(&e, &format!("k-{t}"), v, &[], NOW + 3.0),
            Verdict::Expired,
            "{t}"
        );
    }
    // Through the outbox (the host's path) as well.
    let mut e = engine();
    let value = store(&e, "k", &[&tags[128]]);
    e.queue_tag_update(&refs(&tags), &Revalidation::Expire, Millis(NOW + 2.0))
        .unwrap();
    assert_eq!(verdict(&e, "k", &value, &[], NOW + 3.0), Verdict::Expired);
    assert_eq!(
        e.get_expiration(&[&tags[128]], Millis(NOW + 3.0)),
        Millis(NOW + 2.0)
    );
}

#[test]
fn a_29_cjk_character_tag_works_raw_and_encoded() {
    let raw = "\u{6f22}".repeat(29);
    let encoded = next_encode(&raw);
    assert_eq!(encoded.len(), 261);
    // The longest explicit tag Next lets through: 256 units, 2,304 bytes once encoded.
    let longest = next_encode(&"\u{6f22}".repeat(256));
    for (entry_form, revalidated_form) in [
        (&raw, &encoded),
        (&encoded, &raw),
        (&raw, &raw),
        (&encoded, &encoded),
        (&longest, &longest),
    ] {
        let mut e = engine();
        let value = store(&e, "k", &[entry_form, "other"]);
        assert_eq!(verdict(&e, "k", &value, &[], NOW + 1.0), Verdict::Fresh);
        e.plan_tag_update(
            &[revalidated_form],
            &Revalidation::Expire,
            Millis(NOW + 2.0),
            "ep",
        )
        .unwrap();
        assert_eq!(verdict(&e, "k", &value, &[], NOW + 3.0), Verdict::Expired);
        assert_eq!(
            e.get_expiration(&[entry_form], Millis(NOW + 3.0)),
            Millis(NOW + 2.0)
        );
    }
}

#[test]
fn app_page_with_2000_header_tags_is_stored_and_invalidated() {
    let mut e = engine();
    let tags = numbered(2000, "_N_T_/p");
    let tag_refs = refs(&tags);
    let desc = Descriptor::from_wire(1, 0, 0).unwrap();
    let plan = e
        .plan_incremental_set(
            "/page",
            &IncrementalSet {
                desc,
                revalidate: 60.0,
                expire: 3600.0,
                tags: &tag_refs,
                parts: &[0, 0],
                created: Millis(NOW),
                made: None,
                now: Millis(NOW),
            },
        )
        .unwrap();
    let v = &plan.header;
    let judge = |e: &Engine, now: f64| {
        e.inspect_incremental("/page", v, v.len(), &[], f64::NAN, Millis(now))
            .0
    };
    assert!(matches!(judge(&e, NOW + 1.0), IncrementalVerdict::Serve(_)));
    e.plan_tag_update(
        &[&tags[1999]],
        &Revalidation::Expire,
        Millis(NOW + 2.0),
        "ep",
    )
    .unwrap();
    assert_eq!(judge(&e, NOW + 3.0), IncrementalVerdict::Expired);
}

fn any_tag() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{1,12}",
        "[a-z/_]{0,4}[\u{e9}\u{fc}\u{6f22}\u{1f600}\n][a-z%0-9]{0,4}",
    ]
}

proptest! {
    /// Whichever form the entry, its soft tags, the revalidation and `getExpiration` use, a
    /// revalidation reaches the entry.
    #[test]
    fn raw_and_encoded_forms_reach_each_other(
        tag in any_tag(),
        entry_encoded in any::<bool>(),
        soft in any::<bool>(),
        revalidation_encoded in any::<bool>(),
        query_encoded in any::<bool>(),
    ) {
        let form = |encoded: bool| if encoded { next_encode(&tag) } else { tag.clone() };
        let mut e = engine();
        let entry_tag = form(entry_encoded);
        // The tag on the entry itself, or only among the request's soft tags.
        let value = if soft { store(&e, "k", &[]) } else { store(&e, "k", &[&entry_tag]) };
        let soft_tags: Vec<&str> = if soft { vec![&entry_tag] } else { vec![] };
        prop_assert_eq!(verdict(&e, "k", &value, &soft_tags, NOW + 1.0), Verdict::Fresh);
        e.plan_tag_update(&[&form(revalidation_encoded)], &Revalidation::Expire, Millis(NOW + 2.0), "ep")
            .unwrap();
        prop_assert_eq!(verdict(&e, "k", &value, &soft_tags, NOW + 3.0), Verdict::Expired);
        prop_assert_eq!(e.get_expiration(&[&form(query_encoded)], Millis(NOW + 3.0)), Millis(NOW + 2.0));
    }
}
