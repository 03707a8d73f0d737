//! The singular `cacheHandler` (Next's `IncrementalCache`): how its values are laid out in an
//! envelope, and what a stored value is worth to a request (internals.md, "Singular handler
//! entries").
//!
//! The host turns Next's value object into one small JSON text (everything that is not
//! bulky: status, headers, `postponed`, FETCH metadata, segment paths) plus raw byte parts
//! (HTML, RSC, segments, bodies, images). The core fixes which parts a value kind has and in
//! which order, validates them on write and on read, and makes every decision: the TTL, and
//! the `lastModified` / `cacheControl` pair that makes Next serve a stale entry while it
//! regenerates in the background (Next has no other way to be told "stale" by this handler).

use std::rc::Rc;

use crate::envelope::{DecodedHeader, EntryKind, Limits};
use crate::error::PlanError;
use crate::next::NextRelease;
use crate::stats::LookupOutcome;
use crate::time::{is_unlimited, Millis};
use crate::verdict::{expiry_cause, Inspection, Verdict};
use crate::write::SetInput;

/// Version of the descriptor layout below (independent of the envelope's format version).
pub const LAYOUT_VERSION: u8 = 1;
/// Bytes of the descriptor stored as the envelope's `meta`.
pub const DESCRIPTOR_LEN: usize = 6;

pub use crate::tags::SAME_REVALIDATION_WINDOW_MS;

/// Which of Next's `IncrementalCacheValue` kinds a stored value is.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// `null`: a cached "not found".
    Null = 0,
    /// `APP_PAGE`: App Router page (HTML, RSC payload, segment prefetches, PPR state).
    AppPage = 1,
    /// `PAGES`: Pages Router page (HTML and `pageData`).
    Pages = 2,
    /// `APP_ROUTE`: route handler response.
    AppRoute = 3,
    /// `FETCH`: `fetch` cache and `unstable_cache`.
    Fetch = 4,
    /// `REDIRECT`.
    Redirect = 5,
    /// `IMAGE`: optimized image (`images.customCacheHandler`).
    Image = 6,
}

impl ValueKind {
    /// The kind for a wire value, `None` for kinds this release does not know.
    pub fn from_u8(v: u8) -> Option<ValueKind> {
        Some(match v {
            0 => ValueKind::Null,
            1 => ValueKind::AppPage,
            2 => ValueKind::Pages,
            3 => ValueKind::AppRoute,
            4 => ValueKind::Fetch,
            5 => ValueKind::Redirect,
            6 => ValueKind::Image,
            _ => return None,
        })
    }

    /// Whether a value of this kind served from the tier is decoded once and kept alongside
    /// the tier's copy (charged with [`crate::lru::LruIndex::charge_decoded`]): the response
    /// kinds a page hit serves, whose only mutable containers are one flat headers object and
    /// the `segmentData` Map, which the host copies per hit. `PAGES` (`pageData`), `FETCH`
    /// (`data`), `REDIRECT` (`props`) carry nested JSON a copy per hit would have to walk
    /// deeply, and `IMAGE` is rarely a tier hit.
    pub fn memoised(self) -> bool {
        matches!(self, ValueKind::AppPage | ValueKind::AppRoute)
    }

    /// Byte parts after the JSON part, other than `APP_PAGE`'s optional RSC and segments.
    fn fixed_parts(self) -> usize {
        match self {
            ValueKind::Null | ValueKind::Redirect => 0,
            // html; pages: html; route: body; fetch: data.body; image: buffer
            ValueKind::AppPage
            | ValueKind::Pages
            | ValueKind::AppRoute
            | ValueKind::Fetch
            | ValueKind::Image => 1,
        }
    }
}

/// Flag bits of the descriptor.
mod flag {
    /// `APP_PAGE` has `rscData` (a part right after the HTML).
    pub const RSC: u8 = 1;
    /// `cacheControl.revalidate` is `false` (stored as `Infinity` in the envelope).
    pub const REVALIDATE_FALSE: u8 = 2;
    /// `cacheControl.expire` is absent (stored as `Infinity`).
    pub const NO_EXPIRE: u8 = 4;
    /// No `cacheControl` at all (FETCH writes carry none).
    pub const NO_CACHE_CONTROL: u8 = 8;
    pub const ALL: u8 = RSC | REVALIDATE_FALSE | NO_EXPIRE | NO_CACHE_CONTROL;
}

