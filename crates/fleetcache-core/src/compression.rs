//! Compression of stored entries (docs/decisions/0030-compression-of-stored-entries.md):
//! whether a write compresses its payload, whether the codec's output is worth storing, and
//! how a reader turns a compressed value back into the plain envelope, bounded by what its
//! header declares and by `maxEntryBytes`.
//!
//! The codecs themselves run in the host (`node:zlib` on its thread pool, `CompressionStream`
//! in workers); this module decides and checks lengths. Only Redis holds compressed values:
//! the in-process tier and a process's own write in flight hold the plain envelope, so a hit
//! there inflates nothing.

use crate::config::Config;
use crate::envelope::{
    decode_stored_header, encode_compressed_header, encode_header, Codec, EntryMeta,
    COMPRESSION_FIELDS_LEN,
};
use crate::error::{DecodeError, EncodeError};

/// The codec this release writes compressed entries with: the one codec of format version 1,
/// which every runtime of a fleet has natively (the decision record says why).
pub const CODEC: Codec = Codec::Deflate;

/// What a write asks the host's codec for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compress {
    /// The codec to write with.
    pub codec: Codec,
    /// Its level, for a codec that takes one (`node:zlib`).
    pub level: u32,
}

/// Whether a payload of `payload_len` bytes is stored compressed: at or above
/// `compress_min_bytes` (0 turns compression off), in an engine with Redis behind it (without
/// one the bytes never leave this process, where a compressed copy would only cost reads),
/// and only when the value is not compressed already (`compressible` false: an image).
pub fn decide(
    config: &Config,
    standalone: bool,
    payload_len: u64,
    compressible: bool,
) -> Option<Compress> {
    let min = config.compress_min_bytes;
    (min > 0 && payload_len >= min && compressible && !standalone).then_some(Compress {
        codec: CODEC,
        level: config.compress_level,
    })
}

/// Whether `stored_len` bytes of codec output are worth storing instead of the `raw_len`
/// bytes they inflate to: with the header's compression fields they must save at least an
/// eighth, since every read from Redis pays for the inflation.
pub fn worth_storing(raw_len: u64, stored_len: u64) -> bool {
    stored_len.saturating_add(COMPRESSION_FIELDS_LEN as u64) <= raw_len - raw_len / 8
}

/// The header of `meta`'s value stored compressed as `stored_len` bytes of `codec` output.
pub fn compressed_header(
    meta: &EntryMeta,
    codec: Codec,
    stored_len: u64,
) -> Result<Vec<u8>, EncodeError> {
    let stored_len = u32::try_from(stored_len).map_err(|_| EncodeError::TooLarge)?;
    encode_compressed_header(meta, codec, stored_len)
}

/// How to turn a compressed stored value into its plain envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct Inflation {
    /// The codec the payload was written with.
    pub codec: Codec,
    /// Where the codec's output starts in the stored value (its header's length).
    pub payload_offset: usize,
    /// Bytes the payload must inflate to, exactly: the host stops the codec past it (a
    /// decompression bomb) and refuses fewer.
    pub raw_len: usize,
    /// The plain envelope's header; the inflated payload follows it.
    pub header: Vec<u8>,
}

