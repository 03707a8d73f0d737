//! The hash function of the core's maps keyed by strings from input (entry keys, tag names),
//! keyed by a seed the host draws (docs/decisions/0033-seeded-string-hasher.md).
//!
//! `std`'s `RandomState` is SipHash-1-3, and on `wasm32-unknown-unknown` its keys are two
//! addresses (std `sys/random/unsupported.rs`, `hashmap_random_keys`), the same in every
//! instance of the module: it cost a third of the wasm work of a tier hit and protected
//! nothing. This hasher multiplies 16 bytes at a time by the seed (a folded 64x64->128-bit
//! product, the mixing step of the wyhash family), so a hit hashes its key in a few
//! multiplications. It is not a keyed pseudo-random function as SipHash is: what it offers
//! against chosen collisions is that of that family (no known way to build colliding keys
//! without the seed), which is what the seed is for. The core draws no random numbers itself
//! (lib.rs), so the host passes one in ([`crate::Engine::with_hash_seed`]).
//! [`HashSeed::default`] is a fixed, documented seed: for tests and simulations, which must
//! be deterministic, and for tools that hash no untrusted input.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// The seed of the maps' hash function: 128 bits from the host's secure random source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashSeed {
    k0: u64,
    k1: u64,
}

/// The fixed seed of [`HashSeed::default`]: the first 128 bits of the fractional part of pi.
const FIXED_SEED: [u8; 16] = [
    0x24, 0x3f, 0x6a, 0x88, 0x85, 0xa3, 0x08, 0xd3, 0x13, 0x19, 0x8a, 0x2e, 0x03, 0x70, 0x73, 0x44,
];

impl Default for HashSeed {
    /// A fixed seed, the same in every process: maps behave deterministically, as tests and
    /// simulations need, and offer no protection against chosen collisions.
    fn default() -> HashSeed {
        HashSeed::from_bytes(FIXED_SEED)
    }
}

impl HashSeed {
    /// The seed made of these 16 bytes (from `crypto.getRandomValues` in the JS hosts).
    pub fn from_bytes(bytes: [u8; 16]) -> HashSeed {
        let (lo, hi) = bytes.split_at(8);
        HashSeed {
            k0: read_u64(lo),
            k1: read_u64(hi),
        }
    }

    /// The hash of `key` (what a map keyed by `key` uses).
    pub fn hash_str(&self, key: &str) -> u64 {
        self.hash_one(key)
    }
}

impl BuildHasher for HashSeed {
    type Hasher = StrHasher;

    fn build_hasher(&self) -> StrHasher {
        StrHasher {
            k0: self.k0,
            k1: self.k1,
            acc: self.k0 ^ self.k1.rotate_left(32),
        }
    }
}

/// A hash map keyed by strings from input, hashed with a [`HashSeed`].
pub type StrMap<V> = HashMap<String, V, HashSeed>;

/// An empty [`StrMap`] with room for `n` entries, hashed with `seed`.
pub fn str_map<V>(n: usize, seed: HashSeed) -> StrMap<V> {
    HashMap::with_capacity_and_hasher(n, seed)
}

/// Rehashes `map` with `seed`: the host may only be able to draw its seed after the engine
/// was made (a Cloudflare Worker's global scope refuses random values), when the maps may
/// already hold keys ([`crate::Engine::reseed_hashes`]). Values stay as they were. The keys
/// are copied, not moved: iterating and dropping a map by reference is code the module has
/// already, moving out of one is not (about 400 bytes), and this runs once per engine, at
/// most, on maps that are normally empty. Not inlined: one copy for the core's one map type.
#[inline(never)]
pub fn reseed<V: Clone>(map: &mut StrMap<V>, seed: HashSeed) {
    let old = std::mem::replace(map, str_map(map.len(), seed));
    for (k, v) in &old {
        map.insert(k.clone(), v.clone());
    }
}

/// The hasher [`HashSeed`] builds. Made for the byte strings of `str` keys: `write` mixes
/// the whole slice; the one-byte end mark `str`'s `Hash` appends costs an add and a rotate.
#[derive(Clone, Debug)]
pub struct StrHasher {
    k0: u64,
    k1: u64,
    acc: u64,
}

/// The high and low halves of the 128-bit product, xored: every bit of both inputs reaches
/// the middle bits of the result.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let (lo, hi) = wide_mul(a, b);
    lo ^ hi
}

