//! The stored entry envelope, format version 1 (internals.md, "Entry envelope").
//!
//! Only the header is encoded and decoded here. The payload stays in the host (a JS
//! `Buffer`): the host prepends the header on write and slices the payload off at
//! `header_len` on read, so large values never cross into wasm. A compressed value (flag bit
//! 0) stores the codec's output instead of the parts; the host inflates it into the plain
//! envelope ([`crate::compression`]) before anything judges it, so [`decode_header`], which
//! every judgement uses, reads plain values only.

use std::borrow::Cow;

use crate::error::{DecodeError, EncodeError};
use crate::time::Millis;

/// First four bytes of every envelope.
pub const MAGIC: [u8; 4] = *b"FLCE";
/// The only version this release writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes before the first variable-length field of a plain value.
pub const FIXED_HEADER_LEN: usize = 48;
/// Flag bit 0: the payload is compressed; [`COMPRESSION_FIELDS_LEN`] bytes follow the fixed
/// header (codec, then the payload's length once inflated).
pub const FLAG_COMPRESSED: u8 = 0x01;
/// Bytes a compressed value's header adds after the fixed part: `u8` codec, `u32` raw length.
pub const COMPRESSION_FIELDS_LEN: usize = 5;
/// Flag bit 1: the value was made before `timestamp` ([`EntryMeta::made_at`]); an `f64`
/// ([`MADE_FIELD_LEN`] bytes) follows the fixed header and any compression fields.
pub const FLAG_MADE: u8 = 0x02;
/// Bytes the made time adds to a header that has it.
pub const MADE_FIELD_LEN: usize = 8;

/// How a compressed payload was encoded. Only codecs both runtimes of a fleet have natively
/// (`node:zlib`, `CompressionStream`) may be listed here: a Node pod and a workers isolate
/// read each other's entries (docs/decisions/0030-compression-of-stored-entries.md).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// A zlib stream (RFC 1950: deflate with an Adler-32 trailer), as `node:zlib`'s
    /// `deflate` and `CompressionStream('deflate')` write it.
    Deflate = 1,
}

impl Codec {
    /// The wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The codec for a wire value, `None` for codecs this release does not know.
    pub fn from_u8(v: u8) -> Option<Codec> {
        match v {
            1 => Some(Codec::Deflate),
            _ => None,
        }
    }

    /// The codec's name, as the host's codecs (`node:zlib`, `CompressionStream`) spell it.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Deflate => "deflate",
        }
    }
}

/// What a compressed value's header says of its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    /// How the stored payload was encoded.
    pub codec: Codec,
    /// The payload's length once inflated: the sum of the part lengths.
    pub raw_len: u32,
}

/// What an entry stores, which also says which interface wrote it.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A `'use cache'` entry (`cacheHandlers`).
    UseCache = 1,
    /// An entry of the singular `cacheHandler`.
    Incremental = 2,
}

impl EntryKind {
    /// The wire value.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The kind for a wire value, `None` for kinds this release does not know.
    pub fn from_u16(v: u16) -> Option<EntryKind> {
        match v {
            1 => Some(EntryKind::UseCache),
            2 => Some(EntryKind::Incremental),
            _ => None,
        }
    }
}

/// Format limits, enforced on encode and on decode, so that neither a writer bug nor a
/// foreign value can make a reader allocate or loop without bound.
#[derive(Clone, Copy, Debug)]
pub struct Limits;

impl Limits {
    /// Longest original cache key in bytes (256 KiB).
    pub const MAX_KEY_BYTES: usize = 256 * 1024;
    /// Most tags per entry: all the `u16` count field holds (pre-0.1.0 builds read
    /// at most 1,024 and take an entry with more for corrupt, a miss).
    pub const MAX_TAGS: usize = crate::tags::MAX_ENTRY_TAGS;
    /// Longest tag in bytes (pre-0.1.0 builds: 1,024, same consequence).
    pub const MAX_TAG_BYTES: usize = crate::tags::MAX_TAG_BYTES;
    /// Largest host metadata blob in bytes (1 MiB).
    pub const MAX_META_BYTES: usize = 1024 * 1024;
    /// Most payload parts.
    pub const MAX_PARTS: usize = 4096;
    /// Shortest header: fixed part plus the four length/count fields with nothing in them.
    pub const MIN_HEADER_LEN: usize = FIXED_HEADER_LEN + 4 + 2 + 4 + 2;
    /// Longest header the limits allow (about 1 GiB, below `u32::MAX`; the configured
    /// `maxEntryBytes` bounds what is actually written far below that). A compressed value's
    /// header may be [`COMPRESSION_FIELDS_LEN`] bytes longer.
    pub const MAX_HEADER_LEN: usize = Self::MIN_HEADER_LEN
        + Self::MAX_KEY_BYTES
        + Self::MAX_TAGS * (2 + Self::MAX_TAG_BYTES)
        + Self::MAX_META_BYTES
        + Self::MAX_PARTS * 4;

