//! Lists of strings cross the boundary as one NUL-joined string: one copy instead of one per
//! element. A tag may hold a NUL (Next checks only its type and length): the host sends it as
//! `%00`, its canonical form, and the empty tag alone as two empty items (`joinTags`,
//! js-host/src/argv.ts).

/// The separator between items of a joined list.
pub(crate) const SEP: char = '\0';

/// Splits a joined list; the empty string is the empty list.
pub(crate) fn split(joined: &str) -> Vec<&str> {
    items(joined).collect()
}

/// The items of a joined list, without collecting them; none for the empty string.
pub(crate) fn items(joined: &str) -> Items<'_> {
    Items {
        rest: (!joined.is_empty()).then_some(joined),
    }
}

/// The iterator [`items`] returns. A scan for the NUL byte rather than `str::split` with a
/// `char`: that brought core's char searcher (about 800 bytes of the wasm module) for this
/// one use (docs/decisions/0028-wasm-size-budget.md, tenth pass).
pub(crate) struct Items<'a> {
    /// What is left to split; `None` once the last item was given.
    rest: Option<&'a str>,
}

impl<'a> Iterator for Items<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.bytes().position(|b| b == SEP as u8) {
            Some(at) => {
                // `at` is a NUL byte's index, a char boundary, so both halves exist.
                let (item, after) = rest.split_at_checked(at)?;
                self.rest = after.get(1..);
                Some(item)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// Joins items for the way back to JS.
pub(crate) fn join<S: AsRef<str>>(items: &[S]) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        out.push_str(item.as_ref());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same items `str::split` gives, empty ones included, and none for the empty string.
    #[test]
    fn items_split_at_every_nul() {
        for joined in [
            "a",
            "a\0b",
            "a\0\0b",
            "\0",
            "\0\0",
            "a\0",
            "\0a",
            "é\0ü\0",
            "ab\0cd\0ef",
        ] {
            let ours: Vec<&str> = items(joined).collect();
            assert_eq!(ours, joined.split(SEP).collect::<Vec<_>>(), "{joined:?}");
            assert_eq!(split(joined), ours);
        }
        assert_eq!(items("").count(), 0);
        assert!(split("").is_empty());
        let parts = ["x", "", "yz", ""];
        assert_eq!(split(&join(&parts)), parts);
    }
}
