//! The engine with its regen part: tests moved from `regen.rs`, which does not know the engine.

use crate::lease::Step;
use crate::regen::*;
use crate::time::Millis;

#[test]
fn the_earliest_unconsumed_read_stamps_the_write() {
    let mut r = Regenerations::new();
    assert_eq!(r.created("k", Millis(50.0)), Millis(50.0), "none known");
    r.began("k", Millis(100.0));
    r.began("k", Millis(200.0));
    assert_eq!(r.created("k", Millis(300.0)), Millis(100.0));
    assert_eq!(r.created("k", Millis(400.0)), Millis(400.0), "consumed");
    // Never later than the write.
    r.began("k", Millis(500.0));
    assert_eq!(r.created("k", Millis(450.0)), Millis(450.0));
    // Too old to be this write's start.
    r.began("k", Millis(1_000.0));
    let late = Millis(1_000.0 + MAX_REGENERATION_MS + 1.0);
    assert_eq!(r.created("k", late), late);
    // ... or replaced by a read that long after it.
    r.began("k", Millis(1_000.0));
    r.began("k", late);
    assert_eq!(r.created("k", Millis(late.0 + 5.0)), late);
    r.began("k", Millis(f64::NAN));
    assert!(r.is_empty());
}

#[test]
fn a_write_is_stamped_with_its_own_requests_read() {
    // One answer's: a start (`-inf`: Next regenerates after it), else a fresh answer.
    let own = |at: f64, due: f64| {
        if due == f64::NEG_INFINITY {
            Own {
                start: at,
                ..Own::NONE
            }
        } else {
            Own {
                fresh_at: at,
                fresh_due: due,
                ..Own::NONE
            }
        }
    };
    let mut r = Regenerations::new();
    // Two requests regenerate "k": reads at 100 and 200; the table keeps the earliest.
    r.began("k", Millis(100.0));
    r.began("k", Millis(200.0));
    // The second request writes first, with its own read: stamped 200, the first's record
    // left for the first.
    let second = own(200.0, f64::NEG_INFINITY);
    assert_eq!(
        r.started_for("k", second, Millis(300.0)),
        Some(Millis(200.0))
    );
    assert_eq!(r.len(), 1);
    // The first writes with its own read, which is the table's: consumed.
    let first = own(100.0, f64::NEG_INFINITY);
    assert_eq!(
        r.started_for("k", first, Millis(310.0)),
        Some(Millis(100.0))
    );
    assert!(r.is_empty());
    // A fresh answer (read at 400, due at 1,400) stamps its request's write only once due.
    let fresh = own(400.0, 1_400.0);
    r.began("k", Millis(900.0));
    assert_eq!(
        r.started_for("k", fresh, Millis(1_000.0)),
        Some(Millis(900.0)),
        "not yet due: the table's"
    );
    r.began("k", Millis(900.0));
    assert_eq!(
        r.started_for("k", fresh, Millis(1_500.0)),
        Some(Millis(400.0)),
        "due: its own, before a later start"
    );
    // Never later than the write, nor older than a regeneration can be.
    assert_eq!(
        r.started_for("j", own(500.0, f64::NEG_INFINITY), Millis(450.0)),
        Some(Millis(450.0))
    );
    let late = Millis(500.0 + MAX_REGENERATION_MS + 1.0);
    assert_eq!(
        r.started_for("j", own(500.0, f64::NEG_INFINITY), late),
        None
    );
    assert_eq!(r.started_for("j", Own::NONE, Millis(600.0)), None);
    // A value written back unchanged: created when it was shown as created, however long ago.
    let back = Own {
        written_back: 100.0,
        ..own(5_000.0, f64::NEG_INFINITY)
    };
    let much_later = Millis(100.0 + 10.0 * MAX_REGENERATION_MS);
    assert_eq!(r.started_for("j", back, much_later), Some(Millis(100.0)));
}

/// A request's answers folded as the host keeps them ([`Own::least`]), then decided by the
/// core: the earlier of the earliest start and the earliest fresh answer once due (Next may
/// have begun the regeneration on its second look of the fresh answer, which a later stale
/// read then joined); a start too old to be a regeneration's leaves the write to the table,
/// not to a later fresh answer (whose time may come after a revalidation the regeneration
/// missed).
#[test]
fn the_core_decides_between_a_requests_folded_reads() {
    let start = |at: f64| Own {
        start: at,
        ..Own::NONE
    };
    let fresh = |at: f64, due: f64| Own {
        fresh_at: at,
        fresh_due: due,
        ..Own::NONE
    };
    // Fresh at 100 (due 1,000), stale reads at 300 and 200: the earliest start, 200.
    let folded = fresh(100.0, 1_000.0)
        .least(start(300.0))
        .least(start(200.0))
        .least(fresh(150.0, 900.0));
    assert_eq!(folded.start, 200.0);
    assert_eq!((folded.fresh_at, folded.fresh_due), (100.0, 900.0));
    assert!(
        folded.written_back.is_nan(),
        "a served value's stamp is not folded per key"
    );
    let mut r = Regenerations::new();
    // Written before the fresh answers fell due: the start.
    assert_eq!(
        r.started_for("k", folded, Millis(400.0)),
        Some(Millis(200.0))
    );
    // Written after: the fresh answer may have begun it, the earlier.
    assert_eq!(
        r.started_for("k", folded, Millis(950.0)),
        Some(Millis(100.0))
    );
    // Only fresh answers: the earliest, once the earliest due passed.
    let only_fresh = fresh(100.0, 1_000.0).least(fresh(150.0, 900.0));
    assert_eq!(r.started_for("k", only_fresh, Millis(800.0)), None);
    assert_eq!(
        r.started_for("k", only_fresh, Millis(950.0)),
        Some(Millis(100.0))
    );
    // A start older than a regeneration can be: the table decides (here: nothing known).
    let old = start(0.0).least(fresh(MAX_REGENERATION_MS, MAX_REGENERATION_MS));
    let now = Millis(MAX_REGENERATION_MS + 1.0);
    assert_eq!(r.started_for("k", old, now), None);
    r.began("k", Millis(MAX_REGENERATION_MS - 10.0));
    assert_eq!(
        r.started_for("k", old, now),
        Some(Millis(MAX_REGENERATION_MS - 10.0))
    );
}