    /// The shortest and longest header with the optional fields `flags` announces.
    fn header_len_range(flags: u8) -> std::ops::RangeInclusive<usize> {
        let extra = optional_fields_len(flags);
        Self::MIN_HEADER_LEN + extra..=Self::MAX_HEADER_LEN + extra
    }
}

/// Everything in an envelope except the payload bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryMeta {
    /// Which interface the entry belongs to.
    pub kind: EntryKind,
    /// Creation time (ms since epoch): what `revalidate` and `expire` count from. Must be
    /// finite.
    pub timestamp: Millis,
    /// When the value itself was made, where that is before `timestamp`: a value written back
    /// unchanged (Next 16.5 does so when a regeneration fails, to delay the next attempt) is
    /// stamped with the write-back for its lifetime, while its tags judge it by when it was
    /// made, so a revalidation between the two, however late it reaches Redis, still makes it
    /// stale ([`EntryMeta::made`]). Finite and not after `timestamp`.
    pub made_at: Option<Millis>,
    /// Seconds after `timestamp` when the entry should be regenerated (may be `Infinity`
    /// or negative). Never NaN.
    pub revalidate: f64,
    /// Seconds after `timestamp` when the entry is gone (may be `Infinity`). Never NaN.
    pub expire: f64,
    /// Client-side staleness in seconds. Never NaN.
    pub stale: f64,
    /// The original cache key, compared on every read.
    pub key: String,
    /// The entry's own tags.
    pub tags: Vec<String>,
    /// Opaque host metadata (e.g. JSON for the singular handler's value shape).
    pub meta: Vec<u8>,
    /// Lengths of the payload parts, in order; the payload is their concatenation.
    pub parts: Vec<u32>,
}

impl EntryMeta {
    /// The time tags judge the value by: when it was made ([`EntryMeta::made_at`]), else its
    /// creation time.
    pub fn made(&self) -> Millis {
        self.made_at.unwrap_or(self.timestamp)
    }
}

/// The length of the optional header fields `flags` announces (compression, made time).
fn optional_fields_len(flags: u8) -> usize {
    let mut len = 0;
    if flags & FLAG_COMPRESSED != 0 {
        len += COMPRESSION_FIELDS_LEN;
    }
    if flags & FLAG_MADE != 0 {
        len += MADE_FIELD_LEN;
    }
    len
}

/// A decoded header and where the payload is.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedHeader {
    /// The decoded fields.
    pub meta: EntryMeta,
    /// Offset of the first payload byte.
    pub header_len: usize,
    /// Payload bytes after the header, as stored (the codec's output when compressed).
    pub payload_len: usize,
    /// `Some` for a compressed value ([`decode_stored_header`] only): its parts are the
    /// inflated payload's.
    pub compression: Option<Compression>,
}

impl DecodedHeader {
    /// An upper estimate of the heap a decoded header holds, shared (`Rc`) as the tier's index
    /// keeps it ([`crate::lru::LruIndex::keep_header`]): the struct, each heap block's contents
    /// and [`HEAP_BLOCK_OVERHEAD`] per block (the key, the tag list, each tag, the metadata,
    /// the part list). At most [`Limits::MAX_TAGS`] tags, each at most
    /// [`Limits::MAX_TAG_BYTES`] (three times that in canonical form), so it is bounded.
    pub fn heap_bytes(&self) -> u64 {
        let m = &self.meta;
        let string = std::mem::size_of::<String>();
        let tags: usize = m
            .tags
            .iter()
            .map(|t| t.capacity() + HEAP_BLOCK_OVERHEAD)
            .sum();
        let bytes = std::mem::size_of::<DecodedHeader>()
            + 2 * std::mem::size_of::<usize>()
            + m.key.capacity()
            + m.tags.capacity() * string
            + tags
            + m.meta.capacity()
            + m.parts.capacity() * std::mem::size_of::<u32>()
            + 5 * HEAP_BLOCK_OVERHEAD;
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }
}

/// What the allocator may spend around each heap block (its header and rounding), as
/// [`DecodedHeader::heap_bytes`] counts it.
pub const HEAP_BLOCK_OVERHEAD: usize = 16;

fn check_limit(len: usize, max: usize, what: &'static str) -> Result<(), EncodeError> {
    if len > max {
        Err(EncodeError::LimitExceeded(what))
    } else {
        Ok(())
    }
}

/// NaN durations would make every comparison false (an entry that never expires), and an
/// infinite timestamp would escape every tag; both are refused on write and on read.
fn invalid_number(m: &EntryMeta) -> Option<&'static str> {
    if !m.timestamp.0.is_finite() {
        Some("timestamp")
    } else if m.revalidate.is_nan() {
        Some("revalidate")
    } else if m.expire.is_nan() {
        Some("expire")
    } else if m.stale.is_nan() {
        Some("stale")
    } else if m
        .made_at
        .is_some_and(|made| !made.0.is_finite() || made > m.timestamp)
    {
        Some("made")
    } else {
        None
    }
}

