//! The plan for turning a compressed stored value into its plain envelope: asked by the host
//! only for values whose flags byte says compressed (docs/internals.md, "Entry envelope"), so
//! a plain hit pays no call for it.

use fleetcache_core::DecodeError;
use wasm_bindgen::prelude::*;

use crate::codes::Codec;
use crate::engine::Engine;
use crate::error::js_error;

/// Bytes of numbers before the plain header in [`Engine::plan_inflation`]'s answer.
const NUMBERS: usize = 16;

#[wasm_bindgen]
impl Engine {
    /// How to inflate the stored value whose first bytes are `prefix` (`totalLen` long in
    /// all): undefined when it is plain, else four `u32`, little-endian, then the plain
    /// envelope's header: `need` (> 0: the prefix did not hold the header, give this many
    /// bytes again; nothing else follows), `codec` (a `Codec`), `payloadOffset` (where the
    /// codec's output starts in the value), `rawLen` (what it must inflate to, exactly: stop
    /// the codec past it). One small buffer rather than an object: one call per compressed
    /// read, and the fewest bytes of wasm. Throws with the decoder's code when the value cannot
    /// be inflated (`ERR_DECODE_LIMIT` naming `maxEntryBytes`: its plain envelope would be
    /// larger).
    #[wasm_bindgen(js_name = planInflation)]
    pub fn plan_inflation(
        &self,
        prefix: &[u8],
        total_len: u32,
    ) -> Result<Option<Vec<u8>>, JsValue> {
        let (numbers, header) = match self.inner.plan_inflation(prefix, total_len as usize) {
            Ok(None) => return Ok(None),
            Ok(Some(plan)) => (
                [
                    0,
                    Codec::from(plan.codec) as u32,
                    // Both are below total_len, a u32.
                    u32::try_from(plan.payload_offset).unwrap_or(u32::MAX),
                    u32::try_from(plan.raw_len).unwrap_or(u32::MAX),
                ],
                plan.header,
            ),
            Err(DecodeError::NeedMore { header_len }) => (
                [u32::try_from(header_len).unwrap_or(u32::MAX), 0, 0, 0],
                Vec::new(),
            ),
            Err(e) => return Err(js_error(&e)),
        };
        let mut out = Vec::with_capacity(NUMBERS + header.len());
        for n in numbers {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&header);
        Ok(Some(out))
    }
}
