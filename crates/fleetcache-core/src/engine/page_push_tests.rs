//! Page and route entries of the singular handler in the tier while the tag state is followed
//! by push (docs/decisions/0031-page-entries-in-the-tier-by-push.md): a page write's
//! announcement, the race of a read with one, and the gaps of the channel.

use crate::config::Config;
use crate::engine::Engine;
use crate::incremental::{Descriptor, IncrementalSet, ValueKind};
use crate::keys::Interface;
use crate::lease::Consumer;
use crate::netstring;
use crate::read_machine::*;
use crate::tags::Announced;
use crate::tier::TierUse;
use crate::time::Millis;

const NOW: f64 = 1_795_690_530_000.0;
const TOKEN: &str = "0123456789abcdef";

/// Ms from `now` until the pull time (`Engine::tag_pull_timeout`, 0 when it has come);
/// `None`: no pull time.
fn pull_in(e: &Engine, now: f64) -> Option<f64> {
    e.tag_pull_timeout(Millis(now))
        .map(|at| (at.0 - now).max(0.0))
}

/// An engine following the tag state by push, caught up at `NOW` (subscribed, then pulled).
fn push_engine() -> Engine {
    let mut e = Engine::new(Config {
        prefix: "fc".into(),
        deployment: "d1".into(),
        ..Config::default()
    })
    .unwrap();
    e.follow_tags_by_push(1000.0).unwrap();
    e.tag_channel_up();
    // Asked once the subscription is confirmed: the host's CLUSTER SLOTS answer.
    e.confirm_plain_redis();
    pull(&mut e, "1", NOW - 10.0);
    assert!(e.tags_caught_up(Millis(NOW)));
    e
}

/// An engine following the tag state by push, caught up at `NOW`, with Redis not yet known to
/// be plain (a Redis Cluster's, as far as page announcements go): no page write is announced.
fn unconfirmed_push_engine() -> Engine {
    let mut e = Engine::new(Config {
        prefix: "fc".into(),
        deployment: "d1".into(),
        ..Config::default()
    })
    .unwrap();
    e.follow_tags_by_push(1000.0).unwrap();
    e.tag_channel_up();
    pull(&mut e, "1", NOW - 10.0);
    assert!(e.tags_caught_up(Millis(NOW)));
    e
}

/// A pull that finds the state of epoch `E` at `version`, after page write 1 (`w1`).
fn pull(e: &mut Engine, version: &str, at: f64) {
    pull_pages(e, version, "1", "w1", at);
}

/// A pull that finds the state of epoch `E` at `version`, the last page write `pver` (`pvid`).
fn pull_pages(e: &mut Engine, version: &str, pver: &str, pvid: &str, at: f64) {
    e.plan_tag_pull(Millis(at));
    let vid = format!("v{version}");
    let full = if e.mirror().is_synced() { "0" } else { "1" };
    let mut items = vec!["E", version, &vid, full, pver, pvid];
    if full == "1" {
        items.push("0");
    }
    e.apply_refresh(&netstring::encode(items), Millis(at + 1.0))
        .unwrap();
}

/// A page write's announcement of `key` as page write `pver` (id `w<pver>`) of epoch `E`.
fn page_announcement(pver: u64, key: &str) -> Vec<u8> {
    page_announcement_as("E", pver, &format!("w{pver}"), key)
}

fn page_announcement_as(epoch: &str, pver: u64, pvid: &str, key: &str) -> Vec<u8> {
    netstring::encode([
        "p".to_owned(),
        epoch.to_owned(),
        pver.to_string(),
        pvid.to_owned(),
        key.to_owned(),
    ])
}

fn page_value(e: &mut Engine, key: &str, created: f64) -> Vec<u8> {
    let desc = Descriptor {
        kind: ValueKind::AppPage,
        has_rsc: false,
        segments: 0,
        revalidate_false: false,
        no_expire: false,
        no_cache_control: false,
    };
    let parts = vec![3u32; desc.part_count()];
    let set = IncrementalSet {
        desc,
        revalidate: 60.0,
        expire: 3600.0,
        tags: &[],
        parts: &parts,
        created: Millis(created),
        made: None,
        now: Millis(created),
    };
    let mut v = e.plan_incremental_set(key, &set).unwrap().header;
    for _ in &parts {
        v.extend_from_slice(b"abc");
    }
    v
}

fn read(e: &Engine, key: &str, now: f64) -> ReadMachine {
    e.read_incremental(
        key,
        false,
        Vec::new(),
        f64::NAN,
        Consumer::Serves,
        false,
        TOKEN.to_owned(),
        Millis(now),
    )
}

fn go(e: &mut Engine, m: &mut ReadMachine, input: ReadInput<'_>, now: f64) -> ReadStep {
    e.read_step(m, input, Millis(now)).unwrap()
}

fn b(v: &[u8]) -> Option<Bytes<'_>> {
    Some(Bytes {
        prefix: v,
        total_len: v.len(),
    })
}

/// Steps a read of `/p` to its read of Redis (the tier holds nothing the read may serve): a
/// `GET`, or while page copies may serve, the page read that checks the page-write sequence.
fn to_get(e: &mut Engine, m: &mut ReadMachine, now: f64) -> ReadAction {
    let mut s = go(e, m, ReadInput::Start, now);
    if s.action == ReadAction::Refresh {
        s = go(e, m, ReadInput::Refreshed, now);
    }
    if s.action == ReadAction::PeekTier {
        s = go(e, m, ReadInput::Tier(None), now);
    }
    match &s.action {
        ReadAction::Get { .. } => {}
        ReadAction::PageRead { call, .. } => assert_eq!(call.script.name, "page_read", "{s:?}"),
        _ => panic!("{s:?}"),
    }
    s.action
}

/// The reply of a read of Redis holding `v`, the page-write sequence where the read found it
/// (a page read's second item; a `GET` has none, and the machine takes the same input).
fn got(v: &[u8]) -> ReadInput<'_> {
    ReadInput::Polled {
        entry: b(v),
        leased: true,
    }
}

/// Keeps the bytes as the host does with the read's tier action.
fn keep(e: &mut Engine, key: &str, v: &[u8], tier: TierAction) {
    if let TierAction::Keep {
        until,
        outage_only,
        page_gen,
        order,
    } = tier
    {
        e.lru_mut()
            .insert_ordered(key, v.len() as u64, until, order);
        if outage_only {
            e.lru_mut().mark_outage_only(key);
        }
        if page_gen != 0 {
            e.lru_mut().bind_page(key, page_gen);
        }
    }
}

/// Reads `/p` from Redis (`v`), at `now`, and keeps it as the host would; the tier action.
fn read_from_redis(e: &mut Engine, v: &[u8], now: f64) -> TierAction {
    let key = e.entry_key(&Interface::Incremental, "/p");
    let mut m = read(e, "/p", now);
    to_get(e, &mut m, now);
    let s = go(e, &mut m, got(v), now);
    assert!(matches!(s.action, ReadAction::Answer(_)), "{s:?}");
    keep(e, &key, v, s.tier);
    s.tier
}

fn is_bound(tier: TierAction) -> bool {
    matches!(
        tier,
        TierAction::Keep {
            outage_only: false,
            page_gen,
            ..
        } if page_gen != 0
    )
}

#[test]
fn while_caught_up_a_page_read_from_redis_serves_from_the_tier_until_announced() {
    let mut e = push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v = page_value(&mut e, "/p", NOW - 100.0);
    assert!(is_bound(read_from_redis(&mut e, &v, NOW)));
    assert_eq!(e.tier_use(&key, Millis(NOW + 1.0)), TierUse::Serve);
    // Another key's write changes nothing for this one.
    e.apply_announcement(&page_announcement(2, "other"), Millis(NOW))
        .unwrap();
    assert_eq!(e.tier_use(&key, Millis(NOW + 2.0)), TierUse::Serve);
    // Its own write: kept for outages only, read from Redis again.
    e.apply_announcement(&page_announcement(3, &key), Millis(NOW))
        .unwrap();
    assert_eq!(e.tier_use(&key, Millis(NOW + 3.0)), TierUse::Kept);
    assert!(e.tags_caught_up(Millis(NOW + 3.0)));
    // The next read of it binds the new value.
    assert!(is_bound(read_from_redis(&mut e, &v, NOW + 4.0)));
    assert_eq!(e.tier_use(&key, Millis(NOW + 5.0)), TierUse::Serve);
}

