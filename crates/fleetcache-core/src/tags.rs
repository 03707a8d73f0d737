//! Tag state: per-tag records, the update rules, and each process's mirror of the shared
//! state (internals.md, "Tag state").
//!
//! Every rule is a max or a min, so records from different instances can be merged in any
//! order and a later update never undoes an earlier one. The Lua scripts in `src/lua/`
//! implement the same rules on the Redis side; `tests/lua_scripts.rs` checks they agree.

use std::borrow::Cow;

use crate::keyed::KeyedVec;
use crate::strhash::{reseed, str_map, HashSeed, StrMap};
use crate::tag_fold::{fold_past, retain_records, Folded, DEFAULT_MAX_TAGS, FOLDED_TAG};

use crate::error::ProtocolError;
use crate::netstring;
use crate::time::Millis;

pub use crate::tag_record::{Freshness, Revalidation, TagRecord, MAX_EXPIRE_MS};

/// Prefix of Next's implicit (path-derived) tags.
pub const IMPLICIT_TAG_PREFIX: &str = "_N_T_";

/// Longest tag, in bytes of its canonical form, that the core accepts: longer ones are
/// dropped from the list they came in (entry tags, a revalidation), never the whole list.
///
/// Next checks its limits (256 UTF-16 units for a `fetch`/`cacheTag` tag, 1,024 for a
/// `revalidatePath` path) on the raw string and percent-encodes afterwards, up to 9 bytes per
/// unit: 2,304 bytes for an explicit tag, about 9.2 KiB for an implicit one. 16 KiB covers
/// both; only a caller bypassing Next gets a tag dropped.
pub const MAX_TAG_BYTES: usize = 16 * 1024;

/// Most distinct tags one entry can carry: the envelope's tag count is a `u16`. Next puts no
/// limit on the union of tags an entry collects; an entry past this one is not stored (a
/// miss), since dropping tags from it would make it immune to their revalidations.
pub const MAX_ENTRY_TAGS: usize = u16::MAX as usize;

/// True for the bytes Next leaves as they are in a tag: horizontal tab and printable ASCII
/// (Node's `validateHeaderValue` class, `[\t\x20-\x7e]`).
// Tested on every byte of every tag read: always inlined, even at opt-level "z".
#[inline(always)]
fn header_safe(b: u8) -> bool {
    matches!(b, b'\t' | 0x20..=0x7e)
}

/// The canonical form of a tag: Next's `encodeHeaderSafe` (16.3.1 on; `encodeCacheTag` in
/// 16.2.7-16.3.0), which percent-encodes (`%XX`, upper-case hex, per UTF-8 byte) every
/// character outside tab and printable ASCII and leaves everything else, `%` included, as
/// it is. So the raw tag an older Next sends and the encoded one a newer Next sends map to
/// one form, and the form is a fixed point (an encoded tag has nothing left to encode).
///
/// A tag that is already header-safe (every ASCII tag Next produces, and every tag of a Next
/// release that encodes) is returned borrowed, without allocating.
pub fn canonical_tag(tag: &str) -> Cow<'_, str> {
    let bytes = tag.as_bytes();
    let Some(first) = bytes.iter().position(|b| !header_safe(*b)) else {
        return Cow::Borrowed(tag);
    };
    fn hex(nibble: u8) -> char {
        char::from(if nibble < 10 {
            b'0' + nibble
        } else {
            b'A' + nibble - 10
        })
    }
    let rest = bytes.get(first..).unwrap_or_default();
    let mut out = String::with_capacity(first + 3 * rest.len());
    // Every byte before `first` is ASCII, so `first` is a character boundary.
    out.push_str(tag.get(..first).unwrap_or_default());
    for &b in rest {
        if header_safe(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex(b >> 4));
            out.push(hex(b & 0x0f));
        }
    }
    Cow::Owned(out)
}

/// A tag as the mirror keeps one read from Redis: its canonical form, except [`FOLDED_TAG`],
/// which no canonical tag can name.
fn stored_tag(tag: &str) -> Cow<'_, str> {
    if tag == FOLDED_TAG {
        Cow::Borrowed(tag)
    } else {
        canonical_tag(tag)
    }
}

/// Tags the core keeps from a list it was given, and what it left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmittedTags<'a> {
    /// The canonical forms, first occurrence order, without duplicates.
    pub tags: Vec<Cow<'a, str>>,
    /// What was dropped for being longer than [`MAX_TAG_BYTES`].
    pub dropped: DroppedTags,
}

/// Tags dropped from one list for being longer than [`MAX_TAG_BYTES`] (canonical form).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DroppedTags {
    /// How many.
    pub count: usize,
    /// Bytes of the longest one.
    pub longest: usize,
}

impl DroppedTags {
    /// True when nothing was dropped.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl DroppedTags {
    /// The log line, which [`Display`](std::fmt::Display) writes.
    pub fn message(&self) -> String {
        crate::text!(
            "dropped ",
            self.count,
            " tag(s) longer than ",
            MAX_TAG_BYTES,
            " bytes (the longest ",
            self.longest,
            " bytes); the other tags apply"
        )
    }
}

impl std::fmt::Display for DroppedTags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// Canonicalises a tag list (entry tags, a revalidation): every tag to [`canonical_tag`],
/// duplicates removed, and each tag longer than [`MAX_TAG_BYTES`] dropped on its own (the
/// caller logs [`AdmittedTags::dropped`] once). No limit on the number of tags: a list is
/// never refused here.
pub fn admit_tags<'a>(tags: &[&'a str]) -> AdmittedTags<'a> {
    admit_tags_seeded(tags, HashSeed::default())
}

/// [`admit_tags`], duplicates found with a map hashed with `seed` (the host's random one:
/// tags come from requests, and a list is not limited in length).
pub fn admit_tags_seeded<'a>(tags: &[&'a str], seed: HashSeed) -> AdmittedTags<'a> {
    let mut dropped = DroppedTags::default();
    let mut canonical: Vec<Cow<'a, str>> = Vec::with_capacity(tags.len());
    for tag in tags {
        let c = canonical_tag(tag);
        if c.len() > MAX_TAG_BYTES {
            dropped.count += 1;
            dropped.longest = dropped.longest.max(c.len());
        } else {
            canonical.push(c);
        }
    }
    // Owned keys in a map type the core already has (the LRU index's): a set of `&str`
    // would be one more copy of the hash table code in the wasm module
    // (docs/decisions/0028-wasm-size-budget.md).
    let first: Vec<bool> = {
        let mut seen: StrMap<usize> = str_map(canonical.len(), seed);
        canonical
            .iter()
            .map(|t| seen.insert(t.as_ref().to_owned(), 0).is_none())
            .collect()
    };
    let tags = canonical
        .into_iter()
        .zip(first)
        .filter_map(|(t, first)| first.then_some(t))
        .collect();
    AdmittedTags { tags, dropped }
}

/// What an announcement did to the mirror ([`TagMirror::apply_announcement`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announced {
    /// The next version: its records (this many) are merged, the mirror is at its version.
    Applied(usize),
    /// A version the mirror has passed: its records are merged (the state may have been
    /// rolled back and the number reused), the version does not move.
    Known,
    /// Not the next version of the state followed (missed messages, another epoch, a mirror
    /// not synced or loading): the mirror is unchanged and only a pull catches it up. Also the
    /// mirror's own version made by another update than the one it saw (a rollback that
    /// reused the number): its records are merged all the same. For a
    /// page write's announcement: not the next of the page-write sequence, a new page
    /// generation (the mirror stays caught up unless the epoch is another; the host pulls).
    Gap,
}

/// What a refresh (or update) reply did to the mirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshSummary {
    /// The reply carried the complete state and replaced the mirror's remote knowledge.
    pub full: bool,
    /// Tag records the reply carried (and the mirror merged).
    pub changed: usize,
    /// The mirror's version after the reply.
    pub version: u64,
    /// Records skipped because the tag was not UTF-8 or the record malformed: foreign
    /// writes, never produced by the scripts. One bad record must not freeze the mirror.
    pub skipped: usize,
}

/// A page write of the shared state, as an announcement (`'p'`) or a refresh reply tells it:
/// the state's epoch, the write's number in the page-write sequence (`pver`, 0: none yet)
/// and its id (`pvid`). Page writes are not versions of the tag state
/// (docs/decisions/0031-page-entries-in-the-tier-by-push.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageWrite {
    /// The epoch of the state.
    pub epoch: String,
    /// Its number in the sequence.
    pub pver: u64,
    /// Its id (`""` when none).
    pub pvid: String,
}

/// The leading items of a message on the announcement channel: its kind (`a` a tag update,
/// `p` a page write), the state's epoch, the number and id of what it announces (a version,
/// a page write), and the items after them.
pub struct AnnouncementHead<'a> {
    /// The kind.
    pub kind: &'a [u8],
    /// The state's epoch.
    pub epoch: &'a str,
    /// The version, or the page write's number.
    pub number: u64,
    /// Its id.
    pub id: &'a str,
    /// The items after the id.
    pub rest: std::vec::IntoIter<&'a [u8]>,
}

/// Parses the leading items of an announcement (any kind).
pub fn parse_announcement(msg: &[u8]) -> Result<AnnouncementHead<'_>, ProtocolError> {
    let mut it = netstring::decode(msg)?.into_iter();
    let (Some(kind), Some(epoch), Some(number), Some(id)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(ProtocolError::ReplyShape);
    };
    Ok(AnnouncementHead {
        kind,
        epoch: std::str::from_utf8(epoch).map_err(|_| ProtocolError::InvalidUtf8)?,
        number: parse_version(number)?,
        id: std::str::from_utf8(id).map_err(|_| ProtocolError::InvalidUtf8)?,
        rest: it,
    })
}

/// The parsed leading items of a tag-script reply.
struct Reply<'a> {
    epoch: &'a str,
    version: u64,
    vid: &'a str,
    full: bool,
    /// Full only because the reader is too far behind for its versions to be checked: no
    /// loss was seen (which is not to say there was none).
    behind: bool,
    /// A partial reply of the changes up to `version` only ([`PART_TAGS`]): more follow,
    /// and this is the state's version (and id) the part was cut from.
    more: Option<(u64, &'a str)>,
    /// Refresh replies: the last page write's number and id.
    page: Option<(u64, &'a str)>,
    /// Full replies: where the next page of the state starts (`"0"`: this was all of it).
    cursor: &'a str,
    pairs: Vec<(&'a [u8], &'a [u8])>,
}

fn parse_version(item: &[u8]) -> Result<u64, ProtocolError> {
    if item.is_empty() || item.len() > 20 {
        return Err(ProtocolError::BadVersion);
    }
    item.iter()
        .try_fold(0u64, |acc, b| {
            if b.is_ascii_digit() {
                acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
            } else {
                None
            }
        })
        .ok_or(ProtocolError::BadVersion)
}

/// The four items a refresh, update or merge reply and a page reply (after its `page`) begin
/// with: a text (the epoch; a page's next cursor), the state's version and its id, and a flag.
/// The leading items of a reply: a text (the epoch, or a page's cursor), a version, its id and
/// a flag, `0`, `1`, (a refresh answered in full only because a version its reader named is
/// too old to check) `2`, or (a refresh answered in part: [`PART_TAGS`]) `3`.
fn reply_head<'a>(
    it: &mut impl Iterator<Item = &'a [u8]>,
) -> Result<(&'a str, u64, &'a str, u8), ProtocolError> {
    let (Some(text), Some(version), Some(vid), Some(flag)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(ProtocolError::ReplyShape);
    };
    let text = std::str::from_utf8(text).map_err(|_| ProtocolError::InvalidUtf8)?;
    let vid = std::str::from_utf8(vid).map_err(|_| ProtocolError::InvalidUtf8)?;
    let version = parse_version(version)?;
    let flag = match flag {
        b"0" => 0,
        b"1" => 1,
        b"2" => 2,
        b"3" => 3,
        _ => return Err(ProtocolError::BadFlag),
    };
    Ok((text, version, vid, flag))
}

/// The next two items of a reply: a version (a page write's number) and its id.
fn version_and_id<'a>(
    it: &mut impl Iterator<Item = &'a [u8]>,
) -> Result<(u64, &'a str), ProtocolError> {
    let (Some(ver), Some(vid)) = (it.next(), it.next()) else {
        return Err(ProtocolError::ReplyShape);
    };
    let vid = std::str::from_utf8(vid).map_err(|_| ProtocolError::InvalidUtf8)?;
    Ok((parse_version(ver)?, vid))
}

/// Parses a refresh reply (`refresh`: with the page-write sequence after the flag) or an
/// update or merge reply.
fn parse_reply(reply: &[u8], refresh: bool) -> Result<Reply<'_>, ProtocolError> {
    let items = netstring::decode(reply)?;
    let mut it = items.into_iter();
    let (epoch, version, vid, flag) = reply_head(&mut it)?;
    if flag >= 2 && !refresh {
        return Err(ProtocolError::BadFlag);
    }
    let full = flag == 1 || flag == 2;
    let page = if refresh {
        Some(version_and_id(&mut it)?)
    } else {
        None
    };
    let cursor = if full {
        let c = it.next().ok_or(ProtocolError::ReplyShape)?;
        std::str::from_utf8(c).map_err(|_| ProtocolError::InvalidUtf8)?
    } else {
        "0"
    };
    let more = if flag == 3 {
        Some(version_and_id(&mut it)?)
    } else {
        None
    };
    let mut pairs = Vec::new();
    while let Some(tag) = it.next() {
        let record = it.next().ok_or(ProtocolError::ReplyShape)?;
        pairs.push((tag, record));
    }
    Ok(Reply {
        epoch,
        version,
        vid,
        full,
        behind: flag == 2,
        more,
        page,
        cursor,
        pairs,
    })
}

/// How long this process keeps its last revalidation's tags for a second report of it
/// ([`TagMirror::holds_revalidation`]): Next 16 calls `updateTags` on every `cacheHandlers`
/// object and then `revalidateTag` on the singular handler for each revalidation, all in one
/// synchronous loop, so the second report comes in the same host turn, which the turn number
/// tells; this only bounds how long the tags stay after it (or after no second report). Far
/// above a synchronous run's length: one that outlasted it would write the revalidation twice,
/// a round trip too many.
pub const SAME_REVALIDATION_WINDOW_MS: f64 = 1000.0;

/// This process's last revalidation, for telling a second report of it from another event.
#[derive(Clone, Debug)]
struct LastRevalidation {
    /// Its tags, as keys of the core's one hash table type (values unused): a hash set of
    /// `String`, or sorting them, would add code to the wasm module
    /// (docs/decisions/0028-wasm-size-budget.md).
    tags: StrMap<usize>,
    /// As applied.
    rev: Revalidation,
    /// As the host reported it, which a second report repeats: `rev` but where a later
    /// `expire` was counted from the wall clock ([`Revalidation::expiring_from_wall`]).
    reported: Revalidation,
    at: Millis,
    /// The host's turn in which `updateTags` recorded it; `None` when the singular handler's
    /// `revalidateTag` (or a caller of the core) did, which Next never reports twice.
    paired_turn: Option<u64>,
}

/// Tags asked for per [`TAG_PAGE`](crate::scripts::TAG_PAGE) call: about a millisecond of
/// Redis time each, whatever the size of the state.
pub const PAGE_COUNT: u32 = 1000;

/// Most changed tags a refresh reply carries (the `LIMIT 4000 1` of tag_refresh.lua, which
/// tests/lua_scripts.rs checks against this), unless one version alone has more: a reader
/// further behind gets the changes in parts, each ending after a whole version, and is not
/// synced until the last ([`TagMirror::is_catching_up`]). About 6 ms of Redis time a part.
pub const PART_TAGS: usize = 4000;

/// The epoch tag_refresh.lua answers for a state that holds records but has no epoch: its
/// meta hash was lost alone (an operator's `DEL`, an eviction) and nothing made it anew yet.
/// A reader that names no epoch then loads the records instead of taking the state for an
/// empty one, and one that follows this epoch is answered in part, without a load per
/// refresh; the next update or page write gives the state an epoch, which every reader
/// loads. The host's epochs are 32 hex digits, never this.
pub const EPOCH_WITHOUT_META: &str = "no-meta";

/// The meta hash's own epoch under `name`, the epoch a refresh answered: tag_refresh.lua names
/// a state whose hash or log went `<epoch>~<ver>.<id>~` or `<epoch>~<ver>.<id>+` (a name of its
/// own, which every reader loads; `<id>` the version's id, `''` when none), while page writes go
/// on announcing the meta hash's epoch, the same state's. The host's epochs and version ids are
/// hex digits (page writes': `w`, hex digits, a dot and a count), never with a `~`.
pub fn meta_epoch(name: &str) -> &str {
    // Bytes, not char patterns: the pattern machinery cost the wasm module some 360 bytes more
    // (docs/decisions/0028-wasm-size-budget.md).
    let b = name.as_bytes();
    let Some((&(b'~' | b'+'), rest)) = b.split_last() else {
        return name;
    };
    let Some(at) = rest.iter().rposition(|&c| c == b'~') else {
        return name;
    };
    let tail = rest.get(at + 1..).unwrap_or_default();
    let digits = tail.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 && tail.get(digits) == Some(&b'.') {
        name.get(..at).unwrap_or(name)
    } else {
        name
    }
}

/// A load of the whole state, page by page, started by a full refresh reply.
#[derive(Clone, Debug, Default)]
struct Loading {
    /// The state loaded replaces one the mirror followed (a flush, an empty restart, a restore,
    /// a failover that lost updates): what it lacks of the mirror's records is counted.
    replaced: bool,
    /// The script saw a loss, or could not tell (anything but a reader too far behind whose
    /// versions it could not check): what the mirror folded is given back unless the state
    /// covers it ([`TagMirror::note_losses`]).
    suspect: bool,
    epoch: String,
    version: u64,
    vid: String,
    /// Where the next page starts (`"0"` at the start).
    cursor: String,
    /// The version of the state the last page (at first, the full reply) was read at, and
    /// its id: the next page checks the state still holds it, and after the last one the
    /// catch-up refresh does. So a record a page showed is known to be in the state the
    /// mirror then follows, even one an update above the load's version made.
    seen: (u64, String),
    /// A page was asked for with no id to check (a version without one): the chain of checks
    /// from the load's version to `seen` is broken, and `seen` is no anchor
    /// ([`TagMirror::anchor`]).
    unchecked: bool,
    /// What the pages brought so far, as exact records up to the mirror's bound ...
    incoming: KeyedVec<TagRecord>,
    /// ... and folded past it.
    folded: Folded,
    /// How many of `incoming` stay exact whatever the bound: the tags the mirror held
    /// exactly when they came, and [`FOLDED_TAG`].
    pinned: usize,
}

/// Most records one [`TAG_MERGE`](crate::scripts::TAG_MERGE) call gives back, so a re-send
/// after a flush of a large state holds Redis for a bounded time per call.
pub const MAX_RESEND_BATCH: usize = 256;

/// Most updates of one process awaiting confirmation by a refresh; past it the next refresh
/// names no epoch, so the state loads page by page and is compared with the mirror. As many as
/// the versions whose ids the state keeps (tag_update.lua): past that many updates of its own,
/// the oldest one's id is gone and the state would be loaded all the same.
pub const MAX_UNCONFIRMED_UPDATES: usize = 1024;

