//! Messages, log lines and script arguments built without `core::fmt`.
//!
//! One `format!`, `write!` or `to_string()` on a number links `core::fmt::write`, the
//! `Formatter` and the integer formatters into the wasm module, about 8 KB
//! (docs/decisions/0028-wasm-size-budget.md, sixth pass). Every text the binding can reach is
//! built here instead: static pieces pushed as they are, integers by [`push_u64`] and
//! [`push_i64`]. The error types still implement `Display` for native callers, by writing
//! their `message()`, so each text is defined once.

/// Something [`text!`](crate::text!) can append: a piece of text or an integer in decimal.
pub trait Piece {
    /// Appends `self` to `out`.
    fn push_to(&self, out: &mut String);
}

impl Piece for str {
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl Piece for String {
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl<T: Piece + ?Sized> Piece for &T {
    fn push_to(&self, out: &mut String) {
        T::push_to(self, out);
    }
}

macro_rules! unsigned_piece {
    ($($t:ty),*) => {$(
        impl Piece for $t {
            fn push_to(&self, out: &mut String) {
                push_u64(out, u64::from(*self));
            }
        }
    )*};
}
unsigned_piece!(u8, u16, u32, u64);

impl Piece for usize {
    fn push_to(&self, out: &mut String) {
        // usize is at most 64 bits on every target Rust supports.
        push_u64(out, *self as u64);
    }
}

impl Piece for i64 {
    fn push_to(&self, out: &mut String) {
        push_i64(out, *self);
    }
}

/// A `String` of the pieces in order: `text!("entry of ", size, " bytes")`.
#[macro_export]
macro_rules! text {
    ($($piece:expr),* $(,)?) => {{
        // Not mutated when there are no pieces.
        #[allow(unused_mut)]
        let mut out = ::std::string::String::new();
        $( $crate::text::Piece::push_to(&$piece, &mut out); )*
        out
    }};
}

/// Appends the decimal digits of `n`, as `n.to_string()` writes them.
#[inline(never)]
pub fn push_u64(out: &mut String, mut n: u64) {
    // u64::MAX has 20 digits; least significant first, then appended in reverse.
    let mut digits = [0u8; 20];
    let mut len = 0;
    for slot in digits.iter_mut() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    for &d in digits.iter().take(len).rev() {
        out.push(char::from(d));
    }
}

/// Appends `n` in decimal with a leading `-` when negative, as `n.to_string()` writes it.
pub fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

/// The decimal text of `n`: `n.to_string()` without `core::fmt`.
pub fn u64_text(n: u64) -> String {
    let mut out = String::new();
    push_u64(&mut out, n);
    out
}

/// Appends `0x` and two lowercase hex digits, as `format!("{n:#04x}")` writes a `u8`.
pub fn push_hex_u8(out: &mut String, n: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("0x");
    for nibble in [n >> 4, n & 0xf] {
        let digit = HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
        out.push(char::from(digit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(n: u64) -> String {
        u64_text(n)
    }
    fn i(n: i64) -> String {
        let mut out = String::new();
        push_i64(&mut out, n);
        out
    }

    #[test]
    fn integers_at_their_edges_read_as_to_string() {
        let mut edges = vec![0, 1, 9, 10, 11, 99, 100, 101, u64::MAX, u64::MAX - 1];
        for p in 1..20u32 {
            let t = 10u64.pow(p);
            edges.extend([t - 1, t, t + 1]);
        }
        for k in 0..64 {
            edges.extend([1u64 << k, (1u64 << k) - 1]);
        }
        edges.extend([u64::from(u32::MAX), u64::from(u32::MAX) + 1]);
        for n in edges {
            assert_eq!(u(n), n.to_string());
        }
        for n in [
            0,
            1,
            -1,
            9,
            -9,
            10,
            -10,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
            i64::MAX - 1,
        ] {
            assert_eq!(i(n), n.to_string());
        }
    }

    #[test]
    fn hex_reads_as_alternate_zero_padded_lowercase() {
        for n in 0..=u8::MAX {
            let mut out = String::new();
            push_hex_u8(&mut out, n);
            assert_eq!(out, format!("{n:#04x}"));
        }
    }

    #[test]
    fn the_macro_joins_pieces_in_order() {
        let who = String::from("k");
        let got = crate::text!("entry ", &who, " of ", 12usize, " bytes, ", 3u8, "/", -4i64);
        assert_eq!(got, format!("entry {who} of {} bytes, {}/{}", 12, 3, -4));
        assert_eq!(crate::text!(), "");
    }

    proptest! {
        #[test]
        fn any_u64_reads_as_to_string(n in any::<u64>()) {
            prop_assert_eq!(u(n), n.to_string());
        }

        #[test]
        fn any_i64_reads_as_to_string(n in any::<i64>()) {
            prop_assert_eq!(i(n), n.to_string());
        }

        #[test]
        fn small_and_wide_u64s_read_as_to_string(n in 0u64..100_000, shift in 0u32..64) {
            prop_assert_eq!(u(n), n.to_string());
            prop_assert_eq!(u(n << shift), (n << shift).to_string());
        }
    }
}
