//! Every error the core can return, in one place, so the host has a single catalogue of the
//! stable `code()` strings it logs and matches on.
//!
//! Codes are part of the host contract: they reach JS as `error.code` and end up in logs and
//! dashboards, so a code, once released, keeps its meaning.

use std::fmt;

/// An invalid [`Config`](crate::Config) setting.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigError {
    /// `prefix` is not `[A-Za-z0-9._-]{1,64}`.
    Prefix,
    /// `maxEntryBytes` is zero or larger than an envelope can describe (`u32::MAX`).
    MaxEntryBytes,
    /// `maxTtlSeconds` is not a finite number in `(0, MAX_TTL_LIMIT_SECONDS]`.
    MaxTtlSeconds,
    /// `defaultTtlSeconds` is not a finite number greater than zero.
    DefaultTtlSeconds,
    /// `tagPruneAfterMs` is not a finite number greater than zero.
    TagPruneAfterMs,
    /// `readTimeoutMs` is not a finite number in `(0, 60000]`.
    ReadTimeoutMs,
    /// `writeTimeoutMs` is not a finite number in `(0, 60000]`.
    WriteTimeoutMs,
    /// `connectTimeoutMs` is not a finite number in `(0, 60000]`.
    ConnectTimeoutMs,
    /// A circuit-breaker threshold (the field named) is out of range.
    Breaker(&'static str),
    /// `outboxCapacity` is not between 1 and 1,000,000.
    OutboxCapacity,
    /// `tagMirrorMaxTags` is not between 1 and 100,000,000.
    TagMirrorMaxTags,
    /// A lease setting (the field named) is out of range.
    Lease(&'static str),
    /// `compressLevel` is not between 1 and 9.
    CompressLevel,
}

impl ConfigError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Prefix => "ERR_CONFIG_PREFIX",
            ConfigError::MaxEntryBytes => "ERR_CONFIG_MAX_ENTRY_BYTES",
            ConfigError::MaxTtlSeconds => "ERR_CONFIG_MAX_TTL_SECONDS",
            ConfigError::DefaultTtlSeconds => "ERR_CONFIG_DEFAULT_TTL_SECONDS",
            ConfigError::TagPruneAfterMs => "ERR_CONFIG_TAG_PRUNE_AFTER_MS",
            ConfigError::ReadTimeoutMs => "ERR_CONFIG_READ_TIMEOUT_MS",
            ConfigError::WriteTimeoutMs => "ERR_CONFIG_WRITE_TIMEOUT_MS",
            ConfigError::ConnectTimeoutMs => "ERR_CONFIG_CONNECT_TIMEOUT_MS",
            ConfigError::Breaker(_) => "ERR_CONFIG_BREAKER",
            ConfigError::OutboxCapacity => "ERR_CONFIG_OUTBOX_CAPACITY",
            ConfigError::TagMirrorMaxTags => "ERR_CONFIG_TAG_MIRROR_MAX_TAGS",
            ConfigError::Lease(_) => "ERR_CONFIG_LEASE",
            ConfigError::CompressLevel => "ERR_CONFIG_COMPRESS_LEVEL",
        }
    }

    /// The offending setting, spelled as in the JS configuration object.
    pub fn field(&self) -> &'static str {
        match self {
            ConfigError::Prefix => "prefix",
            ConfigError::MaxEntryBytes => "maxEntryBytes",
            ConfigError::MaxTtlSeconds => "maxTtlSeconds",
            ConfigError::DefaultTtlSeconds => "defaultTtlSeconds",
            ConfigError::TagPruneAfterMs => "tagPruneAfterMs",
            ConfigError::ReadTimeoutMs => "readTimeoutMs",
            ConfigError::WriteTimeoutMs => "writeTimeoutMs",
            ConfigError::ConnectTimeoutMs => "connectTimeoutMs",
            ConfigError::Breaker(field) => field,
            ConfigError::OutboxCapacity => "outboxCapacity",
            ConfigError::TagMirrorMaxTags => "tagMirrorMaxTags",
            ConfigError::Lease(field) => field,
            ConfigError::CompressLevel => "compressLevel",
        }
    }
}

