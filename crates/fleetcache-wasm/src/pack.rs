//! One answer per call, as one byte buffer the host decodes (js-host/src/packed.ts), where a
//! class with a getter per field cost an export each, with its borrow check and conversion
//! code (docs/decisions/0028-wasm-size-budget.md). The layout is the order of the writer's
//! calls: numbers as little-endian `f64`, byte strings and UTF-8 text as a little-endian `u32`
//! length and the bytes.

/// Builds one packed answer.
#[derive(Default)]
pub(crate) struct Packer(Vec<u8>);

impl Packer {
    /// A number.
    // One copy of each writer, not one per call site: these answers are not on the hit path.
    #[inline(never)]
    pub(crate) fn num(&mut self, v: f64) -> &mut Packer {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A flag, as the number 1 or 0.
    pub(crate) fn flag(&mut self, b: bool) -> &mut Packer {
        self.num(if b { 1.0 } else { 0.0 })
    }

    /// A byte string: its length, then its bytes. Lengths past `u32` cannot occur in wasm32's
    /// address space.
    #[inline(never)]
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Packer {
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(b);
        self
    }

    /// UTF-8 text, as a byte string.
    pub(crate) fn text(&mut self, s: &str) -> &mut Packer {
        self.bytes(s.as_bytes())
    }

    /// The buffer, for JS.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Packer;

    #[test]
    fn layout_is_the_order_of_the_calls() {
        let out = Packer::default()
            .num(1.5)
            .flag(true)
            .text("é")
            .bytes(&[])
            .finish();
        let mut want = 1.5f64.to_le_bytes().to_vec();
        want.extend_from_slice(&1.0f64.to_le_bytes());
        want.extend_from_slice(&[2, 0, 0, 0, 0xc3, 0xa9]);
        want.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(out, want);
    }
}