fn len_u32(len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::TooLarge)
}

fn len_u16(len: usize) -> Result<u16, EncodeError> {
    u16::try_from(len).map_err(|_| EncodeError::TooLarge)
}

/// Encodes the header of `m`. The host appends the payload parts, in order, right after it.
pub fn encode_header(m: &EntryMeta) -> Result<Vec<u8>, EncodeError> {
    encode(m, None)
}

/// Encodes the header of `m` stored compressed: `stored_len` bytes of `codec` output follow
/// it, which inflate to the parts, in order.
pub fn encode_compressed_header(
    m: &EntryMeta,
    codec: Codec,
    stored_len: u32,
) -> Result<Vec<u8>, EncodeError> {
    encode(m, Some((codec, stored_len)))
}

fn encode(m: &EntryMeta, compressed: Option<(Codec, u32)>) -> Result<Vec<u8>, EncodeError> {
    check_limit(m.key.len(), Limits::MAX_KEY_BYTES, "key")?;
    check_limit(m.tags.len(), Limits::MAX_TAGS, "tags")?;
    for tag in &m.tags {
        check_limit(tag.len(), Limits::MAX_TAG_BYTES, "tag")?;
    }
    check_limit(m.meta.len(), Limits::MAX_META_BYTES, "meta")?;
    check_limit(m.parts.len(), Limits::MAX_PARTS, "parts")?;
    if let Some(field) = invalid_number(m) {
        return Err(EncodeError::InvalidNumber(field));
    }

    let payload_len = m
        .parts
        .iter()
        .try_fold(0u32, |acc, p| acc.checked_add(*p))
        .ok_or(EncodeError::TooLarge)?;
    // Bounded by Limits::MAX_HEADER_LEN (about 1 GiB), so none of these sums can overflow.
    let tags_len: usize = m.tags.iter().map(|t| 2 + t.len()).sum();
    let mut flags = 0;
    if compressed.is_some() {
        flags |= FLAG_COMPRESSED;
    }
    if m.made_at.is_some() {
        flags |= FLAG_MADE;
    }
    let header_len = Limits::MIN_HEADER_LEN
        + optional_fields_len(flags)
        + m.key.len()
        + tags_len
        + m.meta.len()
        + 4 * m.parts.len();

    let mut out = Vec::with_capacity(header_len);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.push(flags);
    out.extend_from_slice(&m.kind.as_u16().to_le_bytes());
    out.extend_from_slice(&len_u32(header_len)?.to_le_bytes());
    let stored_len = compressed.map_or(payload_len, |(_, stored)| stored);
    out.extend_from_slice(&stored_len.to_le_bytes());
    out.extend_from_slice(&m.timestamp.0.to_le_bytes());
    out.extend_from_slice(&m.revalidate.to_le_bytes());
    out.extend_from_slice(&m.expire.to_le_bytes());
    out.extend_from_slice(&m.stale.to_le_bytes());
    if let Some((codec, _)) = compressed {
        out.push(codec.as_u8());
        out.extend_from_slice(&payload_len.to_le_bytes());
    }
    if let Some(made) = m.made_at {
        out.extend_from_slice(&made.0.to_le_bytes());
    }
    out.extend_from_slice(&len_u32(m.key.len())?.to_le_bytes());
    out.extend_from_slice(m.key.as_bytes());
    out.extend_from_slice(&len_u16(m.tags.len())?.to_le_bytes());
    for tag in &m.tags {
        out.extend_from_slice(&len_u16(tag.len())?.to_le_bytes());
        out.extend_from_slice(tag.as_bytes());
    }
    out.extend_from_slice(&len_u32(m.meta.len())?.to_le_bytes());
    out.extend_from_slice(&m.meta);
    out.extend_from_slice(&len_u16(m.parts.len())?.to_le_bytes());
    for part in &m.parts {
        out.extend_from_slice(&part.to_le_bytes());
    }
    debug_assert_eq!(out.len(), header_len);
    Ok(out)
}

/// A bounds-checked reader over the header bytes: running past the end is a
/// `HeaderLength` error, never a panic.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

