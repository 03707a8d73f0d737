//! The tag mirror's exchange with Redis: which script call pulls the shared tag state (a
//! refresh, or the next page of a full load), which one records a revalidation, which one
//! gives Redis back records it lost, and how far the mirror can be trusted before it has
//! loaded the shared state. The mirror itself ([`TagMirror`]) is passed in: this module keeps
//! only the bookkeeping of the exchange.

use std::borrow::Cow;

use crate::error::{PlanError, ProtocolError};
use crate::keys::TagKeys;
use crate::outbox::MIN_RETRY_MS;
use crate::scripts::{
    tag_merge_args, tag_refresh_args, tag_update_args, ScriptCall, PAGE_READ, TAG_MERGE, TAG_PAGE,
    TAG_REFRESH, TAG_UPDATE,
};
use crate::tags::{
    canonical_tag, meta_epoch, parse_announcement, Announced, Freshness, PageWrite, RefreshSummary,
    Revalidation, TagMirror, TagRecord, PAGE_COUNT,
};
use crate::time::Millis;

/// How often the mirror is pruned by age, at most (ms): pruning walks every record.
pub const PRUNE_EVERY_MS: f64 = 60_000.0;

/// Pulls whose start and end a process following by push keeps ([`PushFollow::vouched_from`]):
/// caught up, one about every pull interval when nothing is learned, and no two closer than
/// [`RECENT_PULLS_SPACING`] of it however many revalidations are announced, so these reach
/// back past most regenerations' starts (about two pull intervals at least).
pub const RECENT_PULLS: usize = 32;

/// Updates of its own a process following by push remembers until their announcement is
/// heard ([`PushFollow::own_update`]): more than are usually in flight at once.
pub const OWN_UPDATES: usize = 16;

/// The part of the pull interval by which the pulls kept are spaced, at least, but the last
/// ([`PushFollow::pull_applied`]).
pub const RECENT_PULLS_SPACING: f64 = 1.0 / 16.0;

/// The part of the pull interval, counted from the last pull's start, at which the pull time
/// comes for the periodic pull ([`PushFollow::pull_timeout`]): the rest is the margin in
/// which that pull's round trip lands before the bound lapses and requests would have to
/// pull (200 ms of the host's 1 s interval, above a healthy Redis's round trip and the
/// lateness of a loaded event loop's timer).
pub const PERIODIC_PULL_AT: f64 = 0.8;

/// The bookkeeping of one process's exchange with the shared tag state.
#[derive(Clone, Debug)]
pub struct TagSync {
    keys: TagKeys,
    update_sha1: String,
    refresh_sha1: String,
    /// The first time the host passed in (its first Redis command): entries this process
    /// made itself are newer. See [`TagSync::untrusted_before`].
    started: Option<Millis>,
    /// Records being merged back into Redis ([`TagSync::plan_resend`]).
    resending: Vec<(String, TagRecord)>,
    /// The merge planned makes the state's meta hash anew, with no record to give back maybe
    /// ([`TagMirror::remakes_meta`]); planned again until acknowledged, as `resending`.
    remaking: bool,
    /// When the mirror was last pruned by age.
    pruned_at: Millis,
    /// Following the state by push (announcements), or `None`: pull on every request.
    push: Option<PushFollow>,
    /// The host knows Redis is not cluster-enabled: page writes can announce themselves.
    plain_redis: bool,
}

/// The bookkeeping of a process that follows the tag state by push: the update script
/// announces every version on a sharded channel, the host subscribes on a connection of its
/// own and hands the core every message and every change of the subscription. The mirror is
/// *caught up*, and a request needs no tag round trip, only while all of these hold:
///
/// - the subscription is confirmed and has not gone down since;
/// - a pull planned after that confirmation succeeded, no longer than `max_pull_interval_ms`
///   before its start, and after the last gap was heard (an announcement not the next
///   version: missed messages, another epoch, a failover);
/// - the mirror is synced and loads nothing.
///
/// So at any time it judges with every revalidation the state held when its last pull ran
/// (which started at most `max_pull_interval_ms` ago: every one resolved before that start,
/// unless a failover lost it first) and every one whose announcement it heard since that
/// start. One announced since and not heard is on its way, or was lost where the host could
/// not tell yet (a message dropped, a connection whose drop is not reported yet): never one
/// lost while the host reported the channel down (freshness_sim.rs
/// `a_caught_up_mirror_knows_its_last_pull_and_what_it_heard_since`).
#[derive(Clone, Debug)]
pub struct PushFollow {
    max_pull_interval_ms: f64,
    /// Orders events: plans, confirmations and gaps.
    tick: u64,
    /// The tick of the last confirmed subscription; `None` while the channel is down.
    subscribed: Option<u64>,
    /// The pull planned last: its tick and start time.
    planned: Option<(u64, Millis)>,
    /// The last pull that succeeded: its tick and start time.
    pulled: Option<(u64, Millis)>,
    /// The host's clocks' distance (wall clock less process clock) as last told when the pull
    /// planned last started ([`PushFollow::clocks_at_plan`]).
    planned_apart: Option<f64>,
    /// That distance as at `pulled`'s start, or as told when a step was last taken for a gap
    /// since ([`PushFollow::clocks_moved_since_pull`]): the bound is counted on the process's clock
    /// from `pulled`'s start, so what the distance moved since is how much older than the bound
    /// counts the mirror is, however many calls told it a little at a time.
    pulled_apart: Option<f64>,
    /// The last [`RECENT_PULLS`] pulls applied to a mirror that held the whole state before
    /// and after, oldest first: when each was applied and when it started
    /// ([`PushFollow::vouched_from`]). (A fixed array as a ring cost the wasm module more.)
    recent_pulls: Vec<(Millis, Millis)>,
    /// The tick at which the last gap was heard.
    gap: u64,
    /// The generation of page copies the tier may serve while Redis answers: a copy is bound
    /// to the generation it was kept under ([`PushFollow::page_binding`]), and every gap of
    /// the channel starts a new one, so a copy kept before a gap never serves again.
    page_gen: u32,
    /// Counts page announcements heard and gaps: a read whose `GET` went out before it moved
    /// may have read a value an announcement has since superseded.
    page_heard: u32,
    /// The last page write known (announced or pulled): the next announcement must be the
    /// next of its sequence, and a pull must find it still the last, or it is a gap.
    page_write: Option<PageWrite>,
    /// The tick at which the last page announcement was heard: a pull planned before it may
    /// have read the sequence before that write ([`PushFollow::page_write_pulled`]).
    page_write_heard_at: u64,
    /// The mirror learned a revalidation other than by a pull ([`PushFollow::learned`]): a pull
    /// is due at once until one is planned after the time it is recorded at.
    learned: Option<Millis>,
    /// What the pull planned last took over from `learned`: given back if it fails
    /// ([`PushFollow::pull_failed`]).
    answering: Option<Millis>,
    /// Since the last pull applied: when the last failure was reported, and how many pulls
    /// failed in a row ([`PushFollow::retry_in_ms`]).
    failed: Option<(Millis, u32)>,
    /// The last [`RECENT_PULLS`] announcements of revalidations applied as the next version,
    /// oldest first: when each was applied and when its revalidation was made
    /// ([`PushFollow::vouched_from`]).
    recent_heard: Vec<(Millis, Millis)>,
    /// The ids of the last [`OWN_UPDATES`] updates this process sent, oldest first, each with
    /// the tick at which it was sent ([`PushFollow::own_update`]).
    own_updates: Vec<(String, u64)>,
}

/// The page announcements as seen at one time, while caught up ([`PushFollow::page_view`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageView {
    /// Page announcements and gaps heard so far (wrapping).
    pub heard: u32,
    /// The generation page copies serve under.
    pub gen: u32,
}

/// What a read of a page entry notes when its command goes out: the view then.
pub type PageStamp = Option<PageView>;

