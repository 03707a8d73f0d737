//! The freshness contract (docs/failures.md, "Freshness") as a property: several instances,
//! each with its own real [`Engine`], share a model of Redis; proptest draws histories of
//! writes, reads, revalidations in all three modes, flushes, failovers that lose the last
//! updates (a restore of an earlier state), restarts, outages, lost replies, clock advances
//! and event-loop stalls, and shrinks a violation to a minimal one.
//!
//! The model runs the tag scripts' rules as `src/lua/*.lua` state them (update, refresh with
//! version ids, page with the check of the version the previous page was read at, merge), the
//! lease scripts (acquire, poll, write, release), and the seed's
//! (`tests/support/seed_rule.rs`); `tests/lua_scripts.rs` checks the Lua agrees with the same
//! Rust rules on a real redis-server.
//!
//! Requests overlap, as on a host. A read coalesces with its process's tag refresh in flight
//! (as `TagSync` does), its `GET` or lease poll joins one of the same key its process has in
//! flight only if that went out since the read began, under the count of page announcements
//! heard then (`Engine::page_heard`; `share` in the read driver; the joined read is told,
//! `ReadMachine::joined`), and it steps the
//! core's read machine over this process's write in flight, its tier, Redis and the lease; a
//! write steps the core's write machine (the host
//! keeps its copy in the tier and as its write in flight, and marks it local when the store
//! fails). Every command goes through the instance's circuit breaker and is in flight until a
//! drawn `Step` carries it to Redis and another carries its reply back, so the commands of
//! several requests interleave; a reply may be lost, and one delivered past its budget (after
//! an advance or a ~1 s stall of the clock) is a timeout for the machine and the breaker.
//! The tag side's writes are commands of their own: an instance's drain sends the outbox's
//! head (`tag_update.lua`), then the records to give back (`tag_merge.lua`), one command at a
//! time and one drain at a time, as tag-sync.ts's `replay` and `resend` do (`ackOutbox` then
//! `applyUpdateReply`, or `ackResend` then `applyUpdateReply`, on a reply; `failOutbox` on a
//! timeout, a lost reply or an open breaker, after which the head waits the engine's backoff
//! unless Redis answers another command; a merge that failed is planned again). Most are
//! answered at once; one drawn held ([`Op::HoldTag`], an update or a merge, its reply lost or
//! not) is in flight until [`Op::TagStep`]s carry it to Redis and its reply back, so between
//! its run and its reply come requests' refreshes (run before or after it, answered before or
//! after its reply), other instances' updates, announcements, flushes, failovers, lost keys
//! and outages, and a reply read past its budget is a timeout; a lost one leaves the update
//! at the head, sent again (the scripts' rules make the second run harmless). The retry
//! timer's refresh is still answered at once. So replies on the tag state come back in any
//! order relative to the requests' refreshes, as the workers entry's transport contract
//! allows (docs/transport.md: commands in flight concurrently): a refresh sent after an update
//! may run before it, which the Node host's one connection does not do. Not drawn: an error
//! reply to an update or a merge (`refuseOutbox`: a permission error, `WRONGTYPE`), the
//! retry timer's refresh held in flight, a restart between an update's run and its reply that
//! the process survives (a restart drops the command and the outbox with the process), and
//! the host's close (`sendLast`).
//!
//! The outbox fills in a third of the histories of the first two properties (pulling, and
//! following by push), of the singular handler's (`no_singular_handler_...`,
//! `overlapping_regenerations_...`, `written_back_values_...`), the bounded mirror's
//! (`a_bounded_mirror_gives_back_...`) and the two across lost keys
//! (`across_lost_keys_no_read_...`, `across_lost_keys_following_by_push_...`): every
//! instance's outbox holds 1 to 3 revalidations there ([`outbox_bound`], drawn as the history
//! begins, after its other inputs, so the stored seeds draw the histories they drew before),
//! which an outage, an open breaker, a backoff or an update held in flight fills; the rest,
//! and the other properties, run the default (1000, never full). A full
//! outbox takes its oldest update out (the one in flight, maybe, whose reply may still come)
//! and the engine queues what it wrote to be merged back after the queue
//! (`TagMirror::give_back_unsent`; with a mirror bounded to 1 or 2 records, past that many
//! waiting, under [`FOLDED_TAG`]).
//!
//! The invariant: a read whose refresh succeeded never serves as fresh (or as stale where only
//! a miss is allowed) an entry that a revalidation resolved before the read began invalidated
//! (resolved: the reply of its update reached its instance; for one taken out of a full outbox,
//! Redis told its instance it holds it: commands of that instance whose reply it got wrote a
//! record covering it to each of its tags, or to [`FOLDED_TAG`] (the merge carrying it, its own
//! update in flight when it was taken out, a later update of the same tags), or a refresh of
//! that instance found such records there, [`World::resolve_taken_out`]; a restart of its
//! instance before then loses it, as it loses the queued ones, and it binds no read),
//! unless Redis, when that refresh ran there (or the instance's last refresh, when the read is
//! judged after it), did not hold that revalidation and the instance had not learnt it when it
//! judged the entry (it was lost and no instance that knew it has written it back yet). Only a refresh that failed
//! excuses a read judged by the tag state loaded before (docs/failures.md, "A failed
//! refresh"); a read that asked for none has no excuse. A follower that only serves a response
//! may get a stale entry as fresh while another request holds its lease (single-flight); a
//! read whose answer is cached may not. The entry's creation time is read from its payload
//! (the writer puts there when its regeneration began), not from the header the write machine
//! stamped. And the liveness half: once Redis answers and every instance has caught up, every
//! instance has the tag state loaded again, every revalidation a live instance knows of is
//! back in Redis, and every one a live instance took out of its outbox has resolved.
//!
//! Following the state by push (the second property, same requests, breaker and tier), a read
//! skips its refresh while the core says it is caught up when the read begins; the update
//! script announces each version to the instances whose channel listens, delivered in order,
//! late, or lost with a channel that drops before the instance notices. The invariant becomes:
//! within the bound, or pulled. A read that skipped its refresh honours every revalidation that
//! resolved before it began, except one that resolved less than the bound ([`PUSH_BOUND_MS`],
//! the longest time between pulls) before it began and whose announcement had not reached the
//! instance then: still on its way, or lost with a channel whose drop the instance had not
//! noticed, or, for one taken out of a full outbox that resolved otherwise than by its own
//! update's reply (by a merge, which is not announced, or by an update of another
//! revalidation), none comes (to any instance but its own). A read that pulled, as above.
//!
//! The singular `cacheHandler` (the third property, pulling or following by push, Next 16.4 or
//! a release before it) is held to the same contract, in histories that mix its requests with
//! `'use cache'` ones over the same tags, Redis, instances, breakers and tiers (the instances
//! have loaded the tag state when a history begins; a restart begins cold). Its reads are of a
//! page (`APP_PAGE` `/p`, which carries its implicit `_N_T_/p` and explicit tags, so a
//! revalidation by path is one of `_N_T_/p`) and of a `fetch` entry (judged with the soft tags
//! its read gives, and with its own `revalidate` when it has one), by a consumer that serves a
//! response or one that caches it, or an on-demand revalidation's page read. Each steps the
//! read machine as `incremental-handler.ts` and `read-driver.ts` do: the machine asks for the
//! tag refresh (coalesced as above, or none while caught up), which travels beside the tier's
//! turn and the entry's `GET`, and the driver gives the machine nothing before it has ended
//! (rule R1); the tier keeps what the machine says, a page for outages only. Each read is a
//! request of its own, with its own handler instance (Next builds one per request), which
//! keeps what the answer left for the request's write of the key (`ReadAnswer::own`, the
//! least of each field per key, as `OwnReads` in incremental-handler.ts) and hands
//! it back with that write (`WriteRequest::Incremental { own, .. }`). An answer after which
//! Next regenerates (`regenerates`) begins a render of that key in that request: a page's one
//! at a time per process (a read that comes while one runs joins it, as Next's response cache
//! does), a `fetch` entry's one per request that found it missing or stale, so several
//! requests of one process may refetch and write one key at once (Next joins fetches neither
//! across requests nor across processes), with leases off, or on and after the lease wait
//! (the property draws both). Next judges each answer again when it gets it (its second look,
//! same clock, `lastModified + revalidate` as it applies them, as the check does below); a
//! drawn event-loop stall may come between the answer and that moment (`Op::LateAnswer`), and
//! an answer past its due by then is regenerated by Next on its own, though fleetcache
//! answered it fresh and noted no stale answer. A drawn write stores a pending render's
//! result, in any order or never, through the write machine, which stamps the entry itself;
//! the payload carries when the render began (when the answer reached Next: its data is at
//! least that new), and the check reads that. `fleetcache seed` runs among them as a process
//! of its own (seed.ts, decisions 0023 and 0031): it pulls the tag state, and at a later step
//! leaves the page out when a revalidation of its tags came after the build, or writes it
//! stamped `seed_timestamp` (the build's time, never later than its own clock, which may lag
//! the fleet's) through `entry_write.lua`'s seed mode, which keeps an entry created at or
//! after that stamp. Its payload carries the build's time, so the check judges a seeded page
//! as data of that time; its write is a page write like a render's (announced, lost with a
//! flush or a failover, its reply maybe lost), and one that replaced an entry created at or
//! after its stamp fails the history at once. A read's answer counts as what Next makes of it
//! the moment it gets it:
//!
//! - a miss (`null`) is a miss;
//! - a `fetch` entry is stale once `now - lastModified` exceeds the read's own `revalidate`,
//!   else the value's (Next's `ctx.revalidate || value.revalidate`), fresh before;
//! - a page, on 16.4 and later (which take the returned `cacheControl`), is expired (a
//!   blocking regeneration) once `lastModified + expire` has passed, stale once
//!   `lastModified + revalidate` has (never, for `revalidate: false`), fresh before;
//! - a page before 16.4 is judged by Next against its own record of the route, which the
//!   handler cannot know: any page served counts as fresh there, so a page a revalidation made
//!   stale must be a miss.
//!
//! The invariant is the one above with "served as fresh" read that way: what Next makes of the
//! answer is at least as stale as the revalidation requires (a miss where it expired the
//! entry), except a stale entry shown as fresh to a follower that only serves a response. An
//! on-demand revalidation's read is not checked: Next renders the page whatever it found.
//!
//! The same contract, in shorter histories of singular-handler requests alone whose
//! regenerations overlap in one process
//! (`overlapping_regenerations_are_stamped_with_their_own_reads`: two instances, so requests
//! often share one; late answers, mostly past a 3 s `revalidate`; revalidations between a
//! render's start and its write; faults rare), where the two gaps first found by hand
//! (several requests writing one `fetch` key; Next's second look) are a few steps deep rather
//! than a few dozen.
//!
//! And in histories of the same shape (Next 16.5, the page written first) that draw two cases
//! first found by hand
//! (`written_back_values_and_a_requests_second_read_keep_the_contract`):
//!
//! - a page regeneration that fails, after which Next 16.5 writes back the value its read was
//!   served, the very object (`retainPreviousCacheEntry`, response cache only: `fetch` entries
//!   are not written back): the same payload, so the check judges it as data of its first
//!   creation, the lifetime Next gives it (`revalidate` 3 to 30 s, its retry delay), and the
//!   answer's `written_back` stamp ([`Own::written_back`]). Besides the contract, a written-back
//!   page that only time had made stale is not regenerated again before its retry delay from
//!   the start of the read that served it ([`World::check_retry`]: per answer; a count of
//!   regenerations per key cannot tell a retry from a read that rightly regenerates);
//! - a request that reads its `fetch` entry a second time before its write (a fresh answer then
//!   a stale one, or the reverse), whose handler instance folds both answers with
//!   [`Own::least`]; a stale second answer joins the refetch the request has in flight (Next's
//!   `pendingRevalidates`).
//!
//! Three gaps found by these draws and by hand are fixed, each with a test of its own: a page
//! written back after a read whose instance had not learnt a revalidation (within the push
//! bound, a failed refresh), or one whose revalidation reached Redis only after the writer's
//! pull (replayed from an outbox), carried that read's start to every instance as its creation
//! time (now the entry keeps when the value was made, `EntryMeta::made_at`, which its tags
//! judge it by, apart from the stamp its lifetime counts from); and a refetch Next began on its second
//! look of a fresh answer was stamped with the same request's later stale read (now the
//! earlier of the two, `Own::counting`). Not drawn: a write-back of a route or an image, a
//! page read twice by one request, a write-back of a value the request read twice, a
//! write-back on a release before 16.5 (which does not write back).
//!
//! Clocks (docs/decisions/0036): each instance has a process clock (Next's, on which the host
//! hands its engine `now`) apart from its wall clock by an offset, and the wall clock is the
//! true time, exact. The properties draw each instance's offset as a history begins (0 mostly,
//! else 11 ms to 5 s behind or ahead: past the 10 ms slack) and steps of it mid-history
//! ([`Op::ClockStep`]: a pause of the machine, whose process clock stands still while the
//! fleet's time goes on; or its clock jumping ahead); a restart realigns it. Every engine call
//! gets the instance's process clock and, where the host passes one, its wall clock
//! (revalidations, writes, and `Engine::note_clocks` at each pull, and at a request's start
//! only when the clocks' distance moved by more than 5 ms from the last the engine was handed),
//! as the Node host does. Next stamps a `'use cache'` entry on its process's clock as it read
//! when the regeneration began, a step since or not (`World::clock_at`). The invariant stays in true time: a revalidation's required verdict is
//! that of its record at the true time it was made; only its expiry after a delay may come as
//! late as its stamp is after that time plus how far the judging process's clock ran behind
//! (each compares on its own clock). Next's second look is on the reading process's clock.
//! Next's retry delay for a written-back value is not checked in a history whose clocks
//! parted. Following by push, the bound is counted on the process's clock: a read judged
//! without a pull is excused a revalidation resolved less than the bound before it began plus
//! [`ReadTask::bound_late`] (the engine's threshold, the slack less the host's filter, plus how
//! far the clocks' distance is from the one last told), exactly what the engine's gap test
//! leaves. Those few ms past the bound are drawn where they matter: processes paused a few ms
//! at a time and read just past the bound of their last pull
//! (`following_by_push_a_read_after_a_pause_is_within_the_bound_or_pulled`), and one mirror
//! whose clocks move a few ms at a time, a pull out or not
//! (`across_clock_moves_a_caught_up_mirror_is_within_the_bound_in_true_time`).
//!
//! A page served in an outage, or from the copy kept after a failed read, is held to the
//! outage copy's rule instead (docs/failures.md, "The copy an outage serves"): never a value
//! that a write of the same instance, whose reply it got before the read began, replaced in
//! Redis ([`World::check_outage_page`]).

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};

use fleetcache_core::guard::{Admission, OpKind};
use fleetcache_core::incremental::{Descriptor, IncrementalSet, ValueKind};
use fleetcache_core::lease::Consumer;
use fleetcache_core::read_machine::{
    Bytes, Failure, IncrementalShown, ReadAction, ReadAnswer, ReadInput, ReadMachine, ReadStep,
    Served, Shown, Source, TierAction,
};
use fleetcache_core::regen::{Own, MAX_REGENERATION_MS};
use fleetcache_core::seed::SEED_CLOCK_TOLERANCE_MS;
use fleetcache_core::tag_fold::{DEFAULT_MAX_TAGS, FOLDED_TAG};
use fleetcache_core::tags::{Announced, EPOCH_WITHOUT_META, PART_TAGS};
use fleetcache_core::time::{CLOCK_AHEAD_SLACK_MS, CLOCK_NOTE_MS};
use fleetcache_core::write_machine::{WriteInput, WriteMachine, WriteRequest, WriteStep};
use fleetcache_core::{
    netstring, CallResult, Config, Engine, Freshness, Interface, Millis, NextRelease, Permit,
    Revalidation, ScriptCall, TagRecord, TierUse,
};
use proptest::prelude::*;

#[path = "support/seed_rule.rs"]
mod seed_rule;

const IFACE: Interface<'static> = Interface::UseCache("default");
const TAGS: [&str; 3] = ["a", "b", "_N_T_/p"];
const KEYS: [&str; 2] = ["k0", "k1"];
/// The singular handler's keys: the page `/p` (`APP_PAGE`, judged by the tags it carries, its
/// own `_N_T_/p` among them) and a `fetch` entry (judged with the tags its read gives).
const INC_KEYS: [(&str, bool); 2] = [("/p", false), ("f", true)];
/// The page's implicit tag, which `revalidatePath('/p')` revalidates (`TAGS[2]`).
const PAGE_TAG: &str = "_N_T_/p";
/// A fetch read's own `revalidate` (s), by `IncRead::revalidate`: none, shorter than the values
/// written (3 s or 900 s) or as long as the longer one.
const FETCH_REQUEST_REVALIDATE: [f64; 3] = [f64::NAN, 3.0, 900.0];
const T0: f64 = 1_795_690_530_000.0;
/// The longest time between pulls of an instance that follows the state by push.
const PUSH_BOUND_MS: f64 = 1_000.0;

/// The longest a `'use cache'` write's regeneration began before the write (`Op::Write`'s
/// `began`, drawn below 2,000 ms).
const MAX_WRITE_BEGAN_MS: f64 = 2_000.0;
/// The task owner that stands for `fleetcache seed`: a process of its own, none of the
/// instances (the CLI builds its own runtime on the same Redis).
const SEEDER: usize = usize::MAX;

/// The tag state as Redis holds it.
#[derive(Clone, Debug, Default)]
struct TagState {
    epoch: Option<String>,
    ver: u64,
    ids: HashMap<u64, String>,
    /// The page-write sequence (`entry_write.lua`): the last page write's number and id.
    pver: u64,
    pvid: String,
    records: HashMap<String, TagRecord>,
    log: HashMap<String, u64>,
    /// The server process holding the state: its hash seed orders HSCAN, so a cursor means
    /// nothing to another ([`TagState::scan`]). A failover moves the state to another.
    server: u64,
    /// When each tag entered `records` ([`BIRTHS`]): a scan may skip one that entered after
    /// it began, not one present for all of it.
    born: HashMap<String, u64>,
    /// The meta hash's `sweep` field: the HSCAN cursor of the pass over the records that the
    /// updates make after a state without a version (`tag_update.lua`), and whether another
    /// pass is due after it (a loss during it: `+`); `None` when none is due.
    sweep: Option<(String, bool)>,
    /// The tags the last update's sweep step logged: its announcement carries them.
    swept: Vec<String>,
    /// Merges run on this state ([`World::given_back`]).
    merges: u64,
}

/// Redis: entries, the tag state, and the leases (their token and expiry time).
#[derive(Clone, Debug, Default)]
struct Redis {
    entries: HashMap<String, Vec<u8>>,
    tags: TagState,
    leases: HashMap<String, (String, f64)>,
    /// Announcements published by the last command, for the listening channels, each with
    /// the page write it announces (`None`: a tag update's).
    published: Vec<(Vec<u8>, Option<usize>)>,
    /// The page entry's values in the order Redis stored them, each with its write's number
    /// (a failover restores the log with the state it kept).
    page_log: PageLog,
}

/// Page values in the order Redis stored them, each with its write's number ([`PAGE_WRITES`]).
type PageLog = Vec<(Vec<u8>, usize)>;

thread_local! {
    /// Most changed tags a refresh reply carries in this thread's history ([`PART_TAGS`],
    /// tag_refresh.lua's `LIMIT 4000 1`): the histories hold a few tags, so the bounded ones run
    /// with a limit of one or two to reach replies in parts ([`World::new`]). Per thread:
    /// proptest runs a property's cases on one.
    static PART_LIMIT: Cell<usize> = const { Cell::new(PART_TAGS) };
    /// How many versions the state keeps the ids of in this thread's history (1024 in the
    /// scripts): histories hold few revalidations, so those with the default mirror bound keep
    /// 3, and a refresh then meets a version whose id is gone (`SIM_ID_WINDOW` sets it). Not
    /// the bounded ones: a reader answered `2` on a version gone gives back what it folded
    /// only on evidence of a loss, the documented gap (docs/failures.md, "Redis loses tag
    /// state"), which so short a window would reach in most of their histories.
    static ID_WINDOW: Cell<u64> = const { Cell::new(1024) };
    /// How each HSCAN call of this thread's history answers, one byte a call
    /// ([`ScanChoice::of`]), drawn by the property ([`scan_tape`]) so that histories stay
    /// deterministic and shrink: towards the empty tape, on which every call answers a page
    /// of two without repeats or skips. Per thread, as above.
    static SCAN_TAPE: std::cell::RefCell<VecDeque<u8>> = const {
        std::cell::RefCell::new(VecDeque::new())
    };
    /// What the HSCAN calls answered since the history last took them, for its trace.
    static SCAN_NOTES: std::cell::RefCell<Vec<String>> = const {
        std::cell::RefCell::new(Vec::new())
    };
}

/// The HSCAN choices of the history about to run on this thread ([`SCAN_TAPE`]).
fn set_scan_tape(tape: &[u8]) {
    SCAN_TAPE.with(|t| *t.borrow_mut() = tape.iter().copied().collect());
    SCAN_NOTES.with(|n| n.borrow_mut().clear());
}

/// Takes the rest of this thread's HSCAN choices: every call answers the kind default until
/// they are given back ([`give_back_scan_tape`]). A history's set-up and its settling run so:
/// their bounded loops count on pages of two, and the liveness they check needs a Redis whose
/// scans go on.
fn pause_scan_tape() -> VecDeque<u8> {
    SCAN_TAPE.with(|t| std::mem::take(&mut *t.borrow_mut()))
}

/// Gives back what [`pause_scan_tape`] took.
fn give_back_scan_tape(tape: VecDeque<u8>) {
    SCAN_TAPE.with(|t| *t.borrow_mut() = tape);
}

/// What the HSCAN calls answered since the last call ([`SCAN_NOTES`]).
fn take_scan_notes() -> Vec<String> {
    SCAN_NOTES.with(|n| std::mem::take(&mut *n.borrow_mut()))
}

/// The properties' HSCAN choices: mostly not the kind default, so that the freedoms Redis
/// takes (docs: SCAN, "Scan guarantees", "Number of elements returned at every call") meet
/// every load.
fn scan_tape() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..48)
}

/// Numbers the tags' entries into a state ([`TagState::born`]) and the scans' starts, in one
/// order: a tag numbered above a scan's start entered after it began.
static BIRTHS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// How one HSCAN call answers, within what Redis documents for HSCAN: COUNT is a hint (a page
/// may hold fewer or more, none at all with a cursor that goes on, or the whole hash at once
/// with cursor 0, as a listpack-encoded hash answers whatever the cursor); an element may come
/// more than once (a rehash between calls); one added during the scan may or may not come;
/// one present for the whole scan comes at least once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ScanChoice {
    size: PageSize,
    /// Tags the scan already passed come again: none, the last one passed, or all of them.
    repeat: u8,
    /// Tags that entered the state after the scan began, in the stretch this call passes,
    /// are passed over.
    skip_new: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PageSize {
    /// At most this many tags from the cursor on (0: none, and the cursor goes on without
    /// passing a tag).
    Upto(usize),
    /// Every tag from the cursor on: the scan ends.
    Rest,
    /// Every tag of the hash whatever the cursor (a listpack-encoded hash): the scan ends.
    Whole,
}

impl ScanChoice {
    /// The choice a tape byte stands for; 0 (and an exhausted tape) is the kind default, a
    /// page of two.
    fn of(b: u8) -> ScanChoice {
        let size = match b % 6 {
            0 => PageSize::Upto(2),
            1 => PageSize::Upto(1),
            2 => PageSize::Upto(0),
            3 => PageSize::Upto(3),
            4 => PageSize::Rest,
            _ => PageSize::Whole,
        };
        ScanChoice {
            size,
            repeat: (b / 6) % 3,
            skip_new: (b / 18) % 2 == 1,
        }
    }

    /// The next call's choice, from this thread's tape.
    fn next() -> ScanChoice {
        ScanChoice::of(SCAN_TAPE.with(|t| t.borrow_mut().pop_front()).unwrap_or(0))
    }
}

/// Numbers the server processes a failover moves the state to ([`TagState::server`]).
static SERVERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// `state` on another server process, as a failover leaves it.
fn on_another_server(mut state: TagState) -> TagState {
    state.server = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    state
}

/// Numbers the page writes that reach Redis, for the check (never reused, even by a failover;
/// the model's own count, not the ids the engines give).
static PAGE_WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Each engine's seed of page-write version ids: a process's random draw.
static WRITE_ID_SEEDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn ms(s: &str) -> f64 {
    s.parse::<f64>().unwrap()
}

impl TagState {
    /// The state hash or the version log lost under versions, as the scripts tell it: the
    /// log's last tag (ZRANGE -1 -1: highest score, then last by name) lacks a record, or there
    /// is no log under a version or under records.
    fn damaged(&self) -> bool {
        self.damage().is_some()
    }

    /// How `tag_refresh.lua` marks the name of a damaged state: `+` when only the log is gone
    /// and records are left, else `~`.
    fn damage(&self) -> Option<&'static str> {
        match self.log.iter().max_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0))) {
            Some((top, _)) => (!self.records.contains_key(top)).then_some("~"),
            None if self.ver > 0 || !self.records.is_empty() => {
                Some(if self.records.is_empty() { "~" } else { "+" })
            }
            None => None,
        }
    }

    /// The state hash (or, with `log`, the version log) lost alone: a DEL, an `allkeys-*`
    /// eviction. The meta hash keeps its versions.
    fn lose_key(&mut self, log: bool) {
        if log {
            self.log.clear();
        } else {
            self.records.clear();
        }
    }

    /// The meta hash lost alone: its versions, ids, page-write sequence and sweep cursor.
    fn lose_meta(&mut self) {
        self.epoch = None;
        self.ver = 0;
        self.ids.clear();
        self.pver = 0;
        self.pvid.clear();
        self.sweep = None;
    }

    /// What `tag_update.lua` and `tag_merge.lua` do first: a damaged state becomes a new state
    /// of what is left (a new epoch, the log and the version dropped; the ids stay).
    fn remake_if_damaged(&mut self, candidate: &str) {
        if self.damaged() {
            self.log.clear();
            self.ver = 0;
            self.epoch = Some(candidate.to_owned());
        }
    }

    /// `entry_write.lua`'s part in the tag state for a page write of `key` with id `id`: the
    /// epoch made if there is none, the page-write sequence moved; its announcement.
    fn page_write(&mut self, id: String, key: &str) -> Vec<u8> {
        self.epoch.get_or_insert_with(|| id.clone());
        self.pver += 1;
        let prev = std::mem::replace(&mut self.pvid, id.clone());
        netstring::encode([
            "p".to_owned(),
            self.epoch.clone().unwrap_or_default(),
            self.pver.to_string(),
            id,
            key.to_owned(),
            prev,
        ])
    }

    fn bump(&mut self, candidate: &str) -> Vec<u8> {
        if self.epoch.is_none() {
            self.epoch = Some(candidate.to_owned());
        }
        if self.ver == 0 {
            // No version yet: the scripts go on above the log's scores (a meta hash lost alone),
            // and the updates sweep the records (a state made anew leaves them without a log
            // score).
            self.ver = self.log.values().copied().max().unwrap_or(0);
            // A pass under way runs to its end, then one more.
            self.sweep = Some(match self.sweep.take() {
                Some((cursor, _)) => (cursor, true),
                None => ("0".to_owned(), false),
            });
        }
        self.ver += 1;
        self.ids.insert(self.ver, candidate.to_owned());
        self.ids
            .remove(&self.ver.wrapping_sub(ID_WINDOW.with(Cell::get)));
        netstring::encode([
            self.epoch.clone().unwrap_or_default(),
            self.ver.to_string(),
            candidate.to_owned(),
            "0".to_owned(),
        ])
    }

    /// The tags the announcement of the update just run carries: its own (`tags`), then
    /// those its sweep step logged.
    fn announced(&self, tags: &[String]) -> Vec<String> {
        tags.iter().chain(&self.swept).cloned().collect()
    }

    /// The announcement of `tag_update.lua` for the version just made, of `tags`.
    fn announcement(&self, tags: &[String]) -> Vec<u8> {
        let mut items = vec![
            "a".to_owned(),
            self.epoch.clone().unwrap_or_default(),
            self.ver.to_string(),
            self.ids.get(&self.ver).cloned().unwrap_or_default(),
            // The id of the version it follows, as the script reads it.
            self.ids
                .get(&self.ver.wrapping_sub(1))
                .cloned()
                .unwrap_or_default(),
        ];
        for tag in tags {
            items.push(tag.clone());
            items.push(self.records[tag].encode());
        }
        netstring::encode(items)
    }

    /// `tag_update.lua`.
    fn update(&mut self, args: &[String]) -> Vec<u8> {
        let now = ms(&args[0]).ceil();
        let candidate = &args[2];
        let delay = match args[3].as_str() {
            "x" => Some(0.0),
            _ if args[4].is_empty() => None,
            _ => Some(ms(&args[4]).ceil()),
        };
        self.remake_if_damaged(candidate);
        let reply = self.bump(candidate);
        for tag in &args[5..] {
            self.note_born(tag);
            let r = self.records.entry(tag.clone()).or_default();
            if r.pending_exp.0 > 0.0 && r.pending_exp.0 <= now {
                r.expired = r.expired.max(r.pending_at);
                r.pending_at = Millis::ZERO;
                r.pending_exp = Millis::ZERO;
            }
            if args[3] == "s" {
                r.stale = r.stale.max(Millis(now));
            }
            match delay {
                None => {}
                Some(d) if d <= 0.0 => r.expired = r.expired.max(Millis(now)),
                Some(d) => {
                    if r.pending_exp.0 > 0.0 {
                        r.pending_at = r.pending_at.max(Millis(now));
                        r.pending_exp = r.pending_exp.min(Millis(now + d));
                    } else {
                        r.pending_at = Millis(now);
                        r.pending_exp = Millis(now + d);
                    }
                }
            }
            r.updated_at = r.updated_at.max(Millis(now));
            self.log.insert(tag.clone(), self.ver);
        }
        self.sweep_step(now, ms(&args[1]));
        reply
    }

    /// `tag_update.lua`'s step of the sweep, after its own tags: one HSCAN call from the
    /// cursor (another server's starts over, as [`TagState::scan`] does); each record it
    /// returns without a log score is logged at this version ([`TagState::swept`]), or deleted
    /// when past the pruning age. The cursor `"0"` back ends the pass (and starts the next one
    /// when another is due); a pass that starts over covers every loss before it.
    fn sweep_step(&mut self, now: f64, prune_after: f64) {
        self.swept.clear();
        let Some((cursor, mut again)) = self.sweep.take() else {
            return;
        };
        let ours = cursor
            .split_once(':')
            .is_some_and(|(from, _)| from == self.server.to_string());
        again &= ours;
        let (next, items) = self.scan(&cursor);
        for pair in items.chunks(2) {
            let tag = &pair[0];
            if self.log.contains_key(tag) {
                continue;
            }
            let updated_at = TagRecord::parse(pair[1].as_bytes()).map_or(0.0, |r| r.updated_at.0);
            if updated_at + prune_after < now {
                self.records.remove(tag);
            } else {
                self.log.insert(tag.clone(), self.ver);
                self.swept.push(tag.clone());
            }
        }
        self.sweep = match (next.as_str(), again) {
            ("0", false) => None,
            ("0", true) => Some(("0".to_owned(), false)),
            _ => Some((next, again)),
        };
    }

    /// The tags the state holds a record of and its log no score: none once a sweep ends.
    fn orphans(&self) -> Vec<&String> {
        let mut tags: Vec<&String> = self
            .records
            .keys()
            .filter(|t| !self.log.contains_key(*t))
            .collect();
        tags.sort();
        tags
    }

    /// `tag` enters the state now, unless it is there.
    fn note_born(&mut self, tag: &str) {
        if !self.records.contains_key(tag) {
            let n = BIRTHS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.born.insert(tag.to_owned(), n);
        }
    }

    /// `tag_merge.lua`.
    fn merge(&mut self, args: &[String]) -> Vec<u8> {
        self.merges += 1;
        // No record over a meta hash with an epoch and a version: the state as it is replies.
        if let (1, Some(epoch)) = (args.len(), &self.epoch) {
            if self.ver > 0 {
                return netstring::encode([
                    epoch.clone(),
                    self.ver.to_string(),
                    self.ids.get(&self.ver).cloned().unwrap_or_default(),
                    "0".to_owned(),
                ]);
            }
        }
        self.remake_if_damaged(&args[0]);
        let reply = self.bump(&args[0]);
        for pair in args[1..].chunks(2) {
            let record = TagRecord::parse(pair[1].as_bytes()).unwrap();
            self.note_born(&pair[0]);
            self.records
                .entry(pair[0].clone())
                .or_default()
                .merge(&record);
            self.log.insert(pair[0].clone(), self.ver);
        }
        reply
    }

    /// The state's name and version as `tag_refresh.lua` (and `tag_page.lua`) read them.
    fn name(&self) -> (String, u64) {
        // An epoch with no version (a page write made the meta anew over an old log): followed
        // from the log's highest score, where the next update numbers its version.
        let state_ver = match self.epoch {
            Some(_) if self.ver == 0 => self.log.values().copied().max().unwrap_or(0),
            _ => self.ver,
        };
        // Records without an epoch (a meta hash lost alone) are a state of their own.
        let epoch = match &self.epoch {
            Some(epoch) => epoch.clone(),
            None if self.records.is_empty() => String::new(),
            None => EPOCH_WITHOUT_META.to_owned(),
        };
        // A damaged state is one of its own, at version 0, named after where it came from.
        match self.damage() {
            Some(mark) if self.epoch.is_some() => {
                let id = self.ids.get(&state_ver).cloned().unwrap_or_default();
                (format!("{epoch}~{state_ver}.{id}{mark}"), 0)
            }
            _ => (epoch, state_ver),
        }
    }

    /// `tag_refresh.lua`.
    fn refresh(&mut self, args: &[String]) -> Vec<u8> {
        let (known_epoch, known_ver, known_vid) =
            (&args[0], args[1].parse::<u64>().unwrap(), &args[2]);
        let (epoch, state_ver) = self.name();
        // A version whose id was made by another update (mismatch), or whose id is gone.
        let (mut mismatch, mut gone) = (false, false);
        // The anchor (the version a load's last page was read at) holding spares the known
        // version at or below it its own check when its id is gone.
        let (anchor_ver, anchor_vid) = (args[3].parse::<u64>().unwrap(), &args[4]);
        let anchored = !anchor_vid.is_empty()
            && anchor_ver >= known_ver
            && anchor_ver <= state_ver
            && self.ids.get(&anchor_ver) == Some(anchor_vid);
        let mut check = |v: u64, id: &str, spared: bool| {
            if v == 0 {
                return;
            }
            // A version followed with no id that has one now was made since by another
            // update (the numbers began again over the same epoch).
            if id.is_empty() {
                mismatch |= v <= state_ver && self.ids.contains_key(&v);
                return;
            }
            match self.ids.get(&v) {
                _ if v > state_ver => mismatch = true,
                None => gone |= !spared,
                Some(stored) if stored != id => mismatch = true,
                Some(_) => {}
            }
        };
        check(known_ver, known_vid, anchored);
        for p in args[5..].chunks(2) {
            check(p[0].parse::<u64>().unwrap(), &p[1], false);
        }
        let replaced = epoch == EPOCH_WITHOUT_META
            || epoch != *known_epoch
            || known_ver > state_ver
            || mismatch;
        let full = replaced || gone;
        // In parts, as the script cuts them: the changed tags by version; a part ends after
        // the last version whose tags all fit, or after the first version when it alone has
        // more.
        let mut changed: Vec<u64> = self
            .log
            .values()
            .copied()
            .filter(|v| *v > known_ver && *v <= state_ver)
            .collect();
        changed.sort_unstable();
        let limit = PART_LIMIT.with(Cell::get);
        // Exactly as the script: the changed tag past the limit is looked for up to `ver` only
        // (not among log scores a lost meta hash left above it), and the part ends after the
        // version before its, or after the first version.
        let part_end = match changed.get(limit) {
            Some(past) if !full && known_ver < state_ver => Some((past - 1).max(known_ver + 1)),
            _ => None,
        };
        let upto = part_end.unwrap_or(state_ver);
        let mut items = vec![
            epoch,
            upto.to_string(),
            self.ids.get(&upto).cloned().unwrap_or_default(),
            match (full, replaced) {
                (false, _) if upto < state_ver => "3",
                (false, _) => "0",
                (true, true) => "1",
                (true, false) => "2",
            }
            .to_owned(),
            self.pver.to_string(),
            self.pvid.clone(),
        ];
        if upto < state_ver {
            // A part names the version it was cut from, for the reader's next refresh to check.
            items.push(state_ver.to_string());
            items.push(self.ids.get(&state_ver).cloned().unwrap_or_default());
        }
        if full {
            // The first page, as the script reads it from cursor 0.
            let (cursor, pairs) = self.scan("0");
            items.push(cursor);
            items.extend(pairs);
        } else {
            // In the script's order (ZRANGEBYSCORE: by version, then by tag), not the map's,
            // which differs from run to run: a bounded mirror folds by the order records came
            // in, and a history must replay as it failed.
            let mut changed: Vec<(u64, &String)> = self
                .log
                .iter()
                .filter(|(tag, v)| {
                    **v > known_ver && **v <= upto && self.records.contains_key(*tag)
                })
                .map(|(tag, v)| (*v, tag))
                .collect();
            changed.sort();
            for (_, tag) in changed {
                items.push(tag.clone());
                items.push(self.records[tag].encode());
            }
        }
        netstring::encode(items)
    }

    /// Where `tag` sits in this server's hash table: the order of its HSCAN, drawn from the
    /// seed each server process draws at start.
    fn slot(&self, tag: &str) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325 ^ self.server.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for b in tag.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    /// One HSCAN step from `cursor` (`"0"` to start) in this server's order, answered as the
    /// next [`ScanChoice`] on the tape says: the next cursor (`<server>:<position>`, as
    /// tag_page.lua names its server; `"0"` after the last), then tag, record, ... (each record
    /// as the state holds it now). A cursor of another server scans from the start, as the
    /// script does. The position is the slot the scan passed last and, below it, the number
    /// the scan began at ([`BIRTHS`]), so that a later call knows which tags entered after it
    /// began. Every tag present for the whole scan is returned at least once: a call passes
    /// over none but those.
    fn scan(&mut self, cursor: &str) -> (String, Vec<String>) {
        let choice = ScanChoice::next();
        let resumed = cursor
            .split_once(':')
            .filter(|(from, _)| *from == self.server.to_string())
            .map(|(_, at)| at.parse::<u128>().unwrap());
        // The cursor names the slot passed last in its high bits, the scan's start in its low.
        let (after, start) = match resumed {
            Some(at) => (Some((at >> 64) as u64), at as u64),
            None => (
                None,
                BIRTHS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ),
        };
        let mut order: Vec<(u64, &String)> =
            self.records.keys().map(|t| (self.slot(t), t)).collect();
        order.sort();
        let passed = |slot: u64| after.is_some_and(|a| slot <= a);
        let mut page: Vec<&String> = Vec::new();
        // Tags passed before this call, as a rehash may return them again.
        let before: Vec<&String> = order
            .iter()
            .filter(|(slot, _)| passed(*slot))
            .map(|(_, t)| *t)
            .collect();
        match choice.repeat {
            1 => page.extend(before.last()),
            2 => page.extend(&before),
            _ => {}
        }
        let ahead: Vec<(u64, &String)> = order
            .iter()
            .copied()
            .filter(|(slot, _)| !passed(*slot))
            .collect();
        let limit = match choice.size {
            PageSize::Upto(n) => n,
            PageSize::Rest | PageSize::Whole => usize::MAX,
        };
        let mut last = None;
        let mut taken = 0;
        let mut skipped = Vec::new();
        for (slot, tag) in &ahead {
            if taken == limit {
                break;
            }
            last = Some(*slot);
            if choice.skip_new && self.born.get(*tag).is_some_and(|b| *b > start) {
                skipped.push(tag.as_str());
                continue;
            }
            page.push(tag);
            taken += 1;
        }
        let ended = match choice.size {
            PageSize::Whole => {
                page = order.iter().map(|(_, t)| *t).collect();
                skipped.clear();
                true
            }
            PageSize::Rest => true,
            // An empty hash: HSCAN answers cursor 0 at once.
            _ if order.is_empty() => true,
            // A page that filled up goes on, even past the last tag (the next call answers
            // none, and cursor 0), as the model always did with its pages of two: the
            // regressions file's histories replay as they were found.
            PageSize::Upto(_) => taken < limit,
        };
        let from = cursor;
        let cursor = if ended {
            "0".to_owned()
        } else {
            // An empty page goes on from just before the next tag, passing none.
            let at = last.or_else(|| ahead.first().map(|(slot, _)| slot.saturating_sub(1)));
            let at = at.or(after).unwrap_or(0).max(after.unwrap_or(0));
            format!(
                "{}:{}",
                self.server,
                (u128::from(at) << 64) | u128::from(start)
            )
        };
        SCAN_NOTES.with(|n| {
            n.borrow_mut().push(format!(
                "    hscan on {} from {from:?} ({choice:?}): {:?} then {cursor:?}{}",
                self.server,
                page,
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!(", passed over {skipped:?} (new since the scan began)")
                }
            ))
        });
        let mut items = Vec::new();
        for tag in page {
            items.push(tag.clone());
            items.push(self.records[tag].encode());
        }
        (cursor, items)
    }

    /// `tag_page.lua`: one step of the scan, with the state's version and id, after checking
    /// the version the reader names as `tag_refresh.lua` does (none of the scan when it fails).
    fn page(&mut self, args: &[String]) -> Vec<u8> {
        let (seen, seen_vid) = (args[2].parse::<u64>().unwrap(), &args[3]);
        // An epoch with no version reads the log's highest score, and a damaged state version
        // 0, as the refresh answers them.
        let (name, ver) = self.name();
        // Below the version named (with or without an id), another id, a version written
        // since one named with no id (an epoch with no version), and the name of the state the
        // load began under: another is rolled back.
        let rolled_back = (seen > 0
            && (seen > ver || (!seen_vid.is_empty() && self.ids.get(&seen) != Some(seen_vid))))
            || (seen_vid.is_empty() && seen > 0 && self.ver > 0)
            || args.get(4).is_some_and(|e| *e != name);
        let mut items = vec!["page".to_owned()];
        let (cursor, pairs) = if rolled_back {
            ("0".to_owned(), Vec::new())
        } else {
            self.scan(&args[0])
        };
        items.push(cursor);
        items.push(ver.to_string());
        items.push(self.ids.get(&ver).cloned().unwrap_or_default());
        items.push(if rolled_back { "1" } else { "0" }.to_owned());
        items.extend(pairs);
        netstring::encode(items)
    }

    /// The state holds `single` for `tag`: judged by the stronger of the tag's record and that
    /// of [`FOLDED_TAG`] (what a process folded and gave back, which every process judges
    /// every tagged entry by, `TagMirror::evaluate`), every entry is at least as stale or
    /// expired, at every time, as `single` makes it. Not the two records merged: a merge takes
    /// the later `pending_at` of one and the earlier `pending_exp` of the other, a scheduled
    /// expiry neither holds, and would credit the state with a revalidation it lost.
    fn covers(&self, tag: &str, single: &TagRecord) -> bool {
        let own = self.records.get(tag).copied().unwrap_or_default();
        let Some(folded) = self.records.get(FOLDED_TAG) else {
            return own.covers(single);
        };
        // A verdict is the stronger of the two; each is monotone in the entry's time and
        // in `now`, so the edges of `single` decide.
        let expired_at = |now: Millis| {
            own.effective_expired(now)
                .max(folded.effective_expired(now))
        };
        own.stale.max(folded.stale) >= single.stale
            && own.expired.max(folded.expired) >= single.expired
            && (!single.has_pending() || expired_at(single.pending_exp) >= single.pending_at)
    }
}

impl Redis {
    fn run(&mut self, call: &ScriptCall) -> Vec<u8> {
        match call.script.name {
            "tag_update" => {
                let reply = self.tags.update(&call.args);
                // A fourth key: the announcement channel.
                if call.keys.len() == 4 {
                    let msg = self
                        .tags
                        .announcement(&self.tags.announced(&call.args[5..]));
                    self.published.push((msg, None));
                }
                reply
            }
            "tag_refresh" => self.tags.refresh(&call.args),
            "tag_merge" => self.tags.merge(&call.args),
            "tag_page" => self.tags.page(&call.args),
            other => panic!("the model does not run {other}"),
        }
    }
}

/// A revalidation as issued, and when Redis acknowledged it (the step).
#[derive(Clone, Debug)]
struct Rev {
    tags: Vec<&'static str>,
    rev: Revalidation,
    /// As its host's engine recorded it: a later `expire` counted from its wall clock
    /// ([`Revalidation::expiring_from_wall`]).
    recorded: Revalidation,
    /// The time it was stamped at (what the mirror, the outbox and Redis hold): the later of
    /// its process's clock and the wall clock ([`fleetcache_core::time::revalidation_stamp`]).
    at: Millis,
    /// The true time it was made at (the wall clock): the contract is judged by it.
    true_at: f64,
    resolved: Option<usize>,
    /// The time it resolved.
    resolved_at: Option<f64>,
}

impl Rev {
    /// Its record as stamped, as Redis holds it.
    fn single(&self) -> TagRecord {
        let mut r = TagRecord::default();
        r.apply(&self.recorded, self.at);
        r
    }

    /// Its record at the true time it was made: what the contract requires.
    fn at_true_time(&self) -> TagRecord {
        let mut r = TagRecord::default();
        r.apply(&self.rev, Millis(self.true_at));
        r
    }
}

/// What Redis answered to a request's command.
#[derive(Clone, Debug)]
enum Reply {
    /// A value read (`GET`), `None` when there is none; also the tag refresh's reply.
    Bytes(Option<Vec<u8>>),
    /// The lease script's integer.
    Int(i64),
    /// A poll: the entry, and whether its lease exists.
    Polled(Option<Vec<u8>>, bool),
    /// A page read (page_read.lua): the entry, and whether the page-write sequence is at the
    /// write named.
    PageRead(Option<Vec<u8>>, bool),
    /// A write or a release.
    Done,
    /// A write, numbered as in [`PAGE_WRITES`].
    PageWrite(usize),
}

/// A command of a request, as the host sends it.
#[derive(Clone, Debug)]
enum Cmd {
    Refresh(ScriptCall),
    Get(String),
    Acquire(ScriptCall),
    Poll(ScriptCall),
    /// page_read.lua (shared as the host shares a poll: by its argv).
    PageRead(ScriptCall),
    /// `SET key value PX ttl`, or `lease_write.lua` (the entry, and the release of the lease).
    Store {
        key: String,
        value: Vec<u8>,
        script: Option<ScriptCall>,
    },
    Release(ScriptCall),
}

/// The creation time in an envelope's header, as `lease_acquire.lua` reads it.
fn created(value: &[u8]) -> Option<f64> {
    fleetcache_core::decode_header(value, value.len())
        .ok()
        .map(|h| h.meta.timestamp.0)
}

impl Redis {
    /// The live lease of `key` at `now` (expired ones go, as `PX` makes them).
    fn lease(&mut self, key: &str, now: f64) -> Option<String> {
        if self.leases.get(key).is_some_and(|(_, until)| *until <= now) {
            self.leases.remove(key);
        }
        self.leases.get(key).map(|(t, _)| t.clone())
    }

    /// Runs a request's command at `now`, as the scripts and Redis do.
    fn exec(&mut self, cmd: &Cmd, now: f64) -> Reply {
        match cmd {
            Cmd::Refresh(call) => Reply::Bytes(Some(self.run(call))),
            Cmd::Get(key) => Reply::Bytes(self.entries.get(key).cloned()),
            Cmd::Acquire(call) => {
                let (entry, lease) = (&call.keys[0], &call.keys[1]);
                let seen = ms(&call.args[2]);
                if let Some(ts) = self.entries.get(entry).and_then(|v| created(v)) {
                    if ts > seen {
                        return Reply::Int(2);
                    }
                }
                if self.lease(lease, now).is_some() {
                    return Reply::Int(0);
                }
                let px = ms(&call.args[1]);
                self.leases
                    .insert(lease.clone(), (call.args[0].clone(), now + px));
                Reply::Int(1)
            }
            // page_read.lua: the entry, and whether the page-write sequence is at the write
            // the read names.
            Cmd::PageRead(call) => {
                let t = &self.tags;
                let at = [
                    t.epoch.clone().unwrap_or_default(),
                    t.pver.to_string(),
                    t.pvid.clone(),
                ];
                Reply::PageRead(self.entries.get(&call.keys[0]).cloned(), call.args == at)
            }
            Cmd::Poll(call) => {
                let leased = self.lease(&call.keys[1], now).is_some();
                Reply::Polled(self.entries.get(&call.keys[0]).cloned(), leased)
            }
            Cmd::Store { key, value, script } => {
                // A seed (seed_write.lua: ARGV px, created; entry_write.lua's mode 's': px,
                // 's', created, id) keeps an entry as new or newer, and then neither
                // writes nor counts nor announces anything.
                let seed = script.as_ref().and_then(|call| match call.script.name {
                    "seed_write" => call.args.get(1),
                    "entry_write" if call.args.get(1).map(String::as_str) == Some("s") => {
                        call.args.get(2)
                    }
                    _ => None,
                });
                if let Some(created) = seed {
                    if seed_rule::seed_keeps(self.entries.get(key).map(Vec::as_slice), ms(created))
                    {
                        return Reply::Int(0);
                    }
                }
                self.entries.insert(key.clone(), value.clone());
                let n = PAGE_WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if *key == page_entry_key() {
                    self.page_log.push((value.clone(), n));
                }
                if let Some(call) = script {
                    // entry_write.lua (entry, meta, channel, and the lease in mode 'l')
                    // counts the write in the page-write sequence and announces it;
                    // lease_write.lua (entry, lease) does not.
                    let announce = call.script.name == "entry_write";
                    let (lease, token) = match call.script.name {
                        "lease_write" => (call.keys.get(1), call.args.get(1)),
                        _ if call.args.get(1).map(String::as_str) == Some("l") => {
                            (call.keys.get(3), call.args.get(2))
                        }
                        _ => (None, None),
                    };
                    if let (Some(lease), Some(token)) = (lease, token) {
                        if self.lease(lease, now).as_deref() == Some(token.as_str()) {
                            self.leases.remove(lease);
                        }
                    }
                    if announce {
                        // entry_write.lua's id: the one the call carries (ARGV[4]), not one
                        // the model makes unique, so ids that repeat are seen to.
                        let id = format!("w{}", call.args.get(3).map_or("", String::as_str));
                        let msg = self.tags.page_write(id, key);
                        self.published.push((msg, Some(n)));
                    }
                }
                Reply::PageWrite(n)
            }
            Cmd::Release(call) => {
                let lease = &call.keys[0];
                if self.lease(lease, now).as_deref() == Some(call.args[0].as_str()) {
                    self.leases.remove(lease);
                }
                Reply::Done
            }
        }
    }
}

struct Instance {
    engine: Engine,
    tier: HashMap<String, Vec<u8>>,
    /// This process's writes in flight, by cache key: the task writing, and the value.
    pending: HashMap<&'static str, (usize, Vec<u8>)>,
    /// Outbox entries in order: the index of their revalidation.
    queued: VecDeque<usize>,
    /// Revalidations taken out of its full outbox (`Engine::queue_tag_update`), which it merges
    /// back, not yet resolved ([`World::resolve_taken_out`]): each with its tags Redis has not
    /// yet told this process it holds a record covering its own for. Lost with the process, as
    /// the outbox is.
    taken_out: Vec<(usize, Vec<&'static str>)>,
    /// Revalidations this instance has certainly heard of (it issued them, or a refresh of
    /// its succeeded while Redis held them), each with the event at which it did.
    learned: HashMap<usize, usize>,
    /// A refresh of this instance has succeeded since it started.
    loaded: bool,
    /// The request's tag refresh in flight (a task id), if any.
    refreshing: Option<usize>,
    /// When it started.
    started: f64,
    /// Following by push: the announcements its channel received, not yet applied, each
    /// with the revalidation or the page write it announces.
    inbox: VecDeque<(Vec<u8>, Option<usize>, Option<usize>)>,
    /// Its channel is subscribed (whether the instance noticed a drop or not).
    listening: bool,
    /// The instance believes its channel is subscribed (it has not noticed a drop).
    believed: bool,
    /// Revalidations whose announcement has not reached it: on its way, or lost while it
    /// believed its channel up.
    unheard: HashSet<usize>,
    /// Page writes whose announcement has not reached it, likewise.
    unheard_pages: HashSet<usize>,
    /// The step of its last successful refresh, and what Redis held then.
    pulled: Option<(usize, TagState)>,
    /// The latest start (when it was planned) of its refreshes that succeeded: its mirror
    /// holds every revalidation that reached Redis before then (unless Redis lost it).
    pulled_from: f64,
    /// Revalidations whose announcement it applied.
    heard: HashSet<usize>,
    /// The latest, over the announcements it applied as the next version, of the earliest
    /// update time among their records ([`announced_at`]): its mirror held every version
    /// before that one, so any revalidation it lacked reached Redis after it.
    heard_from: f64,
    /// What it knew at the end of past steps, oldest first, one entry per change: a
    /// `'use cache'` write whose regeneration began earlier is checked by what it knew then
    /// ([`World::knew_at`]). A restart starts it over, as it does the process.
    history: Vec<KnewThen>,
    /// How far its process's clock (Next's, `performance.timeOrigin + performance.now()`)
    /// runs ahead of its wall clock, which is the true time (negative: behind): a step of
    /// the wall clock after the process started ([`Op::ClockStep`]), or one before the
    /// history began (the property's drawn offsets). A restart realigns it.
    offset: f64,
    /// How fast its process's clock drifts from the true time, in ms per ms (5e-4: 500 ppm
    /// fast; negative: slow), as NTP slewing a clock leaves it or a broken oscillator does:
    /// the clocks' distance moves a little on every op, and only past [`CLOCK_NOTE_MS`] does a
    /// request's start tell the engine. A property of the machine: a restart keeps it.
    rate: f64,
    /// The true time from which the drift adds to `offset` ([`World::offset`]).
    rate_from: f64,
    /// Its clock before each step since it started ([`Op::ClockStep`]), oldest first: the true
    /// time of the step, and the offset then, its drift folded in. Next stamps a `'use cache'`
    /// entry when its regeneration begins, on its process's clock as it read then
    /// ([`World::clock_at`]), which a step since does not move.
    stepped: Vec<(f64, f64)>,
    /// The clocks' distance its host last handed the engine (`TagSync`'s `clocksNoted`): a
    /// request's start tells the engine only when the distance moved by more than
    /// [`CLOCK_NOTE_MS`] from it ([`World::note_clocks_at_request`]).
    clocks_told: Option<f64>,
    /// Each distance its host handed the engine, with the true time it did (`clocks_told`
    /// over time, oldest first), as far back as a write's regeneration began: the request
    /// that began one told the engine only past the filter then ([`World::told_at`]).
    told: Vec<(f64, f64)>,
    /// Its drain's command in flight, held between its steps ([`TagSend`]): one at a time, as
    /// tag-sync.ts runs one drain at a time and awaits each command's reply.
    sending: Option<TagSend>,
    /// Its next tag merge (`true`) or update (`false`) is held in flight ([`Op::HoldTag`])
    /// instead of answered at once, its reply lost when the second is `true`.
    hold: Option<(bool, bool)>,
}

/// A tag update (the outbox's head) or a merge (a batch given back) that an instance's drain
/// sent and whose reply it has not had: [`Op::TagStep`] carries it to Redis, then its reply
/// (or its loss, or a timeout) back, as [`InFlight`] does a request's command.
struct TagSend {
    /// The outbox update's sequence number; `None` for a merge.
    seq: Option<u64>,
    /// The revalidation the update carries (the outbox's head).
    rev: Option<usize>,
    call: ScriptCall,
    /// `None`: sent past the open breaker, at close (`force`: the breaker hears nothing of it).
    permit: Option<Permit>,
    /// When it went out, on its process's clock.
    sent: f64,
    budget_ms: f64,
    /// `None` until it reaches Redis; then its reply, `None` when lost (or Redis was down).
    reply: Option<Option<Vec<u8>>>,
    /// Its reply is lost ([`Op::HoldTag`]).
    lose: bool,
}

/// What an instance knew at the end of a step ([`Instance::history`]).
#[derive(Clone, Debug)]
struct KnewThen {
    /// The step.
    step: usize,
    knew: Knew,
    /// It was caught up then (following by push): its reads judged by the mirror alone.
    caught_up: bool,
    /// How many revalidations it had learnt and heard: both only grow in a process's life, so
    /// equal counts mean the same sets, and the step's snapshot need not be built.
    counts: (usize, usize),
}

/// The earliest update time among the records of a tag announcement (none for a page
/// write's, or one without records).
fn announced_at(msg: &[u8]) -> Option<f64> {
    let items = fleetcache_core::netstring::decode(msg).ok()?;
    if items.first() != Some(&&b"a"[..]) {
        return None;
    }
    items
        .iter()
        .skip(6)
        .step_by(2)
        .filter_map(|r| fleetcache_core::tag_record::TagRecord::parse(r).ok())
        .map(|r| r.updated_at.0)
        .reduce(f64::min)
}

/// The page `/p`'s Redis key.
fn page_entry_key() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        Engine::new(config(None, true, DEFAULT_MAX_TAGS))
            .unwrap()
            .entry_key(&Interface::Incremental, INC_KEYS[0].0)
    })
}

/// The engine's configuration; `max_tags` bounds its tag mirror (`Config::tag_mirror_max_tags`:
/// 1 to 3 fold records on nearly every update, the default never in these histories).
fn config(release: Option<NextRelease>, leases: bool, max_tags: u32) -> Config {
    Config {
        leases,
        tag_mirror_max_tags: max_tags,
        prefix: "sim".into(),
        deployment: "d".into(),
        memory_bytes: 1 << 20,
        breaker_failures: 1,
        next_release: release,
        ..Config::default()
    }
}

impl Instance {
    fn new(
        now: f64,
        push: bool,
        release: Option<NextRelease>,
        leases: bool,
        max_tags: u32,
        outbox: u32,
    ) -> Instance {
        // `outbox` bounds its outbox (`Config::outbox_capacity`: 1 to 3 fill in an outage or
        // behind an update held in flight, the default never in these histories).
        let mut engine = Engine::new(Config {
            outbox_capacity: outbox,
            ..config(release, leases, max_tags)
        })
        .unwrap();
        if push {
            engine.follow_tags_by_push(PUSH_BOUND_MS).unwrap();
            // The model is one plain Redis (CLUSTER SLOTS: "cluster support disabled").
            engine.confirm_plain_redis();
        }
        // One Redis: every instance announces its page writes, pulling or not, with version
        // ids from a seed of its own, as the wasm binding draws one per process (a restart
        // draws another).
        engine.announce_page_writes();
        let seed = WRITE_ID_SEEDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        engine.set_write_id_seed(&format!("p{seed}")).unwrap();
        Instance {
            loaded: false,
            refreshing: None,
            started: now,
            engine,
            tier: HashMap::new(),
            pending: HashMap::new(),
            queued: VecDeque::new(),
            taken_out: Vec::new(),
            learned: HashMap::new(),
            inbox: VecDeque::new(),
            listening: false,
            believed: false,
            unheard: HashSet::new(),
            unheard_pages: HashSet::new(),
            pulled: None,
            pulled_from: f64::NEG_INFINITY,
            heard: HashSet::new(),
            heard_from: f64::NEG_INFINITY,
            history: Vec::new(),
            offset: 0.0,
            rate: 0.0,
            rate_from: now,
            stepped: Vec::new(),
            clocks_told: None,
            told: Vec::new(),
            sending: None,
            hold: None,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Instance begins storing a regeneration of a key with these tags (bit mask over TAGS),
    /// which began `began` ms ago: the entry counts as created then, so revalidations made
    /// during the render leave it stale. Drawn as 0 half the time, and a quarter under 300 ms:
    /// within a pull interval of the write, where the process was more often caught up when
    /// the regeneration began, which is when [`World::check_regenerated`] applies. The `get`
    /// that began it told the engine the clocks then, past the host's filter
    /// ([`World::start_told`]).
    Write {
        inst: usize,
        key: usize,
        tags: u8,
        began: u16,
    },
    /// A request on an instance begins reading a key with these soft tags; its answer goes
    /// into a server cache when `caches` (else it only serves a response).
    Read {
        inst: usize,
        key: usize,
        soft: u8,
        caches: bool,
    },
    /// The request in flight at this index (modulo their number) takes its next step: its
    /// command reaches Redis, or its reply (or timer) reaches the host.
    Step {
        pick: usize,
    },
    /// A revalidation: 0 expire now, 1 stale without expire, 2 stale with `expire` 'max', 3
    /// stale expiring after 1 s.
    Revalidate {
        inst: usize,
        tags: u8,
        mode: u8,
    },
    /// The instance's retry timer: refresh and send what waits.
    Tick {
        inst: usize,
    },
    /// The instance's wall clock is stepped `ms` after the process started (docs/decisions/0036).
    /// Forward: its machine was paused that long (a suspended machine resumed): the fleet's
    /// time moves on, its process's clock does not, and runs that much further behind. Back
    /// (negative): its process's clock runs that much further ahead of the wall clock from now
    /// on (here its clock jumps, as a process's own stall would look to it). One that would
    /// leave its clock ahead by the 10 ms slack or less leaves it 11 ms ahead: within the
    /// slack an entry keeps Next's stamp, which decision 0036 leaves, as what NTP leaves
    /// between hosts.
    ClockStep {
        inst: usize,
        ms: i16,
    },
    /// Time goes on until `ms` ms past the bound ([`PUSH_BOUND_MS`]) of the instance's last
    /// successful pull's start, in true time (none once that is past). A read then, following
    /// by push, finds its instance caught up only where its process's clock ran behind since
    /// that start (a pause): older than the bound in true time by up to what the engine let
    /// that move be ([`ReadTask::bound_late`]). [`Op::Advance`] lands in those few ms rarely.
    NearBound {
        inst: usize,
        ms: u8,
    },
    /// The instance's retry timer, until its mirror has loaded the whole state (or a refresh
    /// failed), then what waits is sent: a whole load in one op.
    Load {
        inst: usize,
    },
    Flush,
    /// The tag state's meta hash is lost alone (deleted by hand, as docs/troubleshooting.md
    /// advises for a key of the wrong type, or evicted), the state and log kept: until an
    /// update or a page write makes it anew (a new epoch over the old log's scores), the state
    /// has records but no epoch.
    LoseMeta,
    /// The tag state's hash (or, with `log`, its version log) is lost alone, the meta hash
    /// keeping its versions ([`TagState::lose_key`]).
    LoseKey {
        log: bool,
    },
    /// Keep the current Redis state to restore later.
    Snapshot,
    /// Restore the kept state: a failover to a replica that lost what came since.
    Failover,
    Restart {
        inst: usize,
    },
    /// The instance closes (`close()`: tag-sync.ts `stop`, then `sendLast`), and a new process
    /// takes its place, as a rolling deploy does: [`World::close`]. The closed process serves
    /// no more (its requests end with it, as a restart's do).
    Close {
        inst: usize,
    },
    Down,
    Up,
    /// The next reply to this instance is lost (the command ran, or did not for a read).
    LoseReply {
        inst: usize,
    },
    /// The instance's next tag merge (`merge`) or update (its drain's next command of that
    /// kind) is held in flight ([`TagSend`]) until [`Op::TagStep`]s carry it to Redis and its
    /// reply back (lost when `lost`: the update stays at the outbox's head, the merge's batch
    /// planned): requests' refreshes, other instances' updates, flushes and failovers may come
    /// between.
    HoldTag {
        inst: usize,
        merge: bool,
        lost: bool,
    },
    /// The held tag update or merge of the instances that have one (the `pick`th, modulo their
    /// number) takes its next step: it reaches Redis, or its reply (or its loss, or its
    /// timeout past the budget) reaches the host.
    TagStep {
        pick: usize,
    },
    Advance {
        ms: u16,
    },
    /// Push: the instance's channel delivers its oldest announcement.
    Deliver {
        inst: usize,
    },
    /// Push: the instance subscribes (again) and the subscription is confirmed.
    Subscribe {
        inst: usize,
    },
    /// Push: the instance's channel drops; what it had not delivered is lost. The instance
    /// notices only at `NoticeDown`.
    DropChannel {
        inst: usize,
    },
    /// Push: the instance notices its channel is down.
    NoticeDown {
        inst: usize,
    },
    /// An event loop blocked for about a second: replies that arrived meanwhile are
    /// delivered past their budget.
    Stall {
        ms: u16,
    },
    /// A request on an instance reads a key of the singular handler (`INC_KEYS`). A `fetch`
    /// read gives these soft tags (the fetch's tags and the route's implicit ones) and its own
    /// `revalidate` (`FETCH_REQUEST_REVALIDATE`); a page read may be an on-demand revalidation's
    /// (whatever it finds, Next regenerates the page and serves nothing of it). Its answer goes
    /// into a server cache when `caches`.
    IncRead {
        inst: usize,
        key: usize,
        soft: u8,
        caches: bool,
        revalidate: usize,
        on_demand: bool,
    },
    /// A regeneration that a singular-handler read began (the `pick`th of those pending,
    /// modulo their number) stores its result, as Next's `set` after the render: a page
    /// carries its `_N_T_/p` and the explicit tags of `tags` (bit mask over `a`, `b`), a
    /// `fetch` entry those explicit tags; `life` picks its `revalidate` and `expire`.
    IncWrite {
        pick: usize,
        tags: u8,
        life: u8,
    },
    /// The instance's next singular-handler answer with a value reaches Next `ms` late (an
    /// event-loop stall between the answer and Next's continuation), and Next judges it again
    /// then (its second look): past its due, Next regenerates on its own.
    LateAnswer {
        inst: usize,
        ms: u16,
    },
    /// An on-demand rewrite of the page `/p` on an instance, from its render's start to the
    /// host getting its write's reply, in one op (`life` as for `IncWrite`): the other
    /// requests' commands stay where they are, so reads in flight race it. When `held`, only
    /// up to its store in flight, which drawn steps carry on: reads its own process begins
    /// meanwhile race it too.
    Rewrite {
        inst: usize,
        life: u8,
        held: bool,
    },
    /// A page regeneration that a read with a value began (the `pick`th of those, modulo their
    /// number) fails, and Next 16.5 writes back the value that read was served, unchanged
    /// (`retainPreviousCacheEntry`, response cache only: not `fetch`): the same payload (so the
    /// check judges it as data of its first creation), kind and tags, the lifetime Next gives
    /// it (its retry delay), and the answer's `written_back` stamp with what the request's
    /// reads of the key left.
    IncWriteBack {
        pick: usize,
    },
    /// A request that read the `fetch` entry (the `pick`th of the latest few, modulo their
    /// number) reads it again before its write, with the same tags and `revalidate` (a page
    /// that calls one `fetch` twice): its handler instance folds both answers
    /// ([`Own::least`]); a stale answer begins a refetch unless the request has one pending
    /// (Next's `pendingRevalidates`, per request and key).
    IncReadAgain {
        pick: usize,
    },
    /// `fleetcache seed` of the page `/p` (a process of its own: [`SEEDER`]): it pulls the tag
    /// state now, and at a later step (`Step`) judges and stamps the page a build made at the
    /// time `built` picks ([`World::build_time`]) as seed.ts does, with its clock `lag` ms
    /// behind the fleet's, and sends its write. The page carries `_N_T_/p` and the explicit
    /// tags of `tags`; `life` as for `IncWrite`. Its reply is lost when `lost` (the write ran).
    Seed {
        built: (u8, u16),
        lag: u16,
        tags: u8,
        life: u8,
        lost: bool,
    },
}

/// The ops drawn; following by push, subscriptions come more often (a drop or an outage
/// undoes one, and only a subscribed instance skips its pulls).
fn op(push: bool) -> impl Strategy<Value = Op> {
    let subscribe = if push { 4 } else { 2 };
    // Only following by push is a read judged without a pull near the bound.
    let near = if push { 2 } else { 1 };
    prop_oneof![
        4 => (0..3usize, 0..2usize, 0u8..8, prop_oneof![2 => Just(0u16), 1 => 1u16..300, 1 => 0u16..2000])
            .prop_map(|(inst, key, tags, began)| Op::Write { inst, key, tags, began }),
        6 => (0..3usize, 0..2usize, 0u8..4, any::<bool>())
            .prop_map(|(inst, key, soft, caches)| Op::Read { inst, key, soft, caches }),
        14 => (0..8usize).prop_map(|pick| Op::Step { pick }),
        4 => (0..3usize, 1u8..8, 0u8..4).prop_map(|(inst, tags, mode)| Op::Revalidate { inst, tags, mode }),
        2 => (0..3usize).prop_map(|inst| Op::Tick { inst }),
        1 => Just(Op::Flush),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Failover),
        1 => (0..3usize).prop_map(|inst| Op::Restart { inst }),
        1 => (0..3usize).prop_map(|inst| Op::Close { inst }),
        1 => Just(Op::Down),
        2 => Just(Op::Up),
        1 => (0..3usize).prop_map(|inst| Op::LoseReply { inst }),
        2 => hold_tag(),
        3 => (0..4usize).prop_map(|pick| Op::TagStep { pick }),
        3 => (0u16..1500).prop_map(|ms| Op::Advance { ms }),
        5 => (0..3usize).prop_map(|inst| Op::Deliver { inst }),
        subscribe => (0..3usize).prop_map(|inst| Op::Subscribe { inst }),
        1 => (0..3usize).prop_map(|inst| Op::DropChannel { inst }),
        1 => (0..3usize).prop_map(|inst| Op::NoticeDown { inst }),
        1 => (0..3usize, clock_step()).prop_map(|(inst, ms)| Op::ClockStep { inst, ms }),
        1 => (900u16..1200).prop_map(|ms| Op::Stall { ms }),
        near => near_bound(),
    ]
}

/// [`Op::HoldTag`]: an update mostly (revalidations are more frequent than losses that leave
/// something to give back), a reply lost one time in four.
fn hold_tag() -> impl Strategy<Value = Op> {
    (
        0..3usize,
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(inst, merge, lost)| Op::HoldTag { inst, merge, lost })
}

/// [`Op::NearBound`]: up to 12 ms past the bound, the slack (10 ms) and a little more.
fn near_bound() -> impl Strategy<Value = Op> {
    (0..3usize, 0u8..=12).prop_map(|(inst, ms)| Op::NearBound { inst, ms })
}

/// The ops drawn for histories that mix both interfaces: requests of the singular handler
/// more often than `'use cache'` ones, more steps per request, and faults rarer than in
/// [`op`] (outages are the early exit of the check; these histories should mostly reach it).
fn mixed_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, 0..2usize, 0u8..8, prop_oneof![2 => Just(0u16), 1 => 1u16..300, 1 => 0u16..2000])
            .prop_map(|(inst, key, tags, began)| Op::Write { inst, key, tags, began }),
        3 => (0..3usize, 0..2usize, 0u8..4, any::<bool>())
            .prop_map(|(inst, key, soft, caches)| Op::Read { inst, key, soft, caches }),
        14 => (0..3usize, 0..2usize, 0u8..8, any::<bool>(), 0..3usize, prop::bool::weighted(0.1))
            .prop_map(|(inst, key, soft, caches, revalidate, on_demand)| Op::IncRead {
                inst, key, soft, caches, revalidate, on_demand,
            }),
        10 => (0..8usize, 0u8..4, 0u8..4)
            .prop_map(|(pick, tags, life)| Op::IncWrite { pick, tags, life }),
        // Past a 3 s `revalidate` too, from an answer at the read's start.
        5 => (0..3usize, prop_oneof![1 => 1u16..1000, 3 => 2500u16..4000])
            .prop_map(|(inst, ms)| Op::LateAnswer { inst, ms }),
        12 => (0..3usize, 0u8..4, prop::bool::weighted(0.3))
            .prop_map(|(inst, life, held)| Op::Rewrite { inst, life, held }),
        6 => seed_op(),
        60 => (0..8usize).prop_map(|pick| Op::Step { pick }),
        6 => (0..3usize, 1u8..8, 0u8..4).prop_map(|(inst, tags, mode)| Op::Revalidate { inst, tags, mode }),
        3 => (0..3usize).prop_map(|inst| Op::Tick { inst }),
        1 => Just(Op::Flush),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Failover),
        1 => (0..3usize).prop_map(|inst| Op::Restart { inst }),
        1 => (0..3usize).prop_map(|inst| Op::Close { inst }),
        1 => Just(Op::Down),
        4 => Just(Op::Up),
        1 => (0..3usize).prop_map(|inst| Op::LoseReply { inst }),
        2 => hold_tag(),
        4 => (0..4usize).prop_map(|pick| Op::TagStep { pick }),
        4 => prop_oneof![3 => 0u16..250, 1 => 0u16..1500].prop_map(|ms| Op::Advance { ms }),
        5 => (0..3usize).prop_map(|inst| Op::Deliver { inst }),
        3 => (0..3usize).prop_map(|inst| Op::Subscribe { inst }),
        1 => (0..3usize).prop_map(|inst| Op::DropChannel { inst }),
        1 => (0..3usize).prop_map(|inst| Op::NoticeDown { inst }),
        1 => (0..3usize, clock_step()).prop_map(|(inst, ms)| Op::ClockStep { inst, ms }),
        1 => (900u16..1200).prop_map(|ms| Op::Stall { ms }),
        2 => near_bound(),
    ]
}

/// Histories of up to `len` draws of `op`, one in `1 + ops` of them a run of `run` instead:
/// ops in an order that single draws line up too rarely to find.
fn with_runs<T: Clone + std::fmt::Debug>(
    op: impl Strategy<Value = T> + 'static,
    ops: u32,
    run: impl Strategy<Value = Vec<T>> + 'static,
    len: usize,
) -> impl Strategy<Value = Vec<T>> {
    proptest::collection::vec(
        prop_oneof![ops => op.prop_map(|op| vec![op]), 1 => run],
        1..len,
    )
    .prop_map(|runs| runs.concat())
}

/// One or two pauses of [`bound_op`]'s reading instance, each told by a write's start
/// (unfiltered) or a read's (past the host's filter only): within the engine's threshold (3 to
/// 5 ms), past it within the slack (6 to 10 ms), and more than the threshold together since
/// its last pull. Then time goes on to near the bound ([`Op::NearBound`]), where it reads a key
/// the writes among them left as it was.
fn pauses_told() -> impl Strategy<Value = Vec<Op>> {
    let told = (
        prop_oneof![2 => 3i16..6, 1 => 6i16..=10],
        prop::bool::weighted(0.75),
        1u8..8,
    );
    (proptest::collection::vec(told, 1..=2), 0u8..=12, 0..2usize).prop_map(|(pauses, ms, key)| {
        let read = |key| Op::Read {
            inst: 0,
            key,
            soft: 0,
            caches: false,
        };
        let mut ops = Vec::new();
        for (pause, write, tags) in pauses {
            ops.push(Op::ClockStep { inst: 0, ms: pause });
            ops.push(if write {
                Op::Write {
                    inst: 0,
                    key: 1 - key,
                    tags,
                    began: 0,
                }
            } else {
                read(1 - key)
            });
        }
        ops.extend([Op::NearBound { inst: 0, ms }, read(key)]);
        ops
    })
}

/// The ops drawn for histories of a process (instance 0) paused a few ms at a time while
/// following by push, and read near the bound of its last pull ([`Op::NearBound`]):
/// `'use cache'` writes on two instances and reads on it, revalidations by the others whose
/// announcements mostly stay on their way, and pauses across the host's filter, the engine's
/// threshold and the slack, with [`pauses_told`]'s runs among them. In [`op`]'s histories a
/// read lands within the few ms past the bound where only the engine's gap test makes it pull
/// too rarely to find (weakened, it passed 3,000 to 30,000 cases there), and no pause of 6 to
/// 10 ms was drawn.
fn bound_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Mostly by the instance that pauses: a write tells its engine both clocks.
        4 => (prop_oneof![3 => Just(0usize), 1 => Just(1)], 0..2usize, 1u8..8)
            .prop_map(|(inst, key, tags)| Op::Write { inst, key, tags, began: 0 }),
        5 => (0..2usize, 0u8..4, any::<bool>())
            .prop_map(|(key, soft, caches)| Op::Read { inst: 0, key, soft, caches }),
        12 => (0..8usize).prop_map(|pick| Op::Step { pick }),
        3 => (1..3usize, 1u8..8, 0u8..4).prop_map(|(inst, tags, mode)| Op::Revalidate { inst, tags, mode }),
        1 => (0..3usize).prop_map(|inst| Op::Tick { inst }),
        1 => Just(Op::Deliver { inst: 0 }),
        4 => prop_oneof![2 => 3i16..6, 2 => 6i16..=10, 1 => 11i16..16]
            .prop_map(|ms| Op::ClockStep { inst: 0, ms }),
        3 => (0u8..=12).prop_map(|ms| Op::NearBound { inst: 0, ms }),
        1 => (0u16..100).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// A run of `fleetcache seed`: a build time anywhere in the history (or before it), next to a
/// revalidation (just before, at, just after its time) or not far behind the fleet's clock; the
/// seeder's clock in step with the fleet's, or behind it by up to the tolerance or more, so a
/// build time lies ahead of it within [`SEED_CLOCK_TOLERANCE_MS`] and beyond.
fn seed_op() -> impl Strategy<Value = Op> {
    let tolerance = SEED_CLOCK_TOLERANCE_MS as u16;
    (
        (
            prop_oneof![2 => Just(0u8), 2 => 1u8..4, 3 => Just(4u8), 1 => Just(5u8)],
            any::<u16>(),
        ),
        prop_oneof![
            2 => Just(0u16),
            1 => 1..=tolerance,
            1 => tolerance + 1..3 * tolerance,
        ],
        0u8..4,
        0u8..4,
        prop::bool::weighted(0.2),
    )
        .prop_map(|(built, lag, tags, life, lost)| Op::Seed {
            built,
            lag,
            tags,
            life,
            lost,
        })
}

/// The ops drawn for histories of page rewrites followed by push: short histories of page
/// reads on several instances raced by whole rewrites elsewhere (and the regenerations reads
/// begin, and seeds), announcements delivered mostly before the next pull, and the faults
/// that make one miss its mark: a channel dropped unnoticed (its announcements lost, then a
/// pull), a gap, an advance past the bound; instances that pull (a drop noticed, a restart),
/// where only the sharing rule keeps a read from a `GET` older than a rewrite; Redis's own
/// faults rarer.
fn page_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        14 => (0..3usize, 0u8..8, any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(inst, soft, caches, on_demand)| Op::IncRead {
                inst, key: 0, soft, caches, revalidate: 0, on_demand,
            }),
        8 => (0..3usize, 0u8..2, prop::bool::weighted(0.3))
            .prop_map(|(inst, life, held)| Op::Rewrite { inst, life, held }),
        // A seed is a page write too, announced as one (docs/decisions/0031).
        2 => seed_op(),
        8 => (0..8usize, 0u8..4, 0u8..2)
            .prop_map(|(pick, tags, life)| Op::IncWrite { pick, tags, life }),
        24 => (0..8usize).prop_map(|pick| Op::Step { pick }),
        12 => (0..3usize).prop_map(|inst| Op::Deliver { inst }),
        1 => (0..3usize, 1u8..8, 0u8..4).prop_map(|(inst, tags, mode)| Op::Revalidate { inst, tags, mode }),
        3 => (0..3usize).prop_map(|inst| Op::Tick { inst }),
        1 => Just(Op::Flush),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Failover),
        5 => (0..3usize).prop_map(|inst| Op::Restart { inst }),
        1 => Just(Op::Down),
        2 => Just(Op::Up),
        1 => (0..3usize).prop_map(|inst| Op::LoseReply { inst }),
        6 => prop_oneof![1 => 0u16..200, 1 => 1000u16..1500].prop_map(|ms| Op::Advance { ms }),
        2 => (0..3usize).prop_map(|inst| Op::Subscribe { inst }),
        4 => (0..3usize).prop_map(|inst| Op::DropChannel { inst }),
        3 => (0..3usize).prop_map(|inst| Op::NoticeDown { inst }),
        1 => (0..3usize, clock_step()).prop_map(|(inst, ms)| Op::ClockStep { inst, ms }),
        1 => (900u16..1200).prop_map(|ms| Op::Stall { ms }),
    ]
}

/// The ops drawn for histories of a bounded mirror's folds (`a_bounded_mirror_gives_back_what_it_folded_to_every_instance`):
/// revalidations that fold one another, snapshots and failovers that lose them, the loads
/// that give them back folded, restarts (an instance that never learnt them, cold) and reads
/// of entries made before, all frequent. [`op`]'s weights make a snapshot, a folded
/// revalidation, a failover and a read by an instance that had not learnt it, in that order,
/// too rare to find there.
fn fold_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, 0..2usize, 1u8..8, prop_oneof![2 => Just(0u16), 1 => 1u16..300, 1 => 0u16..2000])
            .prop_map(|(inst, key, tags, began)| Op::Write { inst, key, tags, began }),
        4 => (0..3usize, 0..2usize, 0u8..4, any::<bool>())
            .prop_map(|(inst, key, soft, caches)| Op::Read { inst, key, soft, caches }),
        10 => (0..8usize).prop_map(|pick| Op::Step { pick }),
        5 => (0..3usize, 1u8..8, 0u8..4).prop_map(|(inst, tags, mode)| Op::Revalidate { inst, tags, mode }),
        2 => (0..3usize).prop_map(|inst| Op::Tick { inst }),
        4 => (0..3usize).prop_map(|inst| Op::Load { inst }),
        2 => Just(Op::Flush),
        2 => Just(Op::Snapshot),
        2 => Just(Op::Failover),
        2 => (0..3usize).prop_map(|inst| Op::Restart { inst }),
        1 => (0..3usize).prop_map(|inst| Op::Close { inst }),
        1 => (0..3usize).prop_map(|inst| Op::LoseReply { inst }),
        2 => hold_tag(),
        3 => (0..4usize).prop_map(|pick| Op::TagStep { pick }),
        1 => (0..3usize, clock_step()).prop_map(|(inst, ms)| Op::ClockStep { inst, ms }),
        2 => (0u16..1500).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// The ops drawn for histories of regenerations that overlap in one process: singular-handler
/// requests on two instances (so two of them often share one), answers that reach Next late
/// (past a 3 s `revalidate` mostly: Next's second look), revalidations between a
/// regeneration's start and its write, and renders written in any order or never; faults
/// rare.
fn regen_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        14 => (0..2usize, 0..2usize, 0u8..8, any::<bool>(), 0..3usize, prop::bool::weighted(0.05))
            .prop_map(|(inst, key, soft, caches, revalidate, on_demand)| Op::IncRead {
                inst, key, soft, caches, revalidate, on_demand,
            }),
        8 => (0..8usize, 0u8..4, 0u8..4)
            .prop_map(|(pick, tags, life)| Op::IncWrite { pick, tags, life }),
        2 => (0..2usize, 0u8..4, prop::bool::weighted(0.3))
            .prop_map(|(inst, life, held)| Op::Rewrite { inst, life, held }),
        5 => (0..2usize, prop_oneof![1 => 1u16..1000, 3 => 3000u16..4500])
            .prop_map(|(inst, ms)| Op::LateAnswer { inst, ms }),
        45 => (0..8usize).prop_map(|pick| Op::Step { pick }),
        5 => (0..3usize, 1u8..8, 0u8..4).prop_map(|(inst, tags, mode)| Op::Revalidate { inst, tags, mode }),
        8 => prop_oneof![2 => 1u16..250, 1 => 1000u16..3500].prop_map(|ms| Op::Advance { ms }),
        1 => (0..3usize).prop_map(|inst| Op::Tick { inst }),
        1 => (0..3usize).prop_map(|inst| Op::LoseReply { inst }),
        1 => (0..3usize).prop_map(|inst| Op::Restart { inst }),
        1 => (0..3usize, clock_step()).prop_map(|(inst, ms)| Op::ClockStep { inst, ms }),
        1 => (900u16..1200).prop_map(|ms| Op::Stall { ms }),
    ]
}

/// The ops drawn for histories of failing regenerations and of requests that read one
/// `fetch` entry twice, on [`regen_op`]'s schedule: regenerations that fail and write back the
/// value served (Next 16.5) as often as those that store a render, answers past a 3 s
/// `revalidate` (Next's second look, and a value stale by time alone), revalidations between,
/// and a request's second read of its `fetch` entry before its write.
fn write_back_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // The page (which is written back) twice as often as the `fetch` entry (read twice).
        14 => (0..2usize, prop_oneof![2 => Just(0usize), 1 => Just(1usize)], 0u8..8, any::<bool>(), 0..3usize, prop::bool::weighted(0.05))
            .prop_map(|(inst, key, soft, caches, revalidate, on_demand)| Op::IncRead {
                inst, key, soft, caches, revalidate, on_demand,
            }),
        6 => (0..8usize).prop_map(|pick| Op::IncReadAgain { pick }),
        4 => (0..8usize, 0u8..4, 0u8..4)
            .prop_map(|(pick, tags, life)| Op::IncWrite { pick, tags, life }),
        6 => (0..8usize).prop_map(|pick| Op::IncWriteBack { pick }),
        2 => (0..2usize, 0u8..4, prop::bool::weighted(0.3))
            .prop_map(|(inst, life, held)| Op::Rewrite { inst, life, held }),
        5 => (0..2usize, prop_oneof![1 => 1u16..1000, 3 => 3000u16..4500])
            .prop_map(|(inst, ms)| Op::LateAnswer { inst, ms }),
        45 => (0..8usize).prop_map(|pick| Op::Step { pick }),
        // Half of them of the page's own tag alone (`revalidatePath`).
        6 => (0..3usize, prop_oneof![1u8..8, Just(4u8)], 0u8..4)
            .prop_map(|(inst, tags, mode)| Op::Revalidate { inst, tags, mode }),
        8 => prop_oneof![2 => 1u16..250, 1 => 1000u16..3500].prop_map(|ms| Op::Advance { ms }),
        1 => (0..3usize).prop_map(|inst| Op::Tick { inst }),
        1 => (0..3usize).prop_map(|inst| Op::LoseReply { inst }),
        1 => (0..3usize).prop_map(|inst| Op::Restart { inst }),
        1 => (0..3usize, clock_step()).prop_map(|(inst, ms)| Op::ClockStep { inst, ms }),
        1 => (900u16..1200).prop_map(|ms| Op::Stall { ms }),
    ]
}

/// A step of an instance's wall clock ([`Op::ClockStep`]): forward or back by more than the
/// 10 ms slack (`CLOCK_AHEAD_SLACK_MS`, within which an entry keeps Next's stamp), up to 5 s;
/// a quarter of them just past it (up to 15 ms), where what a drifting clock moved untold
/// before it ([`CLOCK_NOTE_MS`]) decides whether the engine sees the step. And a third of
/// them short pauses: 3 to 5 ms, each within what the engine takes for a step when told, that
/// add up past the slack when several fall between two pulls; and 6 to 10 ms, within the
/// slack, past the engine's threshold (the slack less the host's filter), which it takes for
/// a step when a request tells it.
fn clock_step() -> impl Strategy<Value = i16> {
    let ms = prop_oneof![3 => 11i16..5000, 1 => 11i16..16];
    prop_oneof![2 => ms.clone(), 2 => ms.prop_map(|ms| -ms), 1 => 3i16..6, 1 => 6i16..=10]
}

/// How far each instance's process clock runs from the wall clock when a history begins (a
/// step before it): on it mostly, else behind or ahead by more than the slack, up to 5 s.
/// And how fast each drifts ([`Instance::rate`]): not at all mostly, else up to 500 ppm
/// either way (what NTP slews a clock by at most), and rarely up to 2 % (a clock NTP does not
/// discipline), so that a history's advances move the clocks' distance by fractions of a ms to
/// tens of ms per op.
fn clock_offsets() -> impl Strategy<Value = Clocks> {
    let offset = || {
        prop_oneof![
            6 => Just(0.0),
            1 => (11u16..5000).prop_map(|ms| -f64::from(ms)),
            1 => (11u16..5000).prop_map(f64::from),
        ]
    };
    let rate = || {
        prop_oneof![
            4 => Just(0.0),
            3 => (-500i32..=500).prop_map(|ppm| f64::from(ppm) * 1e-6),
            1 => (-20_000i32..=20_000).prop_map(|ppm| f64::from(ppm) * 1e-6),
        ]
    };
    [(offset(), rate()), (offset(), rate()), (offset(), rate())]
}

/// Each instance's process clock as a history begins: how far from the wall clock, and how
/// fast it drifts from it ([`Instance::offset`], [`Instance::rate`]).
type Clocks = [(f64, f64); 3];

/// Every process's clock on the wall clock.
const ALIGNED: Clocks = [(0.0, 0.0); 3];

/// Whether a request's start leaves the clocks untold (`TagSync.noteClocks`): their distance,
/// now `apart`, moved by [`CLOCK_NOTE_MS`] or less from the one the host last told (`told`).
fn told_within_filter(told: Option<f64>, apart: f64) -> bool {
    told.is_some_and(|told| (apart - told).abs() <= CLOCK_NOTE_MS)
}

/// The state hash or the version log lost alone ([`Op::LoseKey`]).
fn lose_key() -> impl Strategy<Value = Op> {
    any::<bool>().prop_map(|log| Op::LoseKey { log })
}

fn mask(bits: u8) -> Vec<&'static str> {
    TAGS.iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, t)| *t)
        .collect()
}

/// A command on its way: sent at `sent` (its process's clock) under `budget_ms`, with the
/// breaker's permit.
struct InFlight {
    cmd: Cmd,
    sent: f64,
    budget_ms: f64,
    permit: Permit,
    /// `None` until the command reaches Redis; then its reply, `None` when lost.
    reply: Option<Option<Reply>>,
    /// Its process's count of page announcements heard when it went out
    /// ([`Engine::page_heard`]: announcements, gaps, its own page writes).
    heard: u32,
    /// The step it went out at: a read joins it only if it began at or before that step.
    issued: usize,
}

/// What a request waits for.
enum Wait {
    Cmd(InFlight),
    /// The machine's pause, until then.
    Timer(f64),
}

/// A read in progress.
struct ReadTask {
    machine: ReadMachine,
    cache_key: &'static str,
    key_name: String,
    soft: Vec<&'static str>,
    /// Its answer goes into a server cache.
    caches: bool,
    /// The step at which the request began.
    started: usize,
    /// Its tag refresh failed (the one exception while Redis answers nobody). A read that
    /// never asked for one has no excuse.
    refresh_failed: bool,
    /// What Redis's tag state held when the refresh ran there (at the start until it runs;
    /// caught up without a pull, at the last pull).
    held: TagState,
    /// The step at which `held` was taken.
    held_step: usize,
    /// Following by push, it was caught up when it began and skipped its refresh.
    caught_up: bool,
    /// When it began.
    began_at: f64,
    /// Caught up, how much older than the bound in true time its instance's last pull may
    /// have been when it began (0 when not caught up): the bound is counted on the process's clock, and the engine
    /// takes a move of the clocks' distance for a gap past its threshold (the slack less the
    /// host's filter) from the distance as at that pull's start, to the distance last told,
    /// which is this far from the real one ([`World::untold`]).
    bound_late: f64,
    /// Revalidations whose announcement had not reached the instance when it began.
    unheard: HashSet<usize>,
    /// Page writes whose announcement had not reached the instance when it began.
    unheard_pages: HashSet<usize>,
    /// The bytes of the last input that carried bytes, and those of each source.
    given: Option<Vec<u8>>,
    reply: Option<Vec<u8>>,
    kept: Option<Vec<u8>>,
    own: Option<Vec<u8>>,
    polled: Option<Vec<u8>>,
    /// When the machine was given the bytes of each source (by [`Source`] number).
    at: [f64; 6],
    /// Whether, then, the instance's breaker was not closed (an outage) and its mirror was
    /// synced: the engine judges by both at that moment, not at the answer's.
    outage_at: [bool; 6],
    /// How far, then, its process's clock ran behind the wall clock beyond what its engine was
    /// last told (0 when not): it judges a revalidation's expiry at the later of its clock and
    /// the wall clock it was told, so that much late.
    behind_at: [f64; 6],
    synced_at: [bool; 6],
    /// For each source, the event at which the machine was given its bytes, and the
    /// instance's last successful refresh then (its step and what Redis held).
    judged: Vec<(usize, Option<(usize, TagState)>)>,
    /// A read of the singular handler: what only those carry.
    inc: Option<IncRead>,
    /// The tag refresh (a ticket) this read waits for before its machine is given anything
    /// more (the driver's rule R1), until it ends.
    ticket: Option<usize>,
}

/// What a singular-handler read carries.
#[derive(Clone, Copy, Debug)]
struct IncRead {
    /// Index in `INC_KEYS`.
    key: usize,
    is_fetch: bool,
    /// A fetch read's own `revalidate` (s), NaN when none.
    request_revalidate: f64,
    on_demand: bool,
    /// The request (its handler instance in `World::handlers`).
    request: usize,
}

/// What one request's handler instance keeps of its reads for its writes of the same keys
/// (`OwnReads` in incremental-handler.ts): per cache key its answers' [`ReadAnswer::own`]
/// folded by [`Own::least`], taken by the write, which the core decides on.
#[derive(Clone, Debug, Default)]
struct OwnReads(HashMap<&'static str, Own>);

impl OwnReads {
    fn note(&mut self, cache_key: &'static str, own: Own) {
        let kept = self.0.entry(cache_key).or_insert(Own::NONE);
        *kept = kept.least(own);
    }

    fn take(&mut self, cache_key: &str) -> Own {
        self.0.remove(cache_key).unwrap_or(Own::NONE)
    }
}

/// A regeneration of a singular-handler key that Next began and has not stored yet.
#[derive(Clone, Debug)]
struct Regen {
    inst: usize,
    /// Index in `INC_KEYS`.
    key: usize,
    /// When Next began it (the answer came, or Next's second look called the answer due):
    /// the render reads its data after that, and its payload carries it.
    began: f64,
    /// The request that regenerates, whose handler instance (`World::handlers`; Next builds
    /// one per request) its write takes what the request's reads of the key left from; `None`
    /// for a rewrite, whose request read nothing through its handler instance.
    request: Option<usize>,
    /// The value the read that began it served, which Next 16.5 writes back unchanged when the
    /// regeneration fails (`Op::IncWriteBack`); `None` after a miss.
    served: Option<ServedValue>,
    /// What its instance knew when it began ([`World::check_regenerated`]).
    knew: Knew,
}

/// What an instance knew of the revalidations when a regeneration began there: the render
/// judges its data by that.
#[derive(Clone, Debug)]
struct Knew {
    /// The step it began at.
    step: usize,
    /// Revalidations it had learnt by a refresh or heard announced.
    revs: HashSet<usize>,
    /// The latest start of its refreshes that had succeeded ([`Instance::pulled_from`]).
    pulled_from: f64,
    /// [`Instance::heard_from`] then.
    heard_from: f64,
    /// The read that began it could not refresh the tag state (the one exception).
    refresh_failed: bool,
    /// A rewrite (no read began it), or a `'use cache'` write, on an instance not caught up:
    /// its render's reads would pull on their own, which the model leaves out.
    pulls_itself: bool,
}

/// A value a singular-handler read served, as the request holds it for a write back.
#[derive(Clone, Debug)]
struct ServedValue {
    /// The bytes served (header and parts), and where its parts begin.
    value: Vec<u8>,
    payload_offset: usize,
    shown: IncrementalShown,
    /// The stamp the answer left for a write of this very value back (`Own::written_back`),
    /// and when it says the value was made (`Own::written_back_made`).
    written_back: f64,
    written_back_made: f64,
    /// When the read that served it began, and its soft tags.
    read_began: f64,
    soft: Vec<&'static str>,
}

impl ServedValue {
    /// Its header, and its creation by the payload and by the header the engine judged it by
    /// (the earlier); `None` without a header or a finite time.
    fn created(&self) -> Option<(fleetcache_core::DecodedHeader, f64)> {
        let header = fleetcache_core::decode_header(&self.value, self.value.len()).ok()?;
        let payload = self
            .value
            .get(self.payload_offset..self.payload_offset + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(f64::NAN, f64::from_le_bytes);
        let created = payload.min(header.meta.made().0);
        created.is_finite().then_some((header, created))
    }
}

/// One request's handler instance (Next builds one per request, `OwnReads` in
/// incremental-handler.ts), and what a later read of its `fetch` key by the same request
/// (`Op::IncReadAgain`) passes again.
#[derive(Clone, Debug)]
struct Handler {
    inst: usize,
    reads: OwnReads,
    /// The read's `Op::IncRead` arguments: key, soft tags, caches, `revalidate`.
    read: (usize, u8, bool, usize),
}

/// A value written back unchanged (Next 16.5's `retainPreviousCacheEntry`), for the check of
/// its retry delay ([`World::check_retry`]).
#[derive(Clone, Debug)]
struct WriteBack {
    /// The instance that wrote it back, and the step it began at.
    inst: usize,
    step: usize,
    /// What the read that served it was served ([`ServedValue`]).
    served: ServedValue,
    /// The bytes each store of it sent (the header the write machine stamped, the same parts).
    stored: Vec<Vec<u8>>,
    /// The revalidations its instance had learnt when it wrote it back.
    known: HashSet<usize>,
}

/// How a tag refresh that reads wait for ended: whether it succeeded, and what Redis's tag
/// state held when it ran there and at which step (`None`: it never ran).
struct Refreshed {
    ok: bool,
    held: Option<(TagState, usize)>,
}

enum Job {
    Read(Box<ReadTask>),
    /// A process's tag refresh; reads wait on its `ticket`. `next` is the ticket of the
    /// refresh that reads which arrived while this one was in flight wait for: it starts
    /// once this one succeeded (and fails with it).
    Refresh {
        ticket: usize,
        next: Option<usize>,
        /// What Redis's tag state held when the refresh ran there, and the step it ran.
        held: TagState,
        held_step: usize,
        /// When it was planned (its start).
        planned: f64,
    },
    Write {
        machine: WriteMachine,
        cache_key: &'static str,
        /// The payload: when the regeneration began (f64 ms, little-endian), which the check
        /// reads instead of trusting the header the machine stamped.
        payload: Vec<u8>,
        /// The host keeps it as this process's write in flight (`'use cache'` only: the
        /// singular handler's driver has no such hook).
        own: bool,
    },
    /// `fleetcache seed` of the page: its process's engine (which pulled the tag state when
    /// the run began), its clock's lag behind the fleet's, the build's time (in the fleet's
    /// clock: the data is that new, so the payload carries it), the page's tags and `life`
    /// (as `IncWrite`), and whether its write's reply is lost. Waits for its turn (a timer),
    /// then for its write.
    Seed {
        engine: Box<Engine>,
        lag: f64,
        built_at: f64,
        tags: Vec<&'static str>,
        life: u8,
        lost: bool,
    },
}

/// One request in flight on an instance.
struct Task {
    /// Its id, for the own-write bookkeeping.
    id: usize,
    inst: usize,
    job: Job,
    wait: Wait,
}

struct World {
    redis: Redis,
    kept: Option<Redis>,
    up: bool,
    lose: HashSet<usize>,
    /// Failures drawn so far that may make a process give a record back (again): the state
    /// flushed, failed over or missing a key, merges whose reply did not come back, and a
    /// refresh reply that ran before a merge that ran since ([`World::refreshed`]).
    losses: u64,
    /// Each record a merge gave back (instance, tag, record as sent), with `losses` then: a
    /// process gives one back again only after a failure drawn since ([`World::given_back`]).
    given: HashMap<(usize, String, String), u64>,
    /// The first record given back twice by a process with no failure drawn in between.
    given_twice: Option<String>,
    /// For each instance loading the state, the merges run on the state its load's first
    /// reply ran on ([`World::refreshed`]).
    load_merges: HashMap<usize, u64>,
    now: f64,
    step: usize,
    insts: Vec<Instance>,
    revs: Vec<Rev>,
    seq: u64,
    /// The instances follow the state by push.
    push: bool,
    /// The revalidation the command being sent records (the outbox's head).
    publishing: Option<usize>,
    tasks: Vec<Task>,
    /// Task ids, for the own-write bookkeeping.
    next_task: usize,
    trace: Vec<String>,
    /// Tag refreshes reads wait for, by ticket: how each ended, `None` while it has not.
    tickets: Vec<Option<Refreshed>>,
    /// Refresh calls made so far for each ticket (a pull answered in parts makes several).
    ticket_steps: HashMap<usize, usize>,
    /// Reads whose next input waits for the end of a refresh: its ticket, the read, the input.
    parked: Vec<(usize, Task, In)>,
    /// Regenerations of singular-handler keys that reads began and Next has not stored yet.
    /// A page's one at a time per process (Next's response cache joins a page's renders); a
    /// `fetch` entry's one per request that found it missing or stale (Next joins fetches
    /// neither across requests nor across processes).
    regens: Vec<Regen>,
    /// The Next release every instance runs (`None`: the newest).
    release: Option<NextRelease>,
    /// The instances take leases (`Config::leases`).
    leases: bool,
    /// The bound on every process's tag mirror (`Config::tag_mirror_max_tags`).
    max_tags: u32,
    /// Every process's outbox capacity (`Config::outbox_capacity`).
    outbox: u32,
    /// The next singular-handler answer on an instance reaches Next this many ms late
    /// (`Op::LateAnswer`).
    late: HashMap<usize, u16>,
    /// Counts events that order what an instance learnt against when a read judged bytes
    /// (several happen within one op).
    events: usize,
    /// When the host got the reply of each page write (by its number): the step and time.
    page_resolved: HashMap<usize, (usize, f64)>,
    /// The instance that made each page write whose reply it got (by its number).
    page_writer: HashMap<usize, usize>,
    /// The instance that sent each page write that reached Redis, its reply got or not.
    page_sender: HashMap<usize, usize>,
    /// Page values Redis lost (a flush, a failover), each with the number the next page write
    /// had then ([`PAGE_WRITES`]): every write numbered from there on came after the loss, so
    /// it replaced the lost value as it replaces what Redis held; and the lost write's own
    /// number.
    /// And the writes that had replaced it before the loss (lost with it: a value a write
    /// replaced stays replaced by it when a flush then loses both).
    page_lost: Vec<(Vec<u8>, usize, usize, PageLog)>,
    /// Reads that joined another read's `GET` or poll in flight on their process (the host
    /// shares one per key: store.ts, read-driver.ts): that read's task id, the read. Each is
    /// given the same reply when that one is.
    joined: Vec<(usize, Task)>,
    /// Singular-handler requests' handler instances, by request (the id of its first read).
    handlers: HashMap<usize, Handler>,
    /// Requests that read the `fetch` entry and may read it again (`Op::IncReadAgain`), the
    /// latest last.
    open: Vec<usize>,
    /// Values written back unchanged, by the task id of their write.
    write_backs: HashMap<usize, WriteBack>,
    /// Page regenerations being written, by the task id of their write: the instance, when
    /// the regeneration began and what the instance knew then ([`World::check_regenerated`]).
    regenerated: HashMap<usize, (usize, f64, Knew)>,
    /// The time at the end of past steps, oldest first: each distinct time with the last step
    /// that ended at it ([`World::knew_at`]).
    times: Vec<(f64, usize)>,
    /// A process's clock has run apart from the wall clock in this history.
    clocks_parted: bool,
    /// A process's clock drifts in this history ([`Instance::rate`]): it may run ahead of the
    /// wall clock by the slack or less, where its entries keep Next's stamps ([`World::slack`]).
    drifts: bool,
    /// By the true time a regeneration began (its payload's, as bits): how far ahead of the
    /// wall clock, within the slack, the clock of an instance that began one then, or stamped
    /// it, ran ([`World::stamped`], [`World::slack`]), or how far past it the write's move
    /// back by a distance drift shrank left the stamp ([`World::moved_at_the_write`]).
    within_slack: HashMap<u64, f64>,
}

impl World {
    fn new(push: bool, release: Option<NextRelease>, leases: bool, max_tags: u32) -> World {
        let forced = std::env::var("SIM_PART_LIMIT")
            .ok()
            .and_then(|v| v.parse::<usize>().ok());
        PART_LIMIT.with(|p| {
            p.set(forced.unwrap_or(match max_tags {
                1 => 1,
                2 => 2,
                _ => PART_TAGS,
            }))
        });
        let window = std::env::var("SIM_ID_WINDOW")
            .ok()
            .and_then(|v| v.parse::<u64>().ok());
        ID_WINDOW.with(|w| {
            w.set(window.unwrap_or(match max_tags {
                1 | 2 => 1024,
                _ => 3,
            }))
        });
        World {
            redis: Redis::default(),
            kept: None,
            up: true,
            lose: HashSet::new(),
            losses: 0,
            given: HashMap::new(),
            given_twice: None,
            load_merges: HashMap::new(),
            now: T0,
            step: 0,
            insts: (0..3)
                .map(|_| Instance::new(T0, push, release, leases, max_tags, default_outbox()))
                .collect(),
            revs: Vec::new(),
            seq: 0,
            push,
            publishing: None,
            tasks: Vec::new(),
            next_task: 0,
            trace: Vec::new(),
            tickets: Vec::new(),
            ticket_steps: HashMap::new(),
            parked: Vec::new(),
            regens: Vec::new(),
            release,
            leases,
            max_tags,
            outbox: default_outbox(),
            late: HashMap::new(),
            events: 0,
            page_resolved: HashMap::new(),
            page_writer: HashMap::new(),
            page_sender: HashMap::new(),
            page_lost: Vec::new(),
            joined: Vec::new(),
            handlers: HashMap::new(),
            open: Vec::new(),
            write_backs: HashMap::new(),
            regenerated: HashMap::new(),
            times: Vec::new(),
            clocks_parted: false,
            drifts: false,
            within_slack: HashMap::new(),
        }
    }

    /// Every process's outbox holds `capacity` revalidations (`Config::outbox_capacity`): set
    /// as the history begins, before anything else (the instances start over with it).
    fn outboxes(&mut self, capacity: u32) {
        assert!(
            self.step == 0 && self.revs.is_empty(),
            "set as the history begins"
        );
        self.outbox = capacity;
        let (push, release, leases, max_tags) =
            (self.push, self.release, self.leases, self.max_tags);
        self.insts = (0..self.insts.len())
            .map(|_| Instance::new(T0, push, release, leases, max_tags, capacity))
            .collect();
    }

    /// Sets how far each process's clock runs from the wall clock as the history begins.
    fn clocks(&mut self, clocks: Clocks) {
        for (inst, (offset, rate)) in self.insts.iter_mut().zip(clocks) {
            inst.offset = offset;
            inst.rate = rate;
            inst.rate_from = self.now;
        }
        self.clocks_parted |= clocks.iter().any(|(o, r)| *o != 0.0 || *r != 0.0);
        self.drifts |= clocks.iter().any(|(_, r)| *r != 0.0);
    }

    /// How much later than the true time of its data, `created` (a regeneration's start), an
    /// entry may be judged by its tags: a process whose clock runs ahead of its wall clock by
    /// [`CLOCK_AHEAD_SLACK_MS`] or less stamps its entries on its own clock (decision 0036
    /// leaves that, as what NTP leaves between hosts), so a revalidation in those ms after the
    /// data was made may not reach it. Exactly as far as the clock of the instance that began
    /// it, or stamped it, ran ahead then ([`World::stamped`]); and, for an entry the write moved
    /// back by the distance at the write, past the slack, as far as drift brought the two
    /// clocks closer since the regeneration began ([`World::moved_at_the_write`]); none for any
    /// other entry, and none in a history whose clocks do not drift (a step never leaves a clock
    /// there, [`Op::ClockStep`]). A blanket 10 ms for every entry of a drifting history would
    /// hide a stamp up to 10 ms late on any instance.
    fn slack(&self, created: f64) -> f64 {
        if self.drifts {
            self.within_slack
                .get(&created.to_bits())
                .copied()
                .unwrap_or(0.0)
        } else {
            0.0
        }
    }

    /// Instance `inst` writes at `now` (its wall clock `wall`) a `'use cache'` entry whose
    /// regeneration began at the true time `created`, Next's stamp `next_stamp` (its clock then).
    /// The write moves the stamp back by the distance its clock runs ahead of the wall clock
    /// past the slack at the write (`Engine::write_start_at`; farther only where the engine was
    /// told a farther one within a regeneration's life), not by the distance when the
    /// regeneration began (decision 0036): where drift brought the two clocks closer in between,
    /// the entry is stamped after `created` by as much as they came closer, and by the distance
    /// left at the write where that is the slack or less (not moved: Next's stamp stays). At most
    /// the stamp the write computes, so the check allows that ([`World::slack`]), for drift
    /// alone: a step since the regeneration began is not allowed for (a host tells its engine
    /// both clocks at the request that begins a regeneration, and the engine takes the farthest
    /// told within a regeneration's life). Where that request told the engine the distance
    /// (`told_start`: it had moved past the host's filter, [`World::start_told`]), the write
    /// moves the stamp back by it at least, and nothing is allowed past the start but what a
    /// distance of the slack or less leaves ([`World::stamped`]).
    fn moved_at_the_write(
        &mut self,
        inst: usize,
        created: f64,
        next_stamp: f64,
        (now, wall): (Millis, Millis),
        told_start: bool,
    ) {
        if self.insts[inst].stepped.iter().any(|&(at, _)| at > created) {
            return;
        }
        // The rule, stated here rather than taken from the core (`time::ahead_of_wall`), so
        // that the check does not move with it.
        let past_slack = |apart: f64| {
            if apart > CLOCK_AHEAD_SLACK_MS {
                apart
            } else {
                0.0
            }
        };
        let mut ahead = past_slack(now.0 - wall.0);
        if told_start {
            ahead = ahead.max(past_slack(next_stamp - created));
        }
        // As `write_machine::write_start` computes the stamp: rounded alike.
        let late = (next_stamp - ahead) - created;
        if late > 0.0 {
            let e = self.within_slack.entry(created.to_bits()).or_insert(0.0);
            *e = e.max(late);
        }
    }

    /// Instance `inst` begins, or stamps, a regeneration whose data is of true time `created`:
    /// where its clock runs ahead of the wall clock by the slack or less, its entry may be
    /// stamped that far after it ([`World::slack`]).
    fn stamped(&mut self, inst: usize, created: f64) {
        self.stamped_ahead(created, self.offset(inst));
    }

    /// As [`World::stamped`], by a clock that ran `ahead` of the wall clock.
    fn stamped_ahead(&mut self, created: f64, ahead: f64) {
        if ahead > 0.0 && ahead <= CLOCK_AHEAD_SLACK_MS {
            let e = self.within_slack.entry(created.to_bits()).or_insert(0.0);
            *e = e.max(ahead);
        }
    }

    /// How far instance `i`'s process clock runs ahead of the true time (0 for the seeder,
    /// whose clock is its own): its offset, and what its drift added since.
    fn offset(&self, i: usize) -> f64 {
        self.insts.get(i).map_or(0.0, |inst| {
            inst.offset + inst.rate * (self.now - inst.rate_from)
        })
    }

    /// The earliest true time at which instance `i`'s process clock reads `clock` or later (a
    /// timer set on it), at its current offset and drift.
    fn true_time_at(&self, i: usize, clock: f64) -> f64 {
        let Some(inst) = self.insts.get(i) else {
            return clock;
        };
        // As [`World::clock`] adds it up: another order rounds otherwise, and a timer found
        // due here would be a hair short of its time there, set again for ever.
        let at = |t: f64| t + (inst.offset + inst.rate * (t - inst.rate_from));
        let mut t = (clock - inst.offset + inst.rate * inst.rate_from) / (1.0 + inst.rate);
        // The division rounds: a timer found a hair short of its time would never fire.
        while at(t) < clock {
            t = Millis(t).just_after().0;
        }
        t
    }

    /// Instance `i`'s drift so far made part of its offset, counted from now on anew: before
    /// its offset is stepped, or its clock stands still.
    fn fold_drift(&mut self, i: usize) {
        let offset = self.offset(i);
        self.insts[i].offset = offset;
        self.insts[i].rate_from = self.now;
    }

    /// Instance `i`'s process clock: the `now` the host hands its engine.
    fn clock(&self, i: usize) -> f64 {
        self.now + self.offset(i)
    }

    /// What instance `i`'s process clock read at the true time `t` (no later than now, no
    /// earlier than the process started): before a step since, as it ran then
    /// ([`Instance::stepped`]); at a step's time, as after it (ops of that ms come after the
    /// step); through a pause, what it read as the pause began (it stood still). At `t` now,
    /// [`World::clock`] exactly.
    fn clock_at(&self, i: usize, t: f64) -> f64 {
        let inst = &self.insts[i];
        let mut floor = f64::NEG_INFINITY;
        for &(until, offset) in &inst.stepped {
            if t < until {
                return (t + (offset + inst.rate * (t - until))).max(floor);
            }
            floor = until + offset;
        }
        (t + (inst.offset + inst.rate * (t - inst.rate_from))).max(floor)
    }

    /// Instance `i` plans a pull: the host tells its engine both clocks
    /// (`Engine::note_clocks`), as `TagSync`'s `checkClock` does, every time.
    fn note_clocks(&mut self, i: usize) {
        let (now, wall) = (Millis(self.clock(i)), Millis(self.wall(i)));
        self.insts[i].engine.note_clocks(now, wall);
        self.clocks_told(i, now, wall);
    }

    /// A request begins on instance `i`: as `TagSync.noteClocks`, the host tells its engine
    /// both clocks only when their distance moved by more than [`CLOCK_NOTE_MS`] from the last
    /// it handed the engine (a tier hit stays one call into wasm).
    fn note_clocks_at_request(&mut self, i: usize) {
        if told_within_filter(self.insts[i].clocks_told, self.wall(i) - self.clock(i)) {
            return;
        }
        self.note_clocks(i);
    }

    /// The host handed instance `i`'s engine both clocks (a pull, a request's start, a write,
    /// a revalidation): `TagSync.clocksTold`.
    fn clocks_told(&mut self, i: usize, now: Millis, wall: Millis) {
        if wall.0 > 0.0 {
            self.insts[i].clocks_told = Some(wall.0 - now.0);
            let at = self.now;
            self.insts[i].told.push((at, wall.0 - now.0));
        }
    }

    /// The clocks' distance instance `i`'s host had last handed the engine at true time `t`
    /// (`TagSync`'s `clocksNoted` then), as far back as [`MAX_WRITE_BEGAN_MS`]: a tell of that
    /// very ms counts as before it.
    fn told_at(&self, i: usize, t: f64) -> Option<f64> {
        let told = &self.insts[i].told;
        told.iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map(|(_, apart)| *apart)
    }

    /// How far the clocks' distance of instance `i` is from the one its host last told the
    /// engine (infinite when none was told).
    fn untold(&self, i: usize) -> f64 {
        self.insts[i].clocks_told.map_or(f64::INFINITY, |told| {
            (self.wall(i) - self.clock(i) - told).abs()
        })
    }

    /// Instance `i`'s wall clock (`Date.now()`): the true time.
    fn wall(&self, _i: usize) -> f64 {
        self.now
    }

    /// The next event's number.
    fn event(&mut self) -> usize {
        self.events += 1;
        self.events
    }

    /// Every channel drops (its server went away), unnoticed for now.
    /// Redis becomes `to` (a flush, a failover): the page values its log no longer holds
    /// are lost, replaced by every page write numbered from now on.
    fn lose_pages(&mut self, to: Redis) {
        let next = PAGE_WRITES.load(std::sync::atomic::Ordering::Relaxed);
        let log = &self.redis.page_log;
        for (i, (v, n)) in log.iter().enumerate() {
            if !to.page_log.iter().any(|(_, m)| m == n) {
                self.page_lost
                    .push((v.clone(), next, *n, log[i + 1..].to_vec()));
            }
        }
        self.redis = to;
    }

    fn drop_channels(&mut self) {
        for inst in &mut self.insts {
            inst.listening = false;
            inst.inbox.clear();
        }
    }

    fn token(&mut self) -> String {
        self.seq += 1;
        format!("tok{}", self.seq)
    }

    /// Sends one command for instance `i` through its breaker: `Some(reply)` when Redis ran it
    /// and the reply arrived. `run` executes it on the model. (The retry timer's tag refresh:
    /// sent and answered at once.)
    fn send(
        &mut self,
        i: usize,
        kind: OpKind,
        run: impl FnOnce(&mut Redis) -> Vec<u8>,
    ) -> Option<Vec<u8>> {
        let now = Millis(self.clock(i));
        let Admission::Send { permit, .. } = self.insts[i].engine.admit(kind, now) else {
            return None;
        };
        let result = if self.up {
            // A write runs even when its reply is lost; a lost read changes nothing.
            let reply = run(&mut self.redis);
            self.trace.extend(take_scan_notes());
            self.publish(i);
            if self.lose.remove(&i) {
                None
            } else {
                Some(reply)
            }
        } else {
            None
        };
        let outcome = if result.is_some() {
            CallResult::Success
        } else {
            CallResult::Timeout
        };
        self.insts[i].engine.report(permit, outcome, now);
        result
    }

    /// Hands what the last command, sent by instance `from`, published to the listening
    /// channels. A page write is never unheard by its own process: the engine counts it heard
    /// from its planning on (`Engine::note_own_page_write`).
    fn publish(&mut self, from: usize) {
        for (msg, page) in std::mem::take(&mut self.redis.published) {
            let rev = if page.is_some() {
                None
            } else {
                self.publishing
            };
            for (i, inst) in self.insts.iter_mut().enumerate() {
                if inst.listening {
                    inst.inbox.push_back((msg.clone(), rev, page));
                }
                if inst.listening || inst.believed {
                    inst.unheard.extend(rev);
                    inst.unheard_pages.extend(page.filter(|_| i != from));
                }
            }
        }
    }

    /// Applies a tag refresh's reply (planned at `planned`, taken from Redis at step
    /// `held_step`, when it held `held`).
    fn refreshed(
        &mut self,
        i: usize,
        reply: &[u8],
        held: &TagState,
        held_step: usize,
        planned: f64,
    ) {
        // A reply that ran before a merge that ran since (one of this instance's, acknowledged
        // meanwhile) lacks what the merge gave back with no failure, and its load gives it
        // back again: a double give-back the engine still makes (a version more for every
        // instance), counted here as a failure drawn so that [`World::given_back`] holds it
        // to the others.
        // So does a page of a load that began before such a merge: the pages before it, or
        // the cursor past the tag, leave the merged record out of the load.
        let began = self.load_merges.get(&i).copied().unwrap_or(held.merges);
        if held.merges != self.redis.tags.merges || began != self.redis.tags.merges {
            self.losses += 1;
        }
        let clock = Millis(self.clock(i));
        self.insts[i].engine.apply_refresh(reply, clock).unwrap();
        if self.insts[i].engine.mirror().is_loading() {
            self.load_merges.entry(i).or_insert(held.merges);
        } else {
            self.load_merges.remove(&i);
        }
        self.insts[i].pulled = Some((held_step, held.clone()));
        let from = &mut self.insts[i].pulled_from;
        *from = from.max(planned);
        let m = self.insts[i].engine.mirror();
        let rel = |x: Millis| if x.0 > 0.0 { x.0 - T0 } else { 0.0 };
        let mut recs: Vec<String> = self
            .redis
            .tags
            .records
            .iter()
            .map(|(t, r)| {
                format!(
                    "{}=[s{} e{} p{}/{} u{}]",
                    t.escape_debug(),
                    rel(r.stale),
                    rel(r.expired),
                    rel(r.pending_at),
                    rel(r.pending_exp),
                    rel(r.updated_at)
                )
            })
            .collect();
        recs.sort();
        self.trace.push(format!(
            "  inst {i} refreshed at {}: epoch {} v{} synced {} loading {} held {} folded {} resend {}; redis v{} {}",
            self.now - T0, m.epoch(), m.version(), m.is_synced(), m.is_loading(), m.len(), m.folded(), m.resend_len(),
            held.ver, recs.join(" ")
        ));
        let event = self.event();
        // Synced: the mirror has everything Redis held then (a load in progress has not).
        if self.insts[i].engine.mirror().is_synced() {
            for (n, r) in self.revs.iter().enumerate() {
                let single = r.single();
                if r.tags.iter().all(|t| held.covers(t, &single)) {
                    if !self.insts[i].learned.contains_key(&n) {
                        let m = self.insts[i].engine.mirror();
                        self.trace.push(format!(
                            "  inst {i} learns #{n} at {}: epoch {} v{} held {} folded {} known {:?}",
                            self.now - T0, m.epoch(), m.version(), m.len(), m.folded(),
                            r.tags.iter().map(|t| m.known(t)).collect::<Vec<_>>()
                        ));
                    }
                    self.insts[i].learned.entry(n).or_insert(event);
                }
            }
            self.insts[i].loaded = true;
        }
        if !self.insts[i].taken_out.is_empty() {
            self.resolve_taken_out(i, &|t, single| held.covers(t, single), None);
        }
    }

    /// The retry timer's tag refresh; true when it succeeded.
    fn refresh(&mut self, i: usize) -> bool {
        self.note_clocks(i);
        let clock = Millis(self.clock(i));
        let call = self.insts[i].engine.plan_tag_pull(clock);
        let Some(reply) = self.send(i, OpKind::Read, |r| r.run(&call)) else {
            // As the host does (tag-sync.ts `page`): what the pull was to answer stays due.
            let clock = Millis(self.clock(i));
            self.insts[i].engine.tag_pull_failed(clock);
            return false;
        };
        let held = self.redis.tags.clone();
        self.refreshed(i, &reply, &held, self.step, self.now);
        true
    }

    /// Sends the outbox, then the records to give back, until done, a failure, or a command
    /// held in flight, as tag-sync.ts's `drain` (`replay`, then `resend`): one drain at a time
    /// (one begun while a command waits for its reply joins that drain), a head that got no
    /// reply a moment ago waits the engine's backoff (`backingOff`: the retry timer sends it,
    /// or any command Redis answers ends the wait), and each command's reply comes before the
    /// next is planned.
    fn drain(&mut self, i: usize) {
        if self.insts[i].sending.is_some() {
            return;
        }
        loop {
            let clock = Millis(self.clock(i));
            if self.insts[i].engine.outbox().retry_in(clock) > 0.0 {
                return;
            }
            let token = self.token();
            let Some((seq, call)) = self.insts[i].engine.plan_outbox_head(&token).unwrap() else {
                break;
            };
            let rev = self.insts[i].queued.front().copied();
            if !self.send_tag(i, Some(seq), rev, call) {
                return;
            }
        }
        loop {
            let token = self.token();
            let Some(call) = self.insts[i].engine.plan_resend(&token).unwrap() else {
                break;
            };
            self.trace
                .push(format!("  inst {i} gives back {:?}", call.args));
            if !self.send_tag(i, None, None, call) {
                return;
            }
        }
    }

    /// Instance `inst`'s process is replaced by a new one, which knows nothing of it.
    fn restart(&mut self, inst: usize) {
        let rate = self.insts[inst].rate;
        // Its outbox, and the revalidations it took out of it to merge back, die with
        // it: those not resolved yet never will be (as queued ones).
        self.insts[inst] = Instance::new(
            self.now,
            self.push,
            self.release,
            self.leases,
            self.max_tags,
            self.outbox,
        );
        self.insts[inst].rate = rate;
        // The process's requests die with it, and their commands not yet at Redis, and
        // so do its renders.
        self.tasks.retain(|t| t.inst != inst);
        self.joined.retain(|(_, t)| t.inst != inst);
        self.parked.retain(|(_, t, _)| t.inst != inst);
        self.regens.retain(|r| r.inst != inst);
        self.late.remove(&inst);
        self.handlers.retain(|_, h| h.inst != inst);
        let handlers = &self.handlers;
        self.open.retain(|r| handlers.contains_key(r));
    }

    /// Instance `i` closes: tag-sync.ts `stop()`, then `sendLast`, with the same draws of
    /// lost replies, held commands and an unreachable Redis as any command. The drain's command
    /// under way is awaited (held, it runs its steps now); one that failed was the attempt.
    /// Else, with the state loaded, nothing queued and no pull of a request's out, one pull of
    /// its own: a loss since the last pull is learned only by one, and what the mirror knows
    /// that Redis lacks is then merged back. A pull that got no answer ends the attempt; one
    /// the breaker kept back asked nothing, and it goes on. Then, past the backoff and the
    /// breaker (`force`), the outbox in order and the merges of records to give back, until
    /// one command fails. A command held ([`Op::HoldTag`]) is waited for: its reply comes,
    /// or is lost.
    ///
    /// The contract, once the attempt is over: what it sent is held by the fleet (resolved: the
    /// reads that follow are held to it; and after a pull of its own and no failure, Redis
    /// holds every revalidation this process knew of), and what it did not send is only what
    /// its closing lines report: its unresolved revalidations are the outbox's count ("closing
    /// with n queued revalidation(s) not sent"), and one taken out of a full outbox and not
    /// yet merged back leaves records to give back ("closing with lost tag records not given
    /// back"). Then a new process takes its place ([`World::restart`]).
    fn close(&mut self, i: usize) -> Result<(), TestCaseError> {
        let mut failed = false;
        if let Some(mut send) = self.insts[i].sending.take() {
            if send.reply.is_none() {
                self.tag_reaches(i, &mut send);
            }
            failed = !self.tag_answered(i, send);
        }
        // The pull of its own, or a load under way, and the calls that catch up after it (a
        // load's pages, a reply in parts): close() waits for that chain of pulls.
        let mut pulled = false;
        let engine = &self.insts[i].engine;
        let mirror = engine.mirror();
        let own = mirror.is_synced() && engine.outbox().is_empty();
        if !failed && self.insts[i].refreshing.is_none() && (own || mirror.is_loading()) {
            for _ in 0..20 {
                let clock = Millis(self.clock(i));
                let engine = &self.insts[i].engine;
                let closed = engine.breaker_state(clock) == fleetcache_core::BreakerState::Closed;
                let ok = self.refresh(i);
                self.trace.push(format!(
                    "  inst {i} pulls at close at {}: {}",
                    self.now - T0,
                    if ok { "ok" } else { "failed" }
                ));
                if !ok {
                    failed = closed;
                    break;
                }
                let mirror = self.insts[i].engine.mirror();
                if mirror.is_synced() && !mirror.is_loading() {
                    pulled = true;
                    break;
                }
            }
        }
        while !failed {
            let token = self.token();
            let Some((seq, call)) = self.insts[i].engine.plan_outbox_head(&token).unwrap() else {
                break;
            };
            let rev = self.insts[i].queued.front().copied();
            failed = !self.send_last(i, Some(seq), rev, call);
        }
        while !failed {
            let token = self.token();
            let Some(call) = self.insts[i].engine.plan_resend(&token).unwrap() else {
                break;
            };
            self.trace
                .push(format!("  inst {i} gives back at close {:?}", call.args));
            failed = !self.send_last(i, None, None, call);
        }
        let engine = &self.insts[i].engine;
        let (queued, to_give_back) = (engine.outbox().len(), engine.resend_len());
        self.trace.push(format!(
            "  inst {i} closes at {}: {queued} queued revalidation(s) not sent, {to_give_back} \
             record(s) to give back",
            self.now - T0
        ));
        let unsent = &self.insts[i].queued;
        prop_assert!(
            unsent.len() == queued,
            "{}\ninstance {i} closed with revalidations {unsent:?} unresolved in its outbox, and \
             its closing line counts {queued}",
            self.trace.join("\n")
        );
        let taken_out = &self.insts[i].taken_out;
        prop_assert!(
            taken_out.is_empty() || to_give_back > 0,
            "{}\ninstance {i} closed with revalidations {taken_out:?} taken out of its outbox \
             and not merged back, and no closing line for records to give back",
            self.trace.join("\n")
        );
        if pulled && !failed {
            for &n in self.insts[i].learned.keys() {
                let r = &self.revs[n];
                if r.resolved.is_none() {
                    continue;
                }
                let single = r.single();
                for tag in &r.tags {
                    prop_assert!(
                        self.redis.tags.covers(tag, &single),
                        "{}\ninstance {i} closed after a pull of its own and every command of its \
                         last attempt answered, and Redis lacks revalidation #{n} of {tag}, which \
                         it knew",
                        self.trace.join("\n")
                    );
                }
            }
        }
        self.restart(i);
        Ok(())
    }

    /// A command of close()'s last attempt ([`World::close`]): sent past the breaker, and,
    /// held, waited for. True when its reply came.
    fn send_last(
        &mut self,
        i: usize,
        seq: Option<u64>,
        rev: Option<usize>,
        call: ScriptCall,
    ) -> bool {
        if self.send_tag_as(i, seq, rev, call, true) {
            return true;
        }
        let Some(mut send) = self.insts[i].sending.take() else {
            return false;
        };
        self.tag_reaches(i, &mut send);
        self.tag_answered(i, send)
    }

    /// Sends a tag update (outbox update `seq`, carrying revalidation `rev`) or a merge
    /// (`seq` `None`) of instance `i`'s drain through its breaker: true when its reply came
    /// and the drain goes on. Held ([`Op::HoldTag`]), it stays in flight ([`TagSend`]).
    fn send_tag(
        &mut self,
        i: usize,
        seq: Option<u64>,
        rev: Option<usize>,
        call: ScriptCall,
    ) -> bool {
        self.send_tag_as(i, seq, rev, call, false)
    }

    /// [`World::send_tag`]; `force`: close()'s last attempt, sent whatever the breaker says
    /// (guard.ts: a command the breaker refuses goes out all the same, its permit 0).
    fn send_tag_as(
        &mut self,
        i: usize,
        seq: Option<u64>,
        rev: Option<usize>,
        call: ScriptCall,
        force: bool,
    ) -> bool {
        let now = Millis(self.clock(i));
        let (permit, budget_ms) = match self.insts[i].engine.admit(OpKind::Write, now) {
            Admission::Send { permit, budget_ms } => (Some(permit), budget_ms),
            Admission::Skip if force => (None, self.insts[i].engine.budget_ms(OpKind::Write)),
            Admission::Skip => {
                // The breaker kept it back: the script call fails (CircuitOpen), the failure path.
                self.tag_failed(i, seq);
                return false;
            }
        };
        let held = self.insts[i]
            .hold
            .filter(|(merge, _)| *merge == seq.is_none());
        let mut send = TagSend {
            seq,
            rev,
            call,
            permit,
            sent: now.0,
            budget_ms,
            reply: None,
            lose: held.is_some_and(|(_, lost)| lost),
        };
        if held.is_some() {
            self.insts[i].hold = None;
            self.trace.push(format!(
                "  inst {i} {} held in flight at {}",
                tag_send_name(&send),
                self.now - T0
            ));
            self.insts[i].sending = Some(send);
            return false;
        }
        self.tag_reaches(i, &mut send);
        self.tag_answered(i, send)
    }

    /// Instance `i`'s tag update or merge reaches Redis: it runs there when Redis is up (and
    /// its reply may be lost: [`Op::LoseReply`]), not at all when it is down.
    fn tag_reaches(&mut self, i: usize, send: &mut TagSend) {
        let reply = if self.up {
            self.publishing = send.rev;
            if send.seq.is_none() {
                self.given_back(i, &send.call.args);
            }
            let reply = self.redis.run(&send.call);
            self.trace.extend(take_scan_notes());
            self.publish(i);
            self.publishing = None;
            let lost = send.lose || self.lose.remove(&i);
            (!lost).then_some(reply)
        } else {
            None
        };
        send.reply = Some(reply);
    }

    /// Instance `i`'s tag update or merge is answered, as tag-sync.ts takes its reply: one
    /// lost, or read past its budget (the host's timer fires first), is a timeout for the
    /// breaker and the failure path ([`World::tag_failed`]); else the breaker counts a success,
    /// the engine acknowledges the update (`ackOutbox`) or the batch (`ackResend`), then
    /// applies the reply (`applyUpdateReply`). True when it was answered.
    fn tag_answered(&mut self, i: usize, send: TagSend) -> bool {
        let reply = send
            .reply
            .flatten()
            .filter(|_| self.clock(i) - send.sent <= send.budget_ms);
        if reply.is_none() {
            self.now = self
                .now
                .max(self.true_time_at(i, send.sent + send.budget_ms));
        }
        let now = Millis(self.clock(i));
        let outcome = if reply.is_some() {
            CallResult::Success
        } else {
            CallResult::Timeout
        };
        if let Some(permit) = send.permit {
            self.insts[i].engine.report(permit, outcome, now);
        }
        let Some(reply) = reply else {
            if send.seq.is_none() {
                // A merge that ran (or not): planned again, it may give its records back twice.
                self.losses += 1;
            }
            self.tag_failed(i, send.seq);
            return false;
        };
        let written: Vec<(String, TagRecord)> = match send.seq {
            Some(seq) => {
                self.insts[i].engine.ack_outbox(seq);
                // The outbox's head is the update in flight, unless a full outbox took it out
                // meanwhile (among `taken_out` then, resolved below as one merged back, unless
                // its merge, or a refresh, resolved it first).
                if send.rev.is_some() && self.insts[i].queued.front().copied() == send.rev {
                    self.insts[i].queued.pop_front();
                    if let Some(rev) = send.rev {
                        self.revs[rev].resolved.get_or_insert(self.step);
                        self.revs[rev].resolved_at.get_or_insert(self.now);
                    }
                } else {
                    assert!(
                        send.rev.is_some_and(|n| self.revs[n].resolved.is_some()
                            || self.insts[i].taken_out.iter().any(|t| t.0 == n)),
                        "the outbox's head is the update in flight, or one taken out of it"
                    );
                }
                send.rev.map_or_else(Vec::new, |n| {
                    let single = self.revs[n].single();
                    self.revs[n]
                        .tags
                        .iter()
                        .map(|t| ((*t).to_owned(), single))
                        .collect()
                })
            }
            None => {
                self.insts[i].engine.ack_resend();
                send.call.args[1..]
                    .chunks(2)
                    .map(|pair| {
                        (
                            pair[0].clone(),
                            TagRecord::parse(pair[1].as_bytes()).unwrap(),
                        )
                    })
                    .collect()
            }
        };
        self.resolve_written(i, &written, send.rev);
        self.insts[i].engine.apply_update_reply(&reply).unwrap();
        true
    }

    /// Instance `i` got the reply of a command that wrote `written` (tag, record) to Redis
    /// (its update carrying revalidation `update`, or a merge): see
    /// [`World::resolve_taken_out`].
    fn resolve_written(
        &mut self,
        i: usize,
        written: &[(String, TagRecord)],
        update: Option<usize>,
    ) {
        if written.is_empty() {
            return;
        }
        let covered = |t: &str, single: &TagRecord| {
            written
                .iter()
                .any(|(tag, r)| (tag == t || tag == FOLDED_TAG) && r.covers(single))
        };
        self.resolve_taken_out(i, &covered, update);
    }

    /// A revalidation instance `i` took out of its full outbox resolves, as one sent does
    /// when its update is acknowledged, once Redis has told that instance it holds it: for
    /// each of its tags, a command of that instance that Redis acknowledged wrote a record
    /// there that covers its own (or under [`FOLDED_TAG`], which judges every tag): the merge
    /// that carries it, its own update in flight when it was taken out, or a later update of
    /// the same tags ([`World::resolve_written`]); or a refresh of that instance found one
    /// there when it ran (after which the engine merges it back no more). Lost with the
    /// process before then, as a queued one is ([`Op::Restart`]). `covered` says whether a
    /// tag is covered for the revalidation's record; `update` is the revalidation whose own
    /// update was acknowledged, if one was. Resolved by no announcement of its own (a merge is
    /// not announced, nor is what an update of another revalidation announces it), it is
    /// unheard on every other instance from then on: following by push, a caught-up read
    /// within the bound of its resolution may miss it, as one whose announcement is on its way.
    fn resolve_taken_out(
        &mut self,
        i: usize,
        covered: &dyn Fn(&str, &TagRecord) -> bool,
        update: Option<usize>,
    ) {
        let mut taken_out = std::mem::take(&mut self.insts[i].taken_out);
        taken_out.retain_mut(|(n, left)| {
            let single = self.revs[*n].single();
            left.retain(|t| !covered(t, &single));
            if !left.is_empty() {
                return true;
            }
            self.revs[*n].resolved.get_or_insert(self.step);
            self.revs[*n].resolved_at.get_or_insert(self.now);
            self.trace.push(format!(
                "  inst {i} resolves #{n}, taken out of its outbox, at {}",
                self.now - T0
            ));
            if update != Some(*n) {
                for (j, inst) in self.insts.iter_mut().enumerate() {
                    if j != i {
                        inst.unheard.insert(*n);
                    }
                }
            }
            false
        });
        self.insts[i].taken_out = taken_out;
    }

    /// Instance `i`'s tag update or merge got no reply (lost, late, or kept back by the
    /// breaker), as tag-sync.ts's failure path: an outbox update stays at the head and waits
    /// the backoff (`failOutbox`); a merge's batch stays planned, sent again by the next drain.
    fn tag_failed(&mut self, i: usize, seq: Option<u64>) {
        if let Some(seq) = seq {
            let now = Millis(self.clock(i));
            self.insts[i].engine.fail_outbox(seq, now);
        }
    }

    /// The held tag update or merge of instance `i` takes its next step ([`Op::TagStep`]):
    /// it reaches Redis, or its reply reaches the host, and the drain goes on.
    fn tag_step(&mut self, i: usize) {
        let Some(mut send) = self.insts[i].sending.take() else {
            return;
        };
        if send.reply.is_none() {
            self.tag_reaches(i, &mut send);
            self.trace.push(format!(
                "  inst {i} {} reaches Redis at {}: {}",
                tag_send_name(&send),
                self.now - T0,
                if matches!(send.reply, Some(Some(_))) {
                    "answered"
                } else {
                    "no reply"
                }
            ));
            self.insts[i].sending = Some(send);
            return;
        }
        let name = tag_send_name(&send);
        let sent = send.sent;
        let ok = self.tag_answered(i, send);
        self.trace.push(format!(
            "  inst {i} {name} delivered at {} (sent {}): {}",
            self.now - T0,
            sent - T0,
            if ok { "ok" } else { "timeout" }
        ));
        if ok {
            self.drain(i);
        }
    }

    /// Applies `op` ([`World::apply_step`]), then checks that no process gave a record back
    /// twice with no failure drawn in between ([`World::given_back`]).
    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.apply_step(op)?;
        if let Some(twice) = self.given_twice.take() {
            return Err(TestCaseError::fail(format!(
                "{}\n{twice}",
                self.trace.join("\n")
            )));
        }
        Ok(())
    }

    /// Instance `i`'s merge of `args` ([`TAG_MERGE`](fleetcache_core::scripts::TAG_MERGE)'s)
    /// runs: each record it gives back costs every process a version to load, so a process
    /// gives a record back once per failure that may have lost it (a flush, a failover, a key
    /// or the meta hash lost, a merge of its whose reply did not come back), never twice for
    /// one (a double give-back; two processes may each give back what they both knew).
    fn given_back(&mut self, i: usize, args: &[String]) {
        for pair in args[1..].chunks(2) {
            let key = (i, pair[0].clone(), pair[1].clone());
            if self.given.get(&key) == Some(&self.losses) && self.given_twice.is_none() {
                self.given_twice = Some(format!(
                    "inst {i} gave back {:?} = {:?} a second time with no failure drawn since \
                     the first ({} so far)",
                    pair[0], pair[1], self.losses
                ));
            }
            self.given.insert(key, self.losses);
        }
    }

    fn apply_step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.trace.extend(take_scan_notes());
        self.record_knowledge();
        self.step += 1;
        self.trace
            .push(format!("step {} at {}: {:?}", self.step, self.now - T0, op));
        match *op {
            Op::Advance { ms } | Op::Stall { ms } => self.now += f64::from(ms),
            Op::NearBound { inst, ms } => {
                let to = self.insts[inst].pulled_from + PUSH_BOUND_MS + f64::from(ms);
                self.now = self.now.max(to);
            }
            Op::ClockStep { inst, ms } => {
                let ms = f64::from(ms);
                self.fold_drift(inst);
                let before = (self.now, self.insts[inst].offset);
                self.insts[inst].stepped.push(before);
                if ms > 0.0 {
                    self.now += ms;
                    // Paused, its clock neither moved nor drifted.
                    self.insts[inst].rate_from = self.now;
                }
                let offset = self.insts[inst].offset - ms;
                // Ahead by the slack or less, an entry keeps Next's stamp (decision 0036): what
                // that leaves, as what NTP leaves between hosts, is outside the contract checked
                // here. Past it instead (a clock that only moves on).
                self.insts[inst].offset = if offset > 0.0 && offset <= CLOCK_AHEAD_SLACK_MS {
                    CLOCK_AHEAD_SLACK_MS + 1.0
                } else {
                    offset
                };
                self.clocks_parted = true;
            }
            Op::Down => {
                self.up = false;
                self.drop_channels();
            }
            Op::Up => self.up = true,
            Op::LoseReply { inst } => {
                self.lose.insert(inst);
            }
            Op::HoldTag { inst, merge, lost } => self.insts[inst].hold = Some((merge, lost)),
            Op::TagStep { pick } => {
                let held: Vec<usize> = (0..self.insts.len())
                    .filter(|&i| self.insts[i].sending.is_some())
                    .collect();
                if !held.is_empty() {
                    self.tag_step(held[pick % held.len()]);
                }
            }
            Op::Flush => {
                if self.up {
                    self.losses += 1;
                    // The same server process, emptied.
                    let mut flushed = Redis::default();
                    flushed.tags.server = self.redis.tags.server;
                    self.lose_pages(flushed);
                }
            }
            Op::LoseMeta => {
                if self.up {
                    self.losses += 1;
                    self.redis.tags.lose_meta();
                }
            }
            Op::LoseKey { log } => {
                if self.up {
                    self.losses += 1;
                    self.redis.tags.lose_key(log);
                }
            }
            Op::Snapshot => self.kept = Some(self.redis.clone()),
            Op::Failover => {
                if let Some(mut kept) = self.kept.clone() {
                    self.losses += 1;
                    kept.tags = on_another_server(kept.tags);
                    self.lose_pages(kept);
                    self.drop_channels();
                }
            }
            Op::Restart { inst } => self.restart(inst),
            Op::Close { inst } => self.close(inst)?,
            Op::Deliver { inst } => {
                if let Some((msg, rev, page)) = self.insts[inst].inbox.pop_front() {
                    let clock = Millis(self.clock(inst));
                    let applied = self.insts[inst]
                        .engine
                        .apply_announcement(&msg, clock)
                        .unwrap();
                    if let (Announced::Applied(_), Some(at)) = (applied, announced_at(&msg)) {
                        let from = &mut self.insts[inst].heard_from;
                        *from = from.max(at);
                    }
                    if let Some(rev) = rev {
                        self.insts[inst].unheard.remove(&rev);
                        self.insts[inst].heard.insert(rev);
                    }
                    if let Some(page) = page {
                        self.insts[inst].unheard_pages.remove(&page);
                    }
                }
            }
            Op::Subscribe { inst } => {
                if self.push && self.up {
                    self.insts[inst].listening = true;
                    self.insts[inst].believed = true;
                    self.insts[inst].engine.tag_channel_up();
                    // The host asks CLUSTER SLOTS on every subscription; the model is one
                    // plain Redis.
                    self.insts[inst].engine.confirm_plain_redis();
                }
            }
            Op::DropChannel { inst } => {
                self.insts[inst].listening = false;
                self.insts[inst].inbox.clear();
            }
            Op::NoticeDown { inst } => {
                if !self.insts[inst].listening {
                    self.insts[inst].believed = false;
                    self.insts[inst].engine.tag_channel_down();
                }
            }
            Op::Tick { inst } => {
                // Coalesced with a request's refresh in flight.
                if self.insts[inst].refreshing.is_none() {
                    self.refresh(inst);
                }
                self.drain(inst);
            }
            Op::Load { inst } => {
                if self.insts[inst].refreshing.is_none() {
                    // A load takes a refresh call per page, then one to catch up.
                    for _ in 0..20 {
                        if !self.refresh(inst) || self.insts[inst].engine.mirror().is_synced() {
                            break;
                        }
                    }
                }
                self.drain(inst);
            }
            Op::Write {
                inst,
                key,
                tags,
                began,
            } => self.write(inst, key, tags, began)?,
            Op::Revalidate { inst, tags, mode } => {
                let tags = mask(tags);
                let rev = match mode {
                    0 => Revalidation::Expire,
                    1 => Revalidation::Stale {
                        expire_seconds: None,
                    },
                    2 => Revalidation::Stale {
                        expire_seconds: Some(31_536_000.0),
                    },
                    _ => Revalidation::Stale {
                        expire_seconds: Some(1.0),
                    },
                };
                // As the host records it: on its process's clock, with its wall clock.
                let (clock, wall) = (Millis(self.clock(inst)), Millis(self.wall(inst)));
                self.clocks_told(inst, clock, wall);
                let dropped = self.insts[inst]
                    .engine
                    .queue_tag_update_at(&tags, &rev, clock, wall)
                    .unwrap();
                if let Some(update) = dropped {
                    // The outbox was full: its oldest update is taken out of it (in flight or
                    // not), and what it wrote waits to be merged back.
                    let n = self.insts[inst].queued.pop_front();
                    let n = n.expect("a full outbox held a revalidation");
                    let taken = &self.revs[n];
                    prop_assert!(
                        update.at == taken.at
                            && update.rev == taken.recorded
                            && update.tags.iter().eq(taken.tags.iter()),
                        "the outbox took out {:?}, not its head #{}",
                        update,
                        n
                    );
                    self.trace.push(format!(
                        "  inst {inst} takes #{n} out of its full outbox at {}",
                        self.now - T0
                    ));
                    let tags = taken.tags.clone();
                    self.insts[inst].taken_out.push((n, tags));
                }
                let at = fleetcache_core::time::revalidation_stamp(clock, wall);
                self.revs.push(Rev {
                    tags,
                    rev,
                    recorded: rev.expiring_from_wall(at, wall),
                    at,
                    true_at: self.now,
                    resolved: None,
                    resolved_at: None,
                });
                self.insts[inst].queued.push_back(self.revs.len() - 1);
                let event = self.event();
                self.insts[inst]
                    .learned
                    .entry(self.revs.len() - 1)
                    .or_insert(event);
                self.drain(inst);
            }
            Op::Read {
                inst,
                key,
                soft,
                caches,
            } => self.read(inst, key, soft, caches)?,
            Op::IncRead {
                inst,
                key,
                soft,
                caches,
                revalidate,
                on_demand,
            } => self.inc_read(inst, key, soft, caches, revalidate, on_demand)?,
            Op::IncWrite { pick, tags, life } => self.inc_write(pick, tags, life)?,
            Op::IncWriteBack { pick } => self.inc_write_back(pick)?,
            Op::IncReadAgain { pick } => {
                if !self.open.is_empty() {
                    let request = self.open[pick % self.open.len()];
                    if let Some(&Handler {
                        inst,
                        read: (key, soft, caches, revalidate),
                        ..
                    }) = self.handlers.get(&request)
                    {
                        self.inc_read_in(
                            inst,
                            key,
                            soft,
                            caches,
                            revalidate,
                            false,
                            Some(request),
                        )?;
                    }
                }
            }
            Op::LateAnswer { inst, ms } => {
                self.late.insert(inst, ms);
            }
            Op::Seed {
                built,
                lag,
                tags,
                life,
                lost,
            } => self.seed(built, f64::from(lag), tags, life, lost),
            Op::Rewrite { inst, life, held } => {
                // Next runs one render per page and process: the rewrite is it. It takes a ms,
                // so no two rewrites store the same bytes (the check tells writes by them). Its
                // request read nothing through its handler instance: the engine's per-key
                // record stamps its write.
                self.now += 1.0;
                self.regens.retain(|r| !(r.inst == inst && r.key == 0));
                self.note_clocks_at_request(inst);
                let mut knew = self.knew(inst, false);
                knew.pulls_itself = !self.insts[inst]
                    .engine
                    .tags_caught_up(Millis(self.clock(inst)));
                self.stamped(inst, self.now);
                self.regens.push(Regen {
                    inst,
                    key: 0,
                    began: self.now,
                    request: None,
                    served: None,
                    knew,
                });
                let id = self.next_task;
                self.inc_write(self.regens.len() - 1, 0, life)?;
                for _ in 0..if held { 0 } else { 20 } {
                    let Some(t) = self.tasks.iter().position(|t| t.id == id) else {
                        break;
                    };
                    self.advance(t)?;
                }
            }
            Op::Step { pick } => {
                if !self.tasks.is_empty() {
                    let t = pick % self.tasks.len();
                    self.advance(t)?;
                }
            }
        }
        Ok(())
    }

    /// Sends `cmd` for instance `i` through its breaker: what the request waits for, or the
    /// failure to hand its machine at once (the breaker kept it back).
    fn dispatch(&mut self, i: usize, kind: OpKind, cmd: Cmd) -> Result<Wait, Failure> {
        let now = Millis(self.clock(i));
        match self.insts[i].engine.admit(kind, now) {
            Admission::Send { permit, budget_ms } => Ok(Wait::Cmd(InFlight {
                cmd,
                sent: now.0,
                budget_ms,
                permit,
                reply: None,
                heard: self.insts[i].engine.page_heard(),
                issued: self.step,
            })),
            Admission::Skip => Err(Failure::CircuitOpen),
        }
    }

    /// A `'use cache'` `set`, as the host does it: the write machine plans it, the host keeps
    /// its copy in the tier and as this process's write in flight, and sends the store.
    fn write(
        &mut self,
        inst: usize,
        key: usize,
        tags: u8,
        began: u16,
    ) -> Result<(), TestCaseError> {
        let tags = mask(tags);
        let now = Millis(self.clock(inst));
        let wall = Millis(self.wall(inst));
        let cache_key = KEYS[key];
        // The payload carries the true time; Next stamps the entry on its process's clock as
        // it read when the regeneration began, a step since or not. A regeneration begins no
        // earlier than its process started.
        let began = f64::from(began)
            .min(self.now - self.insts[inst].started)
            .max(0.0);
        let created = self.now - began;
        let next_stamp = self.clock_at(inst, created);
        self.stamped(inst, created);
        self.stamped_ahead(created, next_stamp - created);
        let told_start = began > 0.0 && self.start_told(inst, created, next_stamp);
        self.moved_at_the_write(inst, created, next_stamp, (now, wall), told_start);
        let payload = created.to_le_bytes().to_vec();
        self.clocks_told(inst, now, wall);
        let engine = &mut self.insts[inst].engine;
        let mut machine = engine.write_start_at(
            WriteRequest::UseCache {
                iface: IFACE,
                cache_key,
                tags: &tags,
                timestamp: Millis(next_stamp),
                revalidate: 900.0,
                expire: 3600.0,
                stale: 30.0,
                payload_len: 8,
            },
            now,
            wall,
        );
        let step = engine.write_first(&mut machine, now);
        let caught_up = engine.tags_caught_up(now);
        let id = self.next_task;
        self.next_task += 1;
        // Its function may have read other entries (a nested `'use cache'`), judged by the
        // instance's mirror as it was when the regeneration began: checked as a page
        // regeneration is. (Not caught up then, those reads pulled.)
        if began == 0.0 {
            let mut knew = self.knew(inst, false);
            knew.pulls_itself = !caught_up;
            self.regenerated.insert(id, (inst, self.now, knew));
        } else if let Some(knew) = self.knew_at(inst, created) {
            self.regenerated.insert(id, (inst, created, knew));
        }
        let task = Task {
            id,
            inst,
            job: Job::Write {
                machine,
                cache_key,
                payload,
                own: true,
            },
            wait: Wait::Timer(now.0),
        };
        self.write_steps(task, step)
    }

    /// The `get` that began a `'use cache'` regeneration on instance `inst` at true time
    /// `created`, its process's clock reading `clock` then: as `TagSync.noteClocks` at the
    /// handler's `get`, the host told the engine both clocks where their distance had moved by
    /// more than [`CLOCK_NOTE_MS`] from the last it told (a pull's, a write's, a request's).
    /// Told here, at the write, with the clocks of then: the engine keeps a distance ahead
    /// with the time it was told (`Engine::note_clocks`, `now`), and the write moves its
    /// stamp back by the farthest told within a regeneration's life before it, so what the
    /// write stores is as if told then. What the op leaves out: the requests and writes of
    /// the instance in between compared their distance with the one told before the start
    /// (later writes' starts after it compare with it), and the engine compares the write's
    /// own tell with the start's (a step taken since is seen at the write).
    fn start_told(&mut self, inst: usize, created: f64, clock: f64) -> bool {
        let wall = created;
        if told_within_filter(self.told_at(inst, created), wall - clock) {
            return false;
        }
        self.trace.push(format!(
            "  inst {inst}'s get that began the regeneration at {} told {} ahead",
            created - T0,
            clock - wall
        ));
        self.insts[inst]
            .engine
            .note_clocks(Millis(clock), Millis(wall));
        // Where a later write's regeneration began after it, its get compared with this.
        let told = &mut self.insts[inst].told;
        let at = told.partition_point(|(t, _)| *t <= created);
        told.insert(at, (created, wall - clock));
        true
    }

    /// The singular handler's `set` after a regeneration a read began: the write machine
    /// stamps it (the host passes no creation time) and plans it; the host keeps its copy in
    /// the tier as the machine says (a page for outages only) and sends the store. The
    /// payload's first part carries when the render began, for the check.
    fn inc_write(&mut self, pick: usize, tags: u8, life: u8) -> Result<(), TestCaseError> {
        // A render does not outlive the core's memory of its start (`MAX_REGENERATION_MS`).
        let now = self.now;
        self.regens.retain(|r| now - r.began <= MAX_REGENERATION_MS);
        if self.regens.is_empty() {
            return Ok(());
        }
        let Regen {
            inst,
            key,
            began,
            request,
            knew,
            ..
        } = self.regens.remove(pick % self.regens.len());
        let (cache_key, is_fetch) = INC_KEYS[key];
        let mut tags = mask(tags & 3);
        if !is_fetch {
            tags.push(PAGE_TAG);
        }
        // value-codec's flags: 2 `revalidate: false`, 4 no `expire`, 8 no `cacheControl`.
        let (kind, flags, revalidate, expire) = if is_fetch {
            let r = if life % 2 == 0 { 900.0 } else { 3.0 };
            (ValueKind::Fetch, 8, r, f64::NAN)
        } else {
            match life {
                0 => (ValueKind::AppPage, 2 | 4, f64::NAN, f64::NAN),
                1 => (ValueKind::AppPage, 0, 900.0, 3600.0),
                2 => (ValueKind::AppPage, 0, 3.0, 3600.0),
                // `expire` no longer than `revalidate`: never presentable as stale.
                _ => (ValueKind::AppPage, 0, 3.0, 3.0),
            }
        };
        // The JSON part (here: the render's start) and the body: 0 (a render's), then the
        // write's own number. The check tells page writes by their bytes, and two renders of
        // the same ms, tags and lifetime (one an instance's rewrite, one another's
        // regeneration) would otherwise store the same bytes.
        self.stamped(inst, began);
        let mut payload = began.to_le_bytes().to_vec();
        payload.push(0);
        payload.extend_from_slice(&(self.next_task as u64).to_le_bytes());
        let parts = [8u32, 9];
        let own = self.own_reads(request, cache_key);
        self.trace.push(format!(
            "  task {} (inst {inst}) writes {cache_key} of request {request:?} begun at {}, own {:?}",
            self.next_task,
            began - T0,
            own
        ));
        let request = WriteRequest::Incremental {
            cache_key,
            kind: kind as u8,
            flags,
            segments: 0,
            tags: &tags,
            revalidate,
            expire,
            parts: &parts,
            // What the request's own read of the key left, as the host hands it back.
            own,
        };
        self.start_write(inst, request, cache_key, payload, |w, id| {
            if !is_fetch {
                w.regenerated.insert(id, (inst, began, knew));
            }
        })
    }

    /// What instance `inst` knows of the revalidations now, for a regeneration that begins
    /// there after a read whose refresh failed or not.
    fn knew(&self, inst: usize, refresh_failed: bool) -> Knew {
        let i = &self.insts[inst];
        Knew {
            step: self.step,
            revs: i.learned.keys().chain(i.heard.iter()).copied().collect(),
            pulled_from: i.pulled_from,
            heard_from: i.heard_from,
            refresh_failed,
            pulls_itself: false,
        }
    }

    /// Records what every instance knew at the end of the step just taken, and when it ended
    /// ([`World::knew_at`]); forgets what no write can reach back to.
    fn record_knowledge(&mut self) {
        let (now, step) = (self.now, self.step);
        match self.times.last_mut() {
            Some((t, s)) if *t == now => *s = step,
            _ => self.times.push((now, step)),
        }
        // A write's regeneration began at most `MAX_WRITE_BEGAN_MS` ago: keep the last time
        // before that, which a write begun then falls after.
        let horizon = now - MAX_WRITE_BEGAN_MS;
        let old = self.times.iter().take_while(|(t, _)| *t < horizon).count();
        self.times.drain(..old.saturating_sub(1));
        let oldest_step = self.times.first().map_or(0, |(_, s)| *s);
        for i in 0..self.insts.len() {
            let clock = self.clock(i);
            let inst = &self.insts[i];
            let caught_up = inst.engine.tags_caught_up(Millis(clock));
            let counts = (inst.learned.len(), inst.heard.len());
            let same = inst.history.last().is_some_and(|h| {
                h.caught_up == caught_up
                    && h.counts == counts
                    && h.knew.pulled_from == inst.pulled_from
                    && h.knew.heard_from == inst.heard_from
            });
            if !same {
                let knew = self.knew(i, false);
                self.insts[i].history.push(KnewThen {
                    step,
                    knew,
                    caught_up,
                    counts,
                });
            }
            let history = &mut self.insts[i].history;
            let old = history.iter().take_while(|h| h.step < oldest_step).count();
            history.drain(..old.saturating_sub(1));
            let told = &mut self.insts[i].told;
            let old = told.iter().take_while(|(t, _)| *t < horizon).count();
            told.drain(..old.saturating_sub(1));
        }
    }

    /// What `inst` knew when a regeneration that began at `began`, before the current step,
    /// did: at the end of the last step before that time (a revalidation resolved at a step
    /// of that very ms counts as after it, as `PushFollow::vouched_from` counts a pull applied
    /// in the ms a regeneration began as after it). `None` when the process had not started
    /// then (a restart since), or that is forgotten.
    fn knew_at(&self, inst: usize, began: f64) -> Option<Knew> {
        let i = &self.insts[inst];
        if began < i.started {
            return None;
        }
        let &(_, step) = self.times.iter().rev().find(|(t, _)| *t < began)?;
        let then = i.history.iter().rev().find(|h| h.step <= step)?;
        let mut knew = then.knew.clone();
        knew.step = step + 1;
        // Caught up at the end of that step, it stayed so until its pull interval ran out:
        // nothing happened in between.
        knew.pulls_itself = !(then.caught_up && began - knew.pulled_from < PUSH_BOUND_MS);
        Some(knew)
    }

    /// Following by push, a check of each stored page regeneration, and of each `'use cache'`
    /// value, by the history (not by how the engine chose its
    /// times): the time its tags judge it by is no later than any
    /// revalidation of its tags that had resolved when the regeneration began, that its instance
    /// had neither learnt by a refresh nor heard announced then, and that was issued after its
    /// last successful refresh started and after the revalidations of the last announcement it
    /// had applied as the next version (by its records' times). The render judged its data
    /// without that revalidation (caught up, by the mirror alone): judged as made later, the
    /// page would serve the old data as fresh on every instance once they all knew of the
    /// revalidation, past the bound. (Issued before that refresh started, or before one the
    /// instance had heard, and still on its way then: as when pulling, such a revalidation
    /// leaves what was made after it fresh.)
    fn check_regenerated(
        &self,
        inst: usize,
        began: f64,
        knew: &Knew,
        stored: &[u8],
    ) -> Result<(), TestCaseError> {
        if !self.push || knew.refresh_failed || knew.pulls_itself {
            return Ok(());
        }
        let Ok(written) = fleetcache_core::decode_header(stored, stored.len()) else {
            return Ok(());
        };
        let judged_by = written.meta.made().0;
        for (n, r) in self.revs.iter().enumerate() {
            let tagged = r
                .tags
                .iter()
                .any(|t| written.meta.tags.iter().any(|h| h == t));
            if tagged
                && r.resolved.is_some_and(|s| s < knew.step)
                && !knew.revs.contains(&n)
                && r.true_at > knew.pulled_from
                && r.at.0 > knew.heard_from
            {
                prop_assert!(
                    judged_by - self.slack(began) <= r.at.0,
                    "{}\ninstance {} stored an entry regenerated from {} judged by its tags from \
                     {}, after revalidation #{} at {} of its tags, resolved before the \
                     regeneration began, which it had not heard of (its last refresh started at {}; \
                     stamped {}; its clock {} ahead)",
                    self.trace.join("\n"),
                    inst,
                    began - T0,
                    judged_by - T0,
                    n,
                    r.at.0 - T0,
                    knew.pulled_from - T0,
                    written.meta.timestamp.0 - T0,
                    self.offset(inst)
                );
            }
        }
        Ok(())
    }

    /// What `request`'s handler instance hands back with its write of `cache_key`: what its
    /// reads of the key left, folded ([`OwnReads::take`]); nothing for a request that read
    /// nothing through it.
    fn own_reads(&mut self, request: Option<usize>, cache_key: &str) -> Own {
        request
            .and_then(|r| self.handlers.get_mut(&r))
            .map_or(Own::NONE, |h| h.reads.take(cache_key))
    }

    /// A page regeneration that a read with a value began fails, and Next 16.5 writes that
    /// value back unchanged (`retainPreviousCacheEntry`, the very object `get` returned): its
    /// payload, kind and tags as stored, the lifetime Next gives it, and the answer's
    /// `written_back` stamp.
    fn inc_write_back(&mut self, pick: usize) -> Result<(), TestCaseError> {
        let now = self.now;
        self.regens.retain(|r| now - r.began <= MAX_REGENERATION_MS);
        // Next's response cache (pages, routes), not `fetch`, retains the previous entry, and only
        // one returned with a `cacheControl`.
        let failing: Vec<usize> = (0..self.regens.len())
            .filter(|i| {
                let r = &self.regens[*i];
                !INC_KEYS[r.key].1
                    && r.served
                        .as_ref()
                        .is_some_and(|s| s.shown.cache_control.is_some())
            })
            .collect();
        if failing.is_empty() {
            return Ok(());
        }
        let Regen {
            inst,
            key,
            request,
            served,
            ..
        } = self.regens.remove(failing[pick % failing.len()]);
        let Some(served) = served else {
            return Ok(());
        };
        let cache_key = INC_KEYS[key].0;
        let header = fleetcache_core::decode_header(&served.value, served.value.len());
        prop_assert!(header.is_ok(), "a served value without a header");
        let Ok(header) = header else { return Ok(()) };
        let payload = served.value[served.payload_offset..].to_vec();
        let tags: Vec<&str> = header.meta.tags.iter().map(String::as_str).collect();
        let Some((shown_revalidate, shown_expire)) = served.shown.cache_control else {
            return Ok(());
        };
        // The `cacheControl` Next writes it back with (response-cache/index.js, 16.5): its retry
        // delay, `revalidate || 3` within 3 to 30 s, and `expire` at least 3 s past it.
        let revalidate = shown_revalidate.unwrap_or(0.0);
        let revalidate = (if revalidate == 0.0 { 3.0 } else { revalidate }).clamp(3.0, 30.0);
        let expire = shown_expire.map_or(f64::NAN, |e| e.max(revalidate + 3.0));
        // value-codec's flags: 2 `revalidate: false` (never, now), 4 no `expire`.
        let flags = served.shown.value_flags & !(2 | 4) | if expire.is_nan() { 4 } else { 0 };
        let mut own = self.own_reads(request, cache_key);
        // The host finds the stamp by the value object written (`OwnReads.served`).
        own.written_back = served.written_back;
        own.written_back_made = served.written_back_made;
        let parts = served.shown.parts.clone();
        let request = WriteRequest::Incremental {
            cache_key,
            kind: served.shown.value_kind,
            flags,
            segments: served.shown.segments,
            tags: &tags,
            revalidate,
            expire,
            parts: &parts,
            own,
        };
        let step = self.step;
        self.start_write(inst, request, cache_key, payload, move |w, id| {
            w.trace.push(format!(
                "  task {id} (inst {inst}) writes back the value served to the read begun at {}, stamp {}",
                served.read_began - T0,
                served.written_back - T0
            ));
            let known = w.insts[inst].learned.keys().copied().collect();
            w.write_backs.insert(
                id,
                WriteBack {
                    inst,
                    step,
                    served,
                    stored: Vec::new(),
                    known,
                },
            );
        })
    }

    /// Starts `inst`'s singular-handler write `request` of `cache_key` (its parts `payload`) as
    /// a task; `noted` sees the task's id before its first step.
    fn start_write(
        &mut self,
        inst: usize,
        request: WriteRequest<'_>,
        cache_key: &'static str,
        payload: Vec<u8>,
        noted: impl FnOnce(&mut World, usize),
    ) -> Result<(), TestCaseError> {
        let at = Millis(self.clock(inst));
        let wall = Millis(self.wall(inst));
        self.clocks_told(inst, at, wall);
        let engine = &mut self.insts[inst].engine;
        let mut machine = engine.write_start_at(request, at, wall);
        let step = engine.write_first(&mut machine, at);
        let id = self.next_task;
        self.next_task += 1;
        noted(self, id);
        let task = Task {
            id,
            inst,
            job: Job::Write {
                machine,
                cache_key,
                payload,
                own: false,
            },
            wait: Wait::Timer(at.0),
        };
        self.write_steps(task, step)
    }

    /// A check of each stored write-back by the history alone (not by a model of
    /// what the writer's tag state held): the time its tags judge it by is no later than any
    /// revalidation of its tags made after the value's creation that its instance had not
    /// learnt and that reached Redis (else, once that resolves, another instance serves the old
    /// data fresh). Revalidations Redis lost again are left to the main invariant's excuse.
    fn check_written_back(&self) -> Result<(), TestCaseError> {
        for wb in self.write_backs.values() {
            let served = &wb.served;
            let Some((_, created)) = served.created() else {
                continue;
            };
            for stored in &wb.stored {
                let Ok(written) = fleetcache_core::decode_header(stored, stored.len()) else {
                    continue;
                };
                let judged_by = written.meta.made().0;
                for (n, r) in self.revs.iter().enumerate() {
                    let tagged = r.tags.iter().any(|t| {
                        written.meta.tags.iter().any(|h| h == t) || served.soft.contains(t)
                    });
                    let single = r.single();
                    let in_redis = r.tags.iter().all(|t| self.redis.tags.covers(t, &single));
                    if tagged
                        && r.resolved.is_some()
                        && in_redis
                        && !wb.known.contains(&n)
                        && r.at.0 > created
                    {
                        prop_assert!(
                            judged_by - self.slack(created) <= r.at.0,
                            "{}\ninstance {} wrote back a value created at {} judged by its tags \
                             from {}, after revalidation #{} at {} of its tags, which it had \
                             not learnt",
                            self.trace.join("\n"),
                            wb.inst,
                            created - T0,
                            judged_by - T0,
                            n,
                            r.at.0 - T0
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// `inst` wrote `value` back itself after `step`: its own newest write of the page, which
    /// a write before it did not replace (a value written back has the bytes of one Redis held
    /// before, so the page log alone would take it for that older value).
    fn wrote_back_after(&self, inst: usize, value: &[u8], step: usize) -> bool {
        self.write_backs
            .values()
            .any(|wb| wb.inst == inst && wb.step > step && wb.stored.iter().any(|v| v == value))
    }

    /// Next's delay before it retries a failing regeneration (16.5): a page written back that
    /// only time had made stale (no revalidation of its tags at or after its creation, whether
    /// its instance knew of one or not) is fresh again for the `revalidate` Next wrote it back
    /// with (3 to 30 s) from the start of the read that served it, so a read whose answer Next regenerates after (`value`, the bytes
    /// served) before then retried early, unless Redis could not be asked. (Per answer, not a
    /// count of regenerations per key: reads that miss, follow another write, a revalidation,
    /// a flush or an outage regenerate rightly, and a count cannot tell those apart from a
    /// retry.)
    fn check_retry(
        &self,
        inst: usize,
        rt: &ReadTask,
        source: Source,
        value: &[u8],
    ) -> Result<(), TestCaseError> {
        let engine = &self.insts[inst].engine;
        // A copy served because Redis could not be asked is shown stale by design
        // (docs/failures.md, "The copy an outage serves"). Next's retry delay is its own
        // comparison, on its own clock, of times other processes stamped: not checked once
        // the clocks part.
        if source == Source::Kept
            || rt.refresh_failed
            || !engine.mirror().is_synced()
            || engine.breaker_state(Millis(self.clock(inst)))
                != fleetcache_core::BreakerState::Closed
            || self.clocks_parted
        {
            return Ok(());
        }
        for wb in self.write_backs.values() {
            if !wb.stored.iter().any(|v| v == value) {
                continue;
            }
            let served = &wb.served;
            let Some((header, created)) = served.created() else {
                continue;
            };
            let made = header.meta.made().0;
            let tags: Vec<&str> = header
                .meta
                .tags
                .iter()
                .map(String::as_str)
                .chain(served.soft.iter().copied())
                .chain(rt.soft.iter().copied())
                .collect();
            let revalidated = self
                .revs
                .iter()
                .any(|r| r.at.0 >= created - 1.0 && r.tags.iter().any(|t| tags.contains(t)));
            // What a bounded mirror folded, given back as FOLDED_TAG's record, judges every
            // tagged entry: given back when nothing was lost (a load the script answered in
            // full, tags.rs a_spurious_give_back_expires_every_tagged_entry_of_the_fleet), it
            // makes a value stale that no revalidation of its tags did, the false staleness
            // a bound costs (docs/decisions/0035-a-bounded-tag-mirror.md).
            let folded_since = engine
                .mirror()
                .record(FOLDED_TAG)
                .is_some_and(|f| f.updated_at.0 >= created - 1.0);
            if revalidated || folded_since {
                continue;
            }
            // The `revalidate` Next wrote it back with: its retry delay.
            let Ok(written) = fleetcache_core::decode_header(value, value.len()) else {
                continue;
            };
            // From the read's start (not before the value was made).
            let from = served.read_began.max(made);
            let retry_at = from + written.meta.revalidate * 1000.0;
            prop_assert!(
                self.now > retry_at - 1.0,
                "{}\ninstance {} regenerates {} at {}, a value written back after its read began \
                 at {} (created {}, only time had made it stale): before its retry delay, at {}",
                self.trace.join("\n"),
                inst,
                rt.cache_key,
                self.now - T0,
                served.read_began - T0,
                created - T0,
                retry_at - T0
            );
        }
        Ok(())
    }

    /// The time of the build a seed run stores, in the fleet's clock (`Op::Seed`'s `built`):
    /// 0 anywhere from 10 s before the history began to now; 1, 2, 3 just before, at, just
    /// after a revalidation's time (else as 0); 4 up to 0.3 s, 5 up to 3 s behind now. Never
    /// after now: the build is in the past.
    fn build_time(&self, (mode, x): (u8, u16)) -> f64 {
        let x = f64::from(x);
        let anywhere = T0 - 10_000.0 + (self.now - T0 + 10_000.0) * x / f64::from(u16::MAX);
        let near = |d: f64| {
            let n = self.revs.len();
            (n > 0).then(|| self.revs[x as usize % n].true_at + d)
        };
        let t = match mode {
            1 => near(-1.0),
            2 => near(0.0),
            3 => near(1.0),
            4 => Some(self.now - x % 300.0),
            5 => Some(self.now - x % 3_000.0),
            _ => None,
        };
        t.unwrap_or(anywhere).min(self.now)
    }

    /// A `fleetcache seed` run begins (seed.ts): a process of its own with its own engine,
    /// which announces its page writes (as every process on one Redis does) and pulls the tag
    /// state (`rt.tags.refresh()`: up to `LOAD_STEPS`, 16, calls while it loads; a failed one
    /// leaves the mirror as it is, and the run goes on). Its write comes at a later step.
    fn seed(&mut self, built: (u8, u16), lag: f64, tags: u8, life: u8, lost: bool) {
        let built_at = self.build_time(built);
        let clock = Millis(self.now - lag);
        let mut engine = Engine::new(config(self.release, self.leases, self.max_tags)).unwrap();
        engine.announce_page_writes();
        let seed = WRITE_ID_SEEDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        engine.set_write_id_seed(&format!("p{seed}")).unwrap();
        for _ in 0..16 {
            let Admission::Send { permit, .. } = engine.admit(OpKind::Read, clock) else {
                break;
            };
            if !self.up {
                engine.report(permit, CallResult::Timeout, clock);
                break;
            }
            let call = engine.plan_tag_pull(clock);
            let reply = self.redis.run(&call);
            engine.report(permit, CallResult::Success, clock);
            engine.apply_refresh(&reply, clock).unwrap();
            if engine.mirror().is_synced() {
                break;
            }
        }
        let mut tags = mask(tags & 3);
        tags.push(PAGE_TAG);
        self.trace.push(format!(
            "  seeder: build at {}, clock {}, pulled: {}",
            built_at - T0,
            clock.0 - T0,
            engine.mirror().is_synced()
        ));
        let id = self.next_task;
        self.next_task += 1;
        self.tasks.push(Task {
            id,
            inst: SEEDER,
            job: Job::Seed {
                engine: Box::new(engine),
                lag,
                built_at,
                tags,
                life,
                lost,
            },
            wait: Wait::Timer(self.now),
        });
    }

    /// The seed run's turn for the page (seed.ts, per route): left out when a revalidation of
    /// its tags came after the build (by the tag state it pulled), or when the build time is
    /// no usable time; else its envelope is made as `encodeIncrementalEnvelope` does, stamped
    /// `seed_timestamp`, and written by `plan_seed_write` (not when nothing is left of its
    /// lifetime), through the seeder's breaker. The payload carries the build's time: the
    /// check judges the data by it, not by the stamp.
    fn seed_write(&mut self, mut task: Task) -> Result<(), TestCaseError> {
        let Job::Seed {
            engine,
            lag,
            built_at,
            tags,
            life,
            ..
        } = &mut task.job
        else {
            unreachable!()
        };
        let (built_at, clock) = (*built_at, Millis(self.now - *lag));
        let (cache_key, _) = INC_KEYS[0];
        let fresh = engine.tag_freshness(tags, Millis(built_at), clock) == Freshness::Fresh;
        let Some(created) = engine
            .seed_timestamp(Millis(built_at), clock)
            .filter(|_| fresh)
        else {
            self.trace
                .push(format!("  seeder: left out (tags fresh: {fresh})"));
            return Ok(());
        };
        // value-codec's flags, as `IncWrite` draws them for a page.
        let (flags, revalidate, expire) = match life {
            0 => (2 | 4, f64::NAN, f64::NAN),
            1 => (0, 900.0, 3600.0),
            2 => (0, 3.0, 3600.0),
            _ => (0, 3.0, 3.0),
        };
        let desc = Descriptor::from_wire(ValueKind::AppPage as u8, flags, 0).unwrap();
        // The JSON part (here: the build's time) and the body: 1, a seed's (a render's is 9
        // bytes). Seeds of one build stamped alike are the same bytes, as they are in Redis.
        let parts = [8u32, 1];
        // As the binding's `planIncrementalEntry`, given the stamp for its `now`.
        let created = engine.incremental_created(cache_key, desc.kind, tags, created);
        let set = IncrementalSet {
            desc,
            revalidate,
            expire,
            tags,
            parts: &parts,
            created,
            made: None,
            now: created,
        };
        let plan = match engine.plan_incremental_set(cache_key, &set) {
            Ok(plan) => plan,
            Err(e) => return Err(TestCaseError::fail(format!("seed not planned: {e:?}"))),
        };
        let call = plan.ttl_ms.and_then(|ttl| {
            engine.plan_seed_write(&Interface::Incremental, cache_key, created, ttl, clock)
        });
        let Some(call) = call else {
            self.trace.push("  seeder: expired".to_owned());
            return Ok(());
        };
        let mut value = plan.header;
        value.extend_from_slice(&built_at.to_le_bytes());
        value.push(1);
        self.trace.push(format!(
            "  seeder: sends {} stamped {}",
            call.script.name,
            created.0 - T0
        ));
        let Admission::Send { permit, budget_ms } = engine.admit(OpKind::Write, clock) else {
            return Ok(());
        };
        task.wait = Wait::Cmd(InFlight {
            cmd: Cmd::Store {
                key: call.keys[0].clone(),
                value,
                script: Some(call),
            },
            sent: self.now,
            budget_ms,
            permit,
            reply: None,
            heard: 0,
            issued: self.step,
        });
        self.tasks.push(task);
        Ok(())
    }

    /// Carries out write steps until one waits for Redis (the task joins those in flight) or
    /// the write is done.
    fn write_steps(&mut self, mut task: Task, mut step: WriteStep) -> Result<(), TestCaseError> {
        let (inst, id) = (task.inst, task.id);
        loop {
            let Job::Write {
                machine,
                cache_key,
                payload,
                own,
            } = &mut task.job
            else {
                unreachable!()
            };
            let (cache_key, own) = (*cache_key, *own);
            let (kind, cmd) = match step {
                WriteStep::Compress(c) => {
                    // Payloads here are a few bytes, far below the compression threshold.
                    return Err(TestCaseError::fail(format!("compression asked: {c:?}")));
                }
                WriteStep::Store(store) => {
                    let mut value = store.header;
                    value.extend_from_slice(payload);
                    if let Some(wb) = self.write_backs.get_mut(&id) {
                        wb.stored.push(value.clone());
                    }
                    if let Some((inst, began, knew)) = self.regenerated.remove(&id) {
                        self.check_regenerated(inst, began, &knew, &value)?;
                    }
                    let instance = &mut self.insts[inst];
                    let evicted = instance.engine.lru_mut().insert(
                        &store.key,
                        value.len() as u64,
                        store.keep_until,
                    );
                    if store.outage_only {
                        instance.engine.lru_mut().mark_outage_only(&store.key);
                    }
                    for k in evicted {
                        instance.tier.remove(&k);
                    }
                    if instance.engine.lru().contains(&store.key) {
                        instance.tier.insert(store.key.clone(), value.clone());
                    }
                    if own {
                        instance.pending.insert(cache_key, (id, value.clone()));
                    }
                    (
                        OpKind::Write,
                        Cmd::Store {
                            key: store.key,
                            value,
                            script: store.script,
                        },
                    )
                }
                WriteStep::Release { call, .. } => (OpKind::Write, Cmd::Release(call)),
                WriteStep::Done(done) => {
                    let instance = &mut self.insts[inst];
                    if done.mark_local {
                        if let Some(key) = &done.key {
                            instance.engine.lru_mut().mark_local(key);
                        }
                    }
                    if own
                        && instance
                            .pending
                            .get(cache_key)
                            .is_some_and(|(t, _)| *t == id)
                    {
                        instance.pending.remove(cache_key);
                    }
                    return Ok(());
                }
            };
            match self.dispatch(inst, kind, cmd) {
                Ok(wait) => {
                    task.wait = wait;
                    self.tasks.push(task);
                    return Ok(());
                }
                Err(f) => {
                    let now = Millis(self.clock(inst));
                    step = self.insts[inst]
                        .engine
                        .write_step(machine, WriteInput::Failed(f), now);
                }
            }
        }
    }
}

/// An input for a read machine, owning its bytes.
enum In {
    Start,
    Refreshed,
    Own(Option<Vec<u8>>),
    Tier(Option<Vec<u8>>),
    Fallback(Option<Vec<u8>>),
    Reply(Option<Vec<u8>>),
    Lease(i64),
    Polled(Option<Vec<u8>>, bool),
    Failed(Failure),
    Timer,
}

/// Whether a read that would send `b` joins `a` in flight: the host shares a `GET` of one key,
/// and a poll of one entry and lease (their argv).
fn shared(a: &Cmd, b: &Cmd) -> bool {
    match (a, b) {
        (Cmd::Get(x), Cmd::Get(y)) => x == y,
        (Cmd::Poll(x), Cmd::Poll(y)) | (Cmd::PageRead(x), Cmd::PageRead(y)) => {
            x.keys == y.keys && x.args == y.args
        }
        _ => false,
    }
}

fn tag_send_name(send: &TagSend) -> String {
    match (send.seq, send.rev) {
        (Some(seq), Some(rev)) => format!("update {seq} (#{rev})"),
        (Some(seq), None) => format!("update {seq}"),
        (None, _) => "merge".into(),
    }
}

fn cmd_name(cmd: &Cmd) -> &'static str {
    match cmd {
        Cmd::Refresh(_) => "refresh",
        Cmd::Get(_) => "get",
        Cmd::Acquire(_) => "acquire",
        Cmd::Poll(_) => "poll",
        Cmd::PageRead(_) => "page read",
        Cmd::Store { .. } => "store",
        Cmd::Release(_) => "release",
    }
}

fn in_name(input: &In) -> String {
    let b = |v: &Option<Vec<u8>>| v.as_deref().and_then(created).map(|t| t - T0);
    match input {
        In::Start => "start".into(),
        In::Refreshed => "refreshed".into(),
        In::Own(v) => format!("own {:?}", b(v)),
        In::Tier(v) => format!("tier {:?}", b(v)),
        In::Fallback(v) => format!("fallback {:?}", b(v)),
        In::Reply(v) => format!("reply {:?}", b(v)),
        In::Lease(c) => format!("lease {c}"),
        In::Polled(v, l) => format!("polled {:?} {l}", b(v)),
        In::Failed(f) => format!("failed {f:?}"),
        In::Timer => "timer".into(),
    }
}

fn bytes(v: &Option<Vec<u8>>) -> Option<Bytes<'_>> {
    v.as_deref().map(|v| Bytes {
        prefix: v,
        total_len: v.len(),
    })
}

impl World {
    /// Begins a `'use cache'` read as the host does: the tag refresh goes out first (the
    /// machine waits for it: Next awaits `refreshTags` before `get`), then the read machine is
    /// stepped over the own write in flight, the tier, Redis and the lease.
    fn read(
        &mut self,
        inst: usize,
        key: usize,
        soft: u8,
        caches: bool,
    ) -> Result<(), TestCaseError> {
        let soft = mask(soft);
        let cache_key = KEYS[key];
        let now = Millis(self.clock(inst));
        self.note_clocks_at_request(inst);
        let token = self.token();
        let engine = &self.insts[inst].engine;
        let key_name = engine.entry_key(&IFACE, cache_key);
        let soft_tags = soft.iter().map(|t| (*t).to_owned()).collect();
        let consumer = Consumer::from_caches(caches);
        let machine = engine.read_use_cache(&IFACE, cache_key, soft_tags, consumer, token, now);
        let mut task = self.read_task(inst, machine, cache_key, key_name, soft, caches, None);
        if let Job::Read(rt) = &mut task.job {
            if !rt.caught_up {
                rt.ticket = Some(self.request_refresh(inst)?);
            }
        }
        self.read_steps(task, In::Start)
    }

    /// Begins a read of the singular handler as its adapter does (incremental-handler.ts):
    /// the read machine asks for the tag refresh itself, and the driver sends it beside the
    /// tier's turn and the entry's `GET`, awaiting it before it gives the machine anything.
    fn inc_read(
        &mut self,
        inst: usize,
        key: usize,
        soft: u8,
        caches: bool,
        revalidate: usize,
        on_demand: bool,
    ) -> Result<(), TestCaseError> {
        self.inc_read_in(inst, key, soft, caches, revalidate, on_demand, None)
    }

    /// A singular-handler read by `request` (its handler instance), or by a request of its own.
    #[allow(clippy::too_many_arguments)]
    fn inc_read_in(
        &mut self,
        inst: usize,
        key: usize,
        soft_bits: u8,
        caches: bool,
        revalidate: usize,
        on_demand: bool,
        request: Option<usize>,
    ) -> Result<(), TestCaseError> {
        let soft = soft_bits;
        let (cache_key, is_fetch) = INC_KEYS[key];
        // Next passes soft tags with a fetch read only; an on-demand revalidation reads the
        // page only (its fetches skip the cache).
        let soft = if is_fetch { mask(soft) } else { Vec::new() };
        let on_demand = on_demand && !is_fetch;
        let request_revalidate = if is_fetch {
            FETCH_REQUEST_REVALIDATE[revalidate % FETCH_REQUEST_REVALIDATE.len()]
        } else {
            f64::NAN
        };
        let now = Millis(self.clock(inst));
        self.note_clocks_at_request(inst);
        let token = self.token();
        let engine = &self.insts[inst].engine;
        let key_name = engine.entry_key(&Interface::Incremental, cache_key);
        let machine = engine.read_incremental(
            cache_key,
            is_fetch,
            soft.iter().map(|t| (*t).to_owned()).collect(),
            request_revalidate,
            Consumer::from_caches(caches),
            on_demand,
            token,
            now,
        );
        let inc = IncRead {
            key,
            is_fetch,
            request_revalidate,
            on_demand,
            request: request.unwrap_or(usize::MAX),
        };
        let mut task = self.read_task(inst, machine, cache_key, key_name, soft, caches, Some(inc));
        let request = match request {
            Some(r) => r,
            None => {
                // A request of its own: the id of its first read names it.
                self.handlers.insert(
                    task.id,
                    Handler {
                        inst,
                        reads: OwnReads::default(),
                        read: (key, soft_bits, caches, revalidate),
                    },
                );
                if is_fetch && !on_demand {
                    self.open.push(task.id);
                    // The latest few, so a second read is near the first; the handler stays
                    // (its reads may be in flight, its regeneration pending).
                    if self.open.len() > 6 {
                        self.open.remove(0);
                    }
                }
                task.id
            }
        };
        if let Job::Read(rt) = &mut task.job {
            if let Some(inc) = &mut rt.inc {
                inc.request = request;
            }
        }
        self.read_steps(task, In::Start)
    }

    /// A read request beginning now on `inst`. Following by push and caught up, it will not
    /// refresh: it is judged by what the last pull held and the announcements heard since.
    #[allow(clippy::too_many_arguments)]
    fn read_task(
        &mut self,
        inst: usize,
        machine: ReadMachine,
        cache_key: &'static str,
        key_name: String,
        soft: Vec<&'static str>,
        caches: bool,
        inc: Option<IncRead>,
    ) -> Task {
        let clock = self.clock(inst);
        let caught_up = self.insts[inst].engine.tags_caught_up(Millis(clock));
        let (held, held_step) = match &self.insts[inst].pulled {
            Some((step, tags)) if caught_up => (tags.clone(), *step),
            _ => (self.redis.tags.clone(), self.step),
        };
        let id = self.next_task;
        self.next_task += 1;
        Task {
            id,
            inst,
            job: Job::Read(Box::new(ReadTask {
                machine,
                cache_key,
                key_name,
                soft,
                caches,
                started: self.step,
                refresh_failed: false,
                held,
                held_step,
                caught_up,
                began_at: self.now,
                bound_late: if caught_up {
                    CLOCK_AHEAD_SLACK_MS - CLOCK_NOTE_MS + self.untold(inst)
                } else {
                    0.0
                },
                unheard: self.insts[inst].unheard.clone(),
                unheard_pages: self.insts[inst].unheard_pages.clone(),
                given: None,
                reply: None,
                kept: None,
                own: None,
                polled: None,
                at: [self.now; 6],
                outage_at: [false; 6],
                behind_at: [0.0; 6],
                synced_at: [true; 6],
                judged: vec![(0, None); 6],
                inc,
                ticket: None,
            })),
            wait: Wait::Timer(clock),
        }
    }

    /// A tag refresh of instance `inst` that starts after now, as `TagSync.refresh` gives
    /// one: a new one, or (one is in flight, and may have started before) the one queued
    /// behind it. Its ticket.
    fn request_refresh(&mut self, inst: usize) -> Result<usize, TestCaseError> {
        if let Some(rid) = self.insts[inst].refreshing {
            if let Some(Task {
                job: Job::Refresh { next, .. },
                ..
            }) = self.tasks.iter_mut().find(|t| t.id == rid)
            {
                if let Some(n) = next {
                    return Ok(*n);
                }
                let n = self.tickets.len();
                self.tickets.push(None);
                *next = Some(n);
                return Ok(n);
            }
        }
        let ticket = self.tickets.len();
        self.tickets.push(None);
        self.start_refresh(inst, ticket)?;
        Ok(ticket)
    }

    /// Sends instance `inst`'s tag refresh for the reads waiting on `ticket`.
    fn start_refresh(&mut self, inst: usize, ticket: usize) -> Result<(), TestCaseError> {
        self.note_clocks(inst);
        let clock = Millis(self.clock(inst));
        let call = self.insts[inst].engine.plan_tag_pull(clock);
        match self.dispatch(inst, OpKind::Read, Cmd::Refresh(call)) {
            Ok(wait) => {
                let id = self.next_task;
                self.next_task += 1;
                self.insts[inst].refreshing = Some(id);
                self.tasks.push(Task {
                    id,
                    inst,
                    job: Job::Refresh {
                        ticket,
                        next: None,
                        held: self.redis.tags.clone(),
                        held_step: self.step,
                        planned: self.now,
                    },
                    wait,
                });
                Ok(())
            }
            // Kept back by the breaker: the reads go on with the mirror as it is.
            Err(_) => {
                let clock = Millis(self.clock(inst));
                self.insts[inst].engine.tag_pull_failed(clock);
                self.resolve(
                    ticket,
                    Refreshed {
                        ok: false,
                        held: None,
                    },
                )
            }
        }
    }

    /// The refresh of `ticket` ended: the reads waiting on it go on, in the order they came.
    fn resolve(&mut self, ticket: usize, end: Refreshed) -> Result<(), TestCaseError> {
        self.tickets[ticket] = Some(end);
        let (ready, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|(t, _, _)| *t == ticket);
        self.parked = rest;
        for (_, mut task, input) in ready {
            // The driver takes the tier's bytes when it gives them, after the refresh
            // (read-driver.ts): those the index holds marks for then.
            let input = match (input, &mut task.job) {
                (In::Tier(_), Job::Read(rt)) => {
                    let held = self.insts[task.inst].tier.get(&rt.key_name).cloned();
                    rt.kept.clone_from(&held);
                    In::Tier(held)
                }
                (input, _) => input,
            };
            self.read_steps(task, input)?;
        }
        Ok(())
    }

    /// Hands a read machine `input` and carries out the steps it asks for, up to one that
    /// waits for Redis, a timer or its tag refresh (the task joins those in flight, or waits
    /// on the refresh) or the answer (checked).
    fn read_steps(&mut self, mut task: Task, mut input: In) -> Result<(), TestCaseError> {
        let inst = task.inst;
        for _ in 0..100 {
            let Job::Read(rt) = &mut task.job else {
                unreachable!()
            };
            // Rule R1: once the read has asked for its refresh, nothing more reaches the
            // machine before that refresh has ended.
            if let (Some(ticket), false) = (rt.ticket, matches!(input, In::Refreshed)) {
                match &self.tickets[ticket] {
                    None => {
                        self.parked.push((ticket, task, input));
                        return Ok(());
                    }
                    Some(end) => {
                        rt.refresh_failed = !end.ok;
                        if let Some((held, step)) = &end.held {
                            rt.held = held.clone();
                            rt.held_step = *step;
                        }
                        rt.ticket = None;
                    }
                }
            }
            let now = Millis(self.clock(inst));
            // Judged when the machine is given the bytes.
            let at = match &input {
                In::Own(_) => &[Source::OwnWrite][..],
                In::Tier(_) | In::Fallback(_) => &[Source::Tier, Source::Kept][..],
                In::Reply(_) => &[Source::Redis][..],
                In::Polled(..) => &[Source::Poll][..],
                _ => &[][..],
            };
            if !at.is_empty() {
                let judged = (self.event(), self.insts[inst].pulled.clone());
                let engine = &self.insts[inst].engine;
                let outage = engine.breaker_state(now) != fleetcache_core::BreakerState::Closed;
                let synced = engine.mirror().is_synced();
                let told = self.insts[inst].clocks_told.unwrap_or(0.0).max(0.0);
                let behind = (-self.offset(inst) - told).max(0.0);
                for source in at {
                    rt.at[*source as usize] = self.now;
                    rt.behind_at[*source as usize] = behind;
                    rt.outage_at[*source as usize] = outage;
                    rt.synced_at[*source as usize] = synced;
                    rt.judged[*source as usize].clone_from(&judged);
                }
            }
            rt.given = match &input {
                In::Own(b) | In::Tier(b) | In::Fallback(b) | In::Reply(b) | In::Polled(b, _) => {
                    b.clone()
                }
                _ => None,
            };
            let given = rt.given.clone();
            let read_input = match &input {
                In::Start => ReadInput::Start,
                In::Refreshed => ReadInput::Refreshed,
                In::Own(b) => ReadInput::OwnWrite(bytes(b)),
                In::Tier(b) => ReadInput::Tier(bytes(b)),
                In::Fallback(b) => ReadInput::Fallback(bytes(b)),
                In::Reply(b) => ReadInput::Reply(bytes(b)),
                In::Lease(c) => ReadInput::LeaseReply(*c),
                In::Polled(b, leased) => ReadInput::Polled {
                    entry: bytes(b),
                    leased: *leased,
                },
                In::Failed(f) => ReadInput::Failed(*f),
                In::Timer => ReadInput::Timer,
            };
            let instance = &mut self.insts[inst];
            let step = match instance.engine.read_step(&mut rt.machine, read_input, now) {
                Ok(step) => step,
                Err(e) => {
                    prop_assert!(false, "the read machine refused an input: {}", e);
                    return Ok(());
                }
            };
            self.trace.push(format!(
                "  task {} (inst {}) at {}: {} -> {:?} tier {:?}",
                task.id,
                inst,
                self.now - T0,
                in_name(&input),
                match &step.action {
                    ReadAction::Answer(a) => format!("answer {:?} {:?}", a.source, a.served),
                    other => format!("{other:?}").chars().take(40).collect(),
                },
                step.tier
            ));
            match step.tier {
                TierAction::None => {}
                TierAction::Drop => {
                    instance.tier.remove(&rt.key_name);
                }
                TierAction::Keep {
                    until,
                    outage_only,
                    page_gen,
                    order,
                } => {
                    prop_assert!(given.is_some(), "kept in the tier without bytes");
                    if let Some(v) = given {
                        let lru = instance.engine.lru_mut();
                        let evicted =
                            lru.insert_ordered(&rt.key_name, v.len() as u64, until, order);
                        if outage_only {
                            lru.mark_outage_only(&rt.key_name);
                        }
                        if page_gen != 0 {
                            lru.bind_page(&rt.key_name, page_gen);
                        }
                        for k in evicted {
                            instance.tier.remove(&k);
                        }
                        if instance.engine.lru().contains(&rt.key_name) {
                            instance.tier.insert(rt.key_name.clone(), v);
                        }
                    }
                }
            }
            let (kind, cmd) = match step.action {
                ReadAction::Refresh => {
                    input = In::Refreshed;
                    // Caught up by push at the read's start (this same instant), the singular
                    // handler's machine goes to the tier without asking.
                    prop_assert!(
                        rt.inc.is_none() || !rt.caught_up,
                        "a singular-handler read caught up by push asked for a refresh"
                    );
                    // A `'use cache'` request's refresh has run already (Next awaited
                    // `refreshTags`, which the driver's refresh joins). The singular
                    // handler's starts now: the machine goes on while it travels.
                    if rt.inc.is_some() {
                        rt.ticket = Some(self.request_refresh(inst)?);
                    }
                    continue;
                }
                ReadAction::OwnWrite => {
                    rt.own = instance.pending.get(rt.cache_key).map(|(_, v)| v.clone());
                    input = In::Own(rt.own.clone());
                    continue;
                }
                ReadAction::PeekTier | ReadAction::PeekFallback => {
                    // Read from the tier now, given once the refresh has ended.
                    let held = instance.tier.get(&rt.key_name).cloned();
                    input = if matches!(step.action, ReadAction::PeekTier) {
                        rt.kept.clone_from(&held);
                        In::Tier(held)
                    } else {
                        // The driver keeps what it had when the fallback holds nothing.
                        if held.is_some() {
                            rt.kept.clone_from(&held);
                        }
                        In::Fallback(held)
                    };
                    continue;
                }
                ReadAction::NeedMore { need } => {
                    prop_assert!(false, "whole values are given, yet {} bytes asked", need);
                    return Ok(());
                }
                ReadAction::Wait { delay_ms } => {
                    task.wait = Wait::Timer(now.0 + delay_ms);
                    self.tasks.push(task);
                    return Ok(());
                }
                ReadAction::Get { key, .. } => (OpKind::Read, Cmd::Get(key)),
                ReadAction::Acquire { call, .. } => (OpKind::Lease, Cmd::Acquire(call)),
                ReadAction::Poll { call, .. } => (OpKind::Read, Cmd::Poll(call)),
                ReadAction::PageRead { call, .. } => (OpKind::Read, Cmd::PageRead(call)),
                ReadAction::Answer(a) => {
                    let served = match a.source {
                        Source::None => None,
                        Source::Redis => rt.reply.clone(),
                        Source::Tier | Source::Kept => rt.kept.clone(),
                        Source::OwnWrite => rt.own.clone(),
                        Source::Poll => rt.polled.clone(),
                    };
                    prop_assert!(
                        served.is_some() || a.source == Source::None,
                        "served from {:?} without bytes",
                        a.source
                    );
                    if let Some(inc) = rt.inc {
                        // An event-loop stall between the answer and Next's continuation:
                        // Next gets the answer that much later, by its own clock. (Drawn for
                        // an answer with a value: a miss is judged the same whenever it comes.)
                        let late = served.as_ref().and_then(|_| self.late.remove(&inst));
                        if let Some(late) = late {
                            self.now += f64::from(late);
                            self.trace.push(format!(
                                "  task {} (inst {}): its answer reaches Next at {}",
                                task.id,
                                inst,
                                self.now - T0
                            ));
                        }
                        // Next's second look (same clock, `lastModified + revalidate` as it
                        // applies them): an answer past its due by now is regenerated by Next
                        // on its own, though fleetcache answered it fresh.
                        let due = match (&a.shown, &served) {
                            (Shown::Incremental(shown), Some(value)) if !a.regenerates => {
                                let stored = fleetcache_core::decode_header(value, value.len())
                                    .map_or(f64::NAN, |h| h.meta.revalidate);
                                let next_now = self.clock(inst);
                                seen_by_next(shown, &inc, stored, self.release, next_now)
                                    != Freshness::Fresh
                            }
                            _ => false,
                        };
                        // Next regenerates after this answer: its render begins now, in this
                        // request, whose handler instance keeps what the answer left for the
                        // request's write. A page's read that comes while one of its renders
                        // runs in the process joins it (Next runs one per page); a `fetch`
                        // entry's does not.
                        let joins = !inc.is_fetch
                            && self
                                .regens
                                .iter()
                                .any(|r| r.inst == inst && r.key == inc.key);
                        // Every answer of the request's reads, folded per key.
                        if let Some(h) = self.handlers.get_mut(&inc.request) {
                            h.reads.note(rt.cache_key, a.own);
                        }
                        // A request runs one refetch of a key at a time (Next's
                        // `pendingRevalidates`): a second read's stale answer joins it.
                        let pending = self
                            .regens
                            .iter()
                            .any(|r| r.request == Some(inc.request) && r.key == inc.key);
                        // An on-demand revalidation regenerates whatever it finds.
                        if (a.regenerates || due) && !inc.on_demand {
                            if let Some(value) = &served {
                                self.check_retry(inst, rt, a.source, value)?;
                            }
                        }
                        if (a.regenerates || due) && !joins && !pending {
                            let served = match (&served, &a.shown) {
                                (Some(value), Shown::Incremental(shown)) => Some(ServedValue {
                                    value: value.clone(),
                                    payload_offset: a.payload_offset,
                                    shown: shown.clone(),
                                    written_back: a.own.written_back,
                                    written_back_made: a.own.written_back_made,
                                    read_began: rt.began_at,
                                    soft: rt.soft.clone(),
                                }),
                                _ => None,
                            };
                            let knew = self.knew(inst, rt.refresh_failed);
                            self.stamped(inst, self.now);
                            self.regens.push(Regen {
                                inst,
                                key: inc.key,
                                began: self.now,
                                request: Some(inc.request),
                                served,
                                knew,
                            });
                        }
                        // An on-demand revalidation serves nothing of what it read.
                        if inc.on_demand {
                            return Ok(());
                        }
                    }
                    if let Some(value) = served {
                        if rt.inc.is_some_and(|inc| !inc.is_fetch) {
                            self.check_page(inst, rt, &a, &value)?;
                        }
                        let read_at = Millis(rt.at[a.source as usize]);
                        return self.check(inst, rt, &a, &value, read_at);
                    }
                    return Ok(());
                }
            };
            // As the host shares one `GET` (or poll) of a key per process (`share` in
            // read-driver.ts): only one issued since this read began (or in the same turn: the
            // same step here), under the page announcements heard when it went out.
            let heard = self.insts[inst].engine.page_heard();
            let began = rt.started;
            let leader = self.tasks.iter().find(|t| {
                t.inst == inst
                    && matches!(&t.wait, Wait::Cmd(f) if f.heard == heard
                        && f.issued >= began
                        && shared(&f.cmd, &cmd))
            });
            if let Some(leader) = leader {
                // Under the number the leader's command went out under, as read-driver.ts
                // hands it over.
                let order = match &leader.job {
                    Job::Read(lr) => lr.machine.order(),
                    _ => 0,
                };
                rt.machine.joined(order);
                self.trace.push(format!(
                    "  task {} (inst {}) joins task {}'s {}",
                    task.id,
                    inst,
                    leader.id,
                    cmd_name(&cmd)
                ));
                self.joined.push((leader.id, task));
                return Ok(());
            }
            match self.dispatch(inst, kind, cmd) {
                Ok(wait) => {
                    task.wait = wait;
                    self.tasks.push(task);
                    return Ok(());
                }
                Err(f) => input = In::Failed(f),
            }
        }
        prop_assert!(false, "the read never ended");
        Ok(())
    }

    /// The request in flight `t` takes its next step: its command reaches Redis, or its reply
    /// (a timeout past its budget, or for a lost reply) or timer reaches its machine.
    fn advance(&mut self, t: usize) -> Result<(), TestCaseError> {
        let mut task = self.tasks.remove(t);
        let inst = task.inst;
        let mut flight = match std::mem::replace(&mut task.wait, Wait::Timer(0.0)) {
            Wait::Timer(until) => {
                // Set on its process's clock.
                self.now = self.now.max(self.true_time_at(inst, until));
                if matches!(task.job, Job::Seed { .. }) {
                    return self.seed_write(task);
                }
                return self.read_steps(task, In::Timer);
            }
            Wait::Cmd(flight) => flight,
        };
        let Some(reply) = flight.reply.take() else {
            // It reaches Redis: it runs there (a write runs even if its reply is lost).
            let reply = if self.up {
                if let Job::Refresh {
                    held, held_step, ..
                } = &mut task.job
                {
                    *held = self.redis.tags.clone();
                    *held_step = self.step;
                }
                // What the key held before, by the header's own decoder (the scripts read the
                // creation time at a fixed offset instead).
                let before = match &flight.cmd {
                    Cmd::Store { key, .. } => self.redis.entries.get(key).and_then(|v| created(v)),
                    _ => None,
                };
                let reply = self.redis.exec(&flight.cmd, self.now);
                if let Reply::PageWrite(n) = reply {
                    self.page_sender.insert(n, inst);
                }
                self.publish(inst);
                if let (Job::Seed { lost, .. }, Cmd::Store { value, .. }) = (&task.job, &flight.cmd)
                {
                    // Decision 0023: a seed never replaces an entry created at or after its
                    // own stamp.
                    let stamp = created(value);
                    prop_assert!(
                        !matches!(reply, Reply::PageWrite(_))
                            || before.zip(stamp).map_or(true, |(b, s)| b < s),
                        "a seed stamped {:?} replaced an entry created at {:?}\n{}",
                        stamp.map(|t| t - T0),
                        before.map(|t| t - T0),
                        self.trace.join("\n")
                    );
                    (!*lost).then_some(reply)
                } else {
                    (!self.lose.remove(&inst)).then_some(reply)
                }
            } else {
                None
            };
            self.trace.push(format!(
                "  task {} (inst {}) {} reaches Redis at {}: {}",
                task.id,
                inst,
                cmd_name(&flight.cmd),
                self.now - T0,
                if reply.is_some() {
                    "answered"
                } else {
                    "no reply"
                }
            ));
            flight.reply = Some(reply);
            task.wait = Wait::Cmd(flight);
            self.tasks.push(task);
            return Ok(());
        };
        // The host's timer fires at the budget's end before a late reply is read.
        // On its process's clock, which a pause of its machine held still.
        let reply = reply.filter(|_| self.clock(inst) - flight.sent <= flight.budget_ms);
        if reply.is_none() {
            self.now = self
                .now
                .max(self.true_time_at(inst, flight.sent + flight.budget_ms));
        }
        self.trace.push(format!(
            "  task {} (inst {}) {} delivered at {} (sent {}): {}",
            task.id,
            inst,
            cmd_name(&flight.cmd),
            self.now - T0,
            flight.sent - T0,
            if reply.is_some() { "ok" } else { "timeout" }
        ));
        let now = Millis(self.clock(inst));
        let outcome = if reply.is_some() {
            CallResult::Success
        } else {
            CallResult::Timeout
        };
        match &mut task.job {
            Job::Seed { engine, lag, .. } => {
                engine.report(flight.permit, outcome, Millis(self.now - *lag));
            }
            _ => {
                self.insts[inst].engine.report(flight.permit, outcome, now);
            }
        }
        match (&mut task.job, flight.cmd) {
            // seed.ts counts it written or kept; nothing more happens to it.
            (Job::Seed { .. }, _) => {
                if let Some(Reply::PageWrite(n)) = reply {
                    self.page_resolved.entry(n).or_insert((self.step, self.now));
                    self.page_writer.insert(n, inst);
                }
                Ok(())
            }
            (Job::Write { machine, .. }, _) => {
                if let Some(Reply::PageWrite(n)) = reply {
                    self.page_resolved.entry(n).or_insert((self.step, self.now));
                    self.page_writer.insert(n, inst);
                }
                let input = match reply {
                    Some(_) => WriteInput::Sent,
                    None => WriteInput::Failed(Failure::Timeout),
                };
                let step = self.insts[inst].engine.write_step(machine, input, now);
                self.write_steps(task, step)
            }
            (
                Job::Refresh {
                    ticket,
                    next,
                    held,
                    held_step,
                    planned,
                },
                _,
            ) => {
                let (ticket, next, held_step, planned) = (*ticket, *next, *held_step, *planned);
                let held = std::mem::take(held);
                self.insts[inst].refreshing = None;
                let ok = matches!(reply, Some(Reply::Bytes(Some(_))));
                if let Some(Reply::Bytes(Some(b))) = reply {
                    self.refreshed(inst, &b, &held, held_step, planned);
                } else {
                    self.insts[inst].engine.tag_pull_failed(now);
                }
                // The host's pull asks for the next part at once (tag-sync.ts `pull`, up to
                // LOAD_STEPS calls): the reads waiting on it go on after the last.
                let steps = self.ticket_steps.entry(ticket).or_insert(0);
                *steps += 1;
                // SIM_LOAD_STEPS lowers the cap, so that bounded histories reach a request
                // judged after it (as the host's requests are past LOAD_STEPS parts).
                let cap = std::env::var("SIM_LOAD_STEPS")
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(16);
                if ok && *steps < cap && self.insts[inst].engine.mirror().is_catching_up() {
                    self.start_refresh(inst, ticket)?;
                    let carried = self.insts[inst]
                        .refreshing
                        .and_then(|rid| self.tasks.iter_mut().find(|t| t.id == rid));
                    return match (carried, next) {
                        (
                            Some(Task {
                                job: Job::Refresh { next: slot, .. },
                                ..
                            }),
                            _,
                        ) => {
                            *slot = next;
                            Ok(())
                        }
                        (_, None) => Ok(()),
                        (_, Some(n)) => self.resolve(
                            n,
                            Refreshed {
                                ok: false,
                                held: None,
                            },
                        ),
                    };
                }
                let end = Refreshed {
                    ok,
                    held: Some((held, held_step)),
                };
                self.resolve(ticket, end)?;
                match next {
                    None => Ok(()),
                    Some(n) if ok => self.start_refresh(inst, n),
                    // The refresh in flight failed: the waiters go on with the mirror as it is.
                    Some(n) => self.resolve(
                        n,
                        Refreshed {
                            ok: false,
                            held: None,
                        },
                    ),
                }
            }
            (Job::Read(_), _) => {
                let (joiners, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.joined)
                    .into_iter()
                    .partition(|(leader, _)| *leader == task.id);
                self.joined = rest;
                for mut t in std::iter::once(task).chain(joiners.into_iter().map(|(_, t)| t)) {
                    let Job::Read(rt) = &mut t.job else {
                        unreachable!()
                    };
                    let input = match reply.clone() {
                        None => In::Failed(Failure::Timeout),
                        Some(Reply::Bytes(b)) => {
                            rt.reply.clone_from(&b);
                            In::Reply(b)
                        }
                        Some(Reply::Int(c)) => In::Lease(c),
                        Some(Reply::Polled(b, leased)) => {
                            rt.polled.clone_from(&b);
                            In::Polled(b, leased)
                        }
                        // Sent as a poll: its bytes are the poll's (`Source::Poll`).
                        Some(Reply::PageRead(b, at)) => {
                            rt.polled.clone_from(&b);
                            In::Polled(b, at)
                        }
                        Some(Reply::Done | Reply::PageWrite(_)) => {
                            prop_assert!(false, "a read got a write's reply");
                            return Ok(());
                        }
                    };
                    self.read_steps(t, input)?;
                }
                Ok(())
            }
        }
    }

    /// The page rewrite contract (docs/failures.md, "Page and route entries"): while Redis
    /// answers, a page read never serves a value Redis had replaced with a write that resolved
    /// before the read began, except, following by push, a write that resolved less than the
    /// bound before and whose announcement had not reached the instance then. A value Redis
    /// lost (a flush, a failover) counts as replaced by every write made after the loss.
    /// Values served during an outage are judged by [`World::check_outage_page`].
    fn check_page(
        &mut self,
        inst: usize,
        rt: &ReadTask,
        answer: &ReadAnswer,
        value: &[u8],
    ) -> Result<(), TestCaseError> {
        let closed = self.insts[inst]
            .engine
            .breaker_state(Millis(self.clock(inst)))
            == fleetcache_core::BreakerState::Closed;
        if answer.source == Source::Kept || !closed {
            return self.check_outage_page(inst, rt, answer, value);
        }
        for (later, n) in self.replacing(value) {
            if later == value {
                continue;
            }
            let Some(&(step, resolved)) = self.page_resolved.get(&n) else {
                continue;
            };
            if step >= rt.started || self.wrote_back_after(inst, value, step) {
                continue;
            }
            // A read joins only a `GET` or poll issued since it began, so what it shares is no
            // older than what it would have read itself: no excuse for joining. Its own
            // process's writes are never unheard (`publish`).
            let unheard = rt.unheard_pages.contains(&n);
            let excused =
                self.push && unheard && resolved > rt.began_at - PUSH_BOUND_MS - rt.bound_late;
            prop_assert!(
                excused,
                "inst {} served a page from {:?} that page write {} (resolved at {}) replaced before the read began at {}\n{}",
                inst,
                answer.source,
                n,
                resolved - T0,
                rt.began_at - T0,
                self.trace.join("\n")
            );
        }
        Ok(())
    }

    /// The page writes that replaced `value` in Redis: a value Redis holds is replaced by the
    /// writes after it; one it lost, by the writes made after the loss.
    fn replacing(&self, value: &[u8]) -> Vec<(Vec<u8>, usize)> {
        let log = &self.redis.page_log;
        match log.iter().rposition(|(v, _)| v == value) {
            Some(i) => log.iter().skip(i + 1).cloned().collect(),
            None => match self.page_lost.iter().rev().find(|(v, _, _, _)| v == value) {
                Some((_, since, _, before)) => before
                    .iter()
                    .chain(log.iter().filter(|(_, n)| n >= since))
                    .cloned()
                    .collect(),
                None => Vec::new(),
            },
        }
    }

    /// The outage copy (docs/failures.md, "The copy an outage serves"): a page served while
    /// Redis cannot be reached, or from the copy kept after a failed read, is never one that a
    /// write of the same instance replaced in Redis, and whose reply that instance got before
    /// the read began. (Another instance's writes it may not have read: its copy is the newest it
    /// read, or its own. The order in which its own writes of the key land is the host's to
    /// keep, one after the other, which this model does not: a value of its own, one it sent
    /// whether or not it got the reply, is not judged here.)
    fn check_outage_page(
        &mut self,
        inst: usize,
        rt: &ReadTask,
        answer: &ReadAnswer,
        value: &[u8],
    ) -> Result<(), TestCaseError> {
        let log = &self.redis.page_log;
        let sent = |n: &usize| self.page_sender.get(n) == Some(&inst);
        // Its own value, whether Redis still holds it or lost it (a flush, a failover), or one
        // it wrote back itself (the bytes of a value Redis held before).
        if log.iter().any(|(v, n)| v == value && sent(n))
            || self
                .page_lost
                .iter()
                .any(|(v, _, n, _)| v == value && sent(n))
            || self
                .write_backs
                .values()
                .any(|wb| wb.inst == inst && wb.stored.iter().any(|v| v == value))
        {
            return Ok(());
        }
        for (later, n) in self.replacing(value) {
            if later == value || self.page_writer.get(&n) != Some(&inst) {
                continue;
            }
            let Some(&(step, resolved)) = self.page_resolved.get(&n) else {
                continue;
            };
            prop_assert!(
                step >= rt.started,
                "inst {} served in an outage a page from {:?} that its own page write {} (resolved at {}) replaced before the read began at {}\n{}",
                inst,
                answer.source,
                n,
                resolved - T0,
                rt.began_at - T0,
                self.trace.join("\n")
            );
        }
        Ok(())
    }

    /// The freshness contract for one answer that served `value` as `served`.
    fn check(
        &mut self,
        inst: usize,
        rt: &ReadTask,
        answer: &ReadAnswer,
        value: &[u8],
        read_at: Millis,
    ) -> Result<(), TestCaseError> {
        let served = answer.served;
        let loaded = self.insts[inst].loaded;
        if rt.refresh_failed && loaded {
            // The exception while Redis cannot be asked: judged by the last loaded state.
            return Ok(());
        }
        // As when the machine judged the bytes served (a lease command may have closed the
        // breaker, or a load ended, before the answer).
        let outage = rt.outage_at[answer.source as usize];
        let synced = rt.synced_at[answer.source as usize];
        let header = fleetcache_core::decode_header(value, value.len()).unwrap();
        // When the regeneration that produced it began, as its payload says.
        let payload = value
            .get(answer.payload_offset..answer.payload_offset + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok());
        prop_assert!(payload.is_some(), "served a value without its payload");
        let created = Millis(payload.map_or(0.0, f64::from_le_bytes));
        let tags: Vec<&str> = header
            .meta
            .tags
            .iter()
            .map(String::as_str)
            .chain(rt.soft.iter().copied())
            .collect();
        // What Next makes of the answer when it gets it. A follower that only serves a
        // response may be shown a stale entry as fresh (another request regenerates it under
        // the lease, as the single-flight design says); a read whose answer is cached never.
        let seen = match (&answer.shown, &rt.inc) {
            (Shown::Incremental(shown), Some(inc)) => {
                let next_now = self.clock(inst);
                seen_by_next(shown, inc, header.meta.revalidate, self.release, next_now)
            }
            _ if served == Served::Stale => Freshness::Stale,
            _ => Freshness::Fresh,
        };
        let got = if served == Served::AsFresh && !rt.caches {
            seen.max(Freshness::Stale)
        } else {
            seen
        };
        for (n, r) in self.revs.iter().enumerate() {
            let Some(resolved) = r.resolved else { continue };
            if resolved >= rt.started {
                continue;
            }
            let single = r.single();
            // In true time: what the revalidation requires of an entry made before it. Its
            // expiry after a delay (a profile's `expire`) is counted from the recording host's
            // wall clock where its clock ran ahead past the slack, and judged on the later of the
            // judging process's clock and the wall clock its engine was last told (decision
            // 0036): late by the ms the stamp's rounding up leaves at most, by how far the
            // recording clock ran ahead within the slack (none otherwise), and by what the
            // judging process's clock moved behind since it last told its engine (drift under
            // the host's filter, a pause since the request's start).
            let ahead = r.at.0 - r.true_at;
            let within = if ahead <= CLOCK_AHEAD_SLACK_MS {
                ahead.max(0.0)
            } else {
                0.0
            };
            let rounding = (r.single().pending_exp.0 - r.at_true_time().pending_exp.0)
                .clamp(0.0, 1.0 + within);
            let late = rounding + rt.behind_at[answer.source as usize];
            let required_record = r.at_true_time();
            for tag in r.tags.iter().filter(|t| tags.contains(t)) {
                // Judged when the machine was given the bytes: an answer may come a lease
                // request later, past a profile's `expire` by up to that command's budget.
                let required = required_record.freshness(
                    Millis(created.0 + self.slack(created.0)),
                    Millis(read_at.0 - late),
                );
                // Not yet heard of when the machine judged the entry, and not in Redis when this
                // read's refresh ran there, or when the instance's last refresh before that
                // judgement did (a read may be judged after a later one: one whose refresh was
                // a page of a load in progress, judged once the load ended): lost with Redis's
                // state. (Caught up without a pull: what Redis held at the last pull, for what
                // resolved before it.)
                let missing =
                    |step: usize, held: &TagState| resolved < step && !held.covers(tag, &single);
                let (judged, last_pull) = &rt.judged[answer.source as usize];
                let lost = !self.insts[inst]
                    .learned
                    .get(&n)
                    .is_some_and(|at| at < judged)
                    && (missing(rt.held_step, &rt.held)
                        || last_pull
                            .as_ref()
                            .is_some_and(|(step, held)| missing(*step, held)));
                // Before the tag state is loaded (or while it reloads), while Redis is out of
                // reach: this instance's own entries, made since it started, are judged by its
                // own revalidations. (Requests overlap: a refresh that succeeded may have been
                // sent before the breaker opened. Made in the very ms it started counts: a step of
                // its clock may time a command out, and open the breaker, in no time at all.)
                let own = !synced && outage && created.0 >= self.insts[inst].started;
                // Caught up without a pull: within the bound of the read's start, and its
                // announcement had not reached the instance then.
                let within = rt.caught_up
                    && r.resolved_at
                        .is_some_and(|t| t + PUSH_BOUND_MS + rt.bound_late > rt.began_at)
                    && rt.unheard.contains(&n);
                if got < required && !lost && !own && !within {
                    prop_assert!(
                        false,
                        "{}\ninstance {} served {:?} (Next sees it {:?}) an entry of {} created at {} \
                         tagged {}, invalidated ({:?}) by revalidation #{} {:?} at {} resolved at step \
                         {} (read began at step {}; caught up without a pull: {}; source {:?}; shown \
                         {:?}; log: {}; judged at {}; the instance knows of the tag {:?})",
                        self.trace.join("\n"), inst, served, got, rt.cache_key, created.0 - T0, tag,
                        required, n, r.rev, r.at.0 - T0, resolved, rt.started, rt.caught_up,
                        answer.source, answer.shown, answer.log, read_at.0 - T0,
                        self.insts[inst].engine.mirror().known(tag)
                    );
                }
            }
        }
        Ok(())
    }

    /// Every request in flight takes its steps to its end (in the order they were begun).
    fn finish_requests(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..10_000 {
            if self.tasks.is_empty() {
                prop_assert!(
                    self.parked.is_empty(),
                    "reads wait for a refresh that never ends"
                );
                return Ok(());
            }
            self.advance(0)?;
        }
        prop_assert!(false, "requests in flight never ended");
        Ok(())
    }

    /// Redis answers and every instance catches up: each has the tag state loaded, and what
    /// any of them knows is in Redis.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        pause_scan_tape();
        self.check_written_back()?;
        self.up = true;
        self.lose.clear();
        // The tag updates and merges held in flight run (if they have not) and are answered.
        for i in 0..self.insts.len() {
            self.insts[i].hold = None;
            while self.insts[i].sending.is_some() {
                self.tag_step(i);
            }
        }
        for _ in 0..3 {
            self.now += 2_000.0;
            for i in 0..self.insts.len() {
                // A load takes a refresh call per page, then one to catch up.
                for _ in 0..20 {
                    self.refresh(i);
                    if self.insts[i].engine.mirror().is_synced() {
                        break;
                    }
                }
                self.drain(i);
            }
        }
        for (i, inst) in self.insts.iter().enumerate() {
            prop_assert!(
                inst.engine.mirror().is_synced(),
                "instance {} has not loaded the tag state after settling",
                i
            );
            for n in inst.learned.keys() {
                let r = &self.revs[*n];
                let single = r.single();
                for tag in &r.tags {
                    prop_assert!(
                        self.redis.tags.covers(tag, &single),
                        "{}\ninstance {} knew revalidation #{} {:?} of {} at {}; Redis lacks it after \
                         settling (the instance knows {:?}, exactly {:?}, folded {}; Redis holds {:?} \
                         and as folded {:?}; the revalidation alone {:?})",
                        self.trace.join("\n"), i, n, r.rev, tag, r.at.0 - T0,
                        inst.engine.mirror().known(tag), inst.engine.mirror().record(tag),
                        inst.engine.mirror().folded(), self.redis.tags.records.get(&**tag),
                        self.redis.tags.records.get(FOLDED_TAG), single
                    );
                }
            }
            // And each it took out of its full outbox was resolved ([`World::resolve_taken_out`]):
            // held to the contract as the ones it sent are.
            prop_assert!(
                inst.taken_out.is_empty(),
                "{}\ninstance {} took revalidations {:?} (and the tags Redis did not acknowledge) \
                 out of its outbox, still unresolved after settling",
                self.trace.join("\n"),
                i,
                inst.taken_out
            );
        }
        Ok(())
    }
}

/// How Next judges a singular-handler answer `shown` to read `inc` at `now`, the moment it
/// gets it (incremental-cache/index.js, 16.4): a `fetch` entry is stale once
/// `now - lastModified` exceeds the read's own `revalidate`, else the value's
/// (`stored_revalidate`); a page is expired (a blocking regeneration) once
/// `lastModified + expire` has passed and stale once `lastModified + revalidate` has, with the
/// `cacheControl` returned. A release before 16.4 judges a page with its own record of the
/// route instead (its manifest, this process's last write), which the handler cannot know: for
/// it, a page served is a page taken as fresh, and only a miss honours a revalidation.
fn seen_by_next(
    shown: &IncrementalShown,
    inc: &IncRead,
    stored_revalidate: f64,
    release: Option<NextRelease>,
    now: f64,
) -> Freshness {
    let lm = shown.last_modified;
    if inc.is_fetch {
        let r = if inc.request_revalidate.is_finite() && inc.request_revalidate != 0.0 {
            inc.request_revalidate
        } else {
            stored_revalidate
        };
        return if (now - lm) / 1000.0 > r {
            Freshness::Stale
        } else {
            Freshness::Fresh
        };
    }
    let blind = release.is_some_and(|r| !r.honours_returned_cache_control());
    match shown.cache_control {
        Some((revalidate, expire)) if !blind => {
            if expire.is_some_and(|e| lm + e * 1000.0 < now) {
                Freshness::Expired
            } else if revalidate.is_some_and(|r| lm + r * 1000.0 < now) {
                Freshness::Stale
            } else {
                Freshness::Fresh
            }
        }
        _ => Freshness::Fresh,
    }
}

/// Runs `ops` on three instances that pull, with leases, mirrors bounded by `max_tags`, outboxes
/// of `outbox` revalidations and process clocks `clocks` apart from the wall clock, finishes
/// the requests and settles: every check of [`World`] holds on the way and at the end.
fn pulling_history_settles(
    ops: &[Op],
    max_tags: u32,
    outbox: u32,
    clocks: Clocks,
) -> Result<(), TestCaseError> {
    let mut w = World::new(false, None, true, max_tags);
    w.outboxes(outbox);
    w.clocks(clocks);
    for op in ops {
        w.apply(op)?;
    }
    w.finish_requests()?;
    w.settle()
}

/// A history of page rewrites followed by push, on three instances that all heard of the page
/// and keep it in their tiers, bound to the announcements: it starts where a missed mark would
/// show. Runs `ops`, then settles.
fn page_rewrite_history_settles(ops: &[Op], max_tags: u32) -> Result<(), TestCaseError> {
    let mut w = World::new(
        true,
        Some(NextRelease::new(16, 4, 6, false)),
        true,
        max_tags,
    );
    for i in 0..w.insts.len() {
        w.apply(&Op::Subscribe { inst: i })?;
        w.refresh(i);
    }
    w.apply(&Op::Rewrite {
        inst: 0,
        life: 0,
        held: false,
    })?;
    for i in 0..w.insts.len() {
        w.apply(&Op::Deliver { inst: i })?;
    }
    for i in 0..w.insts.len() {
        w.apply(&Op::IncRead {
            inst: i,
            key: 0,
            soft: 0,
            caches: false,
            revalidate: 0,
            on_demand: false,
        })?;
        w.finish_requests()?;
    }
    for op in ops {
        w.apply(op)?;
    }
    w.finish_requests()?;
    w.settle()
}

/// After [`World::settle`]: no instance loads the whole state at every refresh for good. The
/// state has an epoch when it holds records (a meta hash lost alone was made anew), and each
/// instance's next refresh is answered in part.
fn follows_in_part(w: &mut World) -> Result<(), TestCaseError> {
    prop_assert!(
        w.redis.tags.records.is_empty() || w.redis.tags.epoch.is_some(),
        "{}\nthe state holds records without an epoch after settling",
        w.trace.join("\n")
    );
    for i in 0..w.insts.len() {
        let clock = Millis(w.clock(i));
        let call = w.insts[i].engine.plan_tag_pull(clock);
        let reply = w.redis.run(&call);
        let flag = netstring::decode(&reply).unwrap()[3].to_vec();
        prop_assert!(
            flag == b"0",
            "{}\ninstance {} is answered in full (flag {}) after settling",
            w.trace.join("\n"),
            i,
            String::from_utf8_lossy(&flag)
        );
        let held = w.redis.tags.clone();
        let now = w.now;
        w.refreshed(i, &reply, &held, w.step, now);
    }
    Ok(())
}

/// The bound on every process's tag mirror a history runs with (`Config::tag_mirror_max_tags`):
/// the default, which these histories never reach, or 1 or 2 records, which a revalidation of
/// two of the three tags passes, so records fold, are given back folded ([`FOLDED_TAG`]) and
/// judge entries from their buckets all the time. Not 3: the fourth record could only be
/// [`FOLDED_TAG`], which exists only after a fold. The default first: a failure shrinks to it
/// when it needs no fold.
fn mirror_bound() -> impl Strategy<Value = u32> {
    prop_oneof![1 => Just(DEFAULT_MAX_TAGS), 2 => Just(1u32), 1 => Just(2)]
}

/// The default outbox capacity (`Config::outbox_capacity`, 1000), which these histories never
/// fill.
fn default_outbox() -> u32 {
    Config::default().outbox_capacity
}

/// Every process's outbox capacity a history runs with (`Config::outbox_capacity`): mostly the
/// default, else 1 to 3 revalidations, which an outage, an open breaker, a backoff or an update
/// held in flight fills, so the outbox takes its oldest out (the one in flight, maybe) and it is merged
/// back ([`World::resolve_taken_out`]); with a bounded mirror ([`mirror_bound`]), under
/// [`FOLDED_TAG`] past the bound. The default first: a failure shrinks to it when it needs no
/// full outbox. Drawn as the history's last input, so the stored seeds draw the same ops,
/// bound and clocks as before.
fn outbox_bound() -> impl Strategy<Value = u32> {
    prop_oneof![2 => Just(default_outbox()), 1 => 1u32..=3]
}

/// Cases per run: `PROPTEST_CASES` when set (longer runs find rarer schedules).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1024), ..ProptestConfig::default() })]

    #[test]
    fn no_read_serves_what_a_resolved_revalidation_invalidated(
        ops in proptest::collection::vec(op(false), 1..80),
        max_tags in mirror_bound(),
        clocks in clock_offsets(),
        outbox in outbox_bound(),
    ) {
        pulling_history_settles(&ops, max_tags, outbox, clocks)?;
    }
}

proptest! {
    // More cases: a read past the bound needs a subscription, a pull, an announcement that
    // does not arrive and a long advance or stall, in that order.
    #![proptest_config(ProptestConfig { cases: cases(3072), ..ProptestConfig::default() })]

    #[test]
    fn following_by_push_a_read_is_within_the_bound_or_pulled(
        ops in proptest::collection::vec(op(true), 1..80),
        max_tags in mirror_bound(),
        clocks in clock_offsets(),
        outbox in outbox_bound(),
    ) {
        let mut w = World::new(true, None, true, max_tags);
        w.outboxes(outbox);
        w.clocks(clocks);
        for op in &ops {
            w.apply(op)?;
        }
        w.finish_requests()?;
        w.settle()?;
    }
}

proptest! {
    // A read near the bound after a pause needs a pull, an entry, a revalidation of its tags
    // whose announcement does not arrive, the pause and the read, in that order: common in
    // these histories ([`bound_op`]), rare in [`op`]'s. With the engine's threshold at the
    // slack, or the move since the pull's start not measured, runs failed within a few hundred
    // to a few thousand cases.
    #![proptest_config(ProptestConfig { cases: cases(1024), ..ProptestConfig::default() })]

    #[test]
    fn following_by_push_a_read_after_a_pause_is_within_the_bound_or_pulled(
        ops in with_runs(bound_op(), 3, pauses_told(), 40),
        clocks in clock_offsets(),
    ) {
        let bounds = (DEFAULT_MAX_TAGS, default_outbox());
        run_up_bounded(true, NextRelease::new(16, 4, 6, false), true, bounds, clocks, &ops)?;
    }
}

proptest! {
    // Longer histories than the others: a page read only finds something once a read began
    // its regeneration, the write landed, and a revalidation came between, all through the
    // scheduler's steps.
    #![proptest_config(ProptestConfig { cases: cases(1024), ..ProptestConfig::default() })]

    #[test]
    fn no_singular_handler_read_serves_what_a_resolved_revalidation_invalidated(
        push in any::<bool>(),
        before_16_4 in any::<bool>(),
        leases in prop::bool::weighted(0.75),
        ops in proptest::collection::vec(mixed_op(), 1..160),
        max_tags in mirror_bound(),
        clocks in clock_offsets(),
        outbox in outbox_bound(),
    ) {
        let release = if before_16_4 {
            NextRelease::new(16, 3, 8, false)
        } else {
            NextRelease::new(16, 4, 6, false)
        };
        run_up_bounded(push, release, leases, (max_tags, outbox), clocks, &ops)?;
    }
}

proptest! {
    // Regenerations that overlap in one process: several requests regenerating
    // one `fetch` key, with leases or without (or after the lease wait), and regenerations
    // Next began on its second look of a late answer, raced by revalidations.
    #![proptest_config(ProptestConfig { cases: cases(1024), ..ProptestConfig::default() })]

    #[test]
    fn overlapping_regenerations_are_stamped_with_their_own_reads(
        push in any::<bool>(),
        leases in any::<bool>(),
        ops in proptest::collection::vec(regen_op(), 1..120),
        max_tags in mirror_bound(),
        clocks in clock_offsets(),
        outbox in outbox_bound(),
    ) {
        let bounds = (max_tags, outbox);
        run_up_bounded(push, NextRelease::new(16, 4, 6, false), leases, bounds, clocks, &ops)?;
    }
}

proptest! {
    // Values written back unchanged when a regeneration fails (Next 16.5), and a request's two
    // reads of one `fetch` entry before its write: a value made before a revalidation is never
    // served fresh after it, and a written-back value only time had made stale is not regenerated
    // again before Next's retry delay.
    #![proptest_config(ProptestConfig { cases: cases(1024), ..ProptestConfig::default() })]

    #[test]
    fn written_back_values_and_a_requests_second_read_keep_the_contract(
        push in any::<bool>(),
        leases in any::<bool>(),
        life in 0u8..4,
        ops in proptest::collection::vec(write_back_op(), 1..120),
        max_tags in mirror_bound(),
        clocks in clock_offsets(),
        outbox in outbox_bound(),
    ) {
        // The page exists: a read that finds it stale, by time or a tag, is a few steps away.
        let mut all = vec![Op::Rewrite { inst: 0, life, held: false }];
        all.extend(ops);
        let bounds = (max_tags, outbox);
        run_up_bounded(push, NextRelease::new(16, 5, 0, false), leases, bounds, clocks, &all)?;
    }
}

proptest! {
    // A bounded mirror (1 or 2 records) gives back what it folded, and every instance judges
    // entries by it, through the failovers and restarts that lose it elsewhere.
    #![proptest_config(ProptestConfig { cases: cases(1024), ..ProptestConfig::default() })]

    #[test]
    fn a_bounded_mirror_gives_back_what_it_folded_to_every_instance(
        ops in proptest::collection::vec(fold_op(), 1..60),
        max_tags in prop_oneof![Just(1u32), Just(2)],
        outbox in outbox_bound(),
    ) {
        pulling_history_settles(&ops, max_tags, outbox, ALIGNED)?;
    }
}

proptest! {
    // The meta hash lost alone: records without an epoch until a merge, an update or a page
    // write makes it anew over the old log, whose versions go on above its scores. Every
    // revalidation resolved before or after it reaches every instance that pulls.
    #![proptest_config(ProptestConfig { cases: cases(2048), ..ProptestConfig::default() })]

    #[test]
    fn a_state_that_lost_its_meta_hash_alone_keeps_the_contract(
        ops in proptest::collection::vec(
            prop_oneof![8 => fold_op(), 1 => Just(Op::LoseMeta), 1 => lose_key()],
            1..60,
        ),
        max_tags in prop_oneof![Just(1u32), Just(2)],
    ) {
        let mut w = World::new(false, None, true, max_tags);
        for op in &ops {
            w.apply(op)?;
        }
        w.finish_requests()?;
        w.settle()?;
        follows_in_part(&mut w)?;
    }
}

proptest! {
    // The meta hash lost alone in the other histories: following by push, where
    // no announcement tells of the loss nor of the merge that makes the meta hash anew, and
    // with page writes (mixed histories), which give the state an epoch without a version.
    #![proptest_config(ProptestConfig { cases: cases(1024), ..ProptestConfig::default() })]

    #[test]
    fn following_by_push_a_state_that_lost_its_meta_hash_alone_keeps_the_contract(
        ops in proptest::collection::vec(
            prop_oneof![12 => op(true), 1 => Just(Op::LoseMeta), 1 => lose_key()],
            1..80,
        ),
        max_tags in mirror_bound(),
    ) {
        let mut w = World::new(true, None, true, max_tags);
        for op in &ops {
            w.apply(op)?;
        }
        w.finish_requests()?;
        w.settle()?;
        follows_in_part(&mut w)?;
    }

    #[test]
    fn page_writes_over_a_state_that_lost_its_meta_hash_alone_keep_the_contract(
        push in any::<bool>(),
        leases in prop::bool::weighted(0.75),
        ops in proptest::collection::vec(
            prop_oneof![20 => mixed_op(), 1 => Just(Op::LoseMeta), 1 => lose_key()],
            1..160,
        ),
        max_tags in mirror_bound(),
    ) {
        let mut w = World::new(push, Some(NextRelease::new(16, 4, 6, false)), leases, max_tags);
        for i in 0..w.insts.len() {
            w.apply(&Op::Subscribe { inst: i })?;
            w.refresh(i);
        }
        for op in &ops {
            w.apply(op)?;
        }
        w.finish_requests()?;
        w.settle()?;
        follows_in_part(&mut w)?;
    }
}

proptest! {
    // Page rewrites followed by push (docs/decisions/0031): the tier serves the page while
    // caught up, so only the announcements, the race rule and the gap rule keep a rewrite
    // from being missed past the bound.
    #![proptest_config(ProptestConfig { cases: cases(4096), ..ProptestConfig::default() })]

    #[test]
    fn following_by_push_a_page_rewrite_reaches_every_tier_within_the_bound(
        ops in proptest::collection::vec(page_op(), 1..60),
        max_tags in mirror_bound(),
    ) {
        page_rewrite_history_settles(&ops, max_tags)?;
    }
}

proptest! {
    // The page rewrites of the property above over what erases or rewinds the page-write
    // sequence: flushes (entries go too), the meta hash lost alone (entries stay),
    // snapshots and failovers, each far more often than there.
    #![proptest_config(ProptestConfig { cases: cases(2048), ..ProptestConfig::default() })]

    #[test]
    fn following_by_push_a_page_rewrite_survives_flushes_failovers_and_a_lost_meta_hash(
        ops in proptest::collection::vec(
            prop_oneof![
                24 => page_op(),
                2 => Just(Op::LoseMeta),
                1 => lose_key(),
                2 => Just(Op::Flush),
                1 => Just(Op::Snapshot),
                1 => Just(Op::Failover),
            ],
            1..80,
        ),
        max_tags in mirror_bound(),
    ) {
        page_rewrite_history_settles(&ops, max_tags)?;
    }
}

/// A history the singular-handler property found (push, 16.4) once seeds changed its schedules:
/// instance 2's rewrite and a regeneration of instance 1 stored at the same ms, with the same
/// tags and lifetime. The check tells page writes by their bytes, so before a render's body
/// carried its write's own number it took instance 1's unsent write (breaker open, kept in its
/// tier) for instance 2's, which instance 1's own older rewrite had replaced in Redis, and
/// failed the outage-copy rule on a correct answer.
#[test]
fn two_renders_of_one_ms_are_told_apart() -> Result<(), TestCaseError> {
    use Op::*;
    let read = IncRead {
        inst: 1,
        key: 0,
        soft: 0,
        caches: false,
        revalidate: 0,
        on_demand: false,
    };
    let step = |pick| Step { pick };
    let held = Rewrite {
        inst: 0,
        life: 0,
        held: true,
    };
    let mut ops = vec![
        Rewrite {
            inst: 2,
            life: 0,
            held: false,
        },
        Revalidate {
            inst: 1,
            tags: 3,
            mode: 0,
        },
        Stall { ms: 999 },
        read.clone(),
        read.clone(),
        step(0),
        read.clone(),
    ];
    ops.extend([0, 0, 0, 0, 6, 2].map(step));
    ops.push(LoseReply { inst: 0 });
    ops.extend([2, 6, 2, 0].map(step));
    ops.push(held.clone());
    ops.extend([3, 2].map(step));
    ops.push(held);
    ops.extend([4, 1, 6].map(step));
    ops.push(IncWrite {
        pick: 0,
        tags: 0,
        life: 0,
    });
    ops.push(Revalidate {
        inst: 1,
        tags: 1,
        mode: 0,
    });
    ops.extend([0, 3, 3, 0, 5, 7].map(step));
    ops.push(Rewrite {
        inst: 2,
        life: 3,
        held: false,
    });
    ops.push(IncWrite {
        pick: 0,
        tags: 1,
        life: 0,
    });
    ops.push(step(1));
    ops.push(read.clone());
    ops.push(step(4));
    ops.push(IncWrite {
        pick: 0,
        tags: 0,
        life: 3,
    });
    ops.push(read);
    run_up(true, NextRelease::new(16, 4, 6, false), true, &ops)
}

/// Runs `ops` on a fleet that has been up: each instance has loaded the tag state (a restart
/// begins cold) and, following by push, subscribed first; then lets every request finish and
/// the fleet settle.
fn run_up(push: bool, release: NextRelease, leases: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    run_up_bounded(
        push,
        release,
        leases,
        (DEFAULT_MAX_TAGS, default_outbox()),
        ALIGNED,
        ops,
    )
}

/// [`run_up`] with every process's tag mirror bounded to `max_tags` records and its outbox to
/// `outbox` revalidations, and its clock `clocks` apart from the wall clock.
fn run_up_bounded(
    push: bool,
    release: NextRelease,
    leases: bool,
    (max_tags, outbox): (u32, u32),
    clocks: Clocks,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let mut w = World::new(push, Some(release), leases, max_tags);
    w.outboxes(outbox);
    w.clocks(clocks);
    for i in 0..w.insts.len() {
        w.apply(&Op::Subscribe { inst: i })?;
        w.refresh(i);
    }
    for op in ops {
        w.apply(op)?;
    }
    w.finish_requests()?;
    w.settle()
}

/// A page read (`/p`, no soft tags, for a response) by instance `inst`, as the hand-written
/// histories below make it.
fn page_read(inst: usize) -> Op {
    Op::IncRead {
        inst,
        key: 0,
        soft: 0,
        caches: false,
        revalidate: 0,
        on_demand: false,
    }
}

/// Eight steps of the oldest task: enough for a read or a write to end.
fn steps() -> impl Iterator<Item = Op> {
    std::iter::repeat(Op::Step { pick: 0 }).take(8)
}

/// A flush loses a page write together with the value it replaced: instance 2 keeps
/// the page in its tier, misses the announcement of the rewrite (its channel dropped,
/// unnoticed), then Redis is flushed and nothing writes the page again. Its next pull finds
/// no page write at all (pver 0, epoch ''): a gap, so the old copy never serves again. The
/// check counts the rewrite as replacing the old value though both are gone (before, a lost
/// value was replaced only by writes made after the loss, and this read went unjudged).
#[test]
fn a_page_rewrite_lost_to_a_flush_still_replaces_the_value_it_replaced() -> Result<(), TestCaseError>
{
    use Op::*;
    let mut ops = vec![
        Rewrite {
            inst: 0,
            life: 0,
            held: false,
        },
        Deliver { inst: 0 },
        Deliver { inst: 1 },
        Deliver { inst: 2 },
        page_read(2),
    ];
    ops.extend(steps());
    ops.extend([
        DropChannel { inst: 2 },
        Rewrite {
            inst: 1,
            life: 0,
            held: false,
        },
    ]);
    ops.extend(steps());
    ops.extend([Flush, Advance { ms: 1100 }, Tick { inst: 2 }, page_read(2)]);
    ops.extend(steps());
    run_up(true, NextRelease::new(16, 4, 6, false), true, &ops)
}

/// A gap the write-back property found (seed `23da222e` in freshness_sim.proptest-regressions):
/// following by push, instance 1 reads the page, stale by time, within the bound of a
/// revalidation (`expire`) whose announcement has not reached it, and serves it stale rather
/// than as a miss (the bound excuses that read). The regeneration fails, and Next 16.5 writes
/// the page back: the engine stamped it with the read's start (only time made it stale, as far
/// as instance 1 knew), after the revalidation, so instance 0, which knows the revalidation,
/// served the old page fresh, past the bound. Now the entry written back keeps when the value
/// was made for its tags (`EntryMeta::made_at`).
#[test]
fn a_page_written_back_by_an_instance_that_missed_a_revalidation_stays_fresh(
) -> Result<(), TestCaseError> {
    use Op::*;
    let mut ops = vec![
        Rewrite {
            inst: 0,
            life: 2,
            held: false,
        },
        // Past the page's 3 s, and instance 1 has pulled just now.
        Advance { ms: 3500 },
        Tick { inst: 1 },
        Revalidate {
            inst: 2,
            tags: 4,
            mode: 0,
        },
        Advance { ms: 5 },
        page_read(1),
    ];
    ops.extend(steps());
    ops.push(IncWriteBack { pick: 0 });
    ops.extend(steps());
    ops.push(page_read(0));
    ops.extend(steps());
    run_up(true, NextRelease::new(16, 5, 0, false), false, &ops)
}

/// A gap the second-read draw found (seed `35d7eb07` in freshness_sim.proptest-regressions,
/// excused until fixed): a request reads the `fetch` entry fresh, the
/// answer reaches Next past the request's `revalidate` (a stalled event loop) and Next refetches
/// on its second look; a revalidation of the entry's tag follows, and the same request reads
/// the entry again (a page calling one `fetch` twice), now stale, which joins the refetch in
/// flight (Next's `pendingRevalidates`). The handler folds both answers; the core stamped the
/// refetch's write with the stale read's start (a start won over a fresh answer), after the
/// revalidation, though its data is older: another instance served it fresh. Now the earlier
/// of the two once the fresh answer is due (`Own::counting`).
#[test]
fn a_request_that_reads_a_fetch_entry_again_stamps_its_refetch_late() -> Result<(), TestCaseError> {
    use Op::*;
    let read = |inst, revalidate| IncRead {
        inst,
        key: 1,
        soft: 0,
        caches: true,
        revalidate,
        on_demand: false,
    };
    let write = IncWrite {
        pick: 0,
        tags: 1,
        life: 0,
    };
    let mut ops = vec![read(0, 0)];
    ops.extend(steps());
    ops.push(write.clone());
    ops.extend(steps());
    ops.push(Advance { ms: 100 });
    // Past the request's own 3 s when Next gets it: Next refetches on its own.
    ops.push(LateAnswer { inst: 0, ms: 3001 });
    ops.push(read(0, 1));
    ops.extend(steps());
    ops.push(Advance { ms: 10 });
    ops.push(Revalidate {
        inst: 1,
        tags: 1,
        mode: 0,
    });
    ops.push(Advance { ms: 10 });
    // The second request's second read (the first request's reads are written).
    ops.push(IncReadAgain { pick: 1 });
    ops.extend(steps());
    ops.push(write);
    ops.extend(steps());
    ops.push(read(2, 0));
    ops.extend(steps());
    run_up(false, NextRelease::new(16, 5, 0, false), false, &ops)
}

/// A history the singular-handler property found (pulling, 16.4): instance 0's revalidation of
/// `b` is lost by a flush; instance 0's load of the new state begins at version 1, and a later
/// page shows instance 2's `b` from version 2, so the load's comparison takes `b` for present.
/// A failover then returns Redis to version 1 with the same id, so a catch-up refresh that
/// names only the load's version reads as consistent; with instance 2 restarted, `b` would be
/// gone everywhere but instance 0's mirror unless the catch-up names the newest version the
/// load saw, so the failover below it answers in full and the comparison gives `b` back.
#[test]
fn a_load_does_not_vouch_for_an_update_newer_than_its_start() -> Result<(), TestCaseError> {
    use Op::*;
    let step = |pick| Step { pick };
    let expire = |inst, tags| Revalidate {
        inst,
        tags,
        mode: 0,
    };
    let write = Write {
        inst: 0,
        key: 0,
        tags: 0,
        began: 0,
    };
    let read = Read {
        inst: 0,
        key: 0,
        soft: 0,
        caches: false,
    };
    let mut ops = vec![
        expire(0, 2),
        Flush,
        IncRead {
            inst: 1,
            key: 0,
            soft: 0,
            caches: false,
            revalidate: 0,
            on_demand: false,
        },
        expire(0, 5),
        read.clone(),
        step(1),
        write.clone(),
        write,
        step(3),
        Snapshot,
        read,
    ];
    ops.extend([3, 3, 0, 0].map(step));
    ops.push(expire(2, 2));
    ops.extend([0, 0].map(step));
    ops.push(Failover);
    ops.push(Restart { inst: 2 });
    run_up(false, NextRelease::new(16, 4, 6, false), true, &ops)
}

/// The first gap found by hand (several requests writing one `fetch` key), as the property finds it
/// when the host passes no read of its own (`Own::NONE`, as before 7d9023d): two requests of one
/// process find the `fetch` entry missing and each regenerates it (leases off). The later request's
/// write comes first and takes the earlier read's start from the per-key table; the earlier
/// request's write then has none, is stamped with its write time, and a revalidation made during
/// its fetch leaves it fresh.
#[test]
fn two_requests_regenerating_one_fetch_key_are_stamped_with_their_own_reads(
) -> Result<(), TestCaseError> {
    use Op::*;
    let read = |inst| IncRead {
        inst,
        key: 1,
        soft: 0,
        caches: true,
        revalidate: 0,
        on_demand: false,
    };
    let write = |pick| IncWrite {
        pick,
        tags: 1,
        life: 0,
    };
    let mut ops = vec![read(0)];
    ops.extend(steps());
    ops.push(Advance { ms: 100 });
    ops.push(Revalidate {
        inst: 1,
        tags: 1,
        mode: 0,
    });
    ops.push(Advance { ms: 100 });
    ops.push(read(0));
    ops.extend(steps());
    ops.push(write(1));
    ops.extend(steps());
    ops.push(write(0));
    ops.extend(steps());
    ops.push(read(1));
    run_up(false, NextRelease::new(16, 4, 6, false), false, &ops)
}

/// The second gap found by hand, Next's second look (docs/incremental.md, "fleetcache decides when
/// an entry is due"): a fresh page answer reaches Next 3.5 s late (an event-loop stall), past its
/// `revalidate` of 3 s, and Next regenerates it on its own. Another request of the process then
/// finds the page expired by a revalidation made after that regeneration began, and joins it.
/// Without the answer's own read handed back with the write, the per-key table's start (the later
/// request's read) stamps the write, after the revalidation it missed.
#[test]
fn a_regeneration_next_began_on_its_second_look_is_stamped_with_its_read(
) -> Result<(), TestCaseError> {
    use Op::*;
    let read = |inst| IncRead {
        inst,
        key: 0,
        soft: 0,
        caches: true,
        revalidate: 0,
        on_demand: false,
    };
    let mut ops = vec![Rewrite {
        inst: 0,
        life: 2,
        held: false,
    }];
    ops.push(LateAnswer { inst: 1, ms: 3500 });
    ops.push(read(1));
    ops.extend(steps());
    ops.push(Advance { ms: 100 });
    ops.push(Revalidate {
        inst: 2,
        tags: 4,
        mode: 0,
    });
    ops.push(Advance { ms: 100 });
    ops.push(read(1));
    ops.extend(steps());
    ops.push(IncWrite {
        pick: 0,
        tags: 0,
        life: 2,
    });
    ops.extend(steps());
    ops.push(read(2));
    run_up(false, NextRelease::new(16, 4, 6, false), false, &ops)
}

/// (Failed at 2504c3a, pulling per request.) The write-back stamp
/// (`min(read start, complete_before)`) was sound only if the mirror held every revalidation
/// *stamped* before that time, but a pull holds those that had *reached Redis* when it began.
/// A revalidation stamped earlier and still queued in its instance's outbox (its send failed;
/// the retry replays it with its original time) is not in Redis when the writer pulls: the
/// page written back was stamped after the revalidation's time, and once the revalidation
/// reached Redis another instance served the old page fresh (until the written-back
/// `revalidate` ran out). Now the entry keeps when the value was made for its tags
/// (`EntryMeta::made_at`), and no pull needs to have seen the revalidation.
#[test]
fn a_page_written_back_before_a_queued_revalidation_reaches_redis_stays_fresh(
) -> Result<(), TestCaseError> {
    use Op::*;
    let mut ops = vec![
        Rewrite {
            inst: 0,
            life: 2,
            held: false,
        },
        // Past the page's 3 s. Redis is out of reach when instance 2 revalidates: the update
        // waits in its outbox, stamped now.
        Advance { ms: 3500 },
        Down,
        Revalidate {
            inst: 2,
            tags: 4,
            mode: 0,
        },
        Advance { ms: 5 },
        Up,
        // Instance 1 pulls (Redis lacks the revalidation), serves the page stale by time, its
        // regeneration fails and Next writes the page back.
        page_read(1),
    ];
    ops.extend(steps());
    ops.push(IncWriteBack { pick: 0 });
    ops.extend(steps());
    // Instance 2's retry timer gives the revalidation to Redis once its breaker lets it
    // (1 s): resolved, within the written-back page's 3 s.
    ops.push(Advance { ms: 1500 });
    ops.push(Tick { inst: 2 });
    ops.push(Advance { ms: 5 });
    // A read that begins after it resolved, and pulls it.
    ops.push(page_read(0));
    ops.extend(steps());
    run_up(false, NextRelease::new(16, 5, 0, false), false, &ops)
}

/// The path by which only [`FOLDED_TAG`] carries a revalidation to another process: instance 0,
/// its mirror bounded to one record, expires `a`, then `b`, which folds `a`; a failover to a
/// state from before both loses them in Redis, and instance 0's next load gives `a` back only
/// within the merge of what it folded, as the record of [`FOLDED_TAG`]. Instance 1, which never
/// learnt of `a`, then loads that state and reads an entry tagged `a` made before the
/// revalidation: only [`FOLDED_TAG`]'s record (`TagMirror::evaluate` consulting it, the mirror
/// keeping it under its own name) makes it a miss. The random histories rarely reach this
/// (a snapshot, a revalidation folded by a second one, a failover and a read of an entry
/// from before the snapshot by an instance that had not learnt it, in that order).
#[test]
fn a_revalidation_folded_then_lost_by_redis_reaches_another_instance_as_folded_tag(
) -> Result<(), TestCaseError> {
    use Op::*;
    let mut w = World::new(false, None, true, 1);
    let mut ops = vec![Write {
        inst: 2,
        key: 0,
        tags: 1,
        began: 0,
    }];
    ops.extend(steps());
    ops.extend([
        Snapshot,
        Advance { ms: 1 },
        Revalidate {
            inst: 0,
            tags: 1,
            mode: 0,
        },
        Advance { ms: 1 },
        Revalidate {
            inst: 0,
            tags: 2,
            mode: 0,
        },
        Failover,
    ]);
    // A load takes a refresh call per page (two tags a page), then one to catch up; the
    // records it found missing are given back after it.
    ops.extend((0..4).map(|_| Tick { inst: 0 }));
    // Instance 1 loads that state before it reads (a read of an instance still loading is a
    // miss whatever the tags say).
    ops.extend((0..4).map(|_| Tick { inst: 1 }));
    ops.push(Read {
        inst: 1,
        key: 0,
        soft: 0,
        caches: true,
    });
    ops.extend(steps());
    for op in &ops {
        w.apply(op)?;
    }
    prop_assert!(
        w.redis.tags.records.contains_key(FOLDED_TAG) && !w.redis.tags.records.contains_key("a"),
        "the history no longer reaches its point: Redis holds {:?}",
        w.redis.tags.records.keys().collect::<Vec<_>>()
    );
    w.finish_requests()?;
    w.settle()
}

/// (The bounded-mirror property found it at once, bound 1.) Instance 2 revalidates
/// `a` and `b` (one of them folded at once), Redis is flushed, and instance 2 revalidates `b`
/// and `_N_T_/p`. That update's reply names the new state, and the mirror forgets the epoch it
/// followed (`apply_update_reply`), so its load of the new state is not `replaced`; the state
/// holds every record the mirror holds exactly, so there is no evidence of a
/// loss and the folded `a` is never given back, though no other instance knew it. The same
/// holds after a page that finds the state rolled back (`apply_page` clears the epoch too).
#[test]
fn a_flush_seen_through_an_update_reply_still_gives_back_what_was_folded(
) -> Result<(), TestCaseError> {
    use Op::*;
    let mut w = World::new(false, None, true, 1);
    for op in [
        Revalidate {
            inst: 2,
            tags: 3,
            mode: 1,
        },
        Flush,
        Revalidate {
            inst: 2,
            tags: 6,
            mode: 1,
        },
    ] {
        w.apply(&op)?;
    }
    w.finish_requests()?;
    w.settle()
}

/// A failover that reuses a version and is passed by two more updates before an
/// instance refreshes is answered in full at a later version (the script found the id it
/// names changed), within the 1,024 versions an id is kept, and the mirror does not count it
/// as `replaced`. Instance 1 revalidates `b` while Redis is down; instance 0 revalidates `a`
/// 1.5 s later, which reaches Redis first (version 1); `b` follows from the outbox (version
/// 2), stamped before `a`, so every mirror (bound 1) folds `b` and holds `a` exactly. A
/// failover loses version 2, instance 2 revalidates `_N_T_/p` twice (versions 2 and 3): every
/// mirror's full load finds every exact record it holds, and `b`, which instances 0 and 1
/// knew, is lost to the fleet. Not over 1,024 versions behind, not a replay after an
/// outage of any length: the exception docs/failures.md describes is wider than it says.
#[test]
fn a_failover_passed_by_two_updates_still_gives_back_what_was_folded() -> Result<(), TestCaseError>
{
    use Op::*;
    let mut w = World::new(false, None, true, 1);
    let ops = [
        Tick { inst: 0 },
        Tick { inst: 1 },
        Tick { inst: 2 },
        Down,
        Revalidate {
            inst: 1,
            tags: 2,
            mode: 0,
        },
        Up,
        Advance { ms: 1500 },
        Revalidate {
            inst: 0,
            tags: 1,
            mode: 0,
        },
        Snapshot,
        Tick { inst: 1 },
        Tick { inst: 0 },
        Tick { inst: 2 },
        Failover,
        Advance { ms: 1 },
        Revalidate {
            inst: 2,
            tags: 4,
            mode: 0,
        },
        Advance { ms: 1 },
        Revalidate {
            inst: 2,
            tags: 4,
            mode: 0,
        },
    ];
    for op in &ops {
        w.apply(op)?;
    }
    prop_assert!(
        w.redis.tags.records.contains_key("a") && !w.redis.tags.records.contains_key("b"),
        "the history no longer reaches its point: Redis holds {:?}",
        w.redis.tags.records.keys().collect::<Vec<_>>()
    );
    w.finish_requests()?;
    w.settle()
}

/// A step of [`one_mirror_history`]: one process's mirror (the reader) against the model of
/// Redis, closer to the tag state than the histories above (no requests, no entries), so that
/// replies in parts, the failovers between them and the reader's own updates meet in a few
/// steps.
#[derive(Clone, Debug)]
enum MirrorOp {
    /// Another process revalidates these tags (bit mask over [`TAGS`]).
    Update {
        tags: u8,
    },
    /// The reader revalidates these tags: its update goes out (runs and is answered later).
    Own {
        tags: u8,
    },
    /// The reader plans a pull, unless one is out: the hosts share one ("Sharing",
    /// docs/internals.md).
    Pull,
    /// The `pick`th call out that has not run runs.
    Run {
        pick: usize,
    },
    /// The `pick`th call that ran is answered.
    Answer {
        pick: usize,
    },
    /// The `pick`th call out is lost (it ran or not).
    Lose {
        pick: usize,
    },
    /// A pull planned, run and answered at once, unless a pull is out.
    Sync,
    Snapshot,
    /// A failover to the state kept by the last `Snapshot`.
    Failover,
    Flush,
    /// The meta hash is lost alone (as [`Op::LoseMeta`]).
    LoseMeta,
    /// The state hash or the log is lost alone (as [`Op::LoseKey`]).
    LoseKey {
        log: bool,
    },
}

/// [`mirror_op`] weighted toward keys lost and brought back while a load is in pages: losses
/// of one key, snapshots and failovers, pulls stepped one call at a time.
fn mirror_loss_op() -> impl Strategy<Value = MirrorOp> {
    prop_oneof![
        4 => (1u8..8).prop_map(|tags| MirrorOp::Update { tags }),
        1 => (1u8..8).prop_map(|tags| MirrorOp::Own { tags }),
        3 => Just(MirrorOp::Pull),
        4 => (0..2usize).prop_map(|pick| MirrorOp::Run { pick }),
        4 => (0..2usize).prop_map(|pick| MirrorOp::Answer { pick }),
        2 => Just(MirrorOp::Sync),
        3 => Just(MirrorOp::Snapshot),
        3 => Just(MirrorOp::Failover),
        1 => Just(MirrorOp::Flush),
        2 => Just(MirrorOp::LoseMeta),
        4 => any::<bool>().prop_map(|log| MirrorOp::LoseKey { log }),
    ]
}

fn mirror_op() -> impl Strategy<Value = MirrorOp> {
    prop_oneof![
        6 => (1u8..8).prop_map(|tags| MirrorOp::Update { tags }),
        2 => (1u8..8).prop_map(|tags| MirrorOp::Own { tags }),
        6 => Just(MirrorOp::Pull),
        6 => (0..4usize).prop_map(|pick| MirrorOp::Run { pick }),
        6 => (0..4usize).prop_map(|pick| MirrorOp::Answer { pick }),
        1 => (0..4usize).prop_map(|pick| MirrorOp::Lose { pick }),
        3 => Just(MirrorOp::Sync),
        2 => Just(MirrorOp::Snapshot),
        2 => Just(MirrorOp::Failover),
        1 => Just(MirrorOp::Flush),
        1 => Just(MirrorOp::LoseMeta),
        1 => any::<bool>().prop_map(|log| MirrorOp::LoseKey { log }),
    ]
}

/// A call of the reader out: an update of its own or a pull, with its reply and the state
/// Redis held when it ran, once it ran.
struct MirrorCall {
    call: ScriptCall,
    own: bool,
    ran: Option<(Vec<u8>, TagState)>,
}

/// The model's script of `call`.
fn run_script(redis: &mut TagState, call: &ScriptCall) -> Vec<u8> {
    match call.script.name {
        "tag_update" => redis.update(&call.args),
        "tag_refresh" => redis.refresh(&call.args),
        "tag_page" => redis.page(&call.args),
        other => panic!("the reader does not run {other}"),
    }
}

/// Runs `ops` on a reader bounded to `max_tags` records, refresh replies of at most
/// `part_limit` changed tags and `window` version ids kept. Whenever a refresh reply leaves the
/// reader synced, it knows every record of the state that reply was taken from (the records
/// only grow: so it does from then on). At the end (calls out lost, an update making the meta
/// hash anew if it was lost), it syncs and is answered in part within a few pulls.
fn one_mirror_history(
    ops: &[MirrorOp],
    max_tags: u32,
    part_limit: usize,
    window: u64,
) -> Result<(), TestCaseError> {
    PART_LIMIT.with(|p| p.set(part_limit));
    ID_WINDOW.with(|w| w.set(window));
    let mut redis = TagState::default();
    let mut kept: Option<TagState> = None;
    let mut writer = Engine::new(config(None, false, DEFAULT_MAX_TAGS)).unwrap();
    let mut reader = Engine::new(config(None, false, max_tags)).unwrap();
    let mut out: Vec<MirrorCall> = Vec::new();
    let mut trace: Vec<String> = Vec::new();
    let rev = Revalidation::Expire;
    let mut now = T0;
    let answer = |reader: &mut Engine,
                  c: MirrorCall,
                  now: f64,
                  trace: &mut Vec<String>|
     -> Result<(), TestCaseError> {
        let (reply, held) = c.ran.expect("answered after it ran");
        trace.extend(take_scan_notes());
        if c.own {
            reader.apply_update_reply(&reply).unwrap();
            return Ok(());
        }
        reader.apply_refresh(&reply, Millis(now)).unwrap();
        let m = reader.mirror();
        trace.push(format!(
            "  answered {:?}: v{} synced {} loading {} part {:?}",
            c.call.args,
            m.version(),
            m.is_synced(),
            m.is_loading(),
            m.part_check()
        ));
        if c.call.script.name == "tag_refresh" && m.is_synced() && !m.is_loading() {
            for (tag, record) in &held.records {
                let known = m.known(tag).unwrap_or_default();
                prop_assert!(
                    known.covers(record),
                    "{}\nthe synced reader lacks {tag}: it knows {known:?}, the state it was \
                     answered from held {record:?}",
                    trace.join("\n")
                );
            }
        }
        Ok(())
    };
    for (step, op) in ops.iter().enumerate() {
        now += 1.0;
        trace.extend(take_scan_notes());
        trace.push(format!("{op:?} (redis v{})", redis.ver));
        match *op {
            MirrorOp::Update { tags } => {
                let id = format!("w{step}");
                let call = writer
                    .plan_tag_update(&mask(tags), &rev, Millis(now), &id)
                    .unwrap();
                run_script(&mut redis, &call);
            }
            MirrorOp::Own { tags } => {
                let id = format!("r{step}");
                let call = reader
                    .plan_tag_update(&mask(tags), &rev, Millis(now), &id)
                    .unwrap();
                out.push(MirrorCall {
                    call,
                    own: true,
                    ran: None,
                });
            }
            MirrorOp::Pull => {
                if out.iter().all(|c| c.own) {
                    let call = reader.plan_tag_pull(Millis(now));
                    out.push(MirrorCall {
                        call,
                        own: false,
                        ran: None,
                    });
                }
            }
            MirrorOp::Run { pick } => {
                let idle: Vec<usize> = (0..out.len()).filter(|i| out[*i].ran.is_none()).collect();
                if !idle.is_empty() {
                    let i = idle[pick % idle.len()];
                    let reply = run_script(&mut redis, &out[i].call);
                    out[i].ran = Some((reply, redis.clone()));
                }
            }
            MirrorOp::Answer { pick } => {
                let ran: Vec<usize> = (0..out.len()).filter(|i| out[*i].ran.is_some()).collect();
                if !ran.is_empty() {
                    let c = out.remove(ran[pick % ran.len()]);
                    answer(&mut reader, c, now, &mut trace)?;
                }
            }
            MirrorOp::Lose { pick } => {
                if !out.is_empty() {
                    out.remove(pick % out.len());
                }
            }
            MirrorOp::Sync => {
                if out.iter().all(|c| c.own) {
                    let call = reader.plan_tag_pull(Millis(now));
                    let reply = run_script(&mut redis, &call);
                    let c = MirrorCall {
                        call,
                        own: false,
                        ran: Some((reply, redis.clone())),
                    };
                    answer(&mut reader, c, now, &mut trace)?;
                }
            }
            MirrorOp::Snapshot => kept = Some(redis.clone()),
            MirrorOp::Failover => {
                if let Some(k) = &kept {
                    redis = on_another_server(k.clone());
                }
            }
            MirrorOp::Flush => {
                redis = TagState {
                    server: redis.server,
                    ..TagState::default()
                }
            }
            MirrorOp::LoseMeta => redis.lose_meta(),
            MirrorOp::LoseKey { log } => redis.lose_key(log),
        }
    }
    out.clear();
    pause_scan_tape();
    let call = writer
        .plan_tag_update(&["a"], &rev, Millis(now), "w-end")
        .unwrap();
    run_script(&mut redis, &call);
    // A load takes a pull per page and one to catch up; a lost update of the reader's own,
    // two loads.
    for _ in 0..20 {
        let ready = reader.mirror().is_synced() && !reader.mirror().is_loading();
        let call = reader.plan_tag_pull(Millis(now));
        let reply = run_script(&mut redis, &call);
        let flag = netstring::decode(&reply).unwrap()[3].to_vec();
        let c = MirrorCall {
            call,
            own: false,
            ran: Some((reply, redis.clone())),
        };
        answer(&mut reader, c, now, &mut trace)?;
        if ready && flag == b"0" {
            return Ok(());
        }
    }
    Err(TestCaseError::fail(format!(
        "{}\nthe reader is not answered in part after settling",
        trace.join("\n")
    )))
}

/// The one-mirror histories' mirror bound, part limit and id window: mostly unbounded mirrors,
/// parts of one tag and the scripts' window of 1,024.
fn one_mirror_bounds() -> impl Strategy<Value = (u32, usize, u64)> {
    (
        prop_oneof![Just(DEFAULT_MAX_TAGS), Just(1u32), Just(2)],
        prop_oneof![3 => Just(1usize), 1 => 2usize..4],
        prop_oneof![3 => Just(1024u64), 1 => Just(3)],
    )
}

proptest! {
    // Fast: over ten thousand histories a second (release). Before a part named the version
    // it was cut from, each of thirty runs failed (most within about a thousand histories).
    #![proptest_config(ProptestConfig { cases: cases(8192), ..ProptestConfig::default() })]

    /// A reader answered in parts, failovers between them (one that lost the later change of
    /// a tag a part left out, and kept the part's version), its own updates answered in any
    /// order beside its pulls, flushes and a lost meta hash: whenever a refresh leaves it
    /// synced, it knows every record of the state that refresh was answered from.
    #[test]
    fn a_synced_mirror_knows_the_state_its_refresh_was_answered_from(
        ops in proptest::collection::vec(mirror_op(), 1..60),
        (max_tags, part_limit, window) in one_mirror_bounds(),
    ) {
        one_mirror_history(&ops, max_tags, part_limit, window)?;
    }

    /// The same, over histories of keys lost and brought back ([`mirror_loss_op`]).
    #[test]
    fn across_lost_keys_a_synced_mirror_knows_the_state_its_refresh_was_answered_from(
        ops in proptest::collection::vec(mirror_loss_op(), 1..30),
        (max_tags, part_limit, window) in one_mirror_bounds(),
    ) {
        one_mirror_history(&ops, max_tags, part_limit, window)?;
    }
}

/// A failover back below the reader's version, then updates that take that version again
/// (another update, tag `_N_T_/p`) and push its id out of a window of 3, then an update of
/// the reader's own: that update holding says nothing of what came before it, so the known
/// version is not spared its check (the anchor is a load's last page only,
/// `TagMirror::anchor`), and the reader loads the state instead of missing `_N_T_/p`. With the
/// reader's last own update as the anchor, the reader was answered in part and lacked it.
#[test]
fn an_own_update_holding_does_not_spare_a_version_a_failover_gave_to_another_update(
) -> Result<(), TestCaseError> {
    use MirrorOp::{Answer, Failover, Own, Pull, Run, Snapshot, Sync, Update};
    let ops = [
        Update { tags: 1 },
        Sync,
        Snapshot,
        Update { tags: 2 },
        Sync,
        Failover,
        Update { tags: 4 },
        Update { tags: 1 },
        Update { tags: 1 },
        Own { tags: 1 },
        Run { pick: 0 },
        Answer { pick: 0 },
        Pull,
        Run { pick: 0 },
        Answer { pick: 0 },
    ];
    one_mirror_history(&ops, DEFAULT_MAX_TAGS, PART_TAGS, 3)
}

/// A step of [`pushed_mirror_history`]: one process's mirror (the reader) that follows the
/// state by push, against the model of Redis and of the channel to it.
#[derive(Clone, Debug)]
enum PushOp {
    /// Another process revalidates these tags (bit mask over [`TAGS`]); its announcement is
    /// published to the reader's channel while that delivers.
    Update {
        tags: u8,
    },
    /// The reader revalidates these tags: its update goes out (runs and is answered later).
    Own {
        tags: u8,
    },
    /// The next message on the channel reaches the reader.
    Hear,
    /// The next message on the channel is lost, and the reader does not notice.
    Drop,
    /// The subscription is confirmed (reconnected first if it was lost).
    Subscribe,
    /// The reader hears that the channel went down; what was on its way is lost.
    Down,
    /// The reader plans a pull, unless one is out (the host runs one at a time).
    Pull,
    /// The `pick`th call out that has not run runs.
    Run {
        pick: usize,
    },
    /// The `pick`th call that ran is answered.
    Answer {
        pick: usize,
    },
    /// The `pick`th call out is lost (it ran or not).
    Lose {
        pick: usize,
    },
    /// A pull planned, run and answered at once, unless a pull is out.
    Sync,
    /// Time passes: two of these pass the maximum pull interval.
    Wait,
    Snapshot,
    /// A failover to the state kept by the last `Snapshot`: the channel drops with the old
    /// master, and the reader hears of it now (`noticed`) or only with a later `Down`.
    Failover {
        noticed: bool,
    },
    /// The state goes back to the one kept by the last `Snapshot` with the subscription up
    /// (a master demoted to a replica of a lagging one keeps its clients, and the replication
    /// stream carries the new master's announcements): version numbers are reused.
    Demote,
    Flush,
    /// The meta hash is lost alone (as [`Op::LoseMeta`]).
    LoseMeta,
    /// The state hash or the log is lost alone (as [`Op::LoseKey`]).
    LoseKey {
        log: bool,
    },
    /// Another process writes a page entry (entry_write.lua): the page-write sequence moves,
    /// and the epoch is made if there is none (over a lost meta hash, a flushed state).
    PageWrite,
    /// The reader's machine is paused `ms` ms: the true time (its wall clock) goes on, its
    /// process's clock, on which the engine counts the bound, stands still.
    Pause {
        ms: u8,
    },
    /// The reader's process's clock jumps `ms` ms ahead (its own stall, as it looks to it).
    Jump {
        ms: u8,
    },
    /// A request begins on the reader: its host tells the engine both clocks only when their
    /// distance moved by more than [`CLOCK_NOTE_MS`] from the last told (`TagSync.noteClocks`).
    Request,
    /// A write or a revalidation begins on the reader: its host tells both clocks, unfiltered.
    Write,
    /// Time goes on (both clocks) until the reader's process's clock is `ms` ms short of the
    /// bound of the last pull applied: where a caught-up mirror is oldest in true time.
    NearBound {
        ms: u8,
    },
}

/// [`push_op`] weighted toward keys lost and brought back, rollbacks with the subscription up
/// and announcements lost, with pulls stepped one call at a time.
fn push_loss_op() -> impl Strategy<Value = PushOp> {
    prop_oneof![
        4 => (1u8..8).prop_map(|tags| PushOp::Update { tags }),
        1 => (1u8..8).prop_map(|tags| PushOp::Own { tags }),
        4 => Just(PushOp::Hear),
        2 => Just(PushOp::Drop),
        1 => Just(PushOp::Subscribe),
        2 => Just(PushOp::Pull),
        3 => (0..2usize).prop_map(|pick| PushOp::Run { pick }),
        3 => (0..2usize).prop_map(|pick| PushOp::Answer { pick }),
        2 => Just(PushOp::Sync),
        3 => Just(PushOp::Snapshot),
        1 => any::<bool>().prop_map(|noticed| PushOp::Failover { noticed }),
        3 => Just(PushOp::Demote),
        2 => Just(PushOp::LoseMeta),
        4 => any::<bool>().prop_map(|log| PushOp::LoseKey { log }),
        1 => Just(PushOp::PageWrite),
    ]
}

/// [`push_op`] with the reader's clocks moving apart a few ms at a time, across the host's
/// filter and the engine's threshold (5 ms each, [`CLOCK_NOTE_MS`] and the slack less it)
/// and the slack itself: pauses of its machine and jumps of its process's clock, told by
/// requests (filtered, so up to the filter goes untold) and by writes (one at a time, adding
/// up since the pull), while a pull is out or not; and time run to just short of the bound on
/// the process's clock, where a mirror still caught up is older than the bound in true time by
/// what the clocks moved since its pull's start. [`push_op`]'s `Wait` alone never lands there.
fn push_clock_op() -> impl Strategy<Value = PushOp> {
    prop_oneof![
        10 => push_op(),
        4 => prop_oneof![3 => 1u8..=7, 1 => 8u8..=16].prop_map(|ms| PushOp::Pause { ms }),
        2 => (1u8..=7).prop_map(|ms| PushOp::Jump { ms }),
        2 => Just(PushOp::Request),
        3 => Just(PushOp::Write),
        2 => prop_oneof![3 => 1u8..=3, 1 => 4u8..=12].prop_map(|ms| PushOp::NearBound { ms }),
    ]
}

/// A pull planned with the reader's clock ahead of where the pull before started (a jump of
/// up to the engine's threshold, within it), then run and answered after two pauses, each
/// told by a write and within the threshold of the last told and of the pull before: what
/// they add up to from this pull's start is how much older than the bound its mirror is once
/// it is applied. In [`push_clock_op`]'s draws one at a time, too rare to find.
fn moves_across_a_pull() -> impl Strategy<Value = Vec<PushOp>> {
    (1u8..=5, 1u8..=5, 1u8..=5).prop_map(|(ahead, first, then)| {
        vec![
            PushOp::Jump { ms: ahead },
            PushOp::Pull,
            PushOp::Pause { ms: first },
            PushOp::Write,
            PushOp::Pause { ms: then },
            PushOp::Write,
            PushOp::Run { pick: 0 },
            PushOp::Answer { pick: 0 },
        ]
    })
}

/// Histories of [`push_clock_op`], with [`moves_across_a_pull`] among them.
fn push_clock_history() -> impl Strategy<Value = Vec<PushOp>> {
    with_runs(push_clock_op(), 12, moves_across_a_pull(), 50)
}

fn push_op() -> impl Strategy<Value = PushOp> {
    prop_oneof![
        6 => (1u8..8).prop_map(|tags| PushOp::Update { tags }),
        2 => (1u8..8).prop_map(|tags| PushOp::Own { tags }),
        8 => Just(PushOp::Hear),
        1 => Just(PushOp::Drop),
        2 => Just(PushOp::Subscribe),
        1 => Just(PushOp::Down),
        3 => Just(PushOp::Pull),
        3 => (0..4usize).prop_map(|pick| PushOp::Run { pick }),
        3 => (0..4usize).prop_map(|pick| PushOp::Answer { pick }),
        1 => (0..4usize).prop_map(|pick| PushOp::Lose { pick }),
        4 => Just(PushOp::Sync),
        1 => Just(PushOp::Wait),
        3 => Just(PushOp::Snapshot),
        1 => any::<bool>().prop_map(|noticed| PushOp::Failover { noticed }),
        3 => Just(PushOp::Demote),
        1 => Just(PushOp::Flush),
        1 => Just(PushOp::LoseMeta),
        1 => any::<bool>().prop_map(|log| PushOp::LoseKey { log }),
        1 => Just(PushOp::PageWrite),
    ]
}

/// An announcement on its way to the reader: its number among those published, the message
/// and the records it carries.
type Message = (usize, Vec<u8>, Vec<(String, TagRecord)>);

/// A pull's start ([`PushReader::planned`]).
#[derive(Clone, Copy, Debug, Default)]
struct PullMark {
    /// The true time (the reader's wall clock).
    at: f64,
    /// The reader's process's clock.
    clock: f64,
    heard: usize,
    published: usize,
}

/// The model of one reader following by push: Redis, the channel and what the reader was
/// promised ([`PushReader::check`]).
struct PushReader {
    redis: TagState,
    /// The page entry's values Redis stored, in order, by their numbers (the last one is the
    /// value it holds): only [`page_tier_history`] writes the entry.
    page: Vec<usize>,
    /// The state and page entry kept by the last `Snapshot`.
    kept: Option<(TagState, Vec<usize>)>,
    reader: Engine,
    out: Vec<MirrorCall>,
    /// The channel delivers to the reader (it may not know that it does not).
    connected: bool,
    /// What the reader was last told of the channel: up (true) or down.
    told_up: bool,
    queue: VecDeque<Message>,
    /// Every announcement the reader heard, in order: its number and its records.
    heard: Vec<(usize, Vec<(String, TagRecord)>)>,
    /// Announcements published so far.
    published: usize,
    /// The announcements lost where the reader knew it (published while it was told the
    /// channel was down, or on their way when it was told): their numbers and records.
    lost_told: Vec<(usize, Vec<(String, TagRecord)>)>,
    /// When the pull out was planned, and how many announcements had been heard and
    /// published then.
    planned: PullMark,
    /// The page entry as the pull out found it, once it ran.
    pull_page: Vec<usize>,
    /// The last pull applied: the state and the page entry it ran on, and its mark.
    pulled: Option<(TagState, Vec<usize>, PullMark)>,
    /// The true time: the reader's wall clock.
    now: f64,
    /// The reader's process's clock (Next's), on which its engine counts the bound: apart from
    /// `now` by the pauses and jumps drawn ([`PushOp::Pause`], [`PushOp::Jump`]).
    clock: f64,
    /// The clocks' distance (wall clock less process clock) its host last told the engine.
    told: Option<f64>,
    trace: Vec<String>,
}

impl PushReader {
    /// `reader` (following by push) against an empty state, its channel not yet confirmed.
    fn new(reader: Engine) -> PushReader {
        PushReader {
            redis: TagState::default(),
            page: Vec::new(),
            kept: None,
            reader,
            out: Vec::new(),
            connected: false,
            told_up: false,
            queue: VecDeque::new(),
            heard: Vec::new(),
            published: 0,
            lost_told: Vec::new(),
            planned: PullMark::default(),
            pull_page: Vec::new(),
            pulled: None,
            now: T0,
            clock: T0,
            told: None,
            trace: Vec::new(),
        }
    }

    /// Runs `call` on the model; an update's announcement goes to the channel.
    fn run(&mut self, call: &ScriptCall) -> Vec<u8> {
        let reply = run_script(&mut self.redis, call);
        self.trace.extend(take_scan_notes());
        if call.script.name == "tag_update" {
            let tags = self.redis.announced(&call.args[5..]);
            let records = tags
                .iter()
                .map(|t| (t.clone(), self.redis.records[t]))
                .collect();
            self.publish(self.redis.announcement(&tags), records);
        }
        reply
    }

    /// Another process's page write of `key` (entry_write.lua), with id `id`: the page-write
    /// sequence moves (the epoch is made if there is none: over a lost meta hash, a flushed
    /// state) and the write is announced; `value`, the page entry's value numbered so, when
    /// `key` is the page's. The announcement's number on the channel.
    fn page_write(&mut self, id: String, key: &str, value: Option<usize>) -> usize {
        let msg = self.redis.page_write(id, key);
        self.page.extend(value);
        self.publish(msg, Vec::new())
    }

    /// Publishes `msg`, which carries `records`, on the channel; its number.
    fn publish(&mut self, msg: Vec<u8>, records: Vec<(String, TagRecord)>) -> usize {
        let n = self.published;
        self.published += 1;
        if self.connected {
            self.queue.push_back((n, msg, records));
        } else if !self.told_up {
            self.lost_told.push((n, records));
        }
        n
    }

    fn plan_pull(&mut self) -> ScriptCall {
        // As `TagSync`'s `checkClock` does before every pull.
        self.tell();
        self.planned = PullMark {
            at: self.now,
            clock: self.clock,
            heard: self.heard.len(),
            published: self.published,
        };
        self.reader.plan_tag_pull(Millis(self.clock))
    }

    /// Time goes on by `ms` on both clocks.
    fn pass(&mut self, ms: f64) {
        self.now += ms;
        self.clock += ms;
    }

    /// The host hands the engine both clocks from here on (`TagSync.clocksTold`): the
    /// process's and the wall clock.
    fn clocks_told(&mut self) -> (Millis, Millis) {
        self.told = Some(self.now - self.clock);
        (Millis(self.clock), Millis(self.now))
    }

    /// The host tells the engine both clocks (`Engine::note_clocks`).
    fn tell(&mut self) {
        let (clock, wall) = self.clocks_told();
        self.reader.note_clocks(clock, wall);
    }

    fn answer(&mut self, c: MirrorCall) {
        let (reply, held) = c.ran.expect("answered after it ran");
        if c.own {
            self.reader.apply_update_reply(&reply).unwrap();
            return;
        }
        self.reader
            .apply_refresh(&reply, Millis(self.clock))
            .unwrap();
        self.pulled = Some((held, self.pull_page.clone(), self.planned));
        let m = self.reader.mirror();
        self.trace.push(format!(
            "  answered {:?}: v{} synced {} loading {}",
            c.call.args,
            m.version(),
            m.is_synced(),
            m.is_loading(),
        ));
    }

    fn hear(&mut self) {
        if let Some((n, msg, records)) = self.queue.pop_front() {
            let result = self.reader.apply_announcement(&msg, Millis(self.clock));
            self.trace
                .push(format!("  heard #{n} {records:?}: {result:?}"));
            self.heard.push((n, records));
        }
    }

    /// The reader is told the channel is down: what was on its way is lost, and it knows.
    fn told_down(&mut self) {
        self.reader.tag_channel_down();
        self.told_up = false;
        self.connected = false;
        for (n, _, records) in self.queue.drain(..) {
            self.lost_told.push((n, records));
        }
    }

    /// The reader is told the channel is up, reconnected first if it was lost.
    fn subscribe(&mut self) {
        if !self.connected {
            if self.told_up {
                self.told_down();
            }
            self.connected = true;
        }
        self.reader.tag_channel_up();
        self.told_up = true;
    }

    /// While caught up, the mirror knows every record of the state its last pull ran on
    /// (what resolved before that pull started, unless a failover lost it before the pull
    /// ran) and of every announcement published since that pull was planned, but those on
    /// their way and those lost where the reader could not know it (a message dropped, a
    /// connection whose drop it has not noticed yet): docs/failures.md, "Following by push".
    /// So of every one heard since, and no announcement since was lost where the reader knew;
    /// and that pull started less than the maximum pull interval ago.
    fn check(&self) -> Result<(), TestCaseError> {
        if !self.reader.tags_caught_up(Millis(self.clock)) {
            return Ok(());
        }
        let Some((held, _, mark)) = &self.pulled else {
            return Err(TestCaseError::fail(format!(
                "{}\ncaught up without a pull",
                self.trace.join("\n")
            )));
        };
        prop_assert!(
            self.clock - mark.clock < PUSH_BOUND_MS,
            "{}\ncaught up on a pull that started {} ms ago on its clock",
            self.trace.join("\n"),
            self.clock - mark.clock
        );
        // In true time, later by what the clocks' distance moved since that start: within the
        // engine's threshold (the slack less the host's filter) of the distance last told, and
        // that within the filter of the real one at a request's start. Here, within what the
        // real distance is from the last told, however far that is.
        let untold = self
            .told
            .map_or(f64::INFINITY, |t| (self.now - self.clock - t).abs());
        let moved = CLOCK_AHEAD_SLACK_MS - CLOCK_NOTE_MS + untold;
        prop_assert!(
            self.now - mark.at < PUSH_BOUND_MS + moved,
            "{}\ncaught up on a pull that started {} ms ago in true time, {} ms on its clock \
             (the clocks' distance is {} ms from the last told)",
            self.trace.join("\n"),
            self.now - mark.at,
            self.clock - mark.clock,
            untold
        );
        let m = self.reader.mirror();
        for (tag, record) in &held.records {
            let known = m.known(tag).unwrap_or_default();
            prop_assert!(
                known.covers(record),
                "{}\nthe caught-up reader lacks {tag}: it knows {known:?}, the state its last \
                 pull ran on held {record:?}",
                self.trace.join("\n")
            );
        }
        let heard = self
            .heard
            .iter()
            .skip(mark.heard)
            .map(|(_, r)| ("heard", r));
        let lost = self
            .lost_told
            .iter()
            .filter(|(n, _)| *n >= mark.published)
            .map(|(_, r)| ("lost where the reader knew it", r));
        for (how, records) in heard.chain(lost) {
            for (tag, record) in records {
                let known = m.known(tag).unwrap_or_default();
                prop_assert!(
                    known.covers(record),
                    "{}\nthe caught-up reader lacks {tag}: it knows {known:?}, an announcement \
                     {how} since its last pull was planned carried {record:?}",
                    self.trace.join("\n")
                );
            }
        }
        Ok(())
    }

    fn step(&mut self, step: usize, op: &PushOp, writer: &mut Engine) {
        let rev = Revalidation::Expire;
        match *op {
            PushOp::Update { tags } => {
                let call = writer
                    .plan_tag_update(&mask(tags), &rev, Millis(self.now), &format!("w{step}"))
                    .unwrap();
                self.run(&call);
            }
            PushOp::Own { tags } => {
                let (clock, wall) = self.clocks_told();
                let call = self
                    .reader
                    .plan_tag_update_at(&mask(tags), &rev, clock, wall, &format!("r{step}"))
                    .unwrap();
                self.out.push(MirrorCall {
                    call,
                    own: true,
                    ran: None,
                });
            }
            PushOp::Hear => self.hear(),
            PushOp::Drop => {
                self.queue.pop_front();
            }
            PushOp::Subscribe => self.subscribe(),
            PushOp::Down => self.told_down(),
            PushOp::Pull => {
                if self.out.iter().all(|c| c.own) {
                    let call = self.plan_pull();
                    self.out.push(MirrorCall {
                        call,
                        own: false,
                        ran: None,
                    });
                }
            }
            PushOp::Run { pick } => {
                let idle: Vec<usize> = (0..self.out.len())
                    .filter(|i| self.out[*i].ran.is_none())
                    .collect();
                if !idle.is_empty() {
                    let i = idle[pick % idle.len()];
                    let call = self.out[i].call.clone();
                    let reply = self.run(&call);
                    if !self.out[i].own {
                        self.pull_page.clone_from(&self.page);
                    }
                    self.out[i].ran = Some((reply, self.redis.clone()));
                }
            }
            PushOp::Answer { pick } => {
                let ran: Vec<usize> = (0..self.out.len())
                    .filter(|i| self.out[*i].ran.is_some())
                    .collect();
                if !ran.is_empty() {
                    let c = self.out.remove(ran[pick % ran.len()]);
                    self.answer(c);
                }
            }
            PushOp::Lose { pick } => {
                if !self.out.is_empty() {
                    self.out.remove(pick % self.out.len());
                }
            }
            PushOp::Sync => {
                if self.out.iter().all(|c| c.own) {
                    let call = self.plan_pull();
                    let reply = self.run(&call);
                    self.pull_page.clone_from(&self.page);
                    let ran = Some((reply, self.redis.clone()));
                    self.answer(MirrorCall {
                        call,
                        own: false,
                        ran,
                    });
                }
            }
            PushOp::Wait => self.pass(PUSH_BOUND_MS * 0.6),
            PushOp::Pause { ms } => self.now += f64::from(ms),
            PushOp::Jump { ms } => self.clock += f64::from(ms),
            PushOp::Request => {
                if !told_within_filter(self.told, self.now - self.clock) {
                    self.tell();
                }
            }
            PushOp::Write => self.tell(),
            PushOp::NearBound { ms } => {
                if let Some((_, _, mark)) = &self.pulled {
                    let by = mark.clock + PUSH_BOUND_MS - f64::from(ms) - self.clock;
                    if by > 0.0 {
                        self.pass(by);
                    }
                }
            }
            PushOp::Snapshot => self.kept = Some((self.redis.clone(), self.page.clone())),
            PushOp::Failover { noticed } => {
                if let Some((k, page)) = &self.kept {
                    self.redis = on_another_server(k.clone());
                    self.page.clone_from(page);
                }
                if noticed {
                    self.told_down();
                } else {
                    self.connected = false;
                    self.queue.clear();
                }
            }
            PushOp::Demote => {
                // The process the reader listens to keeps running; its data is replaced.
                if let Some((k, page)) = &self.kept {
                    self.redis = TagState {
                        server: self.redis.server,
                        ..k.clone()
                    };
                    self.page.clone_from(page);
                }
            }
            PushOp::Flush => {
                self.redis = TagState {
                    server: self.redis.server,
                    ..TagState::default()
                };
                self.page.clear();
            }
            PushOp::PageWrite => {
                self.page_write(format!("w{step}"), "k0", None);
            }
            PushOp::LoseMeta => self.redis.lose_meta(),
            PushOp::LoseKey { log } => self.redis.lose_key(log),
        }
    }
}

/// Runs `ops` on a reader that follows the state by push, bounded to `max_tags` records, with
/// refresh replies of at most `part_limit` changed tags and `window` version ids kept, its
/// subscription confirmed first. After every step, while it is caught up, it knows what
/// [`PushReader::check`] says. At the end (calls out lost, an update making the meta hash
/// anew if it was lost, the channel up and every message on it heard), it is caught up within
/// a few pulls and knows the whole state.
fn pushed_mirror_history(
    ops: &[PushOp],
    max_tags: u32,
    part_limit: usize,
    window: u64,
) -> Result<(), TestCaseError> {
    PART_LIMIT.with(|p| p.set(part_limit));
    ID_WINDOW.with(|w| w.set(window));
    let mut writer = Engine::new(config(None, false, DEFAULT_MAX_TAGS)).unwrap();
    writer.follow_tags_by_push(PUSH_BOUND_MS).unwrap();
    let mut reader = Engine::new(config(None, false, max_tags)).unwrap();
    reader.follow_tags_by_push(PUSH_BOUND_MS).unwrap();
    let mut w = PushReader::new(reader);
    // From a state of one epoch the reader follows, caught up: most histories then reach
    // announcements applied, and numbers reused, within a few steps.
    let tape = pause_scan_tape();
    w.step(0, &PushOp::Update { tags: 1 }, &mut writer);
    w.subscribe();
    w.queue.clear();
    for _ in 0..5 {
        if !w.reader.tags_caught_up(Millis(w.clock)) {
            w.step(0, &PushOp::Sync, &mut writer);
        }
    }
    give_back_scan_tape(tape);
    prop_assert!(
        w.reader.tags_caught_up(Millis(w.clock)),
        "{}",
        w.trace.join("\n")
    );
    w.trace.push("start".to_owned());
    for (step, op) in ops.iter().enumerate() {
        w.pass(1.0);
        w.trace.push(format!(
            "{op:?} (redis v{}, {} on the channel)",
            w.redis.ver,
            w.queue.len()
        ));
        w.step(step, op, &mut writer);
        w.check()?;
    }
    w.out.clear();
    w.pass(1.0);
    w.trace.push("settle".to_owned());
    pause_scan_tape();
    w.step(ops.len(), &PushOp::Update { tags: 1 }, &mut writer);
    w.subscribe();
    while !w.queue.is_empty() {
        w.hear();
        w.check()?;
    }
    // A load takes a pull per page and one to catch up; a lost update of the reader's own,
    // two loads.
    for _ in 0..20 {
        if w.reader.tags_caught_up(Millis(w.clock)) {
            break;
        }
        w.step(ops.len(), &PushOp::Sync, &mut writer);
        w.check()?;
    }
    prop_assert!(
        w.reader.tags_caught_up(Millis(w.clock)),
        "{}\nthe reader is not caught up after settling",
        w.trace.join("\n")
    );
    let m = w.reader.mirror();
    for (tag, record) in &w.redis.records {
        let known = m.known(tag).unwrap_or_default();
        prop_assert!(
            known.covers(record),
            "{}\nthe settled reader lacks {tag}: it knows {known:?}, the state holds {record:?}",
            w.trace.join("\n")
        );
    }
    Ok(())
}

proptest! {
    // Fast: several thousand histories a second (release). With an announcement of a version
    // the mirror has passed dropped (before 2849c89), each run failed within a few hundred
    // histories.
    #![proptest_config(ProptestConfig { cases: cases(2048), ..ProptestConfig::default() })]

    /// A reader following by push: announcements heard, lost unnoticed, or cut off with the
    /// channel (noticed or not yet), a state rolled back with the subscription up (numbers
    /// reused), pulls in flight answered in parts or in full, its own updates, flushes, a lost
    /// meta hash, bounded mirrors: whenever it is caught up, it knows what its last pull and
    /// the announcements heard since promise; settled, it is caught up and knows the state.
    #[test]
    fn a_caught_up_mirror_knows_its_last_pull_and_what_it_heard_since(
        ops in proptest::collection::vec(push_op(), 1..60),
        (max_tags, part_limit, window) in one_mirror_bounds(),
    ) {
        pushed_mirror_history(&ops, max_tags, part_limit, window)?;
    }

    /// The same, over histories of keys lost and brought back and rollbacks with the
    /// subscription up ([`push_loss_op`]).
    #[test]
    fn across_lost_keys_a_caught_up_mirror_knows_its_last_pull_and_what_it_heard_since(
        ops in proptest::collection::vec(push_loss_op(), 1..30),
        (max_tags, part_limit, window) in one_mirror_bounds(),
    ) {
        pushed_mirror_history(&ops, max_tags, part_limit, window)?;
    }
}

proptest! {
    // Fast, as the two above. With the engine's threshold at the slack (10 ms) or the move
    // since the pull's start not measured, each run failed within a few hundred histories.
    #![proptest_config(ProptestConfig { cases: cases(2048), ..ProptestConfig::default() })]

    /// The reader's process clock, on which its engine counts the bound, apart from the true
    /// time by pauses and jumps of a few ms ([`push_clock_op`]): whenever it is caught up, its
    /// last pull started less than the bound ago on that clock, and in true time less than
    /// that plus the engine's threshold plus what the host left untold.
    #[test]
    fn across_clock_moves_a_caught_up_mirror_is_within_the_bound_in_true_time(
        ops in push_clock_history(),
        (max_tags, part_limit, window) in one_mirror_bounds(),
    ) {
        pushed_mirror_history(&ops, max_tags, part_limit, window)?;
    }
}

/// What [`push_clock_op`]'s histories first found with each of the engine's clock rules weakened
/// (`Engine::note_clocks`), shrunk: a pause of 9 ms told by a request, past the threshold within
/// the slack (the threshold at the slack); pauses of 4 ms told one at a time by writes (the move
/// since the pull's start not measured); and the same while a pull is out, planned with the
/// clock 4 ms ahead (the move since the start of the pull out not measured). Each leaves the
/// mirror caught up, by the process's clock, on a pull that started more than the bound plus
/// the threshold ago.
#[test]
fn clock_moves_past_the_threshold_since_the_pull_are_gaps() -> Result<(), TestCaseError> {
    use PushOp::{Answer, Jump, NearBound, Pause, Pull, Request, Run, Write};
    let histories = [
        vec![Pull, Pause { ms: 9 }, NearBound { ms: 2 }, Request],
        vec![
            Pause { ms: 4 },
            Write,
            Pause { ms: 4 },
            Write,
            NearBound { ms: 2 },
        ],
        vec![
            Jump { ms: 4 },
            Pull,
            Pause { ms: 4 },
            Write,
            Pause { ms: 4 },
            Write,
            Run { pick: 0 },
            Answer { pick: 0 },
            NearBound { ms: 1 },
        ],
    ];
    for ops in &histories {
        pushed_mirror_history(ops, DEFAULT_MAX_TAGS, PART_TAGS, 1024)?;
    }
    Ok(())
}

/// A state rolled back with the subscription up (a master demoted to a replica of a lagging
/// one): the next update takes the number of one the reader heard, and its announcement,
/// which reaches the caught-up reader, must be judged by (dropped as known before 2849c89).
#[test]
fn a_number_reused_with_the_subscription_up_is_judged_by() -> Result<(), TestCaseError> {
    let update = PushOp::Update { tags: 1 };
    let ops = [
        PushOp::Snapshot,
        update.clone(),
        PushOp::Demote,
        update,
        PushOp::Hear,
        PushOp::Hear,
    ];
    pushed_mirror_history(&ops, DEFAULT_MAX_TAGS, PART_TAGS, 1024)
}

/// A step of [`page_tier_history`]: one reader's copy of one page in its in-process tier,
/// following by push, against the model of Redis (the page entry and the tag state) and of
/// the channel.
#[derive(Clone, Debug)]
enum TierOp {
    /// A step of the channel, the pulls and the tag state ([`PushOp`]; its `PageWrite` writes
    /// another key).
    Push(PushOp),
    /// Another process rewrites the page (entry_write.lua): a new value, announced.
    Rewrite,
    /// The reader begins a read of the page, as the host drives the read machine: from the
    /// tier when it may serve, else its `GET` goes out (beside a pull when not caught up).
    Read,
    /// The `pick`th `GET` out that has not run runs.
    Get { pick: usize },
    /// The `pick`th read waiting goes on: its `GET`'s reply (once run) or the tier's bytes,
    /// each once the pull it asked for ended (the driver's rule R1); the host keeps what the
    /// read says.
    Reply { pick: usize },
    /// The host's `CLUSTER SLOTS` is answered "cluster support disabled" (asked each time the
    /// subscription is confirmed).
    Plain,
}

/// [`tier_op`] narrowed to what moves the page-write sequence back and forth while the reader
/// keeps a copy: rollbacks with the subscription up, rewrites and other keys' page writes,
/// announcements heard or dropped, reads, and pulls. The long chains a rollback needs (a copy
/// bound, a write heard, a rollback, a rewrite lost, a write heard after it) are a few in a
/// million histories of [`tier_op`].
fn tier_rollback_op() -> impl Strategy<Value = TierOp> {
    prop_oneof![
        2 => Just(TierOp::Push(PushOp::Snapshot)),
        2 => Just(TierOp::Push(PushOp::Demote)),
        3 => Just(TierOp::Push(PushOp::PageWrite)),
        3 => Just(TierOp::Rewrite),
        4 => Just(TierOp::Push(PushOp::Hear)),
        2 => Just(TierOp::Push(PushOp::Drop)),
        1 => Just(TierOp::Push(PushOp::Sync)),
        2 => Just(TierOp::Read),
        2 => (0..2usize).prop_map(|pick| TierOp::Get { pick }),
        2 => (0..2usize).prop_map(|pick| TierOp::Reply { pick }),
    ]
}

fn tier_op() -> impl Strategy<Value = TierOp> {
    prop_oneof![
        12 => push_op().prop_map(TierOp::Push),
        // What loses or rewinds page writes, more often than `push_op` draws it.
        2 => Just(TierOp::Push(PushOp::Drop)),
        1 => Just(TierOp::Push(PushOp::Demote)),
        1 => Just(TierOp::Push(PushOp::Snapshot)),
        1 => Just(TierOp::Push(PushOp::Failover { noticed: false })),
        1 => Just(TierOp::Push(PushOp::LoseMeta)),
        // Other keys' page writes: what the page-write sequence the reader knows is made of.
        2 => Just(TierOp::Push(PushOp::PageWrite)),
        4 => Just(TierOp::Rewrite),
        5 => Just(TierOp::Read),
        4 => (0..3usize).prop_map(|pick| TierOp::Get { pick }),
        4 => (0..3usize).prop_map(|pick| TierOp::Reply { pick }),
        2 => Just(TierOp::Plain),
    ]
}

/// What a read of [`PageTier`] waits for.
#[derive(Clone, Debug)]
enum PageWait {
    /// To give the tier's bytes ([`ReadAction::PeekTier`]).
    Tier,
    /// Its read of Redis: a `GET`, or the page read (page_read.lua) naming `names` (epoch,
    /// pver, pvid); once it ran, the number of the value Redis held (`None`: none) and whether
    /// the page-write sequence was at the write named.
    Get {
        names: Option<Vec<String>>,
        ran: Option<(Option<usize>, bool)>,
    },
}

impl PageWait {
    fn out(&self) -> bool {
        matches!(self, PageWait::Get { ran: None, .. })
    }
}

/// A page read in flight.
struct PageRead {
    machine: ReadMachine,
    /// It asked for a pull: no bytes are given to it while one is out.
    refreshes: bool,
    wait: PageWait,
}

/// One reader's page copy: [`PushReader`] (Redis, the channel, the pulls) with the page entry
/// and its values, the host's tier bytes of the page, and the reads in flight.
struct PageTier {
    w: PushReader,
    /// Writes another process's values.
    writer: Engine,
    /// The page's entry key.
    key: String,
    /// Every value written, by its number.
    values: Vec<Vec<u8>>,
    /// The page value each page announcement carries, by the announcement's number.
    announced: HashMap<usize, usize>,
    /// The value whose bytes the host's tier holds for the page.
    tier: Option<usize>,
    reads: Vec<PageRead>,
}

impl PageTier {
    fn fail(&self, what: String) -> TestCaseError {
        TestCaseError::fail(format!("{}\n{what}", self.w.trace.join("\n")))
    }

    fn pull_out(&self) -> bool {
        self.w.out.iter().any(|c| !c.own)
    }

    /// Another process's page write: a new value, written at `now` (its number in its bytes).
    fn rewrite(&mut self) {
        let n = self.values.len();
        let desc = Descriptor {
            kind: ValueKind::AppPage,
            has_rsc: false,
            segments: 0,
            revalidate_false: false,
            no_expire: false,
            no_cache_control: false,
        };
        let part = format!("{n:08}");
        let parts = vec![part.len() as u32; desc.part_count()];
        let set = IncrementalSet {
            desc,
            revalidate: 3600.0,
            expire: 7200.0,
            tags: &[],
            parts: &parts,
            created: Millis(self.w.now),
            made: None,
            now: Millis(self.w.now),
        };
        let mut v = self
            .writer
            .plan_incremental_set(INC_KEYS[0].0, &set)
            .unwrap()
            .header;
        for _ in &parts {
            v.extend_from_slice(part.as_bytes());
        }
        self.values.push(v);
        // Ids of the writer's seed and count, never reused: a failover that reuses a number
        // is told by the id.
        let msg = self.w.page_write(format!("wp.{n}"), &self.key, Some(n));
        self.announced.insert(msg, n);
    }

    /// Starts a read and steps it as far as it goes now.
    fn read(&mut self) -> Result<(), TestCaseError> {
        let mut machine = self.w.reader.read_incremental(
            INC_KEYS[0].0,
            false,
            Vec::new(),
            f64::NAN,
            Consumer::Serves,
            false,
            "0123456789abcdef".to_owned(),
            Millis(self.w.now),
        );
        let step = self
            .w
            .reader
            .read_step(&mut machine, ReadInput::Start, Millis(self.w.now))
            .unwrap();
        let mut read = PageRead {
            machine,
            refreshes: false,
            wait: PageWait::Tier,
        };
        let step = if step.action == ReadAction::Refresh {
            read.refreshes = true;
            if !self.pull_out() {
                let call = self.w.plan_pull();
                self.w.out.push(MirrorCall {
                    call,
                    own: false,
                    ran: None,
                });
            }
            let now = Millis(self.w.now);
            self.w
                .reader
                .read_step(&mut read.machine, ReadInput::Refreshed, now)
                .unwrap()
        } else {
            step
        };
        self.drive(read, step, None)
    }

    /// Goes on with `read` after `step`, which answered an input that gave the bytes of value
    /// `given`: the host keeps them as the step says, then does what it asks, as far as it
    /// can now.
    fn drive(
        &mut self,
        mut read: PageRead,
        mut step: ReadStep,
        mut given: Option<usize>,
    ) -> Result<(), TestCaseError> {
        loop {
            match step.tier {
                TierAction::None => {}
                TierAction::Drop => self.tier = None,
                TierAction::Keep {
                    until,
                    outage_only,
                    page_gen,
                    order,
                } => {
                    let n = given.expect("kept bytes it was given");
                    let lru = self.w.reader.lru_mut();
                    lru.insert_ordered(&self.key, self.values[n].len() as u64, until, order);
                    if outage_only {
                        lru.mark_outage_only(&self.key);
                    }
                    if page_gen != 0 {
                        lru.bind_page(&self.key, page_gen);
                    }
                    self.tier = Some(n);
                    self.w.trace.push(format!(
                        "  kept value {n} (outage only {outage_only}, generation {page_gen})"
                    ));
                }
            }
            let input = match step.action {
                ReadAction::PeekTier if read.refreshes && self.pull_out() => {
                    read.wait = PageWait::Tier;
                    self.reads.push(read);
                    return Ok(());
                }
                ReadAction::PeekTier => {
                    given = self.tier;
                    self.w.trace.push(format!("  read: tier {given:?}"));
                    ReadInput::Tier(given.map(|n| Bytes {
                        prefix: &self.values[n],
                        total_len: self.values[n].len(),
                    }))
                }
                ReadAction::Get { .. } => {
                    read.wait = PageWait::Get {
                        names: None,
                        ran: None,
                    };
                    self.reads.push(read);
                    return Ok(());
                }
                ReadAction::PageRead { call, .. } => {
                    read.wait = PageWait::Get {
                        names: Some(call.args),
                        ran: None,
                    };
                    self.reads.push(read);
                    return Ok(());
                }
                ReadAction::Answer(answer) => {
                    self.w.trace.push(format!(
                        "  read answered from {:?}: value {given:?}",
                        answer.source
                    ));
                    if answer.source == Source::Tier {
                        let n = given.expect("served from the tier's bytes");
                        self.check_served(n, "a read served from the tier")?;
                    }
                    return Ok(());
                }
                other => return Err(self.fail(format!("unexpected read action {other:?}"))),
            };
            let now = Millis(self.w.now);
            step = self
                .w
                .reader
                .read_step(&mut read.machine, input, now)
                .map_err(|e| self.fail(format!("{e:?}")))?;
        }
    }

    /// The read of Redis of the read at `i` runs: what Redis holds now.
    fn run_get(&mut self, i: usize) {
        let held = self.w.page.last().copied();
        let r = &self.w.redis;
        let at = [
            r.epoch.clone().unwrap_or_default(),
            r.pver.to_string(),
            r.pvid.clone(),
        ];
        if let PageWait::Get { names, ran } = &mut self.reads[i].wait {
            let same = names.as_deref() == Some(&at[..]);
            *ran = Some((held, same));
        }
        self.w.trace.push(format!("  GET ran: {held:?}"));
    }

    /// The read waiting at `i` goes on, when it may.
    fn reply(&mut self, i: usize) -> Result<(), TestCaseError> {
        let read = &self.reads[i];
        if read.refreshes && self.pull_out() {
            return Ok(());
        }
        let (given, names, at) = match &read.wait {
            PageWait::Get { ran: None, .. } => return Ok(()),
            PageWait::Get {
                ran: Some((given, at)),
                names,
            } => (*given, names.is_some(), *at),
            PageWait::Tier => {
                let read = self.reads.remove(i);
                let step = ReadStep {
                    action: ReadAction::PeekTier,
                    tier: TierAction::None,
                };
                return self.drive(read, step, None);
            }
        };
        let mut read = self.reads.remove(i);
        self.w.trace.push(format!(
            "  read: replied {given:?} (at the page write named: {at})"
        ));
        let entry = given.map(|n| Bytes {
            prefix: &self.values[n],
            total_len: self.values[n].len(),
        });
        let input = if names {
            ReadInput::Polled { entry, leased: at }
        } else {
            ReadInput::Reply(entry)
        };
        let now = Millis(self.w.now);
        let step = self
            .w
            .reader
            .read_step(&mut read.machine, input, now)
            .map_err(|e| self.fail(format!("{e:?}")))?;
        self.drive(read, step, given)
    }

    fn step(&mut self, step: usize, op: &TierOp) -> Result<(), TestCaseError> {
        match op {
            TierOp::Push(op) => self.w.step(step, op, &mut self.writer),
            TierOp::Rewrite => self.rewrite(),
            TierOp::Read => self.read()?,
            TierOp::Get { pick } => {
                let out: Vec<usize> = (0..self.reads.len())
                    .filter(|i| self.reads[*i].wait.out())
                    .collect();
                if !out.is_empty() {
                    let i = out[pick % out.len()];
                    self.run_get(i);
                }
            }
            TierOp::Reply { pick } => {
                if !self.reads.is_empty() {
                    self.reply(pick % self.reads.len())?;
                }
            }
            TierOp::Plain => {
                if self.w.told_up {
                    self.w.reader.confirm_plain_redis();
                }
            }
        }
        Ok(())
    }

    /// Whether the tier would serve its copy of the page now (as a read's tier turn asks),
    /// and if it would, [`PageTier::check_served`] of it.
    fn check(&mut self) -> Result<(), TestCaseError> {
        match self.w.reader.tier_use(&self.key, Millis(self.w.now)) {
            TierUse::Gone => self.tier = None,
            TierUse::Kept => {}
            TierUse::Serve => {
                let Some(n) = self.tier else {
                    return Err(self.fail("the tier serves bytes the host dropped".to_owned()));
                };
                self.check_served(n, "the tier would serve")?;
            }
        }
        Ok(())
    }

    /// While Redis answers, the tier serves a page copy only while caught up, within the
    /// bound of its last pull, and never one that a page write Redis holds replaced when
    /// that write is one the reader was promised (docs/failures.md, "Page and route
    /// entries"; decision 0031, "Guarantee"): one its last pull found, or one whose
    /// announcement it heard since that pull was planned (or that was lost while it knew the
    /// channel was down). A value Redis lost (a flush, a failover) counts as replaced by every
    /// write made after the loss; a promised write Redis lost since promises nothing.
    fn check_served(&self, n: usize, what: &str) -> Result<(), TestCaseError> {
        let now = self.w.now;
        let Some((_, pulled, mark)) = &self.w.pulled else {
            return Err(self.fail(format!("{what} value {n} without a pull")));
        };
        if now - mark.at >= PUSH_BOUND_MS {
            return Err(self.fail(format!(
                "{what} value {n} on a pull that started {} ms ago",
                now - mark.at
            )));
        }
        let heard: Vec<usize> = self.w.heard[mark.heard..]
            .iter()
            .filter_map(|(m, _)| self.announced.get(m).copied())
            .collect();
        let lost: Vec<usize> = self
            .w
            .lost_told
            .iter()
            .filter(|(m, _)| *m >= mark.published)
            .filter_map(|(m, _)| self.announced.get(m).copied())
            .collect();
        // The values Redis holds in order: every one after `n` replaced it.
        for &later in self.w.page.iter().filter(|&&m| m > n) {
            let promised = if pulled.contains(&later) {
                "its last pull found"
            } else if heard.contains(&later) {
                "was heard since its last pull was planned"
            } else if lost.contains(&later) {
                "was lost while the reader knew the channel was down"
            } else {
                continue;
            };
            return Err(self.fail(format!(
                "{what} value {n}, which value {later} replaced in Redis, and that write {promised}"
            )));
        }
        Ok(())
    }

    /// A read, to its answer, every command answered at once: the number of the value it
    /// served and where from.
    fn read_now(&mut self) -> Result<(Option<usize>, Source), TestCaseError> {
        let mut machine = self.w.reader.read_incremental(
            INC_KEYS[0].0,
            false,
            Vec::new(),
            f64::NAN,
            Consumer::Serves,
            false,
            "0123456789abcdef".to_owned(),
            Millis(self.w.now),
        );
        let now = Millis(self.w.now);
        let mut input = ReadInput::Start;
        let mut given: Option<usize> = None;
        for _ in 0..8 {
            let step = self
                .w
                .reader
                .read_step(&mut machine, input, now)
                .map_err(|e| self.fail(format!("{e:?}")))?;
            if let TierAction::Keep {
                until,
                outage_only,
                page_gen,
                order,
            } = step.tier
            {
                let n = given.expect("kept bytes it was given");
                let lru = self.w.reader.lru_mut();
                lru.insert_ordered(&self.key, self.values[n].len() as u64, until, order);
                if outage_only {
                    lru.mark_outage_only(&self.key);
                }
                if page_gen != 0 {
                    lru.bind_page(&self.key, page_gen);
                }
                self.tier = Some(n);
            } else if step.tier == TierAction::Drop {
                self.tier = None;
            }
            input = match step.action {
                ReadAction::Refresh => ReadInput::Refreshed,
                ReadAction::PeekTier => {
                    given = self.tier;
                    ReadInput::Tier(given.map(|n| Bytes {
                        prefix: &self.values[n],
                        total_len: self.values[n].len(),
                    }))
                }
                ReadAction::Get { .. } => {
                    given = self.w.page.last().copied();
                    ReadInput::Reply(given.map(|n| Bytes {
                        prefix: &self.values[n],
                        total_len: self.values[n].len(),
                    }))
                }
                ReadAction::PageRead { call, .. } => {
                    given = self.w.page.last().copied();
                    let r = &self.w.redis;
                    let at = [
                        r.epoch.clone().unwrap_or_default(),
                        r.pver.to_string(),
                        r.pvid.clone(),
                    ];
                    ReadInput::Polled {
                        entry: given.map(|n| Bytes {
                            prefix: &self.values[n],
                            total_len: self.values[n].len(),
                        }),
                        leased: call.args == at,
                    }
                }
                ReadAction::Answer(answer) => {
                    let served = (answer.source != Source::None).then_some(given).flatten();
                    return Ok((served, answer.source));
                }
                other => return Err(self.fail(format!("unexpected read action {other:?}"))),
            };
        }
        Err(self.fail("a read that does not end".to_owned()))
    }
}

/// Runs `ops` on a reader that follows the state by push and keeps its copy of one page in
/// its tier, caught up at first. After every step, whenever its tier would serve the copy
/// while Redis answers (and whenever a read serves it), the copy is what
/// [`PageTier::check_served`] says. At the end (calls out lost, the reads in flight answered
/// from Redis as it is, the channel up and Redis known plain, every message heard, a pull),
/// a read serves the value Redis holds, and the next one serves it from the tier.
/// Rollbacks with the subscription up that move the page-write sequence (`PushOp::Demote`)
/// are checked as everything else: the two gaps of the sequence found there are closed, each
/// with its history as a test
/// ([`a_rollback_to_the_last_page_write_known_leaves_no_lost_value_in_the_tier`],
/// [`a_number_a_rollback_reused_for_a_lost_announcement_is_a_gap`]).
fn page_tier_history(ops: &[TierOp]) -> Result<(), TestCaseError> {
    PART_LIMIT.with(|p| p.set(PART_TAGS));
    ID_WINDOW.with(|w| w.set(1024));
    let mut writer = Engine::new(config(None, false, DEFAULT_MAX_TAGS)).unwrap();
    writer.follow_tags_by_push(PUSH_BOUND_MS).unwrap();
    let mut reader = Engine::new(config(None, false, DEFAULT_MAX_TAGS)).unwrap();
    reader.follow_tags_by_push(PUSH_BOUND_MS).unwrap();
    let key = reader.entry_key(&Interface::Incremental, INC_KEYS[0].0);
    let mut t = PageTier {
        w: PushReader::new(reader),
        writer,
        key,
        values: Vec::new(),
        announced: HashMap::new(),
        tier: None,
        reads: Vec::new(),
    };
    // A page written, the reader caught up and Redis known plain: most histories then serve
    // the page from the tier within a few steps.
    t.step(0, &TierOp::Push(PushOp::Update { tags: 1 }))?;
    t.rewrite();
    t.w.subscribe();
    t.w.reader.confirm_plain_redis();
    t.w.queue.clear();
    for _ in 0..5 {
        if !t.w.reader.tags_caught_up(Millis(t.w.now)) {
            t.step(0, &TierOp::Push(PushOp::Sync))?;
        }
    }
    prop_assert!(
        t.w.reader.tags_caught_up(Millis(t.w.now)),
        "{}",
        t.w.trace.join("\n")
    );
    t.w.trace.push("start".to_owned());
    for (step, op) in ops.iter().enumerate() {
        t.w.now += 1.0;
        t.w.trace.push(format!(
            "{op:?} (redis page {:?} pver {}, {} on the channel)",
            t.w.page.last(),
            t.w.redis.pver,
            t.w.queue.len()
        ));
        t.step(step, op)?;
        t.w.check()?;
        t.check()?;
    }
    t.w.now += 1.0;
    t.w.trace.push("settle".to_owned());
    t.w.out.clear();
    // Each read: its tier turn, then its `GET`, at most.
    for _ in 0..3 * t.reads.len() {
        if t.reads.is_empty() {
            break;
        }
        if t.reads[0].wait.out() {
            t.run_get(0);
        }
        t.reply(0)?;
        t.check()?;
    }
    prop_assert!(t.reads.is_empty(), "{}", t.w.trace.join("\n"));
    t.step(ops.len(), &TierOp::Push(PushOp::Update { tags: 1 }))?;
    if !(t.w.connected && t.w.told_up) {
        t.w.subscribe();
    }
    t.w.reader.confirm_plain_redis();
    while !t.w.queue.is_empty() {
        t.w.hear();
        t.check()?;
    }
    // A pull after every write; a load takes a pull per page and one to catch up.
    t.step(ops.len(), &TierOp::Push(PushOp::Sync))?;
    for _ in 0..20 {
        if t.w.reader.tags_caught_up(Millis(t.w.now)) {
            break;
        }
        t.step(ops.len(), &TierOp::Push(PushOp::Sync))?;
        t.check()?;
    }
    prop_assert!(
        t.w.reader.tags_caught_up(Millis(t.w.now)),
        "{}\nthe reader is not caught up after settling",
        t.w.trace.join("\n")
    );
    t.check()?;
    let held = t.w.page.last().copied();
    let (first, _) = t.read_now()?;
    prop_assert_eq!(
        first,
        held,
        "{}\nthe settled reader's read does not serve the value Redis holds",
        t.w.trace.join("\n")
    );
    let (second, source) = t.read_now()?;
    prop_assert_eq!(second, held);
    if held.is_some() {
        prop_assert_eq!(
            source,
            Source::Tier,
            "{}\nthe settled reader's second read is not served from its tier",
            t.w.trace.join("\n")
        );
    }
    Ok(())
}

proptest! {
    // Fast: about seven thousand histories a second (release). Each of these mutations failed
    // it (histories passed first, one run of 300,000 each): a gap that starts no generation
    // (0), the binding not checked by `serves_while_redis_answers` (0), a read bound whatever
    // was heard while its `GET` was out (0), a page announcement that marks no copy (0), a
    // pull compared by number only (46,053), an announcement that skips a number taken as the
    // next (42,081); with rollbacks no longer excused, a page read's answer that the sequence
    // moved ignored (in under 3 s of a release run). One did not fail in 1,000,000 cases of the
    // first: an announcement's `prev` not checked; the second, over rollbacks only, fails it in
    // about 8 s of a release run (and the page read's answer ignored in 1 s).
    #![proptest_config(ProptestConfig { cases: cases(2048), ..ProptestConfig::default() })]

    /// One reader's page copy, following by push: the page rewritten by others (announced on
    /// the channel, heard, lost unnoticed, or cut off with the channel, noticed or not yet),
    /// its reads from the tier or from Redis racing announcements and pulls, failovers and
    /// demotes that rewind the page-write sequence, flushes, a lost meta hash, time past the
    /// bound: whenever the tier would serve the copy while Redis answers, no page write the
    /// reader was promised (its last pull, the announcements heard since) replaced it; settled,
    /// a read serves the value Redis holds, and the next from the tier. Rollbacks with the
    /// subscription up included (until the page read named the last page write known, they
    /// were excused: the two gaps found there are closed, their histories tests below).
    #[test]
    fn a_page_copy_the_tier_serves_is_the_last_write_promised(
        ops in proptest::collection::vec(tier_op(), 1..60),
    ) {
        page_tier_history(&ops)?;
    }

    /// The same, over histories of rollbacks with the subscription up ([`tier_rollback_op`]).
    #[test]
    fn across_rollbacks_a_page_copy_the_tier_serves_is_the_last_write_promised(
        ops in proptest::collection::vec(tier_rollback_op(), 1..24),
    ) {
        page_tier_history(&ops)?;
    }
}

/// A read of Redis runs after a page rewrite whose announcement is then lost unnoticed, and
/// Redis rolls back, with the subscription up, to exactly the last page write the reader
/// knows (a master demoted to a replica of a lagging one): no pull can tell the rolled-back
/// state from the one the reader knew. When the read was a plain `GET`, its reply bound
/// (nothing heard since it went out), and the tier served the value Redis lost until the
/// next gap, the next announcement of the page, or the copy's end, however long, while every
/// other process served Redis's. The read names the last page write it knows
/// (page_read.lua), and a value read past it binds nothing.
#[test]
fn a_rollback_to_the_last_page_write_known_leaves_no_lost_value_in_the_tier(
) -> Result<(), TestCaseError> {
    let ops = [
        TierOp::Push(PushOp::Snapshot),
        TierOp::Read,
        TierOp::Rewrite,
        TierOp::Get { pick: 0 },
        TierOp::Push(PushOp::Demote),
        TierOp::Push(PushOp::Drop),
    ];
    page_tier_history(&ops)
}

/// The reader heard page write 2 (another key's); Redis rolls back to page write 1 with the
/// subscription up; another process rewrites the page as page write 2 again (another id),
/// and that announcement is lost unnoticed; the next one, page write 3, is heard. Taken as
/// the next of the 2 the reader knew, it is no gap, and the pull then finds 3 and its id as
/// known: the tier serves the page's old value while Redis holds the rewrite the pull found,
/// however long, when an announcement named its own number and id only. It names the id of
/// the write it follows too (entry_write.lua), and 3 following another 2 than the one known is
/// a gap.
#[test]
fn a_number_a_rollback_reused_for_a_lost_announcement_is_a_gap() -> Result<(), TestCaseError> {
    let ops = [
        TierOp::Push(PushOp::Snapshot),
        TierOp::Read,
        TierOp::Get { pick: 0 },
        TierOp::Reply { pick: 0 },
        TierOp::Push(PushOp::PageWrite),
        TierOp::Push(PushOp::Hear),
        TierOp::Push(PushOp::Demote),
        TierOp::Rewrite,
        TierOp::Push(PushOp::PageWrite),
        TierOp::Push(PushOp::Drop),
    ];
    page_tier_history(&ops)
}

/// A load of a state whose meta hash a page write made anew (an epoch, no version: followed
/// from the log's highest score, no id) reads a first page; the state hash is lost before the
/// next page, which finds nothing more and ends the load; Redis then rolls back with the
/// subscription up to a snapshot holding the hash. The catch-up refresh, at the same epoch and
/// version with no id, was answered in part with nothing: the reader stayed synced without the
/// records the pages after the loss did not return. The page that saw the hash gone reads
/// version 0 (as the refresh answers such a state) below the version the load began at: a
/// rollback, even with no id to check, so the reader loads again.
#[test]
fn a_load_whose_page_saw_the_state_hash_lost_loads_again() -> Result<(), TestCaseError> {
    let ops = [
        TierOp::Push(PushOp::Update { tags: 6 }),
        TierOp::Push(PushOp::Drop),
        TierOp::Push(PushOp::LoseMeta),
        TierOp::Rewrite,
        TierOp::Push(PushOp::Snapshot),
        TierOp::Push(PushOp::Sync),
        TierOp::Push(PushOp::LoseKey { log: false }),
        TierOp::Push(PushOp::Sync),
        TierOp::Push(PushOp::Demote),
        TierOp::Push(PushOp::Sync),
    ];
    page_tier_history(&ops)
}

/// A pull that ran before the state was rolled back with the subscription up, answered after
/// the reader applied the next version of the new line of updates on top of the version the
/// pull read: the reader heard version 2 (a revalidation of `a`) from the demoted master, the new master's version 2 (of `a` and `b`) was lost on the way, and its version 3
/// applied as the next one. The pull's reply (version 2, with the first update's id) took the
/// check of version 2 off the next pull, which named version 3 only (held) and was answered in
/// part: caught up, the reader never learnt `b`. (Found by
/// `any_hscan_answers_a_caught_up_mirror_knows_its_last_pull_and_what_it_heard_since` at
/// 300,000 cases, its scans shrunk to pages of two.)
#[test]
fn a_pull_read_before_a_rollback_does_not_vouch_for_the_version_an_announcement_followed(
) -> Result<(), TestCaseError> {
    use PushOp::{Answer, Demote, Drop, Failover, Hear, Pull, Run, Snapshot, Sync, Update};
    let ops = [
        Snapshot,
        Pull,
        Update { tags: 1 },
        Run { pick: 0 },
        Demote,
        Hear,
        Update { tags: 3 },
        Drop,
        Update { tags: 1 },
        Hear,
        Snapshot,
        Answer { pick: 0 },
        Run { pick: 0 },
        Update { tags: 1 },
        Failover { noticed: false },
        Sync,
    ];
    pushed_mirror_history(&ops, DEFAULT_MAX_TAGS, 1, 1024)
}

/// The meta hash lost alone and made anew by a page write (an epoch, no version, no ids), so
/// the load that follows reads at the log's highest version with no id to check; between its
/// two pages the state is flushed, and the second page, on the empty state, checked nothing and
/// ended the load without `b`; a failover then brings back the state of before the flush, of
/// the same epoch and version, and the catch-up refresh from that version answered in part:
/// caught up, the reader lacked `b`. Found by
/// `a_caught_up_mirror_knows_its_last_pull_and_what_it_heard_since` at 300,000 cases (it
/// failed on the core before 3879aff too). A page now names the meta hash's epoch its load
/// began under, and the page script finds the flushed state's none: rolled back.
#[test]
fn a_load_at_a_version_without_an_id_does_not_take_a_page_of_a_flushed_state(
) -> Result<(), TestCaseError> {
    use PushOp::{Answer, Failover, Flush, LoseMeta, PageWrite, Pull, Run, Snapshot, Sync, Update};
    let ops = [
        Update { tags: 1 },
        Update { tags: 4 },
        Update { tags: 1 },
        Update { tags: 2 },
        LoseMeta,
        PageWrite,
        Run { pick: 0 },
        Sync,
        Pull,
        Snapshot,
        Flush,
        Run { pick: 0 },
        Failover { noticed: false },
        Answer { pick: 0 },
    ];
    pushed_mirror_history(&ops, DEFAULT_MAX_TAGS, 1, 1024)
}

// The properties above again, each HSCAN call answered as the drawn tape says
// ([`ScanChoice`]): pages of one tag to the whole hash, empty pages, the whole hash whatever
// the cursor (a listpack-encoded hash), tags the scan passed returned again with their records
// as they are then, tags that entered the state after the scan began passed over. Apart from
// the properties above, whose scans answer pages of two, so that the seeds the regressions file
// keeps for them replay the histories they were found with (a drawn tape, an argument of
// theirs, would change every one of their scans).
proptest! {
    // Half the cases of the properties above: they run beside them.
    #![proptest_config(ProptestConfig { cases: cases(512), ..ProptestConfig::default() })]

    #[test]
    fn any_hscan_answers_no_read_serves_what_a_resolved_revalidation_invalidated(
        ops in proptest::collection::vec(op(false), 1..80),
        max_tags in mirror_bound(),
        scan in scan_tape(),
    ) {
        set_scan_tape(&scan);
        pulling_history_settles(&ops, max_tags, default_outbox(), ALIGNED)?;
    }

    #[test]
    fn any_hscan_answers_following_by_push_a_read_is_within_the_bound_or_pulled(
        ops in proptest::collection::vec(op(true), 1..80),
        max_tags in mirror_bound(),
        scan in scan_tape(),
    ) {
        set_scan_tape(&scan);
        let mut w = World::new(true, None, true, max_tags);
        for op in &ops {
            w.apply(op)?;
        }
        w.finish_requests()?;
        w.settle()?;
    }

    #[test]
    fn any_hscan_answers_no_singular_handler_read_serves_what_a_resolved_revalidation_invalidated(
        push in any::<bool>(),
        leases in prop::bool::weighted(0.75),
        ops in proptest::collection::vec(mixed_op(), 1..160),
        max_tags in mirror_bound(),
        scan in scan_tape(),
    ) {
        set_scan_tape(&scan);
        let bounds = (max_tags, default_outbox());
        run_up_bounded(push, NextRelease::new(16, 4, 6, false), leases, bounds, ALIGNED, &ops)?;
    }

    #[test]
    fn any_hscan_answers_a_bounded_mirror_gives_back_what_it_folded_to_every_instance(
        ops in proptest::collection::vec(fold_op(), 1..60),
        max_tags in prop_oneof![Just(1u32), Just(2)],
        scan in scan_tape(),
    ) {
        set_scan_tape(&scan);
        pulling_history_settles(&ops, max_tags, default_outbox(), ALIGNED)?;
    }

    #[test]
    fn any_hscan_answers_a_state_that_lost_its_meta_hash_alone_keeps_the_contract(
        ops in proptest::collection::vec(
            prop_oneof![8 => fold_op(), 1 => Just(Op::LoseMeta), 1 => lose_key()],
            1..60,
        ),
        max_tags in prop_oneof![Just(1u32), Just(2)],
        scan in scan_tape(),
    ) {
        set_scan_tape(&scan);
        let mut w = World::new(false, None, true, max_tags);
        for op in &ops {
            w.apply(op)?;
        }
        w.finish_requests()?;
        w.settle()?;
        follows_in_part(&mut w)?;
    }

    #[test]
    fn any_hscan_answers_a_page_rewrite_survives_flushes_failovers_and_a_lost_meta_hash(
        ops in proptest::collection::vec(
            prop_oneof![
                24 => page_op(),
                2 => Just(Op::LoseMeta),
                1 => lose_key(),
                2 => Just(Op::Flush),
                1 => Just(Op::Snapshot),
                1 => Just(Op::Failover),
            ],
            1..80,
        ),
        max_tags in mirror_bound(),
        scan in scan_tape(),
    ) {
        set_scan_tape(&scan);
        page_rewrite_history_settles(&ops, max_tags)?;
    }
}

proptest! {
    // The one-mirror histories: fast, and the closest to the scans.
    #![proptest_config(ProptestConfig { cases: cases(4096), ..ProptestConfig::default() })]

    #[test]
    fn any_hscan_answers_a_synced_mirror_knows_the_state_its_refresh_was_answered_from(
        ops in proptest::collection::vec(mirror_op(), 1..60),
        (max_tags, part_limit, window) in one_mirror_bounds(),
        scan in scan_tape(),
    ) {
        set_scan_tape(&scan);
        one_mirror_history(&ops, max_tags, part_limit, window)?;
    }

    #[test]
    fn any_hscan_answers_a_caught_up_mirror_knows_its_last_pull_and_what_it_heard_since(
        ops in proptest::collection::vec(push_op(), 1..60),
        (max_tags, part_limit, window) in one_mirror_bounds(),
        scan in scan_tape(),
    ) {
        set_scan_tape(&scan);
        pushed_mirror_history(&ops, max_tags, part_limit, window)?;
    }

    #[test]
    fn any_hscan_answers_across_lost_keys_a_synced_mirror_knows_the_state(
        ops in proptest::collection::vec(mirror_loss_op(), 1..30),
        (max_tags, part_limit, window) in one_mirror_bounds(),
        scan in scan_tape(),
    ) {
        set_scan_tape(&scan);
        one_mirror_history(&ops, max_tags, part_limit, window)?;
    }

    #[test]
    fn any_hscan_answers_across_lost_keys_a_caught_up_mirror_knows_its_last_pull(
        ops in proptest::collection::vec(push_loss_op(), 1..30),
        (max_tags, part_limit, window) in one_mirror_bounds(),
        scan in scan_tape(),
    ) {
        set_scan_tape(&scan);
        pushed_mirror_history(&ops, max_tags, part_limit, window)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1024), ..ProptestConfig::default() })]

    /// The model keeps HSCAN's one guarantee whatever the tape: a scan ends (its tape
    /// exhausted, pages of two go on), and returns every tag present for the whole of it at
    /// least once, while tags enter the state between its calls.
    #[test]
    fn the_model_of_hscan_returns_every_tag_present_for_the_whole_scan(
        present in proptest::collection::btree_set(0u8..12, 0..10),
        entering in proptest::collection::vec((0usize..12, 0u8..12), 0..10),
        scan in scan_tape(),
    ) {
        set_scan_tape(&scan);
        let mut state = TagState::default();
        let revalidate = |state: &mut TagState, tag: u8| {
            let args = ["1000", "0", "c", "x", ""].map(str::to_owned);
            let mut args = args.to_vec();
            args.push(format!("t{tag}"));
            state.update(&args);
        };
        for tag in &present {
            revalidate(&mut state, *tag);
        }
        let mut cursor = "0".to_owned();
        let mut returned = HashSet::new();
        let mut ended = false;
        for call in 0..scan.len() + 40 {
            for (_, tag) in entering.iter().filter(|(at, _)| *at == call) {
                revalidate(&mut state, *tag);
            }
            let (next, items) = state.scan(&cursor);
            for tag in items.iter().step_by(2) {
                returned.insert(tag.clone());
            }
            if next == "0" {
                ended = true;
                break;
            }
            cursor = next;
        }
        let notes = take_scan_notes().join("\n");
        prop_assert!(ended, "{notes}\nthe scan did not end");
        for tag in &present {
            prop_assert!(
                returned.contains(&format!("t{tag}")),
                "{notes}\nt{tag}, present for the whole scan, was not returned"
            );
        }
    }
}

/// A load of a state that lost its log (its records left: named `<epoch>~2+`, at version 0)
/// reads a first page; the records go before the next page, which found nothing more and ended
/// the load (the meta hash's epoch and the version named, 0, unchanged); a failover then brought
/// the records back, and the catch-up refresh, answered for the name the load began under, was
/// a part with nothing: the reader stayed synced without the records the later pages missed.
/// Found by a 60,000-case run of the one-mirror property. A page names the state the load began
/// under as the refresh named it, and the page script names the state the same way: the records
/// gone, it is another state (`~`), and the page is rolled back.
#[test]
fn a_load_whose_records_went_between_two_pages_loads_again() -> Result<(), TestCaseError> {
    let ops = [
        MirrorOp::Update { tags: 3 },
        MirrorOp::Update { tags: 4 },
        MirrorOp::LoseKey { log: true },
        MirrorOp::Pull,
        MirrorOp::Snapshot,
        MirrorOp::Run { pick: 0 },
        MirrorOp::Answer { pick: 0 },
        MirrorOp::LoseKey { log: false },
        MirrorOp::Sync,
        MirrorOp::Failover,
        MirrorOp::Sync,
    ];
    one_mirror_history(&ops, 100000, 1, 1024)
}

/// The meta hash lost alone and made anew by another key's page write (an epoch, no version):
/// the reader follows the state from the log's highest score, version 1 with no id. The log
/// and the state hash go; an update numbers its version 1 again over the same epoch, and its
/// announcement is lost unnoticed; the reader hears the next one (version 2) as the next of
/// its version 1, and its next pull, from version 2, was answered in part: caught up without
/// the update it missed, however long. That pull checks every version the mirror took an
/// announcement as the next of, and one followed with no id that has one now is another
/// update's (tag_refresh.lua), so it is answered in full. Found by the push one-mirror property
/// over lost keys.
#[test]
fn a_push_follower_past_a_version_it_followed_with_no_id_checks_it() -> Result<(), TestCaseError> {
    use PushOp::*;
    // The pull runs after the page write made the meta hash anew and is answered after the
    // keys went; the update it then misses numbers 1 again.
    let ops = [
        LoseMeta,
        Pull,
        Answer { pick: 0 },
        PageWrite,
        Run { pick: 0 },
        LoseKey { log: false },
        LoseKey { log: true },
        Answer { pick: 0 },
        Hear,
        Update { tags: 2 },
        Drop,
    ];
    pushed_mirror_history(&ops, DEFAULT_MAX_TAGS, 1, 1024)
}

/// [`op`] with one tag key lost (the meta hash, the state hash or the log), snapshots and
/// failovers drawn more often: the requests of a fleet across the losses the one-mirror
/// properties over lost keys found holes in.
fn world_loss_op(push: bool) -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => op(push),
        1 => Just(Op::LoseMeta),
        2 => lose_key(),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Failover),
    ]
}

proptest! {
    // 1,000,000 cases of each passed when written (release, about 2 minutes each).
    #![proptest_config(ProptestConfig { cases: cases(2048), ..ProptestConfig::default() })]

    /// [`no_read_serves_what_a_resolved_revalidation_invalidated`] across lost keys.
    #[test]
    fn across_lost_keys_no_read_serves_what_a_resolved_revalidation_invalidated(
        ops in proptest::collection::vec(world_loss_op(false), 1..60),
        max_tags in mirror_bound(),
        outbox in outbox_bound(),
    ) {
        pulling_history_settles(&ops, max_tags, outbox, ALIGNED)?;
    }

    /// [`following_by_push_a_read_is_within_the_bound_or_pulled`] across lost keys.
    #[test]
    fn across_lost_keys_following_by_push_a_read_is_within_the_bound_or_pulled(
        ops in proptest::collection::vec(world_loss_op(true), 1..60),
        max_tags in mirror_bound(),
        outbox in outbox_bound(),
    ) {
        let mut w = World::new(true, None, true, max_tags);
        w.outboxes(outbox);
        for op in &ops {
            w.apply(op)?;
        }
        w.finish_requests()?;
        w.settle()?;
    }
}

/// A step of [`after_lost_keys_one_sweep_leaves_no_record_without_a_log_score`]'s histories.
#[derive(Clone, Debug)]
enum SweepOp {
    /// An update (`tag_update.lua`) of one tag of a few.
    Update { tag: u8 },
    /// Time passes: the longest steps take the records written before past the pruning age.
    Advance { ms: u32 },
    /// The version log lost alone ([`TagState::lose_key`]).
    LoseLog,
    /// The state hash lost alone.
    LoseState,
    /// The meta hash lost alone ([`TagState::lose_meta`]).
    LoseMeta,
    /// The state goes on on another server process as it is: a sweep's cursor means nothing
    /// there.
    Move,
}

fn sweep_op() -> impl Strategy<Value = SweepOp> {
    prop_oneof![
        10 => (0u8..24).prop_map(|tag| SweepOp::Update { tag }),
        2 => (0u32..25_000).prop_map(|ms| SweepOp::Advance { ms }),
        2 => Just(SweepOp::LoseLog),
        1 => Just(SweepOp::LoseState),
        1 => Just(SweepOp::LoseMeta),
        1 => Just(SweepOp::Move),
    ]
}

/// The pruning age of [`after_lost_keys_one_sweep_leaves_no_record_without_a_log_score`].
const SWEEP_PRUNE_AFTER_MS: f64 = 10_000.0;

/// An update of `tag` at `now` in the model; checks that its announcement carries exactly the
/// tags a refresh from the version before returns (those logged at its version), and that its
/// sweep step logged no record past the pruning age.
fn sweep_update(state: &mut TagState, tag: &str, now: f64) -> Result<(), TestCaseError> {
    let args = [
        now.to_string(),
        SWEEP_PRUNE_AFTER_MS.to_string(),
        format!("c{now}"),
        "x".to_owned(),
        String::new(),
        tag.to_owned(),
    ];
    state.update(&args);
    let mut announced = state.announced(&args[5..]);
    announced.sort();
    let mut logged: Vec<String> = state
        .log
        .iter()
        .filter(|(_, v)| **v == state.ver)
        .map(|(t, _)| t.clone())
        .collect();
    logged.sort();
    prop_assert_eq!(
        &announced,
        &logged,
        "the announcement of version {}",
        state.ver
    );
    for t in &state.swept {
        let r = state.records[t];
        prop_assert!(
            r.updated_at.0 + SWEEP_PRUNE_AFTER_MS >= now,
            "{t} was logged again past the pruning age"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1024), ..ProptestConfig::default() })]

    /// Records a lost log (or a lost meta hash, or both) left without a log score were out of
    /// pruning's reach (it walks the log) until their tag was revalidated again: the state grew
    /// with every loss. The update that finds no version sweeps the state hash, a step an
    /// update: within two passes (the one under way and one more; pages of two once the tape
    /// is spent: at most the tape's length plus the records, plus a few, updates with no loss)
    /// every record has a log score again or, past the pruning age, is gone, and a young one
    /// is kept.
    #[test]
    fn after_lost_keys_one_sweep_leaves_no_record_without_a_log_score(
        ops in proptest::collection::vec(sweep_op(), 1..40),
        scan in scan_tape(),
    ) {
        set_scan_tape(&scan);
        let mut state = TagState::default();
        let mut now = 1000.0;
        for op in &ops {
            match *op {
                SweepOp::Update { tag } => sweep_update(&mut state, &format!("t{tag}"), now)?,
                SweepOp::Advance { ms } => now += f64::from(ms),
                SweepOp::LoseLog => state.lose_key(true),
                SweepOp::LoseState => state.lose_key(false),
                SweepOp::LoseMeta => state.lose_meta(),
                SweepOp::Move => state = on_another_server(state),
            }
        }
        // An update to come makes a damaged state anew (the log's orphans), or finds no
        // version: the records' fate is then the sweep's.
        let young: Vec<String> = state
            .records
            .iter()
            .filter(|(_, r)| r.updated_at.0 + SWEEP_PRUNE_AFTER_MS >= now)
            .map(|(t, _)| t.clone())
            .collect();
        // The pass under way, then one more when a loss came during it.
        let bound = scan.len() + 2 * (state.records.len().div_ceil(2) + 3);
        let mut updates = 0;
        while updates < bound {
            sweep_update(&mut state, "settle", now)?;
            updates += 1;
            if state.sweep.is_none() {
                break;
            }
        }
        let notes = take_scan_notes().join("\n");
        prop_assert!(state.sweep.is_none(), "{notes}\nno end of the sweep in {bound} updates");
        prop_assert_eq!(state.orphans(), Vec::<&String>::new(), "{}", notes);
        for (t, r) in &state.records {
            prop_assert!(
                r.updated_at.0 + SWEEP_PRUNE_AFTER_MS >= now || state.log.contains_key(t),
                "{notes}\n{t}: past the pruning age and out of the log"
            );
        }
        for t in &young {
            prop_assert!(state.records.contains_key(t), "{notes}\n{t}: young, deleted");
        }
    }
}

/// The model's side of `lua_scripts`
/// `a_log_lost_again_and_again_during_a_sweep_still_has_every_record_reached`: the log lost
/// every 5 updates, a pass over 40 records taking 21 (pages of two), and the young records
/// first in its order; within two passes of the first loss every record past the pruning age
/// is gone.
#[test]
fn a_log_lost_again_and_again_during_a_sweep_still_has_every_record_reached(
) -> Result<(), TestCaseError> {
    set_scan_tape(&[]);
    let mut state = TagState::default();
    for i in 0..20 {
        sweep_update(&mut state, &format!("old{i}"), 1000.0)?;
    }
    let now = 1000.0 + SWEEP_PRUNE_AFTER_MS + 1.0;
    for i in 0..20 {
        sweep_update(&mut state, &format!("young{i}"), now - 1.0)?;
    }
    for i in 0..60 {
        if i % 5 == 0 {
            state.lose_key(true);
        }
        sweep_update(&mut state, &format!("c{i}"), now)?;
    }
    let left: Vec<&String> = state
        .records
        .keys()
        .filter(|t| t.starts_with("old"))
        .collect();
    prop_assert!(left.is_empty(), "past the pruning age and left: {left:?}");
    // The losses over, the pass under way ends, then one more: no record without a log score.
    for i in 0..2 * (state.records.len().div_ceil(2) + 3) {
        if state.sweep.is_none() {
            break;
        }
        sweep_update(&mut state, &format!("d{i}"), now)?;
    }
    prop_assert!(state.sweep.is_none());
    prop_assert_eq!(state.orphans(), Vec::<&String>::new());
    Ok(())
}

/// A page read for a response, with no soft tags (`IncRead`).
fn inc_read(inst: usize, key: usize) -> Op {
    Op::IncRead {
        inst,
        key,
        soft: 0,
        caches: false,
        revalidate: 0,
        on_demand: false,
    }
}

/// Found by the clocks the simulation draws (decision 0036): following by push, instance 2's
/// machine is paused for the bound (its process's clock stands still) while instance 0
/// rewrites the page, whose announcement it has not applied. Resumed, it counted the pause as
/// no time: caught up by its own clock, its tier served the page the rewrite had replaced a
/// second before (failed before `Engine::note_clocks`: "inst 2 served a page from Tier that
/// page write 118 (resolved at 2) replaced before the read began at 1002").
#[test]
fn a_process_resumed_after_a_pause_pulls_before_its_tier_serves_a_page() -> Result<(), TestCaseError>
{
    use Op::*;
    page_rewrite_history_settles(
        &[
            Rewrite {
                inst: 0,
                life: 0,
                held: false,
            },
            ClockStep { inst: 2, ms: 1000 },
            page_read(2),
        ],
        DEFAULT_MAX_TAGS,
    )
}

/// Found by the clocks the simulation draws: following by push, instance 1 (1001 ms ahead of
/// the wall clock) pulled, instance 2 revalidated `b`, and instance 1's machine was paused
/// 1001 ms before a read of the page began a regeneration. Counting the pause as no time, the
/// read took the mirror as caught up, and the page (`b`) was stored judged from 2, after the
/// revalidation at 1 it had not heard of: fresh on every instance (failed with neither the
/// pull `Engine::note_clocks` asks for after the step nor the times `Engine::write_start_at`
/// moves back by the distance before it: "instance 1 stored an entry regenerated from 1002
/// judged by its tags from 2, after revalidation #0 at 1 of its tags").
#[test]
fn a_regeneration_after_a_pause_is_not_vouched_for_by_the_pull_before_it(
) -> Result<(), TestCaseError> {
    use Op::*;
    let ops = [
        inc_read(0, 1),
        LateAnswer { inst: 0, ms: 1 },
        LateAnswer { inst: 0, ms: 1 },
        IncWrite {
            pick: 0,
            tags: 0,
            life: 0,
        },
        Advance { ms: 1 },
        Revalidate {
            inst: 2,
            tags: 2,
            mode: 0,
        },
        Step { pick: 0 },
        inc_read(0, 0),
        Step { pick: 0 },
        Step { pick: 0 },
        Step { pick: 0 },
        ClockStep { inst: 1, ms: 1001 },
        inc_read(1, 0),
        Step { pick: 0 },
        Step { pick: 0 },
        IncWrite {
            pick: 2,
            tags: 2,
            life: 0,
        },
    ];
    let release = NextRelease::new(16, 4, 6, false);
    run_up_bounded(
        true,
        release,
        false,
        (DEFAULT_MAX_TAGS, default_outbox()),
        [(0.0, 0.0), (1001.0, 0.0), (0.0, 0.0)],
        &ops,
    )
}

/// Found by the clocks the simulation draws: following by push, instance 1's clock runs
/// 1001 ms ahead of the wall clock when a read of the page begins a regeneration (its times
/// on that scale), then its machine is paused 1001 ms (the clocks agree again) before the
/// write. Moved back by the distance at the write (none), the page was stored judged from the
/// read's vouched time on the scale ahead (stamped 1002, judged from 2), after instance 2's
/// revalidation at 1 of `a`, which instance 1 had not heard of (failed before
/// `Engine::write_start_at` moved the times back by the farthest distance told within a
/// regeneration's life: "instance 1 stored an entry regenerated from 2 judged by its tags from 2,
/// after revalidation #0 at 1 of its tags ...; stamped 1002; its clock 0 ahead").
#[test]
fn a_regeneration_begun_while_the_clock_ran_ahead_is_stamped_on_the_wall_clock_of_its_start(
) -> Result<(), TestCaseError> {
    use Op::*;
    let ops = [
        inc_read(0, 1),
        Step { pick: 0 },
        Step { pick: 0 },
        IncWrite {
            pick: 0,
            tags: 0,
            life: 0,
        },
        Advance { ms: 1 },
        Revalidate {
            inst: 2,
            tags: 1,
            mode: 0,
        },
        Step { pick: 0 },
        inc_read(1, 1),
        Step { pick: 0 },
        Step { pick: 0 },
        Step { pick: 0 },
        LateAnswer { inst: 0, ms: 1 },
        inc_read(1, 0),
        inc_read(0, 0),
        inc_read(0, 1),
        Step { pick: 1 },
        Step { pick: 0 },
        Step { pick: 2 },
        Step { pick: 0 },
        ClockStep { inst: 1, ms: 1001 },
        IncWrite {
            pick: 1,
            tags: 1,
            life: 0,
        },
        inc_read(0, 0),
    ];
    let release = NextRelease::new(16, 4, 6, false);
    run_up_bounded(
        true,
        release,
        false,
        (DEFAULT_MAX_TAGS, default_outbox()),
        [(0.0, 0.0), (1001.0, 0.0), (0.0, 0.0)],
        &ops,
    )
}

/// The converse (decision 0036's rules disabled: a revalidation stamped on the process's clock,
/// entries not moved back) fails here: instance 1's clock is stepped 1569 ms ahead, it writes
/// `k0` (stamped 1569), instance 2's revalidation of `a` at 0 resolves, and instance 0 reads
/// `k0` with the soft tag `a`: served fresh ("instance 0 served Fresh ... an entry of k0 created
/// at 0 tagged a, invalidated (Expired) by revalidation #0 Expire at 0"). Found by the
/// simulation in under 200 cases with the rules disabled.
#[test]
fn an_entry_written_ahead_of_the_wall_clock_is_reached_by_a_revalidation_after_it(
) -> Result<(), TestCaseError> {
    use Op::*;
    let ops = [
        ClockStep { inst: 1, ms: -1569 },
        Revalidate {
            inst: 2,
            tags: 1,
            mode: 0,
        },
        Write {
            inst: 0,
            key: 0,
            tags: 0,
            began: 0,
        },
        Write {
            inst: 1,
            key: 0,
            tags: 0,
            began: 0,
        },
        Read {
            inst: 0,
            key: 0,
            soft: 1,
            caches: false,
        },
    ];
    pulling_history_settles(&ops, DEFAULT_MAX_TAGS, default_outbox(), ALIGNED)
}

/// Found by the simulation (`no_read_serves_what_a_resolved_revalidation_invalidated`, after
/// 2,448 of 5,000 cases on f83153a): instance 2's clock runs 11 ms ahead of the wall clock,
/// drifting 123 ppm slow. A regeneration it began at 0 (its clock 11) is written at 1, when its
/// clock reads 11.999877 (11.999756 as an `f64` holds a time of 2026: one unit in the last
/// place there is 2^-12 ms), 10.999756 ms ahead: moved back by that distance
/// (`Engine::write_start_at`, decision 0036), the entry is stamped 11 - 10.999756 = 0.000244 ms
/// after 0, later than instance 0's revalidation at 0 of its tag, which it outlives. That is the
/// rule as documented (docs/failures.md, "Clocks": moved back by the distance at the write): the
/// clocks came 0.000123 ms closer while the regeneration ran. The check allowed a late stamp
/// only for a clock ahead by the slack or less, and failed: "instance 0 served Fresh (Next sees
/// it Fresh) an entry of k1 created at 0 tagged a, invalidated (Expired) by revalidation #0
/// Expire at 0 resolved at step 1". It now allows exactly the stamp's distance past the
/// regeneration's start where drift alone brought the clocks closer (`World::moved_at_the_write`):
/// here 2^-12 ms, and none with the same clocks not drifting (the entry then on 0 exactly,
/// reached by the revalidation). Since the simulation models the `get` that began the
/// regeneration (`World::start_told`), that get tells the engine the 11 ms ahead at 0 (nothing
/// told before): the write moves the stamp back by 11, onto 0, and nothing is allowed. With a
/// request of instance 2 at 0 before it (telling the same distance, so the get's is within the
/// host's filter) the allowance is what the write's distance leaves, 2^-12 ms again (the engine
/// moves the stamp back by the 11 the request told: the allowance is an upper bound there).
#[test]
fn an_entry_moved_back_by_a_distance_drift_shrank_during_its_regeneration_is_that_much_late(
) -> Result<(), TestCaseError> {
    use Op::*;
    let told_before = Read {
        inst: 2,
        key: 0,
        soft: 0,
        caches: false,
    };
    let ops = [
        Revalidate {
            inst: 0,
            tags: 1,
            mode: 0,
        },
        Advance { ms: 1 },
        Write {
            inst: 2,
            key: 1,
            tags: 0,
            began: 1,
        },
        HoldTag {
            inst: 0,
            merge: false,
            lost: false,
        },
        Read {
            inst: 0,
            key: 0,
            soft: 0,
            caches: false,
        },
        Read {
            inst: 0,
            key: 1,
            soft: 1,
            caches: false,
        },
    ];
    let one_ulp = (T0 + 11.0) - (T0 + 11.0 - 0.000_123);
    assert_eq!(one_ulp, 2f64.powi(-12));
    for (rate, before, late) in [
        (-0.000_123, false, 0.0),
        (-0.000_123, true, one_ulp),
        (0.0, true, 0.0),
        (0.0, false, 0.0),
    ] {
        let clocks = [(0.0, 0.0), (0.0, 0.0), (11.0, rate)];
        let mut w = World::new(false, None, true, DEFAULT_MAX_TAGS);
        w.outboxes(default_outbox());
        w.clocks(clocks);
        let first = before.then_some(&told_before);
        for op in first.into_iter().chain(&ops) {
            w.apply(op)?;
        }
        w.finish_requests()?;
        w.settle()?;
        // The regeneration began at 0: allowed exactly what the write's stamp is past it.
        prop_assert_eq!(w.slack(T0), late, "rate {} told before {}", rate, before);
    }
    Ok(())
}

/// Found by `any_hscan_answers_no_read_serves_what_a_resolved_revalidation_invalidated` at
/// 5,000 cases on main (seed 1195751a, shrunk, its scan tape `[0, 3]`): instance 0's clock
/// jumps 11 ms ahead of its wall clock, a `'use cache'` regeneration of `_N_T_/p` begins there
/// at true 0 (Next's stamp 11), instance 1 revalidates
/// `_N_T_/p` at 0, instance 0's machine is paused 11 ms (the clocks agree again), a request of
/// it reads at 11 and the regeneration is written at 11. The simulation did not model the
/// `get` that began the regeneration: the engine, never told the clocks before the pause, moved
/// the stamp back by the distance at the write (none), and the entry outlived the revalidation
/// (failed: "instance 0 served Fresh (Next sees it Fresh) an entry of k0 created at 0 tagged
/// _N_T_/p, invalidated (Expired) by revalidation #0 Expire at 0 resolved at step 2 (read began
/// at step 4; ...; source OwnWrite; ... timestamp: 1795690530011.0"). A host's handler `get`
/// tells the engine both clocks (`TagSync.noteClocks`: nothing told before, so past the
/// filter): 11 ahead at its clock's 11, which the write, within a regeneration's life, moves
/// the stamp back by, onto 0, reached by the revalidation (`World::start_told`).
#[test]
fn the_get_that_began_a_regeneration_told_the_engine_the_distance_ahead_then(
) -> Result<(), TestCaseError> {
    use Op::*;
    let ops = [
        ClockStep { inst: 0, ms: -11 },
        Revalidate {
            inst: 1,
            tags: 4,
            mode: 0,
        },
        ClockStep { inst: 0, ms: 11 },
        Read {
            inst: 0,
            key: 0,
            soft: 0,
            caches: false,
        },
        Write {
            inst: 0,
            key: 0,
            tags: 4,
            began: 11,
        },
    ];
    set_scan_tape(&[0, 3]);
    pulling_history_settles(&ops, 100_000, default_outbox(), ALIGNED)
}

/// What the host's filter leaves (docs/failures.md, "Clocks"; decision 0036): the `get` that
/// begins a regeneration tells the engine the clocks only where their distance moved by more
/// than [`CLOCK_NOTE_MS`] since last told. Instance 1's clock drifts 2 % fast: 9.8 ms ahead at
/// 490, told by a read (within the slack, so no distance ahead is kept), 14.6 ms ahead at 730
/// when a regeneration begins, untold (4.8 ms from the last told), then its machine is paused
/// 15 ms (the clocks agree again, 0.4 ms behind) before the write. Nothing told past the slack,
/// none at the write: the entry keeps Next's stamp, 744.6, 14.6 ms after the wall clock of its
/// start and after instance 0's revalidation at 731, which it outlives. Up to the slack plus the
/// filter (15 ms), beyond what the check allows (nothing past the slack where a step came since
/// the regeneration began): the history fails, as this pins.
#[test]
fn a_pause_after_drift_the_filter_left_untold_at_a_regenerations_start_leaves_its_entry_late() {
    use Op::*;
    let ops = [
        Advance { ms: 490 },
        Read {
            inst: 1,
            key: 1,
            soft: 0,
            caches: false,
        },
        Advance { ms: 240 },
        Advance { ms: 1 },
        Revalidate {
            inst: 0,
            tags: 1,
            mode: 0,
        },
        ClockStep { inst: 1, ms: 15 },
        Write {
            inst: 1,
            key: 0,
            tags: 1,
            began: 16,
        },
        Read {
            inst: 0,
            key: 0,
            soft: 0,
            caches: false,
        },
    ];
    let mut w = World::new(false, None, true, DEFAULT_MAX_TAGS);
    w.outboxes(default_outbox());
    w.clocks([(0.0, 0.0), (0.0, 0.02), (0.0, 0.0)]);
    let run = (|| {
        for op in &ops {
            w.apply(op)?;
        }
        w.finish_requests()?;
        w.settle()
    })();
    let Err(TestCaseError::Fail(why)) = run else {
        panic!("the entry was reached: {run:?}");
    };
    assert!(
        why.message()
            .contains("served Fresh (Next sees it Fresh) an entry of k0 created at 730"),
        "{why}"
    );
    assert!(
        why.message().contains("timestamp: 1795690530744.6"),
        "{why}"
    );
}

/// A timer set on a drifting process's clock comes: at the true time found for it, that clock
/// reads the timer's time or later. (`World::true_time_at` added the clock up in another order
/// than `World::clock` did, found times a hair short, and a lease wait's last poll, set again at
/// its time, never came: "requests in flight never ended", first drawn with a process drifting
/// 474 ppm fast and paused 33 ms in all.)
#[test]
fn a_timer_on_a_drifting_clock_comes() -> Result<(), TestCaseError> {
    let mut w = World::new(true, None, true, DEFAULT_MAX_TAGS);
    w.clocks([(0.0, 0.000474), (0.0, 0.0), (1000.0, 0.0)]);
    for ms in [11, 4, 3, 3, 3, 3, 3, 3] {
        w.apply(&Op::ClockStep { inst: 0, ms })?;
        w.apply(&Op::Advance { ms: 997 })?;
    }
    for k in 0..20_000u32 {
        let until = w.clock(0) + f64::from(k) * 0.37;
        let at = w.true_time_at(0, until);
        let now = std::mem::replace(&mut w.now, at);
        prop_assert!(
            w.clock(0) >= until,
            "a timer at {until} read {}",
            w.clock(0)
        );
        w.now = now;
    }
    Ok(())
}

/// Found by `page_writes_over_a_state_that_lost_its_meta_hash_alone_keep_the_contract` at
/// 3,000 cases (push, no leases): a `'use cache'` regeneration on instance 2 begins at true 999,
/// before instance 2 learns (at 1,214) of instance 0's revalidation of `a` at 1; then instance
/// 2's clock jumps 444 ms ahead of its wall clock, and the regeneration is written at 2,214.
/// The simulation handed the engine Next's stamp as the clock now less the regeneration's
/// length (1,443: a time that clock never read, 1,214 before the step and 1,658 after it), so
/// the engine took the regeneration as begun after its pull of 1,214 and stored it judged from
/// that pull (moved back by the 444 ms ahead: 770), after the revalidation: "instance 2 stored
/// an entry regenerated from 999 judged by its tags from 770, after revalidation #0 at 1 of its
/// tags, resolved before the regeneration began, which it had not heard of (its last refresh
/// started at 0; stamped 999; its clock 444 ahead)". Next stamps the entry when the
/// regeneration begins, on its clock as it read then (999, `World::clock_at`): vouched for by
/// the pull before it, the engine stores it (moved back by 444 ms: stamped 555) judged from
/// -445, which the revalidation reaches. (With
/// `regen::judged_by` ignoring the pulls, it fails here again: "judged by its tags from 555".)
#[test]
fn a_use_cache_regeneration_begun_before_a_step_is_stamped_on_the_clock_of_its_start(
) -> Result<(), TestCaseError> {
    use Op::*;
    let ops = [
        Rewrite {
            inst: 0,
            life: 0,
            held: false,
        },
        Up,
        Revalidate {
            inst: 0,
            tags: 1,
            mode: 0,
        },
        Advance { ms: 1213 },
        Write {
            inst: 0,
            key: 0,
            tags: 0,
            began: 0,
        },
        Tick { inst: 2 },
        Seed {
            built: (0, 0),
            lag: 0,
            tags: 0,
            life: 0,
            lost: true,
        },
        Seed {
            built: (0, 0),
            lag: 0,
            tags: 0,
            life: 0,
            lost: false,
        },
        IncWrite {
            pick: 0,
            tags: 0,
            life: 0,
        },
        inc_read(0, 0),
        Step { pick: 0 },
        Step { pick: 2 },
        ClockStep { inst: 2, ms: -444 },
        Step { pick: 3 },
        Step { pick: 0 },
        Step { pick: 2 },
        Step { pick: 2 },
        Step { pick: 0 },
        Step { pick: 4 },
        Write {
            inst: 2,
            key: 0,
            tags: 1,
            began: 1215,
        },
    ];
    let mut w = World::new(
        true,
        Some(NextRelease::new(16, 4, 6, false)),
        false,
        DEFAULT_MAX_TAGS,
    );
    for i in 0..w.insts.len() {
        w.apply(&Op::Subscribe { inst: i })?;
        w.refresh(i);
    }
    for op in &ops {
        w.apply(op)?;
    }
    w.finish_requests()?;
    w.settle()?;
    follows_in_part(&mut w)?;
    Ok(())
}

/// [`following_by_push_a_read_is_within_the_bound_or_pulled`]'s world (push, leases, mirrors
/// unbounded, outboxes of the default capacity, clocks aligned) running `ops`, then settling.
fn push_history_settles(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut w = World::new(true, None, true, DEFAULT_MAX_TAGS);
    w.outboxes(default_outbox());
    w.clocks(ALIGNED);
    for op in ops {
        w.apply(op)?;
    }
    w.finish_requests()?;
    w.settle()
}

/// Instance 1 subscribes and pulls at 0; instance 2 revalidates tag `a` at 1, an outage drops
/// the channels, and instance 1 regenerates an entry tagged `a` at 1001, past the pull
/// interval (`PUSH_BOUND_MS`) since its pull, without having heard of the revalidation: the
/// pull's age alone says it is not caught up. With `PushFollow::caught_up`'s pull-age condition
/// (`now - at < max_pull_interval_ms`) removed: "instance 1 stored an entry regenerated from
/// 1001.0009765625 judged by its tags from 1.0009765625, after revalidation #0
/// at 1 of its tags, resolved before the regeneration began, which it had not heard of". The
/// shrunk case `following_by_push_a_read_is_within_the_bound_or_pulled` found with that
/// condition off, in the world it was drawn in (outboxes of 1,000, instance 2's clock 1 ppm
/// slow; in [`push_history_settles`]'s it passes with the condition off). Stored seed
/// e284bade's case was kept for this defect; its written-out history in
/// `the_shrunk_cases_of_the_stored_seeds_keep_the_contract` passes with the condition off.
#[test]
fn following_by_push_a_pull_older_than_the_pull_interval_does_not_keep_a_process_caught_up(
) -> Result<(), TestCaseError> {
    use Op::*;
    let ops = [
        Subscribe { inst: 1 },
        Tick { inst: 1 },
        Advance { ms: 1 },
        Revalidate {
            inst: 2,
            tags: 1,
            mode: 0,
        },
        Down,
        TagStep { pick: 0 },
        Revalidate {
            inst: 2,
            tags: 1,
            mode: 0,
        },
        Write {
            inst: 1,
            key: 0,
            tags: 1,
            began: 0,
        },
    ];
    let mut w = World::new(true, None, true, DEFAULT_MAX_TAGS);
    w.outboxes(1000);
    w.clocks([(0.0, 0.0), (0.0, 0.0), (0.0, -1e-6)]);
    for op in &ops {
        w.apply(op)?;
    }
    w.finish_requests()?;
    w.settle()
}

// The histories the regressions file's commented seeds stood for, written out: the op arms
// added since (held, late and lost tag update replies, full outboxes, closes) draw other
// histories from those seeds, so each is replayed here by its ops.

/// Seeds 00b7735e, 42e9240e and 24745719 (a part's cut, then a failover that lost the later
/// change of a tag the part left out; mirrors of one tag, so parts of one tag): instance 1
/// synced at version 1; `a` revalidated (version 2), `b` (3), a replica keeps that state, `a`
/// again (4). Instance 1's refresh from 1 is answered in part: `b` only, up to version 3, cut
/// from 4 (`a`'s log score is 4, so it comes with a later part). The failover to the replica
/// loses version 4 and keeps 3 with its id, and the next refresh, from 3, finds nothing newer:
/// caught up without `a`'s change of version 2, which no later reply names, instance 1 serves
/// an entry tagged `a` made before it. The refresh names the part's cut
/// (`TagMirror::part_check`) until one at or past it is answered: the script finds 4 gone and
/// answers in full. (With `part_check` returning `None`: "instance 1 served Fresh (Next sees it
/// Fresh) an entry of k0 created at 0 tagged a, invalidated (Expired) by revalidation #1 Expire
/// at 1 resolved at step 7".)
#[test]
fn a_failover_below_a_parts_cut_that_lost_a_later_change_of_a_tag_it_left_out_is_seen(
) -> Result<(), TestCaseError> {
    use Op::*;
    let ops = [
        Revalidate {
            inst: 0,
            tags: 4,
            mode: 0,
        },
        Load { inst: 1 },
        Write {
            inst: 0,
            key: 0,
            tags: 1,
            began: 0,
        },
        Step { pick: 0 },
        Step { pick: 0 },
        Advance { ms: 1 },
        Revalidate {
            inst: 0,
            tags: 1,
            mode: 0,
        },
        Revalidate {
            inst: 0,
            tags: 2,
            mode: 0,
        },
        Snapshot,
        Revalidate {
            inst: 0,
            tags: 1,
            mode: 0,
        },
        Tick { inst: 1 },
        Failover,
        Tick { inst: 1 },
        Read {
            inst: 1,
            key: 0,
            soft: 0,
            caches: false,
        },
    ];
    pulling_history_settles(&ops, 1, default_outbox(), ALIGNED)
}

/// Seed e0e67075 (following by push, a `'use cache'` value written before its instance heard
/// of a revalidation another made): instance 2, subscribed, pulls at 0; instance 0 revalidates
/// `a` at 300, and its announcement has not reached instance 2, still caught up, when it writes
/// an entry tagged `a` whose regeneration it began at 379. Judged from 379, the entry would be
/// fresh on every instance once they all knew of the revalidation, which its data did not
/// see. `regen::use_cache_made` judges it by the last pull its process applied before it began
/// (0). (With `use_cache_made` returning `None`: "instance 2 stored an entry regenerated from
/// 379 judged by its tags from 379, after revalidation #0 at 300 of its tags, resolved before
/// the regeneration began, which it had not heard of (its last refresh started at 0; stamped
/// 379; its clock 0 ahead)".)
#[test]
fn following_by_push_a_use_cache_value_is_judged_by_the_last_pull_before_it_began(
) -> Result<(), TestCaseError> {
    use Op::*;
    push_history_settles(&[
        Subscribe { inst: 2 },
        Read {
            inst: 2,
            key: 0,
            soft: 0,
            caches: false,
        },
        Step { pick: 0 },
        Step { pick: 0 },
        Step { pick: 0 },
        Step { pick: 0 },
        Advance { ms: 300 },
        Revalidate {
            inst: 0,
            tags: 1,
            mode: 0,
        },
        Advance { ms: 79 },
        Write {
            inst: 2,
            key: 0,
            tags: 1,
            began: 0,
        },
    ])
}

/// Seeds 39b81bae and 144579738 (following by push, a page regenerated while a pull was
/// applied in the same ms; the seeds' pull began a load, this one's is a plain pull, which the
/// rule treats alike): every instance pulled at 0; instance 1 revalidates the page's tag at 5,
/// unheard by instance 0; at 10 a read of instance 0 misses the page and begins its
/// regeneration, then instance 0's pull (started and applied at 10) brings the revalidation,
/// and the regeneration is written. Its data was judged before that pull was applied: it may
/// count from the pull before (0) only. `PushFollow::vouched_from` takes a pull applied before
/// the regeneration's ms, not in it. (With `applied <= began` there: "instance 0 stored an
/// entry regenerated from 10 judged by its tags from 10, after revalidation #0 at 5 of its
/// tags, resolved before the regeneration began, which it had not heard of (its last refresh
/// started at 0; stamped 10; its clock 0 ahead)".)
#[test]
fn following_by_push_a_pull_applied_in_the_ms_a_regeneration_began_does_not_vouch_for_it(
) -> Result<(), TestCaseError> {
    use Op::*;
    let ops = [
        Advance { ms: 5 },
        Revalidate {
            inst: 1,
            tags: 4,
            mode: 0,
        },
        Advance { ms: 5 },
        page_read(0),
        Step { pick: 0 },
        Step { pick: 0 },
        Step { pick: 0 },
        Step { pick: 0 },
        Tick { inst: 0 },
        IncWrite {
            pick: 0,
            tags: 0,
            life: 0,
        },
    ];
    run_up(true, NextRelease::new(16, 4, 6, false), true, &ops)
}

/// Seed 932ffb6a (following by push, a page rewritten after an announcement was applied,
/// before a revalidation it had not heard: not judged past what it heard): instance 2 applies
/// the announcement of instance 0's revalidation of `a` (made at 1) as the next version;
/// instance 0 revalidates the page's tag at 2, which instance 2 has not heard when it rewrites
/// the page at 3. The announcement vouches for every version before it, not for what reached
/// Redis after it: the rewrite is judged from 2 (the ms after the announced revalidation),
/// which the revalidation at 2 reaches. (With `PushFollow::vouched_from` crediting an
/// announcement applied before the regeneration began up to that start: "instance 2 stored an
/// entry regenerated from 3 judged by its tags from 3, after revalidation #1 at 2 of its tags,
/// resolved before the regeneration began, which it had not heard of (its last refresh
/// started at 1; stamped 3; its clock 0 ahead)".)
#[test]
fn following_by_push_a_page_rewritten_after_an_announcement_is_not_judged_past_it(
) -> Result<(), TestCaseError> {
    use Op::*;
    let ops = [
        Revalidate {
            inst: 0,
            tags: 1,
            mode: 0,
        },
        Deliver { inst: 2 },
        Rewrite {
            inst: 0,
            life: 0,
            held: false,
        },
        Revalidate {
            inst: 0,
            tags: 4,
            mode: 0,
        },
        Rewrite {
            inst: 2,
            life: 0,
            held: false,
        },
    ];
    page_rewrite_history_settles(&ops, DEFAULT_MAX_TAGS)
}

/// close()'s last attempt ([`Op::Close`]): instance 0's outbox holds one revalidation; Redis
/// is out of reach when it revalidates `a`, then `b`, which takes `a` out of the full outbox,
/// to be merged back. Redis is back, and instance 0 closes: the last attempt sends `b`, then
/// the merge of `a`, whose reply is lost. `a` took effect on that instance only, and the line
/// at close says so ("closing with lost tag records not given back"): the engine's count of
/// records to give back holds the batch planned and not acknowledged
/// (`TagSync::resend_len`). (Counting the queue alone: "instance 0 closed with revalidations
/// [(0, ["a"])] taken out of its outbox and not merged back, and no closing line for records
/// to give back".)
#[test]
fn a_merge_that_fails_at_close_is_named_by_the_closing_lines() -> Result<(), TestCaseError> {
    use Op::*;
    let ops = [
        Down,
        Revalidate {
            inst: 0,
            tags: 1,
            mode: 0,
        },
        Revalidate {
            inst: 0,
            tags: 2,
            mode: 0,
        },
        Up,
        HoldTag {
            inst: 0,
            merge: true,
            lost: true,
        },
        Close { inst: 0 },
    ];
    pulling_history_settles(&ops, DEFAULT_MAX_TAGS, 1, ALIGNED)
}

// The cases the regressions file's `# shrinks to` comments named, as data. A stored seed replays
// the case it was stored for only while the strategy draws the same values from it: the op arms
// added since (held, late and lost tag update replies, full outboxes, closes), the clock pairs
// and the other inputs drawn since made each of these seeds draw another history (checked by
// the inputs drawn from every seed at 4fb8f91 and after: none the same), so the seeds are out
// of the regressions file and their shrunk histories run here, in the world of the property
// that found them (for a flag the comment does not name, every value). A field an op gained
// after its case was stored takes its first value (0 or false).
//
// The ops' meaning moved too (a tag update's run and reply are separate steps since ec027f2,
// so `Step` picks other tasks), so a case may no longer reach what it once did. Checked with
// the fix switched off: 3654f6a7 and 801e1880 fail with decision 0036's rules off
// (`time::ahead_of_wall` 0, `time::revalidation_stamp` the process's clock). With either half
// of 8a4f997's fix off in `TagState::refresh` (records without an epoch named '', or answered
// in part), e08d2444 fails (with the read it now ends with, below), and no other case here.
// e284bade (push caught up without the pull-age condition) and c4b6d5f2 (a bound of 1: a
// folded expiry lost by a flush, given back only as FOLDED_TAG; stored failing with
// `TagMirror::evaluate` not consulting it) no longer fail with their defects planted: the
// tests that do are named in docs/internals.md. The rest were not checked one by one. Among
// them: 9f0a927c and 8686b276 (the default run's failures at 9366182: a folded
// revalidation lost by a flush seen through an update reply).

/// The world a stored seed's shrunk case runs in.
#[derive(Clone, Copy)]
enum SeedWorld {
    /// [`pulling_history_settles`]'s world, then the same following by push (the properties
    /// `no_read_serves_what_a_resolved_revalidation_invalidated` and
    /// `following_by_push_a_read_is_within_the_bound_or_pulled` and their variants), every
    /// HSCAN answering its default.
    Plain,
    /// [`run_up_bounded`]'s (`no_singular_handler_read_serves_...`,
    /// `overlapping_regenerations_...`, `page_writes_over_...`), on Next 16.3.8 when
    /// `before_16_4`, else 16.4.6.
    Mixed {
        push: &'static [bool],
        before_16_4: &'static [bool],
        leases: &'static [bool],
    },
    /// `written_back_values_and_a_requests_second_read_keep_the_contract`'s: a page rewrite of
    /// lifetime `life` first, on Next 16.5.0.
    WriteBack {
        push: &'static [bool],
        leases: &'static [bool],
        life: u8,
    },
}

/// A stored seed's shrunk case: the first 8 hex digits of its seed, and what it drew.
struct SeedCase {
    seed: &'static str,
    world: SeedWorld,
    max_tags: u32,
    clocks: Clocks,
    ops: Vec<Op>,
}

/// Runs `c` in every world its [`SeedWorld`] names, and settles each; after a lost meta hash
/// or key, each instance follows the state in part again ([`follows_in_part`]), as the
/// properties that draw those losses check.
fn seed_case_settles(c: &SeedCase) -> Result<(), TestCaseError> {
    let lost = c
        .ops
        .iter()
        .any(|op| matches!(op, Op::LoseMeta | Op::LoseKey { .. }));
    let run = |push: bool, release: Option<NextRelease>, leases: bool, ops: &[Op]| {
        set_scan_tape(&[]);
        let mut w = World::new(push, release, leases, c.max_tags);
        w.outboxes(default_outbox());
        w.clocks(c.clocks);
        if release.is_some() {
            for i in 0..w.insts.len() {
                w.apply(&Op::Subscribe { inst: i })?;
                w.refresh(i);
            }
        }
        for op in ops {
            w.apply(op)?;
        }
        w.finish_requests()?;
        w.settle()?;
        if lost {
            follows_in_part(&mut w)?;
        }
        Ok::<(), TestCaseError>(())
    };
    match c.world {
        SeedWorld::Plain => {
            for push in [false, true] {
                run(push, None, true, &c.ops)?;
            }
        }
        SeedWorld::Mixed {
            push,
            before_16_4,
            leases,
        } => {
            for &p in push {
                for &before in before_16_4 {
                    for &l in leases {
                        let release = if before {
                            NextRelease::new(16, 3, 8, false)
                        } else {
                            NextRelease::new(16, 4, 6, false)
                        };
                        run(p, Some(release), l, &c.ops)?;
                    }
                }
            }
        }
        SeedWorld::WriteBack { push, leases, life } => {
            let mut all = vec![Op::Rewrite {
                inst: 0,
                life,
                held: false,
            }];
            all.extend(c.ops.iter().cloned());
            for &p in push {
                for &l in leases {
                    run(p, Some(NextRelease::new(16, 5, 0, false)), l, &all)?;
                }
            }
        }
    }
    Ok(())
}

/// Every shrunk case a seed of the regressions file was stored for, written out (see above).
/// Seeds 23da222e, 35d7eb07, 0836379c and f516ed6d are gaps `World::excuse_gaps` excuses (see
/// the ignored tests it names): kept so that they fail once the excuse goes.
/// e08d2444 ends with a read its shrunk case did not need when it was found (the ops' meaning
/// moved since): without it nothing reads after the second loss, and the case passed with
/// `TagState::refresh` answering a follower of `no-meta` in part (8a4f997's fix off).
/// 31128208's is its case without the `Down`, `Up` and instance 1's revalidation around the
/// write: as written out first (with them) it passed with `time::revalidation_stamp` taking
/// the process's clock (6ff6a3f's defect back); as here it fails so.
#[rustfmt::skip]
#[test]
fn the_shrunk_cases_of_the_stored_seeds_keep_the_contract() -> Result<(), TestCaseError> {
    use Op::*;
    let cases = [
        SeedCase { seed: "56362643", world: SeedWorld::Plain, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Snapshot, Revalidate { inst: 0, tags: 1, mode: 0 }, Failover] },
        SeedCase { seed: "7d4cc883", world: SeedWorld::Plain, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Revalidate { inst: 0, tags: 1, mode: 0 }, Snapshot, Revalidate { inst: 0, tags: 2, mode: 0 }, Failover] },
        SeedCase { seed: "4c43a018", world: SeedWorld::Plain, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Revalidate { inst: 0, tags: 1, mode: 0 }, Snapshot, Tick { inst: 1 }, Flush, Revalidate { inst: 0, tags: 2, mode: 0 }, Failover] },
        SeedCase { seed: "3dca919a", world: SeedWorld::Plain, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Revalidate { inst: 0, tags: 1, mode: 0 }, Flush, Revalidate { inst: 0, tags: 1, mode: 1 }, Revalidate { inst: 0, tags: 1, mode: 1 }] },
        SeedCase { seed: "071fb898", world: SeedWorld::Plain, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Revalidate { inst: 0, tags: 4, mode: 3 }, Snapshot, Advance { ms: 1 }, Revalidate { inst: 0, tags: 4, mode: 3 }, Failover, Advance { ms: 999 }, Tick { inst: 1 }, Restart { inst: 0 }, Revalidate { inst: 2, tags: 4, mode: 2 }] },
        SeedCase { seed: "fda0ed48", world: SeedWorld::Plain, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Revalidate { inst: 0, tags: 1, mode: 0 }, Snapshot, Up, Snapshot, Advance { ms: 0 }, Tick { inst: 1 }, Revalidate { inst: 1, tags: 1, mode: 1 }, Failover, Revalidate { inst: 0, tags: 1, mode: 0 }, Revalidate { inst: 1, tags: 2, mode: 0 }] },
        SeedCase { seed: "225630d8", world: SeedWorld::Plain, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Snapshot, Revalidate { inst: 1, tags: 1, mode: 0 }, Tick { inst: 1 }, Flush, Tick { inst: 1 }, Failover, Write { inst: 0, key: 0, tags: 0, began: 0 }] },
        SeedCase { seed: "e1da72c3", world: SeedWorld::Plain, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Revalidate { inst: 1, tags: 1, mode: 0 }, Down, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 1, tags: 5, began: 0 }, Read { inst: 0, key: 1, soft: 0, caches: false }] },
        SeedCase { seed: "45a4e69e", world: SeedWorld::Plain, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Revalidate { inst: 2, tags: 1, mode: 0 }, Tick { inst: 0 }, Restart { inst: 2 }, Flush] },
        SeedCase { seed: "e284bade", world: SeedWorld::Plain, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Subscribe { inst: 1 }, Tick { inst: 1 }, Revalidate { inst: 0, tags: 1, mode: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Advance { ms: 1000 }, Read { inst: 1, key: 0, soft: 1, caches: false }] },
        SeedCase { seed: "250b020a", world: SeedWorld::Mixed { push: &[false, true], before_16_4: &[false], leases: &[false, true] }, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Step { pick: 2 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Stall { ms: 900 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 1 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, LoseReply { inst: 1 }, Step { pick: 0 }, Advance { ms: 1000 }, IncWrite { pick: 1, tags: 0, life: 0 }, Step { pick: 0 }, Up, Step { pick: 1 }, IncWrite { pick: 0, tags: 0, life: 1 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Step { pick: 0 }, Snapshot, Subscribe { inst: 0 }, Step { pick: 0 }, Step { pick: 0 }, Stall { ms: 1000 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }] },
        SeedCase { seed: "949231f2", world: SeedWorld::Mixed { push: &[false, true], before_16_4: &[false], leases: &[false, true] }, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Restart { inst: 0 }, Rewrite { inst: 0, life: 0, held: true }, Rewrite { inst: 0, life: 0, held: false }, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncWrite { pick: 0, tags: 0, life: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Advance { ms: 1000 }, IncWrite { pick: 0, tags: 0, life: 0 }] },
        SeedCase { seed: "0a7ec7b5", world: SeedWorld::Mixed { push: &[false], before_16_4: &[false], leases: &[false, true] }, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Read { inst: 0, key: 0, soft: 0, caches: false }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Rewrite { inst: 0, life: 0, held: true }, Rewrite { inst: 0, life: 0, held: true }, Step { pick: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Step { pick: 0 }, Step { pick: 1 }, Rewrite { inst: 1, life: 0, held: true }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Step { pick: 0 }, Step { pick: 1 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Rewrite { inst: 1, life: 0, held: false }, Step { pick: 6 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Step { pick: 0 }, Down, Step { pick: 0 }, Step { pick: 5 }, Step { pick: 1 }, Step { pick: 6 }, Step { pick: 3 }, Step { pick: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Step { pick: 0 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Write { inst: 0, key: 0, tags: 0, began: 0 }] },
        SeedCase { seed: "348de6f0", world: SeedWorld::Mixed { push: &[false, true], before_16_4: &[false], leases: &[false, true] }, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Restart { inst: 1 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Snapshot, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Rewrite { inst: 0, life: 0, held: false }, IncRead { inst: 2, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 3 }, Rewrite { inst: 1, life: 0, held: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, LoseReply { inst: 1 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }] },
        SeedCase { seed: "f0300afc", world: SeedWorld::Mixed { push: &[true], before_16_4: &[false], leases: &[false, true] }, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Up, IncWrite { pick: 0, tags: 0, life: 0 }, Step { pick: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, IncWrite { pick: 0, tags: 0, life: 0 }, Advance { ms: 0 }, Step { pick: 0 }, Advance { ms: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, IncWrite { pick: 0, tags: 0, life: 0 }, Step { pick: 0 }, IncWrite { pick: 0, tags: 0, life: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, IncWrite { pick: 0, tags: 0, life: 0 }, Read { inst: 0, key: 0, soft: 0, caches: false }, IncWrite { pick: 0, tags: 0, life: 0 }, IncWrite { pick: 0, tags: 0, life: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, IncWrite { pick: 0, tags: 0, life: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Stall { ms: 999 }, IncWrite { pick: 0, tags: 0, life: 0 }, Rewrite { inst: 2, life: 0, held: false }, Snapshot, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 2, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Rewrite { inst: 0, life: 0, held: false }, Rewrite { inst: 2, life: 0, held: true }, Step { pick: 3 }, Step { pick: 3 }, Revalidate { inst: 0, tags: 1, mode: 0 }, Step { pick: 0 }, Step { pick: 1 }, Step { pick: 1 }, Stall { ms: 900 }, Step { pick: 0 }, IncRead { inst: 2, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }] },
        SeedCase { seed: "38c23c39", world: SeedWorld::Mixed { push: &[false], before_16_4: &[false], leases: &[false, true] }, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Up, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Rewrite { inst: 0, life: 0, held: false }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Read { inst: 0, key: 0, soft: 0, caches: false }, IncRead { inst: 2, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncWrite { pick: 0, tags: 0, life: 0 }, Write { inst: 1, key: 0, tags: 0, began: 0 }, Rewrite { inst: 0, life: 0, held: true }, Step { pick: 0 }, Read { inst: 0, key: 0, soft: 0, caches: false }, IncWrite { pick: 0, tags: 0, life: 0 }, Stall { ms: 900 }, Rewrite { inst: 2, life: 0, held: true }, Rewrite { inst: 2, life: 0, held: false }, Flush, Step { pick: 5 }, Step { pick: 3 }, Step { pick: 3 }, Step { pick: 0 }, Step { pick: 2 }, IncRead { inst: 2, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }] },
        SeedCase { seed: "f6a6e4db", world: SeedWorld::Mixed { push: &[false], before_16_4: &[false], leases: &[false, true] }, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![IncWrite { pick: 0, tags: 0, life: 0 }, IncRead { inst: 2, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Rewrite { inst: 2, life: 0, held: false }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 2 }, Step { pick: 3 }, Step { pick: 1 }, Step { pick: 0 }, Step { pick: 7 }, Rewrite { inst: 1, life: 0, held: false }, Read { inst: 0, key: 0, soft: 0, caches: false }, Read { inst: 0, key: 0, soft: 0, caches: false }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 7 }, Advance { ms: 301 }, Step { pick: 0 }, Step { pick: 0 }] },
        SeedCase { seed: "c14b5973", world: SeedWorld::Mixed { push: &[false], before_16_4: &[false], leases: &[false] }, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![LateAnswer { inst: 1, ms: 2500 }, IncRead { inst: 0, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, Down, Rewrite { inst: 1, life: 0, held: false }, Write { inst: 1, key: 0, tags: 0, began: 0 }, IncRead { inst: 0, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, Seed { built: (0, 0), lag: 0, tags: 0, life: 0, lost: false }, LateAnswer { inst: 0, ms: 2500 }, Write { inst: 1, key: 0, tags: 0, began: 0 }, Rewrite { inst: 1, life: 0, held: false }, Seed { built: (0, 0), lag: 0, tags: 0, life: 0, lost: false }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Up, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Rewrite { inst: 0, life: 0, held: false }, Step { pick: 0 }, Step { pick: 0 }, Read { inst: 0, key: 0, soft: 0, caches: false }, Up, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Advance { ms: 301 }, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 0, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Rewrite { inst: 0, life: 0, held: false }, IncRead { inst: 0, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, IncRead { inst: 2, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, IncWrite { pick: 0, tags: 0, life: 1 }, IncRead { inst: 0, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, LateAnswer { inst: 0, ms: 1 }, Revalidate { inst: 0, tags: 3, mode: 0 }, IncWrite { pick: 0, tags: 0, life: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Rewrite { inst: 0, life: 0, held: false }, Write { inst: 0, key: 0, tags: 0, began: 0 }, IncRead { inst: 2, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, IncWrite { pick: 0, tags: 1, life: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }] },
        SeedCase { seed: "f84a7ade", world: SeedWorld::Mixed { push: &[false], before_16_4: &[false], leases: &[false] }, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![IncRead { inst: 1, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, LateAnswer { inst: 0, ms: 1 }, LateAnswer { inst: 0, ms: 1 }, Advance { ms: 59 }, Advance { ms: 242 }, IncRead { inst: 1, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, LateAnswer { inst: 0, ms: 1 }, LateAnswer { inst: 0, ms: 1 }, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Advance { ms: 1000 }, Revalidate { inst: 0, tags: 1, mode: 0 }, Advance { ms: 1 }, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 1, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, IncRead { inst: 1, key: 1, soft: 1, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Step { pick: 2 }, Step { pick: 0 }, Step { pick: 2 }, IncWrite { pick: 5, tags: 0, life: 0 }, Step { pick: 0 }, Step { pick: 2 }, IncWrite { pick: 1, tags: 0, life: 0 }, Step { pick: 2 }] },
        SeedCase { seed: "b6b29702", world: SeedWorld::Mixed { push: &[true], before_16_4: &[false], leases: &[false] }, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![LateAnswer { inst: 1, ms: 3001 }, IncRead { inst: 0, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 1, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncWrite { pick: 0, tags: 1, life: 1 }, Step { pick: 5 }, Step { pick: 6 }, Step { pick: 0 }, Step { pick: 2 }, IncWrite { pick: 0, tags: 0, life: 0 }, Step { pick: 0 }, LateAnswer { inst: 0, ms: 865 }, Step { pick: 3 }, Step { pick: 1 }, Revalidate { inst: 0, tags: 1, mode: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, LateAnswer { inst: 0, ms: 865 }, Step { pick: 0 }, LateAnswer { inst: 1, ms: 1 }, Step { pick: 4 }, Step { pick: 1 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, LateAnswer { inst: 1, ms: 1 }, Step { pick: 0 }, LateAnswer { inst: 1, ms: 3000 }, Advance { ms: 1 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 1, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 4 }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Rewrite { inst: 0, life: 0, held: false }, LateAnswer { inst: 0, ms: 1 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, IncWrite { pick: 1, tags: 0, life: 0 }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 2 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 1, soft: 1, caches: false, revalidate: 0, on_demand: false }] },
        SeedCase { seed: "23da222e", world: SeedWorld::WriteBack { push: &[false], leases: &[false], life: 0 }, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![LateAnswer { inst: 0, ms: 3000 }, Revalidate { inst: 1, tags: 4, mode: 3 }, Advance { ms: 1 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Advance { ms: 1000 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncWriteBack { pick: 0 }] },
        SeedCase { seed: "35d7eb07", world: SeedWorld::WriteBack { push: &[true], leases: &[false], life: 0 }, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![IncRead { inst: 0, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Step { pick: 0 }, Revalidate { inst: 0, tags: 4, mode: 1 }, IncWrite { pick: 0, tags: 0, life: 0 }, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Stall { ms: 900 }, Step { pick: 0 }, IncWrite { pick: 0, tags: 0, life: 0 }, LateAnswer { inst: 0, ms: 3001 }, IncRead { inst: 0, key: 1, soft: 0, caches: false, revalidate: 1, on_demand: false }, Revalidate { inst: 0, tags: 1, mode: 0 }, Advance { ms: 1 }, IncReadAgain { pick: 1 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 1 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncWrite { pick: 0, tags: 0, life: 0 }, IncRead { inst: 0, key: 1, soft: 1, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }] },
        SeedCase { seed: "0836379c", world: SeedWorld::WriteBack { push: &[false], leases: &[false], life: 0 }, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![LateAnswer { inst: 0, ms: 301 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 6 }, Step { pick: 0 }, IncWrite { pick: 0, tags: 0, life: 2 }, LateAnswer { inst: 1, ms: 3001 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncWriteBack { pick: 0 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Advance { ms: 1 }, IncWriteBack { pick: 0 }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, LateAnswer { inst: 1, ms: 1 }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, LateAnswer { inst: 1, ms: 1 }] },
        SeedCase { seed: "f516ed6d", world: SeedWorld::WriteBack { push: &[false], leases: &[false], life: 0 }, max_tags: DEFAULT_MAX_TAGS, clocks: ALIGNED, ops: vec![Restart { inst: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Stall { ms: 900 }, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Advance { ms: 1000 }, Step { pick: 0 }, IncWrite { pick: 0, tags: 0, life: 0 }, Step { pick: 2 }, Advance { ms: 3000 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 6 }, IncWrite { pick: 0, tags: 0, life: 0 }, Step { pick: 0 }, Step { pick: 0 }, Revalidate { inst: 1, tags: 4, mode: 0 }, Step { pick: 0 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Rewrite { inst: 0, life: 0, held: false }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, IncWrite { pick: 0, tags: 0, life: 0 }, LateAnswer { inst: 0, ms: 1 }, LateAnswer { inst: 0, ms: 3000 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 2 }, Step { pick: 2 }, Step { pick: 1 }, Revalidate { inst: 1, tags: 1, mode: 0 }, IncReadAgain { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 5 }, IncWriteBack { pick: 0 }] },
        SeedCase { seed: "c4b6d5f2", world: SeedWorld::Plain, max_tags: 1, clocks: ALIGNED, ops: vec![Revalidate { inst: 2, tags: 3, mode: 0 }, Load { inst: 2 }, Load { inst: 0 }, LoseReply { inst: 1 }, Flush, Tick { inst: 0 }, Restart { inst: 2 }, Read { inst: 2, key: 0, soft: 1, caches: false }, Tick { inst: 0 }, Write { inst: 0, key: 0, tags: 1, began: 0 }, Write { inst: 2, key: 0, tags: 1, began: 0 }] },
        SeedCase { seed: "ce348148", world: SeedWorld::Mixed { push: &[false], before_16_4: &[false], leases: &[false] }, max_tags: 1, clocks: ALIGNED, ops: vec![Rewrite { inst: 0, life: 0, held: true }, Advance { ms: 29 }, Advance { ms: 971 }, Revalidate { inst: 0, tags: 4, mode: 3 }, Rewrite { inst: 0, life: 0, held: false }, Step { pick: 0 }, Step { pick: 0 }, Revalidate { inst: 0, tags: 6, mode: 3 }, LateAnswer { inst: 0, ms: 2500 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Restart { inst: 0 }, Down, Revalidate { inst: 1, tags: 4, mode: 1 }, Revalidate { inst: 0, tags: 3, mode: 2 }, Revalidate { inst: 0, tags: 2, mode: 0 }] },
        SeedCase { seed: "263fc8ae", world: SeedWorld::Plain, max_tags: 1, clocks: ALIGNED, ops: vec![Write { inst: 0, key: 0, tags: 0, began: 0 }, Revalidate { inst: 0, tags: 2, mode: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Down, Write { inst: 0, key: 0, tags: 0, began: 0 }, Up, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Flush, Advance { ms: 1 }, Revalidate { inst: 0, tags: 1, mode: 0 }] },
        SeedCase { seed: "26ede71e", world: SeedWorld::Mixed { push: &[false], before_16_4: &[false], leases: &[false] }, max_tags: 1, clocks: ALIGNED, ops: vec![Revalidate { inst: 0, tags: 3, mode: 1 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Up, Flush, Tick { inst: 1 }, Revalidate { inst: 0, tags: 6, mode: 1 }] },
        SeedCase { seed: "c82e6f73", world: SeedWorld::Plain, max_tags: 1, clocks: ALIGNED, ops: vec![Revalidate { inst: 2, tags: 1, mode: 2 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Flush, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Tick { inst: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Up, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Up, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Revalidate { inst: 2, tags: 2, mode: 0 }] },
        SeedCase { seed: "9f0a927c", world: SeedWorld::Plain, max_tags: 1, clocks: ALIGNED, ops: vec![Revalidate { inst: 1, tags: 3, mode: 1 }, Flush, Up, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Revalidate { inst: 0, tags: 2, mode: 1 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }] },
        SeedCase { seed: "8686b276", world: SeedWorld::Mixed { push: &[false], before_16_4: &[false], leases: &[false] }, max_tags: 1, clocks: ALIGNED, ops: vec![Write { inst: 0, key: 0, tags: 0, began: 0 }, Revalidate { inst: 1, tags: 6, mode: 0 }, Rewrite { inst: 0, life: 0, held: false }, Flush, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Revalidate { inst: 1, tags: 5, mode: 0 }] },
        SeedCase { seed: "7dd5da35", world: SeedWorld::Mixed { push: &[false], before_16_4: &[false], leases: &[true] }, max_tags: 100000, clocks: ALIGNED, ops: vec![Advance { ms: 1 }, IncRead { inst: 1, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncWrite { pick: 0, tags: 0, life: 0 }, LateAnswer { inst: 0, ms: 1 }, IncWrite { pick: 0, tags: 0, life: 0 }, IncWrite { pick: 0, tags: 0, life: 0 }, Advance { ms: 1000 }, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 1, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, Advance { ms: 1000 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 1, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 1 }, Step { pick: 0 }, Step { pick: 6 }, IncWrite { pick: 0, tags: 0, life: 1 }, IncWrite { pick: 0, tags: 0, life: 0 }, Restart { inst: 0 }, Step { pick: 2 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 4 }, LoseReply { inst: 1 }, Step { pick: 1 }, Rewrite { inst: 0, life: 0, held: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 1 }, Step { pick: 0 }, Step { pick: 3 }, LateAnswer { inst: 1, ms: 3000 }, Step { pick: 0 }, IncRead { inst: 1, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, IncWrite { pick: 0, tags: 0, life: 0 }, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, LateAnswer { inst: 0, ms: 1 }, LateAnswer { inst: 0, ms: 1 }, Step { pick: 0 }, Advance { ms: 1000 }, LateAnswer { inst: 0, ms: 1 }, LateAnswer { inst: 0, ms: 1 }, Step { pick: 0 }, Revalidate { inst: 0, tags: 2, mode: 1 }, LateAnswer { inst: 1, ms: 301 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Revalidate { inst: 2, tags: 3, mode: 3 }, IncWrite { pick: 1, tags: 0, life: 0 }, IncRead { inst: 0, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncWrite { pick: 2, tags: 2, life: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 1 }, IncWrite { pick: 0, tags: 0, life: 0 }, Step { pick: 1 }, Step { pick: 1 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 2 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, LateAnswer { inst: 0, ms: 3000 }, Step { pick: 1 }, IncWrite { pick: 0, tags: 0, life: 0 }, Step { pick: 2 }] },
        SeedCase { seed: "c851796e", world: SeedWorld::Plain, max_tags: 1, clocks: ALIGNED, ops: vec![Revalidate { inst: 0, tags: 1, mode: 0 }, Advance { ms: 1 }, Read { inst: 0, key: 0, soft: 0, caches: false }, Step { pick: 0 }, Step { pick: 0 }, Write { inst: 0, key: 0, tags: 1, began: 0 }, Write { inst: 1, key: 0, tags: 1, began: 0 }, Read { inst: 0, key: 0, soft: 0, caches: false }, Read { inst: 0, key: 0, soft: 0, caches: false }, Write { inst: 1, key: 0, tags: 1, began: 0 }, Read { inst: 0, key: 0, soft: 0, caches: false }, Write { inst: 1, key: 0, tags: 1, began: 0 }, Restart { inst: 1 }, Revalidate { inst: 0, tags: 2, mode: 0 }, Revalidate { inst: 2, tags: 3, mode: 0 }, Restart { inst: 2 }, Step { pick: 2 }, Flush, Revalidate { inst: 0, tags: 1, mode: 1 }, Write { inst: 0, key: 0, tags: 1, began: 0 }] },
        SeedCase { seed: "bf662574", world: SeedWorld::Plain, max_tags: 2, clocks: ALIGNED, ops: vec![LoseMeta, Revalidate { inst: 0, tags: 6, mode: 0 }, LoseMeta, Snapshot, Snapshot, Load { inst: 0 }, Revalidate { inst: 1, tags: 3, mode: 0 }, Revalidate { inst: 1, tags: 1, mode: 0 }, Read { inst: 0, key: 0, soft: 0, caches: false }, Step { pick: 0 }, Flush, Revalidate { inst: 0, tags: 2, mode: 0 }, Load { inst: 0 }, Restart { inst: 1 }] },
        SeedCase { seed: "e08d2444", world: SeedWorld::Plain, max_tags: 1, clocks: ALIGNED, ops: vec![Revalidate { inst: 0, tags: 1, mode: 2 }, Read { inst: 0, key: 0, soft: 0, caches: false }, LoseMeta, Write { inst: 0, key: 0, tags: 1, began: 0 }, Step { pick: 0 }, Write { inst: 0, key: 0, tags: 1, began: 0 }, Flush, Revalidate { inst: 1, tags: 1, mode: 0 }, Write { inst: 0, key: 0, tags: 1, began: 0 }, LoseMeta, Read { inst: 0, key: 0, soft: 0, caches: false }] },
        SeedCase { seed: "39203b39", world: SeedWorld::Mixed { push: &[true], before_16_4: &[false], leases: &[true] }, max_tags: 100000, clocks: ALIGNED, ops: vec![Advance { ms: 0 }, Rewrite { inst: 0, life: 0, held: false }, IncRead { inst: 2, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Step { pick: 0 }, Read { inst: 0, key: 0, soft: 0, caches: false }, Rewrite { inst: 0, life: 0, held: false }, Stall { ms: 1000 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Write { inst: 0, key: 0, tags: 0, began: 0 }, LoseMeta, Seed { built: (0, 0), lag: 0, tags: 0, life: 0, lost: false }, Seed { built: (0, 0), lag: 0, tags: 0, life: 0, lost: false }, Seed { built: (0, 0), lag: 0, tags: 0, life: 0, lost: false }, Seed { built: (0, 0), lag: 0, tags: 0, life: 0, lost: false }, Seed { built: (0, 0), lag: 0, tags: 0, life: 0, lost: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Seed { built: (0, 0), lag: 0, tags: 0, life: 0, lost: false }, Tick { inst: 2 }, IncRead { inst: 2, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }] },
        SeedCase { seed: "e12bcc11", world: SeedWorld::Plain, max_tags: 100000, clocks: ALIGNED, ops: vec![Revalidate { inst: 0, tags: 4, mode: 0 }, ClockStep { inst: 2, ms: 1000 }, IncRead { inst: 2, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }] },
        SeedCase { seed: "55aa3ee8", world: SeedWorld::Plain, max_tags: 100000, clocks: ALIGNED, ops: vec![Rewrite { inst: 0, life: 0, held: false }, ClockStep { inst: 2, ms: 1000 }, IncRead { inst: 2, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }] },
        SeedCase { seed: "dcc59641", world: SeedWorld::Mixed { push: &[true], before_16_4: &[false], leases: &[false] }, max_tags: 100000, clocks: [(0.0, 0.0), (0.0, 0.0), (0.0, 0.0)], ops: vec![IncRead { inst: 0, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Revalidate { inst: 1, tags: 2, mode: 0 }, Step { pick: 0 }, ClockStep { inst: 0, ms: 1000 }, IncWrite { pick: 0, tags: 0, life: 0 }, IncRead { inst: 0, key: 1, soft: 2, caches: false, revalidate: 0, on_demand: false }] },
        SeedCase { seed: "87ca5433", world: SeedWorld::WriteBack { push: &[true], leases: &[true], life: 0 }, max_tags: 100000, clocks: [(0.0, 0.0), (0.0, 0.0), (0.0, 0.0)], ops: vec![IncRead { inst: 1, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncWrite { pick: 0, tags: 0, life: 0 }, LateAnswer { inst: 0, ms: 1 }, Advance { ms: 1000 }, Step { pick: 0 }, Step { pick: 0 }, Advance { ms: 1000 }, IncReadAgain { pick: 0 }, LateAnswer { inst: 1, ms: 301 }, Step { pick: 0 }, Step { pick: 0 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 1 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Revalidate { inst: 0, tags: 4, mode: 0 }, LateAnswer { inst: 0, ms: 1 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, ClockStep { inst: 1, ms: 1000 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }] },
        SeedCase { seed: "3115ab4d", world: SeedWorld::Mixed { push: &[true], before_16_4: &[false], leases: &[false] }, max_tags: 100000, clocks: [(0.0, 0.0), (1001.0, 0.0), (0.0, 0.0)], ops: vec![IncRead { inst: 0, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, LateAnswer { inst: 0, ms: 1 }, LateAnswer { inst: 0, ms: 1 }, IncWrite { pick: 0, tags: 0, life: 0 }, Advance { ms: 1 }, Revalidate { inst: 2, tags: 2, mode: 0 }, Step { pick: 0 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, ClockStep { inst: 1, ms: 1001 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Step { pick: 0 }, IncWrite { pick: 2, tags: 2, life: 0 }] },
        SeedCase { seed: "a2a7b1d2", world: SeedWorld::WriteBack { push: &[true], leases: &[false], life: 3 }, max_tags: 100000, clocks: [(3000.0, 0.0), (0.0, 0.0), (0.0, 0.0)], ops: vec![Revalidate { inst: 1, tags: 1, mode: 0 }, ClockStep { inst: 0, ms: 1324 }, IncRead { inst: 0, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 0 }, Step { pick: 0 }, IncWrite { pick: 0, tags: 1, life: 0 }] },
        SeedCase { seed: "3654f6a7", world: SeedWorld::Plain, max_tags: 100000, clocks: [(0.0, 0.0), (0.0, 0.0), (0.0, 0.0)], ops: vec![ClockStep { inst: 1, ms: -1569 }, Revalidate { inst: 2, tags: 1, mode: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 1, key: 0, tags: 0, began: 0 }, Read { inst: 0, key: 0, soft: 1, caches: false }] },
        SeedCase { seed: "f17b8760", world: SeedWorld::Plain, max_tags: 100000, clocks: [(0.0, 0.0), (-11.0, 0.0), (0.0, 0.0)], ops: vec![Read { inst: 1, key: 0, soft: 0, caches: false }, ClockStep { inst: 1, ms: -301 }, Write { inst: 1, key: 1, tags: 4, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Revalidate { inst: 0, tags: 3, mode: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Read { inst: 1, key: 1, soft: 1, caches: false }, Write { inst: 0, key: 0, tags: 0, began: 0 }] },
        SeedCase { seed: "cc8f9b82", world: SeedWorld::Plain, max_tags: 100000, clocks: [(-1002.0, 0.0), (0.0, 0.0), (0.0, 0.0)], ops: vec![Revalidate { inst: 1, tags: 2, mode: 0 }, Read { inst: 0, key: 0, soft: 0, caches: false }, ClockStep { inst: 0, ms: -1183 }, Stall { ms: 1134 }, Write { inst: 0, key: 0, tags: 2, began: 1135 }, Write { inst: 0, key: 1, tags: 0, began: 0 }] },
        SeedCase { seed: "801e1880", world: SeedWorld::Mixed { push: &[true], before_16_4: &[false], leases: &[false] }, max_tags: 100000, clocks: [(0.0, 0.0), (-2355.0, 0.0), (0.0, 0.0)], ops: vec![ClockStep { inst: 1, ms: -2365 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Seed { built: (4, 0), lag: 0, tags: 0, life: 0, lost: true }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 2 }, IncRead { inst: 1, key: 0, soft: 0, caches: false, revalidate: 0, on_demand: false }, Step { pick: 5 }, Rewrite { inst: 0, life: 0, held: true }, Step { pick: 1 }, Step { pick: 1 }, Rewrite { inst: 0, life: 0, held: true }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Revalidate { inst: 2, tags: 3, mode: 0 }, Step { pick: 0 }, Step { pick: 1 }, Step { pick: 2 }, Step { pick: 4 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Step { pick: 5 }, Step { pick: 2 }, Step { pick: 4 }, Write { inst: 1, key: 0, tags: 1, began: 3 }] },
        SeedCase { seed: "31128208", world: SeedWorld::Plain, max_tags: 100000, clocks: [(-11.0, 0.0), (0.0, 0.0), (0.0, 0.0)], ops: vec![Write { inst: 1, key: 1, tags: 0, began: 0 }, Revalidate { inst: 0, tags: 6, mode: 0 }, Tick { inst: 0 }, Read { inst: 0, key: 1, soft: 2, caches: false }] },
        SeedCase { seed: "221e61ec", world: SeedWorld::Mixed { push: &[true], before_16_4: &[false], leases: &[false] }, max_tags: 100000, clocks: [(0.0, -1e-06), (0.0, 0.0), (0.0, 0.0)], ops: vec![IncRead { inst: 0, key: 1, soft: 0, caches: false, revalidate: 0, on_demand: false }, Deliver { inst: 0 }, Rewrite { inst: 0, life: 0, held: false }, Rewrite { inst: 0, life: 0, held: false }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Step { pick: 0 }, Rewrite { inst: 0, life: 0, held: false }, Rewrite { inst: 0, life: 0, held: false }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Step { pick: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Advance { ms: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Seed { built: (4, 0), lag: 0, tags: 0, life: 0, lost: true }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Tick { inst: 0 }, Step { pick: 0 }, Step { pick: 2 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 5 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Seed { built: (0, 0), lag: 0, tags: 0, life: 0, lost: false }, Step { pick: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Revalidate { inst: 1, tags: 1, mode: 0 }, Step { pick: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Step { pick: 0 }, Step { pick: 4 }, Step { pick: 4 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Step { pick: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Step { pick: 3 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Step { pick: 0 }, Step { pick: 0 }, IncWrite { pick: 0, tags: 0, life: 0 }, Write { inst: 0, key: 0, tags: 0, began: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 0 }, Step { pick: 1 }, Seed { built: (0, 0), lag: 0, tags: 0, life: 0, lost: false }, Seed { built: (0, 0), lag: 0, tags: 0, life: 0, lost: false }, IncRead { inst: 0, key: 1, soft: 1, caches: false, revalidate: 0, on_demand: false }] },
    ];
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|c| seed_case_settles(c).err().map(|e| format!("seed {}: {e}", c.seed)))
        .collect();
    prop_assert!(failed.is_empty(), "{}", failed.join("\n"));
    Ok(())
}

/// Seed 28b815c8's shrunk case (`a_page_copy_the_tier_serves_is_the_last_write_promised`),
/// which the tier's op arms changed since draw no longer.
#[test]
fn the_shrunk_tier_case_of_a_stored_seed_keeps_the_contract() -> Result<(), TestCaseError> {
    use TierOp::*;
    page_tier_history(&[
        Push(PushOp::Snapshot),
        Read,
        Rewrite,
        Get { pick: 0 },
        Push(PushOp::Drop),
        Push(PushOp::Demote),
    ])
}
