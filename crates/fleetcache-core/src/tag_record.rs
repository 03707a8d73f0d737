//! One tag's record and the rules every instance and the Lua scripts apply to it: how a
//! revalidation changes it, how two records merge, and how an entry is judged by it
//! (internals.md, "Tag state").
//!
//! Every rule is a max or a min, so records from different sources can be merged in any
//! order and a later update never undoes an earlier one.

use crate::error::ProtocolError;
use crate::time::{Millis, INFINITE_CACHE_SECONDS};
/// Longest scheduled expiry in ms: `expire` durations above it (including `Infinity`) are
/// clamped to it, so a pending expiry is always a finite integer both here and in Lua.
pub const MAX_EXPIRE_MS: f64 = INFINITE_CACHE_SECONDS * 1000.0;

/// A tag time or duration as stored: at most 16 decimal digits, well inside the integers an
/// `f64` (and Lua 5.1's number) represents exactly.
const MAX_RECORD_DIGITS: usize = 16;

/// How entries compare against tag state, from weakest to strongest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Freshness {
    /// Serve it.
    Fresh,
    /// Serve it once and regenerate in the background.
    Stale,
    /// A miss: regenerate before serving.
    Expired,
}

/// What a revalidation asks for (Next's `durations` argument).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Revalidation {
    /// No durations (`updateTag`, `revalidatePath`, one-argument `revalidateTag`): expired
    /// now.
    Expire,
    /// Durations given (`revalidateTag(tag, profile)`): stale now, and expired once
    /// `expire_seconds` have passed when it is given (at once when it is `<= 0`).
    Stale {
        /// The profile's `expire`; `None` when the durations object has none.
        expire_seconds: Option<f64>,
    },
}

impl Revalidation {
    /// From Next's arguments: `None` when `durations` is absent, `Some(None)` when it is
    /// present without `expire`, `Some(Some(e))` otherwise. An `expire` of 0 or less
    /// (`revalidateTag(tag, { expire: 0 })`) expires the tags at once, as no durations do:
    /// recorded and counted as an expiry, not as stale.
    pub fn from_durations(durations: Option<Option<f64>>) -> Revalidation {
        match durations {
            None => Revalidation::Expire,
            Some(Some(e)) if e <= 0.0 => Revalidation::Expire,
            Some(expire_seconds) => Revalidation::Stale { expire_seconds },
        }
    }

    /// This revalidation's later `expire` counted from `wall` (the recording host's wall
    /// clock) rather than from `stamp` (the time it is stamped at, the later of the host's two
    /// clocks: [`crate::time::revalidation_stamp`]) where the stamp is after it by more than
    /// [`crate::time::CLOCK_AHEAD_SLACK_MS`] ([`crate::time::ahead_of_wall`], as entries are
    /// moved): a process whose clock runs ahead would otherwise end the serving of its tags'
    /// entries stale that much late (docs/decisions/0036). Cut to 0 or less, it expires them at
    /// once (its end had come by the stamp: sooner, the safe side). Within the slack, or with a
    /// `wall` that is not a time after the epoch, it is left as it is (a process whose clocks
    /// no step parted keeps its revalidations exactly as reported); so are an expiry now and
    /// stale without one.
    pub fn expiring_from_wall(self, stamp: Millis, wall: Millis) -> Revalidation {
        let ahead = crate::time::ahead_of_wall(stamp, wall);
        match self {
            Revalidation::Stale {
                expire_seconds: Some(e),
            } if ahead > 0.0 && e > 0.0 => Revalidation::Stale {
                expire_seconds: Some(e - ahead / 1000.0),
            },
            other => other,
        }
    }

    /// The scheduled-expiry delay in whole ms, as sent to the update script: `None` for "no
    /// expiry scheduled", `Some(0.0)` for "expired now" (NaN, zero or negative `expire`),
    /// otherwise rounded up and clamped to [`MAX_EXPIRE_MS`].
    pub fn expire_ms(&self) -> Option<f64> {
        match self {
            Revalidation::Expire => Some(0.0),
            Revalidation::Stale {
                expire_seconds: None,
            } => None,
            Revalidation::Stale {
                expire_seconds: Some(e),
            } => {
                if e.is_nan() || *e <= 0.0 {
                    Some(0.0)
                } else {
                    Some((e * 1000.0).ceil().min(MAX_EXPIRE_MS))
                }
            }
        }
    }
}

/// The state of one tag. All times are whole ms; 0 means "none".
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct TagRecord {
    /// Entries with `timestamp <= stale` are stale.
    pub stale: Millis,
    /// Entries with `timestamp <= expired` are expired.
    pub expired: Millis,
    /// With `pending_exp`: once `now >= pending_exp`, entries with `timestamp <= pending_at`
    /// are expired.
    pub pending_at: Millis,
    /// When the scheduled expiry takes effect; 0 when none is scheduled.
    pub pending_exp: Millis,
    /// Last update time, for pruning.
    pub updated_at: Millis,
}