/// The generation a page copy read with `stamp` is kept under for serving, with `now` the view
/// when its reply is judged; `None`: it is kept for outages only. It serves only when the read
/// went out while caught up, nothing was announced and no gap heard since, and the channel
/// is caught up still: an announcement of its key may have reached this process before the
/// reply did (another connection), and no later signal would come.
pub fn page_binding(stamp: PageStamp, now: Option<PageView>) -> Option<u32> {
    match (stamp, now) {
        (Some(s), Some(n)) if s == n => Some(n.gen),
        _ => None,
    }
}

impl PushFollow {
    /// Bookkeeping that trusts no announcement yet, pulling at least every
    /// `max_pull_interval_ms`.
    pub fn new(max_pull_interval_ms: f64) -> PushFollow {
        PushFollow {
            max_pull_interval_ms,
            tick: 0,
            subscribed: None,
            planned: None,
            planned_apart: None,
            pulled_apart: None,
            pulled: None,
            recent_pulls: Vec::new(),
            gap: 0,
            page_gen: 1,
            page_heard: 0,
            page_write: None,
            page_write_heard_at: 0,
            learned: None,
            answering: None,
            failed: None,
            recent_heard: Vec::new(),
            own_updates: Vec::new(),
        }
    }

    /// This process sends an update whose version will have id `id` (its epoch candidate: a
    /// fresh random token per call, tag_update.lua). Its announcement, applied as the next
    /// version, makes no pull due when a pull planned after the update was sent is applied or
    /// in flight (`heard_own`): the revalidation's records were in the mirror from
    /// the start ([`TagMirror::apply_local`]), and that pull, planned past their time if it is
    /// the one the revalidation made due ([`PushFollow::learned`]), vouches for what is
    /// regenerated after it. Heard after that pull was planned, it made a second one due. One
    /// forgotten (more than [`OWN_UPDATES`] sent since) is taken for another process's: a pull
    /// more, no less.
    pub fn own_update(&mut self, id: &str) {
        if self.own_updates.len() >= OWN_UPDATES {
            self.own_updates.remove(0);
        }
        let sent = self.next_tick();
        self.own_updates.push((id.to_owned(), sent));
    }

    /// Whether the announcement of version id `id`, applied as the next version, needs no pull
    /// of its own: it is one of this process's updates ([`PushFollow::own_update`], each
    /// answered once) and a pull planned after that update was sent is applied or in flight
    /// (not failed). That pull, on the connection the update went out on, runs after it, and
    /// so checks the version the announcement followed ([`TagMirror::apply_parsed`]: a rollback
    /// may have given it to another update, whose announcement was lost) as the pull an
    /// announcement makes due does; until it is answered, what is regenerated is judged from
    /// the announced revalidation ([`PushFollow::vouched_from`]). A pull planned before the
    /// update was sent (its outbox queued behind earlier updates) checked nothing of it: the
    /// announcement makes one due, as another process's does. One in flight that fails gives
    /// the check back ([`PushFollow::pull_failed`]).
    ///
    /// This takes Redis to run the update and that pull in the order they were sent. Only the
    /// Node host follows by push (`tagSync: 'push'` needs `redisUrl`; the workers build makes
    /// its `TagSync` with neither `push` nor a timer, so `heard_own` never runs there, whatever
    /// order its transport keeps, docs/transport.md "Ordering and concurrency"), and it sends
    /// both through its one node-redis client, on the connection of the tag keys' slot, which
    /// runs commands in the order they were written. Were the pull run first, it would still
    /// vouch only for what it read ([`PushFollow::vouched_from`]: its start), and an
    /// announcement names the id of the version it follows, so an update of another process
    /// between the two is a gap unless that version was followed with no id: then a rollback
    /// between the pull and the update that gave it to another update, whose announcement was
    /// lost, would go unchecked until the next pull: not drawn in the freshness simulation,
    /// since no host that follows by push sends the two otherwise.
    fn heard_own(&mut self, id: &str) -> bool {
        let Some(i) = self.own_updates.iter().position(|(o, _)| o == id) else {
            return false;
        };
        let (_, sent) = self.own_updates.remove(i);
        if self.planned.is_some_and(|(t, _)| t > sent) {
            self.answering.get_or_insert(Millis::ZERO);
            return true;
        }
        self.pulled.is_some_and(|(t, _)| t > sent)
    }

    /// An announcement of the next version was applied at `now`, its revalidation made at
    /// `at` (its records' update time: [`TagMirror::take_announced_at`]).
    pub fn heard_next(&mut self, now: Millis, at: Millis) {
        if self.recent_heard.len() >= RECENT_PULLS {
            self.recent_heard.remove(0);
        }
        self.recent_heard.push((now, at));
    }

    /// The mirror learned a revalidation other than by a pull: an announcement, or one of this
    /// process's own. What is regenerated from now on is judged by the start of the last pull
    /// applied before it began ([`PushFollow::vouched_from`]), earlier than the revalidation,
    /// so it would be stale as it is written, and regenerated again, until a pull started
    /// after it is applied: that pull is due at once ([`PushFollow::pull_timeout`]), so the
    /// window is a round trip rather than the pull interval.
    ///
    /// `at`: the time the revalidation is recorded at, when known (one of this process's own:
    /// its ms rounded up). A pull planned no later than that vouches for nothing against it
    /// (an entry made at its time is expired), and one made at once would start in that ms:
    /// the pull is due just after it instead ([`Millis::just_after`]: any pull planned later
    /// answers it), and stays due until one is planned past it.
    pub fn learned(&mut self, at: Millis) {
        self.learned = Some(self.learned.map_or(at, |l| Millis(l.0.max(at.0))));
    }

    /// A page write was announced, following the write of id `prev` (`None`: an announcement
    /// that does not say): the next of the sequence known (true), or a gap: a number skipped
    /// (an announcement lost), the same or a lower one (a failover or a flush reused numbers),
    /// one that follows another write than the last known (a rollback reused the number of
    /// the last known, and that write's announcement was lost), another epoch, or none known.
    pub fn page_write_heard(&mut self, write: PageWrite, prev: Option<&[u8]>) -> bool {
        let next = self.page_write.as_ref().is_some_and(|w| {
            w.epoch == write.epoch
                && w.pver.checked_add(1) == Some(write.pver)
                && prev.map_or(true, |p| p == w.pvid.as_bytes())
        });
        self.page_write = Some(write);
        self.page_write_heard_at = self.next_tick();
        if next {
            self.page_announced();
        } else {
            self.page_gap();
        }
        next
    }

    /// A pull found `write` the last page write: a gap unless it is the last one known (an
    /// announcement lost or still on its way, or a failover that reused the number with
    /// another write: the id tells). A state with no page write (no id) is a gap every time:
    /// one such state cannot be told from the next, and a meta hash lost alone erases the
    /// sequence, not the page entries its writes made (announcements this process missed).
    ///
    /// A pull planned before the last page announcement heard may have read the sequence
    /// before that write (its reply and the announcement come on two connections): a write with
    /// a lower number is then still a gap, but not taken for the last one known (the next
    /// pull, planned after the announcement, is). Page reads name the last one known (page_read.lua): taken back, every one would
    /// find the sequence past it and bind nothing until the next pull, itself a gap again.
    pub fn page_write_pulled(&mut self, write: PageWrite) {
        // The number alone: a pull of another epoch read before is taken back by the next pull
        // (planned after the announcement) as well, and the epoch's comparison cost bytes.
        let before_heard = self
            .pulled
            .is_some_and(|(t, _)| t < self.page_write_heard_at)
            && self
                .page_write
                .as_ref()
                .is_some_and(|w| write.pver < w.pver);
        if write.pvid.is_empty() || self.page_write.as_ref() != Some(&write) {
            self.page_gap();
        }
        if !before_heard {
            self.page_write = Some(write);
        }
    }

