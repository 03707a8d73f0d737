//! When a singular-handler regeneration began.
//!
//! An entry counts as created when the regeneration that produced it began, so a revalidation
//! that resolves while a page renders leaves the page stale instead of stored as fresh (an entry
//! is invalid when a tag's time is later than the entry's timestamp). `'use cache'`
//! entries carry that time already (Next's `startTime` reaches `set` as `timestamp`); the
//! singular handler's `set` carries none, so the engine remembers it: Next's ISR, on-demand
//! revalidation and the fetch cache always read a key before they regenerate it, and the read
//! that answered "stale" or "missing" (or any read of an on-demand revalidation) is where this
//! process's regeneration began. The write of that key is stamped with the read the writing
//! request made of it ([`Own`], which the host keeps per request); a write without one, with
//! the earliest such read of the key not yet consumed by a write, and consumes it.
//!
//! The table is keyed by entry key (bounded in length, unlike a cache key) and bounded
//! ([`MAX_REGENERATIONS`] keys, the oldest dropped), and a read older than
//! [`MAX_REGENERATION_MS`] is not trusted to be the start of the regeneration being written (a
//! regeneration that never wrote leaves its read behind): without a usable read, the write time
//! is the creation time, as before.

use crate::keyed::KeyedVec;
use crate::strhash::HashSeed;

use crate::incremental::ValueKind;
use crate::lease::{Found, Step};
use crate::tag_sync::PushFollow;
use crate::tags::{canonical_tag, Freshness, TagMirror};
use crate::time::Millis;

/// Keys whose regeneration start is remembered; beyond it the oldest are forgotten (their
/// writes are then stamped with the write time).
pub const MAX_REGENERATIONS: usize = 10_000;

/// The longest a regeneration is assumed to take: a read older than this when the key is
/// written, or when the key is read again, no longer counts as its start.
pub const MAX_REGENERATION_MS: f64 = 300_000.0;

/// Whether the answer of a read means that Next regenerates the key in this process.
pub fn regenerates(step: Step, on_demand: bool) -> bool {
    on_demand
        || matches!(
            step,
            Step::ServeStale | Step::Regenerate | Step::Fallback | Step::Released
        )
}

/// Tags whose stale `'use cache'` hand-outs are remembered; beyond it the least recently
/// handed out are forgotten.
pub const MAX_STALE_TAGS: usize = 10_000;
/// Time buckets of hand-outs a tag keeps: the last [`MAX_REGENERATION_MS`] in this many.
const HANDOUTS_PER_TAG: usize = 16;
/// The width of one bucket: how much earlier than a regeneration's start a hand-out of one of
/// its tags may be and still stamp it (see [`StaleHandouts`]).
const HANDOUT_BUCKET_MS: f64 = MAX_REGENERATION_MS / HANDOUTS_PER_TAG as f64;

/// Stale hand-outs of one tag (or of the tags dropped for the bound), in time buckets oldest
/// first: each bucket's latest hand-out time and the earliest creation time handed out in it.
type Buckets = Vec<(Millis, Millis)>;

/// Tags past which a stale hand-out is recorded for every page rather than per tag
/// ([`StaleHandouts::note_answer`]).
pub const WIDE_HANDOUT_TAGS: usize = 1_000;

/// Stale `'use cache'` entries this process handed out, by tag.
///
/// Next 16.4 lets a prerender join a `'use cache'` invocation that a request in the same
/// process has pending (cross-request deduplication), without asking the handler: the page
/// regeneration then receives what the handler answered the request, a stale entry (the lease
/// holder's, marked stale, or a follower's, as fresh). The handler cannot refuse it to the
/// joiner, so the page's write is stamped instead: no later than the oldest stale entry carrying
/// one of the page's tags that was handed out since the page's regeneration began. A page that
/// may hold stale data thus reads as stale (or expired) too, and is regenerated again.
///
/// Bounded without ever stamping a page later than the hand-outs it was told of would: a tag
/// keeps its hand-outs of the last [`MAX_REGENERATION_MS`] (no regeneration began earlier) in
/// `HANDOUTS_PER_TAG` time buckets, each with its latest hand-out time and the earliest
/// creation time handed out in it, so a page may be stamped with a hand-out up to one bucket
/// (`HANDOUT_BUCKET_MS`) older than its start: too early (judged stale when it need not be),
/// never too late. Tags dropped for [`MAX_STALE_TAGS`] leave their buckets to one shared set
/// that every page is judged against, for the same reason.
#[derive(Clone, Debug, Default)]
pub struct StaleHandouts {
    /// Per tag in its canonical form ([`canonical_tag`]).
    by_tag: KeyedVec<Buckets>,
    /// Of the tags dropped for the bound, whatever their name.
    dropped: Buckets,
}

/// Adds a hand-out at `at` of an entry created at `created` to `buckets` (in its bucket, also
/// when it is older than the last: a clock that went back, tags dropped in no time order), and
/// forgets the buckets no regeneration can have begun after: older than the longest
/// regeneration before the latest hand-out.
fn add_handout(buckets: &mut Buckets, at: Millis, created: Millis) {
    let bucket = |t: Millis| (t.0 / HANDOUT_BUCKET_MS).floor();
    let b = bucket(at);
    // After the last bucket not later than this one (a plain `Vec`: at most 18, and
    // `VecDeque::insert` was 900 bytes of the wasm module).
    let i = buckets
        .iter()
        .rposition(|(t, _)| bucket(*t) <= b)
        .map_or(0, |i| i + 1);
    match i.checked_sub(1).and_then(|j| buckets.get_mut(j)) {
        Some(same) if bucket(same.0) == b => {
            same.0 = same.0.max(at);
            same.1 = same.1.min(created);
        }
        _ => buckets.insert(i, (at, created)),
    }
    // From the earlier of this hand-out and the latest, less a bucket: a clock that went back
    // (by less than a bucket) still finds what a regeneration it began may have joined.
    let latest = buckets.last().map_or(at.0, |(t, _)| t.0.min(at.0));
    let horizon = latest - MAX_REGENERATION_MS - HANDOUT_BUCKET_MS;
    let old = buckets.iter().take_while(|(t, _)| t.0 < horizon).count();
    buckets.drain(..old.min(buckets.len().saturating_sub(1)));
    // Distinct buckets within the horizon are at most two more than `HANDOUTS_PER_TAG` by
    // construction; should that ever fail, the two oldest become one with the earlier creation
    // time (never later than what they stand for).
    while buckets.len() > HANDOUTS_PER_TAG + 2 {
        let (_, first) = buckets.remove(0);
        if let Some(second) = buckets.first_mut() {
            second.1 = second.1.min(first);
        }
    }
}

/// The earliest creation time in `buckets` handed out at or after `since`.
fn oldest_in(buckets: &Buckets, since: Millis) -> Option<Millis> {
    buckets
        .iter()
        .filter(|(at, _)| at.0 >= since.0)
        .map(|(_, created)| *created)
        .reduce(Millis::min)
}