#[test]
fn an_announcement_heard_while_a_read_is_out_keeps_its_value_for_outages_only() {
    let mut e = push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v1 = page_value(&mut e, "/p", NOW - 100.0);
    let mut m = read(&e, "/p", NOW);
    to_get(&mut e, &mut m, NOW);
    // The write of v2 is announced before the reply with v1 is judged (another connection).
    e.apply_announcement(&page_announcement(2, &key), Millis(NOW))
        .unwrap();
    let s = go(&mut e, &mut m, got(&v1), NOW + 1.0);
    assert!(matches!(s.action, ReadAction::Answer(_)), "{s:?}");
    assert!(
        matches!(
            s.tier,
            TierAction::Keep {
                outage_only: true,
                page_gen: 0,
                ..
            }
        ),
        "{:?}",
        s.tier
    );
    keep(&mut e, &key, &v1, s.tier);
    assert_eq!(e.tier_use(&key, Millis(NOW + 2.0)), TierUse::Kept);
}

/// A rollback with the subscription up reused the number of the last page write known for a
/// rewrite of this key, whose announcement was lost: the next announcement heard has the
/// number after the one known, but follows another write (the id it names). A gap: the copy
/// kept before it serves no more, and the rewrite is read from Redis.
#[test]
fn an_announcement_following_another_write_than_the_last_known_is_a_gap() {
    let mut e = push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v = page_value(&mut e, "/p", NOW - 100.0);
    assert!(is_bound(read_from_redis(&mut e, &v, NOW)));
    let after = |pver: u64, prev: &str| {
        let mut items = netstring::decode(&page_announcement(pver, "other"))
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>();
        items.push(prev.as_bytes().to_vec());
        netstring::encode(items)
    };
    // The next of the sequence, after the last known (w1): applied, the copy serves.
    assert_eq!(
        e.apply_announcement(&after(2, "w1"), Millis(NOW)),
        Ok(Announced::Applied(0))
    );
    assert_eq!(e.tier_use(&key, Millis(NOW + 1.0)), TierUse::Serve);
    // Number 3 after a write other than the w2 known: the w2 heard was rolled back.
    assert_eq!(
        e.apply_announcement(&after(3, "w2-other"), Millis(NOW)),
        Ok(Announced::Gap)
    );
    assert_eq!(e.tier_use(&key, Millis(NOW + 2.0)), TierUse::Kept);
}

#[test]
fn a_gap_keeps_every_page_copy_kept_before_it_for_outages_only() {
    let mut e = push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v = page_value(&mut e, "/p", NOW - 100.0);
    assert!(is_bound(read_from_redis(&mut e, &v, NOW)));
    // The channel goes down and comes back: not served meanwhile, nor after.
    e.tag_channel_down();
    assert_eq!(e.tier_use(&key, Millis(NOW + 1.0)), TierUse::Kept);
    e.tag_channel_up();
    // Not served before CLUSTER SLOTS is answered again: the URL may lead elsewhere now.
    pull(&mut e, "1", NOW + 2.0);
    assert!(e.tags_caught_up(Millis(NOW + 2.5)));
    assert!(!is_bound(read_from_redis(&mut e, &v, NOW + 2.5)));
    e.confirm_plain_redis();
    pull(&mut e, "1", NOW + 3.0);
    assert!(e.tags_caught_up(Millis(NOW + 5.0)));
    assert_eq!(e.tier_use(&key, Millis(NOW + 5.0)), TierUse::Kept);
    assert!(is_bound(read_from_redis(&mut e, &v, NOW + 6.0)));
    assert_eq!(e.tier_use(&key, Millis(NOW + 7.0)), TierUse::Serve);
    // An announcement out of sequence is a gap too.
    e.apply_announcement(&page_announcement(5, "other"), Millis(NOW))
        .unwrap();
    assert_eq!(e.tier_use(&key, Millis(NOW + 8.0)), TierUse::Kept);
}

#[test]
fn a_read_that_went_out_while_not_caught_up_keeps_its_value_for_outages_only() {
    let mut e = push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v = page_value(&mut e, "/p", NOW - 100.0);
    e.tag_channel_down();
    let mut m = read(&e, "/p", NOW);
    to_get(&mut e, &mut m, NOW);
    // Caught up again before the reply: the read still went out while announcements could
    // be lost.
    e.tag_channel_up();
    pull(&mut e, "1", NOW + 1.0);
    assert!(e.tags_caught_up(Millis(NOW + 3.0)));
    let s = go(&mut e, &mut m, got(&v), NOW + 3.0);
    assert!(!is_bound(s.tier), "{:?}", s.tier);
    keep(&mut e, &key, &v, s.tier);
    assert_eq!(e.tier_use(&key, Millis(NOW + 4.0)), TierUse::Kept);
}

#[test]
fn a_pull_finding_a_page_write_no_announcement_brought_is_a_gap() {
    let mut e = push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v = page_value(&mut e, "/p", NOW - 100.0);
    assert!(is_bound(read_from_redis(&mut e, &v, NOW)));
    // A pull at the page write the process knows changes nothing.
    pull(&mut e, "1", NOW + 1.0);
    assert_eq!(e.tier_use(&key, Millis(NOW + 3.0)), TierUse::Serve);
    // Page write 2 was made and its announcement not heard (yet, or ever).
    pull_pages(&mut e, "1", "2", "w2", NOW + 4.0);
    assert!(e.tags_caught_up(Millis(NOW + 6.0)));
    assert_eq!(e.tier_use(&key, Millis(NOW + 6.0)), TierUse::Kept);
}

/// Page writes are not versions of the tag state: a pull finding later tag versions (and the
/// same last page write) leaves page copies serving, and page announcements use up none of
/// the tag versions a process checks between pulls.
#[test]
fn tag_versions_and_page_writes_are_separate_sequences() {
    let mut e = push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v = page_value(&mut e, "/p", NOW - 100.0);
    assert!(is_bound(read_from_redis(&mut e, &v, NOW)));
    pull(&mut e, "5", NOW + 1.0);
    assert_eq!(e.tier_use(&key, Millis(NOW + 2.0)), TierUse::Serve);
    // More page writes than MAX_UNCONFIRMED_UPDATES (64), each the next one.
    for pver in 2..=200 {
        assert_eq!(
            e.apply_announcement(&page_announcement(pver, "other"), Millis(NOW)),
            Ok(Announced::Applied(0))
        );
    }
    assert_eq!(e.tier_use(&key, Millis(NOW + 3.0)), TierUse::Serve);
    assert_eq!(e.mirror().version(), 5);
    // The next tag version is still applied, not a gap.
    let next = netstring::encode(["a", "E", "6", "v6", "", "t", "5,5,0,0,5"]);
    assert_eq!(
        e.apply_announcement(&next, Millis(NOW)),
        Ok(Announced::Applied(1))
    );
    assert!(e.tags_caught_up(Millis(NOW + 4.0)));
    assert_eq!(e.tier_use(&key, Millis(NOW + 4.0)), TierUse::Serve);
}

/// The gaps of the page-write sequence: each keeps the bound copy for outages only, while the
/// tag state stays caught up.
fn page_gap_case(gap: impl FnOnce(&mut Engine)) {
    let mut e = push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v = page_value(&mut e, "/p", NOW - 100.0);
    assert!(is_bound(read_from_redis(&mut e, &v, NOW)));
    // Page write 2 announced: the sequence is at 2.
    e.apply_announcement(&page_announcement(2, "other"), Millis(NOW))
        .unwrap();
    assert_eq!(e.tier_use(&key, Millis(NOW + 1.0)), TierUse::Serve);
    gap(&mut e);
    assert_eq!(e.tier_use(&key, Millis(NOW + 2.0)), TierUse::Kept);
}

#[test]
fn a_page_announcement_that_skips_a_number_is_a_gap() {
    page_gap_case(|e| {
        assert_eq!(
            e.apply_announcement(&page_announcement(4, "other"), Millis(NOW)),
            Ok(Announced::Gap)
        );
    });
}

#[test]
fn a_page_announcement_of_the_same_number_is_a_gap() {
    // A failover lost write 2 and another write took its number.
    page_gap_case(|e| {
        assert_eq!(
            e.apply_announcement(&page_announcement_as("E", 2, "other", "other"), Millis(NOW)),
            Ok(Announced::Gap)
        );
    });
}

#[test]
fn a_page_announcement_of_a_lower_number_is_a_gap() {
    page_gap_case(|e| {
        assert_eq!(
            e.apply_announcement(&page_announcement(1, "other"), Millis(NOW)),
            Ok(Announced::Gap)
        );
    });
}

#[test]
fn a_pull_finding_the_same_page_write_number_with_another_id_is_a_gap() {
    page_gap_case(|e| pull_pages(e, "1", "2", "w2-after-failover", NOW + 1.5));
}