// Small and called per field of every header read: always inlined, even at opt-level "z".
impl<'a> Reader<'a> {
    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::HeaderLength)?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError::HeaderLength)?;
        self.pos = end;
        Ok(bytes)
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        // A load of N bytes, not a call to copy them (which "z" leaves as one).
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| DecodeError::HeaderLength)
    }

    #[inline(always)]
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    #[inline(always)]
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    #[inline(always)]
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    #[inline(always)]
    fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A length field checked against its limit before anything is read or allocated.
    #[inline(always)]
    fn len_u32(&mut self, max: usize, what: &'static str) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.u32()?).map_err(|_| DecodeError::LimitExceeded(what))?;
        if n > max {
            return Err(DecodeError::LimitExceeded(what));
        }
        Ok(n)
    }

    #[inline(always)]
    fn len_u16(&mut self, max: usize, what: &'static str) -> Result<usize, DecodeError> {
        let n = usize::from(self.u16()?);
        if n > max {
            return Err(DecodeError::LimitExceeded(what));
        }
        Ok(n)
    }

    fn utf8(&mut self, n: usize) -> Result<String, DecodeError> {
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8)
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

/// Decodes the header of a plain value (one whose payload is its parts) from its first bytes.
///
/// `prefix` is the start of the value (any length up to `total_len`), `total_len` the length
/// of the whole value. When the prefix is too short to hold the header, the result is
/// [`DecodeError::NeedMore`] with the number of bytes needed; foreign values (wrong magic,
/// other versions, impossible lengths) are rejected before that, from the first bytes alone.
/// A compressed value is [`DecodeError::Compressed`]: the host inflates those before they are
/// judged, so one reaching this decoder is one it could not inflate.
pub fn decode_header(prefix: &[u8], total_len: usize) -> Result<DecodedHeader, DecodeError> {
    decode(prefix, total_len, false)
}

/// [`decode_header`] for a value as stored, compressed or not: a compressed value's header
/// carries [`DecodedHeader::compression`].
pub fn decode_stored_header(prefix: &[u8], total_len: usize) -> Result<DecodedHeader, DecodeError> {
    decode(prefix, total_len, true)
}