impl StaleHandouts {
    /// An empty record, its tags hashed with `seed`.
    pub fn with_seed(seed: HashSeed) -> StaleHandouts {
        StaleHandouts {
            by_tag: KeyedVec::with_seed(0, seed),
            dropped: Buckets::new(),
        }
    }

    /// Rehashes the keys with `seed` ([`crate::Engine::reseed_hashes`]).
    pub fn reseed(&mut self, seed: HashSeed) {
        self.by_tag.reseed(seed);
    }

    /// The seed the keys are hashed with.
    #[cfg(test)]
    pub(crate) fn hash_seed(&self) -> HashSeed {
        self.by_tag.hash_seed()
    }

    /// A `'use cache'` read answered with `step` an entry carrying `tags`, created at
    /// `created`, that it found `found`: a stale entry handed out (marked stale or as fresh)
    /// is remembered. An entry with more than [`WIDE_HANDOUT_TAGS`] tags goes to the set every
    /// page is judged against, as one hand-out: per tag, each hand-out of it would cost a pass
    /// over all its tags (about 25 ms for 65,535) and push every other tag out of the record.
    pub fn note_answer(
        &mut self,
        tags: &[&str],
        found: Found,
        step: Step,
        created: Millis,
        now: Millis,
    ) {
        if found == Found::Stale && matches!(step, Step::ServeStale | Step::ServeAsFresh) {
            if tags.len() > WIDE_HANDOUT_TAGS {
                if created.0.is_finite() && now.0.is_finite() {
                    add_handout(&mut self.dropped, now, created);
                }
            } else {
                self.note(tags.iter().copied(), created, now);
            }
        }
    }

    /// A stale entry created at `created`, carrying `tags`, was handed out at `now`.
    pub fn note<'a>(
        &mut self,
        tags: impl IntoIterator<Item = &'a str>,
        created: Millis,
        now: Millis,
    ) {
        if !(created.0.is_finite() && now.0.is_finite()) {
            return;
        }
        for tag in tags {
            let list = self
                .by_tag
                .get_or_insert_with(&canonical_tag(tag), Vec::new);
            add_handout(list, now, created);
        }
        if self.by_tag.len() > MAX_STALE_TAGS {
            let horizon = now.0 - MAX_REGENERATION_MS;
            self.by_tag
                .retain(|_, l| l.last().is_some_and(|(at, _)| at.0 >= horizon));
            let excess = self.by_tag.len().saturating_sub(MAX_STALE_TAGS);
            if excess > 0 {
                for k in self.least_recent(excess) {
                    if let Some(list) = self.by_tag.remove(&k) {
                        for (at, created) in list {
                            add_handout(&mut self.dropped, at, created);
                        }
                    }
                }
            }
        }
    }

    /// The `excess` tags least recently handed out (ties in no particular order).
    ///
    /// Found in a bounded number of passes, not one per tag dropped: one entry may carry tens
    /// of thousands of tags, and a scan per tag dropped would take minutes. The last hand-out
    /// times are bisected (64 passes at most over a flat `Vec`) rather than selected with
    /// `select_nth_unstable`, whose instantiation was 2.6 KB of the wasm module
    /// (docs/decisions/0028-wasm-size-budget.md).
    fn least_recent(&self, excess: usize) -> Vec<String> {
        // Each time as an integer in the same order as `f64::total_cmp`.
        let order = |l: &Buckets| {
            let bits = l.last().map_or(0.0, |x| x.0 .0).to_bits() as i64;
            bits ^ (((bits >> 63) as u64) >> 1) as i64
        };
        let times: Vec<i64> = self.by_tag.values().map(order).collect();
        let (Some(&first), Some(&last)) = (times.iter().min(), times.iter().max()) else {
            return Vec::new();
        };
        // The least `cut` with at least `excess` times at or below it.
        let (mut lo, mut hi) = (first, last);
        while lo < hi {
            let mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1);
            if times.iter().filter(|&&t| t <= mid).count() >= excess {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let cut = lo;
        // Everything before `cut` (fewer than `excess`), then ties at `cut` up to `excess`.
        let mut gone: Vec<String> = Vec::with_capacity(excess);
        for (k, l) in self.by_tag.iter() {
            if order(l) < cut {
                gone.push(k.clone());
            }
        }
        let ties = excess.saturating_sub(gone.len());
        gone.extend(
            self.by_tag
                .iter()
                .filter(|(_, l)| order(l) == cut)
                .take(ties)
                .map(|(k, _)| k.clone()),
        );
        gone
    }

    /// The oldest creation time among stale entries with one of `tags` handed out at or after
    /// `since`.
    pub fn oldest_since<'a>(
        &self,
        tags: impl IntoIterator<Item = &'a str>,
        since: Millis,
    ) -> Option<Millis> {
        // Noted under their canonical form: Next may name a tag raw or header-safe.
        tags.into_iter()
            .filter_map(|t| self.by_tag.get(canonical_tag(t).as_ref()))
            .chain([&self.dropped])
            .filter_map(|l| oldest_in(l, since))
            .reduce(Millis::min)
    }

    /// Tags remembered.
    pub fn len(&self) -> usize {
        self.by_tag.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.by_tag.is_empty()
    }
}

/// `'use cache'` values whose tags [`RecentFills`] keeps; past it the oldest write's value is
/// kept with when its write ended and when it was made only.
pub const MAX_FILLS: usize = 256;

/// `'use cache'` values pushed out of [`RecentFills`]' ring whose end and creation times are
/// kept as they were; past it the oldest go to time buckets.
pub const MAX_OLDER_FILLS: usize = 8_192;

/// Bytes of tags [`RecentFills`] keeps for one value; a value with more is kept without them,
/// and judged for every page (too early at worst): the ring holds at most
/// [`MAX_FILLS`] times this many bytes of tags, whatever tags Next sends.
pub const FILL_TAG_BYTES: usize = 4096;

/// A `'use cache'` value written: when its write ended, when it was made (Next's `timestamp`,
/// the start of the invocation), its tags in their canonical form.
#[derive(Clone, Debug)]
struct Fill {
    ended: Millis,
    made: Millis,
    tags: Vec<String>,
}

