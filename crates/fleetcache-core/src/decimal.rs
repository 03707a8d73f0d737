//! Script arguments that carry an `f64` (a creation time with a fraction of a millisecond) as
//! decimal text that Lua's `tonumber` reads back as the very same `f64`.
//!
//! The text is the exact decimal value of the double, not the shortest text that rounds to it:
//! every finite double is a dyadic fraction, so its exact expansion is finite, and reading an
//! exact value back needs no rounding at all. Writing it takes integer arithmetic only, where
//! the shortest form needs the float formatter, a tenth of the wasm module's code
//! (docs/decisions/0028-wasm-size-budget.md). For the values these arguments hold (whole or
//! fractional milliseconds since the epoch) both forms are the same text.

/// The exact decimal text of a finite `x` (`-0` for negative zero). `NaN` and infinities,
/// which no caller passes, come out as `0`.
pub(crate) fn exact_decimal(x: f64) -> String {
    let mut out = String::new();
    if !x.is_finite() {
        out.push('0');
        return out;
    }
    let bits = x.to_bits();
    if bits >> 63 != 0 {
        out.push('-');
    }
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    // |x| = m * 2^e exactly.
    let (m, e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    if e >= 0 {
        push_integer(&mut out, m, e.unsigned_abs());
        return out;
    }
    let scale = e.unsigned_abs();
    let (whole, frac) = if scale >= 64 {
        (0, m)
    } else {
        (m >> scale, m & ((1u64 << scale) - 1))
    };
    crate::text::push_u64(&mut out, whole);
    if frac != 0 {
        out.push('.');
        push_fraction(&mut out, frac, scale);
    }
    out
}

/// Appends the decimal digits of `m * 2^shift`.
fn push_integer(out: &mut String, m: u64, shift: u32) {
    if shift < 11 {
        // m < 2^53, so the product fits in a u64.
        crate::text::push_u64(out, m << shift);
        return;
    }
    // Little-endian 32-bit limbs, three more than the shift needs for the 53-bit m.
    let wide = u128::from(m) << (shift % 32);
    let mut limbs = vec![0u32; (shift / 32) as usize];
    limbs.extend([wide as u32, (wide >> 32) as u32, (wide >> 64) as u32]);
    // Groups of nine digits, least significant first.
    const GROUP: u64 = 1_000_000_000;
    let mut groups = Vec::new();
    while limbs.iter().any(|&l| l != 0) {
        let mut rem = 0u64;
        for limb in limbs.iter_mut().rev() {
            let v = (rem << 32) | u64::from(*limb);
            *limb = (v / GROUP) as u32;
            rem = v % GROUP;
        }
        groups.push(rem);
    }
    let mut first = true;
    for &g in groups.iter().rev() {
        let digits = crate::text::u64_text(g);
        if !first {
            for _ in digits.len()..9 {
                out.push('0');
            }
        }
        out.push_str(&digits);
        first = false;
    }
}

/// Appends the decimal digits of `frac / 2^scale` (`0 < frac < 2^scale`), after the point.
fn push_fraction(out: &mut String, frac: u64, scale: u32) {
    let word = (scale / 32) as usize;
    let bit = scale % 32;
    // Room for the value times ten: at most four bits above `scale`.
    let mut limbs = vec![0u32; word + 2];
    for (limb, v) in limbs.iter_mut().zip([frac as u32, (frac >> 32) as u32]) {
        *limb = v;
    }
    while limbs.iter().any(|&l| l != 0) {
        let mut carry = 0u64;
        for limb in limbs.iter_mut() {
            let v = u64::from(*limb) * 10 + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        // The bits at and above `scale` are the next digit (below ten).
        let limb = |i: usize| u64::from(limbs.get(i).copied().unwrap_or(0));
        let high = (limb(word + 1) << 32) | limb(word);
        let digit = (high >> bit) as u8;
        out.push(char::from(b'0' + digit));
        if let Some(l) = limbs.get_mut(word) {
            *l &= (1u32 << bit) - 1;
        }
        if let Some(l) = limbs.get_mut(word + 1) {
            *l = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::exact_decimal;
    use proptest::prelude::*;

    #[test]
    fn timestamps_read_as_before() {
        for (x, text) in [
            (1_795_690_530_487.5, "1795690530487.5"),
            (1_795_690_530_487.0, "1795690530487"),
            (1000.5, "1000.5"),
            (0.0, "0"),
            (-0.0, "-0"),
            (-2.25, "-2.25"),
            (
                0.1,
                "0.1000000000000000055511151231257827021181583404541015625",
            ),
            (1e23, "99999999999999991611392"),
        ] {
            assert_eq!(exact_decimal(x), text);
        }
        assert_eq!(exact_decimal(f64::MAX).len(), 309);
        assert_eq!(
            exact_decimal(f64::MIN_POSITIVE * f64::EPSILON).parse::<f64>(),
            Ok(f64::from_bits(1))
        );
    }

    proptest! {
        #[test]
        fn reads_back_as_the_same_double(bits in any::<u64>()) {
            let x = f64::from_bits(bits);
            prop_assume!(x.is_finite());
            let back: f64 = exact_decimal(x).parse().unwrap();
            prop_assert_eq!(back.to_bits(), bits);
        }

        #[test]
        fn half_millisecond_times_print_as_before(ms in 0u64..(1u64 << 52), half in any::<bool>()) {
            let x = ms as f64 + if half { 0.5 } else { 0.0 };
            prop_assert_eq!(exact_decimal(x), format!("{x}"));
        }
    }
}