/// The shape of a stored value, kept as the envelope's `meta`:
///
/// ```text
/// 0  u8   layout version (1)
/// 1  u8   value kind (ValueKind)
/// 2  u8   flags: 1 rscData present, 2 revalidate false, 4 no expire, 8 no cacheControl
/// 3  u8   reserved, 0
/// 4  u16  number of segment parts (APP_PAGE's segmentData; 0 otherwise), little-endian
/// ```
///
/// Parts, in order: the host's JSON; then `APP_PAGE`: html, rscData (if flagged), one per
/// segment (paths in the JSON, in the same order); `PAGES`: html; `APP_ROUTE`: body;
/// `FETCH`: `data.body`; `IMAGE`: buffer; `REDIRECT` and `null`: nothing more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// The value kind.
    pub kind: ValueKind,
    /// `APP_PAGE` carries `rscData`.
    pub has_rsc: bool,
    /// `APP_PAGE`'s number of `segmentData` entries.
    pub segments: u16,
    /// `cacheControl.revalidate === false`.
    pub revalidate_false: bool,
    /// `cacheControl.expire === undefined`.
    pub no_expire: bool,
    /// The value came without `cacheControl` (FETCH).
    pub no_cache_control: bool,
}

/// A value whose layout is not what its kind requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The descriptor is missing, too short, or of an unknown layout version.
    Descriptor,
    /// Unknown value kind.
    Kind(u8),
    /// Flags this release does not know, or RSC/segments on a kind other than `APP_PAGE`.
    Flags,
    /// The number of parts does not match the descriptor.
    PartCount {
        /// Parts the descriptor calls for.
        expected: usize,
        /// Parts present.
        actual: usize,
    },
    /// The entry was not written by the singular handler.
    EntryKind,
}

impl LayoutError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            LayoutError::Descriptor => "ERR_LAYOUT_DESCRIPTOR",
            LayoutError::Kind(_) => "ERR_LAYOUT_KIND",
            LayoutError::Flags => "ERR_LAYOUT_FLAGS",
            LayoutError::PartCount { .. } => "ERR_LAYOUT_PARTS",
            LayoutError::EntryKind => "ERR_LAYOUT_ENTRY_KIND",
        }
    }
}

impl LayoutError {
    /// The message, which [`Display`](std::fmt::Display) writes.
    pub fn message(&self) -> String {
        String::from(match self {
            LayoutError::Descriptor => "missing or unknown value descriptor",
            LayoutError::Kind(k) => return crate::text!("unknown value kind ", k),
            LayoutError::Flags => "invalid value flags",
            LayoutError::PartCount { expected, actual } => {
                return crate::text!("value has ", actual, " parts, its kind needs ", expected)
            }
            LayoutError::EntryKind => "not a singular-handler entry",
        })
    }
}

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for LayoutError {}

impl Descriptor {
    /// The descriptor from its wire parts (kind code, flag bits, segment count), validated.
    pub fn from_wire(kind: u8, flags: u8, segments: u16) -> Result<Descriptor, LayoutError> {
        let kind = ValueKind::from_u8(kind).ok_or(LayoutError::Kind(kind))?;
        if flags & !flag::ALL != 0 {
            return Err(LayoutError::Flags);
        }
        let has_rsc = flags & flag::RSC != 0;
        if kind != ValueKind::AppPage && (has_rsc || segments != 0) {
            return Err(LayoutError::Flags);
        }
        Ok(Descriptor {
            kind,
            has_rsc,
            segments,
            revalidate_false: flags & flag::REVALIDATE_FALSE != 0,
            no_expire: flags & flag::NO_EXPIRE != 0,
            no_cache_control: flags & flag::NO_CACHE_CONTROL != 0,
        })
    }

