//! The entry envelope decoder and the engine's judgement of a stored value, on arbitrary bytes.
//! Stored values come from Redis, which any client can write: they must never panic the
//! engine, whatever the bytes and whatever total length the host reports.
#![no_main]

use fleetcache_core::{decode_header, Config, Engine, Millis};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks how the host describes the value: whole, a prefix of a longer
    // value, or claiming to be shorter than what it hands over.
    let (mode, bytes) = match data.split_first() {
        Some((m, rest)) => (*m, rest),
        None => (0, data),
    };
    let total = match mode % 3 {
        0 => bytes.len(),
        1 => bytes.len().saturating_add(usize::from(mode)),
        _ => bytes.len() / 2,
    };
    if let Ok(h) = decode_header(bytes, total) {
        assert!(h.header_len <= total);
        assert!(h.header_len <= bytes.len());
    }
    let engine = Engine::new(Config::default()).expect("default config is valid");
    let _ = engine.inspect("key", bytes, total, &["_N_T_/a"], Millis(1.0e12));
});