/// The `'use cache'` values this process wrote lately.
///
/// Next 16.3.8 and later (the oldest release tested that has it; not 16.2.12) hand an
/// invocation's value, once its write settles, to every request of the process that joined the
/// invocation while it ran (cross-request deduplication: `crossRequestPendingCacheInvocations`
/// in `next/dist/server/use-cache/use-cache-wrapper.js`), without asking the handler. A page regeneration that began after a revalidation may so hold
/// a value made before it: stale by one of the value's tags, or by one of the page's implicit
/// tags (`revalidatePath`), which judge the value only as that page's data. No read stamps the
/// page by it, so its write is stamped no later than the earliest such value that the tag
/// state, when the page is written, finds stale as that page's data: one whose write ended
/// after the page's regeneration began, whose tags are all among the page's (Next adds a
/// joined value's tags to the page's), and which the page's tags judge stale or expired. The
/// page then reads as stale (or expired) too, and is regenerated again; a value written by an
/// invocation it did not join costs at most that one more regeneration.
///
/// A value is told when its write begins, joinable until it ends or a read's budget has passed
/// (when the host resolves Next's `set` while a slow write goes on), whichever comes first
/// ([`crate::write_machine::WriteMachine::take_fill`]): a page that joined it may be written
/// before its write ends.
///
/// Bounded: the last [`MAX_FILLS`] writes with their tags, in a ring; the [`MAX_OLDER_FILLS`]
/// before them with their end and creation times only, which every page is judged against
/// whatever its tags (a page whose regeneration began after such a value's write ended is
/// not); older ones as creation times in the time buckets [`StaleHandouts`] keeps (the last
/// [`MAX_REGENERATION_MS`]): too early at worst, for pages whose regeneration began at most one
/// bucket before such a write ended, and so again each time such a page is regenerated until
/// then (only a regeneration that spans more than `MAX_FILLS + MAX_OLDER_FILLS` writes).
#[derive(Clone, Debug, Default)]
pub struct RecentFills {
    ring: Vec<Fill>,
    /// The slot the next write takes once the ring is full.
    next: usize,
    /// Pushed out of the ring: when each write ended and when its value was made, in a ring of
    /// their own. Not straight to the buckets: a bucket keeps its earliest creation time and
    /// its latest end, so a value made before a revalidation that ended just after it stamped
    /// every page whose regeneration began before the bucket's later values ended (a page
    /// regenerated 25 times in a row over 12 s in a process writing a value a millisecond).
    older: Vec<(Millis, Millis)>,
    /// The slot of `older` the next value pushed out of the ring takes once it is full.
    older_next: usize,
    dropped: Buckets,
}

impl RecentFills {
    /// The tags to keep for a value carrying `tags`: their canonical forms, or none (every
    /// page then judges the value) past [`FILL_TAG_BYTES`].
    pub fn tags_of(tags: &[&str]) -> Vec<String> {
        if tags.iter().map(|t| t.len()).sum::<usize>() > FILL_TAG_BYTES {
            return Vec::new();
        }
        canonical_tags(tags)
    }

    /// A `'use cache'` value carrying `tags` ([`RecentFills::tags_of`]), made at `made`, whose
    /// write ended at `ended`.
    pub fn note(&mut self, tags: Vec<String>, made: Millis, ended: Millis) {
        if !(made.0.is_finite() && ended.0.is_finite()) {
            return;
        }
        let fill = Fill { ended, made, tags };
        if self.ring.len() < MAX_FILLS {
            self.ring.push(fill);
        } else if let Some(slot) = self.ring.get_mut(self.next % MAX_FILLS) {
            let old = std::mem::replace(slot, fill);
            self.next = (self.next + 1) % MAX_FILLS;
            let times = (old.ended, old.made);
            if self.older.len() < MAX_OLDER_FILLS {
                self.older.push(times);
            } else if let Some(slot) = self.older.get_mut(self.older_next % MAX_OLDER_FILLS) {
                let (ended, made) = std::mem::replace(slot, times);
                add_handout(&mut self.dropped, ended, made);
                self.older_next = (self.older_next + 1) % MAX_OLDER_FILLS;
            }
        }
    }

    /// The write of a value noted with `tags`, made at `made`, as joinable until `told`, ended
    /// at `ended`: its record says so from now on (a write that ended early closed the join
    /// then; one that ended late, the host waiting for it, kept it open till then). Pushed out
    /// of the ring meanwhile, it is noted again when it ended later than told. Found by its two
    /// times (another value with both the same stands for it as well as it does).
    pub fn ended(&mut self, tags: Vec<String>, made: Millis, told: Millis, ended: Millis) {
        let kept = self
            .ring
            .iter_mut()
            .find(|f| f.ended == told && f.made == made);
        match kept {
            Some(f) => f.ended = ended,
            None if ended.0 > told.0 => self.note(tags, made, ended),
            None => {}
        }
    }

    /// The earliest creation time among values whose write ended at or after `since` that a
    /// page carrying `page` (canonical tags) may hold and that `stale` (the tag state's verdict
    /// on a value made at a time, carrying the page's tags) finds stale. With `any_kept`, the
    /// values kept with their tags count whatever `stale` says (those pushed out of the ring
    /// still only when it finds them stale): see [`use_cache_created`].
    pub fn oldest_stale(
        &self,
        page: &[String],
        since: Millis,
        stale: &dyn Fn(Millis) -> bool,
        any_kept: bool,
    ) -> Option<Millis> {
        let mut oldest: Option<Millis> = None;
        let mut consider = |made: Millis, judged: bool| {
            if !matches!(oldest, Some(o) if o.0 <= made.0) && (!judged || stale(made)) {
                oldest = Some(made);
            }
        };
        for f in &self.ring {
            if f.ended.0 >= since.0 && f.tags.iter().all(|t| page.contains(t)) {
                consider(f.made, !any_kept);
            }
        }
        for &(ended, made) in &self.older {
            if ended.0 >= since.0 {
                consider(made, true);
            }
        }
        if let Some(made) = oldest_in(&self.dropped, since) {
            consider(made, true);
        }
        oldest
    }

    /// Values kept with their tags.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty() && self.older.is_empty() && self.dropped.is_empty()
    }
}

/// Every tag of `tags` in its canonical form ([`canonical_tag`]), owned.
pub fn canonical_tags(tags: &[&str]) -> Vec<String> {
    let mut out = Vec::with_capacity(tags.len());
    for t in tags {
        out.push(canonical_tag(t).into_owned());
    }
    out
}

/// What a request's reads of a singular-handler key left for the same request's write of it,
/// handed back by the host with the write. An answer gives one ([`crate::ReadAnswer::own`]);
/// the host keeps, per key, each field's least over the request's answers ([`Own::least`])
/// and, apart, the stamp of each value it served ([`Own::written_back`]); the core decides
/// which of them stamps the write ([`Regenerations::started_for`]). NaN where none.
///
/// Next builds an `IncrementalCache`, with its own handler instance, per request, and one
/// request reads and writes a key through the same one; two requests may regenerate one
/// `fetch` key at once (Next joins them neither across requests nor processes), so a per-key
/// table alone cannot tell their writes apart.
#[derive(Clone, Copy, Debug)]
pub struct Own {
    /// When the earliest read after which Next regenerates the key began (ms).
    pub start: f64,
    /// When the earliest fresh answer Next may call due on its own began (ms)...
    pub fresh_at: f64,
    /// ... and the earliest due among those answers (ms): from then a write may be the
    /// regeneration Next began on its own.
    pub fresh_due: f64,
    /// The value written is one the request was served, unchanged (Next 16.5 writes the
    /// previous entry back when a regeneration fails): the creation time the engine chose
    /// for it when serving it ([`crate::ReadAnswer::own`]'s), taken however long ago...
    pub written_back: f64,
    /// ... and when that value was made ([`EntryMeta::made`]): the entry written back keeps it
    /// apart from its stamp, so that its tags still judge it by it.
    ///
    /// [`EntryMeta::made`]: crate::envelope::EntryMeta::made
    pub written_back_made: f64,
}