impl ConfigError {
    /// The message: `invalid fleetcache config: <setting> <why>`. [`Display`](fmt::Display)
    /// writes the same text; the binding calls this, without `core::fmt`.
    pub fn message(&self) -> String {
        let why = match self {
            ConfigError::Prefix => "must match [A-Za-z0-9._-]{1,64}",
            ConfigError::MaxEntryBytes => "must be between 1 and 4294967295",
            ConfigError::MaxTtlSeconds => {
                "must be a finite number of seconds, > 0 and <= 100 years"
            }
            ConfigError::DefaultTtlSeconds => "must be a finite number of seconds > 0",
            ConfigError::TagPruneAfterMs => {
                "must be a finite number of milliseconds, at least maxTtlSeconds * 1000"
            }
            ConfigError::ReadTimeoutMs
            | ConfigError::WriteTimeoutMs
            | ConfigError::ConnectTimeoutMs => {
                "must be a finite number of milliseconds, > 0 and <= 60000"
            }
            ConfigError::Breaker(_) => {
                "is out of range (counts >= 1, rate in (0, 1], durations in ms > 0 and <= 1 hour, max open >= open)"
            }
            ConfigError::OutboxCapacity => "must be between 1 and 1000000",
            ConfigError::TagMirrorMaxTags => "must be between 1 and 100000000",
            ConfigError::Lease(_) => {
                "is out of range (leaseTtlMs in [1, 600000] ms, leaseWaitMs in [0, 60000] ms)"
            }
            ConfigError::CompressLevel => "must be an integer between 1 and 9",
        };
        crate::text!("invalid fleetcache config: ", self.field(), " ", why)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ConfigError {}

/// A name that cannot become part of a Redis key.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyError {
    /// The key prefix is not `[A-Za-z0-9._-]{1,64}`.
    InvalidPrefix,
    /// A `cacheHandlers` name is not `[a-z-]{1,32}`.
    InvalidHandlerName,
    /// An interface segment is neither `inc` nor `uc-<name>`.
    InvalidInterface,
    /// A cache key is not well-formed UTF-16 (a lone surrogate). Only a caller that holds the
    /// key as UTF-16 can tell (the binding): as UTF-8 it has already become U+FFFD, and would
    /// share an entry with every key that differs from it only there.
    IllFormedCacheKey,
}

impl KeyError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::InvalidPrefix => "ERR_KEY_PREFIX",
            KeyError::InvalidHandlerName => "ERR_KEY_HANDLER_NAME",
            KeyError::InvalidInterface => "ERR_KEY_INTERFACE",
            KeyError::IllFormedCacheKey => "ERR_KEY_ILL_FORMED",
        }
    }
}