/// One process's view of the shared tag state.
///
/// It holds everything this process has learnt of revalidations, from Redis and from its own
/// calls, and forgets a record only by age ([`TagMirror::prune`], the rule Redis prunes by).
/// A full refresh (Redis flushed, restarted empty, restored from an older snapshot, or a
/// failover that lost the last updates) is merged, never substituted: what this process knew
/// stays in force, and what the shared state lacks of it is queued to be given back
/// ([`TagMirror::take_resend`]), so other processes learn it again.
///
/// Until its first successful refresh the mirror is not *synced*: it cannot know what other
/// processes revalidated, and the engine judges no tagged entry fresh from it.
#[derive(Clone, Debug, Default)]
pub struct TagMirror {
    epoch: String,
    version: u64,
    /// Id of `version` as the shared state reported it (`""` when it reported none).
    vid: String,
    synced: bool,
    /// Versions (and ids) that this process's updates made in the state `acked_epoch` and
    /// that no refresh has confirmed yet: the next refresh of that state checks it still
    /// holds each of them.
    acked: Vec<(u64, String)>,
    /// The state (epoch) `acked` belongs to: the followed one, or the one an update went to
    /// while the mirror followed another (a load of it may have begun before the update).
    acked_epoch: String,
    /// How many of `acked` (the first ones: later updates are appended) a load of their state
    /// already ended without (above its version): the load after that one drops them (see
    /// [`TagMirror::take_page`]).
    carried: usize,
    /// The version and id the last page of the last load was read at, when every page of it
    /// checked the one before it (`TAG_PAGE`): named to the refresh script as the anchor while
    /// it is among `acked` ([`TagMirror::anchor`]).
    anchor: Option<(u64, String)>,
    /// The state's version (and id) the last part the mirror was answered was cut from
    /// ([`PART_TAGS`]). A tag that part left out, changed again later, comes with a later
    /// part only while the state holds that later change: refreshes name this version for the
    /// script to check ([`TagMirror::part_check`]) until one planned with it is answered at or
    /// past it.
    /// `0`: none.
    part_ver: u64,
    /// Its id.
    part_vid: String,
    /// The refresh in flight was planned with that check.
    part_planned: bool,
    /// How many of `acked` (the first ones) the refresh in flight was planned with
    /// ([`TagMirror::note_planned`]): its script checked those. Replies may come back in
    /// another order than their commands ran (a transport of concurrent calls), so an update
    /// acknowledged after the refresh was sent may have run before it, and only the script's
    /// own check, or the reply's version and id being that update's, confirms it.
    planned: usize,
    tags: KeyedVec<TagRecord>,
    local: KeyedVec<TagRecord>,
    /// Records the shared state lost and this process knows: to be merged back.
    resend: KeyedVec<TagRecord>,
    /// A merge in flight (records sent, not yet acknowledged), lent for one refresh
    /// ([`TagMirror::lend_in_flight`]), and whether it was queued again for it.
    in_flight: (Vec<(String, TagRecord)>, bool),
    /// How many records, over the mirror's life, a state that replaced the one the mirror
    /// followed lacked ([`TagMirror::lost`]).
    lost: u64,
    /// The whole state being loaded page by page, after a full refresh reply.
    loading: Option<Loading>,
    /// A load just finished: the next refresh from its version makes the mirror synced.
    catching_up: bool,
    /// The last revalidation this process issued. Only a repeat of exactly it, reported by the
    /// other interface in the same turn, is taken for the same event
    /// ([`TagMirror::holds_revalidation`]).
    last_local: Option<LastRevalidation>,
    /// The hash seed of the mirror's maps, and of the maps it builds later.
    seed: HashSeed,
    /// The last page write the last refresh reply named, until taken
    /// ([`TagMirror::take_page_write`]).
    page_write: Option<PageWrite>,
    /// When the revalidation of the announcement applied last was made, until taken
    /// ([`TagMirror::take_announced_at`]).
    announced_at: Option<Millis>,
    /// Most records `tags` (and a load's `incoming`) hold exactly.
    max_tags: MaxTags,
    /// The records folded out of `tags` past `max_tags` (crate::tag_fold).
    folded: Folded,
    /// [`FOLDED_TAG`]'s record (default when there is none), kept apart from `tags` so that
    /// judging an entry does not look it up: every read judges by it.
    floor: TagRecord,
    /// How far the host's wall clock ran ahead of its process's clock when last told (0 when
    /// behind, or never told): a scheduled expiry is judged due on the later of the two
    /// ([`TagMirror::judge_wall_ahead`]).
    wall_ahead: f64,
    /// The state (epoch, version, id) the mirror followed before it forgot it to load the
    /// whole state again, until that load (epoch `""`: none): a state that replaced it is
    /// counted ([`TagMirror::lost`]).
    forgotten: (String, u64, String),
    /// The last load was of records without an epoch ([`EPOCH_WITHOUT_META`]): the state's
    /// meta hash is to be made anew ([`TagMirror::take_remake_meta`]), so that readers follow
    /// it in part again instead of loading it whole at every refresh.
    remake_meta: bool,
}

/// The bound on the records a mirror holds exactly; [`DEFAULT_MAX_TAGS`] unless set.
#[derive(Clone, Copy, Debug)]
struct MaxTags(usize);

impl Default for MaxTags {
    fn default() -> Self {
        MaxTags(DEFAULT_MAX_TAGS as usize)
    }
}

impl TagMirror {
    /// True when this process's last revalidation was recorded by `updateTags` in the host's
    /// turn `turn` ([`TagMirror::mark_paired`]), asked for exactly `rev` for every one of
    /// `tags` (any form), and the mirror still holds it (as recorded, at its own time: the
    /// turn's synchronous work may have taken any time since, and the time may be ahead of
    /// `now`, stamped at the wall clock): then it is the same event seen through a second handler, and
    /// writing it to Redis again would only cost a round trip. A revalidation with other
    /// durations is another event, even one the mirror's records already cover: an entry
    /// created between the two must still be judged against the second. So is one after a
    /// revalidation the singular handler recorded itself, or after one of another turn: two
    /// requests' revalidations of the same tag a few ms apart are two events, and a page
    /// whose regeneration began between them must be judged against the second.
    pub fn holds_revalidation(
        &self,
        tags: &[&str],
        rev: &Revalidation,
        now: Millis,
        turn: u64,
    ) -> bool {
        if tags.is_empty() || !now.0.is_finite() {
            return false;
        }
        let Some(last) = &self.last_local else {
            return false;
        };
        if last.paired_turn != Some(turn)
            || last.reported != *rev
            || !tags
                .iter()
                .all(|tag| last.tags.contains_key(canonical_tag(tag).as_ref()))
        {
            return false;
        }
        // What it recorded: the mirror holds that unless a load replaced it since.
        let mut probe = TagRecord::default();
        probe.apply(&last.rev, last.at);
        tags.iter().all(|tag| {
            self.record(&canonical_tag(tag))
                .is_some_and(|r| r.covers(&probe) && r.updated_at >= probe.updated_at)
        })
    }

    /// An empty mirror (epoch `""`, version 0), which the first refresh fills.
    pub fn new() -> TagMirror {
        TagMirror::default()
    }

    /// [`TagMirror::new`] with its tags hashed with `seed` (the host's random one: tags come
    /// from requests and from the shared state).
    pub fn with_seed(seed: HashSeed) -> TagMirror {
        TagMirror {
            tags: KeyedVec::with_seed(0, seed),
            local: KeyedVec::with_seed(0, seed),
            resend: KeyedVec::with_seed(0, seed),
            seed,
            ..TagMirror::default()
        }
    }

    /// Rehashes the tags of every map with `seed`, and hashes the maps made later with it
    /// ([`crate::Engine::reseed_hashes`]).
    pub fn reseed(&mut self, seed: HashSeed) {
        self.seed = seed;
        self.tags.reseed(seed);
        self.local.reseed(seed);
        self.resend.reseed(seed);
        self.folded.rehash();
        if let Some(loading) = &mut self.loading {
            loading.incoming.reseed(seed);
            loading.folded.rehash();
        }
        if let Some(last) = &mut self.last_local {
            reseed(&mut last.tags, seed);
        }
    }

    /// The seeds the maps are hashed with (a load's and the last revalidation's when there
    /// are some), and the one of the maps made later.
    #[cfg(test)]
    pub(crate) fn hash_seeds(&self) -> Vec<HashSeed> {
        let mut out = vec![
            self.seed,
            self.tags.hash_seed(),
            self.local.hash_seed(),
            self.resend.hash_seed(),
        ];
        out.extend(self.loading.as_ref().map(|l| l.incoming.hash_seed()));
        out.extend(self.last_local.as_ref().map(|l| *l.tags.hasher()));
        out
    }

    /// Epoch of the shared state the mirror follows (`""` before the first refresh).
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Version of the shared state the mirror has seen everything up to.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Id of that version as the shared state reported it (`""` when none).
    pub fn version_id(&self) -> &str {
        &self.vid
    }

    /// A refresh is planned now: it carries [`TagMirror::unconfirmed_updates`] for the
    /// script to check.
    pub fn note_planned(&mut self) {
        self.planned = self.unconfirmed_updates().len();
        self.part_planned = self.part_ver > 0;
    }

    /// The version (and id) the last part the mirror was answered was cut from, while a
    /// refresh is to check the state still holds it ([`PART_TAGS`]): a failover that lost it
    /// may have lost the later changes of tags that part left out for them.
    pub fn part_check(&self) -> Option<(u64, &str)> {
        (self.part_ver > 0).then_some((self.part_ver, self.part_vid.as_str()))
    }

    /// The version and id the last page of the last load was read at, while a refresh still
    /// names it (it is among [`TagMirror::unconfirmed_updates`]) and every page of that load
    /// checked the one before it held, from the load's version on. The refresh script spares
    /// the check of a known version at or below it whose id Redis no longer keeps: the chain
    /// of checks and this version holding show no failover rolled the state back below the
    /// load's version since it began (tag_refresh.lua).
    pub fn anchor(&self) -> Option<(u64, &str)> {
        let (v, id) = self.anchor.as_ref()?;
        self.unconfirmed_updates()
            .iter()
            .any(|(uv, uid)| uv == v && uid == id)
            .then_some((*v, id.as_str()))
    }

    /// Versions and ids this process's own updates made in the followed state that no
    /// refresh has confirmed yet.
    pub fn unconfirmed_updates(&self) -> &[(u64, String)] {
        if self.acked_epoch == self.epoch {
            &self.acked
        } else {
            &[]
        }
    }

    /// True once a refresh has loaded the shared state: from then on the mirror knows every
    /// revalidation Redis held at its last refresh.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// True while the whole state is being loaded page by page: the next refresh call is a
    /// [`TAG_PAGE`](crate::scripts::TAG_PAGE) at [`TagMirror::page_cursor`].
    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    /// True when the next refresh makes the mirror synced unless it brings more to catch up
    /// on: after the last page of a load, or a reply in parts ([`PART_TAGS`]). A host makes
    /// that refresh before the request waiting on its pull is judged; the pages of a load it
    /// may leave to the background.
    pub fn is_catching_up(&self) -> bool {
        self.catching_up
    }

    /// Where the next page of the load starts, while loading.
    pub fn page_cursor(&self) -> Option<&str> {
        self.loading.as_ref().map(|l| l.cursor.as_str())
    }

    /// While loading, the version and id of the state the last page was read at (the full
    /// reply's, before the first page): the next page asks the script to check them.
    pub fn page_seen(&self) -> Option<(u64, &str)> {
        self.loading.as_ref().map(|l| (l.seen.0, l.seen.1.as_str()))
    }

    /// While loading, the name of the state the load began under, as the refresh named it
    /// (the meta hash's epoch, `""` for none, [`EPOCH_WITHOUT_META`], or a damaged state's
    /// name); the next page asks the script to check the state still has it. A version the
    /// reader follows with no id (the meta hash made anew by a page write) checks nothing, and
    /// a page of a state flushed since, with no epoch or another, would end the load unseen;
    /// so would one of a damaged state whose records went since, or came back with a failover.
    pub fn page_epoch(&self) -> Option<&str> {
        self.loading.as_ref().map(|l| l.epoch.as_str())
    }

    /// Declares the mirror complete without Redis: for a process with no shared state at
    /// all, its own revalidations are all there is.
    pub fn mark_synced(&mut self) {
        self.synced = true;
    }

    /// The last page write the last refresh reply named (a page of a load names none), once.
    pub fn take_page_write(&mut self) -> Option<PageWrite> {
        self.page_write.take()
    }

    /// When the revalidation of the announcement applied last (the next version) was made, by
    /// its records: the earliest of their update times, each the latest update of its tag,
    /// this one's included (later only where an earlier update's clock ran ahead). Once.
    pub fn take_announced_at(&mut self) -> Option<Millis> {
        self.announced_at.take()
    }

    /// Number of tags the mirror knows.
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// True when the mirror knows no tag.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Keeps at most `max_tags` records exactly (at least 1), folding the least recently
    /// updated past it (crate::tag_fold); [`DEFAULT_MAX_TAGS`] until set.
    pub fn set_max_tags(&mut self, max_tags: usize) {
        self.max_tags = MaxTags(max_tags.max(1));
        self.fold();
    }

    /// Records folded past the bound over the mirror's life, a load's included (a record
    /// folded twice counts twice).
    pub fn folded(&self) -> u64 {
        self.folded.count()
    }

    /// Folds the records past the bound; the tags folded leave the count of unconfirmed
    /// local revalidations too (their records stay in the outbox and in Redis). Called after
    /// every change to `tags`, it also takes [`FOLDED_TAG`]'s record as it now is (that tag
    /// is never folded).
    fn fold(&mut self) {
        self.floor = self.tags.get(FOLDED_TAG).copied().unwrap_or_default();
        let kept = usize::from(self.tags.contains_key(FOLDED_TAG));
        let local = &mut self.local;
        let folded = fold_past(
            &mut self.tags,
            self.max_tags.0,
            &mut self.folded,
            &self.seed,
            &|_| false,
            kept,
            &mut |tag| {
                local.remove(tag);
            },
        );
        if folded > 0 {
            // The maps may have grown far past the bound first (a burst of tags): the memory
            // of that burst is given back, not kept for the process's life.
            self.tags.compact();
            self.local.compact();
        }
    }

    /// Merges a record the shared state holds (`current`: of the state the mirror follows, so
    /// that it confirms local revalidations and records waiting to be given back), folding
    /// as the mirror passes its bound.
    fn take_record(&mut self, tag: &str, record: &TagRecord, current: bool) {
        self.tags
            .get_or_insert_with(tag, TagRecord::default)
            .merge(record);
        if current {
            if self.local.get(tag).is_some_and(|l| record.covers(l)) {
                self.local.remove(tag);
            }
            self.queue_in_flight();
            if self.resend.get(tag).is_some_and(|l| record.covers(l)) {
                self.resend.remove(tag);
            }
        }
        if self.tags.len() > self.max_tags.0 {
            self.fold();
        }
    }

    /// Local revalidations not yet seen in a refresh reply.
    pub fn unconfirmed(&self) -> usize {
        self.local.len()
    }

    /// Records waiting to be given back to a shared state that lost them.
    pub fn resend_len(&self) -> usize {
        self.resend.len()
    }

    /// Whether a record of `tag` waits in the queue of those to give back.
    pub fn resend_queued(&self, tag: &str) -> bool {
        self.resend.get(tag).is_some()
    }

    /// Whether the last load found records without an epoch, so that the state's meta hash
    /// is to be made anew (a [`TAG_MERGE`](crate::scripts::TAG_MERGE), of no record when
    /// none waits). A load of another state, or an update or merge reply, clears it.
    pub fn remakes_meta(&self) -> bool {
        self.remake_meta
    }

    /// [`TagMirror::remakes_meta`], cleared: a merge is planned.
    pub fn take_remake_meta(&mut self) -> bool {
        std::mem::take(&mut self.remake_meta)
    }

    /// Records this process knew that a state replacing the one the mirror followed lacked,
    /// over the mirror's life: a flush, an empty restart, a restore or a failover that lost
    /// updates. A record of a revalidation never sent (still queued, refused or parked) counts
    /// too: the new state lacks it all the same; not one that already waits to be given back
    /// and covers it (a revalidation a full outbox dropped, [`TagMirror::give_back_unsent`]),
    /// nor one whose merge is in flight ([`crate::tag_sync::TagSync::apply_refresh`] queues
    /// that batch again for the comparison). Only grows. Not counted: a state the
    /// mirror never followed a version of (Redis had no tag state yet), which lost nothing.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The record of one tag, if the mirror holds it exactly.
    pub fn record(&self, tag: &str) -> Option<&TagRecord> {
        self.tags.get(tag)
    }

    /// What the mirror knows of one tag: its exact record merged with the bucket it would
    /// have been folded into (never weaker than its exact record would be unfolded).
    #[inline(never)]
    pub fn known(&self, tag: &str) -> Option<TagRecord> {
        match (self.tags.get(tag), self.folded.bucket(&self.seed, tag)) {
            (None, None) => None,
            (Some(r), None) | (None, Some(r)) => Some(*r),
            (Some(r), Some(bucket)) => {
                let mut known = *r;
                known.merge(bucket);
                Some(known)
            }
        }
    }

    /// The revalidation just applied ([`TagMirror::apply_local`]) was reported by the host as
    /// `rev`, before its later `expire` was counted from the wall clock
    /// ([`Revalidation::expiring_from_wall`]): a second report of it repeats that.
    pub fn reported_as(&mut self, rev: &Revalidation) {
        if let Some(last) = &mut self.last_local {
            last.reported = *rev;
        }
    }

    /// The revalidation just applied ([`TagMirror::apply_local`]) came through the
    /// `'use cache'` interface's `updateTags` in the host's turn `turn`: the singular handler's
    /// `revalidateTag` of the same event, which Next calls next in the same turn, finds it
    /// ([`TagMirror::holds_revalidation`]).
    pub fn mark_paired(&mut self, turn: u64) {
        if let Some(last) = &mut self.last_local {
            last.paired_turn = Some(turn);
        }
    }

    /// The last revalidation's second report was taken ([`TagMirror::holds_revalidation`]):
    /// a third is another event.
    pub fn unmark_paired(&mut self) {
        if let Some(last) = &mut self.last_local {
            last.paired_turn = None;
        }
    }

    /// Drops this process's last revalidation once no second report of it can come
    /// ([`SAME_REVALIDATION_WINDOW_MS`]): its tags would otherwise stay until the next one
    /// (sixty thousand strings after a revalidation of as many tags). Called with every
    /// refresh, which a process makes at least once a request. One stamped that far ahead of
    /// `now` goes too: a process behind stamps its revalidations at the wall clock
    /// (docs/decisions/0036), and a refresh, answered in a later turn than the report, comes
    /// after any second report.
    fn forget_last_local(&mut self, now: Millis) {
        if self
            .last_local
            .as_ref()
            .is_some_and(|l| (now.0 - l.at.0).abs() > SAME_REVALIDATION_WINDOW_MS)
        {
            self.last_local = None;
        }
    }

    /// Applies a revalidation issued by this process, at once (read-your-own-writes).
    pub fn apply_local(&mut self, tags: &[&str], rev: &Revalidation, now: Millis) {
        // Looked up by tag only (the value is unused): the map type the core already has
        // costs no second copy of the hash table code, and no sort
        // (docs/decisions/0028-wasm-size-budget.md).
        let mut last = str_map(tags.len(), self.seed);
        for (i, tag) in tags.iter().enumerate() {
            last.insert((*tag).to_owned(), i);
        }
        self.last_local = Some(LastRevalidation {
            tags: last,
            rev: *rev,
            reported: *rev,
            at: now,
            paired_turn: None,
        });
        for tag in tags {
            self.tags
                .get_or_insert_with(tag, TagRecord::default)
                .apply(rev, now);
            self.local
                .get_or_insert_with(tag, TagRecord::default)
                .apply(rev, now);
            if self.tags.len() > self.max_tags.0 {
                self.fold();
            }
        }
        self.fold();
    }

    /// The host's two clocks as last told (`Engine::note_clocks`): the wall clock ran `ahead`
    /// of the process's clock (negative: behind). From now on a revalidation's scheduled
    /// expiry is judged due at the later of the two: judged on a process's clock that runs
    /// behind, the serving of its tags' entries stale would end that much late
    /// (docs/decisions/0036). Its stamps, and the entries' (Next's), are not moved. A distance
    /// that is no finite number is ignored.
    pub fn judge_wall_ahead(&mut self, ahead: f64) {
        if ahead.is_finite() {
            self.wall_ahead = ahead.max(0.0);
        }
    }

    /// `now` (the process's clock) as a scheduled expiry is judged: the later of it and the
    /// wall clock last told ([`TagMirror::judge_wall_ahead`]).
    fn expiry_now(&self, now: Millis) -> Millis {
        Millis(now.0 + self.wall_ahead)
    }