/// The 128-bit product of `a` and `b` as (low, high) halves, from four 32x32->64-bit
/// products. wasm32 has no 64x64->128-bit multiply: a `u128` product there is a call to
/// compiler-builtins' `__multi3` (a fifth of a tier hit's hashing in a profile), where these
/// four multiplications are inlined. The same value as the `u128` product (tested).
#[inline]
fn wide_mul(a: u64, b: u64) -> (u64, u64) {
    const LOW: u64 = 0xffff_ffff;
    let (a0, a1) = (a & LOW, a >> 32);
    let (b0, b1) = (b & LOW, b >> 32);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    // At most 3 * (2^32 - 1): no overflow.
    let mid = (p00 >> 32) + (p01 & LOW) + (p10 & LOW);
    let lo = (p00 & LOW) | (mid << 32);
    let hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
    (lo, hi)
}

/// Up to the first 8 bytes of `b`, little-endian (zero-filled when shorter).
#[inline]
fn read_u64(b: &[u8]) -> u64 {
    match b.first_chunk::<8>() {
        Some(c) => u64::from_le_bytes(*c),
        None => {
            let mut c = [0u8; 8];
            for (d, s) in c.iter_mut().zip(b) {
                *d = *s;
            }
            u64::from_le_bytes(c)
        }
    }
}

impl Hasher for StrHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let len = bytes.len();
        let mut s = self.acc;
        // The last (or only) up to 16 bytes as two words; past 16, the last 16 overlap the
        // words already mixed, and the length, mixed in below, tells overlaps apart.
        let (lo, hi) = if len <= 16 {
            // Zero-filled: the length, mixed in below, tells "a" from "a\0".
            (
                read_u64(bytes),
                read_u64(bytes.get(8..).unwrap_or_default()),
            )
        } else {
            let mut rest = bytes;
            while rest.len() > 16 {
                let Some((c, r)) = rest.split_first_chunk::<16>() else {
                    break;
                };
                let (a, b) = c.split_at(8);
                s = fold_mul(read_u64(a) ^ self.k0 ^ s, read_u64(b) ^ self.k1);
                rest = r;
            }
            let end = bytes.last_chunk::<16>().copied().unwrap_or([0; 16]);
            let (a, b) = end.split_at(8);
            (read_u64(a), read_u64(b))
        };
        self.acc = fold_mul(lo ^ self.k0 ^ s, hi ^ self.k1 ^ len as u64);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        // Only `str`'s end mark reaches here in the core's maps: the same byte after every
        // key, so it needs no mixing of its own; `finish` mixes the whole state again.
        self.acc = self.acc.wrapping_add(u64::from(i)).rotate_left(8);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write(&(i as u64).to_le_bytes());
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold_mul(self.acc ^ self.k1, self.k0 ^ 0x9e37_79b9_7f4a_7c15)
    }
}

/// Checks of a reseeded map, for the tests of the structures that hold one.
#[cfg(test)]
pub(crate) mod reseed_checks {
    use super::{HashSeed, StrMap};