impl KeyError {
    /// The message, which [`Display`](fmt::Display) writes.
    pub fn message(&self) -> &'static str {
        match self {
            KeyError::InvalidPrefix => "key prefix must match [A-Za-z0-9._-]{1,64}",
            KeyError::InvalidHandlerName => "cache handler name must match [a-z-]{1,32}",
            KeyError::InvalidInterface => "interface must be `inc` or `uc-<handler name>`",
            KeyError::IllFormedCacheKey => {
                "cache key contains a lone UTF-16 surrogate: not cached (its UTF-8 form would collide with other keys)"
            }
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for KeyError {}

/// Why an [`EntryMeta`](crate::EntryMeta) cannot be written as an envelope.
#[derive(Clone, Debug, PartialEq)]
pub enum EncodeError {
    /// A field is over its format limit; the payload names the field (`maxEntryBytes`: a
    /// compressed value whose plain envelope would be larger than the configured maximum).
    LimitExceeded(&'static str),
    /// A time or duration is NaN (or the timestamp is infinite); the payload names the field.
    InvalidNumber(&'static str),
    /// Header or payload length does not fit the format's `u32` length fields.
    TooLarge,
}

impl EncodeError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            EncodeError::LimitExceeded(_) => "ERR_ENCODE_LIMIT",
            EncodeError::InvalidNumber(_) => "ERR_ENCODE_NUMBER",
            EncodeError::TooLarge => "ERR_ENCODE_TOO_LARGE",
        }
    }
}

impl EncodeError {
    /// The message, which [`Display`](fmt::Display) writes.
    pub fn message(&self) -> String {
        match self {
            EncodeError::LimitExceeded(what) => crate::text!("envelope limit exceeded: ", what),
            EncodeError::InvalidNumber(what) => {
                crate::text!("envelope field ", what, " is not a valid number")
            }
            EncodeError::TooLarge => String::from("envelope lengths do not fit in 32 bits"),
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for EncodeError {}

/// Why a stored value is not a readable version 1 envelope.
///
/// At the host every variant but [`DecodeError::NeedMore`] means "a miss and one log line".
#[derive(Clone, Debug, PartialEq)]
pub enum DecodeError {
    /// The value is shorter than the fixed header.
    TooShort,
    /// The value does not start with `FLCE`: not ours (or written by something else).
    BadMagic,
    /// Written by a format version this release cannot read.
    UnsupportedVersion(u8),
    /// Flag bits this release does not understand.
    UnsupportedFlags(u8),
    /// A compressed value given to the plain decoder: the host could not inflate it (its
    /// own error says why), so it is never judged.
    Compressed,
    /// A compressed value's codec this release does not know.
    UnknownCodec(u8),
    /// An entry kind this release does not know.
    UnknownKind(u16),
    /// `header_len` disagrees with the fields, or a field runs past the header.
    HeaderLength,
    /// `header_len + payload_len` is not the value's length, the parts do not add up to
    /// `payload_len`, or the host passed a prefix longer than the total.
    LengthMismatch,
    /// The key or a tag is not UTF-8.
    InvalidUtf8,
    /// A time or duration is NaN (or the timestamp is infinite).
    InvalidNumber(&'static str),
    /// A field is over its format limit; the payload names the field (`maxEntryBytes`: a
    /// compressed value whose plain envelope would be larger than the configured maximum).
    LimitExceeded(&'static str),
    /// Not an error: the header is `header_len` bytes long and the prefix was shorter.
    NeedMore {
        /// Bytes of prefix needed to decode the header.
        header_len: usize,
    },
}

impl DecodeError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::TooShort => "ERR_DECODE_TOO_SHORT",
            DecodeError::BadMagic => "ERR_DECODE_BAD_MAGIC",
            DecodeError::UnsupportedVersion(_) => "ERR_DECODE_VERSION",
            DecodeError::UnsupportedFlags(_) => "ERR_DECODE_FLAGS",
            DecodeError::Compressed => "ERR_DECODE_COMPRESSED",
            DecodeError::UnknownCodec(_) => "ERR_DECODE_CODEC",
            DecodeError::UnknownKind(_) => "ERR_DECODE_KIND",
            DecodeError::HeaderLength => "ERR_DECODE_HEADER_LENGTH",
            DecodeError::LengthMismatch => "ERR_DECODE_LENGTH_MISMATCH",
            DecodeError::InvalidUtf8 => "ERR_DECODE_UTF8",
            DecodeError::InvalidNumber(_) => "ERR_DECODE_NUMBER",
            DecodeError::LimitExceeded(_) => "ERR_DECODE_LIMIT",
            DecodeError::NeedMore { .. } => "ERR_DECODE_NEED_MORE",
        }
    }
}

impl DecodeError {
    /// The message, which [`Display`](fmt::Display) writes.
    pub fn message(&self) -> String {
        let fixed = match self {
            DecodeError::TooShort => "value is shorter than an envelope header",
            DecodeError::BadMagic => "value is not a fleetcache envelope",
            DecodeError::UnsupportedVersion(v) => {
                return crate::text!("unsupported envelope version ", v)
            }
            DecodeError::UnsupportedFlags(v) => {
                let mut out = String::from("unsupported envelope flags ");
                crate::text::push_hex_u8(&mut out, *v);
                return out;
            }
            DecodeError::Compressed => "compressed entry that was not inflated",
            DecodeError::UnknownCodec(c) => return crate::text!("unknown compression codec ", c),
            DecodeError::UnknownKind(k) => return crate::text!("unknown entry kind ", k),
            DecodeError::HeaderLength => "envelope header length is inconsistent",
            DecodeError::LengthMismatch => "envelope lengths disagree with the value",
            DecodeError::InvalidUtf8 => "envelope key or tag is not UTF-8",
            DecodeError::InvalidNumber(what) => {
                return crate::text!("envelope field ", what, " is not a valid number")
            }
            DecodeError::LimitExceeded(what) => {
                return crate::text!("envelope limit exceeded: ", what)
            }
            DecodeError::NeedMore { header_len } => {
                return crate::text!("need the first ", header_len, " bytes of the value")
            }
        };
        String::from(fixed)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for DecodeError {}

/// A malformed netstring sequence.
#[derive(Clone, Debug, PartialEq)]
pub enum NetstringError {
    /// The input ended inside an item.
    Truncated,
    /// The length is empty, has a non-digit, or a leading zero.
    BadLength,
    /// The length does not fit in memory terms (more digits than any real reply).
    LengthOverflow,
    /// The byte after the length is not `:`.
    MissingColon,
    /// The byte after the data is not `,`.
    MissingComma,
}

impl NetstringError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            NetstringError::Truncated => "ERR_NETSTRING_TRUNCATED",
            NetstringError::BadLength => "ERR_NETSTRING_LENGTH",
            NetstringError::LengthOverflow => "ERR_NETSTRING_OVERFLOW",
            NetstringError::MissingColon => "ERR_NETSTRING_COLON",
            NetstringError::MissingComma => "ERR_NETSTRING_COMMA",
        }
    }
}

impl NetstringError {
    /// The message, which [`Display`](fmt::Display) writes.
    pub fn message(&self) -> &'static str {
        match self {
            NetstringError::Truncated => "netstring truncated",
            NetstringError::BadLength => "netstring length is not a canonical decimal number",
            NetstringError::LengthOverflow => "netstring length too large",
            NetstringError::MissingColon => "netstring length not followed by ':'",
            NetstringError::MissingComma => "netstring data not followed by ','",
        }
    }
}

impl fmt::Display for NetstringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for NetstringError {}

/// A reply from Redis (or a stored tag record) that does not follow internals.md.
#[derive(Clone, Debug, PartialEq)]
pub enum ProtocolError {
    /// The reply is not a valid netstring sequence.
    Netstring(NetstringError),
    /// The reply has fewer than the three leading items, or a tag without its record.
    ReplyShape,
    /// The epoch or a tag name is not UTF-8.
    InvalidUtf8,
    /// The version is not a decimal integer.
    BadVersion,
    /// The full flag is neither `0` nor `1`.
    BadFlag,
    /// A tag record is not five comma-separated decimal integers.
    BadTagRecord,
}

impl ProtocolError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::Netstring(e) => e.code(),
            ProtocolError::ReplyShape => "ERR_PROTOCOL_REPLY_SHAPE",
            ProtocolError::InvalidUtf8 => "ERR_PROTOCOL_UTF8",
            ProtocolError::BadVersion => "ERR_PROTOCOL_VERSION",
            ProtocolError::BadFlag => "ERR_PROTOCOL_FLAG",
            ProtocolError::BadTagRecord => "ERR_PROTOCOL_TAG_RECORD",
        }
    }
}