#[test]
fn a_page_announcement_of_another_epoch_is_a_gap() {
    page_gap_case(|e| {
        assert_eq!(
            e.apply_announcement(&page_announcement_as("F", 3, "w3", "other"), Millis(NOW)),
            Ok(Announced::Gap)
        );
    });
}

/// Announcements of a kind this build does not know (a later release's) are a gap and an
/// error: the host takes the channel down (js-host/src/tag-sync.ts), so nothing serves from
/// the tier on the strength of messages it cannot read (docs/decisions/0031).
#[test]
fn an_announcement_of_an_unknown_kind_is_a_gap() {
    page_gap_case(|e| {
        let msg = netstring::encode(["q", "E", "3", "w3", "other"]);
        assert!(e.apply_announcement(&msg, Millis(NOW)).is_err());
        assert!(!e.tags_caught_up(Millis(NOW + 1.5)));
    });
}

#[test]
fn past_the_pull_interval_a_page_copy_waits_for_the_next_pull() {
    let mut e = push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v = page_value(&mut e, "/p", NOW - 100.0);
    assert!(is_bound(read_from_redis(&mut e, &v, NOW)));
    assert_eq!(e.tier_use(&key, Millis(NOW + 995.0)), TierUse::Kept);
    pull(&mut e, "1", NOW + 995.0);
    assert_eq!(e.tier_use(&key, Millis(NOW + 997.0)), TierUse::Serve);
}

#[test]
fn pulling_per_request_page_copies_stay_for_outages_only() {
    let mut e = Engine::new(Config::default()).unwrap();
    e.mark_standalone();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v = page_value(&mut e, "/p", NOW - 100.0);
    let tier = read_from_redis(&mut e, &v, NOW);
    assert!(
        matches!(
            tier,
            TierAction::Keep {
                outage_only: true,
                page_gen: 0,
                ..
            }
        ),
        "{tier:?}"
    );
    assert_eq!(e.tier_use(&key, Millis(NOW + 1.0)), TierUse::Kept);
    // An announcement changes nothing for a process that does not follow them.
    e.apply_announcement(&page_announcement(2, &key), Millis(NOW))
        .unwrap_or(crate::tags::Announced::Gap);
    assert_eq!(e.tier_use(&key, Millis(NOW + 2.0)), TierUse::Kept);
}

/// The host shares an in-flight `GET` between concurrent reads of a key (js-host/src/read-driver.ts,
/// `share`; since it also asks that the count of announcements heard be unchanged, this is the
/// engine's own defence). Read B starts after the announcement of v2 and joins read A's `GET`,
/// which Redis answered with v1 before the write: neither may keep v1 bound to the
/// generation the announcement left, or it would serve with no time limit.
#[test]
fn a_read_joining_a_get_sent_before_an_announcement_does_not_bind_the_old_value() {
    let mut e = push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v1 = page_value(&mut e, "/p", NOW - 100.0);
    let mut a = read(&e, "/p", NOW);
    to_get(&mut e, &mut a, NOW);
    e.apply_announcement(&page_announcement(2, &key), Millis(NOW))
        .unwrap();
    let mut bm = read(&e, "/p", NOW + 0.5);
    to_get(&mut e, &mut bm, NOW + 0.5);
    bm.joined(a.order());
    let sa = go(&mut e, &mut a, got(&v1), NOW + 1.0);
    keep(&mut e, &key, &v1, sa.tier);
    let sb = go(&mut e, &mut bm, got(&v1), NOW + 1.0);
    assert_eq!(
        sb.tier,
        TierAction::None,
        "the read that sent the GET keeps its reply"
    );
    keep(&mut e, &key, &v1, sb.tier);
    // v1 is what the announced write replaced: it must not serve while Redis answers.
    assert_ne!(e.tier_use(&key, Millis(NOW + 500.0)), TierUse::Serve);
}

/// A read that joined a `GET` sent while nothing was announced since leaves the copy to the
/// sender, which binds it: joining costs the tier nothing.
#[test]
fn a_joined_get_leaves_the_page_copy_to_the_read_that_sent_it() {
    let mut e = push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v1 = page_value(&mut e, "/p", NOW - 100.0);
    let mut a = read(&e, "/p", NOW);
    to_get(&mut e, &mut a, NOW);
    let mut bm = read(&e, "/p", NOW + 0.5);
    to_get(&mut e, &mut bm, NOW + 0.5);
    bm.joined(a.order());
    let sa = go(&mut e, &mut a, got(&v1), NOW + 1.0);
    keep(&mut e, &key, &v1, sa.tier);
    let sb = go(&mut e, &mut bm, got(&v1), NOW + 1.0);
    assert_eq!(sb.tier, TierAction::None);
    assert_eq!(e.tier_use(&key, Millis(NOW + 2.0)), TierUse::Serve);
}

/// A Redis not known to be without Cluster support (`CLUSTER SLOTS` not yet answered "cluster
/// support disabled"): a cluster-enabled server behind one URL refuses every page write's
/// script (CROSSSLOT), so no announcement would come, and no page copy may serve.
#[test]
fn until_redis_is_known_plain_page_copies_are_kept_for_outages_only() {
    let mut e = unconfirmed_push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v = page_value(&mut e, "/p", NOW - 100.0);
    assert!(!is_bound(read_from_redis(&mut e, &v, NOW)));
    assert_eq!(e.tier_use(&key, Millis(NOW + 1.0)), TierUse::Kept);
    // Known plain from here on: the next read binds.
    e.confirm_plain_redis();
    assert!(is_bound(read_from_redis(&mut e, &v, NOW + 2.0)));
    assert_eq!(e.tier_use(&key, Millis(NOW + 3.0)), TierUse::Serve);
}

/// The writer's own rewrite (decision 0031): this process's own page write is a write its reads in flight may
/// have missed, as another instance's announced one is. Read A's `GET` goes out and Redis
/// answers it with v1; then this process writes v2 (its own copy kept for outages only) and
/// the write resolves; A's reply is judged before this process's own announcement comes back
/// on the subscriber connection. A must not bind v1: a read that begins after the write
/// resolved would be served v1 from the tier until the announcement arrives (and up to the
/// next pull when it never does: an ACL without the channel).
#[test]
fn a_read_out_before_this_process_writes_the_page_does_not_bind_the_old_value() {
    use crate::write_machine::{WriteInput, WriteStep};
    let mut e = push_engine();
    e.announce_page_writes();
    e.set_write_id_seed("seed").unwrap();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v1 = page_value(&mut e, "/p", NOW - 100.0);
    let mut a = read(&e, "/p", NOW);
    to_get(&mut e, &mut a, NOW);
    // This process's write of /p (an APP_PAGE value: kind 1, as page_value's), sent and
    // answered.
    let mut w = page_write(&mut e, "/p", NOW + 0.2);
    let s = e.write_first(&mut w, Millis(NOW + 0.2));
    let WriteStep::Store(st) = s else {
        panic!("expected Store, got {s:?}")
    };
    assert!(
        st.outage_only,
        "the writer's own page copy is for outages only"
    );
    assert!(st.script.is_some(), "the page write announces itself");
    // The writer's copy of v2, as the host keeps it when the write starts.
    let v2 = page_value(&mut e, "/p", NOW + 0.2);
    keep(
        &mut e,
        &key,
        &v2,
        TierAction::Keep {
            until: st.keep_until,
            outage_only: true,
            page_gen: 0,
            order: 0,
        },
    );
    let d = e.write_step(&mut w, WriteInput::Sent, Millis(NOW + 0.5));
    assert!(matches!(d, WriteStep::Done(_)), "{d:?}");
    // A's reply (v1, read before the write) is judged now; the announcement is still on its way.
    let sa = go(&mut e, &mut a, got(&v1), NOW + 1.0);
    keep(&mut e, &key, &v1, sa.tier);
    assert!(
        !is_bound(sa.tier),
        "v1, read before this process's own write, was bound over the writer's copy: {:?}",
        sa.tier
    );
    assert_ne!(e.tier_use(&key, Millis(NOW + 2.0)), TierUse::Serve);
}

