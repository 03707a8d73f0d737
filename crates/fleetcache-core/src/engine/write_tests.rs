//! The write machine, stepped through the engine with a fake clock: every branch of a `set`.

use crate::config::Config;
use crate::engine::Engine;
use crate::envelope::decode_header;
use crate::keys::Interface;
use crate::lease::{Step, LEASE_RELEASE, LEASE_WRITE};
use crate::read_machine::Failure;
use crate::stats::{Surface, WriteOutcome};
use crate::time::Millis;
use crate::write_machine::{
    Store, WriteDone, WriteInput, WriteMachine, WriteRequest, WriteResult, WriteStep,
};

const UC: Interface<'static> = Interface::UseCache("default");
const NOW: Millis = Millis(1_000_000.0);

/// An engine whose host prints debug lines: the tests read the machine's lines.
fn engine() -> Engine {
    engine_debugging(true)
}

fn engine_debugging(debug: bool) -> Engine {
    Engine::new(Config {
        debug,
        ..Config::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn use_cache<'a>(tags: &'a [&'a str], revalidate: f64, expire: f64) -> WriteRequest<'a> {
    WriteRequest::UseCache {
        iface: UC,
        cache_key: "k",
        tags,
        timestamp: NOW,
        revalidate,
        expire,
        stale: 30.0,
        payload_len: 10,
    }
}

/// The outer `'use cache'` entry of the joined-fill tests: tagged `shared` and `outer`, its
/// invocation begun at NOW + 200.
fn outer_use_cache() -> WriteRequest<'static> {
    WriteRequest::UseCache {
        iface: UC,
        cache_key: "outer",
        tags: &["shared", "outer"],
        timestamp: Millis(NOW.0 + 200.0),
        revalidate: 60.0,
        expire: 3600.0,
        stale: 30.0,
        payload_len: 10,
    }
}

fn incremental<'a>(kind: u8, flags: u8, parts: &'a [u32]) -> WriteRequest<'a> {
    WriteRequest::Incremental {
        cache_key: "/page",
        kind,
        flags,
        segments: 0,
        tags: &[],
        revalidate: 60.0,
        expire: 3600.0,
        parts,
        own: crate::regen::Own::NONE,
    }
}

fn start(e: &mut Engine, req: WriteRequest<'_>) -> (WriteMachine, WriteStep) {
    let mut m = e.write_start(req, NOW);
    let step = e.write_first(&mut m, NOW);
    (m, step)
}

fn store(step: WriteStep) -> Store {
    match step {
        WriteStep::Store(s) => s,
        other => panic!("expected Store, got {other:?}"),
    }
}

fn done(step: WriteStep) -> WriteDone {
    match step {
        WriteStep::Done(d) => d,
        other => panic!("expected Done, got {other:?}"),
    }
}

fn hold_lease(e: &mut Engine, iface: &Interface<'_>, cache_key: &str) {
    e.lease_won(iface, cache_key, "tok", NOW);
    assert!(e.holds_lease(iface, cache_key, NOW));
}

#[test]
fn a_cacheable_entry_is_stored_with_a_plain_set_and_kept_in_the_tier() {
    let mut e = engine();
    let (mut m, step) = start(&mut e, use_cache(&["a"], 60.0, 3600.0));
    let s = store(step);
    assert_eq!(s.key, e.entry_key(&UC, "k"));
    assert_eq!(s.ttl_ms, 3_600_000);
    assert!(s.script.is_none(), "no lease held: a plain SET");
    // The command runs under a write's budget; the caller waits a read's at most.
    assert_eq!(s.budget_ms, e.config().write_timeout_ms);
    assert_eq!(s.wait_ms, e.config().read_timeout_ms);
    assert_eq!(s.keep_until, Millis(NOW.0 + 3_600_000.0));
    assert!(!s.outage_only);
    let header =
        decode_header(&s.header, s.header.len() + 10).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(header.meta.tags, vec!["a".to_owned()]);
    assert_eq!(m.value_len(), Some(s.header.len() as u64 + 10));
    let d = done(e.write_step(&mut m, WriteInput::Sent, NOW));
    assert_eq!(d.result, WriteResult::Stored);
    assert!(!d.mark_local);
    let line = d.log.unwrap_or_default();
    assert!(line.starts_with(&format!("set {} ", s.key)), "{line}");
    assert!(line.ends_with(" B ttl 3600 s"), "{line}");
    assert!(d.error.is_none() && d.dropped_tags.is_none());
    assert!(m.is_done());
    assert_eq!(e.stats().writes(Surface::UseCache, WriteOutcome::Stored), 1);
}

#[test]
fn the_lease_holder_writes_and_releases_in_one_script() {
    let mut e = engine();
    hold_lease(&mut e, &UC, "k");
    let (mut m, step) = start(&mut e, use_cache(&[], 60.0, 3600.0));
    let s = store(step);
    let call = s
        .script
        .unwrap_or_else(|| panic!("a held lease is written with its release"));
    assert_eq!(call.sha1, LEASE_WRITE.sha1());
    assert_eq!(
        call.keys,
        vec![s.key.clone(), e.namespace().lease_key(&UC, "k")]
    );
    assert_eq!(call.args, vec!["3600000".to_owned(), "tok".to_owned()]);
    assert!(e.lease_table().is_empty(), "the token is spent");
    // A timeout: not stored as far as this process knows; its copy is its own.
    let d = done(e.write_step(&mut m, WriteInput::Failed(Failure::Timeout), NOW));
    assert_eq!(d.result, WriteResult::Failed);
    assert!(d.mark_local);
    assert_eq!(d.key.as_deref(), Some(s.key.as_str()));
    assert_eq!(d.error.as_deref(), Some("set failed, entry not stored"));
}

#[test]
fn a_write_the_breaker_holds_back_is_kept_here_without_an_error_line() {
    let mut e = engine();
    let (mut m, step) = start(&mut e, use_cache(&[], 60.0, 3600.0));
    store(step);
    let d = done(e.write_step(&mut m, WriteInput::Failed(Failure::CircuitOpen), NOW));
    assert_eq!(d.result, WriteResult::Unsent);
    assert!(d.mark_local);
    assert!(d.error.is_none());
    assert!(d.log.is_some());
}

/// A lease holder's write held back by the host's transport (its bound on values
/// waiting for replies) was never sent, and its lease, whose token the write had taken, stayed
/// until it expired: every follower waited out its wait. Redis answers meanwhile, so the lease
/// is released by a command without the value; a write without a lease just ends.
#[test]
fn a_held_back_write_releases_its_lease_and_is_kept_here() {
    let mut e = engine();
    hold_lease(&mut e, &UC, "k");
    let (mut m, step) = start(&mut e, use_cache(&[], 60.0, 3600.0));
    let s = store(step);
    let step = e.write_step(&mut m, WriteInput::Failed(Failure::HeldBack), NOW);
    let WriteStep::Release { call, .. } = step else {
        panic!("expected the lease's release, got {step:?}");
    };
    assert_eq!(call.sha1, LEASE_RELEASE.sha1());
    assert_eq!(call.keys, vec![e.namespace().lease_key(&UC, "k")]);
    assert_eq!(call.args, vec!["tok".to_owned()]);
    let d = done(e.write_step(&mut m, WriteInput::Sent, NOW));
    assert_eq!(d.result, WriteResult::Unsent);
    assert!(d.mark_local);
    assert!(
        d.error.is_none(),
        "the transport logs the bound, not each write"
    );
    assert_eq!(d.key.as_deref(), Some(s.key.as_str()));
    assert!(d.log.is_some_and(|l| l.contains("held back")));
    // Without a lease: kept here, no release.
    let (mut m, step) = start(&mut e, use_cache(&[], 60.0, 3600.0));
    store(step);
    let d = done(e.write_step(&mut m, WriteInput::Failed(Failure::HeldBack), NOW));
    assert_eq!(
        (d.result, d.mark_local, d.error),
        (WriteResult::Unsent, true, None)
    );
}

#[test]
fn every_failure_but_the_breaker_is_an_error_line() {
    for f in [Failure::Timeout, Failure::ReplyError, Failure::NoConnection] {
        let mut e = engine();
        let (mut m, step) = start(&mut e, use_cache(&[], 60.0, 3600.0));
        store(step);
        let d = done(e.write_step(&mut m, WriteInput::Failed(f), NOW));
        assert_eq!(d.result, WriteResult::Failed, "{f:?}");
        assert!(d.mark_local && d.error.is_some(), "{f:?}");
    }
}

#[test]
fn a_value_that_is_not_cacheable_is_skipped_and_lets_a_held_lease_go() {
    // No lease: done at once.
    let mut e = engine();
    let (_, step) = start(&mut e, use_cache(&[], 0.0, 3600.0));
    let d = done(step);
    assert_eq!(d.result, WriteResult::Skipped);
    let key = e.entry_key(&UC, "k");
    assert_eq!(d.log, Some(format!("set {key} skipped (not cacheable)")));
    assert_eq!(
        e.stats()
            .writes(Surface::UseCache, WriteOutcome::NotCacheable),
        1
    );
    // Held: others may be waiting for this regeneration, so it is released first.
    let mut e = engine();
    hold_lease(&mut e, &UC, "k");
    let (mut m, step) = start(&mut e, use_cache(&[], 0.0, 3600.0));
    match step {
        WriteStep::Release { call, budget_ms } => {
            assert_eq!(call.sha1, LEASE_RELEASE.sha1());
            assert_eq!(call.args, vec!["tok".to_owned()]);
            assert_eq!(budget_ms, e.config().write_timeout_ms);
        }
        other => panic!("expected Release, got {other:?}"),
    }
    let d = done(e.write_step(&mut m, WriteInput::Sent, NOW));
    assert_eq!(d.result, WriteResult::Skipped);
    assert!(!d.mark_local);
}

#[test]
fn a_failed_release_is_logged_unless_the_breaker_held_it_back() {
    for (failure, logged) in [
        (Failure::ReplyError, true),
        (Failure::Timeout, true),
        (Failure::CircuitOpen, false),
    ] {
        let mut e = engine();
        hold_lease(&mut e, &UC, "k");
        let (mut m, step) = start(&mut e, use_cache(&[], 0.0, 3600.0));
        assert!(matches!(step, WriteStep::Release { .. }));
        let d = done(e.write_step(&mut m, WriteInput::Failed(failure), NOW));
        assert_eq!(d.result, WriteResult::Skipped);
        let log = d.log.unwrap_or_default();
        assert_eq!(
            log.contains("lease release failed"),
            logged,
            "{failure:?}: {log}"
        );
    }
}

/// With debugging off the host prints no debug line, so the machine writes none: a write
/// stored (plain or compressed), skipped, held back by the breaker or abandoned, and a failed
/// lease release, build no text. The warning and error lines, printed at every level, stay.
#[test]
fn with_debugging_off_a_write_writes_no_debug_line() {
    let mut e = engine_debugging(false);
    let long = "x".repeat(crate::tags::MAX_TAG_BYTES + 1);
    let tags = ["a", long.as_str()];
    let (mut m, step) = start(&mut e, use_cache(&tags, 60.0, 3600.0));
    store(step);
    let d = done(e.write_step(&mut m, WriteInput::Sent, NOW));
    assert_eq!(d.result, WriteResult::Stored);
    assert_eq!(d.log, None, "no line was built");
    assert!(d.dropped_tags.is_some(), "the warning stays");
    let min = u32::try_from(e.config().compress_min_bytes).unwrap_or(u32::MAX);
    let (mut m, step) = start(&mut e, large_use_cache(min));
    compress_step(step);
    store(e.write_step(&mut m, WriteInput::Compressed(100), NOW));
    let d = done(e.write_step(&mut m, WriteInput::Sent, NOW));
    assert_eq!(d.result, WriteResult::Stored);
    assert_eq!(d.log, None, "no line was built");
    let (mut m, step) = start(&mut e, use_cache(&[], 60.0, 3600.0));
    store(step);
    let d = done(e.write_step(&mut m, WriteInput::Failed(Failure::CircuitOpen), NOW));
    assert_eq!((d.result, d.log), (WriteResult::Unsent, None));
    let (mut m, step) = start(&mut e, use_cache(&[], 60.0, 3600.0));
    store(step);
    let d = done(e.write_step(&mut m, WriteInput::Failed(Failure::Timeout), NOW));
    assert_eq!(d.log, None);
    assert!(d.error.is_some(), "the error line stays");
    let d = done(start(&mut e, use_cache(&[], 0.0, 3600.0)).1);
    assert_eq!((d.result, d.log), (WriteResult::Skipped, None));
    let abandoned = WriteRequest::Abandoned {
        iface: UC,
        cache_key: "k",
    };
    let d = done(start(&mut e, abandoned).1);
    assert_eq!((d.result, d.log), (WriteResult::Failed, None));
    let mut m = e.write_start(use_cache(&[], 60.0, 3600.0), NOW);
    let d = done(e.write_step(&mut m, WriteInput::Abandon, NOW));
    assert_eq!((d.result, d.log), (WriteResult::Failed, None));
    hold_lease(&mut e, &UC, "k");
    let (mut m, step) = start(&mut e, use_cache(&[], 0.0, 3600.0));
    assert!(matches!(step, WriteStep::Release { .. }));
    let d = done(e.write_step(&mut m, WriteInput::Failed(Failure::Timeout), NOW));
    assert_eq!((d.result, d.log), (WriteResult::Skipped, None));
}

#[test]
fn a_refused_entry_names_the_code_and_lets_a_held_lease_go() {
    let mut e = Engine::new(Config {
        max_entry_bytes: 64,
        ..Config::default()
    })
    .unwrap_or_else(|err| panic!("{err}"));
    let (_, step) = start(&mut e, use_cache(&["a"], 60.0, 3600.0));
    let d = done(step);
    assert_eq!(d.result, WriteResult::Refused);
    let error = d.error.unwrap_or_default();
    assert!(
        error.starts_with("set failed, entry not stored: ERR_PLAN_TOO_LARGE: "),
        "{error}"
    );
    assert_eq!(
        e.stats().writes(Surface::UseCache, WriteOutcome::TooLarge),
        1
    );
    hold_lease(&mut e, &UC, "k");
    let (mut m, step) = start(&mut e, use_cache(&["a"], 60.0, 3600.0));
    assert!(matches!(step, WriteStep::Release { .. }));
    assert_eq!(
        done(e.write_step(&mut m, WriteInput::Sent, NOW)).result,
        WriteResult::Refused
    );
}

#[test]
fn a_use_cache_entry_under_the_singular_interface_is_refused() {
    let mut e = engine();
    let req = WriteRequest::UseCache {
        iface: Interface::Incremental,
        cache_key: "k",
        tags: &[],
        timestamp: NOW,
        revalidate: 60.0,
        expire: 3600.0,
        stale: 0.0,
        payload_len: 1,
    };
    let d = done(start(&mut e, req).1);
    assert_eq!(d.result, WriteResult::Refused);
    let error = d.error.unwrap_or_default();
    assert!(
        error.starts_with("inc set failed, entry not stored: ERR_PLAN_KIND_MISMATCH"),
        "{error}"
    );
}

#[test]
fn over_long_tags_are_dropped_with_one_warning_line() {
    let mut e = engine();
    let long = "x".repeat(crate::tags::MAX_TAG_BYTES + 1);
    let tags = ["a", long.as_str()];
    let (mut m, step) = start(&mut e, use_cache(&tags, 60.0, 3600.0));
    store(step);
    let d = done(e.write_step(&mut m, WriteInput::Sent, NOW));
    let key = e.entry_key(&UC, "k");
    let line = d.dropped_tags.unwrap_or_default();
    assert!(
        line.starts_with(&format!("set {key}: dropped 1 tag(s)")),
        "{line}"
    );
}

#[test]
fn singular_pages_are_kept_for_outages_only_fetches_are_served() {
    let mut e = engine();
    // PAGES: html and pageData.
    let s = store(start(&mut e, incremental(2, 0, &[5, 7])).1);
    assert!(s.outage_only);
    assert_eq!(s.key, e.entry_key(&Interface::Incremental, "/page"));
    // FETCH: json and body; no cache control.
    let s = store(start(&mut e, incremental(4, 8, &[5, 7])).1);
    assert!(!s.outage_only);
}

#[test]
fn a_singular_write_is_stamped_with_the_start_of_its_regeneration() {
    let mut e = engine();
    let started = Millis(NOW.0 - 2_000.0);
    e.note_incremental_read("/page", Step::Regenerate, false, started);
    let s = store(start(&mut e, incremental(2, 0, &[5, 7])).1);
    let header =
        decode_header(&s.header, s.header.len() + 12).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(header.meta.timestamp, started);
    // Expire counts from the entry's creation.
    assert_eq!(s.ttl_ms, 3_600_000 - 2_000);
    // Used once: the next write of the key is stamped with its own time.
    let s = store(start(&mut e, incremental(2, 0, &[5, 7])).1);
    let header =
        decode_header(&s.header, s.header.len() + 12).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(header.meta.timestamp, NOW);
}

/// A process whose clock runs ahead of its wall clock (a wall-clock step back after it
/// started) stamps its entries on the wall clock: Next's stamp of a `'use cache'` entry and the
/// regeneration start of a singular value, moved back by the distance, so that the revalidations
/// the fleet makes after them reach them (docs/decisions/0036). Within the slack, and behind,
/// they keep Next's stamps exactly.
#[test]
fn entries_written_while_the_clock_runs_ahead_of_the_wall_clock_are_stamped_on_it() {
    use crate::time::CLOCK_AHEAD_SLACK_MS;
    for (ahead, moved) in [
        (5_000.0, 5_000.0),
        (CLOCK_AHEAD_SLACK_MS, 0.0),
        (-5_000.0, 0.0),
    ] {
        let wall = Millis(NOW.0 - ahead);
        let mut e = engine();
        // The creation time the write stores for `req`, whose payload is `payload` bytes.
        let stored = |e: &mut Engine, req, payload: usize| {
            let mut m = e.write_start_at(req, NOW, wall);
            let s = store(e.write_first(&mut m, NOW));
            decode_header(&s.header, s.header.len() + payload)
                .unwrap_or_else(|err| panic!("{err}"))
                .meta
                .timestamp
        };
        let uc = stored(&mut e, use_cache(&["a"], 60.0, 3600.0), 10);
        assert_eq!(uc, Millis(NOW.0 - moved), "'use cache', ahead by {ahead}");
        let started = Millis(NOW.0 - 2_000.0);
        e.note_incremental_read("/page", Step::Regenerate, false, started);
        let inc = stored(&mut e, incremental(2, 0, &[5, 7]), 12);
        assert_eq!(inc, Millis(started.0 - moved), "singular, ahead by {ahead}");
    }
}

/// A regeneration's times are taken on Next's clock when it begins; a step of the wall clock
/// before its write (the machine paused while its clock ran 5 s ahead: the two agree again)
/// must not leave them 5 s in the future: the write moves them back by the farthest distance
/// the host told (`Engine::note_clocks`) within a regeneration's longest life, and by none
/// once that has passed.
#[test]
fn a_write_after_a_step_of_the_wall_clock_moves_back_by_the_distance_before_it() {
    use crate::regen::MAX_REGENERATION_MS;
    let stored = |e: &mut Engine, now: Millis| {
        let mut m = e.write_start_at(use_cache(&["a"], 60.0, 3600.0), now, now);
        let s = store(e.write_first(&mut m, now));
        decode_header(&s.header, s.header.len() + 10)
            .unwrap_or_else(|err| panic!("{err}"))
            .meta
            .timestamp
    };
    let mut e = engine();
    // A request begins 5 s ahead; the clocks agree at the write, 1 s later on Next's clock.
    // The entry's stamp (Next's, `NOW`) was taken on the scale ahead.
    e.note_clocks(NOW, Millis(NOW.0 - 5_000.0));
    let later = Millis(NOW.0 + 1_000.0);
    assert_eq!(stored(&mut e, later), Millis(NOW.0 - 5_000.0));
    // Past a regeneration's longest life, the clocks' distance is the write's own.
    let past = Millis(NOW.0 + MAX_REGENERATION_MS + 1.0);
    assert_eq!(stored(&mut e, past), NOW);
    // Within the slack, nothing is moved.
    let mut e = engine();
    e.note_clocks(NOW, Millis(NOW.0 - 10.0));
    assert_eq!(stored(&mut e, later), NOW);
}

/// The distance ahead at a regeneration's start counts even when a farther one was told
/// before it: a process 5 s ahead, then 4999 ms ahead as a regeneration begins 4 min 59 s
/// later, then paused 5 s before its write (the clocks agree again). Kept as one farthest
/// distance and its time, the 5 s expired at the write, the 4999 ms was never kept (less than
/// the farthest then), and the entry was stored 5 s in the future.
#[test]
fn a_write_after_a_step_moves_back_by_the_distance_at_its_start_below_an_older_farthest() {
    use crate::regen::MAX_REGENERATION_MS;
    let mut e = engine();
    let earlier = Millis(NOW.0 - (MAX_REGENERATION_MS - 1_000.0));
    e.note_clocks(earlier, Millis(earlier.0 - 5_000.0));
    // The regeneration begins (Next's stamp, `NOW`), 4999 ms ahead.
    e.note_clocks(NOW, Millis(NOW.0 - 4_999.0));
    // Written 2 s later on Next's clock, after the pause: both clocks agree.
    let later = Millis(NOW.0 + 2_000.0);
    let mut m = e.write_start_at(use_cache(&["a"], 60.0, 3600.0), later, later);
    let s = store(e.write_first(&mut m, later));
    let stamped = decode_header(&s.header, s.header.len() + 10)
        .unwrap_or_else(|err| panic!("{err}"))
        .meta
        .timestamp;
    assert!(
        stamped.0 <= NOW.0 - 4_999.0,
        "stamped {} ms after the wall clock of its start",
        stamped.0 - (NOW.0 - 4_999.0)
    );
}

/// A process ahead of its wall clock judges the `'use cache'` values it wrote, which a page
/// regenerated here may have joined, on the scale their entries are stored on: the wall clock.
/// A fill begun (on Next's clock, 5 s ahead) before a revalidation the fleet made while it ran,
/// on the wall clock, holds data that revalidation invalidated; a page whose regeneration began
/// after the revalidation and joined the fill must be stored no newer than the fill. Judged on
/// Next's clock, the revalidation looked older than the fill and the page was stored as fresh,
/// with the old data, on every instance.
#[test]
fn a_page_that_joined_a_fill_the_fleet_revalidated_is_stale_while_the_clock_runs_ahead() {
    use crate::tags::Revalidation;
    const AHEAD: f64 = 5_000.0;
    let wall = |t: f64| Millis(t - AHEAD);
    for (revalidated, page_stamp) in [
        // After the fill began on the wall clock (NOW - 5 s), before the page did (NOW - 1.8 s).
        (NOW.0 - 2_000.0, NOW.0 - AHEAD),
        // Before the fill began: the fill is fresh, the page keeps its own start.
        (NOW.0 - 6_000.0, NOW.0 + 3_200.0 - AHEAD),
    ] {
        let mut e = engine_debugging(false);
        e.mark_standalone();
        // Another instance's revalidation, as the mirror learns it: at its wall-clock time.
        e.plan_tag_update(
            &["shared"],
            &Revalidation::Expire,
            Millis(revalidated),
            "ep",
        )
        .unwrap_or_else(|err| panic!("{err:?}"));
        // The page's read that regenerates it, at NOW + 3.2 s on Next's clock.
        e.note_incremental_read("/page", Step::Regenerate, false, Millis(NOW.0 + 3_200.0));
        // The fill of `shared`, begun at NOW on Next's clock, written until NOW + 3.3 s.
        let at = NOW.0 + 3_290.0;
        let mut m = e.write_start_at(use_cache(&["shared"], 60.0, 3600.0), Millis(at), wall(at));
        if !matches!(e.write_first(&mut m, Millis(at)), WriteStep::Done(_)) {
            done(e.write_step(&mut m, WriteInput::Sent, Millis(at + 10.0)));
        }
        let req = WriteRequest::Incremental {
            cache_key: "/page",
            kind: 2,
            flags: 0,
            segments: 0,
            tags: &["_N_T_/page", "shared"],
            revalidate: 60.0,
            expire: 3600.0,
            parts: &[5, 7],
            own: crate::regen::Own::NONE,
        };
        let at = NOW.0 + 3_400.0;
        let mut m = e.write_start_at(req, Millis(at), wall(at));
        let s = store(e.write_first(&mut m, Millis(at)));
        let header =
            decode_header(&s.header, s.header.len() + 12).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(
            header.meta.timestamp,
            Millis(page_stamp),
            "revalidated at {revalidated}"
        );
    }
}

#[test]
fn a_singular_value_that_does_not_fit_its_descriptor_is_refused() {
    let mut e = engine();
    let d = done(start(&mut e, incremental(99, 0, &[1])).1);
    assert_eq!(d.result, WriteResult::Refused);
    assert!(d.error.unwrap_or_default().contains("ERR_LAYOUT_KIND"));
    let d = done(start(&mut e, incremental(2, 0, &[1])).1);
    assert!(d.error.unwrap_or_default().contains("ERR_LAYOUT_PARTS"));
    assert_eq!(
        e.stats()
            .writes(Surface::Incremental, WriteOutcome::Invalid),
        1
    );
    // revalidate 0: not cacheable.
    let req = WriteRequest::Incremental {
        cache_key: "/page",
        kind: 2,
        flags: 0,
        segments: 0,
        tags: &[],
        revalidate: 0.0,
        expire: 3600.0,
        parts: &[1, 1],
        own: crate::regen::Own::NONE,
    };
    let d = done(start(&mut e, req).1);
    assert_eq!(d.result, WriteResult::Skipped);
    assert!(d.log.unwrap_or_default().starts_with("inc set "));
}

#[test]
fn an_abandoned_set_lets_a_held_lease_go_and_stores_nothing() {
    let mut e = engine();
    let req = WriteRequest::Abandoned {
        iface: UC,
        cache_key: "k",
    };
    let d = done(start(&mut e, req).1);
    assert_eq!(d.result, WriteResult::Failed);
    assert!(d.error.is_none(), "the host logs why");
    hold_lease(&mut e, &UC, "k");
    let (mut m, step) = start(&mut e, req);
    assert!(matches!(step, WriteStep::Release { .. }));
    let d = done(e.write_step(&mut m, WriteInput::Sent, NOW));
    assert_eq!(d.result, WriteResult::Failed);
    assert!(!d.mark_local);
}

#[test]
fn abandoning_a_planned_write_releases_instead_of_writing() {
    let mut e = engine();
    hold_lease(&mut e, &UC, "k");
    let mut m = e.write_start(use_cache(&[], 60.0, 3600.0), NOW);
    let step = e.write_step(&mut m, WriteInput::Abandon, NOW);
    assert!(matches!(step, WriteStep::Release { .. }), "{step:?}");
    let d = done(e.write_step(&mut m, WriteInput::Sent, NOW));
    assert_eq!(d.result, WriteResult::Failed);
    // Abandoning a store in flight: the copy here never reached Redis.
    let (mut m, step) = start(&mut e, use_cache(&[], 60.0, 3600.0));
    store(step);
    let d = done(e.write_step(&mut m, WriteInput::Abandon, NOW));
    assert!(d.mark_local);
}

#[test]
fn a_finished_machine_only_answers_done() {
    let mut e = engine();
    let (mut m, step) = start(&mut e, use_cache(&[], 60.0, 3600.0));
    store(step);
    done(e.write_step(&mut m, WriteInput::Sent, NOW));
    for input in [
        WriteInput::Sent,
        WriteInput::Failed(Failure::Timeout),
        WriteInput::Abandon,
    ] {
        let d = done(e.write_step(&mut m, input, NOW));
        assert_eq!(d.result, WriteResult::Failed);
    }
    let d = done(e.write_first(&mut m, NOW));
    assert_eq!(d.result, WriteResult::Failed);
    // An input before the first step takes the first step.
    let mut m = e.write_start(use_cache(&[], 60.0, 3600.0), NOW);
    store(e.write_step(&mut m, WriteInput::Sent, NOW));
}

fn large_use_cache(payload_len: u32) -> WriteRequest<'static> {
    WriteRequest::UseCache {
        iface: UC,
        cache_key: "k",
        tags: &["a"],
        timestamp: NOW,
        revalidate: 60.0,
        expire: 3600.0,
        stale: 30.0,
        payload_len,
    }
}