/// Equal field by field, NaN (none) equal to NaN: answers compare in tests.
impl PartialEq for Own {
    fn eq(&self, other: &Own) -> bool {
        let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
        same(self.start, other.start)
            && same(self.fresh_at, other.fresh_at)
            && same(self.fresh_due, other.fresh_due)
            && same(self.written_back, other.written_back)
            && same(self.written_back_made, other.written_back_made)
    }
}

impl Own {
    /// No read of the key by the writing request is known.
    pub const NONE: Own = Own {
        start: f64::NAN,
        fresh_at: f64::NAN,
        fresh_due: f64::NAN,
        written_back: f64::NAN,
        written_back_made: f64::NAN,
    };

    /// What the host keeps of a request's answers for a key (`OwnReads` in
    /// js-host/src/incremental-handler.ts): each field the lesser of the two, where only one
    /// has it, that one; no `written_back` (nor its made time), which belongs to a served value,
    /// not to the key.
    pub fn least(self, other: Own) -> Own {
        let least = |a: f64, b: f64| if a < b || b.is_nan() { a } else { b };
        Own {
            start: least(self.start, other.start),
            fresh_at: least(self.fresh_at, other.fresh_at),
            fresh_due: least(self.fresh_due, other.fresh_due),
            written_back: f64::NAN,
            written_back_made: f64::NAN,
        }
    }

    /// For a value written back, when it was made ([`Own::written_back_made`]).
    pub fn made(&self) -> Option<Millis> {
        (self.written_back.is_finite() && self.written_back_made.is_finite())
            .then_some(Millis(self.written_back_made))
    }

    /// The read that stamps the write at `now`, if one counts: the earliest of the request's
    /// start and its fresh answer, the fresh answer only once Next may have called it due (its
    /// second look, after a stalled event loop, may have begun the regeneration this write
    /// ends, which a later stale read of the same request then joined: Next's pending
    /// revalidation; freshness simulation, `a_request_that_reads_a_fetch_entry_again_stamps_its_refetch_late`),
    /// neither older than a regeneration can be. A start too old leaves the write to the
    /// table, not to a later fresh answer, which may come after a revalidation the
    /// regeneration missed. The cost: when the stale read began the regeneration, the write
    /// is stamped with the fresh answer, possibly born due, and regenerated once more.
    fn counting(&self, now: Millis) -> Option<f64> {
        let within = |at: f64| at.is_finite() && now.0 - at <= MAX_REGENERATION_MS;
        let fresh = (within(self.fresh_at) && self.fresh_due <= now.0).then_some(self.fresh_at);
        if self.start.is_finite() {
            if !within(self.start) {
                return None;
            }
            return Some(fresh.map_or(self.start, |f| f.min(self.start)));
        }
        fresh
    }
}

/// A time a key's read left for its next write, and when it counts from.
#[derive(Clone, Copy, Debug)]
struct Noted {
    /// When the read began.
    at: Millis,
    /// From when a write may be the regeneration it led to (a fresh answer's: when Next calls
    /// it due; a start's: at once).
    due: Millis,
    /// Its place in [`Recent::order`].
    seq: u64,
}

/// Per key, one [`Noted`], for the [`MAX_REGENERATIONS`] keys noted last (the oldest dropped).
#[derive(Clone, Debug, Default)]
struct Recent {
    noted: KeyedVec<Noted>,
    /// Insertion order, for dropping the oldest: `(sequence, key)` from `head` on (the ones
    /// before it were dropped); an entry whose sequence no longer matches the map's is a
    /// leftover and skipped. A `Vec` with a head, not a `VecDeque`: the deque's code was about
    /// 1 KB of the wasm module (docs/decisions/0028-wasm-size-budget.md, tenth pass).
    order: Vec<(u64, String)>,
    head: usize,
    seq: u64,
}

impl Recent {
    fn with_seed(seed: HashSeed) -> Recent {
        Recent {
            noted: KeyedVec::with_seed(0, seed),
            ..Recent::default()
        }
    }

    /// Notes `at`/`due` for `key`, or keeps what is noted when `keep` says so, as the most
    /// recent; drops the oldest past the bound.
    fn note(&mut self, key: &str, at: Millis, due: Millis, keep: impl Fn(&Noted) -> bool) {
        if self.noted.get(key).is_some_and(&keep) {
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        self.noted.insert(key, Noted { at, due, seq });
        self.order.push((seq, key.to_owned()));
        while self.noted.len() > MAX_REGENERATIONS {
            let Some((seq, k)) = self.order.get(self.head) else {
                break;
            };
            self.head += 1;
            if self.noted.get(k).is_some_and(|n| n.seq == *seq) {
                self.noted.remove(k);
            }
        }
        // Dropped entries and leftovers of replaced or consumed keys: keep the queue within
        // twice the map, the live ones moved to the front in order.
        if self.order.len() > 2 * MAX_REGENERATIONS {
            let mut kept = 0;
            for at in self.head..self.order.len() {
                let live = self
                    .order
                    .get(at)
                    .is_some_and(|(seq, k)| self.noted.get(k).is_some_and(|n| n.seq == *seq));
                if live {
                    self.order.swap(kept, at);
                    kept += 1;
                }
            }
            self.order.truncate(kept);
            self.head = 0;
        }
    }

    /// What is noted for `key`, when a write at `now` may be its regeneration: begun within
    /// [`MAX_REGENERATION_MS`], due. Consumed either way.
    fn take(&mut self, key: &str, now: Millis) -> Option<Millis> {
        self.noted
            .remove(key)
            .filter(|n| now.0 - n.at.0 <= MAX_REGENERATION_MS && n.due.0 <= now.0)
            .map(|n| n.at.min(now))
    }
}

/// The start of each regeneration this process has begun and not yet written, by cache key.
///
/// Also, in a table of their own (they come with every fresh hit, and must not push a start
/// out), the fresh answers of each key since its last write: Next judges an answer's
/// `lastModified` again when it reaches it, and one that took longer than the `revalidate` Next
/// applies (a stalled event loop) is regenerated by Next on its own. A write with no known
/// start, after the earliest of those answers fell due, is stamped with when the earliest of
/// them began: a later answer may come while that regeneration runs.
#[derive(Clone, Debug, Default)]
pub struct Regenerations {
    started: Recent,
    fresh: Recent,
}

impl Regenerations {
    /// A read of the singular handler's `cache_key`, begun at `started`, was answered with
    /// `step`; `on_demand` when the request is an on-demand revalidation. Remembers where
    /// this process's regeneration began when Next regenerates after it ([`regenerates`]).
    pub fn note_read(&mut self, cache_key: &str, step: Step, on_demand: bool, started: Millis) {
        if regenerates(step, on_demand) {
            self.began(cache_key, started);
        }
    }

