//! The rule of `fleetcache seed`'s write (`seed_write.lua`, and `entry_write.lua` in its seed
//! mode 's'), stated once for the tests that hold it to the Lua on a real redis-server
//! (`lua_scripts.rs`) and that run it in the model of Redis (`freshness_sim.rs`).

/// Whether the seed's write keeps what Redis holds at its key (`stored`, `None` when nothing)
/// instead of storing a seed created at `created` (ms, as the script reads its argument), as
/// the scripts decide it: they read the first 24 bytes, and only an envelope ("FLCE") whose
/// creation time (an f64, little-endian, at offset 16) is at or after `created` is kept.
/// Anything else (no entry, a shorter value, another format, a NaN time) is replaced.
pub fn seed_keeps(stored: Option<&[u8]>, created: f64) -> bool {
    let Some(head) = stored.and_then(|v| v.get(..24)) else {
        return false;
    };
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&head[16..24]);
    head.starts_with(b"FLCE") && f64::from_le_bytes(ts) >= created
}