    /// A gap in the page announcements: no copy kept so far serves again while Redis answers,
    /// and no read in flight may keep what it reads for that.
    pub fn page_gap(&mut self) {
        // Never 0 (an unbound copy's), and past 2^32 gaps a copy that old is long gone.
        self.page_gen = self.page_gen.wrapping_add(1).max(1);
        self.page_heard = self.page_heard.wrapping_add(1);
    }

    /// A page write was announced (its key's copy is marked for outages only by the caller):
    /// no read in flight may keep what it reads for serving, whatever its key, as its value
    /// may be older than the write announced (one counter, not one per key: bounded).
    pub fn page_announced(&mut self) {
        self.page_heard = self.page_heard.wrapping_add(1);
    }

    /// Page announcements and gaps heard so far (wrapping): a read may share a `GET` in flight
    /// only under the count it went out under.
    pub fn page_heard(&self) -> u32 {
        self.page_heard
    }

    /// What page copies may do at `now`: `None` while not caught up (no page copy serves
    /// while Redis answers, and no read keeps its value for that).
    pub fn page_view(&self, mirror: &TagMirror, now: Millis) -> Option<PageView> {
        self.caught_up(mirror, now).then_some(PageView {
            heard: self.page_heard,
            gen: self.page_gen,
        })
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The subscription is confirmed: announcements from here on reach this process.
    pub fn subscribed(&mut self) {
        let t = self.next_tick();
        self.subscribed = Some(t);
        // Announcements made before the confirmation may be lost.
        self.page_gap();
    }

    /// The channel is down, reconnecting or was dropped: announcements may be lost.
    pub fn channel_down(&mut self) {
        self.subscribed = None;
        self.page_gap();
    }

    /// A pull is planned at `now` (one at a time: the host coalesces them).
    pub fn pull_planned(&mut self, now: Millis) {
        let t = self.next_tick();
        self.planned = Some((t, now));
        self.answering = None;
        if self.learned.is_some_and(|at| now.0 > at.0) {
            self.answering = self.learned.take();
        }
    }

    /// The pull planned last failed (a timeout, an error reply, no connection, kept back by the
    /// breaker), reported at `now`: it will not be applied. A revalidation it was planned to
    /// answer ([`PushFollow::learned`]) is due again, after a backoff from `now`
    /// ([`PushFollow::retry_in_ms`]): given up, the next pull would wait for the periodic one,
    /// and what is regenerated meanwhile would be stale as it is written, made again (extra
    /// origin calls, never a stale serve). From the failure, not the pull's start: a pull that
    /// timed out took the whole budget, so a backoff from its start would be over by then, and
    /// every announcement heard would start the next pull at once until the breaker opened.
    /// Nothing when no pull is planned.
    pub fn pull_failed(&mut self, now: Millis) {
        if self.planned.take().is_some() {
            let row = self.failed.map_or(1, |(_, n)| n.saturating_add(1));
            self.failed = Some((now, row));
            if let Some(at) = self.answering.take() {
                self.learned(at);
            }
        }
    }

    /// Ms from `now` until a revalidation learned, whose pull failed, is due again: the time
    /// the last failure was reported plus [`MIN_RETRY_MS`], doubled with each failure in a
    /// row, at most the pull interval (and not before just after the time it is recorded at).
    /// `None` when no pull failed since the last one applied, or nothing learned waits: the
    /// host then retries on its usual terms (the breaker's probe, 1 s: [`crate::Outbox::timer_ms`]).
    pub fn retry_in_ms(&self, now: Millis) -> Option<f64> {
        let ((failed_at, row), learned) = self.failed.zip(self.learned)?;
        let backoff = self.backoff_ms(row);
        Some(((failed_at.0 + backoff).max(learned.just_after().0) - now.0).max(0.0))
    }

    /// The clocks' distance the host last told as the pull planned last starts (`None`: none
    /// told): the one the bound counts from once it is applied ([`PushFollow::clocks_moved_since_pull`]).
    pub fn clocks_at_plan(&mut self, apart: Option<f64>) {
        self.planned_apart = apart;
    }

    /// Whether the clocks' distance, now `apart`, moved by more than `by` from where a move is
    /// taken for a step from (`Engine::note_clocks`): as at the start of the last pull applied,
    /// or as at the last step taken since, and while a pull is out, as at its start (applied,
    /// the bound counts from it). Neither where none was told then.
    pub fn clocks_moved_since_pull(&self, apart: f64, by: f64) -> bool {
        let moved = |was: Option<f64>| was.is_some_and(|was| (apart - was).abs() > by);
        moved(self.pulled_apart) || (self.planned.is_some() && moved(self.planned_apart))
    }

    /// A step of the clocks was taken for a gap with the distance at `apart`: a move from it
    /// is the next one ([`PushFollow::clocks_moved_since_pull`]); a pull planned from now on catches
    /// up, and its distance replaces this one when applied.
    pub fn clocks_stepped(&mut self, apart: f64) {
        self.pulled_apart = Some(apart);
        self.heard_gap();
    }

    /// The pull planned last was applied, at `now`; `whole` when the mirror held the whole
    /// state before and after it (not a page of a load: [`PushFollow::vouched_from`]).
    pub fn pull_applied(&mut self, now: Millis, whole: bool) {
        if let Some(p) = self.planned.take() {
            self.pulled = Some(p);
            // Planned before the last gap, it catches nothing up: the distance at that gap
            // stays the one to compare with.
            if p.0 > self.gap {
                self.pulled_apart = self.planned_apart;
            }
            self.failed = None;
            self.answering = None;
            if !whole {
                return;
            }
            // Pulling on learning ([`PushFollow::learned`]), a fleet that revalidates often has
            // a process pull about once a round trip: kept one by one, the pulls would reach
            // back a few dozen round trips only, and every regeneration that ran longer would
            // be judged by its start less the pull interval, before the revalidation it was
            // made for: stale as it is written, made again until that is a pull interval
            // old. The last one kept is replaced by the next while it follows the one before
            // by less than the spacing: a regeneration begun after it is judged by that one
            // before, earlier by less than the spacing (too early at worst).
            let spacing = self.max_pull_interval_ms * RECENT_PULLS_SPACING;
            if let [.., (before, _), (last, _)] = self.recent_pulls[..] {
                if last.0 - before.0 < spacing {
                    self.recent_pulls.pop();
                }
            }
            if self.recent_pulls.len() >= RECENT_PULLS {
                self.recent_pulls.remove(0);
            }
            self.recent_pulls.push((now, p.1));
        }
    }

    /// The time up to which the mirror vouched for the revalidations that had reached Redis
    /// when it judged anything from `began` on, no later: what a regeneration that began then
    /// judged its data by. The start of the last pull applied by `began`: the mirror keeps what
    /// every pull brought, and pulls are applied in the order they started (one at a time).
    /// Pulls before and during a load are left out (the state loaded vouches for no more than
    /// the load's start, and the pull after it for its own): too early at worst.
    /// Not the start of the last pull now: one may have ended while the regeneration ran, after
    /// its data was judged without what that pull brought.
    ///
    /// Pulls that followed the one before closely are not all kept ([`RECENT_PULLS_SPACING`]):
    /// then the start of an earlier one. When the pulls kept were all applied after `began`
    /// (more than [`RECENT_PULLS`] since, pulling per request while not caught up, or about
    /// two pull intervals of pulls learning), `began` less the pull interval: caught up at
    /// `began`, the last pull had started later than that; not caught up, the request pulled
    /// after it began, before its data was judged (unless that pull failed: a failed refresh
    /// judges by the state loaded last, docs/failures.md).
    ///
    /// Or, where later, the millisecond after the revalidation of an announcement applied by
    /// `began` was made (no later than `began`; records hold whole ms): applied as the next
    /// version, the mirror knew every version before it, so any revalidation it lacked reached
    /// Redis after that one, and was made later unless it was on its way for longer (as for a
    /// pull, what was made before, or in the same ms, and reached Redis after leaves the entry
    /// fresh). Without it, what a process regenerated in the round trip of the pull an
    /// announcement starts ([`PushFollow::learned`]) was stale by that very revalidation as it
    /// was written, and regenerated again.
    pub fn vouched_from(&self, began: Millis) -> Millis {
        // Applied in the very ms the regeneration began: maybe after its first judgement.
        let before = |(applied, _): &&(Millis, Millis)| applied.0 < began.0;
        let pulled = self
            .recent_pulls
            .iter()
            .rev()
            .find(before)
            .map_or(Millis(began.0 - self.max_pull_interval_ms), |(_, start)| {
                *start
            });
        self.recent_heard
            .iter()
            .rev()
            .find(before)
            .map_or(pulled, |(_, at)| pulled.max(Millis(at.0 + 1.0).min(began)))
    }

    /// The mirror did not take an announcement: only a pull planned from now on catches up.
    pub fn heard_gap(&mut self) {
        self.gap = self.next_tick();
        self.page_gap();
    }

    /// Whether a request at `now` may be judged by the mirror as it is, without a pull.
    pub fn caught_up(&self, mirror: &TagMirror, now: Millis) -> bool {
        let (Some(sub), Some((pulled, at))) = (self.subscribed, self.pulled) else {
            return false;
        };
        pulled > sub
            && pulled > self.gap
            && now.0 - at.0 < self.max_pull_interval_ms
            && now.0 >= at.0
            && mirror.is_synced()
            && !mirror.is_loading()
    }

    /// The pull time at `now`: a pull is due when it has come; the host's one timer takes the
    /// earlier of it and the retry's time ([`crate::Engine::poll_timeout`]: the host keeps no
    /// pull timing of its own). `None` while a pull is planned and neither applied nor
    /// failed (its outcome moves the time: ask again then), and while not caught up (requests
    /// pull; the channel's confirmation and a gap start their own pull).
    ///
    /// Otherwise the earliest of:
    /// - the periodic pull, [`PERIODIC_PULL_AT`] of the pull interval after the last pull's
    ///   start, so that it lands before the bound;
    /// - a revalidation learned otherwise ([`PushFollow::learned`]): at once, or just after
    ///   the time it is recorded at;
    ///
    /// and, after a failed pull, never before its backoff from the failure
    /// ([`PushFollow::retry_in_ms`]'s 100 ms doubled per failure in a row): the backoff wins
    /// over an earlier periodic or learned time, so a failing Redis is not asked in a loop.
    /// A time at or past the bound is `None`: the mirror is not caught up then, requests pull,
    /// and a failed pull is retried by the retry ([`crate::Engine::poll_timeout`] arms it).
    pub fn pull_timeout(&self, mirror: &TagMirror, now: Millis) -> Option<Millis> {
        if self.planned.is_some() || !self.caught_up(mirror, now) {
            return None;
        }
        let (_, start) = self.pulled?;
        let mut wake = start.0 + self.max_pull_interval_ms * PERIODIC_PULL_AT;
        if let Some(at) = self.learned {
            wake = wake.min(at.just_after().0);
        }
        if let Some((failed_at, row)) = self.failed {
            wake = wake.max(failed_at.0 + self.backoff_ms(row));
        }
        (wake < start.0 + self.max_pull_interval_ms).then_some(Millis(wake))
    }

    /// The wait after `row` failed pulls in a row: [`MIN_RETRY_MS`] doubled per failure after
    /// the first, at most the pull interval.
    fn backoff_ms(&self, row: u32) -> f64 {
        (MIN_RETRY_MS * f64::from(1u32 << (row.clamp(1, 16) - 1))).min(self.max_pull_interval_ms)
    }
}

/// A revalidation's time must be a finite, non-negative number of ms.
pub fn check_time(now: Millis) -> Result<(), PlanError> {
    if now.0.is_finite() && now.0 >= 0.0 {
        Ok(())
    } else {
        Err(PlanError::InvalidTime)
    }
}

/// The tags of a revalidation as admitted (at least one must be left), or why there is none.
pub fn check_tags<'a>(
    given: usize,
    admitted: Vec<Cow<'a, str>>,
) -> Result<Vec<Cow<'a, str>>, PlanError> {
    if given == 0 {
        return Err(PlanError::NoTags);
    }
    if admitted.is_empty() {
        return Err(PlanError::TagLimit);
    }
    Ok(admitted)
}