    /// A read of `cache_key` begun at `started` was answered fresh, and Next calls the answer
    /// stale from `due` on (its `lastModified` plus the `revalidate` it applies). Kept until
    /// the key's next write: the earliest such read, and the earliest due of those since.
    pub fn note_fresh(&mut self, cache_key: &str, started: Millis, due: Millis) {
        if !(started.0.is_finite() && due.0.is_finite()) {
            return;
        }
        let (at, due) = match self.fresh.noted.get(cache_key) {
            Some(n) if started.0 - n.at.0 <= MAX_REGENERATION_MS => {
                (n.at.min(started), n.due.min(due))
            }
            _ => (started, due),
        };
        self.fresh
            .note(cache_key, at, due, |n| n.at == at && n.due == due);
    }

    /// An empty table.
    pub fn new() -> Regenerations {
        Regenerations::default()
    }

    /// An empty table, its cache keys (request input) hashed with `seed`.
    pub fn with_seed(seed: HashSeed) -> Regenerations {
        Regenerations {
            started: Recent::with_seed(seed),
            fresh: Recent::with_seed(seed),
        }
    }

    /// Rehashes the keys with `seed` ([`crate::Engine::reseed_hashes`]).
    pub fn reseed(&mut self, seed: HashSeed) {
        self.started.noted.reseed(seed);
        self.fresh.noted.reseed(seed);
    }

    /// The seed the keys are hashed with.
    #[cfg(test)]
    pub(crate) fn hash_seed(&self) -> HashSeed {
        self.started.noted.hash_seed()
    }

    /// A read of `key` begun at `at` answered so that Next regenerates the key here. The
    /// earliest unconsumed read is kept: a later one may be answered while the first
    /// regeneration still runs (another request's, whose write then brings its own read,
    /// [`Own`]), and a write that brings none is stamped no later than the first.
    pub fn began(&mut self, key: &str, at: Millis) {
        if !at.0.is_finite() {
            return;
        }
        self.started.note(key, at, Millis(f64::NEG_INFINITY), |n| {
            at.0 - n.at.0 <= MAX_REGENERATION_MS
        });
    }

    /// The creation time of `key`'s entry written at `now`: the start of the regeneration that
    /// produced it when known (and not later than `now`), else `now`. Consumes the record.
    pub fn created(&mut self, key: &str, now: Millis) -> Millis {
        self.started_of(key, now).unwrap_or(now)
    }

    /// The start of the regeneration of `key` written at `now` by a request whose own reads of
    /// it left `own` ([`Own`]): a value written back, as it was served; else the request's
    /// read when one counts (`Own::counting`), else what the table knows
    /// (`Regenerations::started_of`). The table's records of the request's reads are
    /// consumed; another request's are left for its own write.
    pub fn started_for(&mut self, key: &str, own: Own, now: Millis) -> Option<Millis> {
        if own.written_back.is_finite() {
            return Some(Millis(own.written_back).min(now));
        }
        let Some(at) = own.counting(now) else {
            return self.started_of(key, now);
        };
        for table in [&mut self.started, &mut self.fresh] {
            if table
                .noted
                .get(key)
                .is_some_and(|n| n.at.0 == own.start || n.at.0 == own.fresh_at)
            {
                table.noted.remove(key);
            }
        }
        Some(Millis(at).min(now))
    }

    /// The start of the regeneration of `key` written at `now`, when known; consumes it. Without
    /// a read after which the engine knows Next regenerates, the earliest fresh answer since the
    /// last write once the earliest of them fell due (Next may have regenerated after it on its
    /// own): too early at worst, so the entry may be regenerated once more.
    fn started_of(&mut self, key: &str, now: Millis) -> Option<Millis> {
        let start = self.started.take(key, now);
        let fresh = self.fresh.take(key, now);
        start.or(fresh)
    }

    /// Keys whose regeneration start is remembered.
    pub fn len(&self) -> usize {
        self.started.noted.len()
    }