fn decode(
    prefix: &[u8],
    total_len: usize,
    accept_compressed: bool,
) -> Result<DecodedHeader, DecodeError> {
    if prefix.len() > total_len {
        return Err(DecodeError::LengthMismatch);
    }
    let seen_magic = prefix
        .get(..prefix.len().min(MAGIC.len()))
        .unwrap_or_default();
    if MAGIC.get(..seen_magic.len()) != Some(seen_magic) {
        return Err(DecodeError::BadMagic);
    }
    if let Some(&version) = prefix.get(4) {
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
    }
    if total_len < FIXED_HEADER_LEN {
        return Err(DecodeError::TooShort);
    }
    if prefix.len() < FIXED_HEADER_LEN {
        return Err(DecodeError::NeedMore {
            header_len: FIXED_HEADER_LEN,
        });
    }

    let mut r = Reader {
        buf: prefix,
        pos: 0,
    };
    r.take(MAGIC.len())?;
    r.u8()?; // version, checked above
    let flags = r.u8()?;
    if flags & !(FLAG_COMPRESSED | FLAG_MADE) != 0 {
        return Err(DecodeError::UnsupportedFlags(flags));
    }
    let compressed = flags & FLAG_COMPRESSED != 0;
    if compressed && !accept_compressed {
        return Err(DecodeError::Compressed);
    }
    let kind_raw = r.u16()?;
    let kind = EntryKind::from_u16(kind_raw).ok_or(DecodeError::UnknownKind(kind_raw))?;
    let header_len = r.u32()?;
    let payload_len = r.u32()?;
    let header_len = usize::try_from(header_len).map_err(|_| DecodeError::HeaderLength)?;
    if !Limits::header_len_range(flags).contains(&header_len) {
        return Err(DecodeError::HeaderLength);
    }
    if u64::from(payload_len).checked_add(header_len as u64) != Some(total_len as u64) {
        return Err(DecodeError::LengthMismatch);
    }
    let payload_len = usize::try_from(payload_len).map_err(|_| DecodeError::LengthMismatch)?;
    let timestamp = Millis(r.f64()?);
    let revalidate = r.f64()?;
    let expire = r.f64()?;
    let stale = r.f64()?;
    if prefix.len() < header_len {
        return Err(DecodeError::NeedMore { header_len });
    }

    // From here on only the header's own bytes are read: a field claiming more than the
    // header holds is a HeaderLength error even if the payload would have had the bytes.
    let header = prefix.get(..header_len).ok_or(DecodeError::HeaderLength)?;
    let mut r = Reader {
        buf: header,
        pos: r.pos,
    };
    let compression = if compressed {
        let raw = r.u8()?;
        let codec = Codec::from_u8(raw).ok_or(DecodeError::UnknownCodec(raw))?;
        Some(Compression {
            codec,
            raw_len: r.u32()?,
        })
    } else {
        None
    };
    let made_at = if flags & FLAG_MADE != 0 {
        Some(Millis(r.f64()?))
    } else {
        None
    };
    let key_len = r.len_u32(Limits::MAX_KEY_BYTES, "key")?;
    let key = r.utf8(key_len)?;
    let tag_count = r.len_u16(Limits::MAX_TAGS, "tags")?;
    // Sized once: a header the tier keeps is charged for its capacity, and growing by doubling
    // leaves up to half of it unused. Each tag takes at least its 2-byte length, so what the
    // header has left bounds a count that lies.
    let mut tags = Vec::with_capacity(tag_count.min(r.remaining() / 2));
    for _ in 0..tag_count {
        let n = r.len_u16(Limits::MAX_TAG_BYTES, "tag")?;
        // Entries written before canonical tags hold them as Next gave them: compared in
        // canonical form, they keep answering to revalidations from every Next release.
        let tag = r.utf8(n)?;
        tags.push(match crate::tags::canonical_tag(&tag) {
            Cow::Borrowed(_) => tag,
            Cow::Owned(c) => c,
        });
    }
    let meta_len = r.len_u32(Limits::MAX_META_BYTES, "meta")?;
    let meta = r.take(meta_len)?.to_vec();
    let part_count = r.len_u16(Limits::MAX_PARTS, "parts")?;
    let mut parts = Vec::with_capacity(part_count.min(r.remaining() / 4));
    for _ in 0..part_count {
        parts.push(r.u32()?);
    }
    if r.remaining() != 0 {
        return Err(DecodeError::HeaderLength);
    }
    // The parts are what the payload inflates to when it is compressed.
    let parts_sum = parts.iter().map(|p| u64::from(*p)).sum::<u64>();
    let expected = compression.map_or(payload_len as u64, |c| u64::from(c.raw_len));
    if parts_sum != expected {
        return Err(DecodeError::LengthMismatch);
    }

    let meta = EntryMeta {
        kind,
        timestamp,
        made_at,
        revalidate,
        expire,
        stale,
        key,
        tags,
        meta,
        parts,
    };
    if let Some(field) = invalid_number(&meta) {
        return Err(DecodeError::InvalidNumber(field));
    }
    Ok(DecodedHeader {
        meta,
        header_len,
        payload_len,
        compression,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> EntryMeta {
        EntryMeta {
            kind: EntryKind::UseCache,
            timestamp: Millis(1_795_690_530_487.808_8),
            made_at: None,
            revalidate: 900.0,
            expire: f64::INFINITY,
            stale: 300.0,
            key: "[\"80468a\",[],[\"b\"]]".to_owned(),
            tags: vec!["products".to_owned(), "%C3%BC".to_owned()],
            meta: b"{}".to_vec(),
            parts: vec![3, 0, 2],
        }
    }

    fn value_of(m: &EntryMeta) -> Vec<u8> {
        let mut v = encode_header(m).unwrap();
        let payload_len: u32 = m.parts.iter().sum();
        v.extend((0..payload_len).map(|i| i as u8));
        v
    }

    #[test]
    fn layout_is_byte_exact() {
        let m = EntryMeta {
            kind: EntryKind::Incremental,
            timestamp: Millis(1.0),
            made_at: None,
            revalidate: 2.0,
            expire: 3.0,
            stale: 4.0,
            key: "k".to_owned(),
            tags: vec!["t".to_owned()],
            meta: vec![0xaa],
            parts: vec![5],
        };
        let mut expected = Vec::new();
        expected.extend_from_slice(b"FLCE\x01\x00\x02\x00");
        expected.extend_from_slice(&69u32.to_le_bytes());
        expected.extend_from_slice(&5u32.to_le_bytes());
        for f in [1.0f64, 2.0, 3.0, 4.0] {
            expected.extend_from_slice(&f.to_le_bytes());
        }
        expected.extend_from_slice(&[1, 0, 0, 0, b'k']);
        expected.extend_from_slice(&[1, 0, 1, 0, b't']);
        expected.extend_from_slice(&[1, 0, 0, 0, 0xaa]);
        expected.extend_from_slice(&[1, 0, 5, 0, 0, 0]);
        assert_eq!(expected.len(), 69);
        assert_eq!(encode_header(&m).unwrap(), expected);
        let d = decode_header(&expected, 74).unwrap();
        assert_eq!(d.meta, m);
        assert_eq!((d.header_len, d.payload_len), (69, 5));
    }

    /// A header the tier keeps is charged for its vectors' capacity: decoding sizes them
    /// exactly, where growing by doubling left up to half of a tag list unused (170a439).
    #[test]
    fn decoded_lists_have_no_spare_capacity() {
        for n in [1usize, 3, 5, 1000, 10_000] {
            let m = EntryMeta {
                tags: (0..n).map(|i| crate::text!("t", i as u64)).collect(),
                parts: vec![1; n.min(Limits::MAX_PARTS)],
                ..sample()
            };
            let v = value_of(&m);
            let d = decode_header(&v, v.len()).unwrap();
            assert_eq!(d.meta.tags.capacity(), n, "{n} tags");
            assert_eq!(d.meta.parts.capacity(), d.meta.parts.len(), "{n} parts");
        }
    }

    #[test]
    fn round_trip_sample_and_need_more() {
        let m = sample();
        let v = value_of(&m);
        let header_len = encode_header(&m).unwrap().len();
        assert_eq!(
            decode_header(&v[..FIXED_HEADER_LEN], v.len()),
            Err(DecodeError::NeedMore { header_len })
        );
        assert_eq!(
            decode_header(&v[..10], v.len()),
            Err(DecodeError::NeedMore {
                header_len: FIXED_HEADER_LEN
            })
        );
        let d = decode_header(&v[..header_len], v.len()).unwrap();
        assert_eq!(d.meta, m);
        assert_eq!(d.header_len, header_len);
        assert_eq!(d.payload_len, 5);
        assert_eq!(decode_header(&v, v.len()).unwrap(), d);
    }

    /// A value written back unchanged carries when it was made after the fixed header (and
    /// after the compression fields): flag bit 1, eight bytes more.
    #[test]
    fn the_made_time_round_trips_plain_and_compressed() {
        let plain = sample();
        let m = EntryMeta {
            made_at: Some(Millis(plain.timestamp.0 - 60_000.0)),
            ..sample()
        };
        assert_eq!(m.made(), Millis(plain.timestamp.0 - 60_000.0));
        assert_eq!(plain.made(), plain.timestamp);
        let h = encode_header(&m).unwrap();
        let p = encode_header(&plain).unwrap();
        assert_eq!((h[5], h.len()), (FLAG_MADE, p.len() + MADE_FIELD_LEN));
        assert_eq!(
            &h[FIXED_HEADER_LEN..FIXED_HEADER_LEN + MADE_FIELD_LEN],
            &(plain.timestamp.0 - 60_000.0).to_le_bytes()
        );
        let v = value_of(&m);
        assert_eq!(decode_header(&v, v.len()).unwrap().meta, m);
        let c = encode_compressed_header(&m, Codec::Deflate, 3).unwrap();
        assert_eq!(c[5], FLAG_COMPRESSED | FLAG_MADE);
        let at = FIXED_HEADER_LEN + COMPRESSION_FIELDS_LEN;
        assert_eq!(&c[at..at + MADE_FIELD_LEN], &m.made().0.to_le_bytes());
        let d = decode_stored_header(&c, c.len() + 3).unwrap();
        assert_eq!(d.meta, m);
        assert_eq!(d.compression.map(|c| c.raw_len), Some(5));
        // Made after its stamp, or not a time: refused both ways.
        for made in [plain.timestamp.0 + 1.0, f64::NAN, f64::NEG_INFINITY] {
            let bad = EntryMeta {
                made_at: Some(Millis(made)),
                ..sample()
            };
            assert_eq!(encode_header(&bad), Err(EncodeError::InvalidNumber("made")));
            let mut w = v.clone();
            w[FIXED_HEADER_LEN..FIXED_HEADER_LEN + 8].copy_from_slice(&made.to_le_bytes());
            assert_eq!(
                decode_header(&w, w.len()),
                Err(DecodeError::InvalidNumber("made"))
            );
        }
    }

    #[test]
    fn rejects_foreign_values() {
        assert_eq!(decode_header(b"", 0), Err(DecodeError::TooShort));
        assert_eq!(decode_header(b"FLCE", 4), Err(DecodeError::TooShort));
        assert_eq!(
            decode_header(b"FL", 4000),
            Err(DecodeError::NeedMore { header_len: 48 })
        );
        let json = br#"{"value":"aGVsbG8=","tags":[]}"#;
        assert_eq!(decode_header(json, json.len()), Err(DecodeError::BadMagic));
        assert_eq!(decode_header(b"x", 1000), Err(DecodeError::BadMagic));
        assert_eq!(decode_header(b"abc", 3), Err(DecodeError::BadMagic));
        assert_eq!(decode_header(b"abc", 2), Err(DecodeError::LengthMismatch));
    }

    #[test]
    fn rejects_future_versions_flags_and_kinds() {
        let mut v = value_of(&sample());
        let len = v.len();
        v[4] = 2;
        assert_eq!(
            decode_header(&v, len),
            Err(DecodeError::UnsupportedVersion(2))
        );
        assert_eq!(
            decode_header(&v[..5], len),
            Err(DecodeError::UnsupportedVersion(2))
        );
        v[4] = 1;
        // Bit 0 (compressed) is for the stored-value decoder only; bit 1 says the made time
        // follows; other bits are unknown.
        v[5] = 1;
        assert_eq!(decode_header(&v, len), Err(DecodeError::Compressed));
        for flags in [4, 6, 0x80, 0x83] {
            v[5] = flags;
            assert_eq!(
                decode_header(&v, len),
                Err(DecodeError::UnsupportedFlags(flags))
            );
            assert_eq!(
                decode_stored_header(&v, len),
                Err(DecodeError::UnsupportedFlags(flags))
            );
        }
        v[5] = 0;
        v[6] = 9;
        assert_eq!(decode_header(&v, len), Err(DecodeError::UnknownKind(9)));
    }

    #[test]
    fn rejects_inconsistent_lengths() {
        let v = value_of(&sample());
        assert_eq!(
            decode_header(&v, v.len() + 1),
            Err(DecodeError::LengthMismatch)
        );
        // A header_len that points into the middle of the variable fields.
        let mut w = v.clone();
        let hl = u32::from_le_bytes(w[8..12].try_into().unwrap());
        w[8..12].copy_from_slice(&(hl - 1).to_le_bytes());
        w[12..16].copy_from_slice(&6u32.to_le_bytes());
        assert_eq!(decode_header(&w, w.len()), Err(DecodeError::HeaderLength));
        // Parts that do not add up to payload_len.
        let mut m = sample();
        m.parts = vec![5];
        let mut w = value_of(&m);
        let n = w.len();
        w[n - 5 - 4..n - 5].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(decode_header(&w, n), Err(DecodeError::LengthMismatch));
    }

    #[test]
    fn rejects_nan_and_limits() {
        let mut m = sample();
        m.expire = f64::NAN;
        assert_eq!(encode_header(&m), Err(EncodeError::InvalidNumber("expire")));
        let mut m = sample();
        m.timestamp = Millis(f64::INFINITY);
        assert_eq!(
            encode_header(&m),
            Err(EncodeError::InvalidNumber("timestamp"))
        );
        let mut v = value_of(&sample());
        let len = v.len();
        v[24..32].copy_from_slice(&f64::NAN.to_le_bytes());
        assert_eq!(
            decode_header(&v, len),
            Err(DecodeError::InvalidNumber("revalidate"))
        );

        let mut m = sample();
        m.tags = vec![String::new(); Limits::MAX_TAGS + 1];
        assert_eq!(encode_header(&m), Err(EncodeError::LimitExceeded("tags")));
        let mut m = sample();
        m.tags = vec!["x".repeat(Limits::MAX_TAG_BYTES + 1)];
        assert_eq!(encode_header(&m), Err(EncodeError::LimitExceeded("tag")));
        let mut m = sample();
        m.key = "k".repeat(Limits::MAX_KEY_BYTES + 1);
        assert_eq!(encode_header(&m), Err(EncodeError::LimitExceeded("key")));
        let mut m = sample();
        m.meta = vec![0; Limits::MAX_META_BYTES + 1];
        assert_eq!(encode_header(&m), Err(EncodeError::LimitExceeded("meta")));
        let mut m = sample();
        m.parts = vec![0; Limits::MAX_PARTS + 1];
        assert_eq!(encode_header(&m), Err(EncodeError::LimitExceeded("parts")));
        let mut m = sample();
        m.parts = vec![u32::MAX, 1];
        assert_eq!(encode_header(&m), Err(EncodeError::TooLarge));

        // A decoder meeting a tag length over the limit stops before reading the tag.
        let mut m = sample();
        m.tags = vec!["t".to_owned()];
        let mut v = value_of(&m);
        let len = v.len();
        let at = FIXED_HEADER_LEN + 4 + m.key.len() + 2;
        let over = u16::try_from(Limits::MAX_TAG_BYTES + 1).unwrap();
        v[at..at + 2].copy_from_slice(&over.to_le_bytes());
        assert_eq!(
            decode_header(&v, len),
            Err(DecodeError::LimitExceeded("tag"))
        );
    }

    #[test]
    fn limits_at_the_edge_round_trip() {
        // Each limit at its edge on its own: all of them at once would be a 1 GiB header.
        let m = EntryMeta {
            key: "k".repeat(Limits::MAX_KEY_BYTES),
            tags: (0..Limits::MAX_TAGS).map(|i| format!("t{i}")).collect(),
            meta: vec![7; Limits::MAX_META_BYTES],
            parts: vec![0; Limits::MAX_PARTS],
            ..sample()
        };
        let v = value_of(&m);
        assert_eq!(decode_header(&v, v.len()).unwrap().meta, m);
        let m = EntryMeta {
            tags: vec!["t".repeat(Limits::MAX_TAG_BYTES); 3],
            ..sample()
        };
        let v = value_of(&m);
        assert_eq!(decode_header(&v, v.len()).unwrap().meta, m);
        // The largest header still has a length the u32 field holds.
        assert!(u32::try_from(Limits::MAX_HEADER_LEN).is_ok());
        assert_eq!(
            Limits::MAX_HEADER_LEN,
            Limits::MIN_HEADER_LEN
                + Limits::MAX_KEY_BYTES
                + 65_535 * (2 + 16_384)
                + Limits::MAX_META_BYTES
                + Limits::MAX_PARTS * 4
        );
    }

    /// The header of format version 1 as pre-0.1.0 builds wrote it: tags as given.
    #[test]
    fn raw_tags_of_older_entries_decode_in_canonical_form() {
        let m = EntryMeta {
            tags: vec![
                "caf\u{e9}".to_owned(),
                "caf%C3%A9".to_owned(),
                "plain".to_owned(),
            ],
            ..sample()
        };
        let v = value_of(&m);
        let d = decode_header(&v, v.len()).unwrap();
        assert_eq!(d.meta.tags, ["caf%C3%A9", "caf%C3%A9", "plain"]);
    }

    /// An entry past the limits of pre-0.1.0 builds (1,024 tags, 1,024 bytes each):
    /// what such a release's decoder does with it, checked byte for byte against the fields,
    /// is refuse it (a miss), never read something else.
    #[test]
    fn past_the_old_limits_an_old_reader_sees_a_limit_error() {
        const OLD_MAX: usize = 1024;
        for m in [
            EntryMeta {
                tags: (0..OLD_MAX + 1).map(|i| format!("t{i}")).collect(),
                ..sample()
            },
            EntryMeta {
                tags: vec!["t".repeat(OLD_MAX + 1)],
                ..sample()
            },
        ] {
            let h = encode_header(&m).unwrap();
            let at = FIXED_HEADER_LEN + 4 + m.key.len();
            let count = usize::from(u16::from_le_bytes([h[at], h[at + 1]]));
            let first = usize::from(u16::from_le_bytes([h[at + 2], h[at + 3]]));
            assert!(count > OLD_MAX || first > OLD_MAX);
        }
    }

    fn finite_or_inf() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("no NaN", |f| !f.is_nan()),
            Just(f64::INFINITY),
            Just(4_294_967_294.0),
            Just(-1.0),
        ]
    }

    prop_compose! {
        fn any_meta()(
            incremental in any::<bool>(),
            timestamp in any::<f64>().prop_filter("finite", |f| f.is_finite()),
            revalidate in finite_or_inf(),
            expire in finite_or_inf(),
            stale in finite_or_inf(),
            key in any::<String>(),
            // Stored tags are canonical (the plan canonicalises before encoding).
            tags in proptest::collection::vec(
                "\\PC{0,40}".prop_map(|t| crate::tags::canonical_tag(&t).into_owned()),
                0..8,
            ),
            meta in proptest::collection::vec(any::<u8>(), 0..64),
            parts in proptest::collection::vec(0u32..10_000, 0..6),
            made_before in proptest::option::of(0.0f64..1e12),
        ) -> EntryMeta {
            EntryMeta {
                kind: if incremental { EntryKind::Incremental } else { EntryKind::UseCache },
                timestamp: Millis(timestamp),
                made_at: made_before
                    .map(|d| Millis(timestamp - d))
                    .filter(|m| m.0.is_finite() && m.0 <= timestamp),
                revalidate, expire, stale, key, tags, meta, parts,
            }
        }
    }

    proptest! {
        #[test]
        fn round_trip(m in any_meta()) {
            let h = encode_header(&m).unwrap();
            let payload: u64 = m.parts.iter().map(|p| u64::from(*p)).sum();
            let total = h.len() + payload as usize;
            let d = decode_header(&h, total).unwrap();
            prop_assert_eq!(&d.meta, &m);
            prop_assert_eq!(d.header_len, h.len());
            prop_assert_eq!(d.payload_len as u64, payload);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
            extra in 0usize..1000,
            magic in any::<bool>(),
        ) {
            let mut bytes = bytes;
            if magic && bytes.len() >= 6 {
                bytes[..6].copy_from_slice(b"FLCE\x01\x00");
            }
            let _ = decode_header(&bytes, bytes.len());
            let _ = decode_header(&bytes, bytes.len() + extra);
        }

        #[test]
        fn truncations_and_bit_flips_never_panic(m in any_meta(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut h = encode_header(&m).unwrap();
            let payload: usize = m.parts.iter().map(|p| *p as usize).sum();
            let total = h.len() + payload;
            for cut in 0..h.len() {
                // A short prefix of an intact value asks for more, never fails.
                match decode_header(&h[..cut], total) {
                    Err(DecodeError::NeedMore { header_len }) => prop_assert!(header_len > cut),
                    other => prop_assert!(false, "cut {}: {:?}", cut, other),
                }
                // A value that is itself truncated is an error, never a header.
                let truncated = decode_header(&h[..cut], cut);
                prop_assert!(truncated.is_err());
                let need_more = matches!(truncated, Err(DecodeError::NeedMore { .. }));
                prop_assert!(!need_more, "cut {} of a value asked for more", cut);
            }
            let i = flip.index(h.len());
            h[i] ^= 1 << bit;
            let _ = decode_header(&h, total);
            for cut in 0..h.len() {
                let _ = decode_header(&h[..cut], total);
            }
        }
    }
}