impl ProtocolError {
    /// The message, which [`Display`](fmt::Display) writes.
    pub fn message(&self) -> String {
        String::from(match self {
            ProtocolError::Netstring(e) => return crate::text!("tag reply: ", e.message()),
            ProtocolError::ReplyShape => "tag reply has the wrong number of items",
            ProtocolError::InvalidUtf8 => "tag reply epoch or tag is not UTF-8",
            ProtocolError::BadVersion => "tag reply version is not an integer",
            ProtocolError::BadFlag => "tag reply full flag is not 0 or 1",
            ProtocolError::BadTagRecord => "tag record is not five comma-separated integers",
        })
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ProtocolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProtocolError::Netstring(e) => Some(e),
            _ => None,
        }
    }
}

impl From<NetstringError> for ProtocolError {
    fn from(e: NetstringError) -> Self {
        ProtocolError::Netstring(e)
    }
}

/// Why the engine refuses to plan an operation.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanError {
    /// Header plus payload is larger than `maxEntryBytes`.
    TooLarge {
        /// Bytes the entry would take in Redis.
        size: u64,
        /// The configured cap.
        max: u64,
    },
    /// The entry cannot be encoded (limits, NaN times).
    Encode(EncodeError),
    /// The entry kind does not belong to the interface it is written under.
    KindMismatch,
    /// A tag update without tags.
    NoTags,
    /// No tag left once those longer than [`crate::tags::MAX_TAG_BYTES`] were dropped, or
    /// an entry with more than [`crate::tags::MAX_ENTRY_TAGS`] distinct tags (not stored).
    TagLimit,
    /// The epoch candidate is empty or longer than 128 bytes.
    InvalidEpoch,
    /// `now` is not a finite, non-negative number of milliseconds.
    InvalidTime,
    /// A lease token is empty or longer than 128 bytes.
    InvalidToken,
}