impl TagSync {
    /// The exchange on the tag-state keys `keys`, before any command.
    pub fn new(keys: TagKeys) -> TagSync {
        TagSync {
            keys,
            update_sha1: TAG_UPDATE.sha1(),
            refresh_sha1: TAG_REFRESH.sha1(),
            started: None,
            resending: Vec::new(),
            remaking: false,
            pruned_at: Millis::ZERO,
            push: None,
            plain_redis: false,
        }
    }

    /// Redis is known not to be cluster-enabled ([`TagSync::page_view`]).
    pub fn confirm_plain_redis(&mut self) {
        self.plain_redis = true;
    }

    /// Whether Redis is known not to be cluster-enabled: while caught up, page copies may
    /// serve exactly then ([`TagSync::page_view`] is some).
    pub fn plain_redis(&self) -> bool {
        self.plain_redis
    }

    /// Whether Redis is plain is unknown again (the subscription went down or came up: the
    /// URL may lead to another server).
    pub fn unconfirm_plain_redis(&mut self) {
        self.plain_redis = false;
    }

    /// Follows the state by push from now on, pulling at least every `max_pull_interval_ms`:
    /// updates planned from here on also announce what they write on `keys.announce`.
    pub fn follow_by_push(&mut self, max_pull_interval_ms: f64) {
        self.push = Some(PushFollow::new(max_pull_interval_ms));
    }

    /// `KEYS` of the update script: the tag-state keys, and the announcement channel when
    /// following by push (every process's updates then announce what they write).
    pub fn update_keys(&self) -> Vec<String> {
        let mut keys = self.keys.to_vec();
        if self.push.is_some() {
            keys.push(self.keys.announce.clone());
        }
        keys
    }

    /// The tag state's meta key and channel, where page writes announce themselves.
    pub fn announce_target(&self) -> (&str, &str) {
        (&self.keys.meta, &self.keys.announce)
    }

    /// The sharded channel the update script announces on.
    pub fn announce_channel(&self) -> &str {
        &self.keys.announce
    }

    /// The push bookkeeping, when the state is followed by push.
    pub fn push(&self) -> Option<&PushFollow> {
        self.push.as_ref()
    }

    /// The push bookkeeping, to report the subscription's changes.
    pub fn push_mut(&mut self) -> Option<&mut PushFollow> {
        self.push.as_mut()
    }

    /// What page copies may do at `now` ([`PushFollow::page_view`]); `None` when pulling,
    /// and until Redis is known not to be cluster-enabled: a cluster-enabled server behind
    /// one URL refuses the announcing page writes (CROSSSLOT), so none would be heard.
    pub fn page_view(&self, mirror: &TagMirror, now: Millis) -> Option<PageView> {
        if !self.plain_redis {
            return None;
        }
        self.push.as_ref().and_then(|p| p.page_view(mirror, now))
    }

    /// The read of page entry `entry_key` while page copies may serve ([`TagSync::page_view`]
    /// is some): [`PAGE_READ`], naming the last page write known, so that the reply tells
    /// whether the value is one of the sequence this process knows ([`page_binding`]); `None`
    /// when no page write is known (the read is a plain `GET` and binds nothing).
    pub fn plan_page_read(&self, entry_key: &str) -> Option<ScriptCall> {
        let w = self.push.as_ref()?.page_write.as_ref()?;
        let mut pver = String::new();
        crate::text::push_u64(&mut pver, w.pver);
        Some(ScriptCall {
            script: &PAGE_READ,
            sha1: PAGE_READ.sha1(),
            keys: vec![entry_key.to_owned(), self.keys.meta.clone()],
            args: vec![w.epoch.clone(), pver, w.pvid.clone()],
        })
    }

