//! Judging a stored value: the verdict on what a read found, from its envelope, its own
//! `expire` and the tag mirror.

use std::rc::Rc;

use crate::envelope::{decode_header, DecodedHeader};
use crate::error::DecodeError;
use crate::stats::{LookupOutcome, Surface};
use crate::tags::{canonical_tag, Freshness, TagMirror};
use crate::time::{is_unlimited, Millis};
use crate::write::surface_of;

/// What a stored value is worth to the request that read it.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Serve it.
    Fresh,
    /// Serve it, marked for background regeneration (a timestamp past its `revalidate`: see
    /// [`crate::lease::stale_use_cache_presentation`]): a tag was
    /// revalidated with a profile.
    Stale,
    /// A miss: past its own `expire`, or expired by a tag.
    Expired,
    /// Another cache key with the same hash: a miss.
    KeyMismatch,
    /// Not a readable envelope: a miss and a log line (`DecodeError::code`).
    Corrupt(DecodeError),
    /// Call again with at least this many bytes of the value.
    NeedMore(usize),
}

/// The verdict plus the decoded header when there is one (for every verdict but `Corrupt`
/// and `NeedMore`). Only `Fresh` and `Stale` entries may be served.
#[derive(Clone, Debug, PartialEq)]
pub struct Inspection {
    /// The decision.
    pub verdict: Verdict,
    /// The header, when it could be decoded; shared with the tier's index when the judged
    /// copy's header is kept there ([`crate::lru::LruIndex::keep_header`]).
    pub header: Option<Rc<DecodedHeader>>,
}

/// Why an expired entry is a miss: its own `expire` when that has passed, else a tag.
pub fn expiry_cause(header: Option<&DecodedHeader>, now: Millis) -> LookupOutcome {
    match header {
        Some(h)
            if !is_unlimited(h.meta.expire)
                && now.0 > h.meta.timestamp.plus_seconds(h.meta.expire).0 =>
        {
            LookupOutcome::Expired
        }
        _ => LookupOutcome::ExpiredByTag,
    }
}

impl Inspection {
    /// The lookup this verdict counts as, and the interface it belongs to (the entry's, else
    /// `'use cache'`); `None` for [`Verdict::NeedMore`], which is no decision yet.
    pub fn lookup_outcome(&self, now: Millis) -> Option<(Surface, LookupOutcome)> {
        let surface = self
            .header
            .as_ref()
            .map_or(Surface::UseCache, |h| surface_of(h.meta.kind));
        let outcome = match &self.verdict {
            Verdict::Fresh => LookupOutcome::Hit,
            Verdict::Stale => LookupOutcome::Stale,
            Verdict::Expired => expiry_cause(self.header.as_deref(), now),
            Verdict::KeyMismatch => LookupOutcome::KeyMismatch,
            Verdict::Corrupt(_) => LookupOutcome::Corrupt,
            Verdict::NeedMore(_) => return None,
        };
        Some((surface, outcome))
    }
}

/// Judges a stored value read for `cache_key`.
///
/// `prefix` is the start of the value, `total_len` its length, `soft_tags` the request's
/// implicit tags. Checks, in order: the envelope, the stored key, the entry's own `expire`,
/// then its tags and the soft tags against `mirror`. A tagged entry created at or before
/// `untrusted_before()` is a miss (no tag state proves it fresh); it is asked only for tagged
/// entries. Time-based `revalidate` is left to Next, which applies it to whatever the handler
/// returns.
pub fn judge(
    mirror: &TagMirror,
    untrusted_before: impl FnOnce() -> Option<Millis>,
    cache_key: &str,
    prefix: &[u8],
    total_len: usize,
    soft_tags: &[&str],
    now: Millis,
) -> Inspection {
    let header = decode_header(prefix, total_len).map(Rc::new);
    judge_decoded(mirror, untrusted_before, cache_key, header, soft_tags, now)
}

/// [`judge`] of a header decoded already: `header` is what [`decode_header`] made of the value
/// (or the tier's index kept of it), wrapped to be shared.
pub fn judge_decoded(
    mirror: &TagMirror,
    untrusted_before: impl FnOnce() -> Option<Millis>,
    cache_key: &str,
    header: Result<Rc<DecodedHeader>, DecodeError>,
    soft_tags: &[&str],
    now: Millis,
) -> Inspection {
    let header = match header {
        Ok(header) => header,
        Err(DecodeError::NeedMore { header_len }) => {
            return Inspection {
                verdict: Verdict::NeedMore(header_len),
                header: None,
            }
        }
        Err(e) => {
            return Inspection {
                verdict: Verdict::Corrupt(e),
                header: None,
            }
        }
    };
    let m = &header.meta;
    let verdict = if m.key != cache_key {
        Verdict::KeyMismatch
    } else if !is_unlimited(m.expire) && now.0 > m.timestamp.plus_seconds(m.expire).0 {
        Verdict::Expired
    } else if (!m.tags.is_empty() || !soft_tags.is_empty())
        && untrusted_before().is_some_and(|before| m.made() <= before)
    {
        // No tag state to prove it fresh by: a miss.
        Verdict::Expired
    } else {
        // Tags judge the value by when it was made, which a value written back unchanged
        // carries apart from its stamp.
        let made = m.made();
        let mut freshness = mirror.evaluate(made, m.tags.iter().map(String::as_str), now);
        for tag in soft_tags {
            if freshness == Freshness::Expired {
                break;
            }
            // Borrowed, without allocating, for every tag Next 16.2.7 and later produce; one
            // at a time, so no list of them is allocated either.
            let tag = canonical_tag(tag);
            freshness = freshness.max(mirror.evaluate(made, [tag.as_ref()], now));
        }
        match freshness {
            Freshness::Fresh => Verdict::Fresh,
            Freshness::Stale => Verdict::Stale,
            Freshness::Expired => Verdict::Expired,
        }
    };
    Inspection {
        verdict,
        header: Some(header),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{encode_header, EntryKind, EntryMeta};

    /// A tag state that cannot vouch for entries created before some time (not loaded, a
    /// failed refresh) judges a value written back by when it was made, as the tags do
    /// (judging it by its stamp instead failed no test before this one).
    #[test]
    fn an_untrusted_tag_state_judges_a_written_back_value_by_when_it_was_made() {
        const T: f64 = 1_795_690_530_000.0;
        let judged = |made_at: Option<Millis>| {
            let meta = EntryMeta {
                kind: EntryKind::Incremental,
                timestamp: Millis(T),
                made_at,
                revalidate: 60.0,
                expire: 3600.0,
                stale: 0.0,
                key: "/p".to_owned(),
                tags: vec!["t".to_owned()],
                meta: Vec::new(),
                parts: Vec::new(),
            };
            let v = encode_header(&meta).unwrap();
            let mirror = TagMirror::new();
            judge(
                &mirror,
                || Some(Millis(T - 500.0)),
                "/p",
                &v,
                v.len(),
                &[],
                Millis(T + 1.0),
            )
            .verdict
        };
        assert_eq!(judged(None), Verdict::Fresh);
        assert_eq!(judged(Some(Millis(T - 1_000.0))), Verdict::Expired);
        assert_eq!(judged(Some(Millis(T - 400.0))), Verdict::Fresh);
    }
}