    /// The flag bits.
    pub fn flags(&self) -> u8 {
        let mut f = 0;
        if self.has_rsc {
            f |= flag::RSC;
        }
        if self.revalidate_false {
            f |= flag::REVALIDATE_FALSE;
        }
        if self.no_expire {
            f |= flag::NO_EXPIRE;
        }
        if self.no_cache_control {
            f |= flag::NO_CACHE_CONTROL;
        }
        f
    }

    /// The stored form.
    pub fn encode(&self) -> [u8; DESCRIPTOR_LEN] {
        let s = self.segments.to_le_bytes();
        [LAYOUT_VERSION, self.kind as u8, self.flags(), 0, s[0], s[1]]
    }

    /// Parses the stored form.
    pub fn decode(bytes: &[u8]) -> Result<Descriptor, LayoutError> {
        match bytes {
            [LAYOUT_VERSION, kind, flags, 0, s0, s1] => {
                Descriptor::from_wire(*kind, *flags, u16::from_le_bytes([*s0, *s1]))
            }
            _ => Err(LayoutError::Descriptor),
        }
    }

    /// Number of parts a value of this shape has, the JSON part included.
    pub fn part_count(&self) -> usize {
        1 + self.kind.fixed_parts() + usize::from(self.has_rsc) + usize::from(self.segments)
    }

    /// Checks a part count against this shape.
    pub fn check_parts(&self, actual: usize) -> Result<(), LayoutError> {
        let expected = self.part_count();
        if expected == actual && actual <= Limits::MAX_PARTS {
            Ok(())
        } else {
            Err(LayoutError::PartCount { expected, actual })
        }
    }
}

/// A write of the singular handler, as the host describes it.
#[derive(Clone, Copy, Debug)]
pub struct IncrementalSet<'a> {
    /// Value shape.
    pub desc: Descriptor,
    /// `cacheControl.revalidate` in seconds (FETCH: the value's `revalidate`); ignored when
    /// the descriptor says `false`.
    pub revalidate: f64,
    /// `cacheControl.expire` in seconds; ignored when the descriptor says it is absent.
    pub expire: f64,
    /// The entry's tags.
    pub tags: &'a [&'a str],
    /// Part lengths, the JSON part first.
    pub parts: &'a [u32],
    /// When the regeneration that produced the value began
    /// ([`crate::Engine::incremental_created`]); it becomes the entry's `lastModified`, so a
    /// revalidation during the regeneration leaves the entry stale.
    pub created: Millis,
    /// For a value written back unchanged, when it was made ([`EntryMeta::made_at`]); kept
    /// only where earlier than the entry's creation time.
    ///
    /// [`EntryMeta::made_at`]: crate::envelope::EntryMeta::made_at
    pub made: Option<Millis>,
    /// Time of the write.
    pub now: Millis,
}

/// Why an incremental write was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum IncrementalPlanError {
    /// The parts do not match the descriptor.
    Layout(LayoutError),
    /// The envelope refused it (size, limits, numbers).
    Plan(PlanError),
}

impl IncrementalPlanError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            IncrementalPlanError::Layout(e) => e.code(),
            IncrementalPlanError::Plan(e) => e.code(),
        }
    }
}

impl IncrementalPlanError {
    /// The message, which [`Display`](std::fmt::Display) writes: the inner error's.
    pub fn message(&self) -> String {
        match self {
            IncrementalPlanError::Layout(e) => e.message(),
            IncrementalPlanError::Plan(e) => e.message(),
        }
    }
}

impl std::fmt::Display for IncrementalPlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for IncrementalPlanError {}

/// What the handler returns to Next for a servable entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Serve {
    /// The value's shape.
    pub desc: Descriptor,
    /// `lastModified` to return (ms). The time of the read for a fresh entry
    /// ([`fresh_last_modified`]; an image's creation time); older for a stale one, so that
    /// Next regenerates it in the background.
    pub last_modified: f64,
    /// `cacheControl.revalidate` to return; `None` is `false`.
    pub revalidate: Option<f64>,
    /// `cacheControl.expire` to return; `None` is absent.
    pub expire: Option<f64>,
    /// Whether to return a `cacheControl` at all.
    pub cache_control: bool,
    /// The entry is stale by a tag (reported for logs and metrics).
    pub stale: bool,
}