    /// This process plans, or has ended, a page write that announces itself: a read in flight
    /// may hold the value it replaces, and its own announcement comes back later (or never,
    /// refused by an ACL), so it counts as heard now ([`PushFollow::page_announced`]).
    pub fn own_page_write(&mut self) {
        if let Some(p) = self.push.as_mut() {
            p.page_announced();
        }
    }

    /// Page announcements and gaps heard so far ([`PushFollow::page_heard`]; 0 when pulling).
    pub fn page_heard(&self) -> u32 {
        self.push.as_ref().map_or(0, PushFollow::page_heard)
    }

    /// Whether a request at `now` needs no pull: following by push and caught up.
    pub fn caught_up(&self, mirror: &TagMirror, now: Millis) -> bool {
        self.push.as_ref().is_some_and(|p| p.caught_up(mirror, now))
    }

    /// Applies a message heard on the channel, and the entry keys it names (a page write's):
    /// a tag update's is applied to the mirror (a gap makes the next pulls needed); a page
    /// write's moves only the page-write sequence (a gap there starts a new page generation,
    /// and one of another epoch than the mirror's a tag gap too: the state was created anew);
    /// one this build cannot read is a gap, and an error.
    pub fn apply_announcement<'m>(
        &mut self,
        mirror: &mut TagMirror,
        msg: &'m [u8],
        now: Millis,
    ) -> (
        Result<Announced, ProtocolError>,
        std::vec::IntoIter<&'m [u8]>,
    ) {
        let mut id = "";
        let result = match parse_announcement(msg) {
            Ok(head) if head.kind == b"p" => {
                let Some(push) = self.push.as_mut() else {
                    return (Ok(Announced::Known), Vec::new().into_iter());
                };
                // A page write announces the meta hash's epoch, which a state that lost its
                // hash or log is named after (tags::meta_epoch): that state is not another.
                if mirror.is_synced()
                    && !mirror.is_loading()
                    && head.epoch != meta_epoch(mirror.epoch())
                {
                    push.heard_gap();
                }
                // The written key, then the id of the write it follows.
                let mut rest = head.rest;
                let key = rest.next();
                let next = push.page_write_heard(
                    PageWrite {
                        epoch: head.epoch.to_owned(),
                        pver: head.number,
                        pvid: head.id.to_owned(),
                    },
                    rest.next(),
                );
                let gap = if next {
                    Announced::Applied(0)
                } else {
                    Announced::Gap
                };
                return (Ok(gap), Vec::from_iter(key).into_iter());
            }
            Ok(head) => {
                id = head.id;
                mirror.apply_parsed(head)
            }
            Err(e) => Err(e),
        };
        if let Some(push) = self.push.as_mut() {
            match &result {
                // The announced times are another instance's clock: any pull planned from
                // now on counts; until one is applied, what it regenerates counts from the
                // announced revalidation (`PushFollow::vouched_from`), and the pull checks the
                // version the announcement followed. This process's own needs none while a
                // pull planned after its update was sent is out or applied: that one does both.
                Ok(Announced::Applied(_)) => {
                    if !push.heard_own(id) {
                        push.learned(Millis::ZERO);
                    }
                    if let Some(at) = mirror.take_announced_at() {
                        push.heard_next(now, at);
                    }
                }
                Ok(Announced::Known) => {}
                _ => push.heard_gap(),
            }
        }
        (result, Vec::new().into_iter())
    }

    /// The pull of [`TagSync::plan_refresh`], planned at `now`: with push, its start is noted,
    /// and the mirror notes which of its updates the pull checks.
    pub fn plan_pull(&mut self, mirror: &mut TagMirror, now: Millis) -> ScriptCall {
        if let Some(push) = self.push.as_mut() {
            push.pull_planned(now);
        }
        mirror.note_planned();
        self.plan_refresh(mirror)
    }

    /// The update script call ([`TAG_UPDATE`]) recording revalidation `rev` of `tags`
    /// (admitted) issued at `now`.
    pub fn plan_update(
        &self,
        tags: &[&str],
        rev: &Revalidation,
        now: Millis,
        prune_after_ms: f64,
        epoch_candidate: &str,
    ) -> ScriptCall {
        ScriptCall {
            script: &TAG_UPDATE,
            sha1: self.update_sha1.clone(),
            keys: self.update_keys(),
            args: tag_update_args(now, prune_after_ms, epoch_candidate, rev, tags),
        }
    }

    /// The pull of tag changes since `mirror`'s epoch and version ([`TAG_REFRESH`]), or, while
    /// the mirror loads the whole state after a full reply, the next page of it
    /// ([`TAG_PAGE`]).
    pub fn plan_refresh(&self, mirror: &TagMirror) -> ScriptCall {
        if let (Some(cursor), Some((seen, seen_vid))) = (mirror.page_cursor(), mirror.page_seen()) {
            return ScriptCall {
                script: &TAG_PAGE,
                sha1: TAG_PAGE.sha1(),
                keys: self.keys.to_vec(),
                args: vec![
                    cursor.to_owned(),
                    crate::text::u64_text(PAGE_COUNT.into()),
                    crate::text::u64_text(seen),
                    seen_vid.to_owned(),
                    mirror.page_epoch().unwrap_or_default().to_owned(),
                ],
            };
        }
        ScriptCall {
            script: &TAG_REFRESH,
            sha1: self.refresh_sha1.clone(),
            keys: self.keys.to_vec(),
            args: tag_refresh_args(
                mirror.epoch(),
                mirror.version(),
                mirror.version_id(),
                mirror.anchor(),
                mirror.unconfirmed_updates(),
                mirror.part_check(),
            ),
        }
    }

    /// Merges a refresh reply received at `now` into `mirror`, and prunes records older than
    /// `keep_ms` at most once every [`PRUNE_EVERY_MS`].
    pub fn apply_refresh(
        &mut self,
        mirror: &mut TagMirror,
        reply: &[u8],
        now: Millis,
        keep_ms: f64,
    ) -> Result<RefreshSummary, ProtocolError> {
        let whole = |m: &TagMirror| m.is_synced() && !m.is_loading();
        let before = whole(mirror);
        // A merge in flight gives back records the mirror's queue no longer holds: lent for
        // the comparison, a state that lacks them counts them lost once, as if they still
        // waited; taken off again as what the merge covers. Moved, not copied: a pull while
        // the merge keeps failing allocates nothing for it.
        mirror.lend_in_flight(std::mem::take(&mut self.resending));
        let summary = mirror.apply_refresh(reply, now, keep_ms);
        self.resending = mirror.return_in_flight();
        let summary = summary?;
        let page_write = mirror.take_page_write();
        if let Some(push) = self.push.as_mut() {
            push.pull_applied(now, before && whole(mirror));
            // A state answered in full was created anew or rolled back.
            if summary.full {
                push.page_gap();
            }
            if let Some(write) = page_write {
                push.page_write_pulled(write);
            }
        }
        if now.0 - self.pruned_at.0 >= PRUNE_EVERY_MS {
            self.pruned_at = now;
            mirror.prune(now, keep_ms);
        }
        Ok(summary)
    }

    /// The merge ([`TAG_MERGE`]) that gives Redis back records it lost and `mirror` knows, at
    /// most [`MAX_RESEND_BATCH`](crate::tags::MAX_RESEND_BATCH) of them, or of none when only
    /// the state's meta hash is to be made anew ([`TagMirror::remakes_meta`]); `None` when
    /// nothing waits. The same batch is planned again until [`TagSync::ack_resend`].
    pub fn plan_resend(
        &mut self,
        mirror: &mut TagMirror,
        epoch_candidate: &str,
    ) -> Option<ScriptCall> {
        if self.resending.is_empty() {
            self.resending = mirror.take_resend();
        }
        self.remaking |= mirror.take_remake_meta();
        if self.resending.is_empty() && !self.remaking {
            return None;
        }
        Some(ScriptCall {
            script: &TAG_MERGE,
            sha1: TAG_MERGE.sha1(),
            keys: self.keys.to_vec(),
            args: tag_merge_args(epoch_candidate, &self.resending),
        })
    }

    /// Redis applied an update of this process writing `written` to each of `tags`: what it
    /// covers is not to be given back again, neither from the queue nor from a batch planned
    /// and not yet acknowledged (planned again until it is; one in flight is cleared whole by
    /// its acknowledgement).
    pub fn sent(&mut self, mirror: &mut TagMirror, tags: &[String], written: &TagRecord) {
        for tag in tags {
            mirror.unqueue(tag, written);
        }
        self.resending
            .retain(|(tag, queued)| !(written.covers(queued) && tags.contains(tag)));
    }

    /// Redis applied the batch of [`TagSync::plan_resend`].
    pub fn ack_resend(&mut self) {
        self.resending.clear();
        self.remaking = false;
    }

    /// Records waiting to be merged back into Redis, the batch in flight included, and one
    /// for a meta hash to make anew: the host merges while this is above 0.
    pub fn resend_len(&self, mirror: &TagMirror) -> usize {
        self.resend_records(mirror) + usize::from(self.remaking || mirror.remakes_meta())
    }

    /// Records waiting to be merged back into Redis, the batch in flight included: one per
    /// tag ([`FOLDED_TAG`](crate::tag_fold::FOLDED_TAG)'s for the folded ones), no meta hash.
    /// A tag both in the batch in flight and queued again (a newer record a later comparison
    /// found lacking, which the batch does not cover) is one.
    pub fn resend_records(&self, mirror: &TagMirror) -> usize {
        let only_in_flight = self
            .resending
            .iter()
            .filter(|(tag, _)| !mirror.resend_queued(tag))
            .count();
        mirror.resend_len() + only_in_flight
    }

    /// Notes the time of the host's first Redis command; later calls change nothing.
    pub fn note_start(&mut self, now: Millis) {
        if self.started.is_none() && now.0.is_finite() {
            self.started = Some(now);
        }
    }

    /// Tagged entries created at or before the returned time cannot be judged fresh now:
    /// `None` once `mirror` is synced. Before that, this process does not know what others
    /// revalidated. While Redis answers, that holds for every tagged entry (the answer is a
    /// miss until the tag state is loaded). During an `outage` (the breaker is not closed)
    /// nobody's revalidations can be heard anyway, so entries this process made itself since
    /// it started are judged by what it knows, and only older ones are misses.
    pub fn untrusted_before(&self, mirror: &TagMirror, outage: bool) -> Option<Millis> {
        if mirror.is_synced() {
            return None;
        }
        match self.started {
            Some(started) if outage => Some(started),
            _ => Some(Millis(f64::MAX)),
        }
    }
}