fn compress_step(step: WriteStep) -> crate::write_machine::CompressStep {
    match step {
        WriteStep::Compress(c) => c,
        other => panic!("expected Compress, got {other:?}"),
    }
}

#[test]
fn a_payload_at_the_threshold_is_compressed_first_and_stored_with_its_flag() {
    use crate::envelope::{decode_stored_header, Codec, Compression};
    let mut e = engine();
    let min = e.config().compress_min_bytes;
    let raw = u32::try_from(min).unwrap_or(u32::MAX);
    // One byte below: stored plain at once.
    let (_, step) = start(&mut e, large_use_cache(raw - 1));
    assert!(!store(step).compressed);
    hold_lease(&mut e, &UC, "k");
    let (mut m, step) = start(&mut e, large_use_cache(raw));
    let c = compress_step(step);
    assert_eq!(
        (c.codec, c.level),
        (Codec::Deflate, e.config().compress_level)
    );
    assert_eq!(c.key, e.entry_key(&UC, "k"));
    assert_eq!(c.keep_until, Millis(NOW.0 + 3_600_000.0));
    assert_eq!(c.wait_ms, e.config().read_timeout_ms);
    // The plain header: the tier's copy and this process's readers get the plain value.
    let plain = decode_header(&c.header, c.header.len() + raw as usize)
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(plain.compression, None);
    assert!(
        !e.lease_table().is_empty(),
        "the lease is spent by the store, not before"
    );
    assert_eq!(m.value_len(), Some(c.header.len() as u64 + u64::from(raw)));

    let s = store(e.write_step(&mut m, WriteInput::Compressed(1000), NOW));
    assert!(s.compressed);
    let stored = decode_stored_header(&s.header, s.header.len() + 1000)
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        stored.compression,
        Some(Compression {
            codec: Codec::Deflate,
            raw_len: raw
        })
    );
    assert_eq!(stored.payload_len, 1000);
    assert_eq!(stored.meta, plain.meta);
    assert_eq!((s.keep_until, s.ttl_ms), (c.keep_until, 3_600_000));
    let call = s
        .script
        .unwrap_or_else(|| panic!("written with the lease's release"));
    assert_eq!(call.sha1, LEASE_WRITE.sha1());
    let d = done(e.write_step(&mut m, WriteInput::Sent, NOW));
    assert_eq!(d.result, WriteResult::Stored);
    let line = d.log.unwrap_or_default();
    assert!(line.contains(" B stored compressed"), "{line}");
    assert_eq!(e.stats().writes(Surface::UseCache, WriteOutcome::Stored), 2);
}

