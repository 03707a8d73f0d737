//! One stored value judged as a server would judge it now, in one call returning one small
//! object: for the CLI's `inspect`, the shared vectors and the benchmarks. A request never
//! calls it (requests step a `ReadMachine`), so it is in the tools module only (the `tools`
//! feature; docs/decisions/0028-wasm-size-budget.md, eighth pass).

use fleetcache_core::incremental::IncrementalVerdict;
use fleetcache_core::{Millis, Verdict};
use wasm_bindgen::prelude::*;

use crate::engine::{Engine, Iface, Outcome};
use crate::list::split;
use crate::pack::Packer;

/// What [`Engine::inspect_entry`] decided about a stored value. JS gets it packed (`pack.rs`),
/// in this order: `outcome`, `need`, `payloadOffset`, `lookup` (text), `error` (text).
#[derive(Clone, Debug)]
pub struct Inspection {
    outcome: Outcome,
    need: u32,
    payload_offset: u32,
    lookup: String,
    error: String,
}

impl Inspection {
    /// The verdict as JS reads it (see the type's docs for the order).
    fn pack(&self) -> Vec<u8> {
        Packer::default()
            .num(f64::from(self.outcome as u8))
            .num(f64::from(self.need))
            .num(f64::from(self.payload_offset))
            .text(&self.lookup)
            .text(&self.error)
            .finish()
    }

    /// The verdict.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// `NeedMore`: bytes of prefix to give next time; 0 otherwise.
    pub fn need(&self) -> u32 {
        self.need
    }

    /// Where the payload starts (the header's length); 0 when the header was not decoded.
    pub fn payload_offset(&self) -> u32 {
        self.payload_offset
    }

    /// What the lookup counted as (`hit`, `stale`, `expired`, `expired-by-tag`,
    /// `key-mismatch`, `corrupt`), `''` when it counted nothing (`NeedMore`).
    pub fn lookup(&self) -> String {
        self.lookup.clone()
    }

    /// `Corrupt`: the error code; `''` otherwise.
    pub fn error(&self) -> String {
        self.error.clone()
    }
}

#[wasm_bindgen]
impl Engine {
    /// `inspectEntry`: [`fleetcache_core::Engine::inspect`], packed (`Inspection`).
    #[wasm_bindgen(js_name = inspectEntry)]
    pub fn inspect_entry_packed(
        &mut self,
        iface: &Iface,
        cache_key: &str,
        prefix: &[u8],
        total_len: u32,
        soft_tags: &str,
        now: f64,
    ) -> Vec<u8> {
        self.inspect_entry(iface, cache_key, prefix, total_len, soft_tags, now)
            .pack()
    }
}

impl Engine {
    /// Judges the stored value of `cacheKey` under `iface` at `now`, with the request's
    /// implicit tags (`softTags`, NUL-joined; a singular-handler value is judged with no
    /// request `revalidate`). `prefix` is the start of the value (4 KiB is enough for nearly
    /// every entry) and `totalLen` its full length; `NeedMore` asks for a longer prefix.
    pub fn inspect_entry(
        &mut self,
        iface: &Iface,
        cache_key: &str,
        prefix: &[u8],
        total_len: u32,
        soft_tags: &str,
        now: f64,
    ) -> Inspection {
        let soft = split(soft_tags);
        let total = total_len as usize;
        let (outcome, need, error, header_len) = if iface.is_incremental() {
            let (verdict, header) = self.inner.inspect_incremental(
                cache_key,
                prefix,
                total,
                &soft,
                f64::NAN,
                Millis(now),
            );
            let header_len = header.map_or(0, |h| h.header_len);
            match verdict {
                IncrementalVerdict::Serve(s) if s.stale => (Outcome::Stale, 0, "", header_len),
                IncrementalVerdict::Serve(_) => (Outcome::Fresh, 0, "", header_len),
                IncrementalVerdict::Expired => (Outcome::Expired, 0, "", header_len),
                IncrementalVerdict::KeyMismatch => (Outcome::KeyMismatch, 0, "", header_len),
                IncrementalVerdict::Corrupt(code) => (Outcome::Corrupt, 0, code, header_len),
                IncrementalVerdict::NeedMore(n) => (Outcome::NeedMore, n, "", header_len),
            }
        } else {
            let inspection = self
                .inner
                .inspect(cache_key, prefix, total, &soft, Millis(now));
            let header_len = inspection.header.map_or(0, |h| h.header_len);
            match inspection.verdict {
                Verdict::Fresh => (Outcome::Fresh, 0, "", header_len),
                Verdict::Stale => (Outcome::Stale, 0, "", header_len),
                Verdict::Expired => (Outcome::Expired, 0, "", header_len),
                Verdict::KeyMismatch => (Outcome::KeyMismatch, 0, "", header_len),
                Verdict::Corrupt(e) => (Outcome::Corrupt, 0, e.code(), header_len),
                Verdict::NeedMore(n) => (Outcome::NeedMore, n, "", header_len),
            }
        };
        let lookup = if outcome == Outcome::NeedMore {
            ""
        } else {
            self.inner.stats().last_lookup().map_or("", |o| o.name())
        };
        Inspection {
            outcome,
            need: u32::try_from(need).unwrap_or(u32::MAX),
            payload_offset: u32::try_from(header_len).unwrap_or(u32::MAX),
            lookup: lookup.to_owned(),
            error: error.to_owned(),
        }
    }
}