/// Next's `getExpiration(tags)`: the latest expiry `mirror` knows over `tags` (any form), 0
/// when none is known; never earlier than `untrusted_before` for a non-empty list (Next drops
/// a hit created at or before it).
pub fn expiration(
    mirror: &TagMirror,
    tags: &[&str],
    untrusted_before: Option<Millis>,
    now: Millis,
) -> Millis {
    // One tag at a time: no list of canonical forms is allocated (every read asks this).
    let known = tags.iter().fold(Millis::ZERO, |latest, tag| {
        latest.max(mirror.expiration([canonical_tag(tag).as_ref()], now))
    });
    match untrusted_before {
        Some(before) if !tags.is_empty() => known.max(before),
        _ => known,
    }
}

/// How `mirror` judges an entry created at `timestamp` with these tags (any form).
pub fn freshness(mirror: &TagMirror, tags: &[&str], timestamp: Millis, now: Millis) -> Freshness {
    let tags: Vec<Cow<'_, str>> = tags.iter().map(|t| canonical_tag(t)).collect();
    mirror.evaluate(timestamp, tags.iter().map(AsRef::as_ref), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a regeneration begun at a time judged its data by: the start of the last pull
    /// applied by then, not of one applied while it ran; past the pulls kept, its start less
    /// the pull interval.
    #[test]
    fn a_regeneration_is_vouched_for_by_the_last_pull_applied_when_it_began() {
        let mut p = PushFollow::new(1_000.0);
        assert_eq!(p.vouched_from(Millis(5_000.0)), Millis(4_000.0));
        p.pull_planned(Millis(4_500.0));
        p.pull_applied(Millis(4_510.0), true);
        assert_eq!(p.vouched_from(Millis(4_510.0)), Millis(3_510.0));
        assert_eq!(p.vouched_from(Millis(4_511.0)), Millis(4_500.0));
        // A page of a load vouches for nothing yet.
        p.pull_planned(Millis(4_800.0));
        p.pull_applied(Millis(4_810.0), false);
        assert_eq!(p.vouched_from(Millis(4_900.0)), Millis(4_500.0));
        p.pull_planned(Millis(5_400.0));
        p.pull_applied(Millis(5_420.0), true);
        assert_eq!(p.vouched_from(Millis(5_000.0)), Millis(4_500.0));
        assert_eq!(p.vouched_from(Millis(6_000.0)), Millis(5_400.0));
        // Pulls every 10 ms (learning): the last is kept, and the others no closer than the
        // spacing (62.5 ms here), each judged by at most that much too early.
        for i in 0..16 {
            let at = 10_000.0 + 10.0 * i as f64;
            p.pull_planned(Millis(at));
            p.pull_applied(Millis(at + 5.0), true);
        }
        assert_eq!(p.recent_pulls.len(), 6);
        assert_eq!(p.vouched_from(Millis(6_000.0)), Millis(5_400.0));
        assert_eq!(p.vouched_from(Millis(10_006.0)), Millis(10_000.0));
        assert_eq!(p.vouched_from(Millis(10_100.0)), Millis(10_070.0));
        assert_eq!(p.vouched_from(Millis(10_156.0)), Millis(10_150.0));
        for w in p.recent_pulls.windows(3) {
            assert!(w[1].0 .0 - w[0].0 .0 >= 62.5, "{:?}", p.recent_pulls);
        }
        // Past RECENT_PULLS kept, the oldest go.
        for i in 0..RECENT_PULLS {
            let at = 11_000.0 + 100.0 * i as f64;
            p.pull_planned(Millis(at));
            p.pull_applied(Millis(at + 5.0), true);
        }
        assert_eq!(p.recent_pulls.len(), RECENT_PULLS);
        assert_eq!(p.vouched_from(Millis(10_500.0)), Millis(9_500.0));
        assert_eq!(p.vouched_from(Millis(11_106.0)), Millis(11_100.0));
        // A reply with no pull planned (none in flight) records nothing.
        p.pull_applied(Millis(20_000.0), true);
        assert_eq!(p.vouched_from(Millis(20_000.0)), Millis(14_100.0));
    }

    /// A caught-up follower: subscribed, then a whole pull started at `at` applied.
    fn caught_up_at(at: f64) -> (PushFollow, TagMirror) {
        let mut mirror = TagMirror::new();
        let synced = crate::netstring::encode(["E", "1", "v1", "1", "0", "", "0"]);
        mirror.apply_refresh(&synced, Millis(at), 1e9).unwrap();
        assert!(mirror.is_synced());
        let mut p = PushFollow::new(1_000.0);
        p.subscribed();
        p.pull_planned(Millis(at));
        p.pull_applied(Millis(at + 1.0), true);
        (p, mirror)
    }

    /// Ms from `now` until the pull time ([`PushFollow::pull_timeout`], 0 when it has
    /// come); `None`: no pull time.
    fn pull_in(p: &PushFollow, mirror: &TagMirror, now: f64) -> Option<f64> {
        p.pull_timeout(mirror, Millis(now))
            .map(|at| (at.0 - now).max(0.0))
    }

    /// An update of this process's own spares its announcement a pull only when a pull
    /// planned after it was sent is in flight or applied (one planned before it, or one that
    /// failed, checked nothing of the version the announcement followed), once per id, and
    /// only for the last [`OWN_UPDATES`] sent: an older one's brings a pull, as another
    /// process's does.
    #[test]
    fn an_own_update_spares_a_pull_once_and_only_when_one_planned_after_it_checks_it() {
        let (mut p, _mirror) = caught_up_at(1_000.0);
        p.own_update("u0");
        assert!(!p.heard_own("u0"), "no pull planned since it was sent");
        p.own_update("u1");
        p.pull_planned(Millis(1_010.0));
        assert!(p.heard_own("u1"), "in flight");
        assert!(!p.heard_own("u1"), "answered once");
        p.pull_applied(Millis(1_011.0), true);
        for i in 0..=OWN_UPDATES {
            p.own_update(&format!("v{i}"));
        }
        p.pull_planned(Millis(1_020.0));
        p.pull_applied(Millis(1_021.0), true);
        assert!(!p.heard_own("v0"), "forgotten");
        assert!(p.heard_own("v1"), "applied");
        assert!(p.heard_own(&format!("v{OWN_UPDATES}")));
        p.own_update("w");
        p.pull_planned(Millis(1_030.0));
        p.pull_failed(Millis(1_031.0));
        assert!(!p.heard_own("w"), "failed");
    }

    /// A pull planned on a revalidation learned otherwise, that fails (a timeout, an error
    /// reply, no connection, the breaker), gives back what it was to answer: the next pull is
    /// due after the backoff from the failure (100 ms, doubling with each failure in a row; at
    /// or past the bound, no pull time), not at the periodic pull; one applied ends it.
    #[test]
    fn a_failed_pull_keeps_what_was_learned_due_after_a_backoff() {
        let (mut p, mirror) = caught_up_at(1_000.0);
        assert!(p.caught_up(&mirror, Millis(1_010.0)));
        assert_eq!(pull_in(&p, &mirror, 1_010.0), Some(790.0));
        p.learned(Millis(1_010.0));
        assert_eq!(pull_in(&p, &mirror, 1_011.0), Some(0.0));
        p.pull_planned(Millis(1_011.0));
        assert_eq!(
            pull_in(&p, &mirror, 1_012.0),
            None,
            "planned: no timer until its outcome"
        );
        p.pull_failed(Millis(1_011.0));
        assert!(
            p.caught_up(&mirror, Millis(1_020.0)),
            "a failed pull leaves the bound as it was"
        );
        assert_eq!(pull_in(&p, &mirror, 1_020.0), Some(91.0), "1,011 + 100");
        assert_eq!(p.retry_in_ms(Millis(1_020.0)), Some(91.0));
        assert_eq!(pull_in(&p, &mirror, 1_111.0), Some(0.0));
        // Failed again: twice the wait, from the failure.
        p.pull_planned(Millis(1_111.0));
        p.pull_failed(Millis(1_111.0));
        assert_eq!(pull_in(&p, &mirror, 1_120.0), Some(191.0), "1,111 + 200");
        // Learned again meanwhile: still after the backoff, not at once.
        p.learned(Millis(1_130.0));
        assert_eq!(pull_in(&p, &mirror, 1_131.0), Some(180.0));
        // A backoff that ends at or past the bound (2,000) is no pull time.
        for _ in 0..6 {
            p.pull_planned(Millis(1_311.0));
            p.pull_failed(Millis(1_311.0));
        }
        assert_eq!(pull_in(&p, &mirror, 1_400.0), None, "1,311 + 1,000");
        // A pull that succeeds ends the backoff and answers what was learned.
        p.pull_planned(Millis(1_500.0));
        p.pull_applied(Millis(1_501.0), true);
        assert_eq!(p.retry_in_ms(Millis(1_502.0)), None);
        assert_eq!(pull_in(&p, &mirror, 1_502.0), Some(798.0));
        // A failed pull with nothing learned asks for no retry of its own: the periodic one,
        // not before the backoff.
        p.pull_planned(Millis(1_600.0));
        p.pull_failed(Millis(1_600.0));
        assert_eq!(p.retry_in_ms(Millis(1_601.0)), None);
        assert_eq!(pull_in(&p, &mirror, 1_601.0), Some(699.0));
        // One of this process's own, recorded at 1,700: a pull planned in that ms answers
        // nothing (it stays due), and as the second failure in a row, it waits 200 ms.
        p.learned(Millis(1_700.0));
        p.pull_planned(Millis(1_700.0));
        p.pull_failed(Millis(1_700.0));
        assert_eq!(pull_in(&p, &mirror, 1_700.0), Some(200.0));
        // A failure reported with no pull planned changes nothing.
        let before = p.clone();
        p.pull_failed(Millis(1_700.0));
        assert_eq!(format!("{p:?}"), format!("{before:?}"));
    }

    /// One of this process's own, recorded at a whole ms, is answered by any pull planned
    /// after that time: it is due then, not the ms after, alone and after a failed pull's
    /// backoff alike.
    #[test]
    fn an_own_revalidation_is_due_just_after_its_recorded_time() {
        let (mut p, mirror) = caught_up_at(1_000.0);
        p.learned(Millis(1_101.0));
        let due = pull_in(&p, &mirror, 1_100.5).unwrap_or_default();
        assert!(due > 0.5 && due < 0.501, "{due}");
        assert!(
            pull_in(&p, &mirror, 1_101.0).unwrap_or_default() > 0.0,
            "a pull planned at 1,101 answers nothing"
        );
        assert_eq!(pull_in(&p, &mirror, 1_101.25), Some(0.0));
        // Planned in that ms: it answers nothing, and fails; learned again, later than the
        // backoff's end (1,201).
        p.pull_planned(Millis(1_101.0));
        p.pull_failed(Millis(1_101.0));
        p.learned(Millis(1_300.0));
        let retry = p.retry_in_ms(Millis(1_250.0)).unwrap_or_default();
        assert!(retry > 50.0 && retry < 50.001, "{retry}");
        assert_eq!(pull_in(&p, &mirror, 1_300.25), Some(0.0));
    }

    /// The pull time [`PushFollow::pull_timeout`] gives the host's one timer: each failure of
    /// the host logic it replaces, with a fake clock (caught up by a pull started at 1,000,
    /// a 1 s interval: the periodic wake at 1,800, the bound at 2,000).
    #[test]
    fn the_pull_time_comes_once_per_pull_due_and_a_pull_only_when_it_has_come() {
        let (mut p, mirror) = caught_up_at(1_000.0);
        let due = |p: &PushFollow, now: f64| {
            p.pull_timeout(&mirror, Millis(now))
                .is_some_and(|at| at.0 <= now)
        };
        assert_eq!(
            p.pull_timeout(&mirror, Millis(1_010.0)),
            Some(Millis(1_800.0))
        );
        // Asked again later (an event that learns nothing, a page write's announcement):
        // the same time, so the host keeps its timer.
        assert_eq!(
            p.pull_timeout(&mirror, Millis(1_500.0)),
            Some(Millis(1_800.0))
        );
        // Woken early by less than a ms (Node's cached loop clock): not yet, the same time.
        assert!(!due(&p, 1_799.4));
        assert!(due(&p, 1_800.0));

        // One of this process's own, recorded at 1,101 (made at 1,100.3): due just after.
        p.learned(Millis(1_101.0));
        let own = p.pull_timeout(&mirror, Millis(1_100.3));
        assert_eq!(own, Some(Millis(1_101.0).just_after()));
        assert!(
            !due(&p, 1_101.0),
            "a pull planned at 1,101 would answer nothing"
        );
        assert!(due(&p, 1_101.25));

        // A pull out: no timer, and a wake meanwhile (set for the old time) pulls nothing.
        p.pull_planned(Millis(1_101.25));
        assert_eq!(p.pull_timeout(&mirror, Millis(1_101.5)), None);
        assert!(
            !due(&p, 1_800.0),
            "the old periodic time, the pull still out"
        );
        // Applied: the bound moved, and the periodic wake with it.
        p.pull_applied(Millis(1_130.0), true);
        assert_eq!(
            p.pull_timeout(&mirror, Millis(1_800.0)),
            Some(Millis(1_901.25))
        );
        assert!(
            !due(&p, 1_800.0),
            "the timer set before that pull pulls nothing"
        );

        // Learned by announcement, its pull fails at 1,801 (the first in a row): the backoff
        // ends at 1,901, the periodic wake is 1,901.25. One time, one pull.
        p.learned(Millis::ZERO);
        assert!(due(&p, 1_700.0));
        p.pull_planned(Millis(1_700.0));
        p.pull_failed(Millis(1_801.0));
        assert_eq!(
            p.pull_timeout(&mirror, Millis(1_801.0)),
            Some(Millis(1_901.0))
        );
        assert_eq!(
            p.retry_in_ms(Millis(1_801.0)),
            Some(100.0),
            "the retry's time too"
        );
        assert!(due(&p, 1_901.0));
        p.pull_planned(Millis(1_901.0));
        assert_eq!(
            p.pull_timeout(&mirror, Millis(1_901.0)),
            None,
            "the second wake in that ms finds the pull out"
        );
        p.pull_applied(Millis(1_905.0), true);
        assert_eq!(
            p.pull_timeout(&mirror, Millis(1_905.0)),
            Some(Millis(2_701.0))
        );
    }

    /// After a failed pull, no wake before its backoff from the failure, whatever came due
    /// earlier (the periodic time passed, a revalidation learned: the rule of
    /// [`PushFollow::retry_in_ms`]); a wake that would come at or past the bound is none: the
    /// mirror is not caught up then, and requests and the retry pull.
    #[test]
    fn a_failed_pulls_backoff_holds_the_pull_time_back_up_to_the_bound() {
        let (mut p, mirror) = caught_up_at(1_000.0);
        // The periodic pull fails at 1,810, nothing learned: not at once again, but 100 ms on.
        p.pull_planned(Millis(1_800.0));
        p.pull_failed(Millis(1_810.0));
        assert_eq!(
            p.pull_timeout(&mirror, Millis(1_810.0)),
            Some(Millis(1_910.0))
        );
        // A revalidation learned meanwhile waits for the same backoff, as the retry does.
        p.learned(Millis::ZERO);
        assert_eq!(
            p.pull_timeout(&mirror, Millis(1_850.0)),
            Some(Millis(1_910.0))
        );
        assert_eq!(p.retry_in_ms(Millis(1_850.0)), Some(60.0));
        // Fails again: 200 ms from 1,915 is past the bound at 2,000.
        p.pull_planned(Millis(1_910.0));
        p.pull_failed(Millis(1_915.0));
        assert_eq!(p.pull_timeout(&mirror, Millis(1_920.0)), None);
        assert!(p.caught_up(&mirror, Millis(1_920.0)));
        // A backoff that ends before the periodic time does not hold it back.
        let (mut p, mirror) = caught_up_at(1_000.0);
        p.learned(Millis::ZERO);
        p.pull_planned(Millis(1_100.0));
        p.pull_failed(Millis(1_150.0));
        assert_eq!(
            p.pull_timeout(&mirror, Millis(1_150.0)),
            Some(Millis(1_250.0))
        );
        p.pull_planned(Millis(1_250.0));
        p.pull_applied(Millis(1_260.0), true);
        assert_eq!(
            p.pull_timeout(&mirror, Millis(1_260.0)),
            Some(Millis(2_050.0))
        );
        // Not caught up (the channel down): no timer.
        p.channel_down();
        assert_eq!(p.pull_timeout(&mirror, Millis(1_300.0)), None);
    }

    /// Woken by nothing but its pull time (a timer late by up to 2 ms), with pulls that take
    /// up to 189.5 ms and revalidations learned now and then, a follower stays caught up the
    /// whole time: the periodic pull lands within the margin before the bound. A margin too
    /// small (0.9 of the interval: not caught up at 23,668.75 ms) lets the bound lapse between
    /// a pull's start and its reply.
    #[test]
    fn pulls_at_the_pull_time_keep_a_follower_caught_up_when_they_land_within_the_margin() {
        let (mut p, mirror) = caught_up_at(1_000.0);
        // xorshift64: a fixed sequence, no dependency.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut draw = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut now = 1_001.0;
        let mut reply_at: Option<f64> = None;
        let mut pulls = 0;
        while now < 61_000.0 {
            assert!(p.caught_up(&mirror, Millis(now)), "at {now}, {pulls} pulls");
            match draw(400) {
                0 => p.learned(Millis::ZERO),
                1 => p.learned(Millis(now).ceil()),
                _ => {}
            }
            if reply_at.is_some_and(|at| at <= now) {
                p.pull_applied(Millis(now), true);
                reply_at = None;
            }
            if reply_at.is_none()
                && p.pull_timeout(&mirror, Millis(now))
                    .is_some_and(|at| at.0 <= now)
            {
                p.pull_planned(Millis(now));
                pulls += 1;
                reply_at = Some(now + 0.5 + draw(190) as f64);
            }
            now += 0.25 * (1 + draw(8)) as f64;
        }
        // At least one per 800 ms over 60 s.
        assert!(pulls >= 75, "{pulls}");
    }

    /// Pulls that time out take their whole budget each: counted from a pull's start, the
    /// backoff would have run out by the time the pull was reported failed, and an
    /// announcement heard then would start the next pull at once, pull after pull, until the
    /// breaker opens. Counted from the failure, the next pull waits at least 100 ms after it,
    /// doubled with each failure in a row; one that ends at or past the bound is not the pull
    /// timer's.
    #[test]
    fn pulls_that_time_out_wait_their_backoff_from_the_failure() {
        const BUDGET_MS: f64 = 150.0;
        let (mut p, mirror) = caught_up_at(1_000.0);
        let mut now = 1_010.0;
        // Announcements every ms (applied ones are learned as of no time of their own).
        p.learned(Millis::ZERO);
        let mut failed: Option<f64> = None;
        let mut row = 0;
        let mut pulls = Vec::new();
        while now < 1_761.0 {
            if pull_in(&p, &mirror, now) == Some(0.0) {
                if let Some(at) = failed {
                    let backoff = 100.0 * f64::from(1u32 << (row - 1));
                    assert!(
                        now - at >= backoff.min(2_000.0 - at),
                        "pull at {now}, {} ms after failure {row} at {at}",
                        now - at
                    );
                }
                pulls.push(now);
                p.pull_planned(Millis(now));
                now += BUDGET_MS;
                p.pull_failed(Millis(now));
                row += 1;
                failed = Some(now);
            }
            now += 1.0;
            p.learned(Millis::ZERO);
        }
        // 1,010 fails at 1,160; 1,260 at 1,410; 1,610 at 1,760.
        assert_eq!(pulls, vec![1_010.0, 1_260.0, 1_610.0]);
        assert_eq!(
            pull_in(&p, &mirror, 1_761.0),
            None,
            "the fourth (1,760 + 400) is past the bound at 2,000: the retry's"
        );
    }
}