/// Plans the inflation of a stored value from its first bytes (`prefix`; `total_len` is the
/// whole value's length): `Ok(None)` for a plain value, [`DecodeError::NeedMore`] when the
/// prefix does not hold the header. A value whose plain envelope would be larger than
/// `max_entry_bytes` is refused (`LimitExceeded("maxEntryBytes")`) before the host allocates
/// anything for it: no stored value makes a reader hold more than a writer of this
/// configuration could have stored.
pub fn plan_inflation(
    prefix: &[u8],
    total_len: usize,
    max_entry_bytes: u64,
) -> Result<Option<Inflation>, DecodeError> {
    let stored = decode_stored_header(prefix, total_len)?;
    let Some(compression) = stored.compression else {
        return Ok(None);
    };
    // Decoded with the same limits the encoder checks: re-encoding cannot fail, and a
    // failure would only mean the value is not one this release writes.
    let header = encode_header(&stored.meta).map_err(|_| DecodeError::HeaderLength)?;
    let size = (header.len() as u64).saturating_add(u64::from(compression.raw_len));
    if size > max_entry_bytes {
        return Err(DecodeError::LimitExceeded("maxEntryBytes"));
    }
    Ok(Some(Inflation {
        codec: compression.codec,
        payload_offset: stored.header_len,
        raw_len: usize::try_from(compression.raw_len).map_err(|_| DecodeError::LengthMismatch)?,
        header,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{decode_header, EntryKind, FIXED_HEADER_LEN};
    use crate::time::Millis;
    use proptest::prelude::*;

    fn meta(parts: Vec<u32>) -> EntryMeta {
        EntryMeta {
            kind: EntryKind::UseCache,
            timestamp: Millis(1_800_000_000_000.0),
            made_at: None,
            revalidate: 900.0,
            expire: f64::INFINITY,
            stale: 300.0,
            key: "k".to_owned(),
            tags: vec!["products".to_owned()],
            meta: Vec::new(),
            parts,
        }
    }

    #[test]
    fn decides_by_threshold_standalone_and_kind() {
        let config = Config {
            compress_min_bytes: 1000,
            compress_level: 3,
            ..Config::default()
        };
        let yes = Some(Compress {
            codec: Codec::Deflate,
            level: 3,
        });
        assert_eq!(decide(&config, false, 999, true), None);
        assert_eq!(decide(&config, false, 1000, true), yes);
        assert_eq!(decide(&config, false, 1 << 30, true), yes);
        assert_eq!(decide(&config, true, 1000, true), None, "no Redis behind");
        assert_eq!(decide(&config, false, 1000, false), None, "an image");
        let off = Config {
            compress_min_bytes: 0,
            ..Config::default()
        };
        assert_eq!(decide(&off, false, 0, true), None);
        assert_eq!(decide(&off, false, u64::MAX, true), None);
        // The default: on from 32 KiB at level 1.
        let d = Config::default();
        assert_eq!(decide(&d, false, 32 * 1024 - 1, true), None);
        assert_eq!(
            decide(&d, false, 32 * 1024, true),
            Some(Compress {
                codec: Codec::Deflate,
                level: 1
            })
        );
    }

    #[test]
    fn stores_compressed_only_when_it_saves_an_eighth() {
        assert!(worth_storing(8000, 7000 - 5));
        assert!(!worth_storing(8000, 7000 - 4));
        assert!(!worth_storing(8000, 9000));
        assert!(!worth_storing(0, 0));
        assert!(!worth_storing(u64::MAX, u64::MAX));
    }

    #[test]
    fn the_compressed_header_carries_flag_codec_and_raw_length() {
        let m = meta(vec![700, 300]);
        let plain = encode_header(&m).unwrap();
        let h = compressed_header(&m, Codec::Deflate, 123).unwrap();
        assert_eq!(h.len(), plain.len() + COMPRESSION_FIELDS_LEN);
        assert_eq!(h[5], 1, "flag bit 0");
        assert_eq!(
            &h[12..16],
            &123u32.to_le_bytes(),
            "payload_len: the stored bytes"
        );
        assert_eq!(h[FIXED_HEADER_LEN], 1, "codec: deflate");
        assert_eq!(
            &h[FIXED_HEADER_LEN + 1..FIXED_HEADER_LEN + 5],
            &1000u32.to_le_bytes(),
            "raw length"
        );
        // Everything else is the plain header's, after the compression fields.
        assert_eq!(&h[16..FIXED_HEADER_LEN], &plain[16..FIXED_HEADER_LEN]);
        assert_eq!(&h[FIXED_HEADER_LEN + 5..], &plain[FIXED_HEADER_LEN..]);
        assert_eq!(
            compressed_header(&m, Codec::Deflate, u64::from(u32::MAX) + 1),
            Err(EncodeError::TooLarge)
        );
    }

    #[test]
    fn a_plain_value_needs_no_inflation() {
        let m = meta(vec![10]);
        let mut v = encode_header(&m).unwrap();
        v.extend_from_slice(&[0; 10]);
        assert_eq!(plan_inflation(&v, v.len(), 1 << 20), Ok(None));
    }

    #[test]
    fn inflation_gives_back_the_plain_header() {
        let m = meta(vec![600, 400]);
        let mut v = compressed_header(&m, Codec::Deflate, 50).unwrap();
        let header_len = v.len();
        v.extend_from_slice(&[7; 50]);
        let plan = plan_inflation(&v, v.len(), 1 << 20).unwrap().unwrap();
        assert_eq!(plan.codec, Codec::Deflate);
        assert_eq!(plan.payload_offset, header_len);
        assert_eq!(plan.raw_len, 1000);
        assert_eq!(plan.header, encode_header(&m).unwrap());
        // A prefix that does not hold the header asks for it.
        assert_eq!(
            plan_inflation(&v[..FIXED_HEADER_LEN], v.len(), 1 << 20),
            Err(DecodeError::NeedMore { header_len })
        );
    }

    #[test]
    fn a_bomb_is_refused_before_anything_is_allocated() {
        // 60 stored bytes that claim to inflate to 4 GiB - 1.
        let m = meta(vec![u32::MAX]);
        let mut v = compressed_header(&m, Codec::Deflate, 60).unwrap();
        v.extend_from_slice(&[0; 60]);
        assert_eq!(
            plan_inflation(&v, v.len(), 8 << 20),
            Err(DecodeError::LimitExceeded("maxEntryBytes"))
        );
        // At the limit exactly, it is planned (the host then bounds the codec by raw_len).
        let m = meta(vec![1000]);
        let mut v = compressed_header(&m, Codec::Deflate, 60).unwrap();
        v.extend_from_slice(&[0; 60]);
        let max = encode_header(&m).unwrap().len() as u64 + 1000;
        assert!(plan_inflation(&v, v.len(), max).unwrap().is_some());
        assert_eq!(
            plan_inflation(&v, v.len(), max - 1),
            Err(DecodeError::LimitExceeded("maxEntryBytes"))
        );
    }

    #[test]
    fn declared_lengths_must_agree() {
        let m = meta(vec![1000]);
        let mut v = compressed_header(&m, Codec::Deflate, 60).unwrap();
        v.extend_from_slice(&[0; 60]);
        // raw_len no longer the sum of the parts.
        let mut w = v.clone();
        w[FIXED_HEADER_LEN + 1..FIXED_HEADER_LEN + 5].copy_from_slice(&999u32.to_le_bytes());
        assert_eq!(
            plan_inflation(&w, w.len(), 1 << 20),
            Err(DecodeError::LengthMismatch)
        );
        // The stored length disagrees with the value's.
        assert_eq!(
            plan_inflation(&v, v.len() + 1, 1 << 20),
            Err(DecodeError::LengthMismatch)
        );
        // An unknown codec.
        let mut w = v.clone();
        w[FIXED_HEADER_LEN] = 9;
        assert_eq!(
            plan_inflation(&w, w.len(), 1 << 20),
            Err(DecodeError::UnknownCodec(9))
        );
        // The judging decoder never reads a compressed value.
        assert_eq!(decode_header(&v, v.len()), Err(DecodeError::Compressed));
    }

    prop_compose! {
        fn any_meta()(
            key in "\\PC{0,40}",
            tags in proptest::collection::vec("[a-z0-9_/-]{0,20}", 0..6),
            extra in proptest::collection::vec(any::<u8>(), 0..16),
            parts in proptest::collection::vec(0u32..100_000, 0..5),
            incremental in any::<bool>(),
        ) -> EntryMeta {
            EntryMeta {
                kind: if incremental { EntryKind::Incremental } else { EntryKind::UseCache },
                key,
                tags,
                meta: extra,
                parts,
                ..meta(Vec::new())
            }
        }
    }

    proptest! {
        #[test]
        fn compressed_headers_round_trip(m in any_meta(), stored in 0u32..200_000) {
            let h = compressed_header(&m, Codec::Deflate, u64::from(stored)).unwrap();
            let total = h.len() + stored as usize;
            let d = decode_stored_header(&h, total).unwrap();
            prop_assert_eq!(&d.meta, &m);
            prop_assert_eq!(d.header_len, h.len());
            prop_assert_eq!(d.payload_len, stored as usize);
            let raw: u64 = m.parts.iter().map(|p| u64::from(*p)).sum();
            prop_assert_eq!(d.compression.map(|c| u64::from(c.raw_len)), Some(raw));
            prop_assert_eq!(d.compression.map(|c| c.codec), Some(Codec::Deflate));
            // Inflation plans the plain header of the same entry.
            let plan = plan_inflation(&h, total, u64::MAX).unwrap().unwrap();
            prop_assert_eq!(plan.header, encode_header(&m).unwrap());
            prop_assert_eq!(plan.raw_len as u64, raw);
            // Every prefix shorter than the header asks for more, never fails.
            for cut in 0..h.len() {
                match decode_stored_header(&h[..cut], total) {
                    Err(DecodeError::NeedMore { header_len }) => prop_assert!(header_len > cut),
                    other => prop_assert!(false, "cut {}: {:?}", cut, other),
                }
            }
        }

        #[test]
        fn corrupt_compressed_headers_never_panic(
            m in any_meta(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
            extra in 0usize..100,
        ) {
            let mut h = compressed_header(&m, Codec::Deflate, 40).unwrap();
            h.extend_from_slice(&[0; 40]);
            let i = flip.index(h.len());
            h[i] ^= 1 << bit;
            let _ = plan_inflation(&h, h.len(), 1 << 20);
            let _ = plan_inflation(&h, h.len() + extra, 1 << 20);
            let _ = decode_header(&h, h.len());
        }
    }
}
