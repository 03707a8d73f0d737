//! The shared test vectors (`tests/vectors/vectors.json`): entry keys, envelope headers and
//! TTLs, verdicts, and compressed envelopes, as the core computes them. `js-host/test/vectors.test.mjs` checks the
//! same file through the wasm binding, so the two sides cannot drift apart unnoticed.
//!
//! Adding a vector: write its inputs without the expected field and run this test with
//! `FLEETCACHE_WRITE_VECTORS=1`, which fills in what the core computes; review the diff, since
//! a changed expectation is a change of the stored format or the key layout.

use std::path::PathBuf;

use fleetcache_core::compression::{compressed_header, CODEC};
use fleetcache_core::{
    decode_stored_header, Codec, Config, EntryKind, Interface, Millis, Namespace, Revalidation,
    SetInput, SetPlan, Verdict,
};
use serde_json::{json, Value};

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/vectors.json")
}

fn s(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {v}"))
        .to_owned()
}

fn n(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {v}"))
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is not an array in {v}"))
        .iter()
        .map(|t| t.as_str().unwrap_or_default().to_owned())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn engine(prefix: &str, deployment: &str) -> fleetcache_core::Engine {
    fleetcache_core::Engine::new(Config {
        prefix: prefix.to_owned(),
        deployment: deployment.to_owned(),
        ..Config::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The plan of a `'use cache'` entry written as the case describes it.
fn plan_of(e: &fleetcache_core::Engine, case: &Value) -> SetPlan {
    let iface = s(case, "interface");
    let iface = Interface::parse(&iface).unwrap_or_else(|e| panic!("{e}"));
    let tags = strings(case, "tags");
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let payload = s(case, "payload").into_bytes();
    let parts = [u32::try_from(payload.len()).unwrap_or(u32::MAX)];
    e.plan_set(
        &iface,
        &s(case, "cacheKey"),
        SetInput {
            kind: EntryKind::UseCache,
            timestamp: Millis(n(case, "timestamp")),
            made_at: None,
            revalidate: n(case, "revalidate"),
            expire: n(case, "expire"),
            stale: n(case, "stale"),
            tags: &tags,
            meta: &[],
            parts: &parts,
            now: Millis(n(case, "now")),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn verdict_name(v: &Verdict) -> &'static str {
    match v {
        Verdict::Fresh => "fresh",
        Verdict::Stale => "stale",
        Verdict::Expired => "expired",
        Verdict::KeyMismatch => "key-mismatch",
        Verdict::Corrupt(_) => "corrupt",
        Verdict::NeedMore(_) => "need-more",
    }
}

/// Checks `actual` against `case[field]`, or fills it in when writing.
fn expect(case: &mut Value, field: &str, actual: Value, write: bool, failures: &mut Vec<String>) {
    if write {
        case[field] = actual;
    } else if case[field] != actual {
        failures.push(format!(
            "{}: {field} is {actual}, the vector says {}",
            case.get("name")
                .or(case.get("cacheKey"))
                .unwrap_or(&Value::Null),
            case[field]
        ));
    }
}

#[test]
fn the_core_computes_the_shared_vectors() {
    let write = std::env::var("FLEETCACHE_WRITE_VECTORS").is_ok_and(|v| v == "1");
    let text = std::fs::read_to_string(path()).unwrap_or_else(|e| panic!("{e}"));
    let mut doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();

    let keys = doc["keys"].as_array_mut().expect("keys");
    for case in keys.iter_mut() {
        let ns = Namespace::new(&s(case, "prefix"), &s(case, "deployment"))
            .unwrap_or_else(|e| panic!("{e}"));
        let segment = s(case, "interface");
        let iface = Interface::parse(&segment).unwrap_or_else(|e| panic!("{e}"));
        let key = ns.entry_key(&iface, &s(case, "cacheKey"));
        expect(case, "entryKey", json!(key), write, &mut failures);
    }

    let prefix = s(&doc["envelopes"], "prefix");
    let deployment = s(&doc["envelopes"], "deployment");
    let mut stored = std::collections::HashMap::new();
    let cases = doc["envelopes"]["cases"].as_array_mut().expect("cases");
    for case in cases.iter_mut() {
        let e = engine(&prefix, &deployment);
        let payload = s(case, "payload").into_bytes();
        let plan = plan_of(&e, case);
        expect(
            case,
            "header",
            json!(hex(&plan.header)),
            write,
            &mut failures,
        );
        expect(case, "ttlMs", json!(plan.ttl_ms), write, &mut failures);
        let mut value = plan.header.clone();
        value.extend_from_slice(&payload);
        stored.insert(s(case, "name"), value);
    }

    let verdicts = doc["verdicts"].as_array_mut().expect("verdicts");
    for case in verdicts.iter_mut() {
        let mut e = engine(&prefix, &deployment);
        // No Redis: this engine's own revalidations are the whole tag state.
        e.mark_standalone();
        for r in case["revalidations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let tags = strings(&r, "tags");
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            let rev = match s(&r, "mode").as_str() {
                "expire" => Revalidation::Expire,
                _ => Revalidation::Stale {
                    expire_seconds: r["expireSeconds"].as_f64(),
                },
            };
            e.plan_tag_update(&tags, &rev, Millis(n(&r, "at")), "vectors")
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let value = match case.get("envelope").and_then(Value::as_str) {
            Some(name) => stored.get(name).cloned().expect("a known envelope"),
            None => unhex(&s(case, "value")),
        };
        let soft = strings(case, "softTags");
        let soft: Vec<&str> = soft.iter().map(String::as_str).collect();
        let inspection = e.inspect(
            &s(case, "cacheKey"),
            &value,
            value.len(),
            &soft,
            Millis(n(case, "now")),
        );
        let name = verdict_name(&inspection.verdict);
        expect(case, "verdict", json!(name), write, &mut failures);
    }

    // Compressed values: the header a writer puts before the codec's output, and what a reader
    // makes of the stored value (the plain header back, the raw length to inflate to).
    let compressed = doc["compressed"]["cases"]
        .as_array_mut()
        .expect("compressed cases");
    for case in compressed.iter_mut() {
        let e = engine(&prefix, &deployment);
        let plan = plan_of(&e, case);
        let deflated = unhex(&s(case, "deflated"));
        assert_eq!(CODEC, Codec::Deflate);
        let header = compressed_header(&plan.meta, CODEC, deflated.len() as u64)
            .unwrap_or_else(|e| panic!("{e}"));
        expect(case, "header", json!(hex(&header)), write, &mut failures);
        expect(
            case,
            "plainHeader",
            json!(hex(&plan.header)),
            write,
            &mut failures,
        );
        let mut value = unhex(&s(case, "header"));
        value.extend_from_slice(&deflated);
        let decoded = decode_stored_header(&value, value.len()).unwrap_or_else(|e| panic!("{e}"));
        expect(
            case,
            "rawLen",
            json!(decoded.compression.map(|c| c.raw_len)),
            write,
            &mut failures,
        );
        let inflation = e
            .plan_inflation(&value, value.len())
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("a compressed value");
        assert_eq!(hex(&inflation.header), s(case, "plainHeader"));
        assert_eq!(inflation.payload_offset, header.len());
        // Judged without inflating, it is never served.
        let judged = e.inspect(&s(case, "cacheKey"), &value, value.len(), &[], Millis(0.0));
        assert_eq!(verdict_name(&judged.verdict), "corrupt");
    }

    if write {
        let out = serde_json::to_string_pretty(&doc).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(path(), out + "\n").unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