/// The same write, raced by a read that begins after the write was planned: its `GET` may
/// still reach Redis before the write, and its reply be judged before the write ends, when
/// nothing has moved since it went out. What it keeps then must not serve once the write has
/// ended: the write's end marks the key's copy for outages only.
#[test]
fn a_read_begun_while_this_process_writes_the_page_serves_nothing_old_once_the_write_ended() {
    use crate::write_machine::{WriteInput, WriteStep};
    let mut e = push_engine();
    e.announce_page_writes();
    e.set_write_id_seed("seed").unwrap();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v1 = page_value(&mut e, "/p", NOW - 100.0);
    let mut w = page_write(&mut e, "/p", NOW + 0.2);
    let s = e.write_first(&mut w, Millis(NOW + 0.2));
    assert!(matches!(s, WriteStep::Store(_)), "{s:?}");
    // B begins after the write was planned; its GET is answered with v1 (it reached Redis
    // first) and judged before the write ends.
    let mut rb = read(&e, "/p", NOW + 0.3);
    to_get(&mut e, &mut rb, NOW + 0.3);
    let sb = go(&mut e, &mut rb, got(&v1), NOW + 0.4);
    keep(&mut e, &key, &v1, sb.tier);
    let d = e.write_step(&mut w, WriteInput::Sent, Millis(NOW + 0.5));
    assert!(matches!(d, WriteStep::Done(_)), "{d:?}");
    assert_ne!(
        e.tier_use(&key, Millis(NOW + 0.6)),
        TierUse::Serve,
        "v1 serves from the tier after this process's write of v2 resolved"
    );
}

/// This process's write of an `APP_PAGE` value (kind 1, as `page_value`'s) of `cache_key`,
/// planned at `now`.
fn page_write(e: &mut Engine, cache_key: &str, now: f64) -> crate::write_machine::WriteMachine {
    let parts = [3u32; 3];
    let count = Descriptor {
        kind: ValueKind::AppPage,
        has_rsc: false,
        segments: 0,
        revalidate_false: false,
        no_expire: false,
        no_cache_control: false,
    }
    .part_count();
    e.write_start(
        crate::write_machine::WriteRequest::Incremental {
            cache_key,
            kind: ValueKind::AppPage as u8,
            flags: 0,
            segments: 0,
            tags: &[],
            revalidate: 60.0,
            expire: 3600.0,
            parts: &parts[..count],
            own: crate::regen::Own::NONE,
        },
        Millis(now),
    )
}

/// The copy an outage serves (docs/failures.md), pulling and following by push: reads whose `GET` went out before this
/// process's page write of `/p`, one judged while the write is in flight and one after it
/// ended (its tag refresh held it), serve what they read and leave the writer's copy in the
/// tier: in the next outage that copy, not the value the write replaced, serves. A read sent
/// after the write ended keeps what it reads again.
#[test]
fn reads_sent_before_this_process_writes_the_page_leave_the_writers_copy() {
    use crate::write_machine::{WriteInput, WriteStep};
    let pulling = Engine::new(Config {
        prefix: "fc".into(),
        deployment: "d1".into(),
        ..Config::default()
    })
    .unwrap();
    let mut pushing = push_engine();
    pushing.announce_page_writes();
    pushing.set_write_id_seed("seed").unwrap();
    for mut e in [pulling, pushing] {
        let key = e.entry_key(&Interface::Incremental, "/p");
        let v1 = page_value(&mut e, "/p", NOW - 100.0);
        let mut during = read(&e, "/p", NOW);
        to_get(&mut e, &mut during, NOW);
        let mut after = read(&e, "/p", NOW);
        to_get(&mut e, &mut after, NOW);
        let mut w = page_write(&mut e, "/p", NOW + 0.2);
        let WriteStep::Store(st) = e.write_first(&mut w, Millis(NOW + 0.2)) else {
            panic!("expected Store")
        };
        let v2 = page_value(&mut e, "/p", NOW + 0.2);
        e.lru_mut().insert(&key, v2.len() as u64, st.keep_until);
        e.lru_mut().mark_outage_only(&key);
        let s = go(&mut e, &mut during, got(&v1), NOW + 0.3);
        assert!(matches!(s.action, ReadAction::Answer(_)), "{s:?}");
        assert_eq!(
            s.tier,
            TierAction::None,
            "judged while the write is in flight"
        );
        let d = e.write_step(&mut w, WriteInput::Sent, Millis(NOW + 0.5));
        assert!(matches!(d, WriteStep::Done(_)), "{d:?}");
        let s = go(&mut e, &mut after, got(&v1), NOW + 1.0);
        assert!(matches!(s.action, ReadAction::Answer(_)), "{s:?}");
        assert_eq!(s.tier, TierAction::None, "judged after the write ended");
        assert_eq!(e.lru().writes_in_flight(), 0);
        let mut next = read(&e, "/p", NOW + 2.0);
        to_get(&mut e, &mut next, NOW + 2.0);
        let s = go(&mut e, &mut next, got(&v2), NOW + 2.0);
        assert!(matches!(s.tier, TierAction::Keep { .. }), "{:?}", s.tier);
    }
}

/// Caught up, the host's refresh would change nothing (js-host/src/tag-sync.ts, `refresh`): the
/// read goes to the tier at once, and a bound page copy is served from its first answer.
#[test]
fn while_caught_up_a_page_read_asks_for_the_tier_without_a_refresh() {
    let mut e = push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v = page_value(&mut e, "/p", NOW - 100.0);
    assert!(is_bound(read_from_redis(&mut e, &v, NOW)));
    let mut m = read(&e, "/p", NOW + 1.0);
    let s = go(&mut e, &mut m, ReadInput::Start, NOW + 1.0);
    assert_eq!(s.action, ReadAction::PeekTier, "{s:?}");
    let s = go(&mut e, &mut m, ReadInput::Tier(b(&v)), NOW + 1.0);
    assert!(matches!(s.action, ReadAction::Answer(_)), "{s:?}");
    assert_eq!(e.tier_use(&key, Millis(NOW + 2.0)), TierUse::Serve);
}

/// The first step of a read of `/p` begun at `now`.
/// The engine's word on it beforehand ([`Engine::read_asks_tier_first`]) agrees.
fn first_step(e: &mut Engine, now: f64) -> ReadAction {
    let mut m = read(e, "/p", now);
    let asks = e.read_asks_tier_first(&m, Millis(now));
    let action = go(e, &mut m, ReadInput::Start, now).action;
    assert_eq!(asks, action == ReadAction::PeekTier, "{action:?}");
    action
}

/// Without page announcements (Redis Cluster, or a Redis not yet known to be plain) no page
/// copy serves while Redis answers: caught up, a page read goes to Redis at once, without
/// asking for the tier's bytes, which the host would look up and hand over for nothing. A
/// `fetch` entry, judged by its tags alone, is still looked for in the tier, and so is a page
/// while Redis does not answer (the tier's copy serves the outage).
#[test]
fn without_page_announcements_a_caught_up_page_read_goes_to_redis_without_the_tier() {
    let mut e = unconfirmed_push_engine();
    let action = first_step(&mut e, NOW);
    assert!(matches!(action, ReadAction::Get { .. }), "{action:?}");
    let mut fetch = super::read_tests::inc(&e, "f1", true, false, NOW);
    assert!(e.read_asks_tier_first(&fetch, Millis(NOW)));
    assert_eq!(
        go(&mut e, &mut fetch, ReadInput::Start, NOW).action,
        ReadAction::PeekTier
    );
    super::read_tests::open_breaker(&mut e, NOW);
    assert_eq!(first_step(&mut e, NOW), ReadAction::PeekTier);
}

/// This process's own page copy, whose write never reached Redis (a timeout: the breaker
/// stays closed), is dropped by the first read while Redis answers (docs/failures.md, "What an
/// instance made while Redis was down is its own"), with page writes announced or not: a
/// caught-up page read without announcements still asks for the tier then, so that a read of
/// Redis that fails next serves nothing of it.
#[test]
fn without_page_announcements_a_caught_up_page_read_still_drops_this_processs_own_copy() {
    let mut e = unconfirmed_push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v = page_value(&mut e, "/p", NOW - 100.0);
    // The write's copy (kept for outages only: not announced), then its store timed out.
    assert!(e
        .lru_mut()
        .insert(&key, v.len() as u64, Millis(NOW + 1e6))
        .is_empty());
    assert!(e.lru_mut().mark_outage_only(&key));
    assert!(e.lru_mut().mark_local(&key));
    assert_eq!(first_step(&mut e, NOW), ReadAction::PeekTier);
    // Stepped as the host does: the tier's bytes while the index holds the key, Redis's
    // read timing out.
    let mut m = read(&e, "/p", NOW);
    let mut input = ReadInput::Start;
    let answer = loop {
        let s = go(&mut e, &mut m, input, NOW);
        let held = e.lru().contains(&key);
        input = match s.action {
            ReadAction::PeekTier => ReadInput::Tier(b(&v).filter(|_| held)),
            ReadAction::Get { .. } | ReadAction::PageRead { .. } => {
                ReadInput::Failed(Failure::Timeout)
            }
            ReadAction::PeekFallback => ReadInput::Fallback(b(&v).filter(|_| held)),
            ReadAction::Answer(a) => break a,
            other => panic!("{other:?}"),
        };
    };
    assert!(!e.lru().contains(&key), "this process's own copy is kept");
    assert_eq!(
        (answer.source, answer.served),
        (Source::None, Served::Miss),
        "served from this process's own copy"
    );
}