#[test]
fn output_that_saves_less_than_an_eighth_or_a_failed_codec_is_stored_plain() {
    let mut e = engine();
    let raw = 64 * 1024;
    for input in [
        WriteInput::Compressed(60 * 1024),
        WriteInput::Failed(Failure::NoConnection),
    ] {
        let (mut m, step) = start(&mut e, large_use_cache(raw));
        let c = compress_step(step);
        let s = store(e.write_step(&mut m, input, NOW));
        assert!(!s.compressed, "{input:?}");
        assert_eq!(s.header, c.header, "{input:?}: the plain header");
        let d = done(e.write_step(&mut m, WriteInput::Sent, NOW));
        assert!(!d.log.unwrap_or_default().contains("compressed"));
    }
}

#[test]
fn an_abandoned_compression_stores_nothing_and_lets_the_lease_go() {
    let mut e = engine();
    hold_lease(&mut e, &UC, "k");
    let (mut m, step) = start(&mut e, large_use_cache(64 * 1024));
    compress_step(step);
    match e.write_step(&mut m, WriteInput::Abandon, NOW) {
        WriteStep::Release { call, .. } => assert_eq!(call.sha1, LEASE_RELEASE.sha1()),
        other => panic!("expected Release, got {other:?}"),
    }
    let d = done(e.write_step(&mut m, WriteInput::Sent, NOW));
    assert_eq!(d.result, WriteResult::Failed);
}