/// The whole way through the engine: a read that answers "missing", a revalidation while
/// the page renders, the write. The entry reads as expired, not fresh; without the read it
/// would be stamped with the write time and read as fresh.
#[test]
fn a_revalidation_during_the_regeneration_leaves_the_entry_invalid() {
    use crate::incremental::{Descriptor, IncrementalSet, IncrementalVerdict, ValueKind};
    use crate::tags::Revalidation;
    use crate::{Config, Engine};
    const T: f64 = 1_795_690_530_000.0;
    let desc = Descriptor::from_wire(ValueKind::AppPage as u8, 0, 0).unwrap();
    let judge = |noted: bool, rev: Revalidation| {
        let mut e = Engine::new(Config::default()).unwrap();
        // A mirror complete as it is: no shared tag state to wait for.
        e.mark_standalone();
        if noted {
            e.note_incremental_read("/p", Step::Regenerate, false, Millis(T));
        }
        e.plan_tag_update(&["t"], &rev, Millis(T + 100.0), "ep")
            .unwrap();
        let now = Millis(T + 200.0);
        let set = IncrementalSet {
            desc,
            revalidate: 60.0,
            expire: 3600.0,
            tags: &["t"],
            parts: &[2, 3],
            created: e.incremental_created("/p", ValueKind::AppPage, &["t"], now),
            made: None,
            now,
        };
        let plan = e.plan_incremental_set("/p", &set).unwrap();
        let mut v = plan.header;
        v.extend_from_slice(&[0; 5]);
        e.inspect_incremental("/p", &v, v.len(), &[], f64::NAN, Millis(T + 300.0))
            .0
    };
    assert_eq!(
        judge(true, Revalidation::Expire),
        IncrementalVerdict::Expired
    );
    let stale = Revalidation::Stale {
        expire_seconds: Some(31_536_000.0),
    };
    match judge(true, stale) {
        IncrementalVerdict::Serve(s) => assert!(s.stale, "stale, regenerated again"),
        other => panic!("{other:?}"),
    }
    // Unknown start: the write time, as before (fresh).
    match judge(false, stale) {
        IncrementalVerdict::Serve(s) => assert!(!s.stale),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_page_written_after_a_stale_hand_out_of_its_data_is_no_newer_than_that_data() {
    use crate::lease::Found;
    use crate::{Config, Engine};
    let mut e = Engine::new(Config::default()).unwrap();
    // The page's regeneration begins at 1000; a request is handed the stale entry
    // (created at 10) as fresh at 1005 and the page joins it.
    e.note_incremental_read("/p", Step::ServeStale, false, Millis(1_000.0));
    e.note_use_cache_answer(
        &["shared"],
        Found::Stale,
        Step::ServeAsFresh,
        Millis(10.0),
        Millis(1_005.0),
    );
    let page = crate::incremental::ValueKind::AppPage;
    assert_eq!(
        e.incremental_created("/p", page, &["_N_T_/p", "shared"], Millis(1_200.0)),
        Millis(10.0)
    );
    // A fetch result holds no 'use cache' data.
    e.note_incremental_read("/f", Step::Regenerate, false, Millis(1_000.0));
    let fetch = crate::incremental::ValueKind::Fetch;
    assert_eq!(
        e.incremental_created("/f", fetch, &["shared"], Millis(1_200.0)),
        Millis(1_000.0)
    );
    // Another page without that tag, or one whose regeneration began after the
    // hand-out, keeps its own start.
    e.note_incremental_read("/q", Step::Regenerate, false, Millis(1_000.0));
    assert_eq!(
        e.incremental_created("/q", page, &["other"], Millis(1_200.0)),
        Millis(1_000.0)
    );
    e.note_incremental_read("/r", Step::Regenerate, false, Millis(1_010.0));
    assert_eq!(
        e.incremental_created("/r", page, &["shared"], Millis(1_200.0)),
        Millis(1_010.0)
    );
    // A fresh hand-out, or a stale entry that this read regenerates itself, counts not.
    e.note_use_cache_answer(
        &["x"],
        Found::Fresh,
        Step::Serve,
        Millis(10.0),
        Millis(2_000.0),
    );
    e.note_use_cache_answer(
        &["x"],
        Found::Stale,
        Step::Regenerate,
        Millis(10.0),
        Millis(2_000.0),
    );
    e.note_incremental_read("/s", Step::Regenerate, false, Millis(1_900.0));
    assert_eq!(
        e.incremental_created("/s", page, &["x"], Millis(2_100.0)),
        Millis(1_900.0)
    );
}

/// A stale `'use cache'` entry carries its tags in their canonical (header-safe) form, and a
/// page's write may name the same tag as Next gave it (raw, outside printable ASCII): the page
/// is still stamped no later than the entry it may hold.
#[test]
fn a_page_is_stamped_by_a_hand_out_of_the_same_tag_in_another_form() {
    use crate::incremental::ValueKind;
    use crate::lease::Found;
    use crate::tags::canonical_tag;
    let mut h = StaleHandouts::default();
    let raw = "_N_T_/café";
    let stored = canonical_tag(raw).into_owned();
    assert_ne!(stored, raw);
    h.note_answer(
        &[stored.as_str()],
        Found::Stale,
        Step::ServeAsFresh,
        Millis(100.0),
        Millis(1_000.0),
    );
    let mut r = Regenerations::new();
    r.began("/p", Millis(900.0));
    let mirror = crate::tags::TagMirror::new();
    let created = incremental_created(
        &mut r,
        (&h, &RecentFills::default(), &mirror, None),
        ("/p", crate::regen::Own::NONE),
        ValueKind::AppPage,
        &[raw],
        (Millis(2_000.0), 0.0),
    );
    assert_eq!(created, Millis(100.0));
}

/// Each tag remembers its 8 most recent stale hand-outs, so a page that joined a
/// stale entry (Next 16.4's cross-request join) loses that entry's creation time once 8 more
/// stale entries with one of its tags are handed out before the page is written, here entries
/// that a revalidation of another tag made stale after they were created. The page is then
/// stamped with their later creation time, after the revalidation that made the joined entry
/// stale, and reads as fresh although it holds data from before that revalidation.
#[test]
fn a_page_that_joined_a_stale_entry_stays_stale_after_eight_more_stale_hand_outs_of_its_tag() {
    use crate::incremental::{Descriptor, IncrementalSet, IncrementalVerdict, ValueKind};
    use crate::lease::Found;
    use crate::tags::Revalidation;
    use crate::{Config, Engine};
    const T: f64 = 1_795_690_530_000.0;
    let mut e = Engine::new(Config::default()).unwrap();
    e.mark_standalone();
    let profile = Revalidation::Stale {
        expire_seconds: Some(31_536_000.0),
    };
    // Entry A (tag `shared`) is created at T, made stale by a revalidation of `shared` at
    // T + 500; entries B (tags `shared`, `other`) are created at T + 900, made stale by a
    // revalidation of `other` at T + 950.
    e.plan_tag_update(&["shared"], &profile, Millis(T + 500.0), "ep")
        .unwrap();
    e.plan_tag_update(&["other"], &profile, Millis(T + 950.0), "ep")
        .unwrap();
    // The page's regeneration begins at T + 1000 and joins A, handed out stale as fresh.
    e.note_incremental_read("/p", Step::ServeStale, false, Millis(T + 1_000.0));
    e.note_use_cache_answer(
        &["shared"],
        Found::Stale,
        Step::ServeAsFresh,
        Millis(T),
        Millis(T + 1_005.0),
    );
    // Eight other requests are handed B entries while the page renders.
    for i in 0..8 {
        e.note_use_cache_answer(
            &["shared", "other"],
            Found::Stale,
            Step::ServeAsFresh,
            Millis(T + 900.0),
            Millis(T + 1_010.0 + f64::from(i)),
        );
    }
    let now = Millis(T + 1_200.0);
    let page_tags = ["_N_T_/p", "shared"];
    let created = e.incremental_created("/p", ValueKind::AppPage, &page_tags, now);
    let desc = Descriptor::from_wire(ValueKind::AppPage as u8, 0, 0).unwrap();
    let set = IncrementalSet {
        desc,
        revalidate: 60.0,
        expire: 3600.0,
        tags: &page_tags,
        parts: &[2, 3],
        created,
        made: None,
        now,
    };
    let mut v = e.plan_incremental_set("/p", &set).unwrap().header;
    v.extend_from_slice(&[0; 5]);
    let (verdict, _) = e.inspect_incremental("/p", &v, v.len(), &[], f64::NAN, Millis(T + 1_300.0));
    match verdict {
        IncrementalVerdict::Serve(s) => assert!(
            s.stale,
            "the page holds A's data from before the revalidation of `shared` at T + 500, \
             but is stamped {} ms after T and reads as fresh",
            created.0 - T
        ),
        IncrementalVerdict::Expired => {}
        other => panic!("{other:?}"),
    }
}
