//! Netstrings (`<decimal byte length>:<bytes>,`), the framing of tag-script replies.
//!
//! A Lua script can return one bulk string cheaply (`table.concat`), and netstrings carry
//! arbitrary bytes, so a tag name with commas or newlines cannot break the reply.

use crate::error::NetstringError;

/// More digits than any length a Redis bulk string can have (512 MiB has 9).
const MAX_LEN_DIGITS: usize = 12;

/// Appends one netstring holding `item` to `out`.
pub fn encode_into(out: &mut Vec<u8>, item: &[u8]) {
    out.extend_from_slice(crate::text::u64_text(item.len() as u64).as_bytes());
    out.push(b':');
    out.extend_from_slice(item);
    out.push(b',');
}

/// The concatenated netstrings of `items`.
pub fn encode<I, T>(items: I) -> Vec<u8>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut out = Vec::new();
    for item in items {
        encode_into(&mut out, item.as_ref());
    }
    out
}

/// Iterates over the items of a netstring sequence without copying them.
///
/// After the first error the iterator is exhausted.
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Decoder<'a> {
    /// A decoder over `input`.
    pub fn new(input: &'a [u8]) -> Decoder<'a> {
        Decoder {
            rest: input,
            failed: false,
        }
    }

    fn item(&mut self) -> Result<&'a [u8], NetstringError> {
        let colon = self
            .rest
            .iter()
            .take(MAX_LEN_DIGITS + 1)
            .position(|b| !b.is_ascii_digit());
        let digits_len = match colon {
            Some(n) => n,
            None if self.rest.len() > MAX_LEN_DIGITS => return Err(NetstringError::LengthOverflow),
            None => return Err(NetstringError::Truncated),
        };
        let (digits, after) = self
            .rest
            .split_at_checked(digits_len)
            .ok_or(NetstringError::Truncated)?;
        if digits.is_empty() || (digits.len() > 1 && digits.first() == Some(&b'0')) {
            return Err(NetstringError::BadLength);
        }
        let len = digits.iter().try_fold(0usize, |acc, d| {
            acc.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        });
        let len = len.ok_or(NetstringError::LengthOverflow)?;
        let after = match after.split_first() {
            Some((b':', tail)) => tail,
            Some(_) => return Err(NetstringError::MissingColon),
            None => return Err(NetstringError::Truncated),
        };
        let (data, tail) = after
            .split_at_checked(len)
            .ok_or(NetstringError::Truncated)?;
        match tail.split_first() {
            Some((b',', tail)) => {
                self.rest = tail;
                Ok(data)
            }
            Some(_) => Err(NetstringError::MissingComma),
            None => Err(NetstringError::Truncated),
        }
    }
}

impl<'a> Iterator for Decoder<'a> {
    type Item = Result<&'a [u8], NetstringError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let item = self.item();
        self.failed = item.is_err();
        Some(item)
    }
}

/// Every item of a netstring sequence, or the first framing error.
pub fn decode(input: &[u8]) -> Result<Vec<&[u8]>, NetstringError> {
    // A loop, not `collect` into a `Result`: the adapter that collect brings was about 400 bytes
    // of the wasm module (docs/decisions/0028-wasm-size-budget.md, tenth pass).
    let mut decoder = Decoder::new(input);
    let mut items = Vec::new();
    while !decoder.rest.is_empty() {
        items.push(decoder.item()?);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encoding() {
        assert_eq!(encode(["", "ab", "a,b:c"]), b"0:,2:ab,5:a,b:c,".to_vec());
        assert_eq!(
            decode(b"0:,2:ab,5:a,b:c,").unwrap(),
            vec![&b""[..], b"ab", b"a,b:c"]
        );
        assert_eq!(decode(b"").unwrap(), Vec::<&[u8]>::new());
    }

    #[test]
    fn errors() {
        assert_eq!(decode(b"2:abc,"), Err(NetstringError::MissingComma));
        assert_eq!(decode(b"3:ab,"), Err(NetstringError::Truncated));
        assert_eq!(decode(b"3:ab"), Err(NetstringError::Truncated));
        assert_eq!(decode(b"3"), Err(NetstringError::Truncated));
        assert_eq!(decode(b"3;abc,"), Err(NetstringError::MissingColon));
        assert_eq!(decode(b":abc,"), Err(NetstringError::BadLength));
        assert_eq!(decode(b"03:abc,"), Err(NetstringError::BadLength));
        assert_eq!(decode(b"-3:abc,"), Err(NetstringError::BadLength));
        assert_eq!(decode(b"3:abc;"), Err(NetstringError::MissingComma));
        assert_eq!(
            decode(b"99999999999999999999:"),
            Err(NetstringError::LengthOverflow)
        );
        assert_eq!(
            decode(b"9999999999999"),
            Err(NetstringError::LengthOverflow)
        );
        assert_eq!(decode(b"999999999999:x,"), Err(NetstringError::Truncated));
        let mut d = Decoder::new(b"1:a,x");
        assert_eq!(d.next(), Some(Ok(&b"a"[..])));
        assert!(matches!(d.next(), Some(Err(_))));
        assert_eq!(d.next(), None);
    }

    proptest! {
        #[test]
        fn round_trip(items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..10)) {
            let bytes = encode(&items);
            let back = decode(&bytes).unwrap();
            prop_assert_eq!(back, items.iter().map(|v| v.as_slice()).collect::<Vec<_>>());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode(&bytes);
        }

        /// `decode` answers what collecting the iterator answers: every item, or its first error.
        #[test]
        fn decode_is_the_decoder_collected(
            items in proptest::collection::vec("[a-z,:0-9]{0,6}", 0..4),
            tail in proptest::collection::vec(prop_oneof![Just(b'1'), Just(b':'), Just(b','), Just(b'a')], 0..6),
        ) {
            let mut bytes = encode(&items);
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(decode(&bytes), Decoder::new(&bytes).collect::<Result<Vec<_>, _>>());
        }

        #[test]
        fn every_truncation_is_an_error(items in proptest::collection::vec("[a-z,:0-9]{0,12}", 1..5)) {
            let bytes = encode(&items);
            for cut in 1..bytes.len() {
                // A cut inside the last item always fails; earlier cuts may end between items.
                let r = decode(&bytes[..cut]);
                if let Ok(parsed) = r {
                    prop_assert!(parsed.len() < items.len());
                }
            }
        }
    }
}