#[test]
fn with_the_channel_down_a_read_asks_for_a_refresh_first() {
    let mut e = push_engine();
    e.tag_channel_down();
    assert!(!e.tags_caught_up(Millis(NOW)));
    assert_eq!(first_step(&mut e, NOW), ReadAction::Refresh);
}

#[test]
fn after_a_gap_a_read_asks_for_a_refresh_first() {
    let mut e = push_engine();
    let msg = netstring::encode(["q", "E", "3", "w3", "other"]);
    assert!(e.apply_announcement(&msg, Millis(NOW)).is_err());
    assert!(!e.tags_caught_up(Millis(NOW)));
    assert_eq!(first_step(&mut e, NOW), ReadAction::Refresh);
}

#[test]
fn past_the_pull_interval_a_read_asks_for_a_refresh_first() {
    let mut e = push_engine();
    assert_eq!(first_step(&mut e, NOW + 980.0), ReadAction::PeekTier);
    assert!(!e.tags_caught_up(Millis(NOW + 995.0)));
    assert_eq!(first_step(&mut e, NOW + 995.0), ReadAction::Refresh);
    // The pull that catches up ends the refreshes.
    pull(&mut e, "1", NOW + 995.0);
    assert_eq!(first_step(&mut e, NOW + 997.0), ReadAction::PeekTier);
}

#[test]
fn pulling_per_request_a_read_asks_for_a_refresh_first() {
    let mut e = Engine::new(Config::default()).unwrap();
    e.mark_standalone();
    pull(&mut e, "1", NOW - 10.0);
    assert!(!e.tags_caught_up(Millis(NOW)));
    assert_eq!(first_step(&mut e, NOW), ReadAction::Refresh);
}

/// A page read names the last page write this process knows, and its reply says whether the
/// page-write sequence is still there. When it is not (a write whose announcement this
/// process has not heard: on its way, or lost), the value serves the read and is kept for
/// outages only: a failover may lose that write and bring back exactly the sequence this
/// process knows, and no pull could then tell the tier's copy from the value Redis lost.
#[test]
fn a_page_value_read_past_the_last_page_write_known_binds_nothing() {
    let mut e = push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v = page_value(&mut e, "/p", NOW - 100.0);
    let mut m = read(&e, "/p", NOW);
    let ReadAction::PageRead { call, .. } = to_get(&mut e, &mut m, NOW) else {
        panic!("a page read of Redis while page copies may serve checks the sequence");
    };
    assert_eq!(call.keys, [key.clone(), "fc:tags:{fc}:meta".to_owned()]);
    assert_eq!(call.args, ["E", "1", "w1"]);
    let s = go(
        &mut e,
        &mut m,
        ReadInput::Polled {
            entry: b(&v),
            leased: false,
        },
        NOW,
    );
    let ReadAction::Answer(answer) = &s.action else {
        panic!("{s:?}");
    };
    // The page read's bytes are the host's poll bytes.
    assert_eq!(answer.source, Source::Poll);
    assert!(
        matches!(
            s.tier,
            TierAction::Keep {
                outage_only: true,
                page_gen: 0,
                ..
            }
        ),
        "{s:?}"
    );
    keep(&mut e, &key, &v, s.tier);
    assert_eq!(e.tier_use(&key, Millis(NOW + 1.0)), TierUse::Kept);
    // Read again at the sequence known: bound.
    assert!(is_bound(read_from_redis(&mut e, &v, NOW + 2.0)));
    assert_eq!(e.tier_use(&key, Millis(NOW + 3.0)), TierUse::Serve);
}

/// A follower's poll does not check the page-write sequence: a page value it brings serves
/// the read and binds nothing.
#[test]
fn a_page_value_a_poll_brings_binds_nothing() {
    let mut e = push_engine();
    let v = page_value(&mut e, "/p", NOW - 100.0);
    let mut m = read(&e, "/p", NOW);
    to_get(&mut e, &mut m, NOW);
    // Nothing stored: the read asks for the lease; another process holds it.
    let s = go(&mut e, &mut m, got_none(), NOW);
    assert!(matches!(s.action, ReadAction::Acquire { .. }), "{s:?}");
    let mut s = go(&mut e, &mut m, ReadInput::LeaseReply(0), NOW);
    if let ReadAction::Wait { .. } = s.action {
        s = go(&mut e, &mut m, ReadInput::Timer, NOW + 50.0);
    }
    let ReadAction::Poll { call, .. } = &s.action else {
        panic!("{s:?}");
    };
    assert_eq!(call.script.name, "lease_poll");
    let s = go(
        &mut e,
        &mut m,
        ReadInput::Polled {
            entry: b(&v),
            leased: false,
        },
        NOW + 60.0,
    );
    assert!(matches!(s.action, ReadAction::Answer(_)), "{s:?}");
    assert!(!is_bound(s.tier), "{s:?}");
}

fn got_none() -> ReadInput<'static> {
    ReadInput::Polled {
        entry: None,
        leased: true,
    }
}

/// A pull's reply and a page announcement come on two connections: a pull that Redis ran
/// before page write 2 may be applied after 2's announcement was heard. The pull's page write
/// 1 is then older than the one known, not a write the announcements missed: the process
/// keeps knowing 2, so that its page reads name 2 and bind what they read. Taking 1 back made
/// every page read find the sequence moved past it and bind nothing until the next pull, and
/// that pull a gap again.
#[test]
fn a_pull_read_before_a_page_announcement_heard_first_does_not_take_the_sequence_back() {
    let mut e = push_engine();
    let key = e.entry_key(&Interface::Incremental, "/p");
    let v = page_value(&mut e, "/p", NOW - 100.0);
    e.plan_tag_pull(Millis(NOW));
    e.apply_announcement(&page_announcement(2, "other"), Millis(NOW))
        .unwrap();
    let reply = netstring::encode(["E", "1", "v1", "0", "1", "w1"]);
    e.apply_refresh(&reply, Millis(NOW + 1.0)).unwrap();
    assert!(e.tags_caught_up(Millis(NOW + 2.0)));
    let mut m = read(&e, "/p", NOW + 2.0);
    let ReadAction::PageRead { call, .. } = to_get(&mut e, &mut m, NOW + 2.0) else {
        panic!("a page read while caught up");
    };
    assert_eq!(call.args, ["E", "2", "w2"], "the last page write heard");
    // Redis at 2: the read binds.
    let s = go(&mut e, &mut m, got(&v), NOW + 2.0);
    assert!(is_bound(s.tier), "{s:?}");
    keep(&mut e, &key, &v, s.tier);
    // The next pull finds 2, the write known: no gap, the copy serves.
    pull_pages(&mut e, "1", "2", "w2", NOW + 3.0);
    assert_eq!(e.tier_use(&key, Millis(NOW + 5.0)), TierUse::Serve);
}

/// This process's write of an `APP_PAGE` value of `/p` tagged `tags`, at `now`, by a request
/// whose read of it at `began` started its regeneration: the entry's header as stored.
fn regenerated_page(
    e: &mut Engine,
    tags: &[&str],
    began: f64,
    now: f64,
) -> crate::envelope::EntryMeta {
    use crate::write_machine::{WriteRequest, WriteStep};
    let parts = [3u32; 3];
    let count = Descriptor::from_wire(ValueKind::AppPage as u8, 0, 0)
        .unwrap()
        .part_count();
    let own = crate::regen::Own {
        start: began,
        ..crate::regen::Own::NONE
    };
    let req = WriteRequest::Incremental {
        cache_key: "/p",
        kind: ValueKind::AppPage as u8,
        flags: 0,
        segments: 0,
        tags,
        revalidate: 60.0,
        expire: 3600.0,
        parts: &parts[..count],
        own,
    };
    let mut w = e.write_start(req, Millis(now));
    let header = match e.write_first(&mut w, Millis(now)) {
        WriteStep::Store(s) => s.header,
        other => panic!("expected a store, got {other:?}"),
    };
    let total = header.len() + 3 * count;
    crate::envelope::decode_header(&header, total).unwrap().meta
}

