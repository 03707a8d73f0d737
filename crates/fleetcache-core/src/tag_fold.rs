//! The bound on a process's tag mirror: past it, the least recently revalidated records are
//! folded into a fixed table of buckets.
//!
//! Every process keeps the live tag state (the tags revalidated within the longest entry
//! lifetime), which a fleet with a million live tags made about 430 MiB per process, outside
//! every other bound. The mirror keeps at most a set number of records exactly; past it, it
//! folds the least recently updated ones, each into the bucket its tag hashes to, a bucket
//! holding the merge of what it took ([`TagRecord::merge`], a max or min per field). A tag is
//! then judged by its own record merged with its bucket: merging never weakens a record, so no
//! entry is judged fresher than the exact mirror would judge it. The cost is false
//! staleness: an entry made before a folded revalidation, with a tag sharing its bucket, is
//! stale (or expired) once more and regenerated. The oldest records are folded first, so that
//! falls on entries older than the newest revalidations the mirror still holds exactly.
//!
//! Folded records cannot be given back one by one to a Redis that lost its tag state. Their
//! merge is given back instead, as the record of [`FOLDED_TAG`], which every tagged entry is
//! judged by in every process ([`crate::tags::TagMirror::evaluate`]): after such a loss,
//! entries made before those revalidations are stale (or expired) by any tag.

use crate::keyed::KeyedVec;
use crate::strhash::HashSeed;
use crate::tag_record::TagRecord;
use crate::time::Millis;

/// The tag whose record applies to every tagged entry: the merge of records a process folded
/// and gave back to a Redis that had lost them. Its first byte is outside the bytes a
/// canonical tag holds (tab and printable ASCII, [`crate::tags::canonical_tag`]), so no tag
/// Next gives can name it, and the mirror takes it from Redis as it is.
pub const FOLDED_TAG: &str = "\u{1}folded";

/// Records the mirror keeps exactly unless configured otherwise (`Config::tag_mirror_max_tags`):
/// about 30 to 45 MiB of a process's memory (bench/REPORT.md, "Loading the whole tag state").
pub const DEFAULT_MAX_TAGS: u32 = 100_000;

/// Buckets of the fold table: 160 KiB once anything is folded, nothing before.
pub const FOLD_BUCKETS: usize = 4096;

/// Records folded out of a map of exact ones, by the hash of their tag.
#[derive(Clone, Debug, Default)]
pub struct Folded {
    /// Empty until the first fold.
    buckets: Vec<TagRecord>,
    /// The merge of every bucket.
    all: TagRecord,
    /// Records folded, over the table's life.
    count: u64,
}

impl Folded {
    /// True when nothing is folded.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Records folded over the table's life (one folded twice counts twice).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The merge of everything folded, when anything is.
    pub fn all(&self) -> Option<&TagRecord> {
        (!self.is_empty()).then_some(&self.all)
    }

    fn index(seed: &HashSeed, tag: &str) -> usize {
        // Below FOLD_BUCKETS, so the cast is exact.
        (seed.hash_str(tag) % FOLD_BUCKETS as u64) as usize
    }

    /// The bucket `tag` falls in, when anything is folded: a record at least as strong as any
    /// record of `tag` folded here.
    pub fn bucket(&self, seed: &HashSeed, tag: &str) -> Option<&TagRecord> {
        if self.is_empty() {
            return None;
        }
        self.buckets.get(Self::index(seed, tag))
    }

    /// Folds `record`, the record of `tag`.
    pub fn fold(&mut self, seed: &HashSeed, tag: &str, record: &TagRecord) {
        self.buckets.resize(FOLD_BUCKETS, TagRecord::default());
        if let Some(bucket) = self.buckets.get_mut(Self::index(seed, tag)) {
            bucket.merge(record);
        }
        self.all.merge(record);
        self.count += 1;
    }

    /// Folds in what `other`, a table hashed with the same seed, holds.
    pub fn absorb(&mut self, other: &Folded) {
        if other.is_empty() {
            return;
        }
        self.buckets.resize(FOLD_BUCKETS, TagRecord::default());
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.merge(theirs);
        }
        self.all.merge(&other.all);
        self.count += other.count;
    }

    /// The tags are hashed with another seed from now on: a tag may fall in another bucket,
    /// so every bucket takes what all of them hold.
    pub fn rehash(&mut self) {
        let all = self.all;
        for bucket in &mut self.buckets {
            *bucket = all;
        }
    }

    /// Empties the buckets last updated more than `older_than_ms` before `now` (the rule the
    /// exact records are pruned by: every entry such a revalidation could touch has reached
    /// its TTL); frees the table when none is left.
    pub fn prune(&mut self, now: Millis, older_than_ms: f64) {
        self.all = TagRecord::default();
        for bucket in &mut self.buckets {
            if bucket.updated_at.0 + older_than_ms < now.0 {
                *bucket = TagRecord::default();
            }
            self.all.merge(bucket);
        }
        if self.all == TagRecord::default() {
            self.buckets = Vec::new();
        }
    }
}