    /// True when no regeneration start is remembered.
    pub fn is_empty(&self) -> bool {
        self.started.noted.is_empty()
    }
}

/// The creation time of the singular handler's entry at `key` (its entry key), a value of
/// `kind` carrying `tags`, written at `now` by a request whose own read of it left `own`: the
/// start of the regeneration that produced it ([`Regenerations::started_for`]); for pages and
/// routes (what renders `'use cache'` functions), also no later than any stale `'use cache'`
/// entry with one of its tags handed out in this process since then ([`StaleHandouts`];
/// without a known start, within the last [`MAX_REGENERATION_MS`]), and than any
/// `'use cache'` value written since then that it may hold and its tags find stale
/// ([`RecentFills`]), by the time its data was judged by ([`judged_by`]) moved back by
/// `ahead`, as far as the process's clock runs ahead of its wall clock
/// ([`crate::time::ahead_of_wall`]; the value's entry is stored there). Not a value written
/// back unchanged: its bytes are an earlier regeneration's, whose own write took the hand-outs
/// of its time into account (they are in its made time), and no render of this one reached
/// them (lowering its stamp voided Next's retry delay; fixed in 7a01957).
pub fn incremental_created(
    regenerations: &mut Regenerations,
    (handouts, fills, mirror, push): (
        &StaleHandouts,
        &RecentFills,
        &TagMirror,
        Option<&PushFollow>,
    ),
    (key, own): (&str, Own),
    kind: ValueKind,
    tags: &[&str],
    (now, ahead): (Millis, f64),
) -> Millis {
    let started = regenerations.started_for(key, own, now);
    let created = started.unwrap_or(now);
    if matches!(kind, ValueKind::Fetch | ValueKind::Image) || own.written_back.is_finite() {
        return created;
    }
    let since = started.unwrap_or(Millis(now.0 - MAX_REGENERATION_MS));
    // Owned, so the mirror's verdict is the one instantiation an entry's stored tags use.
    let page = canonical_tags(tags);
    let stale = |made: Millis| {
        let judged = on_fleet_scale(judged_by(made, push), ahead);
        mirror.evaluate(judged, page.iter().map(String::as_str), now) != Freshness::Fresh
    };
    let mut created = created;
    for t in [
        handouts.oldest_since(tags.iter().copied(), since),
        fills.oldest_stale(&page, since, &stale, false),
    ]
    .into_iter()
    .flatten()
    {
        created = created.min(t);
    }
    created
}

/// The creation time of a `'use cache'` entry carrying `tags` whose invocation began at
/// `timestamp` (Next's stamp), written at `now`: no later than any `'use cache'` value this
/// process wrote since then whose tags are all among the entry's ([`RecentFills`]), nor than
/// any stale entry with one of its tags handed out since then ([`StaleHandouts`]: the inner
/// invocation it joined may have been a read answered with one). Values whose tags are gone
/// are judged as for a page ([`incremental_created`], `ahead` likewise).
///
/// Next lets an invocation join an inner one that another request of the process has pending
/// and adds the inner value's tags to the outer entry, which it stamps with the outer's own
/// start: an outer entry begun after a revalidation that joined a fill begun before it holds
/// the fill's old data under a stamp that reads as fresh, by the inner's tags and by the
/// implicit tags of every page that reads it, on every instance, and a page regenerated from
/// it later stores the old data as fresh. The outer's own tags cannot judge the fill for a
/// page's implicit tags (`revalidatePath`), which the write does not know, so a kept value
/// counts whatever the tag state says: the entry's stamp only goes back to when the data it
/// may hold was made, by at most the run of a value written while the outer ran, which costs
/// a regeneration only when a revalidation (or the entry's own `revalidate`) falls in between.
/// Values pushed out of the ring, whose tags are gone, count only when the outer's tags find
/// them stale: counting them all would stamp back every entry written in a busy process.
pub fn use_cache_created(
    (handouts, fills, mirror, push): (
        &StaleHandouts,
        &RecentFills,
        &TagMirror,
        Option<&PushFollow>,
    ),
    tags: &[&str],
    timestamp: Millis,
    (now, ahead): (Millis, f64),
) -> Millis {
    let own = canonical_tags(tags);
    let stale = |made: Millis| {
        let judged = on_fleet_scale(judged_by(made, push), ahead);
        mirror.evaluate(judged, own.iter().map(String::as_str), now) != Freshness::Fresh
    };
    [
        fills.oldest_stale(&own, timestamp, &stale, true),
        handouts.oldest_since(tags.iter().copied(), timestamp),
    ]
    .into_iter()
    .flatten()
    .fold(timestamp, Millis::min)
}

/// When the value of a singular-handler write of `kind`, stamped `created` by a request whose
/// reads of its key left `own`, was made, for its tags to judge it by
/// ([`EntryMeta::made`](crate::envelope::EntryMeta::made)), where earlier than `created`.
///
/// A value written back unchanged: when it was made, as its read gave it ([`Own::made`]).
/// A page or route regenerated by a process that follows the tag state by push (`push`): no
/// later than the time up to which its mirror vouched for the revalidations that had reached
/// Redis when the regeneration began ([`PushFollow::vouched_from`]). Caught up, a process
/// judges the page's data by its mirror alone, which may lack a revalidation that resolved
/// after its last pull began (an announcement late or lost, or one never made: an instance
/// that pulls); stamped with its start, the page would read as fresh on every instance once
/// they knew of it, old data and all, until its `revalidate` ran out. Its `revalidate` and
/// `expire` still count from `created`, so Next's delays are kept; a revalidation of its
/// tags this process had heard of in that interval leaves it stale, regenerated once more
/// after the next pull. Not `fetch` or image entries: their regeneration reads the origin,
/// no cached data. Pulling per request, the data is judged by the request's own pull, which
/// began after the regeneration did: `None`, the stamp judges.
pub fn incremental_made(
    kind: ValueKind,
    own: Own,
    created: Millis,
    push: Option<&PushFollow>,
) -> Option<Millis> {
    if own.written_back.is_finite() {
        return own.made();
    }
    if matches!(kind, ValueKind::Fetch | ValueKind::Image) {
        return None;
    }
    push.map(|_| judged_by(created, push))
}

/// When the value of a `'use cache'` entry stamped `created` ([`use_cache_created`]) was made,
/// for its tags to judge it by, where earlier: as for a page ([`incremental_made`]), following
/// by push, no later than the time up to which the mirror vouched for what reached Redis when
/// its invocation began (or when a value it may have joined began, where `created` went back
/// to that: [`judged_by`]). Its function may read other entries (a nested `'use cache'`),
/// judged by the mirror as it was then. Pulling, `None`.
pub fn use_cache_made(created: Millis, push: Option<&PushFollow>) -> Option<Millis> {
    Some(judged_by(created, push)).filter(|made| made.0 < created.0)
}

/// `t`, on this process's clock, where the entries it writes are stored: `ahead` earlier
/// ([`crate::time::ahead_of_wall`]). A value this process wrote ([`RecentFills`]) is judged
/// there, as its stored entry is: the tag times the mirror holds from the rest of the fleet are
/// on the wall clock, and on this process's own clock a revalidation the fleet made while the
/// value was being made would look older than it (docs/decisions/0036).
fn on_fleet_scale(t: Millis, ahead: f64) -> Millis {
    Millis(t.0 - ahead)
}

/// The time by which the tags judge data a regeneration that began at `began` read:
/// following by push, the time up to which the mirror vouched for the revalidations that had
/// reached Redis then ([`PushFollow::vouched_from`]); pulling, `began` (the request's own pull
/// began after it). Not stored with a `'use cache'` value this process wrote ([`RecentFills`]
/// keeps Next's stamp, which also counts its `revalidate`): worked out from it when a page or
/// an outer entry may hold it.
pub fn judged_by(began: Millis, push: Option<&PushFollow>) -> Millis {
    push.map_or(began, |p| p.vouched_from(began).min(began))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Past [`MAX_FILLS`] values, those pushed out of the ring still stamp every page whose
    /// regeneration began at most a bucket before their writes ended, whatever its tags.
    #[test]
    fn recent_fills_are_bounded_never_later() {
        let mut f = RecentFills::default();
        let always = |_: Millis| true;
        let x = canonical_tags(&["x"]);
        for i in 0..(MAX_FILLS + 10) {
            f.note(
                vec![format!("t{i}")],
                Millis(i as f64),
                Millis(1_000.0 + i as f64),
            );
        }
        assert_eq!(f.len(), MAX_FILLS);
        // `t0` was pushed out: any page is judged against it.
        assert_eq!(
            f.oldest_stale(&x, Millis(0.0), &always, false),
            Some(Millis(0.0))
        );
        // Only values whose tags the page carries, and those ended since; not stale: nothing.
        let last = vec![format!("t{}", MAX_FILLS + 9)];
        let since = Millis(1_000.0 + (MAX_FILLS + 9) as f64);
        assert_eq!(
            f.oldest_stale(&last, since, &always, false),
            Some(Millis((MAX_FILLS + 9) as f64))
        );
        assert_eq!(f.oldest_stale(&x, Millis(0.0), &|_| false, false), None);
        // A page whose regeneration began after the pushed-out writes ended is judged by
        // none of them.
        let later = Millis(1_000.0 + 10.0);
        assert_eq!(f.oldest_stale(&x, later, &always, false), None);
        // Past the second bound, in the buckets: up to a bucket late, never later.
        let mut f = RecentFills::default();
        for i in 0..(MAX_FILLS + MAX_OLDER_FILLS + 10) {
            f.note(
                vec![format!("t{i}")],
                Millis(i as f64),
                Millis(1_000.0 + i as f64),
            );
        }
        assert_eq!(f.older.len(), MAX_OLDER_FILLS);
        assert_eq!(
            f.oldest_stale(&x, Millis(0.0), &always, false),
            Some(Millis(0.0))
        );
        let later = Millis(1_000.0 + HANDOUT_BUCKET_MS * 2.0);
        assert_eq!(f.oldest_stale(&x, later, &always, false), None);
        // Tags past the byte bound are not kept: the value is judged for every page.
        let long = "t".repeat(FILL_TAG_BYTES);
        assert!(RecentFills::tags_of(&[long.as_str(), "u"]).is_empty());
        assert_eq!(
            RecentFills::tags_of(&["café"]),
            vec!["caf%C3%A9".to_owned()]
        );
        f.note(
            RecentFills::tags_of(&[long.as_str(), "u"]),
            Millis(7.0),
            later,
        );
        assert_eq!(f.oldest_stale(&x, later, &always, false), Some(Millis(7.0)));
    }

    #[test]
    fn stale_hand_outs_are_bounded() {
        let mut h = StaleHandouts::default();
        for i in 0..(MAX_STALE_TAGS + 50) {
            let t = format!("t{i}");
            for _ in 0..(HANDOUTS_PER_TAG + 2) {
                h.note([t.as_str()], Millis(1.0), Millis(i as f64));
            }
        }
        assert!(h.len() <= MAX_STALE_TAGS);
        assert!(h.by_tag.values().all(|l| l.len() <= HANDOUTS_PER_TAG + 2));
        assert!(h.dropped.len() <= HANDOUTS_PER_TAG + 2);
        assert!(h.by_tag.get("t0").is_none(), "the oldest went first");
        assert_eq!(
            h.oldest_since(["t0"], Millis(0.0)),
            Some(Millis(1.0)),
            "a dropped tag's hand-outs still stamp a page"
        );
        let last = format!("t{}", MAX_STALE_TAGS + 49);
        assert_eq!(
            h.oldest_since([last.as_str()], Millis(0.0)),
            Some(Millis(1.0))
        );
    }

    #[test]
    fn the_least_recently_handed_out_go_first() {
        // Hand-out times out of order, some equal, some negative; a batch of new tags drops
        // as many of the oldest at once. A plain model: drop the least recent one at a time.
        let mut h = StaleHandouts::default();
        let mut model: HashMap<String, f64> = HashMap::new();
        let evict = |model: &mut HashMap<String, f64>| {
            while model.len() > MAX_STALE_TAGS {
                let oldest = model
                    .iter()
                    .min_by(|a, b| a.1.total_cmp(b.1).then(a.0.cmp(b.0)))
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    model.remove(&k);
                }
            }
        };
        let n = MAX_STALE_TAGS + 300;
        for i in 0..n {
            // A permutation of 0..n (7919 is prime, n not a multiple of it), shifted below 0.
            let at = ((i * 7919) % n) as f64 - 500.0;
            let t = format!("t{i}");
            h.note([t.as_str()], Millis(0.0), Millis(at));
            model.insert(t, at);
            evict(&mut model);
        }
        let batch: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
        h.note(
            batch.iter().map(String::as_str),
            Millis(0.0),
            Millis(n as f64),
        );
        for t in &batch {
            model.insert(t.clone(), n as f64);
        }
        evict(&mut model);
        assert_eq!(h.len(), MAX_STALE_TAGS);
        let mut kept: Vec<&String> = h.by_tag.iter().map(|(k, _)| k).collect();
        kept.sort();
        let mut expected: Vec<&String> = model.keys().collect();
        expected.sort();
        assert_eq!(kept, expected);
    }

