//! What a pull allocates while a merge giving lost records back keeps failing (Redis out of
//! memory refuses every write, reads go on): measured by a counting allocator, which is why
//! this is a test binary of its own (the core forbids `unsafe`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use fleetcache_core::config::Config;
use fleetcache_core::engine::Engine;
use fleetcache_core::netstring;
use fleetcache_core::time::Millis;

thread_local! {
    /// Allocations (and reallocations) made by this thread.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

fn count() {
    // A const-initialised `Cell` has no destructor: there is always one to count in.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is passed on to the system allocator as is.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn engine() -> Engine {
    Engine::new(Config {
        prefix: "fc".into(),
        deployment: "d1".into(),
        ..Config::default()
    })
    .unwrap()
}

/// Loads the state `epoch` at version `ver` holding `pairs` (tag, record, tag, record...),
/// as the refresh and page scripts answer: a full reply, one page, the catch-up refresh.
fn load(e: &mut Engine, epoch: &str, ver: &str, pairs: &[String], now: f64) {
    let head = e
        .apply_refresh(
            &netstring::encode([epoch, ver, "v", "1", "0", "", "c1"]),
            Millis(now),
        )
        .unwrap();
    assert!(head.full);
    assert_eq!(e.plan_tag_refresh().script.name, "tag_page");
    let mut page = vec![
        "page".to_owned(),
        "0".to_owned(),
        ver.to_owned(),
        "v".to_owned(),
        "0".to_owned(),
    ];
    page.extend(pairs.iter().cloned());
    e.apply_refresh(&netstring::encode(&page), Millis(now))
        .unwrap();
    e.plan_tag_refresh();
    pull(e, epoch, ver, now);
    assert!(e.mirror().is_synced());
}

/// A pull of the state `epoch` at version `ver` that changed nothing since the last.
fn pull(e: &mut Engine, epoch: &str, ver: &str, now: f64) {
    e.apply_refresh(
        &netstring::encode([epoch, ver, "v", "0", "0", ""]),
        Millis(now),
    )
    .unwrap();
}

/// Allocations of one pull that changes nothing.
fn allocations_of_a_pull(e: &mut Engine, epoch: &str, now: f64) -> u64 {
    let reply = netstring::encode([epoch, "0", "v", "0", "0", ""]);
    let before = allocations();
    e.apply_refresh(&reply, Millis(now)).unwrap();
    allocations() - before
}

/// A flush lost 300 records this process knew: a batch of 256 goes out and Redis refuses it
/// (OOM), so it stays planned, and the pulls go on at the same version. Each pull then
/// allocates what a pull with no merge in flight does, however many come: before, each put
/// the batch back in the queue (a key allocated per record) and took it off again, compacting
/// the queue: 394 allocations a pull against 6, for as long as Redis refused the merge, in
/// every process in pull mode.
/// What is given back, and when, does not change: the same batch, then the rest.
#[test]
fn a_pull_allocates_nothing_for_a_merge_that_keeps_failing() {
    let mut e = engine();
    let pairs: Vec<String> = (0..300)
        .flat_map(|i| [format!("t{i}"), "0,10,0,0,10".to_owned()])
        .collect();
    load(&mut e, "E", "1", &pairs, 20.0);
    load(&mut e, "F", "0", &[], 30.0);
    assert_eq!(e.resend_records(), 300);
    // Nothing in flight: what a pull allocates anyway (parsing the reply).
    let plain = allocations_of_a_pull(&mut e, "F", 31.0);
    let batch = e.plan_resend("c").unwrap().expect("a merge is due").args;
    assert_eq!(batch.len(), 1 + 2 * 256);
    for i in 0..4 {
        let n = allocations_of_a_pull(&mut e, "F", 32.0 + f64::from(i));
        assert_eq!(
            n, plain,
            "pull {i} with the merge in flight: {n} allocations, {plain} without"
        );
        assert_eq!(e.resend_records(), 300);
    }
    // The merge is retried as it was, and the rest follows its acknowledgement.
    assert_eq!(e.plan_resend("c").unwrap().unwrap().args, batch);
    e.ack_resend();
    assert_eq!(e.resend_records(), 44);
    let rest = e.plan_resend("c").unwrap().unwrap().args;
    assert_eq!(rest.len(), 1 + 2 * 44);
    e.ack_resend();
    assert_eq!(e.resend_records(), 0);
}