#[test]
fn nothing_is_compressed_without_redis_when_off_or_for_images() {
    let mut standalone = engine();
    standalone.mark_standalone();
    let (_, step) = start(&mut standalone, large_use_cache(1 << 20));
    assert!(!store(step).compressed, "no Redis behind");

    let mut off = Engine::new(Config {
        compress_min_bytes: 0,
        ..Config::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let (_, step) = start(&mut off, large_use_cache(1 << 20));
    assert!(!store(step).compressed, "turned off");

    let mut e = engine();
    let json = 40;
    let image = [json, 1 << 20];
    let (_, step) = start(&mut e, incremental(6, 0, &image));
    assert!(!store(step).compressed, "an image is compressed already");
    let page = [json, 1 << 20, 1 << 10];
    let (_, step) = start(&mut e, incremental(1, 1, &page));
    compress_step(step);
}

#[test]
fn announcing_page_writes_every_page_write_is_a_script_with_the_tag_state_keys() {
    let mut e = engine();
    e.announce_page_writes();
    e.set_write_id_seed("seed").unwrap();
    let keys = e.namespace().tag_keys();
    let tail = [keys.meta.clone(), keys.announce.clone()];
    let page = e.entry_key(&Interface::Incremental, "/page");
    // The plain write of a page (PAGES): the announcing script.
    let s = store(start(&mut e, incremental(2, 0, &[5, 7])).1);
    let call = s.script.unwrap_or_else(|| panic!("a page write announces"));
    assert_eq!(call.script.name, "entry_write");
    assert_eq!(call.keys, [page.clone(), tail[0].clone(), tail[1].clone()]);
    // The version id: this process's seed and a count, another for every write.
    let id = call.args.get(3).cloned().unwrap_or_default();
    assert!(id.starts_with("seed."), "{id}");
    assert_eq!(
        call.args,
        [
            s.ttl_ms.to_string(),
            String::new(),
            String::new(),
            id.clone()
        ]
    );
    assert!(
        s.outage_only,
        "the writer's own copy is read again from Redis"
    );
    // With the lease held: the same script in mode 'l', with the lease and the token.
    hold_lease(&mut e, &Interface::Incremental, "/page");
    let s = store(start(&mut e, incremental(2, 0, &[5, 7])).1);
    let call = s.script.unwrap_or_else(|| panic!("a lease write"));
    assert_eq!(call.script.name, "entry_write");
    let lease = e.namespace().lease_key(&Interface::Incremental, "/page");
    assert_eq!(
        call.keys,
        [page.clone(), tail[0].clone(), tail[1].clone(), lease]
    );
    let next = call.args.get(3).cloned().unwrap_or_default();
    assert!(next.starts_with("seed.") && next != id, "{next} after {id}");
    assert_eq!(
        call.args,
        [s.ttl_ms.to_string(), "l".to_owned(), "tok".to_owned(), next]
    );
    // FETCH and 'use cache' entries are not announced.
    let s = store(start(&mut e, incremental(4, 8, &[5, 7])).1);
    assert!(s.script.is_none());
    let s = store(start(&mut e, use_cache(&["a"], 60.0, 3600.0)).1);
    assert!(s.script.is_none());
    // Not announcing (Cluster): a plain SET, as before.
    let mut plain = engine();
    let s = store(start(&mut plain, incremental(2, 0, &[5, 7])).1);
    assert!(s.script.is_none());
}

/// The argv a host sends for a script call.
fn argv(call: &crate::scripts::ScriptCall) -> Vec<String> {
    let mut v = vec![
        "EVALSHA".to_owned(),
        call.sha1.clone(),
        call.keys.len().to_string(),
    ];
    v.extend(call.keys.iter().cloned());
    v.extend(call.args.iter().cloned());
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A cluster-enabled Redis behind one URL answers CROSSSLOT to entry_write.lua (the entry and
/// the tag state are in two slots): the host writes that entry as a process that does not
/// announce would (SET, LEASE_WRITE, SEED_WRITE); the next page write tries to announce
/// again (the URL may lead to a plain Redis by then).
#[test]
fn after_a_crossslot_a_page_write_is_written_unannounced_and_later_ones_try_again() {
    let mut e = engine();
    e.announce_page_writes();
    let page = e.entry_key(&Interface::Incremental, "/page");
    // Mode '': a plain SET (no script).
    let s = store(start(&mut e, incremental(2, 0, &[5, 7])).1);
    let plain = argv(&s.script.unwrap_or_else(|| panic!("announced")));
    // Mode 'l': LEASE_WRITE with the entry, the lease and the token.
    hold_lease(&mut e, &Interface::Incremental, "/page");
    let s = store(start(&mut e, incremental(2, 0, &[5, 7])).1);
    let leased = argv(&s.script.unwrap_or_else(|| panic!("announced")));
    // Mode 's': SEED_WRITE with the entry, px and the creation time.
    let seed = e
        .plan_seed_write(
            &Interface::Incremental,
            "/s",
            Millis(1000.0),
            3_600_000,
            Millis(2000.0),
        )
        .unwrap_or_else(|| panic!("a seed"));
    let seeded = argv(&seed);
    assert_eq!(e.unannounced_write(&strs(&plain)), Some(Vec::new()));
    let lease = e.namespace().lease_key(&Interface::Incremental, "/page");
    assert_eq!(
        e.unannounced_write(&strs(&leased)),
        Some(vec![
            "EVALSHA".to_owned(),
            LEASE_WRITE.sha1(),
            "2".to_owned(),
            page.clone(),
            lease,
            s.ttl_ms.to_string(),
            "tok".to_owned(),
        ])
    );
    let fallback = e.unannounced_write(&strs(&seeded)).unwrap_or_default();
    assert_eq!(fallback.get(1), Some(&crate::scripts::SEED_WRITE.sha1()));
    assert_eq!(
        &fallback[2..],
        ["1", &seed.keys[0], &seed.args[0], &seed.args[2]]
    );
    // Not an announcing write: nothing to fall back to.
    assert_eq!(e.unannounced_write(&strs(&fallback)), None);
    // Later page writes still announce.
    let s = store(start(&mut e, incremental(2, 0, &[5, 7])).1);
    assert!(s.script.is_some_and(|c| c.script.name == "entry_write"));
    let seed = e.plan_seed_write(
        &Interface::Incremental,
        "/s",
        Millis(1000.0),
        3_600_000,
        Millis(2000.0),
    );
    assert_eq!(seed.map(|c| c.script.name), Some("entry_write"));
}

/// An engine where `tag` was revalidated (expire) at NOW + 100 and the page "/p" began to
/// regenerate at `page_began`: the set-up of the joined-fill tests below.
fn revalidated_then_regenerating(tag: &str, page_began: f64) -> Engine {
    let mut e = engine_debugging(false);
    e.mark_standalone();
    e.plan_tag_update(
        &[tag],
        &crate::tags::Revalidation::Expire,
        Millis(NOW.0 + 100.0),
        "ep",
    )
    .unwrap_or_else(|err| panic!("{err:?}"));
    e.note_incremental_read("/p", Step::Regenerate, false, Millis(page_began));
    e
}

/// Next 16.4 and later hand a `'use cache'` invocation's value to every request of the process
/// that joined it while it ran, once its write settles, without asking the handler. A page
/// whose regeneration began after a revalidation and joined a fill that began before it holds
/// the fill's data: its write must read as stale as that data (seen on three `next start`
/// instances, tests/faults/freshness-bound.test.mjs, where the page served the old data on
/// every instance after the revalidation).
#[test]
fn a_page_that_joined_a_fill_a_revalidation_made_stale_is_no_newer_than_the_fill() {
    use crate::incremental::ValueKind;
    let page = |fill_stale: bool, page_began: f64| {
        // The fill of `shared` began at NOW (Next's timestamp); `shared` is revalidated at
        // NOW + 100 (or `other` is); the page's read that regenerates it at `page_began`.
        let tag = if fill_stale { "shared" } else { "other" };
        let mut e = revalidated_then_regenerating(tag, page_began);
        let end = Millis(NOW.0 + 300.0);
        let mut m = e.write_start(use_cache(&["shared"], 60.0, 3600.0), Millis(NOW.0 + 290.0));
        let step = e.write_first(&mut m, Millis(NOW.0 + 290.0));
        if !matches!(step, WriteStep::Done(_)) {
            done(e.write_step(&mut m, WriteInput::Sent, end));
        }
        e.incremental_created(
            "/p",
            ValueKind::AppPage,
            &["_N_T_/p", "shared"],
            Millis(NOW.0 + 400.0),
        )
    };
    // Began before the fill's write ended: stamped with the fill's start.
    assert_eq!(page(true, NOW.0 + 200.0), NOW);
    // A fill the revalidation did not touch: the page keeps its own start.
    assert_eq!(page(false, NOW.0 + 200.0), Millis(NOW.0 + 200.0));
    // Began after the write ended: Next no longer lets it join.
    assert_eq!(page(true, NOW.0 + 350.0), Millis(NOW.0 + 350.0));
}

/// The same when the revalidation is the page's own (`revalidatePath`: its implicit tag), which
/// judges the joined value only as that page's data; a value with a tag the page does not
/// carry was not joined by it (Next adds a joined value's tags to the page's) and stamps
/// nothing.
#[test]
fn a_page_that_joined_a_fill_begun_before_its_path_was_revalidated_is_no_newer_than_the_fill() {
    use crate::incremental::ValueKind;
    let page = |fill_tags: &[&str]| {
        let mut e = revalidated_then_regenerating("_N_T_/p", NOW.0 + 200.0);
        let at = Millis(NOW.0 + 300.0);
        let mut m = e.write_start(use_cache(fill_tags, 60.0, 3600.0), at);
        if !matches!(e.write_first(&mut m, at), WriteStep::Done(_)) {
            done(e.write_step(&mut m, WriteInput::Sent, at));
        }
        let tags = ["_N_T_/layout", "_N_T_/p", "shared"];
        e.incremental_created("/p", ValueKind::AppPage, &tags, Millis(NOW.0 + 400.0))
    };
    assert_eq!(page(&["shared"]), NOW);
    assert_eq!(page(&[]), NOW);
    assert_eq!(page(&["shared", "other"]), Millis(NOW.0 + 200.0));
}

/// A `'use cache'` function whose invocation joined a fill of an inner one (its data begun
/// before a revalidation of the inner's tag, its write ending after the outer began) holds the
/// inner's old data. Next stamps the outer entry with its own start, after the revalidation, and
/// adds the inner's tags to it: stored as it was, the outer entry read as fresh everywhere, and a
/// page regenerated from it later (its regeneration begun after the inner's write ended) stored
/// the old data as fresh.
#[test]
fn a_use_cache_entry_that_joined_an_inner_fill_is_no_newer_than_the_inner_data() {
    use crate::tags::Revalidation;
    let outer = |inner_tags: &[&str], revalidated: &str| {
        let mut e = engine_debugging(false);
        e.plan_tag_update(
            &[revalidated],
            &Revalidation::Expire,
            Millis(NOW.0 + 100.0),
            "ep",
        )
        .unwrap_or_else(|err| panic!("{err:?}"));
        // The inner fill began at NOW; its write ends at NOW + 300.
        let mut m = e.write_start(use_cache(inner_tags, 60.0, 3600.0), Millis(NOW.0 + 290.0));
        store(e.write_first(&mut m, Millis(NOW.0 + 290.0)));
        done(e.write_step(&mut m, WriteInput::Sent, Millis(NOW.0 + 300.0)));
        // The outer invocation began at NOW + 200, after the revalidation, and joined it.
        let req = outer_use_cache();
        let mut m = e.write_start(req, Millis(NOW.0 + 400.0));
        let s = store(e.write_first(&mut m, Millis(NOW.0 + 400.0)));
        decode_header(&s.header, s.header.len() + 10)
            .unwrap_or_else(|err| panic!("{err}"))
            .meta
            .made()
    };
    // Stale by the inner's tag, which the outer carries: as old as the inner's data.
    assert_eq!(outer(&["shared"], "shared"), NOW);
    // Whatever was revalidated: a page's implicit tag (`revalidatePath`) judges the outer
    // entry by its stamp when that page reads it, and the write cannot tell which pages will.
    assert_eq!(outer(&["shared"], "_N_T_/p"), NOW);
    // A value with a tag the outer does not carry was not joined by it.
    assert_eq!(outer(&["shared", "x"], "shared"), Millis(NOW.0 + 200.0));
}

/// Next lets the requests that joined a `'use cache'` invocation go once its `set` resolves,
/// which the host does after a read's budget even while the write goes on (a slow Redis). A page
/// that joined the fill may then be written before the fill's write ends: it must be stamped by
/// the fill all the same.
#[test]
fn a_page_that_joined_a_fill_still_being_written_is_no_newer_than_the_fill() {
    use crate::incremental::ValueKind;
    let mut e = revalidated_then_regenerating("shared", NOW.0 + 200.0);
    let at = Millis(NOW.0 + 290.0);
    let mut fill = e.write_start(use_cache(&["shared"], 60.0, 3600.0), at);
    let s = store(e.write_first(&mut fill, at));
    // Next's `set` resolved after the read budget; the SET is still on its way.
    let page_at = Millis(at.0 + s.wait_ms + 50.0);
    let created = e.incremental_created("/p", ValueKind::AppPage, &["_N_T_/p", "shared"], page_at);
    assert_eq!(created, NOW, "stamped with the fill's start");
    done(e.write_step(&mut fill, WriteInput::Sent, Millis(page_at.0 + 1_000.0)));
    // A page whose regeneration began after the write ended, once Next's join closed (by the
    // read budget) and after the fill landed, is not stamped by it.
    e.note_incremental_read("/q", Step::Regenerate, false, Millis(page_at.0 + 2_000.0));
    let later = Millis(page_at.0 + 2_100.0);
    let created = e.incremental_created("/q", ValueKind::AppPage, &["_N_T_/q", "shared"], later);
    assert_eq!(created, Millis(page_at.0 + 2_000.0));
}

/// A busy process: `'use cache'` values of another tag written every `every` ms (each begun
/// 5 ms before), one of them begun before a revalidation of `shared` and ended after it; a page
/// carrying `shared` regenerated again and again, each regeneration taking `regen` ms and the
/// next beginning when the last was written. How many of its writes after the revalidation were
/// stamped stale (each one is another regeneration), over `span` ms.
fn page_regenerations_after_a_revalidation(every: f64, regen: f64, span: f64) -> usize {
    use crate::incremental::ValueKind;
    use crate::tags::Revalidation;
    let mut e = engine_debugging(false);
    let fill = |e: &mut Engine, made: Millis, ended: Millis| {
        let req = WriteRequest::UseCache {
            iface: UC,
            cache_key: "other",
            tags: &["other"],
            timestamp: made,
            revalidate: 60.0,
            expire: 3600.0,
            stale: 30.0,
            payload_len: 10,
        };
        let mut m = e.write_start(req, ended);
        if !matches!(e.write_first(&mut m, ended), WriteStep::Done(_)) {
            done(e.write_step(&mut m, WriteInput::Sent, ended));
        }
    };
    let revalidated = Millis(NOW.0 + 100.0);
    e.plan_tag_update(&["shared"], &Revalidation::Expire, revalidated, "ep")
        .unwrap_or_else(|err| panic!("{err:?}"));
    // Begun before the revalidation, ended after it: not one the page may join (its tag is not
    // among the page's).
    fill(&mut e, NOW, Millis(NOW.0 + 150.0));
    let mut t = NOW.0 + 150.0;
    let mut next_fill = t + every;
    let mut stale_writes = 0;
    while t < NOW.0 + span {
        let began = Millis(t);
        e.note_incremental_read("/p", Step::Regenerate, false, began);
        let written = t + regen;
        while next_fill <= written {
            fill(&mut e, Millis(next_fill - 5.0), Millis(next_fill));
            next_fill += every;
        }
        let created = e.incremental_created(
            "/p",
            ValueKind::AppPage,
            &["_N_T_/p", "shared"],
            Millis(written),
        );
        if created.0 < revalidated.0 {
            stale_writes += 1;
        }
        t = written + 1.0;
    }
    stale_writes
}

/// A value the page did not join costs it at most one more regeneration, also once the value
/// has been pushed out of the record of recent values by the others a busy process writes.
#[test]
fn a_busy_process_regenerates_a_page_once_more_at_most_for_a_value_it_did_not_join() {
    // Measured before the pushed-out values were kept apart: 25 stale writes in a row for
    // the first (over 12 s, the rest of the bucket the value ended in), 7 and 5 for the next.
    for (every, regen) in [(1.0, 500.0), (5.0, 2_000.0), (10.0, 3_000.0), (2.0, 100.0)] {
        let n = page_regenerations_after_a_revalidation(every, regen, 20_000.0);
        assert!(
            n <= 1,
            "a value every {every} ms, regenerations of {regen} ms: {n} stale writes"
        );
    }
}

/// The inner invocation an outer one joins may be another request's read, answered with a
/// stale entry (served stale while it is regenerated): the outer entry then holds that entry's
/// data, and is stamped no later than it, as a page that joined it is.
#[test]
fn a_use_cache_entry_that_joined_a_stale_read_is_no_newer_than_the_entry_read() {
    use crate::lease::Found;
    let outer = |handed_out_at: f64| {
        let mut e = engine_debugging(false);
        e.note_use_cache_answer(
            &["shared"],
            Found::Stale,
            Step::ServeStale,
            NOW,
            Millis(handed_out_at),
        );
        let req = outer_use_cache();
        let at = Millis(NOW.0 + 400.0);
        let mut m = e.write_start(req, at);
        let s = store(e.write_first(&mut m, at));
        decode_header(&s.header, s.header.len() + 10)
            .unwrap_or_else(|err| panic!("{err}"))
            .meta
            .made()
    };
    // Handed out while the outer ran: it may have joined that read.
    assert_eq!(outer(NOW.0 + 250.0), NOW);
    // Before the outer began: not.
    assert_eq!(outer(NOW.0 + 150.0), Millis(NOW.0 + 200.0));
}