    #[test]
    fn a_hand_out_with_the_most_tags_an_entry_holds_is_bounded_in_one_pass() {
        // An entry may carry u16::MAX tags: handing it out stale must not cost a scan of the
        // table per tag dropped (that took minutes).
        let mut h = StaleHandouts::default();
        let tags: Vec<String> = (0..crate::tags::MAX_ENTRY_TAGS)
            .map(|i| format!("t{i}"))
            .collect();
        h.note(tags.iter().map(String::as_str), Millis(1.0), Millis(10.0));
        assert_eq!(h.len(), MAX_STALE_TAGS);
        let later: Vec<String> = (0..3).map(|i| format!("u{i}")).collect();
        h.note(later.iter().map(String::as_str), Millis(5.0), Millis(20.0));
        assert_eq!(h.len(), MAX_STALE_TAGS);
        // The tags dropped at 10 still stamp a regeneration begun before it, whatever its tags.
        assert_eq!(h.oldest_since(["u2"], Millis(0.0)), Some(Millis(1.0)));
        assert_eq!(h.oldest_since(["u2"], Millis(15.0)), Some(Millis(5.0)));
    }

    /// An entry with more tags than the record holds, handed out stale, pushed
    /// every other tag out of it, at a pass over all its tags per hand-out. Now one hand-out
    /// every page is judged against, and the other tags' hand-outs stay as they were.
    #[test]
    fn a_stale_hand_out_of_a_wide_entry_stamps_every_page_and_keeps_the_other_tags() {
        let mut h = StaleHandouts::default();
        h.note_answer(
            &["a"],
            Found::Stale,
            Step::ServeStale,
            Millis(50.0),
            Millis(100.0),
        );
        let wide: Vec<String> = (0..=WIDE_HANDOUT_TAGS).map(|i| format!("w{i}")).collect();
        let wide: Vec<&str> = wide.iter().map(String::as_str).collect();
        h.note_answer(
            &wide,
            Found::Stale,
            Step::ServeAsFresh,
            Millis(5.0),
            Millis(110.0),
        );
        assert_eq!(h.len(), 1, "only `a` is kept per tag");
        assert_eq!(h.oldest_since(["a"], Millis(100.0)), Some(Millis(5.0)));
        assert_eq!(
            h.oldest_since(["unrelated"], Millis(105.0)),
            Some(Millis(5.0))
        );
        assert_eq!(h.oldest_since(["unrelated"], Millis(111.0)), None);
        // At the bound, still per tag.
        let mut h = StaleHandouts::default();
        h.note_answer(
            &wide[..WIDE_HANDOUT_TAGS],
            Found::Stale,
            Step::ServeStale,
            Millis(5.0),
            Millis(110.0),
        );
        assert_eq!(h.len(), WIDE_HANDOUT_TAGS);
        assert_eq!(h.oldest_since(["unrelated"], Millis(105.0)), None);
    }

    #[test]
    fn which_answers_begin_a_regeneration() {
        assert!(regenerates(Step::ServeStale, false));
        assert!(regenerates(Step::Regenerate, false));
        assert!(regenerates(Step::Fallback, false));
        // A lease let go without a write: a miss, and this process renders it.
        assert!(regenerates(Step::Released, false));
        assert!(!regenerates(Step::Serve, false));
        assert!(!regenerates(Step::ServeAsFresh, false));
        assert!(
            regenerates(Step::Serve, true),
            "on demand: whatever it found"
        );
    }