/// [`KeyedVec::retain`] through one closure type: the pruning and the folding of tag records
/// share one copy of the code (docs/decisions/0028-wasm-size-budget.md). The map is then
/// compacted ([`KeyedVec::compact`]): what it no longer holds leaves no room behind.
pub fn retain_records(
    records: &mut KeyedVec<TagRecord>,
    keep: &mut dyn FnMut(&str, &mut TagRecord) -> bool,
) {
    records.retain(keep);
    records.compact();
}

/// The exact map's size once a fold has run: a quarter below the bound, so a fold runs once
/// per that many new tags, not on every one past the bound.
fn keep_after_fold(max_tags: usize) -> usize {
    max_tags.saturating_sub(max_tags / 4).max(1)
}

/// When `tags` holds more than `max_tags` records besides those `pinned` (and
/// [`FOLDED_TAG`]'s), which stay, folds the least recently updated of the others into
/// `folded` until a quarter less than `max_tags` of them remain; returns how many it folded.
/// `kept` is how many pinned records the caller knows of, so that a map within its bound is
/// not scanned (a load folds per page). Each removed tag is passed to `removed` (the caller's
/// other maps drop it too).
pub fn fold_past(
    tags: &mut KeyedVec<TagRecord>,
    max_tags: usize,
    folded: &mut Folded,
    seed: &HashSeed,
    pinned: &dyn Fn(&str) -> bool,
    kept: usize,
    removed: &mut dyn FnMut(&str),
) -> usize {
    if tags.len().saturating_sub(kept) <= max_tags {
        return 0;
    }
    // Each record's update time in whole ms (records hold whole ms below 2^53); the pinned
    // ones, and [`FOLDED_TAG`]'s, count as the newest: they stay exact. (FOLDED_TAG's is one
    // record: folded, a whole state could not show it, and it would be given back again and
    // again.)
    let at = |tag: &str, r: &TagRecord| {
        if tag == FOLDED_TAG || pinned(tag) {
            u64::MAX
        } else {
            r.updated_at.0.max(0.0) as u64
        }
    };
    let mut times = Vec::with_capacity(tags.len());
    for (tag, r) in tags.iter() {
        times.push(at(tag, r));
    }
    let others = times.iter().filter(|&&t| t != u64::MAX).count();
    if others <= max_tags {
        return 0;
    }
    let excess = others - keep_after_fold(max_tags);
    // The smallest time with at least `excess` records at or before it, by bisection: no
    // sort, whose code the wasm module would carry (docs/decisions/0028-wasm-size-budget.md).
    let at_or_before = |t: u64| times.iter().filter(|&&x| x <= t).count();
    let (mut lo, mut hi) = (0, u64::MAX);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if at_or_before(mid) >= excess {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    // Of the records updated at exactly `lo`, as many as make up the excess (`lo` below the
    // pinned ones' time: never one of them).
    let mut ties = excess.saturating_sub(times.iter().filter(|&&x| x < lo).count());
    let mut count = 0;
    retain_records(tags, &mut |tag, record| {
        let t = at(tag, record);
        let fold = t < lo || (t == lo && t != u64::MAX && ties > 0);
        if fold {
            if t == lo {
                ties -= 1;
            }
            folded.fold(seed, tag, record);
            removed(tag);
            count += 1;
        }
        !fold
    });
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(stale: f64, expired: f64, updated: f64) -> TagRecord {
        TagRecord {
            stale: Millis(stale),
            expired: Millis(expired),
            updated_at: Millis(updated),
            ..TagRecord::default()
        }
    }

    #[test]
    fn folds_the_least_recently_updated_down_to_a_quarter_below_the_bound() {
        let seed = HashSeed::default();
        let mut tags = KeyedVec::new();
        for i in 0..9u32 {
            let t = f64::from(i);
            tags.insert(&format!("t{i}"), record(t, 0.0, t));
        }
        let mut folded = Folded::default();
        let mut gone = Vec::new();
        assert_eq!(
            fold_past(&mut tags, 9, &mut folded, &seed, &|_| false, 0, &mut |_| ()),
            0
        );
        assert!(folded.is_empty());
        let n = fold_past(
            &mut tags,
            8,
            &mut folded,
            &seed,
            &|_| false,
            0,
            &mut |t: &str| gone.push(t.to_owned()),
        );
        assert_eq!(n, 3, "9 records, bound 8: down to 6");
        gone.sort();
        assert_eq!(gone, ["t0", "t1", "t2"]);
        assert_eq!(tags.len(), 6);
        assert_eq!(folded.all().map(|r| r.stale), Some(Millis(2.0)));
        assert_eq!(folded.count(), 3);
    }

    #[test]
    fn ties_fold_only_as_many_as_the_excess() {
        let seed = HashSeed::default();
        let mut tags = KeyedVec::new();
        // One revalidation of many tags: every record has the same update time.
        for i in 0..100u32 {
            tags.insert(&format!("t{i}"), record(5.0, 0.0, 5.0));
        }
        let mut folded = Folded::default();
        assert_eq!(
            fold_past(
                &mut tags,
                40,
                &mut folded,
                &seed,
                &|_| false,
                0,
                &mut |_| ()
            ),
            70
        );
        assert_eq!(tags.len(), 30);
    }

    #[test]
    fn the_folded_tag_is_never_folded() {
        let seed = HashSeed::default();
        let mut tags = KeyedVec::new();
        tags.insert(FOLDED_TAG, record(1.0, 1.0, 1.0));
        for i in 0..10u32 {
            tags.insert(&format!("t{i}"), record(50.0, 0.0, 50.0));
        }
        let mut folded = Folded::default();
        // Oldest of all, yet it stays, and does not count against the bound.
        fold_past(&mut tags, 1, &mut folded, &seed, &|_| false, 0, &mut |_| ());
        assert_eq!(tags.len(), 2);
        assert!(tags.contains_key(FOLDED_TAG));
        // Pinned records stay whatever their age; the others go.
        for i in 0..10u32 {
            tags.insert(&format!("t{i}"), record(50.0, 0.0, f64::from(i)));
        }
        fold_past(
            &mut tags,
            2,
            &mut folded,
            &seed,
            &|t| t == "t0" || t == "t1",
            0,
            &mut |_| (),
        );
        // FOLDED_TAG, the two pinned, and two of the others (the bound).
        assert_eq!(tags.len(), 5);
        assert!(tags.contains_key("t0") && tags.contains_key("t1"));
        assert!(tags.contains_key("t8") && tags.contains_key("t9"));
    }

    #[test]
    fn pruning_empties_old_buckets_and_frees_the_table() {
        let seed = HashSeed::default();
        let mut folded = Folded::default();
        folded.fold(&seed, "a", &record(10.0, 0.0, 10.0));
        folded.fold(&seed, "b", &record(50.0, 0.0, 50.0));
        assert_ne!(Folded::index(&seed, "a"), Folded::index(&seed, "b"));
        folded.prune(Millis(70.0), 30.0);
        assert_eq!(folded.all().map(|r| r.stale), Some(Millis(50.0)));
        assert_eq!(folded.bucket(&seed, "a"), Some(&TagRecord::default()));
        folded.prune(Millis(100.0), 30.0);
        assert!(folded.is_empty());
        assert_eq!(folded.bucket(&seed, "b"), None);
    }

    fn any_record() -> impl Strategy<Value = TagRecord> {
        (0u32..50, 0u32..50, 0u32..50, 0u32..60, 0u32..50).prop_map(|(s, e, pa, pe, u)| TagRecord {
            stale: Millis(f64::from(s)),
            expired: Millis(f64::from(e)),
            pending_at: Millis(if pe > 0 { f64::from(pa) } else { 0.0 }),
            pending_exp: Millis(f64::from(pe)),
            updated_at: Millis(f64::from(u)),
        })
    }

    proptest! {
        /// Whatever is folded, a tag's record merged with its bucket judges every entry at
        /// least as strongly as its own record did, before and after a rehash.
        #[test]
        fn a_folded_record_is_never_weakened(
            records in proptest::collection::vec((0u8..40, any_record()), 1..80),
            max_tags in 1usize..20,
            stamp in 0u32..60,
            now in 0u32..120,
        ) {
            let seed = HashSeed::default();
            let mut exact: KeyedVec<TagRecord> = KeyedVec::new();
            let mut truth: KeyedVec<TagRecord> = KeyedVec::new();
            let mut folded = Folded::default();
            for (tag, record) in &records {
                let tag = format!("t{tag}");
                exact.get_or_insert_with(&tag, TagRecord::default).merge(record);
                truth.get_or_insert_with(&tag, TagRecord::default).merge(record);
                fold_past(&mut exact, max_tags, &mut folded, &seed, &|_| false, 0, &mut |_| ());
                prop_assert!(exact.len() <= max_tags);
            }
            let check = |folded: &Folded, seed: &HashSeed| -> Result<(), TestCaseError> {
                for (tag, want) in truth.iter() {
                    let mut known = exact.get(tag).copied().unwrap_or_default();
                    if let Some(bucket) = folded.bucket(seed, tag) {
                        known.merge(bucket);
                    }
                    let (stamp, now) = (Millis(f64::from(stamp)), Millis(f64::from(now)));
                    prop_assert!(known.freshness(stamp, now) >= want.freshness(stamp, now));
                    prop_assert!(known.effective_expired(now) >= want.effective_expired(now));
                }
                Ok(())
            };
            check(&folded, &seed)?;
            folded.rehash();
            check(&folded, &HashSeed::from_bytes([7; 16]))?;
        }
    }
}