/// The announcement of version `version` of epoch `E`: `tag` expired at `rev_at`.
fn expiry_announcement(version: &str, tag: &str, rev_at: f64) -> Vec<u8> {
    announcement_of(version, &format!("v{version}"), tag, rev_at)
}

/// A pull at `at` that finds `tag` revalidated (expired) at `rev_at`, as version `version`.
fn pull_revalidation(e: &mut Engine, version: &str, tag: &str, rev_at: f64, at: f64) {
    let mut rec = crate::tags::TagRecord::default();
    rec.apply(&crate::tags::Revalidation::Expire, Millis(rev_at));
    e.plan_tag_pull(Millis(at));
    let vid = format!("v{version}");
    let items = vec![
        "E".to_owned(),
        version.to_owned(),
        vid,
        "0".to_owned(),
        "1".to_owned(),
        "w1".to_owned(),
        tag.to_owned(),
        rec.encode(),
    ];
    e.apply_refresh(&netstring::encode(items), Millis(at + 1.0))
        .unwrap();
}

/// Following by push, a caught-up process judges a page's data by its mirror alone, which may
/// lack a revalidation that resolved less than the bound before (its announcement late or
/// lost, or made by an instance that announces nothing: one that pulls). The page it
/// regenerates then holds the old data. Stamped with its regeneration's start, after the
/// revalidation, it read as fresh on every instance once they all knew of the revalidation,
/// until its own `revalidate` ran out: far past the bound. Its tags must judge it by no later
/// than the start of the last pull this process had applied when the regeneration began,
/// whatever pulls end while it renders (the data was judged before them).
#[test]
fn a_page_regenerated_before_this_process_heard_of_a_revalidation_reads_stale_once_it_has() {
    use crate::tags::Freshness;
    let tags = ["_N_T_/p", "shared"];
    let mut e = push_engine();
    // The periodic pull at NOW + 50.
    pull(&mut e, "1", NOW + 50.0);
    // `shared` is revalidated at NOW + 100 by an instance that pulls: in Redis, not announced.
    // The regeneration of `/p` begins at NOW + 200, caught up: its data, made long before,
    // is judged fresh by the mirror as it is.
    let began = NOW + 200.0;
    assert!(e.tags_caught_up(Millis(began)));
    let data_made = Millis(NOW - 60_000.0);
    assert_eq!(
        e.mirror()
            .evaluate(data_made, ["shared"], Millis(began + 20.0)),
        Freshness::Fresh
    );
    // The periodic pull, while the page renders, brings the revalidation.
    pull_revalidation(&mut e, "2", "shared", NOW + 100.0, NOW + 250.0);
    assert_ne!(
        e.mirror()
            .evaluate(data_made, ["shared"], Millis(NOW + 260.0)),
        Freshness::Fresh
    );
    let meta = regenerated_page(&mut e, &tags, began, NOW + 400.0);
    assert_eq!(
        meta.timestamp,
        Millis(began),
        "revalidate counts from the start"
    );
    assert_ne!(
        e.mirror().evaluate(meta.made(), tags, Millis(NOW + 500.0)),
        Freshness::Fresh,
        "the page holds data the revalidation invalidated; judged by {}",
        meta.made().0 - NOW
    );
    // A regeneration begun after that pull was applied holds data judged with it: fresh.
    let later = regenerated_page(&mut e, &tags, NOW + 300.0, NOW + 400.0);
    assert_eq!(
        e.mirror().evaluate(later.made(), tags, Millis(NOW + 500.0)),
        Freshness::Fresh,
        "judged by {}",
        later.made().0 - NOW
    );
}

/// A `'use cache'` entry written by `e`, whose invocation Next began at `timestamp`.
fn written_use_cache(
    e: &mut Engine,
    tags: &[&str],
    timestamp: f64,
    now: f64,
) -> crate::envelope::EntryMeta {
    use crate::write_machine::{WriteRequest, WriteStep};
    let req = WriteRequest::UseCache {
        iface: Interface::UseCache("default"),
        cache_key: "outer",
        tags,
        timestamp: Millis(timestamp),
        revalidate: 900.0,
        expire: 3600.0,
        stale: 30.0,
        payload_len: 3,
    };
    let mut w = e.write_start(req, Millis(now));
    let header = match e.write_first(&mut w, Millis(now)) {
        WriteStep::Store(s) => s.header,
        other => panic!("expected a store, got {other:?}"),
    };
    let total = header.len() + 3;
    crate::envelope::decode_header(&header, total).unwrap().meta
}

/// The same for a `'use cache'` entry: its function may read another entry (a nested
/// `'use cache'`, whose tags Next adds to the outer's), judged fresh by a mirror that lacks a
/// revalidation that resolved since its last pull began. Stamped with the outer's start, after
/// the revalidation, the outer held the old data as fresh on every instance, and every page
/// regenerated from it later too (tests/faults/freshness-bound.test.mjs, the nested rounds
/// revalidated on P following by push). Next's stamp still counts its `revalidate`.
#[test]
fn a_use_cache_entry_written_before_this_process_heard_of_a_revalidation_reads_stale_once_it_has() {
    use crate::tags::Freshness;
    let tags = ["shared", "_N_T_/p"];
    let mut e = push_engine();
    pull(&mut e, "1", NOW + 50.0);
    // `shared` revalidated at NOW + 100, unannounced; the outer invocation begins at NOW + 200,
    // caught up, and reads the inner entry, judged fresh by the mirror as it is.
    let began = NOW + 200.0;
    assert!(e.tags_caught_up(Millis(began)));
    pull_revalidation(&mut e, "2", "shared", NOW + 100.0, NOW + 250.0);
    let meta = written_use_cache(&mut e, &tags, began, NOW + 400.0);
    assert_eq!(
        meta.timestamp,
        Millis(began),
        "revalidate counts from Next's start"
    );
    assert_ne!(
        e.mirror().evaluate(meta.made(), tags, Millis(NOW + 500.0)),
        Freshness::Fresh,
        "the entry may hold data the revalidation invalidated; judged by {}",
        meta.made().0 - NOW
    );
    // One begun after that pull was applied (and after the first one's value could be joined)
    // judged what it read with it: fresh.
    pull(&mut e, "2", NOW + 4_900.0);
    let later = written_use_cache(&mut e, &tags, NOW + 5_000.0, NOW + 5_100.0);
    assert_eq!(later.timestamp, Millis(NOW + 5_000.0));
    assert_eq!(
        e.mirror().evaluate(later.made(), tags, Millis(NOW + 500.0)),
        Freshness::Fresh
    );
}

/// A page whose regeneration began after the pull that brought such a revalidation, and that
/// joined the pending value of an outer `'use cache'` begun before it (Next 16.3.8 and later
/// hand it to the page without asking the handler), holds what the outer read under the older
/// mirror: the value must count by the time its data was judged, not by Next's stamp, which
/// is after the revalidation.
#[test]
fn a_page_that_joined_a_value_judged_before_a_pull_brought_a_revalidation_reads_stale() {
    use crate::tags::Freshness;
    let mut e = push_engine();
    pull(&mut e, "1", NOW + 50.0);
    // `shared` revalidated at NOW + 100, unannounced; the outer begins at NOW + 200 and reads
    // the inner entry as fresh; its write begins at NOW + 220.
    let outer = written_use_cache(&mut e, &["shared"], NOW + 200.0, NOW + 220.0);
    pull_revalidation(&mut e, "2", "shared", NOW + 100.0, NOW + 250.0);
    assert_ne!(
        e.mirror()
            .evaluate(outer.made(), ["shared"], Millis(NOW + 260.0)),
        Freshness::Fresh
    );
    let tags = ["_N_T_/p", "shared"];
    let page = regenerated_page(&mut e, &tags, NOW + 300.0, NOW + 400.0);
    assert_ne!(
        e.mirror().evaluate(page.made(), tags, Millis(NOW + 500.0)),
        Freshness::Fresh,
        "the page may hold the outer's old data; judged by {}",
        page.made().0 - NOW
    );
}