    /// The verdict for an entry created at `timestamp` carrying `tags`: the strongest over
    /// the tags and, when there is any, [`FOLDED_TAG`]; unknown tags count as fresh. A
    /// scheduled expiry is due at the later of `now` and the wall clock last told.
    pub fn evaluate<'a>(
        &self,
        timestamp: Millis,
        tags: impl IntoIterator<Item = &'a str>,
        now: Millis,
    ) -> Freshness {
        let now = self.expiry_now(now);
        let mut verdict = None;
        for tag in tags {
            let v = verdict.unwrap_or_else(|| self.floor.freshness(timestamp, now));
            let v = v.max(self.judge(tag, timestamp, now));
            verdict = Some(v);
            if v == Freshness::Expired {
                break;
            }
        }
        verdict.unwrap_or(Freshness::Fresh)
    }

    /// One tag's verdict for an entry created at `timestamp` (fresh when the tag is unknown).
    // One copy, whatever iterator `evaluate` is given (docs/decisions/0028-wasm-size-budget.md).
    #[inline(never)]
    fn judge(&self, tag: &str, timestamp: Millis, now: Millis) -> Freshness {
        self.known(tag)
            .map_or(Freshness::Fresh, |r| r.freshness(timestamp, now))
    }

    /// Next's `getExpiration(tags)`: the latest effective expiry over `tags` and, when there
    /// is any, [`FOLDED_TAG`]; 0 when none is known. A scheduled expiry is due at the later of
    /// `now` and the wall clock last told, as in [`TagMirror::evaluate`].
    pub fn expiration<'a>(&self, tags: impl IntoIterator<Item = &'a str>, now: Millis) -> Millis {
        let now = self.expiry_now(now);
        let mut latest = None;
        for tag in tags {
            let l = latest.unwrap_or_else(|| self.floor.effective_expired(now));
            latest = Some(l.max(self.expires(tag, now)));
        }
        latest.unwrap_or(Millis::ZERO)
    }

    /// One tag's effective expiry (0 when the tag is unknown).
    #[inline(never)]
    fn expires(&self, tag: &str, now: Millis) -> Millis {
        self.known(tag)
            .map_or(Millis::ZERO, |r| r.effective_expired(now))
    }

    /// Merges the reply of the refresh script.
    ///
    /// Every record is merged tag by tag; nothing the mirror knew is dropped. A full reply
    /// (the state is new, older than what the mirror saw, or a failover reused a version
    /// number) also sets the epoch and version, and queues for [`TagMirror::take_resend`]
    /// every record the mirror holds that the reply does not cover and that is younger than
    /// `keep_ms` at `now` (older ones Redis may have pruned on purpose). A partial reply for
    /// another epoch (a refresh that raced a full one) is merged but moves nothing.
    pub fn apply_refresh(
        &mut self,
        reply: &[u8],
        now: Millis,
        keep_ms: f64,
    ) -> Result<RefreshSummary, ProtocolError> {
        self.forget_last_local(now);
        if netstring::decode(reply)?.first() == Some(&&b"page"[..]) {
            return self.apply_page(reply, now, keep_ms);
        }
        let reply = parse_reply(reply, true)?;
        // The page-write sequence is the meta hash's, announced under its own epoch.
        self.page_write = reply.page.map(|(pver, pvid)| PageWrite {
            epoch: meta_epoch(reply.epoch).to_owned(),
            pver,
            pvid: pvid.to_owned(),
        });
        // Only a reply about the state the mirror follows can confirm local updates.
        let current = reply.epoch == self.epoch;
        // A partial reply of epoch '' to a mirror that follows no state is the whole state
        // too: none was ever recorded (version 0, never in parts), so this load of nothing
        // compares what the mirror knows (a flush it missed) with the empty state. Not one of
        // a state at version 0 that has an epoch (a page write made it): that was loaded
        // whole when first named, and Redis answers its changes.
        if reply.full || (current && self.epoch.is_empty() && reply.more.is_none()) {
            // The state is loaded page by page from here, the first page in this reply; until
            // the load is done, nothing tagged is judged fresh. What the mirror knows is
            // compared with it at the end (`note_losses`).
            // A state followed before (a non-empty epoch: one that existed) answered in full
            // under another epoch, or under its own at a version older than seen, or at the
            // one seen with another id (a failover reused the number). A reader too far behind
            // (its version's id pruned) is answered in full too, at a later version: nothing
            // was replaced then (a version reused and passed since goes uncounted: its records
            // are given back all the same).
            let replaced = self.replaced_by(reply.epoch, reply.version, reply.vid);
            self.loading = Some(Loading {
                replaced,
                suspect: replaced || !reply.behind,
                epoch: reply.epoch.to_owned(),
                version: reply.version,
                vid: reply.vid.to_owned(),
                cursor: "0".to_owned(),
                seen: (reply.version, reply.vid.to_owned()),
                unchecked: reply.vid.is_empty(),
                incoming: KeyedVec::with_seed(0, self.seed),
                folded: Folded::default(),
                pinned: 0,
            });
            self.synced = false;
            self.catching_up = false;
            self.part_ver = 0;
            // One script read the header and this page: when it holds the whole state, the
            // state as of this version is loaded, with nothing to catch up on.
            let (changed, skipped) = self.take_page(reply.cursor, &reply.pairs, now, keep_ms, true);
            return Ok(RefreshSummary {
                full: reply.full,
                changed,
                version: self.version,
                skipped,
            });
        }
        // The script checked this process's updates in the state followed only.
        let checked = current && self.acked_epoch == self.epoch;
        let mut skipped = 0;
        let parsed = reply.pairs.iter().filter_map(|(tag, record)| {
            match (std::str::from_utf8(tag), TagRecord::parse(record)) {
                // Releases before canonical tags stored them as Next gave them.
                (Ok(tag), Ok(record)) => Some((stored_tag(tag), record)),
                _ => {
                    skipped += 1;
                    None
                }
            }
        });
        let mut changed = 0;
        if current {
            // The script found the state still holds the version the last part was cut from
            // (else it would have answered in full): what that part left out is in this reply,
            // or in the next part, which names its own cut.
            if std::mem::take(&mut self.part_planned) && reply.version >= self.part_ver {
                self.part_ver = 0;
            }
            // Announcements took the mirror past the version this reply was read at: the
            // mirror's versions from there on follow the one it held, which a rollback after
            // the script ran may have given to another update, so the reply being of that
            // version and id proves nothing of them.
            let passed = self.version > reply.version;
            if reply.version >= self.version {
                self.version = reply.version;
                self.vid = reply.vid.to_owned();
                if let Some((v, id)) = reply.more {
                    self.part_ver = v;
                    self.part_vid = id.to_owned();
                }
            }
            // The script checked that each update it was planned with still holds its id
            // (else it would have answered in full); a later one only if the reply is its,
            // and the mirror has not gone past it since ([`TagMirror::apply_parsed`] notes the
            // version an announcement follows here, to be checked).
            if checked {
                let (planned, carried) = (std::mem::take(&mut self.planned), self.carried);
                let (mut i, mut still_carried) = (0, 0);
                self.acked.retain(|(v, id)| {
                    i += 1;
                    let keep = !((i <= planned && *v <= reply.version)
                        || (!passed && *v == reply.version && id == reply.vid));
                    if keep && i <= carried {
                        still_carried += 1;
                    }
                    keep
                });
                self.carried = still_carried;
            }
            if self.catching_up && reply.more.is_none() {
                self.catching_up = false;
                self.synced = true;
            }
        }
        if reply.more.is_some() {
            // Changes past this version follow (a later part): until they came, nothing
            // tagged is judged fresh by this mirror. Also a part of a state it no longer
            // follows (an update reply of another state came meanwhile): its next refresh
            // loads the whole state.
            self.synced = false;
            self.catching_up = current;
        }
        // Merged as they come: a reply of many changed tags never sits beside the mirror
        // whole, and the mirror folds as it grows past its bound.
        for (tag, record) in parsed {
            self.take_record(&tag, &record, current);
            changed += 1;
        }
        self.fold();
        Ok(RefreshSummary {
            full: false,
            changed,
            version: self.version,
            skipped,
        })
    }

    /// Applies an announcement the update script published (`'a', epoch, ver, vid, tag,
    /// record, ...`): the records of exactly one version. Only the version right after the
    /// mirror's own, of the epoch it follows, on a synced mirror that loads nothing, is
    /// applied: it then holds what a refresh from its version would have returned. One of a
    /// version it has passed is merged without moving the version ([`Announced::Known`], or a
    /// gap when it is the mirror's own version made by another update than the one it saw);
    /// anything else is a gap only a pull can close. A message of any
    /// other kind is an error (a page write's, `'p'`, is not a version of the tag state: the
    /// caller follows those, [`crate::tag_sync::PushFollow`]).
    ///
    /// Unlike a refresh, an announcement confirms none of this process's updates and gives
    /// back nothing: no script checked them, so the next pull still does.
    pub fn apply_announcement(&mut self, msg: &[u8]) -> Result<Announced, ProtocolError> {
        self.apply_parsed(parse_announcement(msg)?)
    }

    /// [`TagMirror::apply_announcement`] of a message parsed already.
    pub fn apply_parsed(&mut self, head: AnnouncementHead<'_>) -> Result<Announced, ProtocolError> {
        let AnnouncementHead {
            kind,
            epoch,
            number: version,
            id: vid,
            rest: mut it,
        } = head;
        if kind != b"a" {
            return Err(ProtocolError::ReplyShape);
        }
        // The id of the version it follows (tag_update.lua), then the records.
        let prev = it.next().ok_or(ProtocolError::ReplyShape)?;
        let mut pairs = Vec::new();
        while let Some(tag) = it.next() {
            pairs.push((tag, it.next().ok_or(ProtocolError::ReplyShape)?));
        }
        if !self.synced || self.loading.is_some() || epoch != self.epoch {
            return Ok(Announced::Gap);
        }
        // A version the mirror has passed: most often one a pull brought first, but the state
        // may have been rolled back with the subscription up (a master demoted to a replica
        // of a lagging one keeps its clients, and the replication stream brings the new
        // master's announcements) and the number reused. Its records are merged all the same
        // (merging never undoes anything): what was announced is judged by, and the next pull
        // checks the versions.
        let known = version <= self.version;
        if !known {
            // The next version of another than the mirror's own: a rollback with the
            // subscription up gave the mirror's number to another update, whose announcement
            // did not come. Applied, what is regenerated from now on would be judged from
            // this announcement's revalidation (`PushFollow::vouched_from`), past the one the
            // mirror lacks. An id unknown on either side tells nothing.
            if version != self.version + 1
                || (!self.vid.is_empty() && !prev.is_empty() && prev != self.vid.as_bytes())
            {
                return Ok(Announced::Gap);
            }
            // The mirror's own version may still be one a failover has since given to another
            // update with the same id unknown, or rolled back with no update after it: the
            // next pull checks the state still holds it, as it checks this process's updates.
            // Past the bound, or with updates of another state pending, only a pull goes on.
            if (self.acked_epoch != self.epoch && !self.acked.is_empty())
                || self.acked.len() >= MAX_UNCONFIRMED_UPDATES
            {
                return Ok(Announced::Gap);
            }
            self.acked_epoch.clone_from(&self.epoch);
            self.acked
                .push((self.version, std::mem::take(&mut self.vid)));
        }
        let mut changed = 0;
        let mut at: Option<Millis> = None;
        for (tag, record) in pairs {
            // A record the script wrote is never malformed; a foreign one is skipped, as in a
            // refresh, and the periodic pull brings the tag as the state holds it.
            if let (Ok(tag), Ok(record)) = (std::str::from_utf8(tag), TagRecord::parse(record)) {
                self.tags
                    .get_or_insert_with(&stored_tag(tag), TagRecord::default)
                    .merge(&record);
                changed += 1;
                at = Some(at.map_or(record.updated_at, |a| a.min(record.updated_at)));
            }
        }
        self.fold();
        if known {
            // The mirror's own version made by another update than the one it saw proves the
            // rollback: a gap, so the pull that finds it, and gives back what the state lost,
            // comes now.
            return Ok(
                if version == self.version && !self.vid.is_empty() && vid != self.vid {
                    Announced::Gap
                } else {
                    Announced::Known
                },
            );
        }
        self.version = version;
        self.vid = vid.to_owned();
        self.announced_at = at;
        Ok(Announced::Applied(changed))
    }

    /// Merges a [`TAG_PAGE`](crate::scripts::TAG_PAGE) reply into the load in progress.
    fn apply_page(
        &mut self,
        reply: &[u8],
        now: Millis,
        keep_ms: f64,
    ) -> Result<RefreshSummary, ProtocolError> {
        let items = netstring::decode(reply)?;
        let mut it = items.into_iter().skip(1);
        let (cursor, version, vid, rolled_back) = reply_head(&mut it)?;
        let rolled_back = match rolled_back {
            0 => false,
            1 => true,
            _ => return Err(ProtocolError::BadFlag),
        };
        let mut pairs = Vec::new();
        while let Some(tag) = it.next() {
            pairs.push((tag, it.next().ok_or(ProtocolError::ReplyShape)?));
        }
        if rolled_back {
            // The state no longer holds the version an earlier page was read at: what the
            // load took from it may be gone. The next refresh asks for the whole state again
            // (as when an update reply names another state), and that load's comparison
            // gives back what was lost.
            if self.loading.is_some() {
                self.forget_followed();
            }
        } else if let Some(load) = self.loading.as_mut() {
            load.unchecked |= vid.is_empty();
            load.seen = (version, vid.to_owned());
        }
        let (changed, skipped) = self.take_page(cursor, &pairs, now, keep_ms, false);
        Ok(RefreshSummary {
            full: true,
            changed,
            version: self.version,
            skipped,
        })
    }

    /// Adds one page to the load in progress (none: a page of a load given up, ignored);
    /// returns the records taken and skipped. After the last page (`cursor` `"0"`) the load is
    /// compared with what the mirror knew (what the state lost is queued to be given back), and
    /// the mirror follows the loaded state from the version the load started at: synced at
    /// once when `atomic` (the whole state came from one script), else after the next refresh,
    /// which brings what changed while the pages were read.
    fn take_page(
        &mut self,
        cursor: &str,
        pairs: &[(&[u8], &[u8])],
        now: Millis,
        keep_ms: f64,
        atomic: bool,
    ) -> (usize, usize) {
        let Some(mut load) = self.loading.take() else {
            return (0, 0);
        };
        let (mut changed, mut skipped) = (0, 0);
        for (tag, record) in pairs {
            match (std::str::from_utf8(tag), TagRecord::parse(record)) {
                (Ok(tag), Ok(record)) => {
                    let tag = stored_tag(tag);
                    if !load.incoming.contains_key(&tag)
                        && (tag == FOLDED_TAG || self.tags.contains_key(&tag))
                    {
                        load.pinned += 1;
                    }
                    // A tag read again (HSCAN returns some twice; a page of another server
                    // scans from the start) is taken as read last: the state's record only
                    // grows from version to version (a page checked the one before it held),
                    // and a merge of two readings could be stronger than the record the state
                    // holds, hiding from the comparison below a revalidation it lost.
                    *load.incoming.get_or_insert_with(&tag, TagRecord::default) = record;
                    changed += 1;
                }
                _ => skipped += 1,
            }
        }
        // What the mirror holds exactly stays exact in the load too, so the comparison at its
        // end sees each of those records as the state holds it: a folded one would have to be
        // given back to Redis (which has it) and announced to every process. Bounded all the
        // same: by the bound plus the mirror's own records.
        let mine = &self.tags;
        fold_past(
            &mut load.incoming,
            self.max_tags.0,
            &mut load.folded,
            &self.seed,
            &|tag| mine.contains_key(tag),
            // Counted as they came: the mirror may have folded or pruned some since, and it
            // cannot pin more than it holds (and the reserved tag).
            load.pinned.min(mine.len() + 1),
            &mut |_| (),
        );
        if cursor != "0" {
            load.cursor = cursor.to_owned();
            self.loading = Some(load);
            return (changed, skipped);
        }
        // Every record the mirror holds is compared below, none folded into a bucket that is
        // given back only on evidence of a loss.
        let compared_all = self.folded.count() == 0;
        let (received, folded) = (&load.incoming, &load.folded);
        let seed = self.seed;
        self.note_losses(
            |t| received.get(t).copied(),
            |t| folded.bucket(&seed, t).copied(),
            now,
            keep_ms,
            load.replaced,
            load.suspect,
        );
        for (tag, record) in received.iter() {
            self.take_record(tag, record, true);
        }
        self.folded.absorb(&load.folded);
        self.fold();
        // Updates of this process made in the loaded state after the version the load began
        // at are checked by the next refresh: a later page may show one (the load's header
        // may have been read before the update, whatever order the replies came in), and a
        // failover back to that version would lose it unseen. An update a load already ended
        // without is not kept past a second one: that second load began after the refresh
        // that followed the first, so after the update, and compared the whole state (what
        // was lost is given back); checking it again would answer every refresh in full
        // until the state's version passes it. Updates made in another state are gone with
        // it (the comparison above gives back what this process knows of them).
        //
        // The comparison took every record a page showed as present, and a page read after
        // the load began may show one an update above the load's version made: the catch-up
        // refresh names the version the last page was read at, as it names this process's
        // updates, so a failover below it answers in full and the next load gives back what
        // this one took as present. (Each page checked the one before it still held.) A load
        // after that one drops it like a carried update: that load compared the whole state.
        let (seen_version, seen_vid) = load.seen;
        // Every page checked the one before it: the refresh script may take the last one's
        // version holding as proof that the state was not rolled back below the load's.
        let anchored = seen_version > load.version
            && !seen_vid.is_empty()
            && !load.unchecked
            && !load.vid.is_empty();
        // So is an update of this process at or below that version, made before the last page
        // was read (the state was at that version then), when the comparison above saw every
        // record the mirror holds: a page that showed its record lies on the chain of checks
        // the anchor ends, and a record no page showed was queued to be given back. Checked,
        // its id would be gone as the load's is after over 1,024 revalidations, and a process
        // that revalidates during every load would load again for ever.
        let floor = if anchored && compared_all {
            seen_version
        } else {
            load.version
        };
        self.planned = 0;
        if self.acked_epoch == load.epoch {
            let (carried, mut i) = (self.carried, 0);
            self.acked.retain(|(v, _)| {
                i += 1;
                i > carried && *v > floor
            });
        } else {
            self.acked.clear();
            self.acked_epoch.clone_from(&load.epoch);
        }
        self.anchor = None;
        if seen_version > load.version && !seen_vid.is_empty() {
            if !self
                .acked
                .iter()
                .any(|(v, id)| *v == seen_version && *id == seen_vid)
            {
                self.acked.push((seen_version, seen_vid.clone()));
            }
            if anchored {
                self.anchor = Some((seen_version, seen_vid));
            }
        }
        self.carried = self.acked.len();
        self.remake_meta = load.epoch == EPOCH_WITHOUT_META;
        self.epoch = load.epoch;
        self.version = load.version;
        self.vid = load.vid;
        self.synced = atomic;
        self.catching_up = !atomic;
        (changed, skipped)
    }

    /// Queues for giving back every record the mirror holds, younger than `keep_ms` at `now`,
    /// that `received` (the whole state, its records held exactly) does not cover; counts them
    /// ([`TagMirror::lost`]) when the state `replaced` one the mirror followed and not even
    /// `maybe` (the state's record merged with what a load folded of it there) covers them.
    ///
    /// What the mirror folded goes back as one record, [`FOLDED_TAG`]'s, when the state may
    /// have lost some of it: unless the refresh script answered in full only because this
    /// reader is too far behind for its versions to be checked (`suspect` false: a reader over
    /// 1,024 versions behind, tag_refresh.lua's `'2'`), and the state lacks no record the
    /// mirror holds exactly. Giving it back on such a load would make every process judge
    /// every tagged entry older than the folded revalidations stale or expired, for nothing.
    /// What that leaves out (docs/decisions/0035-a-bounded-tag-mirror.md): a failover, while
    /// this reader was that far behind, that lost a revalidation it had folded and no record it
    /// holds exactly: a revalidation delivered late with an older time (an outbox's replay).
    fn note_losses(
        &mut self,
        received: impl Fn(&str) -> Option<TagRecord>,
        maybe: impl Fn(&str) -> Option<TagRecord>,
        now: Millis,
        keep_ms: f64,
        replaced: bool,
        suspect: bool,
    ) {
        self.queue_in_flight();
        let mut evidence = suspect;
        let held = self.tags.iter().map(|(t, r)| (t.as_str(), r, false));
        let folded = self.folded.all().map(|all| (FOLDED_TAG, all, true));
        for (tag, record, merged) in held.chain(folded) {
            // The folded merge comes last, once every exact record was compared.
            if merged && !evidence {
                continue;
            }
            // This process's own updates are included: the outbox forgets one once Redis
            // acknowledged it, and that acknowledgement may be what the state lost. One still
            // queued is taken off this queue again when the outbox's send is acknowledged
            // (`Engine::ack_outbox`), so it reaches Redis once.
            if record.updated_at.0 + keep_ms < now.0 {
                continue;
            }
            let exact = received(tag);
            if exact.is_some_and(|r| r.covers(record)) {
                continue;
            }
            evidence = true;
            let queue = self.resend.get_or_insert_with(tag, TagRecord::default);
            let mut possibly = exact.unwrap_or_default();
            if let Some(bucket) = maybe(tag) {
                possibly.merge(&bucket);
            }
            // Counted once: the record may already wait to be given back.
            if replaced && !queue.covers(record) && !possibly.covers(record) {
                self.lost += 1;
            }
            queue.merge(record);
        }
    }

    /// Takes note of the reply of the update or merge script (epoch, the version that update
    /// made and its id).
    ///
    /// The mirror's version does not move: the version before it may have been replaced by a
    /// failover since the mirror saw it, and a refresh only returns tags above the known
    /// version. The update is remembered instead, and the next refresh checks that the state
    /// still holds it (else it answers in full and what was lost is given back).
    pub fn apply_update_reply(&mut self, reply: &[u8]) -> Result<RefreshSummary, ProtocolError> {
        let reply = parse_reply(reply, false)?;
        // The script gave the state an epoch, if it had none.
        self.remake_meta = false;
        let followed = self.loading.as_ref().map_or(&self.epoch, |l| &l.epoch);
        if reply.epoch != *followed {
            // The update went to another state than the one the mirror follows (created
            // since, or a flush in between): the next refresh asks for everything, and
            // compares it with what the mirror knows.
            self.forget_followed();
        }
        // Kept even for a state the mirror does not follow: a refresh sent before this update
        // may be answered in full by that state at an earlier version, its later pages showing
        // the update; the refresh after that load must still check it.
        if self.acked_epoch != reply.epoch {
            self.acked.clear();
            self.carried = 0;
            self.planned = 0;
            self.acked_epoch = reply.epoch.to_owned();
        }
        if self.acked.len() >= MAX_UNCONFIRMED_UPDATES {
            // Too many to check one by one: the whole state is loaded and compared instead,
            // page by page (the refresh names no epoch). Not a refresh from version 0 of the
            // state followed: that would be one reply of every tag, and one script call
            // holding Redis for as long as it takes to read them. A load in progress goes on:
            // it compares the state with every record the mirror holds at its end, these
            // updates' included, and a record only a page showed is checked by the chain of
            // pages and the catch-up refresh (giving it up, a process revalidating faster than
            // a load takes would never sync again).
            self.acked.clear();
            self.carried = 0;
            self.planned = 0;
            if self.loading.is_none() {
                self.forget_followed();
            }
        } else {
            self.acked.push((reply.version, reply.vid.to_owned()));
        }
        Ok(RefreshSummary {
            full: false,
            changed: 0,
            version: self.version,
            skipped: 0,
        })
    }

    /// Follows no state any more: the next refresh names no epoch, so Redis answers in full
    /// and the state is loaded and compared with what the mirror knows. Whether the mirror is
    /// synced does not change here: a load in progress is given up. The state it followed is
    /// kept aside ([`TagMirror::forgotten`]), so that a state replacing it is counted as such.
    fn forget_followed(&mut self) {
        if !self.epoch.is_empty() {
            self.forgotten = (
                std::mem::take(&mut self.epoch),
                self.version,
                std::mem::take(&mut self.vid),
            );
        }
        self.version = 0;
        self.vid.clear();
        self.loading = None;
        self.catching_up = false;
        self.part_ver = 0;
    }

    /// Whether the whole state in a reply of `epoch` at `version` (id `vid`) replaced the one
    /// the mirror followed, or followed before [`TagMirror::forget_followed`]: another epoch,
    /// an older version, or the same version made by another update. Takes the forgotten one.
    fn replaced_by(&mut self, epoch: &str, version: u64, vid: &str) -> bool {
        let forgotten = std::mem::take(&mut self.forgotten);
        let (followed, known, id) = if self.epoch.is_empty() {
            (&forgotten.0, forgotten.1, &forgotten.2)
        } else {
            (&self.epoch, self.version, &self.vid)
        };
        !followed.is_empty()
            && (followed != epoch || version < known || (version == known && vid != id))
    }

    /// Up to [`MAX_RESEND_BATCH`] records to give back to the shared state, removed from the
    /// queue; hand them to [`TagMirror::restore_resend`] when the merge failed.
    pub fn take_resend(&mut self) -> Vec<(String, TagRecord)> {
        let keys: Vec<String> = self
            .resend
            .iter()
            .take(MAX_RESEND_BATCH)
            .map(|(k, _)| k.clone())
            .collect();
        let batch = keys
            .into_iter()
            .filter_map(|k| {
                let record = self.resend.remove(&k)?;
                Some((k, record))
            })
            .collect();
        // A burst given back (a flush of a large state) leaves no room behind it.
        self.resend.compact();
        batch
    }

    /// Lends the mirror `in_flight`, a merge sent and not yet acknowledged, for the refresh
    /// applied next: a state answered in full meanwhile lacks its records as it lacks those
    /// queued, so they count as queued ([`TagMirror::lost`] counts them once), and what the
    /// merge covers is taken off the queue again ([`TagMirror::return_in_flight`]). They are
    /// put in the queue only when the refresh reaches it (a record taken or a load compared):
    /// a pull that changed nothing, all a process sees while Redis refuses the merge and
    /// answers reads (OOM), allocates nothing for it.
    pub fn lend_in_flight(&mut self, in_flight: Vec<(String, TagRecord)>) {
        self.in_flight = (in_flight, false);
    }

    /// Queues the records of the merge lent ([`TagMirror::lend_in_flight`]) again, once.
    fn queue_in_flight(&mut self) {
        if !self.in_flight.1 && !self.in_flight.0.is_empty() {
            self.in_flight.1 = true;
            let batch = std::mem::take(&mut self.in_flight.0);
            self.restore_resend(&batch);
            self.in_flight.0 = batch;
        }
    }

    /// The merge lent by [`TagMirror::lend_in_flight`], given back once the refresh is
    /// applied, with what it covers taken off the queue. Not queued again by the refresh, it
    /// leaves the queue as if it had been, then taken off: a record queued for one of its
    /// tags takes its record in, and leaves when that covers it.
    pub fn return_in_flight(&mut self) -> Vec<(String, TagRecord)> {
        let (batch, queued) = std::mem::take(&mut self.in_flight);
        if !queued {
            for (tag, record) in &batch {
                if let Some(q) = self.resend.get_mut(tag) {
                    q.merge(record);
                }
            }
        }
        self.unqueue_in_flight(&batch);
        batch
    }

    /// Takes out of the re-send queue what `in_flight` (a merge sent, not yet acknowledged)
    /// already gives back: a state answered in full again meanwhile queues it a second time.
    pub fn unqueue_in_flight(&mut self, in_flight: &[(String, TagRecord)]) {
        for (tag, record) in in_flight {
            self.unqueue(tag, record);
        }
    }

    /// Takes `tag` out of the re-send queue when `record`, written to Redis, covers it.
    pub fn unqueue(&mut self, tag: &str, record: &TagRecord) {
        if self.resend.get(tag).is_some_and(|q| record.covers(q)) {
            self.resend.remove(tag);
            self.resend.compact();
        }
    }

    /// Puts records back in the re-send queue (their merge did not reach Redis).
    pub fn restore_resend(&mut self, records: &[(String, TagRecord)]) {
        for (tag, record) in records {
            self.resend
                .get_or_insert_with(tag, TagRecord::default)
                .merge(record);
        }
    }

    /// Queues to be merged back what a revalidation this process made wrote (`record` for
    /// each of `tags`) when its update will never be sent itself (dropped from a full outbox):
    /// the state may never have had it. Past `max_tags` queued records, a tag not queued yet
    /// goes under [`FOLDED_TAG`], as the fold does: the queue stays bounded, and every process
    /// judges every tagged entry by that record, so the revalidation still reaches the fleet.
    pub fn give_back_unsent(&mut self, tags: &[String], record: &TagRecord) {
        for tag in tags {
            let tag = if self.resend.len() >= self.max_tags.0 && self.resend.get(tag).is_none() {
                FOLDED_TAG
            } else {
                tag
            };
            self.resend
                .get_or_insert_with(tag, TagRecord::default)
                .merge(record);
        }
    }

    /// Forgets tags last updated more than `older_than_ms` before `now`; returns how many.
    /// Their entries have all reached their TTL by then, so the records are useless.
    pub fn prune(&mut self, now: Millis, older_than_ms: f64) -> usize {
        let young = &mut |_: &str, r: &mut TagRecord| r.updated_at.0 + older_than_ms >= now.0;
        let before = self.tags.len();
        retain_records(&mut self.tags, young);
        retain_records(&mut self.local, young);
        retain_records(&mut self.resend, young);
        self.folded.prune(now, older_than_ms);
        self.fold();
        before.saturating_sub(self.tags.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: f64 = 1_795_690_530_000.0;

    fn rec(rev: Revalidation, now: f64) -> TagRecord {
        let mut r = TagRecord::default();
        r.apply(&rev, Millis(now));
        r
    }

    /// A refresh reply of the changes up to `ver` only (flag `3`), cut from version `from`
    /// (its id as [`reply`] gives it): more follow.
    fn part(epoch: &str, ver: u64, from: u64, pairs: &[(&str, TagRecord)]) -> Vec<u8> {
        let mut items: Vec<Vec<u8>> = netstring::decode(&reply(epoch, ver, false, pairs))
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        items[3] = b"3".to_vec();
        items.insert(6, from.to_string().into_bytes());
        items.insert(7, format!("id{from}").into_bytes());
        netstring::encode(items)
    }

    /// A part left out the tags changed again past its version, which come with a later part
    /// only while the state holds those changes: the refreshes after it name the version it
    /// was cut from for the script to check, until one planned with that check is answered at
    /// or past it (a later part names its own). A reply the check was not planned with, or a
    /// part below it, does not end it; a load (which reads the whole state) or a state no longer
    /// followed does.
    #[test]
    fn a_part_is_checked_until_a_refresh_at_or_past_its_cut_holds_it() {
        let mut m = TagMirror::new();
        load(&mut m, "E", 2, &[]);
        assert_eq!(m.part_check(), None);
        m.note_planned();
        refresh(&mut m, &part("E", 3, 5, &[])).unwrap();
        assert_eq!(m.part_check(), Some((5, "id5")));
        // Not planned with the check: a reply at the cut says nothing of it.
        refresh(&mut m, &part("E", 5, 7, &[])).unwrap();
        assert_eq!(
            m.part_check(),
            Some((7, "id7")),
            "a later part names its own"
        );
        refresh(&mut m, &reply("E", 7, false, &[])).unwrap();
        assert_eq!(
            m.part_check(),
            Some((7, "id7")),
            "the script did not check it"
        );
        m.note_planned();
        refresh(&mut m, &reply("E", 8, false, &[])).unwrap();
        assert_eq!(m.part_check(), None);
        assert!(m.is_synced());
        // A load ends it: it reads the whole state.
        m.note_planned();
        refresh(&mut m, &part("E", 9, 12, &[])).unwrap();
        assert_eq!(m.part_check(), Some((12, "id12")));
        refresh(&mut m, &reply("E", 12, true, &[])).unwrap();
        assert_eq!(m.part_check(), None);
        // So does a state no longer followed (an update reply of another one).
        m.note_planned();
        refresh(&mut m, &part("E", 13, 15, &[])).unwrap();
        assert_eq!(m.part_check(), Some((15, "id15")));
        m.apply_update_reply(&reply("F", 1, false, &[])).unwrap();
        assert_eq!(m.part_check(), None);
        let whole = part("E", 3, 5, &[]);
        let mut cut = netstring::decode(&whole).unwrap();
        cut.truncate(6);
        assert_eq!(
            parse_reply(&netstring::encode(cut), true).err(),
            Some(ProtocolError::ReplyShape),
            "a part names its cut"
        );
    }

    #[test]
    fn a_reply_in_parts_leaves_the_mirror_unsynced_until_the_last() {
        let mut m = TagMirror::new();
        load(&mut m, "E", 2, &[]);
        m.apply_local(&["mine"], &Revalidation::Expire, Millis(900.0));
        m.apply_update_reply(&reply("E", 5, false, &[])).unwrap();
        m.note_planned();
        let a = rec(Revalidation::Expire, 800.0);
        refresh(&mut m, &part("E", 4, 6, &[("a", a)])).unwrap();
        assert!(!m.is_synced() && m.is_catching_up());
        assert_eq!((m.version(), m.version_id()), (4, "id4"));
        assert_eq!(m.record("a"), Some(&a));
        // The script found the update, but this part shows the state up to version 4 only:
        // the next part confirms it.
        assert_eq!(m.unconfirmed_updates(), &[(5, "id5".to_owned())]);
        assert!(
            m.apply_announcement(&announcement("E", 5, &[]))
                .is_ok_and(|a| a == Announced::Gap),
            "no announcement while catching up"
        );
        m.note_planned();
        refresh(
            &mut m,
            &reply("E", 6, false, &[("mine", rec(Revalidation::Expire, 900.0))]),
        )
        .unwrap();
        assert!(m.is_synced() && !m.is_catching_up());
        assert!(m.unconfirmed_updates().is_empty());
        assert_eq!(m.unconfirmed(), 0);
        assert_eq!(
            parse_reply(&part("E", 1, 2, &[]), false).err(),
            Some(ProtocolError::BadFlag),
            "an update reply is never in parts"
        );
    }

    /// A part that comes back after the mirror stopped following its state (an update reply
    /// named another epoch while the refresh was in flight: [`TagMirror::forget_followed`])
    /// holds the changes up to its version only. Before parts, such a reply carried every
    /// change of that state and left the mirror synced as it was; a part must not: the
    /// request waiting on that pull would be judged by a mirror without the changes past the
    /// part (found by freshness_sim's LoseMeta histories).
    #[test]
    fn a_part_for_a_state_no_longer_followed_leaves_the_mirror_unsynced() {
        let mut m = TagMirror::new();
        load(&mut m, "E", 2, &[]);
        assert!(m.is_synced());
        m.note_planned();
        // The refresh from version 2 is in flight; an update reply names another state.
        m.apply_local(&["mine"], &Revalidation::Expire, Millis(900.0));
        m.apply_update_reply(&reply("F", 1, false, &[])).unwrap();
        assert_eq!(m.epoch(), "");
        // Its reply: a part of state E up to version 3; "b", changed at version 4, follows.
        let a = rec(Revalidation::Expire, 800.0);
        refresh(&mut m, &part("E", 3, 4, &[("a", a)])).unwrap();
        assert_eq!(m.record("a"), Some(&a));
        assert!(
            !m.is_synced(),
            "synced after a part, without the changes past version 3"
        );
        assert!(
            !m.is_catching_up(),
            "the next refresh loads the whole state instead"
        );
    }

    #[test]
    fn the_last_revalidation_is_forgotten_once_no_second_report_can_come() {
        let mut m = TagMirror::new();
        let tags: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        m.apply_local(&refs, &Revalidation::Expire, Millis(T0));
        m.mark_paired(7);
        m.apply_refresh(&reply("", 0, false, &[]), Millis(T0 + 5.0), KEEP)
            .unwrap();
        assert!(
            m.holds_revalidation(&refs, &Revalidation::Expire, Millis(T0 + 5.0), 7),
            "within the window: the same event"
        );
        m.apply_refresh(
            &reply("", 0, false, &[]),
            Millis(T0 + SAME_REVALIDATION_WINDOW_MS + 1.0),
            KEEP,
        )
        .unwrap();
        assert!(m.last_local.is_none(), "its tags are not kept");
    }

    /// A process whose clock a wall-clock step left behind stamps its revalidations at the
    /// wall clock, ahead of the clock its refreshes run on (docs/decisions/0036): its last
    /// revalidation's tags must not stay until that clock catches up (hours after a machine
    /// slept), only until the first refresh after the report (which comes in its own turn).
    #[test]
    fn a_last_revalidation_stamped_ahead_of_this_clock_is_forgotten_at_the_next_refresh() {
        let mut m = TagMirror::new();
        m.apply_local(&["t"], &Revalidation::Expire, Millis(T0 + 3_600_000.0));
        m.mark_paired(7);
        m.apply_refresh(&reply("", 0, false, &[]), Millis(T0 + 5.0), KEEP)
            .unwrap();
        assert!(
            m.last_local.is_none(),
            "the last revalidation's tags are still held"
        );
    }

    /// Vectors from Next 16.4.6's own `encodeHeaderSafe` (dist/server/lib/encode-header-safe.js),
    /// run under Node.
    #[test]
    fn canonical_form_is_next_encode_header_safe() {
        for (raw, encoded) in [
            ("caf\u{e9}", "caf%C3%A9"),
            ("caf%C3%A9", "caf%C3%A9"),
            ("a\tb", "a\tb"),
            ("a\nb", "a%0Ab"),
            ("\u{7f}", "%7F"),
            ("\u{0}", "%00"),
            ("\u{ff}", "%C3%BF"),
            (
                "\u{65e5}\u{672c}\u{8a9e}\u{306e}\u{30bf}\u{30b0}",
                "%E6%97%A5%E6%9C%AC%E8%AA%9E%E3%81%AE%E3%82%BF%E3%82%B0",
            ),
            ("\u{1f600}x", "%F0%9F%98%80x"),
            ("mixed \u{e9} and %C3%A9", "mixed %C3%A9 and %C3%A9"),
            ("_N_T_/\u{fc}ber/page", "_N_T_/%C3%BCber/page"),
            ("", ""),
        ] {
            assert_eq!(canonical_tag(raw), encoded, "{raw:?}");
            assert_eq!(canonical_tag(encoded), encoded, "{encoded:?}");
        }
        assert!(matches!(
            canonical_tag("plain, {tag} %41"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn admitted_tags_drop_only_the_over_long_ones() {
        // 29 CJK characters: within Next's 256, 261 once encoded (past the old 256 check).
        let cjk = "\u{6f22}".repeat(29);
        let cjk_encoded = canonical_tag(&cjk).into_owned();
        assert_eq!(cjk_encoded.len(), 261);
        // Next's longest explicit tag: 256 units, 9 bytes each once encoded.
        let longest_next = "\u{6f22}".repeat(256);
        assert_eq!(canonical_tag(&longest_next).len(), 2304);
        let too_long = "t".repeat(MAX_TAG_BYTES + 1);
        let at_limit = "t".repeat(MAX_TAG_BYTES);
        // Raw and encoded forms of one tag are one tag.
        let a = admit_tags(&[
            &cjk,
            "x",
            &too_long,
            &cjk_encoded,
            &longest_next,
            &at_limit,
            "x",
        ]);
        assert_eq!(
            a.tags,
            [
                cjk_encoded.as_str(),
                "x",
                &canonical_tag(&longest_next),
                &at_limit
            ]
        );
        assert_eq!(
            a.dropped,
            DroppedTags {
                count: 1,
                longest: MAX_TAG_BYTES + 1
            }
        );
        // A tag whose raw form fits but whose encoded form does not is dropped too.
        let wide = "\u{e9}".repeat(MAX_TAG_BYTES / 6 + 1);
        assert_eq!(admit_tags(&[&wide]).dropped.count, 1);
        // No limit on the count: thousands of tags, none dropped.
        let many: Vec<String> = (0..5000).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let a = admit_tags(&refs);
        assert_eq!((a.tags.len(), a.dropped.count), (5000, 0));
        assert!(a.tags.iter().all(|t| matches!(t, Cow::Borrowed(_))));
        assert!(a.dropped.is_empty());
    }

    #[test]
    fn refresh_replies_with_raw_tags_land_in_canonical_form() {
        // A release before canonical tags wrote the raw form to Redis.
        let mut m = TagMirror::new();
        // In a load, and in an incremental refresh alike.
        load(
            &mut m,
            "E1",
            1,
            &[("caf\u{e9}", rec(Revalidation::Expire, 500.0))],
        );
        refresh(
            &mut m,
            &reply(
                "E1",
                2,
                false,
                &[("na\u{ef}ve", rec(Revalidation::Expire, 600.0))],
            ),
        )
        .unwrap();
        assert!(m.record("caf\u{e9}").is_none());
        assert_eq!(m.record("na%C3%AFve").unwrap().expired, Millis(600.0));
        assert_eq!(m.record("caf%C3%A9").unwrap().expired, Millis(500.0));
    }

    /// A second reading of Next's `encodeHeaderSafe`, written the way Next writes it (runs of
    /// characters outside tab and printable ASCII through `encodeURIComponent`), to check
    /// the byte-wise implementation against.
    fn next_encode_header_safe(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            if c == '\t' || (' '..='~').contains(&c) {
                out.push(c);
            } else {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
        out
    }

    const MAX_PROFILE: Revalidation = Revalidation::Stale {
        expire_seconds: Some(31_536_000.0),
    };

    #[test]
    fn revalidate_tag_max_is_stale_then_expires() {
        let mut m = TagMirror::new();
        m.apply_local(&["products"], &MAX_PROFILE, Millis(T0));
        let t = ["products"];
        assert_eq!(
            m.evaluate(Millis(T0 - 1.0), t, Millis(T0 + 5.0)),
            Freshness::Stale
        );
        assert_eq!(
            m.evaluate(Millis(T0), t, Millis(T0 + 5.0)),
            Freshness::Stale
        );
        assert_eq!(
            m.evaluate(Millis(T0 + 1.0), t, Millis(T0 + 5.0)),
            Freshness::Fresh
        );
        let later = Millis(T0 + 31_536_000_000.0);
        assert_eq!(m.evaluate(Millis(T0 - 1.0), t, later), Freshness::Expired);
        assert_eq!(m.expiration(t, Millis(T0 + 5.0)), Millis::ZERO);
        assert_eq!(m.expiration(t, later), Millis(T0));
    }

    #[test]
    fn immediate_expiry_forms() {
        for rev in [
            Revalidation::Expire,
            Revalidation::Stale {
                expire_seconds: Some(0.0),
            },
        ] {
            let mut m = TagMirror::new();
            m.apply_local(&["a"], &rev, Millis(T0 + 0.4));
            // Rounded up: an entry created in the same fractional ms is expired too.
            assert_eq!(
                m.evaluate(Millis(T0 + 0.9), ["a"], Millis(T0 + 2.0)),
                Freshness::Expired
            );
            assert_eq!(
                m.evaluate(Millis(T0 + 1.5), ["a"], Millis(T0 + 2.0)),
                Freshness::Fresh
            );
            assert_eq!(m.expiration(["a"], Millis(T0 + 2.0)), Millis(T0 + 1.0));
        }
    }

    #[test]
    fn stale_without_expire() {
        let r = rec(Revalidation::from_durations(Some(None)), T0);
        assert_eq!(r.stale, Millis(T0));
        assert_eq!(r.expired, Millis::ZERO);
        assert!(!r.has_pending());
        assert_eq!(r.freshness(Millis(T0), Millis(1e15)), Freshness::Stale);
    }

    #[test]
    fn from_durations_and_expire_ms() {
        assert_eq!(Revalidation::from_durations(None), Revalidation::Expire);
        for e in [0.0, -0.0, -3.0, f64::NEG_INFINITY] {
            assert_eq!(
                Revalidation::from_durations(Some(Some(e))),
                Revalidation::Expire,
                "expire {e}"
            );
        }
        assert_eq!(
            Revalidation::from_durations(Some(None)),
            Revalidation::Stale {
                expire_seconds: None
            }
        );
        assert_eq!(
            Revalidation::from_durations(Some(Some(5.0))),
            Revalidation::Stale {
                expire_seconds: Some(5.0)
            }
        );
        let ms = |e: f64| {
            Revalidation::Stale {
                expire_seconds: Some(e),
            }
            .expire_ms()
        };
        assert_eq!(ms(1.0001), Some(1001.0));
        assert_eq!(ms(-3.0), Some(0.0));
        assert_eq!(ms(f64::NAN), Some(0.0));
        assert_eq!(ms(f64::INFINITY), Some(MAX_EXPIRE_MS));
        assert_eq!(Revalidation::Expire.expire_ms(), Some(0.0));
    }

    /// A later `expire` is cut by how far the stamp is after a usable wall clock, past the
    /// slack, down to an expiry at once; nothing else is changed, and no wall clock (NaN, 0,
    /// negative, infinite, not before the stamp or within the slack of it) changes nothing.
    #[test]
    fn a_later_expire_is_counted_from_the_wall_clock() {
        let stale = |e: Option<f64>| Revalidation::Stale { expire_seconds: e };
        let at = Millis(T0 + 5_000.0);
        assert_eq!(
            stale(Some(10.0)).expiring_from_wall(at, Millis(T0)),
            stale(Some(5.0))
        );
        let cut = stale(Some(2.0)).expiring_from_wall(at, Millis(T0));
        assert_eq!(cut, stale(Some(-3.0)));
        assert_eq!(cut.expire_ms(), Some(0.0), "expired at once");
        for wall in [
            f64::NAN,
            0.0,
            -1.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            at.0,
            at.0 + 1.0,
            at.0 - crate::time::CLOCK_AHEAD_SLACK_MS,
        ] {
            assert_eq!(
                stale(Some(10.0)).expiring_from_wall(at, Millis(wall)),
                stale(Some(10.0)),
                "wall {wall}"
            );
        }
        for rev in [Revalidation::Expire, stale(None), stale(Some(0.0))] {
            assert_eq!(rev.expiring_from_wall(at, Millis(T0)), rev);
        }
    }

    #[test]
    fn get_expiration_is_max_over_known_tags() {
        let mut m = TagMirror::new();
        m.apply_local(&["a"], &Revalidation::Expire, Millis(100.0));
        m.apply_local(&["b"], &Revalidation::Expire, Millis(300.0));
        m.apply_local(&["c"], &MAX_PROFILE, Millis(500.0));
        assert_eq!(
            m.expiration(["a", "b", "c", "zzz"], Millis(600.0)),
            Millis(300.0)
        );
        assert_eq!(m.expiration(["zzz"], Millis(600.0)), Millis::ZERO);
        assert_eq!(m.expiration([], Millis(600.0)), Millis::ZERO);
        assert_eq!(
            m.evaluate(Millis(1.0), ["zzz"], Millis(600.0)),
            Freshness::Fresh
        );
    }

    #[test]
    fn pending_rules() {
        let mut r = rec(
            Revalidation::Stale {
                expire_seconds: Some(10.0),
            },
            1000.0,
        );
        assert_eq!(
            (r.pending_at, r.pending_exp),
            (Millis(1000.0), Millis(11_000.0))
        );
        r.apply(
            &Revalidation::Stale {
                expire_seconds: Some(100.0),
            },
            Millis(2000.0),
        );
        assert_eq!(
            (r.pending_at, r.pending_exp),
            (Millis(2000.0), Millis(11_000.0))
        );
        // Due: folded into expired, then a fresh pending starts.
        r.apply(
            &Revalidation::Stale {
                expire_seconds: Some(1.0),
            },
            Millis(12_000.0),
        );
        assert_eq!(r.expired, Millis(2000.0));
        assert_eq!(
            (r.pending_at, r.pending_exp),
            (Millis(12_000.0), Millis(13_000.0))
        );
        assert_eq!(r.stale, Millis(12_000.0));
        assert_eq!(r.updated_at, Millis(12_000.0));
        assert_eq!(r.effective_expired(Millis(12_999.0)), Millis(2000.0));
        assert_eq!(r.effective_expired(Millis(13_000.0)), Millis(12_000.0));
        let before = r;
        r.apply(&Revalidation::Expire, Millis(f64::NAN));
        assert_eq!(r, before);
    }

    #[test]
    fn record_text_form() {
        let r = TagRecord {
            stale: Millis(1.0),
            expired: Millis(2.0),
            pending_at: Millis(3.0),
            pending_exp: Millis(4.0),
            updated_at: Millis(1_795_690_530_488.0),
        };
        assert_eq!(r.encode(), "1,2,3,4,1795690530488");
        assert_eq!(TagRecord::parse(r.encode().as_bytes()), Ok(r));
        assert_eq!(TagRecord::default().encode(), "0,0,0,0,0");
        for bad in [
            &b""[..],
            b"1,2,3,4",
            b"1,2,3,4,5,6",
            b"1,2,,4,5",
            b"1,2,3,4,-5",
            b"1,2,3,4,5e3",
            b"1,2,3,4,12345678901234567",
        ] {
            assert_eq!(
                TagRecord::parse(bad),
                Err(ProtocolError::BadTagRecord),
                "{bad:?}"
            );
        }
    }

    fn reply(epoch: &str, ver: u64, full: bool, pairs: &[(&str, TagRecord)]) -> Vec<u8> {
        let mut items: Vec<Vec<u8>> = vec![
            epoch.as_bytes().to_vec(),
            ver.to_string().into_bytes(),
            format!("id{ver}").into_bytes(),
            if full { b"1".to_vec() } else { b"0".to_vec() },
            // No page write.
            b"0".to_vec(),
            Vec::new(),
        ];
        if full {
            // The state in one reply: no further page.
            items.push(b"0".to_vec());
        }
        for (t, r) in pairs {
            items.push(t.as_bytes().to_vec());
            items.push(r.encode().into_bytes());
        }
        netstring::encode(items)
    }

    /// Pruning age of these tests: nothing in them is that old.
    const KEEP: f64 = 1e12;

    fn refresh(m: &mut TagMirror, reply: &[u8]) -> Result<RefreshSummary, ProtocolError> {
        m.apply_refresh(reply, Millis(1000.0), KEEP)
    }

    /// A page read at version `ver` of the state (its id as [`reply`] gives it).
    fn page(cursor: &str, ver: u64, pairs: &[(&str, TagRecord)]) -> Vec<u8> {
        let mut items = vec![
            "page".to_owned(),
            cursor.to_owned(),
            ver.to_string(),
            format!("id{ver}"),
            "0".to_owned(),
        ];
        for (t, r) in pairs {
            items.push((*t).to_owned());
            items.push(r.encode());
        }
        netstring::encode(items)
    }

    /// A whole-state load as the refresh script answers it when the state is new: the full
    /// header, the pages (here one), then the refresh that catches up from its version.
    fn load_at(
        m: &mut TagMirror,
        epoch: &str,
        ver: u64,
        pairs: &[(&str, TagRecord)],
        now: f64,
        keep: f64,
    ) {
        // More pages to come.
        let header = m.apply_refresh(&paged_header(epoch, ver), Millis(now), keep);
        assert!(header.unwrap().full);
        assert!(m.is_loading() && !m.is_synced());
        assert_eq!(m.page_cursor(), Some("c1"));
        assert_eq!(m.page_seen(), Some((ver, format!("id{ver}").as_str())));
        m.apply_refresh(&page("0", ver, pairs), Millis(now), keep)
            .unwrap();
        assert!(!m.is_loading() && !m.is_synced());
        m.apply_refresh(&reply(epoch, ver, false, &[]), Millis(now), keep)
            .unwrap();
        assert!(m.is_synced());
    }

    fn load(m: &mut TagMirror, epoch: &str, ver: u64, pairs: &[(&str, TagRecord)]) {
        load_at(m, epoch, ver, pairs, 1000.0, KEEP);
    }

    /// A load may read a tag twice (`HSCAN` returns some twice, and a page asked of another
    /// server reads the state from the start), the state's record having grown between the
    /// two readings. The comparison at the load's end takes the later reading, as the state
    /// holds it. Merged, the two made a record stronger than either (the later scheduled
    /// expiry's start with the earlier one's time), which seemed to cover a revalidation of this
    /// process's that the state had lost, and it was not given back (freshness_sim, once loads
    /// went on on another server).
    #[test]
    fn a_tag_a_load_reads_twice_is_compared_as_read_last() {
        let mut m = TagMirror::new();
        load(&mut m, "E", 1, &[]);
        let year = Revalidation::Stale {
            expire_seconds: Some(31_536_000.0),
        };
        m.apply_local(&["b"], &year, Millis(3262.0));
        // The state lost it and is loaded again: b read at two versions.
        let first = rec(
            Revalidation::Stale {
                expire_seconds: Some(1.0),
            },
            977.0,
        );
        let mut later = first;
        later.apply(&year, Millis(4325.0));
        assert!(!later.covers(m.record("b").unwrap()), "the state lacks it");
        let whole = reply("E2", 3, true, &[("b", first)]);
        let mut items: Vec<Vec<u8>> = netstring::decode(&whole)
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        items[6] = b"c1".to_vec();
        refresh(&mut m, &netstring::encode(items)).unwrap();
        refresh(&mut m, &page("0", 4, &[("b", later)])).unwrap();
        assert!(!m.is_loading());
        assert_eq!(m.resend_len(), 1, "given back");
    }

    /// A load of records without an epoch asks for the state's meta hash anew, until an update
    /// or merge reply, or a load of another state; the empty state (epoch `""`) does not.
    #[test]
    fn a_load_of_records_without_an_epoch_asks_for_the_meta_hash_anew() {
        let rec = TagRecord {
            expired: Millis(5.0),
            updated_at: Millis(5.0),
            ..TagRecord::default()
        };
        let mut m = TagMirror::new();
        refresh(&mut m, &reply("", 0, false, &[])).unwrap();
        assert!(m.is_synced() && !m.remakes_meta());
        let no_meta = reply(EPOCH_WITHOUT_META, 0, true, &[("a", rec)]);
        refresh(&mut m, &no_meta).unwrap();
        assert!(m.is_synced() && m.remakes_meta());
        assert_eq!(m.record("a"), Some(&rec));
        m.apply_update_reply(&reply("E", 1, false, &[])).unwrap();
        assert!(!m.remakes_meta());
        refresh(&mut m, &no_meta).unwrap();
        assert!(m.take_remake_meta() && !m.remakes_meta());
        refresh(&mut m, &no_meta).unwrap();
        assert!(m.remakes_meta());
        refresh(&mut m, &reply("F", 1, true, &[("a", rec)])).unwrap();
        assert!(!m.remakes_meta() && m.resend_len() == 0);
    }

    /// [`load`], answered in full only because the reader is over 1,024 versions behind
    /// (tag_refresh.lua's flag `2`: no loss seen).
    fn load_behind(m: &mut TagMirror, epoch: &str, ver: u64, pairs: &[(&str, TagRecord)]) {
        let mut header: Vec<Vec<u8>> = netstring::decode(&paged_header(epoch, ver))
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        header[3] = b"2".to_vec();
        let summary = m.apply_refresh(&netstring::encode(header), Millis(1000.0), KEEP);
        assert!(summary.unwrap().full && m.is_loading());
        m.apply_refresh(&page("0", ver, pairs), Millis(1000.0), KEEP)
            .unwrap();
        m.apply_refresh(&reply(epoch, ver, false, &[]), Millis(1000.0), KEEP)
            .unwrap();
        assert!(m.is_synced());
    }

    /// What a [`KeyedVec`] holds, to compare after a reseed.
    fn held(v: &KeyedVec<TagRecord>) -> Vec<(String, TagRecord)> {
        v.iter().map(|(k, r)| (k.clone(), *r)).collect()
    }

    /// `v` hashes with `seed` and finds every record of `before`.
    fn finds_all(v: &KeyedVec<TagRecord>, before: &[(String, TagRecord)], seed: HashSeed) {
        assert_eq!(v.hash_seed(), seed);
        assert_eq!(v.len(), before.len());
        for (k, r) in before {
            assert_eq!(v.get(k), Some(r), "{k}");
        }
    }

    #[test]
    fn a_reseeded_mirror_finds_every_record_in_every_map() {
        let new = HashSeed::from_bytes([9; 16]);
        let mut m = TagMirror::new();
        let names: Vec<String> = (0..400).map(|i| format!("t{i}")).collect();
        let tag = |i: usize| names[i].as_str();
        let state: Vec<(&str, TagRecord)> = (0..300)
            .map(|i| (tag(i), rec(Revalidation::Expire, 100.0 + i as f64)))
            .collect();
        load(&mut m, "e1", 5, &state);
        // This process's revalidations (`local`, `last_local`), records to give back
        // (`resend`), and a second load under way (`incoming`).
        let locals: Vec<&str> = (250..350).map(tag).collect();
        let rev = Revalidation::Stale {
            expire_seconds: Some(60.0),
        };
        // Within the window of a second report at the refreshes' time (1000).
        m.apply_local(&locals, &rev, Millis(995.0));
        m.mark_paired(1);
        m.restore_resend(
            &(200..260)
                .map(|i| (names[i].clone(), rec(Revalidation::Expire, 50.0)))
                .collect::<Vec<_>>(),
        );
        refresh(&mut m, &paged_header("e1", 9)).unwrap();
        let first_page: Vec<(&str, TagRecord)> = (100..400)
            .map(|i| (tag(i), rec(Revalidation::Expire, 700.0)))
            .collect();
        refresh(&mut m, &page("c2", 9, &first_page)).unwrap();
        assert_eq!(m.page_cursor(), Some("c2"));
        let incoming = |m: &TagMirror| held(&m.loading.as_ref().unwrap().incoming);
        let before = [held(&m.tags), held(&m.local), held(&m.resend), incoming(&m)];
        assert_eq!(before.each_ref().map(Vec::len), [350, 100, 60, 300]);
        m.reseed(new);
        finds_all(&m.tags, &before[0], new);
        finds_all(&m.local, &before[1], new);
        finds_all(&m.resend, &before[2], new);
        finds_all(&m.loading.as_ref().unwrap().incoming, &before[3], new);
        assert!(m.hash_seeds().iter().all(|s| *s == new));
        assert_eq!(
            m.hash_seeds().len(),
            6,
            "a load and a last revalidation held"
        );
        assert!(m.holds_revalidation(&locals, &rev, Millis(995.0), 1));
        // The load goes on in the rehashed maps: its last page merges into what the first
        // brought, and the mirror takes it all.
        let last_page: Vec<(&str, TagRecord)> = (0..200)
            .map(|i| (tag(i), rec(Revalidation::Expire, 800.0)))
            .collect();
        refresh(&mut m, &page("0", 9, &last_page)).unwrap();
        assert!(!m.is_loading());
        assert_eq!(m.len(), 400);
        assert_eq!(m.record(tag(150)), Some(&rec(Revalidation::Expire, 800.0)));
        assert_eq!(m.record(tag(399)), Some(&rec(Revalidation::Expire, 700.0)));
    }

    #[test]
    fn refresh_full_then_partial() {
        let mut m = TagMirror::new();
        assert!(!m.is_synced());
        let a = rec(Revalidation::Expire, 100.0);
        let b = rec(MAX_PROFILE, 200.0);
        load(&mut m, "E1", 2, &[("a", a), ("b", b)]);
        assert_eq!((m.epoch(), m.version(), m.len()), ("E1", 2, 2));
        assert_eq!(m.version_id(), "id2");
        let a2 = rec(Revalidation::Expire, 400.0);
        let s = refresh(&mut m, &reply("E1", 3, false, &[("a", a2)])).unwrap();
        assert_eq!((s.full, s.changed, s.version), (false, 1, 3));
        assert_eq!(m.version_id(), "id3");
        assert_eq!(m.record("a").unwrap().expired, Millis(400.0));
        // Nothing new.
        let s = refresh(&mut m, &reply("E1", 3, false, &[])).unwrap();
        assert_eq!((s.changed, s.version), (0, 3));
        // A full reply of a new state adds to what the mirror knew, and what the new state
        // lacks is queued to be given back.
        load(&mut m, "E2", 1, &[("c", a)]);
        assert_eq!((m.epoch(), m.version(), m.len()), ("E2", 1, 3));
        assert_eq!(m.record("a").unwrap().expired, Millis(400.0));
        assert_eq!(m.resend_len(), 2);
        // A late partial reply from the old epoch merges but does not move the version.
        refresh(&mut m, &reply("E1", 9, false, &[("d", a)])).unwrap();
        assert_eq!((m.epoch(), m.version()), ("E2", 1));
        assert!(m.record("d").is_some());
    }

    /// Revalidations of `n` tags `t0`.. at 100, 101, .. ms (expired then).
    fn many(n: u32) -> Vec<(String, TagRecord)> {
        (0..n)
            .map(|i| {
                (
                    format!("t{i}"),
                    rec(Revalidation::Expire, 100.0 + f64::from(i)),
                )
            })
            .collect()
    }

    fn pairs(records: &[(String, TagRecord)]) -> Vec<(&str, TagRecord)> {
        records.iter().map(|(t, r)| (t.as_str(), *r)).collect()
    }

    /// `m` expires, by each tag of `state`, an entry made just before its revalidation, and
    /// tells Next so (`expiration`).
    fn expires_each(m: &TagMirror, state: &[(String, TagRecord)]) {
        for (tag, record) in state {
            let before = Millis(record.expired.0 - 1.0);
            assert_eq!(
                m.evaluate(before, [tag.as_str()], Millis(1000.0)),
                Freshness::Expired,
                "{tag}"
            );
            assert!(m.expiration([tag.as_str()], Millis(1000.0)) >= record.expired);
        }
    }

    #[test]
    fn a_bounded_mirror_folds_the_oldest_and_judges_them_no_fresher() {
        let mut m = TagMirror::new();
        m.set_max_tags(4);
        let state = many(10);
        load(&mut m, "E1", 10, &pairs(&state));
        assert!(m.len() <= 4, "{} held exactly", m.len());
        assert!(m.folded() >= 6);
        // The newest stay exact.
        assert!(m.record("t9").is_some());
        assert!(m.record("t0").is_none());
        // Every tag, folded or not, still expires what it expired.
        expires_each(&m, &state);
        // An entry made after every revalidation is fresh; one without tags always is.
        assert_eq!(
            m.evaluate(Millis(500.0), ["t0"], Millis(1000.0)),
            Freshness::Fresh
        );
        assert_eq!(
            m.evaluate(Millis(1.0), [], Millis(1000.0)),
            Freshness::Fresh
        );
        assert_eq!(m.expiration([], Millis(1000.0)), Millis::ZERO);
        // Own revalidations fold too: the mirror never holds more than its bound.
        for i in 10..30 {
            m.apply_local(&[&format!("t{i}")], &Revalidation::Expire, Millis(200.0));
            assert!(m.len() <= 4);
        }
        assert!(m.unconfirmed() <= 4);
    }

    #[test]
    fn a_bounded_load_holds_its_bound_page_by_page() {
        let mut m = TagMirror::new();
        m.set_max_tags(8);
        let state = many(40);
        m.apply_refresh(&paged_header("E1", 40), Millis(1000.0), KEEP)
            .unwrap();
        for chunk in state.chunks(10) {
            m.apply_refresh(&page("c2", 40, &pairs(chunk)), Millis(1000.0), KEEP)
                .unwrap();
            let incoming = m.loading.as_ref().map_or(0, |l| l.incoming.len());
            assert!(incoming <= 8, "{incoming} records of the load held exactly");
        }
        m.apply_refresh(&page("0", 40, &[]), Millis(1000.0), KEEP)
            .unwrap();
        m.apply_refresh(&reply("E1", 40, false, &[]), Millis(1000.0), KEEP)
            .unwrap();
        assert!(m.is_synced() && m.len() <= 8);
        expires_each(&m, &state);
    }

    /// A bounded load may fold a tag, then read it again (HSCAN returns some twice) with the
    /// record the state holds by then: the first reading stays merged in the bucket, which the
    /// second cannot take back. That only overstates: the tag is judged by the second reading,
    /// held exactly, and by its bucket, never fresher than the state holds it; the bucket
    /// counts for nothing in the comparison (no record of its is given back for it).
    #[test]
    fn a_tag_a_bounded_load_folded_then_read_again_is_judged_by_the_later_reading() {
        let mut m = TagMirror::new();
        m.set_max_tags(2);
        let state = many(6);
        m.apply_refresh(&paged_header("E1", 6), Millis(1000.0), KEEP)
            .unwrap();
        m.apply_refresh(&page("c2", 6, &pairs(&state)), Millis(1000.0), KEEP)
            .unwrap();
        let load = m.loading.as_ref().unwrap();
        assert!(!load.incoming.contains_key("t0"), "t0 is folded");
        // t0 revalidated since, read again on the last page.
        let again = rec(Revalidation::Expire, 700.0);
        m.apply_refresh(&page("0", 7, &[("t0", again)]), Millis(1000.0), KEEP)
            .unwrap();
        m.apply_refresh(&reply("E1", 7, false, &[]), Millis(1000.0), KEEP)
            .unwrap();
        assert!(m.is_synced());
        assert_eq!(m.record("t0"), Some(&again));
        assert_eq!(
            m.evaluate(Millis(699.0), ["t0"], Millis(1000.0)),
            Freshness::Expired
        );
        expires_each(&m, &state);
        assert_eq!(m.resend_len(), 0);
    }

    #[test]
    fn folded_records_a_lost_state_lacks_are_given_back_as_the_folded_tag() {
        let mut m = TagMirror::new();
        m.set_max_tags(2);
        let state = many(6);
        load(&mut m, "E1", 6, &pairs(&state));
        assert_eq!(m.resend_len(), 0);
        // A flush: the new state lacks everything.
        load(&mut m, "E2", 1, &[]);
        let batch = m.take_resend();
        let folded = batch
            .iter()
            .find(|(t, _)| t == FOLDED_TAG)
            .map(|(_, r)| *r)
            .expect("the folded records are given back as one");
        // It expires, for every tag, what the oldest folded revalidations expired.
        assert!(folded.expired >= state[0].1.expired);
        // The exact ones are given back as themselves.
        assert!(batch.iter().any(|(t, _)| t == "t5"));

        // Another process, which never folded, learns it from Redis as it is, and judges every
        // tagged entry made before it expired: "t0"'s included, which it never heard of.
        let mut other = TagMirror::new();
        let from_redis: Vec<(&str, TagRecord)> =
            batch.iter().map(|(t, r)| (t.as_str(), *r)).collect();
        load(&mut other, "E2", 2, &from_redis);
        assert_eq!(other.record(FOLDED_TAG), Some(&folded));
        let before = Millis(state[0].1.expired.0 - 1.0);
        assert_eq!(
            other.evaluate(before, ["t0"], Millis(1000.0)),
            Freshness::Expired
        );
        assert_eq!(
            other.evaluate(before, ["never"], Millis(1000.0)),
            Freshness::Expired
        );
        assert!(other.expiration(["never"], Millis(1000.0)) >= state[0].1.expired);
        assert_eq!(other.evaluate(before, [], Millis(1000.0)), Freshness::Fresh);
        // A tag spelled like it by Next is another tag: its canonical form.
        assert_ne!(canonical_tag(FOLDED_TAG), FOLDED_TAG);
        // Once Redis shows it, nothing more is given back.
        load(&mut m, "E2", 2, &from_redis);
        assert_eq!(m.resend_len(), 0, "{:?}", m.take_resend());
    }

    /// A reader more than 1,024 versions behind is answered in full though nothing
    /// was lost (tag_refresh.lua). A process that folded must not give its folded records
    /// back then: Redis holds every one of them, and `FOLDED_TAG` written to it judges every
    /// tagged entry of the fleet by the newest folded revalidation.
    #[test]
    fn a_folded_mirror_gives_nothing_back_when_a_full_load_lost_nothing() {
        let mut m = TagMirror::new();
        m.set_max_tags(2);
        let state = many(6);
        load(&mut m, "E1", 6, &pairs(&state));
        assert!(m.folded() > 0);
        assert_eq!(m.resend_len(), 0);
        // Too far behind: the same state, whole, at a later version of the same epoch.
        load_behind(&mut m, "E1", 2000, &pairs(&state));
        assert_eq!(m.lost(), 0, "nothing was replaced");
        assert_eq!(
            m.resend_len(),
            0,
            "gave back, though Redis holds every record: {:?}",
            m.take_resend()
        );
    }

    /// A process that never folded, once Redis holds the folded tag a full load
    /// gave back for nothing, judges an entry whose only tag was never revalidated expired,
    /// where the unbounded mirror serves it.
    #[test]
    fn a_spurious_give_back_expires_every_tagged_entry_of_the_fleet() {
        let mut folding = TagMirror::new();
        folding.set_max_tags(2);
        let state = many(6);
        load(&mut folding, "E1", 6, &pairs(&state));
        load_behind(&mut folding, "E1", 2000, &pairs(&state));
        let mut in_redis = pairs(&state);
        let batch = folding.take_resend();
        in_redis.extend(batch.iter().map(|(t, r)| (t.as_str(), *r)));
        let mut other = TagMirror::new();
        load(&mut other, "E1", 2001, &in_redis);
        // Made before "t3", the newest folded revalidation (at 103); "t0" to "t3" were folded.
        let made = Millis(102.0);
        assert_eq!(
            other.evaluate(made, ["never-revalidated"], Millis(1000.0)),
            Freshness::Fresh,
            "an entry no revalidation touched is expired fleet-wide"
        );
    }

    /// The bound holds for the mirror's memory, not only for its count of exact
    /// records. A refresh bringing many changed tags (the catch-up after a long paged load,
    /// or a burst of revalidations within the 1,024 versions a partial refresh covers) or a
    /// revalidation of many tags grows the maps first and folds after; the maps keep the room
    /// they grew to (a `KeyedVec` never shrinks), so the mirror keeps the memory of its
    /// largest such burst for the rest of the process's life.
    #[test]
    fn a_burst_of_tags_leaves_the_mirror_no_larger_than_its_bound() {
        let max = 100;
        let mut m = TagMirror::new();
        m.set_max_tags(max);
        load(&mut m, "E1", 1, &[]);
        let burst = many(20_000);
        m.apply_refresh(
            &reply("E1", 900, false, &pairs(&burst)),
            Millis(1000.0),
            KEEP,
        )
        .unwrap();
        assert!(m.len() <= max);
        assert!(
            m.tags.room() <= 4 * max,
            "after a refresh of {} tags the exact map has room for {} records (bound {max})",
            burst.len(),
            m.tags.room()
        );
        let names: Vec<String> = (0..20_000).map(|i| format!("r{i}")).collect();
        let tags: Vec<&str> = names.iter().map(String::as_str).collect();
        m.apply_local(&tags, &Revalidation::Expire, Millis(2000.0));
        assert!(m.len() <= max && m.unconfirmed() <= max);
        assert!(
            m.tags.room() <= 4 * max && m.local.room() <= 4 * max,
            "after a revalidation of {} tags: room for {} exact and {} local records",
            tags.len(),
            m.tags.room(),
            m.local.room()
        );
    }

    /// The queue of records to give back holds memory for what it holds, not for its largest
    /// burst: after 100,000 records were queued (a flush of a large state, or a full outbox
    /// giving its revalidations back), then given back batch by batch or taken off as Redis
    /// showed them, it has room for at most four times what is left (64 entries at least).
    #[test]
    fn the_resend_queue_gives_back_the_room_of_a_burst() {
        let bounded = |m: &TagMirror| m.resend.room() <= (4 * m.resend_len() + 3).max(64);
        let burst = many(100_000);
        let mut m = TagMirror::new();
        m.restore_resend(&burst);
        while !m.take_resend().is_empty() {
            assert!(
                bounded(&m),
                "{} records wait, room for {}",
                m.resend_len(),
                m.resend.room()
            );
        }
        assert_eq!(m.resend_len(), 0);
        let mut m = TagMirror::new();
        m.restore_resend(&burst);
        for (tag, record) in &burst {
            m.unqueue(tag, record);
        }
        assert_eq!(m.resend_len(), 0);
        assert!(bounded(&m), "unqueued: room for {}", m.resend.room());
        let mut m = TagMirror::new();
        m.restore_resend(&burst);
        assert_eq!(m.prune(Millis(1e9), 1.0), 0);
        assert_eq!(m.resend_len(), 0);
        assert!(bounded(&m), "pruned: room for {}", m.resend.room());
    }

    /// A failover that loses the newest update and reuses its version is answered
    /// in full at a *later* version once two updates passed it (the script found the id
    /// changed: `reused` in tag_refresh.lua), within the 1,024 versions an id is kept. The
    /// mirror cannot tell that from a reader too far behind, so `replaced` is false; when the
    /// lost revalidation was stamped before one the mirror still holds exactly (concurrent
    /// revalidations of two processes, or one sent from the outbox a moment late), the mirror
    /// folded it, sees no exact record missing, and gives nothing back: the revalidation is
    /// lost to the fleet. The unbounded mirror gives it back by tag.
    #[test]
    fn a_failover_passed_by_two_updates_still_gives_back_a_folded_revalidation_it_lost() {
        // The unbounded mirror first: it gives `b` back by tag.
        for bound in [DEFAULT_MAX_TAGS as usize, 1] {
            let mut m = TagMirror::new();
            m.set_max_tags(bound);
            // `a` revalidated at 101 reached Redis first (version 1); `b`, stamped at 100 by
            // another process, second (version 2).
            let a = rec(Revalidation::Expire, 101.0);
            let b = rec(Revalidation::Expire, 100.0);
            let c = rec(Revalidation::Expire, 102.0);
            load(&mut m, "E1", 1, &[("a", a)]);
            refresh(&mut m, &reply("E1", 2, false, &[("b", b)])).unwrap();
            assert!(m.known("b").is_some_and(|k| k.covers(&b)));
            // A failover back to version 1, then two updates (of `c`): version 2 has another
            // id and the state is at 3. The script answers in full.
            refresh(&mut m, &reply("E1", 3, true, &[("a", a), ("c", c)])).unwrap();
            let back = m.take_resend();
            let gives_back = |tag: &str| {
                back.iter()
                    .any(|(t, r)| (t == tag || t == FOLDED_TAG) && r.covers(&b))
            };
            assert!(
                gives_back("b"),
                "bound {bound}: the state lost revalidation b, which the mirror knew; given back: {back:?}"
            );
        }
    }

    /// A load that finds the state rolled back mid-way is given up and the mirror
    /// forgets the epoch it followed (`apply_page`), so the load after it is not `replaced`,
    /// though the state it replaced lost a revalidation: the mirror folded that one, holds
    /// exactly only what the new state has, and gives nothing back. (The first load saw the
    /// replacement; the evidence is dropped with it.)
    #[test]
    fn a_load_given_up_on_a_rollback_still_gives_back_a_folded_revalidation_it_lost() {
        for bound in [DEFAULT_MAX_TAGS as usize, 1] {
            let mut m = TagMirror::new();
            m.set_max_tags(bound);
            let a = rec(Revalidation::Expire, 101.0);
            let b = rec(Revalidation::Expire, 100.0);
            load(&mut m, "E1", 1, &[("a", a)]);
            refresh(&mut m, &reply("E1", 2, false, &[("b", b)])).unwrap();
            // A failover lost version 2 and reused it: answered in full, more pages to come.
            let mut head: Vec<Vec<u8>> = ["E1", "2", "other", "1", "0", "", "7"]
                .iter()
                .map(|x| x.as_bytes().to_vec())
                .collect();
            head.push(b"a".to_vec());
            head.push(a.encode().into_bytes());
            refresh(&mut m, &netstring::encode(head)).unwrap();
            assert!(m.is_loading());
            // Another failover under the load: its next page finds the state rolled back.
            let rolled: Vec<Vec<u8>> = ["page", "0", "1", "id1", "1"]
                .iter()
                .map(|x| x.as_bytes().to_vec())
                .collect();
            refresh(&mut m, &netstring::encode(rolled)).unwrap();
            assert!(!m.is_loading());
            // The state as the next full reply shows it: `a` only.
            refresh(&mut m, &reply("E1", 3, true, &[("a", a)])).unwrap();
            let back = m.take_resend();
            assert!(
                back.iter()
                    .any(|(t, r)| (t == "b" || t == FOLDED_TAG) && r.covers(&b)),
                "bound {bound}: the state lost revalidation b, which the mirror knew; given back: {back:?}"
            );
        }
    }

    /// A load counts a record as pinned when it first comes while the mirror
    /// holds its tag exactly (`Loading::pinned`), and never uncounts it. A process that
    /// revalidates tags while it loads holds each exactly when a page brings it back, then
    /// folds it as newer ones come: the count keeps every one of them, the load's fold finds
    /// the map within "the bound plus the pinned" and never runs, and `incoming` grows with
    /// the process's revalidations, past the bound plus what the mirror holds.
    #[test]
    fn a_load_raced_by_revalidations_keeps_its_incoming_within_the_bound() {
        let max = 10;
        let mut m = TagMirror::new();
        m.set_max_tags(max);
        load(&mut m, "E1", 1, &[]);
        // A full reply of a large state: more pages to come.
        let head: Vec<Vec<u8>> = ["E1", "1", "id1", "1", "0", "", "7"]
            .iter()
            .map(|x| x.as_bytes().to_vec())
            .collect();
        // Answered in full though the id matches: a reader too far behind.
        refresh(&mut m, &netstring::encode(head)).unwrap();
        assert!(m.is_loading());
        let names: Vec<String> = (0..1000).map(|i| format!("r{i}")).collect();
        for (i, tag) in names.iter().enumerate() {
            let at = 2000.0 + i as f64;
            m.apply_local(&[tag.as_str()], &Revalidation::Expire, Millis(at));
            let record = rec(Revalidation::Expire, at);
            refresh(&mut m, &page("7", 1, &[(tag.as_str(), record)])).unwrap();
        }
        assert!(m.len() <= max + 1);
        let incoming = m.loading.as_ref().map_or(0, |l| l.incoming.len());
        assert!(
            incoming <= 2 * max + 1,
            "a load holds {incoming} records exactly (bound {max}, the mirror holds {})",
            m.len()
        );
    }

    #[test]
    fn a_mirror_holding_the_folded_tag_gives_nothing_back_when_nothing_was_lost() {
        let mut m = TagMirror::new();
        m.set_max_tags(2);
        let mut state = many(6);
        state.push((FOLDED_TAG.to_owned(), rec(Revalidation::Expire, 50.0)));
        load(&mut m, "E1", 6, &pairs(&state));
        assert!(m.folded() > 0 && m.record(FOLDED_TAG).is_some());
        // Over 1,024 versions behind: the same state, whole.
        load_behind(&mut m, "E1", 2000, &pairs(&state));
        assert_eq!(m.resend_len(), 0, "{:?}", m.take_resend());
        // The state lost the newest revalidation: that is evidence, and the folded ones go
        // back with it.
        load_behind(&mut m, "E1", 2001, &pairs(&state[..5]));
        let back = m.take_resend();
        assert!(back.iter().any(|(t, _)| t == "t5"));
        let folded = back.iter().find(|(t, _)| t == FOLDED_TAG).map(|(_, r)| *r);
        assert!(
            folded.is_some_and(|r| r.expired >= state[3].1.expired),
            "{back:?}"
        );
    }

    #[test]
    fn a_reseeded_mirror_still_judges_folded_tags_no_fresher() {
        let mut m = TagMirror::new();
        m.set_max_tags(3);
        let state = many(12);
        load(&mut m, "E1", 12, &pairs(&state));
        m.reseed(HashSeed::from_bytes([9; 16]));
        expires_each(&m, &state);
    }

    #[test]
    fn lost_records_are_given_back_until_redis_shows_them() {
        let mut m = TagMirror::new();
        let a = rec(Revalidation::Expire, 100.0);
        let old = rec(Revalidation::Expire, 1.0);
        load(&mut m, "E1", 2, &[("a", a), ("b", a), ("old", old)]);
        assert_eq!(m.resend_len(), 0);
        // Redis lost "a" and "old"; it still has "b", and a weaker record of "a" elsewhere.
        let weaker = rec(Revalidation::Expire, 50.0);
        // "old" was updated at 1 ms: past this pruning age, Redis may have dropped it.
        load_at(&mut m, "E2", 1, &[("b", a), ("x", weaker)], 1000.0, 950.0);
        assert_eq!(m.resend_len(), 1);
        let batch = m.take_resend();
        assert_eq!(batch, vec![("a".to_owned(), a)]);
        assert_eq!(m.resend_len(), 0);
        // The merge failed: back in the queue.
        m.restore_resend(&batch);
        assert_eq!(m.resend_len(), 1);
        // Another process gave it back first: the queue lets go of it.
        refresh(&mut m, &reply("E2", 2, false, &[("a", a)])).unwrap();
        assert_eq!(m.resend_len(), 0);
    }

    fn announcement(epoch: &str, ver: u64, pairs: &[(&str, TagRecord)]) -> Vec<u8> {
        let mut items = vec![
            "a".to_owned(),
            epoch.to_owned(),
            ver.to_string(),
            format!("id{ver}"),
            // The id of the version it follows: none, so the mirror's is not checked.
            String::new(),
        ];
        for (t, r) in pairs {
            items.push((*t).to_owned());
            items.push(r.encode());
        }
        netstring::encode(items)
    }

    #[test]
    fn the_meta_epoch_of_a_state_named_after_a_lost_hash_or_log() {
        for (name, epoch) in [
            ("e1~25.~", "e1"),
            ("e1~25.+", "e1"),
            ("e1~25.id-3~", "e1"),
            ("e1~25.wab.4+", "e1"),
            ("e1~25~", "e1~25~"),
            ("e1~.id+", "e1~.id+"),
            ("e1", "e1"),
            ("e1~~", "e1~~"),
            ("e1~+", "e1~+"),
            ("e125+", "e125+"),
            ("we1.7", "we1.7"),
            (EPOCH_WITHOUT_META, EPOCH_WITHOUT_META),
            ("", ""),
        ] {
            assert_eq!(meta_epoch(name), epoch, "{name}");
        }
    }

    #[test]
    fn an_announcement_applies_only_as_the_next_version_of_the_state_followed() {
        let mut m = TagMirror::new();
        let x = rec(Revalidation::Expire, 700.0);
        // Not synced yet: nothing to build on.
        assert_eq!(
            m.apply_announcement(&announcement("E1", 1, &[("t", x)])),
            Ok(Announced::Gap)
        );
        refresh(&mut m, &reply("E1", 3, true, &[])).unwrap();
        assert!(m.is_synced());
        assert_eq!(
            m.apply_announcement(&announcement("E1", 3, &[])),
            Ok(Announced::Known)
        );
        assert_eq!(
            m.apply_announcement(&announcement("E1", 5, &[("t", x)])),
            Ok(Announced::Gap),
            "version 4 was missed"
        );
        assert_eq!(
            m.apply_announcement(&announcement("E2", 4, &[("t", x)])),
            Ok(Announced::Gap),
            "another state"
        );
        assert_eq!(
            m.evaluate(Millis(600.0), ["t"], Millis(800.0)),
            Freshness::Fresh
        );
        assert_eq!(
            m.apply_announcement(&announcement("E1", 4, &[("t", x)])),
            Ok(Announced::Applied(1))
        );
        assert_eq!(m.version(), 4);
        assert_eq!(m.version_id(), "id4");
        assert_eq!(
            m.evaluate(Millis(600.0), ["t"], Millis(800.0)),
            Freshness::Expired
        );
        assert_eq!(
            m.apply_announcement(b"1:x,"),
            Err(ProtocolError::ReplyShape)
        );
    }

    /// An announcement of a version the mirror has passed is most often one a pull brought
    /// first; but the state may have been rolled back meanwhile with the subscription up (a
    /// master demoted to a replica of a lagging one keeps its clients, and the replication
    /// stream carries the new master's announcements), and the version numbers reused by
    /// other updates. Its records are merged all the same: what was announced is judged by,
    /// and the pull after it compares the versions.
    /// A pull read at version 2, which the mirror holds from an announcement, answered after
    /// the mirror applied version 3 on top of it: a rollback between the script and the answer
    /// may have given 2 to another update, which that 3 follows. The reply's version and id are
    /// those the mirror holds for 2, yet they prove nothing of what 3 follows: the next pull
    /// still checks 2 (freshness_sim
    /// a_pull_read_before_a_rollback_does_not_vouch_for_the_version_an_announcement_followed).
    #[test]
    fn a_reply_read_below_the_announced_versions_leaves_their_check() {
        let mut m = TagMirror::new();
        refresh(&mut m, &reply("E1", 1, true, &[])).unwrap();
        assert!(m.is_synced());
        // The pull goes out, with nothing of the mirror's to check.
        m.note_planned();
        for ver in [2, 3] {
            assert_eq!(
                m.apply_announcement(&announcement("E1", ver, &[])),
                Ok(Announced::Applied(0))
            );
        }
        refresh(&mut m, &reply("E1", 2, false, &[])).unwrap();
        assert_eq!(m.version(), 3);
        assert!(
            m.unconfirmed_updates()
                .iter()
                .any(|(v, id)| *v == 2 && id == "id2"),
            "{:?}",
            m.unconfirmed_updates()
        );
    }

    #[test]
    fn an_announcement_of_a_version_passed_still_adds_its_records() {
        let mut m = TagMirror::new();
        refresh(&mut m, &reply("E1", 6, true, &[])).unwrap();
        let x = rec(Revalidation::Expire, 700.0);
        assert_eq!(
            m.apply_announcement(&announcement("E1", 5, &[("t", x)])),
            Ok(Announced::Known)
        );
        assert_eq!(m.record("t"), Some(&x));
        assert_eq!(
            m.evaluate(Millis(600.0), ["t"], Millis(800.0)),
            Freshness::Expired
        );
        assert_eq!((m.version(), m.version_id()), (6, "id6"));
    }

    /// An announcement of the mirror's own version number made by another update proves a
    /// rollback: its records are merged as for any version passed, and it is a gap, so a
    /// process that follows by push pulls now rather than at its next periodic pull (which
    /// finds the rollback and gives back what the state lost). One of a version it passed
    /// under the id it saw is only known.
    #[test]
    fn an_announcement_of_the_mirrors_version_under_another_id_is_a_gap() {
        let mut m = TagMirror::new();
        refresh(&mut m, &reply("E1", 6, true, &[])).unwrap();
        let x = rec(Revalidation::Expire, 700.0);
        let mut other = netstring::decode(&announcement("E1", 6, &[("t", x)]))
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>();
        other[3] = b"another".to_vec();
        assert_eq!(
            m.apply_announcement(&netstring::encode(other)),
            Ok(Announced::Gap)
        );
        assert_eq!(m.record("t"), Some(&x));
        assert_eq!((m.version(), m.version_id()), (6, "id6"));
        assert_eq!(
            m.apply_announcement(&announcement("E1", 6, &[("u", x)])),
            Ok(Announced::Known)
        );
    }

    /// The next version's announcement names the id of the version it follows
    /// (tag_update.lua): another than the mirror's own is a rollback with the subscription up
    /// that gave the mirror's number to another update, whose announcement did not come.
    /// Applied, what the process regenerates next would be judged from this announcement's
    /// revalidation, past the one it lacks (engine `page_push_tests.rs`
    /// `an_announcement_following_another_version_than_the_mirrors_vouches_for_nothing`).
    #[test]
    fn an_announcement_following_another_version_than_the_mirrors_is_a_gap() {
        let mut m = TagMirror::new();
        refresh(&mut m, &reply("E1", 6, true, &[])).unwrap();
        let x = rec(Revalidation::Expire, 700.0);
        let following = |prev: &str| {
            let mut items = netstring::decode(&announcement("E1", 7, &[("t", x)]))
                .unwrap()
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>();
            items[4] = prev.as_bytes().to_vec();
            netstring::encode(items)
        };
        assert_eq!(
            m.apply_announcement(&following("another")),
            Ok(Announced::Gap)
        );
        assert_eq!((m.version(), m.version_id()), (6, "id6"));
        assert_eq!(
            m.apply_announcement(&following("id6")),
            Ok(Announced::Applied(1))
        );
        assert_eq!((m.version(), m.version_id()), (7, "id7"));
        assert_eq!(m.record("t"), Some(&x));
    }

    #[test]
    fn full_refresh_keeps_unconfirmed_local_updates() {
        let mut m = TagMirror::new();
        m.apply_local(&["mine"], &Revalidation::Expire, Millis(500.0));
        assert_eq!(m.unconfirmed(), 1);
        load(
            &mut m,
            "E1",
            4,
            &[("other", rec(Revalidation::Expire, 1.0))],
        );
        assert_eq!(
            m.evaluate(Millis(400.0), ["mine"], Millis(600.0)),
            Freshness::Expired
        );
        assert_eq!(m.unconfirmed(), 1);
        // Also queued for the merge: the outbox may have had it acknowledged by a state
        // that lost it since.
        assert_eq!(m.resend_len(), 1);
        // Redis shows it: confirmed.
        refresh(
            &mut m,
            &reply(
                "E1",
                5,
                false,
                &[("mine", rec(Revalidation::Expire, 500.0))],
            ),
        )
        .unwrap();
        assert_eq!(m.unconfirmed(), 0);
        assert_eq!(m.resend_len(), 0);
        // A new state that lacks it: it stays in force and goes back to Redis.
        load(&mut m, "E2", 1, &[]);
        assert_eq!(
            m.evaluate(Millis(400.0), ["mine"], Millis(600.0)),
            Freshness::Expired
        );
        assert_eq!(m.resend_len(), 2);
    }

    #[test]
    fn refresh_errors_and_skips() {
        let mut m = TagMirror::new();
        assert_eq!(
            refresh(&mut m, b"1:a,1:1,1:i,"),
            Err(ProtocolError::ReplyShape)
        );
        assert_eq!(
            refresh(&mut m, b"1:a,1:x,1:i,1:0,"),
            Err(ProtocolError::BadVersion)
        );
        assert_eq!(
            refresh(&mut m, b"1:a,1:1,1:i,1:4,"),
            Err(ProtocolError::BadFlag)
        );
        // `2` (full: the reader too far behind) only in a refresh reply.
        assert_eq!(
            m.apply_update_reply(b"1:a,1:1,1:i,1:2,"),
            Err(ProtocolError::BadFlag)
        );
        assert_eq!(
            refresh(&mut m, b"1:a,1:1,1:i,1:0,1:t,"),
            Err(ProtocolError::ReplyShape)
        );
        assert!(matches!(
            refresh(&mut m, b"1:a"),
            Err(ProtocolError::Netstring(_))
        ));
        assert_eq!(
            refresh(&mut m, b"1:\xff,1:1,1:i,1:0,"),
            Err(ProtocolError::InvalidUtf8)
        );
        assert_eq!(
            refresh(&mut m, b"1:a,1:1,1:\xff,1:0,"),
            Err(ProtocolError::InvalidUtf8)
        );
        // The page-write sequence after the flag: its number and id.
        assert_eq!(
            refresh(&mut m, b"1:a,1:1,1:i,1:0,1:x,0:,"),
            Err(ProtocolError::BadVersion)
        );
        assert_eq!(
            refresh(&mut m, b"1:a,1:1,1:i,1:0,1:3,1:\xff,"),
            Err(ProtocolError::InvalidUtf8)
        );
        assert_eq!((m.epoch(), m.version()), ("", 0));
        assert!(!m.is_synced());
        // No state in Redis yet: nothing to learn, and nothing missing.
        refresh(&mut m, b"0:,1:0,0:,1:0,1:0,0:,").unwrap();
        assert!(m.is_synced());
        // A new state: loaded page by page; foreign records are skipped, one at a time.
        let s = refresh(&mut m, b"1:a,1:7,0:,1:1,1:0,0:,2:c1,").unwrap();
        assert!(s.full && m.is_loading());
        assert_eq!(refresh(&mut m, b"4:page,"), Err(ProtocolError::ReplyShape));
        assert_eq!(
            refresh(&mut m, b"4:page,1:0,1:7,0:,"),
            Err(ProtocolError::ReplyShape)
        );
        assert_eq!(
            refresh(&mut m, b"4:page,1:\xff,1:7,0:,1:0,"),
            Err(ProtocolError::InvalidUtf8)
        );
        assert_eq!(
            refresh(&mut m, b"4:page,1:0,1:x,0:,1:0,"),
            Err(ProtocolError::BadVersion)
        );
        let s = refresh(
            &mut m,
            b"4:page,1:0,1:7,0:,1:0,1:t,3:bad,1:\xff,9:0,0,0,0,0,1:u,9:0,1,0,0,1,",
        )
        .unwrap();
        assert_eq!((s.changed, s.skipped, s.version), (1, 2, 7));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn update_replies_are_checked_by_the_next_refresh() {
        let mut m = TagMirror::new();
        load(&mut m, "E", 5, &[]);
        m.apply_update_reply(&reply("E", 7, false, &[])).unwrap();
        m.apply_update_reply(&reply("E", 6, false, &[])).unwrap();
        // The version stays: the refresh fetches what came in between, and checks each of
        // this process's updates is still there.
        assert_eq!(m.version(), 5);
        assert_eq!(
            m.unconfirmed_updates(),
            &[(7, "id7".to_owned()), (6, "id6".to_owned())]
        );
        m.note_planned();
        refresh(&mut m, &reply("E", 6, false, &[])).unwrap();
        assert_eq!(m.unconfirmed_updates(), &[(7, "id7".to_owned())]);
        m.note_planned();
        refresh(&mut m, &reply("E", 8, false, &[])).unwrap();
        assert!(m.unconfirmed_updates().is_empty());
        // An update that went to another state (a flush in between): the next refresh asks
        // for everything, as from a new process.
        m.apply_update_reply(&reply("F", 1, false, &[])).unwrap();
        assert_eq!((m.epoch(), m.version(), m.version_id()), ("", 0, ""));
        assert!(m.unconfirmed_updates().is_empty());
        // Too many to check one by one: the whole state instead, loaded page by page (the
        // refresh names no epoch), not one reply of every tag from version 0 of F.
        load(&mut m, "F", 1, &[]);
        for v in 2..2 + MAX_UNCONFIRMED_UPDATES as u64 {
            m.apply_update_reply(&reply("F", v, false, &[])).unwrap();
        }
        assert_eq!(m.unconfirmed_updates().len(), MAX_UNCONFIRMED_UPDATES);
        assert_eq!(m.epoch(), "F");
        m.apply_update_reply(&reply("F", 2000, false, &[])).unwrap();
        assert!(m.unconfirmed_updates().is_empty());
        assert_eq!((m.epoch(), m.version(), m.version_id()), ("", 0, ""));
        assert!(m.is_synced(), "it lost nothing it knew");
    }

    #[test]
    fn past_its_unconfirmed_updates_a_mirror_loads_and_gives_back_what_the_state_lost() {
        let mut m = TagMirror::new();
        load(&mut m, "E", 1, &[("old", rec(Revalidation::Expire, 100.0))]);
        // Its own revalidations, acknowledged and never confirmed by a refresh; a failover
        // then loses the last one, which this process knows.
        let n = MAX_UNCONFIRMED_UPDATES as u64 + 1;
        for v in 2..2 + n {
            let at = 1000.0 + v as f64;
            m.apply_local(&[&format!("t{v}")], &Revalidation::Expire, Millis(at));
            m.apply_update_reply(&reply("E", v, false, &[])).unwrap();
        }
        assert_eq!(m.epoch(), "");
        let survived: Vec<(String, TagRecord)> = (2..1 + n)
            .map(|v| {
                (
                    format!("t{v}"),
                    rec(Revalidation::Expire, 1000.0 + v as f64),
                )
            })
            .chain([("old".to_owned(), rec(Revalidation::Expire, 100.0))])
            .collect();
        // Answered in full ('1': it names no epoch), in pages of a thousand.
        let (first, rest) = survived.split_at(PAGE_COUNT as usize);
        refresh(&mut m, &paged_header_with("E", n, "c1", &pairs(first))).unwrap();
        assert!(m.is_loading());
        assert!(
            !m.is_synced(),
            "nothing tagged is judged fresh while it loads"
        );
        refresh(&mut m, &page("0", n, &pairs(rest))).unwrap();
        let lost = format!("t{}", 1 + n);
        let back: Vec<String> = m.take_resend().into_iter().map(|(t, _)| t).collect();
        assert_eq!(
            back,
            std::slice::from_ref(&lost),
            "only what the state lacks goes back"
        );
        assert_eq!((m.epoch(), m.version()), ("E", n));
        assert!(m.record(&lost).is_some());
        assert_eq!(
            m.lost(),
            0,
            "a load it asked for replaced nothing it followed"
        );
    }

    /// A process that revalidates more than [`MAX_UNCONFIRMED_UPDATES`] times while
    /// a load of the state runs (a webhook in a loop, a state of many pages) gives that load up
    /// at the overflow and starts another, which the next burst gives up again: it never syncs,
    /// judges nothing tagged fresh, and scans the whole state again and again.
    #[test]
    fn an_overflow_during_a_load_does_not_give_the_load_up() {
        let mut m = TagMirror::new();
        load(&mut m, "E", 1, &[("old", rec(Revalidation::Expire, 100.0))]);
        let mut v = 1;
        // A first overflow: over 1,024 versions since the one the mirror knows, E answers its
        // next refresh in full whatever it names.
        for _ in 0..=MAX_UNCONFIRMED_UPDATES {
            v += 1;
            m.apply_local(&[&format!("t{v}")], &Revalidation::Expire, Millis(500.0));
            m.apply_update_reply(&reply("E", v, false, &[])).unwrap();
        }
        // Each load that 1,025 revalidations overlap is given up the same way: one is enough.
        {
            let round = 0;
            // Full, two pages; the process revalidates meanwhile.
            let start = v;
            let header = answer_in_full(&m, "E", start, "c1", &[]);
            refresh(&mut m, &header).unwrap();
            assert!(m.is_loading(), "round {round}: a load begins");
            for _ in 0..=MAX_UNCONFIRMED_UPDATES {
                v += 1;
                m.apply_local(&[&format!("t{v}")], &Revalidation::Expire, Millis(500.0));
                m.apply_update_reply(&reply("E", v, false, &[])).unwrap();
            }
            // The last page, read at the state's version now, shows every tag.
            let all: Vec<(String, TagRecord)> = (2..=v)
                .map(|i| (format!("t{i}"), rec(Revalidation::Expire, 500.0)))
                .chain([("old".to_owned(), rec(Revalidation::Expire, 100.0))])
                .collect();
            refresh(&mut m, &page("0", v, &pairs(&all))).unwrap();
            // The catch-up refresh (whatever the mirror names, the state holds it all).
            refresh(&mut m, &reply("E", v, false, &[])).unwrap();
            assert!(
                m.is_synced(),
                "round {round}: a load of {} pages was given up by its own process's \
                 revalidations; the mirror is not synced (epoch {:?}, loading {})",
                2,
                m.epoch(),
                m.is_loading()
            );
        }
    }

    /// The overflow makes the next refresh name no epoch, so a flush (or a failover
    /// to an empty replica) before it is no longer seen as replacing the state the mirror
    /// followed: what it lacked goes back, but `lost()` (and the host's warning) stays 0.
    #[test]
    fn a_flush_after_an_overflow_is_counted_as_a_loss() {
        let mut m = TagMirror::new();
        load(&mut m, "E", 1, &[("old", rec(Revalidation::Expire, 100.0))]);
        for v in 2..2 + MAX_UNCONFIRMED_UPDATES as u64 + 1 {
            m.apply_local(&[&format!("t{v}")], &Revalidation::Expire, Millis(500.0));
            m.apply_update_reply(&reply("E", v, false, &[])).unwrap();
        }
        // Redis flushed: a new, empty state answers the next refresh in full.
        refresh(&mut m, &reply("", 0, true, &[])).unwrap();
        assert!(m.resend_len() > 0, "given back");
        assert!(
            m.lost() > 0,
            "the state it followed was replaced by an empty one and lacks {} records it knew: \
             lost() is {}",
            m.resend_len(),
            m.lost()
        );
    }

    #[test]
    fn an_own_update_that_only_a_later_page_of_a_load_shows_is_still_checked() {
        // Following the empty state of a new Redis, this process revalidates "b" while its
        // refresh, answered in full by a state another process created since (E, version
        // 1), is in flight: the update lands in E at version 2, after the header was read.
        let mut m = TagMirror::new();
        refresh(&mut m, &reply("", 0, false, &[])).unwrap();
        assert!(m.is_synced());
        m.apply_local(&["b"], &MAX_PROFILE, Millis(500.0));
        m.apply_update_reply(&reply("E", 2, false, &[])).unwrap();
        refresh(&mut m, &paged_header("E", 1)).unwrap();
        // The last page is read after the update and shows it.
        refresh(&mut m, &page("0", 2, &[("b", rec(MAX_PROFILE, 500.0))])).unwrap();
        assert_eq!((m.epoch(), m.version()), ("E", 1));
        assert_eq!(m.resend_len(), 0);
        // A failover back to version 1 would lose the update unseen (the load's version and
        // id still match): the catch-up refresh has the script check it is still there.
        assert_eq!(m.unconfirmed_updates(), &[(2, "id2".to_owned())]);
        // Answered in full (the script found version 2 gone): given back.
        load(&mut m, "E", 1, &[]);
        assert_eq!(m.resend_len(), 1);
    }

    /// How tag_refresh.lua answers `m`'s next refresh when the state `epoch`, now at
    /// `ver`, lost nothing and is over 1,024 versions past the version `m` knows: `1` when `m`
    /// names no epoch (or another), else `2` (that version's id is gone; the own updates named
    /// are all there).
    fn answer_in_full(
        m: &TagMirror,
        epoch: &str,
        ver: u64,
        cursor: &str,
        pairs: &[(&str, TagRecord)],
    ) -> Vec<u8> {
        let mut header: Vec<Vec<u8>> =
            netstring::decode(&paged_header_with(epoch, ver, cursor, pairs))
                .unwrap()
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect();
        if m.epoch() == epoch {
            header[3] = b"2".to_vec();
        }
        netstring::encode(header)
    }

    /// The header of a full reply at `ver` of `epoch` with more pages to come.
    fn paged_header(epoch: &str, ver: u64) -> Vec<u8> {
        paged_header_with(epoch, ver, "c1", &[])
    }

    /// A full reply (flag `1`) whose first page holds `pairs` and ends at `cursor`.
    fn paged_header_with(
        epoch: &str,
        ver: u64,
        cursor: &str,
        pairs: &[(&str, TagRecord)],
    ) -> Vec<u8> {
        let mut header: Vec<Vec<u8>> = netstring::decode(&reply(epoch, ver, true, pairs))
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        header[6] = cursor.as_bytes().to_vec();
        netstring::encode(header)
    }

    #[test]
    fn a_record_only_a_later_page_shows_is_checked_by_the_catch_up_refresh() {
        // This process knows "b" (another process's revalidation it refreshed); a flush lost
        // it, and the load of the new state E begins at version 1. Another process writes "b"
        // again at version 2, which the last page shows: the comparison takes "b" as present.
        let mut m = TagMirror::new();
        load(&mut m, "D", 1, &[("b", rec(Revalidation::Expire, 500.0))]);
        refresh(&mut m, &paged_header("E", 1)).unwrap();
        assert_eq!(m.page_seen(), Some((1, "id1")));
        refresh(
            &mut m,
            &page("0", 2, &[("b", rec(Revalidation::Expire, 600.0))]),
        )
        .unwrap();
        assert_eq!((m.epoch(), m.version(), m.resend_len()), ("E", 1, 0));
        // A failover back to version 1 (the load's own version and id) would lose it unseen:
        // the catch-up refresh has the script check version 2 too.
        assert_eq!(m.unconfirmed_updates(), &[(2, "id2".to_owned())]);
        // Answered in full: the next load compares again and gives "b" back, then drops the
        // check (it began after the page it stood for).
        load(&mut m, "E", 1, &[]);
        assert_eq!(m.resend_len(), 1);
        assert!(m.is_synced() && m.unconfirmed_updates().is_empty());
        // A state that still holds version 2 confirms it.
        refresh(&mut m, &paged_header("E", 2)).unwrap();
        refresh(
            &mut m,
            &page("0", 3, &[("b", rec(Revalidation::Expire, 600.0))]),
        )
        .unwrap();
        assert_eq!(m.unconfirmed_updates(), &[(3, "id3".to_owned())]);
        m.note_planned();
        refresh(&mut m, &reply("E", 3, false, &[])).unwrap();
        assert!(m.is_synced() && m.unconfirmed_updates().is_empty());
    }

    #[test]
    fn a_load_whose_pages_checked_each_other_names_its_last_page_as_the_anchor() {
        let mut m = TagMirror::new();
        refresh(&mut m, &paged_header("E", 1)).unwrap();
        refresh(&mut m, &page("c2", 2, &[])).unwrap();
        refresh(&mut m, &page("0", 5, &[])).unwrap();
        // The catch-up names version 5 among the checks, and as the anchor.
        assert_eq!(m.unconfirmed_updates(), &[(5, "id5".to_owned())]);
        assert_eq!(m.anchor(), Some((5, "id5")));
        // A part up to version 3: still below the anchor, which stays.
        m.note_planned();
        refresh(&mut m, &part("E", 3, 4, &[])).unwrap();
        assert_eq!(m.anchor(), Some((5, "id5")));
        // Past it: confirmed, and no anchor any more.
        m.note_planned();
        refresh(&mut m, &reply("E", 6, false, &[])).unwrap();
        assert!(m.is_synced() && m.anchor().is_none());
        // A page read at a version without an id breaks the chain: no anchor.
        let mut n = TagMirror::new();
        refresh(&mut n, &paged_header("E", 1)).unwrap();
        refresh(&mut n, &netstring::encode(["page", "c2", "2", "", "0"])).unwrap();
        refresh(&mut n, &page("0", 5, &[])).unwrap();
        assert_eq!(n.unconfirmed_updates(), &[(5, "id5".to_owned())]);
        assert!(n.anchor().is_none());
    }

    #[test]
    fn an_own_update_below_the_anchor_is_not_checked_again_unless_something_was_folded() {
        // This process revalidates "b" during a load (version 2, between its header at 1 and
        // its pages at 3 and 4): the last page shows it, and every page checked the one
        // before it. Past 1,024 versions during the load, version 2's id is gone as the
        // load's is: checked, the catch-up would be answered in full, and load after load.
        let mut m = TagMirror::new();
        refresh(&mut m, &paged_header("E", 1)).unwrap();
        m.apply_local(&["b"], &MAX_PROFILE, Millis(500.0));
        m.apply_update_reply(&reply("E", 2, false, &[])).unwrap();
        refresh(&mut m, &page("c2", 3, &[])).unwrap();
        refresh(&mut m, &page("0", 4, &[("b", rec(MAX_PROFILE, 500.0))])).unwrap();
        assert_eq!(m.resend_len(), 0);
        assert_eq!(m.unconfirmed_updates(), &[(4, "id4".to_owned())]);
        assert_eq!(m.anchor(), Some((4, "id4")));
        // No page shows it: what the load lacks is given back, and nothing is checked.
        let mut n = TagMirror::new();
        refresh(&mut n, &paged_header("E", 1)).unwrap();
        n.apply_local(&["b"], &MAX_PROFILE, Millis(500.0));
        n.apply_update_reply(&reply("E", 2, false, &[])).unwrap();
        refresh(&mut n, &page("0", 3, &[])).unwrap();
        assert_eq!(n.resend_len(), 1);
        assert_eq!(n.unconfirmed_updates(), &[(3, "id3".to_owned())]);
        // A mirror that folded records gives them back only on evidence of a loss: its
        // update stays checked.
        let mut f = TagMirror::new();
        f.set_max_tags(1);
        refresh(&mut f, &paged_header("E", 1)).unwrap();
        f.apply_local(&["a", "c"], &MAX_PROFILE, Millis(400.0));
        f.apply_local(&["b"], &MAX_PROFILE, Millis(500.0));
        assert!(f.folded() > 0);
        f.apply_update_reply(&reply("E", 2, false, &[])).unwrap();
        refresh(&mut f, &page("0", 3, &[])).unwrap();
        assert_eq!(
            f.unconfirmed_updates(),
            &[(2, "id2".to_owned()), (3, "id3".to_owned())]
        );
        // An update above the anchor (made after the last page was read) is checked.
        let mut a = TagMirror::new();
        refresh(&mut a, &paged_header("E", 1)).unwrap();
        a.apply_local(&["b"], &MAX_PROFILE, Millis(500.0));
        a.apply_update_reply(&reply("E", 5, false, &[])).unwrap();
        refresh(&mut a, &page("0", 3, &[])).unwrap();
        assert_eq!(
            a.unconfirmed_updates(),
            &[(5, "id5".to_owned()), (3, "id3".to_owned())]
        );
    }

    #[test]
    fn a_page_that_finds_an_earlier_page_rolled_back_starts_the_load_again() {
        let mut m = TagMirror::new();
        load(&mut m, "D", 1, &[("b", rec(Revalidation::Expire, 500.0))]);
        refresh(&mut m, &paged_header("E", 1)).unwrap();
        // Each page names the version the one before it was read at.
        refresh(
            &mut m,
            &page("c2", 2, &[("b", rec(Revalidation::Expire, 600.0))]),
        )
        .unwrap();
        assert_eq!(m.page_seen(), Some((2, "id2")));
        // A failover lost version 2 and other updates reached version 3: the script says so.
        let rolled = netstring::encode(["page", "0", "3", "x3", "1"]);
        let s = refresh(&mut m, &rolled).unwrap();
        assert!(s.full && !m.is_loading() && !m.is_synced());
        // The next refresh asks for the whole state, whose comparison gives "b" back.
        assert_eq!((m.epoch(), m.version(), m.version_id()), ("", 0, ""));
        load(&mut m, "E", 3, &[]);
        assert_eq!(m.resend_len(), 1);
        // A malformed flag is refused.
        refresh(&mut m, &paged_header("E", 3)).unwrap();
        let bad = netstring::encode(["page", "0", "3", "id3", "2"]);
        assert_eq!(refresh(&mut m, &bad).unwrap_err(), ProtocolError::BadFlag);
        let short = netstring::encode(["page", "0", "3"]);
        assert_eq!(
            refresh(&mut m, &short).unwrap_err(),
            ProtocolError::ReplyShape
        );
    }

    #[test]
    fn an_own_update_the_state_lost_is_checked_by_two_loads_at_most() {
        // A failover back to version 1 lost this process's update at version 3 of E; every
        // refresh that still asks the script about it is answered in full, so the mirror would
        // never be synced again until E's version passed 3.
        let mut m = TagMirror::new();
        load(&mut m, "E", 2, &[]);
        m.apply_local(&["b"], &MAX_PROFILE, Millis(500.0));
        m.apply_update_reply(&reply("E", 3, false, &[])).unwrap();
        assert_eq!(m.unconfirmed_updates(), &[(3, "id3".to_owned())]);
        // The first load (its header may predate the update) gives the record back and keeps
        // the check; the one after it, begun after the update, ends it.
        load(&mut m, "E", 1, &[]);
        assert_eq!(m.resend_len(), 1);
        assert_eq!(m.unconfirmed_updates(), &[(3, "id3".to_owned())]);
        load(&mut m, "E", 1, &[("b", rec(MAX_PROFILE, 500.0))]);
        assert!(m.unconfirmed_updates().is_empty());
        // An update that went to a state since flushed is not checked against the new one.
        m.apply_update_reply(&reply("E", 2, false, &[])).unwrap();
        load(&mut m, "F", 1, &[]);
        assert!(m.unconfirmed_updates().is_empty());
    }

    #[test]
    fn a_refresh_confirms_only_the_updates_it_was_planned_with() {
        let mut m = TagMirror::new();
        load(&mut m, "E", 1, &[]);
        m.note_planned();
        // Acknowledged after the refresh was sent: the refresh may have run after it and
        // after a failover that gave version 2 to another update. Its reply at version 2,
        // with that other update's id, does not confirm this one.
        m.apply_update_reply(&reply("E", 2, false, &[])).unwrap();
        refresh(
            &mut m,
            &netstring::encode(["E", "2", "other", "0", "0", ""]),
        )
        .unwrap();
        assert_eq!(m.unconfirmed_updates(), &[(2, "id2".to_owned())]);
        // The next refresh carries it: a partial reply means the script found it held.
        m.note_planned();
        m.apply_update_reply(&reply("E", 3, false, &[])).unwrap();
        refresh(&mut m, &reply("E", 3, false, &[])).unwrap();
        assert!(m.unconfirmed_updates().is_empty(), "id3 is the reply's own");
    }

    #[test]
    fn a_version_an_announcement_moves_the_mirror_past_is_checked_by_the_next_pull() {
        let mut m = TagMirror::new();
        load(&mut m, "E", 4, &[]);
        // A failover may have given version 4 to another update since the mirror saw it, and
        // the update after that announces version 5: applied, the mirror would match the state
        // again and never give back what the lost version 4 held.
        assert_eq!(
            m.apply_announcement(&announcement("E", 5, &[])),
            Ok(Announced::Applied(0))
        );
        assert_eq!((m.version(), m.version_id()), (5, "id5"));
        assert_eq!(m.unconfirmed_updates(), &[(4, "id4".to_owned())]);
        m.note_planned();
        refresh(&mut m, &reply("E", 5, false, &[])).unwrap();
        assert!(m.unconfirmed_updates().is_empty());
    }

    #[test]
    fn prune_drops_old_tags() {
        let mut m = TagMirror::new();
        m.apply_local(&["old"], &Revalidation::Expire, Millis(1000.0));
        m.apply_local(&["new"], &Revalidation::Expire, Millis(5000.0));
        assert_eq!(m.prune(Millis(6000.0), 2000.0), 1);
        assert!(m.record("old").is_none() && m.record("new").is_some());
        assert_eq!(m.unconfirmed(), 1);
        assert_eq!(m.prune(Millis(7000.0), 2000.0), 0);
    }

    fn any_rev() -> impl Strategy<Value = Revalidation> {
        prop_oneof![
            Just(Revalidation::Expire),
            Just(Revalidation::Stale {
                expire_seconds: None
            }),
            (-0.002f64..0.2).prop_map(|e| Revalidation::Stale {
                expire_seconds: Some(e)
            }),
            Just(Revalidation::Stale {
                expire_seconds: Some(f64::INFINITY)
            }),
        ]
    }

    fn any_update() -> impl Strategy<Value = (Revalidation, f64)> {
        (any_rev(), 1.0f64..300.0)
    }

    fn any_record() -> impl Strategy<Value = TagRecord> {
        proptest::collection::vec(any_update(), 0..4).prop_map(|us| {
            let mut r = TagRecord::default();
            for (rev, now) in us {
                r.apply(&rev, Millis(now));
            }
            r
        })
    }

    proptest! {
        #[test]
        fn a_tag_update_is_never_lost(
            updates in proptest::collection::vec(any_update(), 1..8),
            order in Just(()).prop_perturb(|_, mut rng| {
                let mut idx: Vec<usize> = (0..8).collect();
                for i in (1..idx.len()).rev() {
                    let j = (rng.next_u32() as usize) % (i + 1);
                    idx.swap(i, j);
                }
                idx
            }),
            probes in proptest::collection::vec((0.0f64..600.0, 0.0f64..600.0), 1..20),
        ) {
            let mut combined = TagRecord::default();
            for i in order.iter().filter(|i| **i < updates.len()) {
                let (rev, now) = updates[*i];
                combined.apply(&rev, Millis(now));
            }
            for (rev, now) in &updates {
                let single = rec(*rev, *now);
                prop_assert!(combined.covers(&single), "{:?} does not cover {:?}", combined, single);
                for (ts, at) in &probes {
                    let (ts, at) = (Millis(ts.round()), Millis(at.round()));
                    prop_assert!(
                        combined.freshness(ts, at) >= single.freshness(ts, at),
                        "update {:?}@{} lost: {:?} vs {:?} at ts {} now {}", rev, now, combined, single, ts.0, at.0
                    );
                    // Around the update's own time, where a verdict flips.
                    for d in [-1.0, 0.0, 1.0] {
                        let ts = Millis(now.ceil() + d);
                        prop_assert!(combined.freshness(ts, at) >= single.freshness(ts, at));
                    }
                }
            }
        }

        #[test]
        fn merge_is_commutative_associative_and_monotone(a in any_record(), b in any_record(), c in any_record()) {
            let mut ab = a; ab.merge(&b);
            let mut ba = b; ba.merge(&a);
            prop_assert_eq!(ab, ba);
            let mut ab_c = ab; ab_c.merge(&c);
            let mut bc = b; bc.merge(&c);
            let mut a_bc = a; a_bc.merge(&bc);
            prop_assert_eq!(ab_c, a_bc);
            prop_assert!(ab.covers(&a) && ab.covers(&b));
            let mut aa = a; aa.merge(&a);
            prop_assert_eq!(aa, a);
        }

        #[test]
        fn record_text_round_trip(r in any_record()) {
            prop_assert_eq!(TagRecord::parse(r.encode().as_bytes()), Ok(r));
        }

        #[test]
        fn canonical_tag_is_idempotent_and_header_safe(tag in "\\PC{0,24}|[\\x00-\\x7f]{0,24}") {
            let once = canonical_tag(&tag).into_owned();
            prop_assert!(once.bytes().all(header_safe), "{:?}", once);
            prop_assert!(matches!(canonical_tag(&once), Cow::Borrowed(_)));
            prop_assert_eq!(canonical_tag(&once), once.as_str());
        }

        #[test]
        fn raw_and_encoded_forms_meet(pieces in proptest::collection::vec(("\\PC{0,6}", any::<bool>()), 0..6)) {
            // Any mix of raw pieces and pieces Next has encoded already is the same tag.
            let raw: String = pieces.iter().map(|(p, _)| p.as_str()).collect();
            let mixed: String = pieces
                .iter()
                .map(|(p, pre)| if *pre { next_encode_header_safe(p) } else { p.clone() })
                .collect();
            prop_assert_eq!(canonical_tag(&raw), next_encode_header_safe(&raw));
            prop_assert_eq!(canonical_tag(&mixed), canonical_tag(&raw));
        }

        #[test]
        fn header_safe_tags_are_unchanged_and_borrowed(tag in "[\\t\\x20-\\x7e]{0,40}") {
            let c = canonical_tag(&tag);
            prop_assert!(matches!(c, Cow::Borrowed(_)));
            prop_assert_eq!(c, tag.as_str());
        }

        /// (f922db3) A refresh applied between the two reports of one revalidation
        /// changes no answer of `holds_revalidation`, as long as its `now` is no later than the
        /// second report's (one host clock, read in that order: js-host/src/clock.ts).
        #[test]
        fn a_refresh_between_two_reports_changes_no_answer(
            gap_refresh in 0.0f64..30.0,
            gap_report in 0.0f64..30.0,
            paired in any::<bool>(),
        ) {
            let at = 1_000_000.0;
            let refresh_now = at + gap_refresh;
            let report_now = refresh_now + gap_report;
            let tags = ["a", "b"];
            let mut with = TagMirror::new();
            with.apply_local(&tags, &Revalidation::Expire, Millis(at));
            if paired {
                with.mark_paired(3);
            }
            let without = with.clone();
            with.apply_refresh(&reply("", 0, false, &[]), Millis(refresh_now), KEEP).unwrap();
            prop_assert_eq!(
                with.holds_revalidation(&tags, &Revalidation::Expire, Millis(report_now), 3),
                without.holds_revalidation(&tags, &Revalidation::Expire, Millis(report_now), 3)
            );
        }

        #[test]
        fn refresh_reply_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut m = TagMirror::new();
            let _ = m.apply_refresh(&bytes, Millis(0.0), 0.0);
            let _ = m.apply_update_reply(&bytes);
        }
    }
}