    proptest! {
        /// Against a record of every hand-out: a page is never stamped later than the oldest
        /// entry handed out with one of its tags since its regeneration began, and (while no
        /// tag was dropped for the bound) not earlier than one bucket before that start; the
        /// buckets stay bounded. The clock runs a little behind its latest reading now and then.
        #[test]
        fn stale_hand_outs_never_stamp_later_than_what_was_handed_out(
            ops in proptest::collection::vec(
                (0u8..4, 0u8..4, -2_000.0f64..60_000.0, 0.0f64..400_000.0, any::<bool>()),
                1..200,
            ),
        ) {
            let mut h = StaleHandouts::default();
            let mut all: Vec<(u8, f64, f64)> = Vec::new();
            let mut latest = 1_000_000.0;
            for (tag, other, dt, age, query) in ops {
                latest += dt.max(0.0);
                let now = latest + dt.min(0.0);
                let name = |t: u8| format!("t{t}");
                if query {
                    let since = now - age.min(MAX_REGENERATION_MS);
                    let tags = [name(tag), name(other)];
                    let got = h.oldest_since(tags.iter().map(String::as_str), Millis(since));
                    let model = |from: f64| {
                        all.iter()
                            .filter(|(t, at, _)| (*t == tag || *t == other) && *at >= from)
                            .map(|(_, _, c)| *c)
                            .reduce(f64::min)
                    };
                    if let Some(m) = model(since) {
                        prop_assert!(got.is_some_and(|g| g.0 <= m), "{got:?} later than {m}");
                    }
                    if let Some(g) = got {
                        let floor = model(since - HANDOUT_BUCKET_MS);
                        prop_assert!(floor.is_some_and(|f| g.0 >= f), "{g:?} before {floor:?}");
                    }
                } else {
                    let created = now - age;
                    h.note([name(tag).as_str()], Millis(created), Millis(now));
                    all.push((tag, now, created));
                }
                prop_assert!(h.by_tag.values().all(|l| l.len() <= HANDOUTS_PER_TAG + 2));
            }
        }

        /// Bounded whatever the keys, and a write is never stamped later than its own time or
        /// earlier than the first unconsumed read of its key (within the age limit).
        #[test]
        fn bounded_and_never_later_than_the_write(
            ops in proptest::collection::vec((0u32..50, any::<bool>(), 0.0f64..900.0), 1..300),
        ) {
            let mut r = Regenerations::new();
            let mut first: HashMap<String, f64> = HashMap::new();
            let mut now = 0.0;
            for (k, write, dt) in ops {
                now += dt;
                let key = format!("k{k}");
                if write {
                    let c = r.created(&key, Millis(now));
                    prop_assert!(c.0 <= now);
                    match first.remove(&key) {
                        Some(t) => prop_assert_eq!(c.0, t),
                        None => prop_assert_eq!(c.0, now),
                    }
                } else {
                    r.began(&key, Millis(now));
                    first.entry(key).or_insert(now);
                }
                prop_assert!(r.len() <= MAX_REGENERATIONS);
                prop_assert!(r.started.order.len() <= 2 * MAX_REGENERATIONS + 1);
            }
        }
    }

    #[test]
    fn a_fresh_answer_stamps_a_write_with_no_known_start_once_it_fell_due() {
        let mut r = Regenerations::new();
        // Written before the answer fell due: not a regeneration Next began on its own.
        r.note_fresh("k", Millis(100.0), Millis(1_100.0));
        assert_eq!(r.created("k", Millis(1_050.0)), Millis(1_050.0));
        // After it: stamped with when that read began; consumed by the write.
        r.note_fresh("k", Millis(100.0), Millis(1_100.0));
        assert_eq!(r.created("k", Millis(1_200.0)), Millis(100.0));
        assert_eq!(r.created("k", Millis(1_300.0)), Millis(1_300.0));
        // The earliest fresh answer since the last write counts, from the earliest due: a
        // later one may come while Next regenerates after the first.
        r.note_fresh("k", Millis(100.0), Millis(61_100.0));
        r.note_fresh("k", Millis(150.0), Millis(1_150.0));
        assert_eq!(r.created("k", Millis(1_200.0)), Millis(100.0));
        // A known start wins, either order.
        r.note_fresh("k", Millis(100.0), Millis(1_100.0));
        r.began("k", Millis(1_150.0));
        assert_eq!(r.created("k", Millis(1_200.0)), Millis(1_150.0));
        r.began("k", Millis(1_150.0));
        r.note_fresh("k", Millis(1_160.0), Millis(2_000.0));
        assert_eq!(r.created("k", Millis(2_100.0)), Millis(1_150.0));
        // Too old to be the start of the regeneration being written.
        r.note_fresh("k", Millis(100.0), Millis(1_100.0));
        let late = Millis(100.0 + MAX_REGENERATION_MS + 1.0);
        assert_eq!(r.created("k", late), late);
    }

    /// Fresh answers of other keys take places in the same bounded table; the
    /// start of a regeneration in flight must not be what they push out.
    #[test]
    fn fresh_answers_of_other_keys_never_push_out_a_known_start() {
        let mut r = Regenerations::new();
        r.began("p", Millis(100.0));
        for i in 0..MAX_REGENERATIONS {
            r.note_fresh(&format!("k{i}"), Millis(200.0), Millis(1_200.0));
        }
        assert_eq!(r.created("p", Millis(500.0)), Millis(100.0));
    }

    /// An answer that fell due before a later fresh read began may be one Next is
    /// regenerating from on its own; the later answer must not hide it.
    #[test]
    fn a_later_fresh_answer_keeps_one_that_already_fell_due() {
        let mut r = Regenerations::new();
        r.note_fresh("k", Millis(100.0), Millis(1_100.0));
        r.note_fresh("k", Millis(1_200.0), Millis(61_200.0));
        assert!(r.created("k", Millis(1_300.0)).0 <= 100.0);
    }

    /// Leftovers past twice the bound are compacted away, and the oldest live key is still
    /// the first dropped after that.
    #[test]
    fn the_order_stays_bounded_and_oldest_first_across_compaction() {
        let mut r = Regenerations::new();
        for i in 0..(2 * MAX_REGENERATIONS + 5) {
            let at = Millis(i as f64);
            r.created("x", at);
            r.began("x", at);
            assert!(r.started.order.len() <= 2 * MAX_REGENERATIONS + 1);
        }
        let x_at = Millis((2 * MAX_REGENERATIONS + 4) as f64);
        for i in 0..MAX_REGENERATIONS {
            r.began(&format!("k{i}"), Millis(x_at.0 + 1.0 + i as f64));
        }
        assert_eq!(r.len(), MAX_REGENERATIONS);
        let now = Millis(x_at.0 + 30_000.0);
        assert_eq!(r.created("x", now), now, "the oldest, dropped");
        assert_eq!(r.created("k0", now), Millis(x_at.0 + 1.0));
    }

    #[test]
    fn the_oldest_are_dropped_past_the_bound() {
        let mut r = Regenerations::new();
        for i in 0..(MAX_REGENERATIONS + 10) {
            r.began(&format!("k{i}"), Millis(i as f64));
        }
        assert_eq!(r.len(), MAX_REGENERATIONS);
        let now = Millis(20_000.0);
        assert_eq!(r.created("k0", now), now, "dropped");
        let last = MAX_REGENERATIONS + 9;
        assert_eq!(r.created(&format!("k{last}"), now), Millis(last as f64));
    }
}