/// An outer `'use cache'` entry that may have joined a value written while it ran goes back to
/// that value's stamp (Next's, which its `revalidate` counts from), and only its tags judge it
/// by the earlier time its data was judged by: lowering the stamp itself to that time would
/// make every such entry due up to a pull interval early, with no revalidation at all.
#[test]
fn an_outer_entry_keeps_the_stamp_of_a_value_it_joined_and_is_judged_by_that_values_pull() {
    use crate::tags::Freshness;
    let mut e = push_engine();
    pull(&mut e, "1", NOW + 50.0);
    let _fill = written_use_cache(&mut e, &["shared"], NOW + 400.0, NOW + 620.0);
    let outer = written_use_cache(&mut e, &["shared", "_N_T_/p"], NOW + 500.0, NOW + 700.0);
    assert_eq!(outer.timestamp, Millis(NOW + 400.0));
    assert_eq!(outer.made_at, Some(Millis(NOW + 50.0)));
    assert_eq!(
        e.mirror()
            .evaluate(outer.made(), ["shared", "_N_T_/p"], Millis(NOW + 800.0)),
        Freshness::Fresh
    );
}

/// An announcement applied as the next version vouches for every version before it: what a
/// process regenerates once it has applied one is judged from the millisecond after that
/// revalidation was made (or its last pull, if later), so it is not stale by the very
/// revalidation it was regenerated for, as it was until the pull the announcement starts had
/// been applied (one more origin call per revalidation, measured). What it regenerated before
/// it applied the announcement still goes by its last pull.
#[test]
fn an_entry_regenerated_after_an_announcement_was_applied_is_judged_from_that_revalidation() {
    use crate::tags::Freshness;
    let mut e = push_engine();
    pull(&mut e, "1", NOW + 50.0);
    let tags = ["shared", "_N_T_/p"];
    // Begun before the announcement of `shared` revalidated at NOW + 100 was applied.
    let before = written_use_cache(&mut e, &tags, NOW + 110.0, NOW + 200.0);
    let msg = expiry_announcement("2", "shared", NOW + 100.0);
    assert_eq!(
        e.apply_announcement(&msg, Millis(NOW + 120.0)),
        Ok(Announced::Applied(1))
    );
    assert_eq!(before.made_at, Some(Millis(NOW + 50.0)));
    assert_ne!(
        e.mirror()
            .evaluate(before.made(), tags, Millis(NOW + 300.0)),
        Freshness::Fresh
    );
    // Begun after it was applied (the pull it starts not yet applied): fresh by it. (Other
    // implicit tags: what holds the first one's value, which it may have joined, goes by it.)
    let other = ["shared", "_N_T_/q"];
    let after = written_use_cache(&mut e, &other, NOW + 130.0, NOW + 5_000.0);
    assert_eq!(after.made_at, Some(Millis(NOW + 101.0)));
    assert_eq!(
        e.mirror()
            .evaluate(after.made(), other, Millis(NOW + 5_100.0)),
        Freshness::Fresh
    );
    let page = regenerated_page(&mut e, &["shared", "_N_T_/r"], NOW + 140.0, NOW + 5_000.0);
    assert_eq!(page.made_at, Some(Millis(NOW + 101.0)));
}

/// Pulling on every request, a regeneration's data is judged by its request's own pull, which
/// started after the regeneration began: the page keeps its start for its tags too.
#[test]
fn pulling_a_regenerated_page_is_judged_by_its_start() {
    let mut e = Engine::new(Config {
        prefix: "fc".into(),
        deployment: "d1".into(),
        ..Config::default()
    })
    .unwrap();
    pull(&mut e, "1", NOW - 10.0);
    let meta = regenerated_page(&mut e, &["_N_T_/p", "shared"], NOW + 200.0, NOW + 400.0);
    assert_eq!(meta.timestamp, Millis(NOW + 200.0));
    assert_eq!(meta.made_at, None);
}

/// `push_engine`, pulled at `NOW + 50`, then `p` expired by this process at `NOW + 100.3`,
/// a time within a ms (the engine records it rounded up).
fn own_expiry_at_a_fraction_of_a_ms() -> Engine {
    let mut e = push_engine();
    pull(&mut e, "1", NOW + 50.0);
    e.queue_tag_update(
        &["p"],
        &crate::tags::Revalidation::Expire,
        Millis(NOW + 100.3),
    )
    .unwrap();
    e
}

/// A revalidation of this process's own is recorded at its ms rounded up; a pull planned any
/// time after that answers it, so it is due from then on, not a whole ms later.
#[test]
fn an_own_revalidations_pull_is_due_as_soon_as_one_planned_would_answer_it() {
    let mut e = own_expiry_at_a_fraction_of_a_ms();
    assert!(
        pull_in(&e, NOW + 101.0).unwrap_or_default() > 0.0,
        "not in its recorded ms"
    );
    assert_eq!(
        pull_in(&e, NOW + 101.25),
        Some(0.0),
        "due once a pull planned would answer it"
    );
    pull(&mut e, "2", NOW + 101.25);
    assert!(
        pull_in(&e, NOW + 102.0).unwrap_or_default() > 700.0,
        "that pull answered it: the periodic pull is next"
    );
}

/// Pulling on learning (`PushFollow::learned`), a busy fleet's announcements, of any tags,
/// each bring a pull: a regeneration that runs while more than `RECENT_PULLS` are applied
/// must still be judged by the pull applied last before it began, not by its start less the
/// pull interval (every pull it kept applied after it began), which falls before the
/// revalidation it regenerates for: stale as it is written, regenerated again and again until
/// the revalidation is a pull interval old.
#[test]
fn a_long_regeneration_keeps_the_pull_it_began_after_through_many_learned_pulls() {
    use crate::tags::Freshness;
    let mut e = push_engine();
    // `p` revalidated here; the pull it brings follows at once.
    e.queue_tag_update(
        &["p"],
        &crate::tags::Revalidation::Expire,
        Millis(NOW + 100.0),
    )
    .unwrap();
    let due = pull_in(&e, NOW + 100.0).unwrap_or_default();
    assert!(due > 0.0 && due < 0.001, "{due}");
    pull(&mut e, "2", NOW + 101.0);
    // The page, regenerated for it, begins after that pull; meanwhile the fleet revalidates
    // other tags, announced, each followed by a pull (twice RECENT_PULLS of them, within a pull interval).
    let began = NOW + 200.0;
    let mut at = began;
    for i in 0..2 * crate::tag_sync::RECENT_PULLS {
        at += 10.0;
        let version = (3 + i).to_string();
        let msg = expiry_announcement(&version, &format!("other{i}"), at);
        assert!(matches!(
            e.apply_announcement(&msg, Millis(at)),
            Ok(Announced::Applied(_))
        ));
        assert_eq!(pull_in(&e, at), Some(0.0));
        pull(&mut e, &version, at + 1.0);
    }
    let tags = ["_N_T_/p", "p"];
    let page = regenerated_page(&mut e, &tags, began, at + 10.0);
    assert_eq!(
        e.mirror().evaluate(page.made(), tags, Millis(at + 20.0)),
        Freshness::Fresh,
        "judged by {}",
        page.made().0 - NOW
    );
}

/// A revalidation of this process's own is recorded at its ms rounded up, and a pull made due
/// at once would start in that very ms, before that time: it would vouch for no regeneration
/// against it, and what is regenerated of its tags would be stale as it is written until the
/// periodic pull, a pull interval later, not a round trip. The pull is due just after that
/// time, and stays due until one planned past it.
#[test]
fn an_own_revalidation_keeps_a_pull_due_until_one_starts_after_its_recorded_time() {
    use crate::tags::Freshness;
    let mut e = own_expiry_at_a_fraction_of_a_ms();
    let due = pull_in(&e, NOW + 100.3).unwrap_or_default();
    assert!((0.7..0.701).contains(&due), "{due}");
    // A pull planned in the same ms (a request's, say).
    pull(&mut e, "2", NOW + 100.5);
    let tags = ["_N_T_/p", "p"];
    let page = regenerated_page(&mut e, &tags, NOW + 101.6, NOW + 110.0);
    assert_ne!(
        e.mirror().evaluate(page.made(), tags, Millis(NOW + 111.0)),
        Freshness::Fresh,
        "judged by a pull started before the revalidation's recorded time"
    );
    assert_eq!(
        pull_in(&e, NOW + 101.6),
        Some(0.0),
        "a pull that vouches past the revalidation is still due"
    );
    pull(&mut e, "2", NOW + 102.0);
    assert!(pull_in(&e, NOW + 103.0).unwrap_or_default() > 700.0);
    let page = regenerated_page(&mut e, &tags, NOW + 103.5, NOW + 110.0);
    assert_eq!(
        e.mirror().evaluate(page.made(), tags, Millis(NOW + 111.0)),
        Freshness::Fresh
    );
}

