//! Lists of strings cross the boundary as one NUL-joined string: one copy instead of one per
//! element. Next never produces NUL inside tags (they are validated as printable text).

/// The separator between items of a joined list.
pub(crate) const SEP: char = '\0';

/// Splits a joined list; the empty string is the empty list.
pub(crate) fn split(joined: &str) -> Vec<&str> {
    if joined.is_empty() {
        Vec::new()
    } else {
        joined.split(SEP).collect()
    }
}

/// The items of a joined list, without collecting them; none for the empty string.
pub(crate) fn items(joined: &str) -> impl Iterator<Item = &str> {
    (!joined.is_empty())
        .then(|| joined.split(SEP))
        .into_iter()
        .flatten()
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