impl PlanError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PlanError::TooLarge { .. } => "ERR_PLAN_TOO_LARGE",
            PlanError::Encode(e) => e.code(),
            PlanError::KindMismatch => "ERR_PLAN_KIND_MISMATCH",
            PlanError::NoTags => "ERR_PLAN_NO_TAGS",
            PlanError::TagLimit => "ERR_PLAN_TAG_LIMIT",
            PlanError::InvalidEpoch => "ERR_PLAN_EPOCH",
            PlanError::InvalidTime => "ERR_PLAN_TIME",
            PlanError::InvalidToken => "ERR_PLAN_TOKEN",
        }
    }
}

impl PlanError {
    /// The message, which [`Display`](fmt::Display) writes.
    pub fn message(&self) -> String {
        String::from(match self {
            PlanError::TooLarge { size, max } => {
                return crate::text!("entry of ", size, " bytes exceeds maxEntryBytes (", max, ")")
            }
            PlanError::Encode(e) => return crate::text!("cannot encode entry: ", e.message()),
            PlanError::KindMismatch => "entry kind does not match the interface",
            PlanError::NoTags => "tag update without tags",
            PlanError::TagLimit => {
                "tags past fleetcache's limits: every tag longer than 16384 bytes (percent-encoded) was dropped, or an entry carries more than 65535 distinct tags"
            }
            PlanError::InvalidEpoch => "epoch candidate must be 1 to 128 bytes",
            PlanError::InvalidTime => "now must be a finite, non-negative time in ms",
            PlanError::InvalidToken => "lease token must be 1 to 128 bytes",
        })
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for PlanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PlanError::Encode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<EncodeError> for PlanError {
    fn from(e: EncodeError) -> Self {
        PlanError::Encode(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_prefixed_and_distinct() {
        let codes = [
            ConfigError::Prefix.code(),
            ConfigError::MaxEntryBytes.code(),
            ConfigError::MaxTtlSeconds.code(),
            ConfigError::DefaultTtlSeconds.code(),
            ConfigError::TagPruneAfterMs.code(),
            ConfigError::ReadTimeoutMs.code(),
            ConfigError::WriteTimeoutMs.code(),
            ConfigError::ConnectTimeoutMs.code(),
            ConfigError::Breaker("x").code(),
            ConfigError::OutboxCapacity.code(),
            ConfigError::TagMirrorMaxTags.code(),
            ConfigError::CompressLevel.code(),
            KeyError::InvalidPrefix.code(),
            KeyError::InvalidHandlerName.code(),
            KeyError::InvalidInterface.code(),
            KeyError::IllFormedCacheKey.code(),
            EncodeError::LimitExceeded("x").code(),
            EncodeError::InvalidNumber("x").code(),
            EncodeError::TooLarge.code(),
            DecodeError::TooShort.code(),
            DecodeError::BadMagic.code(),
            DecodeError::UnsupportedVersion(2).code(),
            DecodeError::UnsupportedFlags(1).code(),
            DecodeError::Compressed.code(),
            DecodeError::UnknownCodec(9).code(),
            DecodeError::UnknownKind(9).code(),
            DecodeError::HeaderLength.code(),
            DecodeError::LengthMismatch.code(),
            DecodeError::InvalidUtf8.code(),
            DecodeError::InvalidNumber("x").code(),
            DecodeError::LimitExceeded("x").code(),
            DecodeError::NeedMore { header_len: 1 }.code(),
            NetstringError::Truncated.code(),
            NetstringError::BadLength.code(),
            NetstringError::LengthOverflow.code(),
            NetstringError::MissingColon.code(),
            NetstringError::MissingComma.code(),
            ProtocolError::ReplyShape.code(),
            ProtocolError::InvalidUtf8.code(),
            ProtocolError::BadVersion.code(),
            ProtocolError::BadFlag.code(),
            ProtocolError::BadTagRecord.code(),
            PlanError::TooLarge { size: 2, max: 1 }.code(),
            PlanError::KindMismatch.code(),
            PlanError::NoTags.code(),
            PlanError::TagLimit.code(),
            PlanError::InvalidEpoch.code(),
            PlanError::InvalidTime.code(),
        ];
        let mut seen = std::collections::HashSet::new();
        for code in codes {
            assert!(code.starts_with("ERR_"), "{code}");
            assert!(seen.insert(code), "duplicate code {code}");
        }
    }

    #[test]
    fn display_names_the_field() {
        assert!(ConfigError::Prefix.to_string().contains("prefix"));
        assert!(PlanError::TooLarge { size: 10, max: 5 }
            .to_string()
            .contains("10"));
        assert_eq!(
            ProtocolError::from(NetstringError::Truncated).code(),
            "ERR_NETSTRING_TRUNCATED"
        );
    }

    // The messages with numbers in them, as the `format!` strings they replaced wrote them
    // (docs/decisions/0028-wasm-size-budget.md, sixth pass): the same text for the host.
    #[test]
    fn messages_with_numbers_read_as_their_format_strings() {
        for v in [0u8, 1, 9, 10, 0x0f, 0x10, 0xab, u8::MAX] {
            assert_eq!(
                DecodeError::UnsupportedFlags(v).message(),
                format!("unsupported envelope flags {v:#04x}")
            );
            assert_eq!(
                DecodeError::UnsupportedVersion(v).message(),
                format!("unsupported envelope version {v}")
            );
            assert_eq!(
                DecodeError::UnknownCodec(v).message(),
                format!("unknown compression codec {v}")
            );
        }
        for k in [0u16, 7, 10, u16::MAX] {
            assert_eq!(
                DecodeError::UnknownKind(k).message(),
                format!("unknown entry kind {k}")
            );
        }
        for n in [0usize, 1, 37, 65_536, usize::MAX] {
            assert_eq!(
                DecodeError::NeedMore { header_len: n }.message(),
                format!("need the first {n} bytes of the value")
            );
        }
        for (size, max) in [(0u64, 0u64), (10, 5), (u64::MAX, 1 << 32)] {
            assert_eq!(
                PlanError::TooLarge { size, max }.message(),
                format!("entry of {size} bytes exceeds maxEntryBytes ({max})")
            );
        }
        assert_eq!(
            PlanError::Encode(EncodeError::InvalidNumber("age")).message(),
            "cannot encode entry: envelope field age is not a valid number"
        );
        assert_eq!(
            ProtocolError::from(NetstringError::MissingComma).message(),
            "tag reply: netstring data not followed by ','"
        );
        assert_eq!(
            ConfigError::Lease("leaseWaitMs").message(),
            "invalid fleetcache config: leaseWaitMs is out of range (leaseTtlMs in [1, 600000] ms, leaseWaitMs in [0, 60000] ms)"
        );
    }

    #[test]
    fn display_writes_the_message() {
        let errors: [&dyn fmt::Display; 6] = [
            &ConfigError::Prefix,
            &KeyError::InvalidPrefix,
            &EncodeError::LimitExceeded("tags"),
            &DecodeError::UnsupportedFlags(3),
            &NetstringError::Truncated,
            &PlanError::TooLarge { size: 10, max: 5 },
        ];
        let messages = [
            ConfigError::Prefix.message(),
            KeyError::InvalidPrefix.message().to_owned(),
            EncodeError::LimitExceeded("tags").message(),
            DecodeError::UnsupportedFlags(3).message(),
            NetstringError::Truncated.message().to_owned(),
            PlanError::TooLarge { size: 10, max: 5 }.message(),
        ];
        for (e, m) in errors.iter().zip(messages) {
            assert_eq!(e.to_string(), m);
        }
    }
}