/// The verdict on a stored singular-handler value.
#[derive(Clone, Debug, PartialEq)]
pub enum IncrementalVerdict {
    /// Return it (possibly stale, see [`Serve::stale`]).
    Serve(Serve),
    /// A miss that Next must regenerate before answering: past `expire`, expired by a tag,
    /// or stale in a way Next cannot be told about.
    Expired,
    /// Another cache key with the same hash: a miss.
    KeyMismatch,
    /// Unreadable or of the wrong layout: a miss and a log line (the code).
    Corrupt(&'static str),
    /// Call again with at least this many bytes of the value.
    NeedMore(usize),
}

/// The `lastModified` (and the `revalidate` to return with it) that makes Next serve an entry
/// once and regenerate it in the background, or `None` when Next cannot be made to do that and
/// the entry must be a miss (blocking regeneration) instead.
///
/// Next calls an entry stale when `lastModified + revalidate*1000 < now` (response kinds) or
/// `(now - lastModified)/1000 > revalidate` (FETCH, where `revalidate` is the request's own
/// when it has one), and expired, which is blocking, when `lastModified + expire*1000 < now`.
/// So `lastModified` goes just past the revalidate window while staying inside `expire`.
/// A response entry without a time limit (`revalidate: false`) is returned with
/// `revalidate: 1`: the stale answer then also tells CDNs to keep it for one second only,
/// and the regeneration's write brings the real lifetime back.
pub fn stale_presentation(
    kind: ValueKind,
    timestamp: f64,
    revalidate: Option<f64>,
    expire: Option<f64>,
    request_revalidate: f64,
    now: f64,
) -> Option<(f64, Option<f64>)> {
    let limited = |r: f64| r.is_finite() && r > 0.0 && !is_unlimited(r);
    if kind == ValueKind::Fetch {
        // Next: `ctx.revalidate || value.revalidate` (0, NaN and absent fall through).
        let r = if request_revalidate.is_finite() && request_revalidate != 0.0 {
            request_revalidate
        } else {
            revalidate?
        };
        if !limited(r) {
            return None;
        }
        return Some((timestamp.min(now - r * 1000.0 - 1.0), revalidate));
    }
    let (r, shown) = match revalidate {
        Some(r) if limited(r) => (r, Some(r)),
        _ => (1.0, Some(1.0)),
    };
    let last_modified = timestamp.min(now - r * 1000.0 - 1.0);
    if let Some(e) = expire {
        if !is_unlimited(e) && last_modified + e * 1000.0 < now {
            return None;
        }
    }
    Some((last_modified, shown))
}

/// `lastModified` of an entry judged fresh: while it is inside the `revalidate` Next applies
/// (`revalidate`: a FETCH request's own, else the entry's), the time of the read; past it, its
/// creation time ([`blind_fresh_last_modified`]).
///
/// Next judges `lastModified + revalidate` once more after the answer reaches it, with the
/// same clock (`performance.timeOrigin + performance.now()`). Shown with its creation time, an
/// entry answered fresh at the end of its window reached Next past it (microseconds later, or
/// after a stalled event loop), and Next regenerated it on its own without the engine noting
/// where that regeneration began: its write was stamped with the write time, and a
/// revalidation that resolved during the render left the stored value fresh on every instance.
/// Shown as read now, it reaches Next fresh unless the answer took a whole `revalidate` to get
/// there; the engine, which notes where each regeneration it asks for begins, calls it stale
/// first. Not for images: Next's image cache judges them itself and they carry no tags.
pub fn fresh_last_modified(timestamp: f64, revalidate: Option<f64>, now: f64) -> f64 {
    blind_fresh_last_modified(timestamp, revalidate, now)
}

/// The `revalidate` (seconds) Next applies when it judges a fresh answer of `serve` again: a
/// FETCH request's own (`request_revalidate`, NaN when none), else the value's; for a page or
/// route on a Next that ignores the returned `cacheControl` (`blind`), the least it may assume
/// of the route (1 s). `None` when Next never calls it stale by time.
pub fn next_revalidate(serve: &Serve, request_revalidate: f64, blind: bool) -> Option<f64> {
    let limited = |r: f64| r.is_finite() && r > 0.0 && !is_unlimited(r);
    if serve.desc.kind == ValueKind::Fetch && limited(request_revalidate) {
        return Some(request_revalidate);
    }
    if blind && serve.desc.kind != ValueKind::Fetch {
        return Some(1.0);
    }
    serve.revalidate.filter(|r| limited(*r))
}

/// `lastModified` of a fresh page or route entry for a Next that ignores the returned
/// `cacheControl` (before 16.4.0).
///
/// Such a Next calls the entry stale once `lastModified + R * 1000 < now`, where `R` is what
/// it knows of the route: the prerender manifest, this process's own last write, or 1 s for a
/// route it knows neither way (every route that exists only at run time, until this process
/// writes it). So a creation time older than 1 s would send each such route into a background
/// regeneration, once per process after each deploy, outside the lease. The core decides
/// time-based staleness itself instead: while the entry is inside its own `revalidate`, it is
/// shown as written now (fresh whatever `R` Next assumes); once past it, with its creation
/// time, which any `R` no longer than the entry's own calls stale.
pub fn blind_fresh_last_modified(timestamp: f64, revalidate: Option<f64>, now: f64) -> f64 {
    let due = revalidate
        .is_some_and(|r| r.is_finite() && !is_unlimited(r) && now > timestamp + r * 1000.0);
    if due || !now.is_finite() {
        timestamp
    } else {
        now.max(timestamp)
    }
}

impl IncrementalVerdict {
    /// The lookup this verdict on the entry with `header` counts as; `None` for
    /// [`IncrementalVerdict::NeedMore`], which is no decision yet.
    pub fn lookup_outcome(
        &self,
        header: Option<&DecodedHeader>,
        now: Millis,
    ) -> Option<LookupOutcome> {
        Some(match self {
            IncrementalVerdict::Serve(s) if s.stale => LookupOutcome::Stale,
            IncrementalVerdict::Serve(_) => LookupOutcome::Hit,
            IncrementalVerdict::Expired => expiry_cause(header, now),
            IncrementalVerdict::KeyMismatch => LookupOutcome::KeyMismatch,
            IncrementalVerdict::Corrupt(_) => LookupOutcome::Corrupt,
            IncrementalVerdict::NeedMore(_) => return None,
        })
    }
}

impl<'a> IncrementalSet<'a> {
    /// The entry write this is, with `meta` its encoded descriptor ([`Descriptor::encode`]):
    /// the creation time no later than the write, `revalidate` and `expire` unlimited where
    /// the descriptor says `false` or absent. Refused when the parts do not fit the
    /// descriptor.
    pub fn set_input(&self, meta: &'a [u8]) -> Result<SetInput<'a>, LayoutError> {
        self.desc.check_parts(self.parts.len())?;
        let unlimited = f64::INFINITY;
        let timestamp = self.created.min(self.now);
        Ok(SetInput {
            kind: EntryKind::Incremental,
            timestamp,
            made_at: self
                .made
                .filter(|made| made.0.is_finite() && *made < timestamp),
            revalidate: if self.desc.revalidate_false {
                unlimited
            } else {
                self.revalidate
            },
            expire: if self.desc.no_expire || self.desc.no_cache_control {
                unlimited
            } else {
                self.expire
            },
            stale: 0.0,
            tags: self.tags,
            meta,
            parts: self.parts,
            now: self.now,
        })
    }
}

/// What the singular handler answers Next for a value judged `inspection`: the value's shape
/// and the `lastModified`, `revalidate` and `expire` to present ([`stale_presentation`] for a
/// stale one), or a miss. `request_revalidate` is a FETCH request's `revalidate` (NaN when
/// none). For a `release` that ignores the returned `cacheControl`
/// ([`next_ignores_cache_control`]), a fresh page or route entry is shown with
/// [`blind_fresh_last_modified`], and a stale one that Next's own record calls never stale is
/// a miss. Returns the decoded header too, for the payload offset and part lengths.
pub fn present(
    inspection: Inspection,
    request_revalidate: f64,
    release: Option<NextRelease>,
    now: Millis,
) -> (IncrementalVerdict, Option<Rc<DecodedHeader>>) {
    let header = inspection.header;
    let stale = match inspection.verdict {
        Verdict::Fresh => false,
        Verdict::Stale => true,
        Verdict::Expired => return (IncrementalVerdict::Expired, header),
        Verdict::KeyMismatch => return (IncrementalVerdict::KeyMismatch, header),
        Verdict::Corrupt(e) => return (IncrementalVerdict::Corrupt(e.code()), None),
        Verdict::NeedMore(n) => return (IncrementalVerdict::NeedMore(n), None),
    };
    let Some(h) = header else {
        return (
            IncrementalVerdict::Corrupt("ERR_DECODE_HEADER_LENGTH"),
            None,
        );
    };
    let m = &h.meta;
    if m.kind != EntryKind::Incremental {
        return (
            IncrementalVerdict::Corrupt(LayoutError::EntryKind.code()),
            None,
        );
    }
    let desc = match Descriptor::decode(&m.meta).and_then(|d| {
        d.check_parts(m.parts.len())?;
        Ok(d)
    }) {
        Ok(d) => d,
        Err(e) => return (IncrementalVerdict::Corrupt(e.code()), None),
    };
    let revalidate = (!desc.revalidate_false).then_some(m.revalidate);
    let expire = (!desc.no_expire && !desc.no_cache_control).then_some(m.expire);
    let blind = next_ignores_cache_control(release, desc.kind);
    if stale && blind {
        // Only `lastModified` reaches this Next, and it judges it against its own record of
        // the route: the manifest, or the `cacheControl` of this process's last write, which
        // another instance's later write may have replaced with a shorter one (or none, for
        // `revalidate: false`). No `lastModified` is stale under every such record while
        // staying unexpired, so it cannot be told: it regenerates before answering.
        return (IncrementalVerdict::Expired, Some(h));
    }
    let (last_modified, revalidate) = if stale {
        match stale_presentation(
            desc.kind,
            m.timestamp.0,
            revalidate,
            expire,
            request_revalidate,
            now.0,
        ) {
            Some(p) => p,
            None => return (IncrementalVerdict::Expired, Some(h)),
        }
    } else if blind {
        (
            blind_fresh_last_modified(m.timestamp.0, revalidate, now.0),
            revalidate,
        )
    } else if desc.kind == ValueKind::Image {
        (m.timestamp.0, revalidate)
    } else {
        // Next's `revalidate` for a FETCH: the request's own when it has one.
        let applied = if desc.kind == ValueKind::Fetch
            && request_revalidate.is_finite()
            && request_revalidate != 0.0
        {
            Some(request_revalidate)
        } else {
            revalidate
        };
        (
            fresh_last_modified(m.timestamp.0, applied, now.0),
            revalidate,
        )
    };
    let serve = Serve {
        desc,
        last_modified,
        revalidate,
        expire,
        cache_control: !desc.no_cache_control,
        stale,
    };
    (IncrementalVerdict::Serve(serve), Some(h))
}

/// Whether a Next of `release` judges a value of `kind` without the `cacheControl` that
/// `get` returns (before 16.4.0, page and route entries:
/// [`NextRelease::honours_returned_cache_control`]). An unknown release is taken for the
/// newest.
pub fn next_ignores_cache_control(release: Option<NextRelease>, kind: ValueKind) -> bool {
    // FETCH values carry their own `revalidate`, and images have a cache of their own.
    !matches!(kind, ValueKind::Fetch | ValueKind::Image)
        && release.is_some_and(|r| !r.honours_returned_cache_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::time::INFINITE_CACHE_SECONDS;

    const NOW: f64 = 1_795_690_530_000.0;

    #[test]
    fn only_app_page_and_app_route_values_are_memoised() {
        let memoised: Vec<u8> = (0..=u8::MAX)
            .filter_map(ValueKind::from_u8)
            .filter(|k| k.memoised())
            .map(|k| k as u8)
            .collect();
        assert_eq!(
            memoised,
            vec![ValueKind::AppPage as u8, ValueKind::AppRoute as u8]
        );
    }

    fn desc(kind: ValueKind) -> Descriptor {
        Descriptor {
            kind,
            has_rsc: false,
            segments: 0,
            revalidate_false: false,
            no_expire: false,
            no_cache_control: false,
        }
    }

    #[test]
    fn descriptor_wire_and_part_counts() {
        let mut d = desc(ValueKind::AppPage);
        d.has_rsc = true;
        d.segments = 3;
        d.no_expire = true;
        assert_eq!(d.encode(), [1, 1, 1 | 4, 0, 3, 0]);
        assert_eq!(Descriptor::decode(&d.encode()), Ok(d));
        assert_eq!(d.part_count(), 1 + 1 + 1 + 3);
        assert_eq!(desc(ValueKind::Null).part_count(), 1);
        assert_eq!(desc(ValueKind::Redirect).part_count(), 1);
        for k in [
            ValueKind::Pages,
            ValueKind::AppRoute,
            ValueKind::Fetch,
            ValueKind::Image,
        ] {
            assert_eq!(desc(k).part_count(), 2);
        }
        assert_eq!(Descriptor::decode(&[]), Err(LayoutError::Descriptor));
        assert_eq!(
            Descriptor::decode(&[2, 1, 0, 0, 0, 0]),
            Err(LayoutError::Descriptor)
        );
        assert_eq!(
            Descriptor::decode(&[1, 9, 0, 0, 0, 0]),
            Err(LayoutError::Kind(9))
        );
        assert_eq!(
            Descriptor::decode(&[1, 1, 16, 0, 0, 0]),
            Err(LayoutError::Flags)
        );
        // RSC and segments belong to APP_PAGE only.
        assert_eq!(
            Descriptor::from_wire(3, 1, 0).err(),
            Some(LayoutError::Flags)
        );
        assert_eq!(
            Descriptor::from_wire(2, 0, 1).err(),
            Some(LayoutError::Flags)
        );
        assert_eq!(
            LayoutError::PartCount {
                expected: 2,
                actual: 1
            }
            .code(),
            "ERR_LAYOUT_PARTS"
        );
    }

    #[test]
    fn stale_presentation_cases() {
        // revalidate false: shown as revalidate 1, one second and a ms in the past.
        let (lm, r) =
            stale_presentation(ValueKind::AppPage, NOW, None, None, f64::NAN, NOW + 5.0).unwrap();
        assert_eq!(r, Some(1.0));
        assert!(lm + 1000.0 < NOW + 5.0);
        // expire == revalidate: Next cannot be told "stale" without "expired": a miss.
        assert_eq!(
            stale_presentation(ValueKind::Pages, NOW, Some(60.0), Some(60.0), f64::NAN, NOW),
            None
        );
        // FETCH uses the request's revalidate when it has one.
        let (lm, r) =
            stale_presentation(ValueKind::Fetch, NOW, Some(600.0), None, 30.0, NOW).unwrap();
        assert_eq!(r, Some(600.0));
        assert!((NOW - lm) / 1000.0 > 30.0 && (NOW - lm) / 1000.0 < 600.0);
        let (lm, _) =
            stale_presentation(ValueKind::Fetch, NOW, Some(600.0), None, 0.0, NOW).unwrap();
        assert!((NOW - lm) / 1000.0 > 600.0);
        // FETCH without a time limit cannot be served stale.
        assert_eq!(
            stale_presentation(
                ValueKind::Fetch,
                NOW,
                Some(INFINITE_CACHE_SECONDS),
                None,
                f64::NAN,
                NOW
            ),
            None
        );
        // An entry already older than its window keeps its own lastModified.
        let old = NOW - 100_000.0;
        let (lm, _) =
            stale_presentation(ValueKind::AppRoute, old, Some(60.0), None, f64::NAN, NOW).unwrap();
        assert_eq!(lm, old);
    }
}