/// The announcement of one of this process's own revalidations tells it nothing it did not
/// know when it sent the update: the pull its revalidation made due, planned after the update
/// went out (one connection, in order), answers it. Heard after that pull was planned (a round
/// trip longer than what was left of the revalidation's ms), it made another pull due at once:
/// two pulls per own revalidation where one answers it. Another process's announcement heard
/// then still makes one due (`PushFollow::learned`).
#[test]
fn the_announcement_of_an_own_revalidation_makes_no_pull_due() {
    for own in [true, false] {
        let mut e = own_expiry_at_a_fraction_of_a_ms();
        let sent = "0123456789abcdef0123456789abcdef";
        assert!(e.plan_outbox_head(sent).unwrap().is_some());
        assert_eq!(pull_in(&e, NOW + 101.25), Some(0.0));
        e.plan_tag_pull(Millis(NOW + 101.25));
        let id = if own {
            sent
        } else {
            "fedcba9876543210fedcba9876543210"
        };
        let msg = announcement_of("2", id, "p", NOW + 100.3);
        heard_then_pulled(&mut e, &msg, id, NOW + 101.4);
        assert!(e.tags_caught_up(Millis(NOW + 102.0)));
        let due = pull_in(&e, NOW + 102.0).unwrap_or_default();
        if own {
            assert!(
                due > 700.0,
                "own: the periodic pull is next, not one in {due} ms"
            );
        } else {
            assert_eq!(due, 0.0, "another's: due at once");
        }
    }
}

/// `msg`, the announcement of version 2 (id `id`), heard at `heard` while a pull is out, then
/// that pull's reply, which finds version 2 under `id`, 0.1 ms later.
fn heard_then_pulled(e: &mut Engine, msg: &[u8], id: &str, heard: f64) {
    assert!(matches!(
        e.apply_announcement(msg, Millis(heard)),
        Ok(Announced::Applied(_))
    ));
    e.apply_refresh(
        &netstring::encode(["E", "2", id, "0", "1", "w1"]),
        Millis(heard + 0.1),
    )
    .unwrap();
}

/// The announcement of `version` (epoch `E`), of id `id`: `tag` expired at `rev_at`; the id
/// of the version it follows unknown.
fn announcement_of(version: &str, id: &str, tag: &str, rev_at: f64) -> Vec<u8> {
    announcement_following(version, id, "", tag, rev_at)
}

/// The same, following the version of id `prev`.
fn announcement_following(version: &str, id: &str, prev: &str, tag: &str, rev_at: f64) -> Vec<u8> {
    let mut rec = crate::tags::TagRecord::default();
    rec.apply(&crate::tags::Revalidation::Expire, Millis(rev_at));
    netstring::encode([
        "a".to_owned(),
        "E".to_owned(),
        version.to_owned(),
        id.to_owned(),
        prev.to_owned(),
        tag.to_owned(),
        rec.encode(),
    ])
}

/// The pull an announcement makes due also checks the version it followed: a rollback with
/// the subscription up may have given that version to another update, whose announcement was
/// lost, and until a pull finds that, what is regenerated is judged from the announced
/// revalidation, past the one the mirror lacks. The pull of an own revalidation does that
/// check only when it was planned after the update went out (one connection, in order): one
/// planned before it (the outbox queued behind earlier updates, or a pull already past the
/// revalidation's time) ran before the update, so the update's announcement makes a pull due
/// at once, as another process's does; without it the check waited for the periodic pull, a
/// pull interval of regenerations stamped past a revalidation this process never learnt.
/// A pull planned after the update that fails gives the check back.
#[test]
fn an_own_announcement_makes_a_pull_due_unless_one_planned_after_its_update_checks_it() {
    use crate::tags::Freshness;
    // The pull that answers the revalidation is planned (and applied) before the update goes
    // out: it checked version 1 before the update ran.
    let mut e = own_expiry_at_a_fraction_of_a_ms();
    pull(&mut e, "1", NOW + 101.25);
    let sent = "0123456789abcdef0123456789abcdef";
    assert!(e.plan_outbox_head(sent).unwrap().is_some());
    assert!(pull_in(&e, NOW + 102.5).unwrap_or_default() > 700.0);
    // Version 1 was rolled back and given to another update (`b` at NOW + 101), whose
    // announcement was lost; this update's, version 2, follows it.
    let msg = announcement_of("2", sent, "p", NOW + 101.0);
    assert!(matches!(
        e.apply_announcement(&msg, Millis(NOW + 103.0)),
        Ok(Announced::Applied(_))
    ));
    // What is regenerated now goes by the announced revalidation: past `b`'s, unknown here.
    let page = regenerated_page(&mut e, &["_N_T_/p", "b"], NOW + 103.5, NOW + 104.0);
    let mut b = crate::tags::TagRecord::default();
    b.apply(&crate::tags::Revalidation::Expire, Millis(NOW + 101.0));
    assert_eq!(
        b.freshness(page.made(), Millis(NOW + 105.0)),
        Freshness::Fresh,
        "judged from {}",
        page.made().0 - NOW
    );
    assert_eq!(
        pull_in(&e, NOW + 103.0),
        Some(0.0),
        "the version the update followed is checked at once"
    );

    // Planned after the update went out: that pull checks it, no other is due.
    let mut e = own_expiry_at_a_fraction_of_a_ms();
    assert!(e.plan_outbox_head(sent).unwrap().is_some());
    e.plan_tag_pull(Millis(NOW + 101.25));
    heard_then_pulled(&mut e, &msg, sent, NOW + 101.4);
    assert!(pull_in(&e, NOW + 102.0).unwrap_or_default() > 700.0);

    // The pull planned after the update (a request's, the revalidation's own pull applied
    // before the update went out) fails: the check is due again, after the backoff.
    let mut e = own_expiry_at_a_fraction_of_a_ms();
    pull(&mut e, "1", NOW + 101.25);
    assert!(e.plan_outbox_head(sent).unwrap().is_some());
    e.plan_tag_pull(Millis(NOW + 102.0));
    assert!(matches!(
        e.apply_announcement(&msg, Millis(NOW + 102.5)),
        Ok(Announced::Applied(_))
    ));
    e.tag_pull_failed(Millis(NOW + 103.0));
    assert_eq!(pull_in(&e, NOW + 103.5), Some(99.5));
}

/// The same for an update planned and sent at once (`Engine::plan_tag_update`, no outbox): its
/// announcement, heard while the pull planned after it is out, makes no other pull due.
#[test]
fn the_announcement_of_an_update_sent_at_once_makes_no_pull_due_behind_its_pull() {
    let mut e = push_engine();
    pull(&mut e, "1", NOW + 50.0);
    let sent = "0123456789abcdef0123456789abcdef";
    e.plan_tag_update(
        &["p"],
        &crate::tags::Revalidation::Expire,
        Millis(NOW + 100.3),
        sent,
    )
    .unwrap();
    e.plan_tag_pull(Millis(NOW + 101.25));
    let msg = announcement_of("2", sent, "p", NOW + 101.0);
    heard_then_pulled(&mut e, &msg, sent, NOW + 101.4);
    let due = pull_in(&e, NOW + 102.0).unwrap_or_default();
    assert!(
        due > 700.0,
        "the periodic pull is next, not one in {due} ms"
    );
}

/// A rollback with the subscription up gave version 1, the mirror's, to another update (`b`
/// revalidated at NOW + 101) whose announcement was lost; version 2's announcement names that
/// update's id as the one it follows (tag_update.lua): a gap, so what is regenerated next is
/// not judged from version 2's revalidation, past `b`'s. Following the mirror's own version
/// (or with the id unknown), it is applied and vouches for what comes after it.
#[test]
fn an_announcement_following_another_version_than_the_mirrors_vouches_for_nothing() {
    use crate::tags::{Freshness, Revalidation, TagRecord};
    let mut b = TagRecord::default();
    b.apply(&Revalidation::Expire, Millis(NOW + 101.0));
    for (prev, expected) in [("vX", Announced::Gap), ("v1", Announced::Applied(1))] {
        // Version 1 ("v1") pulled at NOW - 10.
        let mut e = push_engine();
        let msg = announcement_following("2", "v2", prev, "p", NOW + 101.0);
        assert_eq!(
            e.apply_announcement(&msg, Millis(NOW + 103.0)),
            Ok(expected)
        );
        let page = regenerated_page(&mut e, &["_N_T_/p", "b"], NOW + 103.5, NOW + 104.0);
        let judged = b.freshness(page.made(), Millis(NOW + 105.0));
        if expected == Announced::Gap {
            assert_ne!(judged, Freshness::Fresh, "made {}", page.made().0 - NOW);
        } else {
            assert_eq!(judged, Freshness::Fresh, "made {}", page.made().0 - NOW);
        }
    }
}