fn encode_ms(out: &mut String, m: Millis) {
    // Records only hold whole, non-negative ms below 2^53; the cast saturates otherwise.
    crate::text::push_u64(out, m.0.ceil().max(0.0) as u64);
}

fn parse_ms(field: &[u8]) -> Result<Millis, ProtocolError> {
    if field.is_empty() || field.len() > MAX_RECORD_DIGITS {
        return Err(ProtocolError::BadTagRecord);
    }
    let mut v: u64 = 0;
    for b in field {
        if !b.is_ascii_digit() {
            return Err(ProtocolError::BadTagRecord);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(ProtocolError::BadTagRecord)?;
    }
    // At most 16 digits: below 2^53, so the conversion is exact.
    Ok(Millis(v as f64))
}

impl TagRecord {
    /// The stored form: `stale,expired,pending_at,pending_exp,updated_at` as integers.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(70);
        for (i, m) in self.fields().into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            encode_ms(&mut out, m);
        }
        out
    }

    /// Parses the stored form; anything but five decimal integers is an error.
    pub fn parse(s: &[u8]) -> Result<TagRecord, ProtocolError> {
        let mut fields = s.split(|b| *b == b',');
        let mut next = || {
            fields
                .next()
                .ok_or(ProtocolError::BadTagRecord)
                .and_then(parse_ms)
        };
        let record = TagRecord {
            stale: next()?,
            expired: next()?,
            pending_at: next()?,
            pending_exp: next()?,
            updated_at: next()?,
        };
        if fields.next().is_some() {
            return Err(ProtocolError::BadTagRecord);
        }
        Ok(record)
    }

    fn fields(&self) -> [Millis; 5] {
        [
            self.stale,
            self.expired,
            self.pending_at,
            self.pending_exp,
            self.updated_at,
        ]
    }

    /// True when an expiry is scheduled.
    pub fn has_pending(&self) -> bool {
        self.pending_exp.0 > 0.0
    }

    fn clear_pending(&mut self) {
        self.pending_at = Millis::ZERO;
        self.pending_exp = Millis::ZERO;
    }

    /// Applies one revalidation issued at `now` (rounded up to a whole ms).
    ///
    /// A non-finite `now` is ignored: there is no time at which it could take effect, and the
    /// engine rejects such times before they get here.
    pub fn apply(&mut self, rev: &Revalidation, now: Millis) {
        if !now.0.is_finite() {
            return;
        }
        let now = now.ceil();
        if self.has_pending() && self.pending_exp <= now {
            self.expired = self.expired.max(self.pending_at);
            self.clear_pending();
        }
        if let Revalidation::Stale { .. } = rev {
            self.stale = self.stale.max(now);
        }
        match rev.expire_ms() {
            None => {}
            Some(ms) if ms <= 0.0 => self.expired = self.expired.max(now),
            Some(ms) => {
                let until = Millis(now.0 + ms);
                if self.has_pending() {
                    self.pending_at = self.pending_at.max(now);
                    self.pending_exp = self.pending_exp.min(until);
                } else {
                    self.pending_at = now;
                    self.pending_exp = until;
                }
            }
        }
        self.updated_at = self.updated_at.max(now);
    }

    /// Combines what two sources know about the same tag, never weakening either.
    pub fn merge(&mut self, other: &TagRecord) {
        self.stale = self.stale.max(other.stale);
        self.expired = self.expired.max(other.expired);
        self.updated_at = self.updated_at.max(other.updated_at);
        match (self.has_pending(), other.has_pending()) {
            (_, false) => {}
            (false, true) => {
                self.pending_at = other.pending_at;
                self.pending_exp = other.pending_exp;
            }
            (true, true) => {
                self.pending_at = self.pending_at.max(other.pending_at);
                self.pending_exp = self.pending_exp.min(other.pending_exp);
            }
        }
    }

    /// `expired`, or the scheduled expiry's `pending_at` once it is due, whichever is later.
    pub fn effective_expired(&self, now: Millis) -> Millis {
        if self.has_pending() && self.pending_exp <= now {
            self.expired.max(self.pending_at)
        } else {
            self.expired
        }
    }

    /// The verdict of this tag for an entry created at `timestamp`, evaluated at `now`.
    pub fn freshness(&self, timestamp: Millis, now: Millis) -> Freshness {
        let expired = self.effective_expired(now);
        if expired.0 > 0.0 && timestamp <= expired {
            Freshness::Expired
        } else if self.stale.0 > 0.0 && timestamp <= self.stale {
            Freshness::Stale
        } else {
            Freshness::Fresh
        }
    }

    /// True when this record gives every entry, at every time, a verdict at least as strong
    /// as `other` does: then `other` adds nothing.
    pub fn covers(&self, other: &TagRecord) -> bool {
        let pending_covered = !other.has_pending()
            || self.expired >= other.pending_at
            || (self.has_pending()
                && self.pending_at >= other.pending_at
                && self.pending_exp <= other.pending_exp);
        self.stale >= other.stale && self.expired >= other.expired && pending_covered
    }
}
