//! The tag-script reply parser (netstrings, versions, tag records) on arbitrary bytes: a reply
//! comes from Redis, where a foreign writer or a different release may have left anything.
#![no_main]

use fleetcache_core::{netstring, Millis, TagMirror, TagRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = netstring::decode(data);
    let _ = TagRecord::parse(data);
    let mut mirror = TagMirror::new();
    // A pruning age of an hour: what a refresh reply merges is the fuzzer's, not the clock's.
    if mirror.apply_refresh(data, Millis(1.0e12), 3_600_000.0).is_ok() {
        // Whatever was merged must still evaluate without panicking.
        let _ = mirror.evaluate(Millis(1.0e12), ["a", "b"], Millis(2.0e12));
        let _ = mirror.expiration(["a"], Millis(2.0e12));
    }
    let _ = mirror.apply_update_reply(data);
});