    /// What `map` holds, to compare after a reseed.
    pub(crate) fn held<V: Clone>(map: &StrMap<V>) -> Vec<(String, V)> {
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// `map` hashes with `seed` and finds every entry of `before` (no more, no fewer).
    pub(crate) fn finds_all<V: PartialEq + std::fmt::Debug>(
        map: &StrMap<V>,
        before: &[(String, V)],
        seed: HashSeed,
    ) {
        assert_eq!(*map.hasher(), seed);
        assert_eq!(map.len(), before.len());
        for (k, v) in before {
            assert_eq!(map.get(k.as_str()), Some(v), "{k}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn seed(n: u8) -> HashSeed {
        let mut b = [0u8; 16];
        for (i, x) in b.iter_mut().enumerate() {
            *x = n.wrapping_mul(31).wrapping_add(i as u8).wrapping_mul(97);
        }
        HashSeed::from_bytes(b)
    }

    #[test]
    fn two_seeds_hash_the_same_key_differently() {
        let (a, b) = (seed(1), seed(2));
        for key in [
            "",
            "a",
            "abcd",
            "abcdefgh",
            "fleet:entry:/blog/[slug]?page=2",
            &"x".repeat(100),
        ] {
            assert_ne!(a.hash_str(key), b.hash_str(key), "{key:?}");
        }
        assert_ne!(HashSeed::default().hash_str("k"), a.hash_str("k"));
    }

    #[test]
    fn the_default_seed_is_fixed() {
        assert_eq!(HashSeed::default(), HashSeed::from_bytes(FIXED_SEED));
        assert_eq!(
            HashSeed::default().hash_str("tag:posts"),
            HashSeed::default().hash_str("tag:posts")
        );
    }

    #[test]
    fn every_length_and_every_byte_position_counts() {
        // Keys that differ in one byte, or only in length (a trailing zero byte), must not
        // collide: the overlapping reads of the tail must still see each position.
        let s = HashSeed::default();
        let mut seen = HashSet::new();
        for len in 0..70usize {
            let base = vec![b'k'; len];
            assert!(seen.insert(s.hash_one(&base[..])), "len {len}");
            let zero = [&base[..], &[0u8]].concat();
            assert!(seen.insert(s.hash_one(&zero[..])), "len {len} + 0");
            for pos in 0..len {
                let mut k = base.clone();
                k[pos] = b'j';
                assert!(seen.insert(s.hash_one(&k[..])), "len {len} pos {pos}");
            }
        }
    }

    #[test]
    fn buckets_fill_evenly() {
        // Sequential keys (as paths and tags often are) spread over the low bits hashbrown
        // indexes by and the top 7 bits it filters with.
        let s = seed(7);
        let mut low = [0u32; 64];
        let mut top = [0u32; 128];
        let n = 64_000u32;
        for i in 0..n {
            let h = s.hash_str(&format!("/posts/{i}"));
            low[(h & 63) as usize] += 1;
            top[(h >> 57) as usize] += 1;
        }
        let (lo_min, lo_max) = (low.iter().min().unwrap(), low.iter().max().unwrap());
        assert!(*lo_min > 850 && *lo_max < 1150, "{lo_min}..{lo_max}");
        let (t_min, t_max) = (top.iter().min().unwrap(), top.iter().max().unwrap());
        assert!(*t_min > 380 && *t_max < 620, "{t_min}..{t_max}");
    }

    fn u128_mul(a: u64, b: u64) -> (u64, u64) {
        let p = u128::from(a) * u128::from(b);
        (p as u64, (p >> 64) as u64)
    }

    #[test]
    fn wide_mul_is_the_u128_product_at_the_edges() {
        let edges = [
            0,
            1,
            2,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX - 1,
            u64::MAX,
            1 << 63,
        ];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(wide_mul(a, b), u128_mul(a, b), "{a:#x} * {b:#x}");
            }
        }
    }

    #[test]
    fn a_reseeded_map_finds_every_value_and_hashes_with_the_new_seed() {
        let (a, b) = (seed(3), seed(4));
        let mut map: StrMap<usize> = str_map(0, a);
        for i in 0..2000usize {
            map.insert(format!("/posts/{i}"), i);
        }
        reseed(&mut map, b);
        assert_eq!(*map.hasher(), b);
        assert_eq!(map.len(), 2000);
        for i in 0..2000usize {
            assert_eq!(map.get(&format!("/posts/{i}")), Some(&i), "{i}");
        }
        assert_eq!(map.get("/posts/2000"), None);
        // Still a working map: inserts and removals after the rehash.
        assert_eq!(map.insert("/posts/7".to_owned(), 70), Some(7));
        assert_eq!(map.remove("/posts/8"), Some(8));
        assert_eq!(map.get("/posts/7"), Some(&70));
        assert_eq!(map.get("/posts/8"), None);
        assert_eq!(map.len(), 1999);
    }

    proptest! {
        #[test]
        fn wide_mul_is_the_u128_product(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(wide_mul(a, b), u128_mul(a, b));
        }
        /// A seeded map behaves as a `HashMap` with std's hasher under any sequence of
        /// inserts, removals and lookups.
        #[test]
        fn seeded_map_behaves_as_std_map(
            bytes in any::<[u8; 16]>(),
            ops in proptest::collection::vec((0u8..3, "[a-c]{0,20}", any::<u32>()), 0..200),
        ) {
            let mut ours: StrMap<u32> = str_map(0, HashSeed::from_bytes(bytes));
            let mut std_map: HashMap<String, u32> = HashMap::new();
            for (op, key, v) in ops {
                match op {
                    0 => prop_assert_eq!(ours.insert(key.clone(), v), std_map.insert(key, v)),
                    1 => prop_assert_eq!(ours.remove(&key), std_map.remove(&key)),
                    _ => prop_assert_eq!(ours.get(&key), std_map.get(&key)),
                }
                prop_assert_eq!(ours.len(), std_map.len());
            }
            let mut a: Vec<_> = ours.into_iter().collect();
            let mut b: Vec<_> = std_map.into_iter().collect();
            a.sort();
            b.sort();
            prop_assert_eq!(a, b);
        }
    }
}
