//! The read machine: every decision about one read of one cache key, for both of Next's
//! interfaces, taken one host input at a time (docs/internals.md, "Request machines").
//!
//! The host drives a [`ReadMachine`] with [`ReadInput`]s (the tier's bytes, a Redis reply, a
//! lease answer, a timer) and does what each [`ReadStep`] asks; it keeps no numbers of its
//! own. The machine owns the order of the sources (this process's write in flight, the
//! in-process tier, Redis), the judgement of what each source holds, the lease flight, what is
//! presented to Next, and the counters. It performs no I/O, reads no clock (every input comes
//! with the time) and draws no random number (the lease token comes with the request).
//!
//! This module is a leaf: it borrows the engine's parts it needs through a [`ReadCtx`] and
//! never reaches back into the engine.

use crate::config::Config;
use std::rc::Rc;

use crate::envelope::{decode_header, DecodedHeader};
use crate::error::DecodeError;
use crate::guard::{self, OpKind};
use crate::incremental::{self, IncrementalVerdict, Serve, ValueKind};
use crate::keys::Namespace;
use crate::lease::{self, past_revalidate, Acquired, Consumer, Flight, Found, LeaseTable, Step};
use crate::lru::LruIndex;
use crate::regen::{Regenerations, StaleHandouts};
use crate::scripts::ScriptCall;
use crate::stats::{LookupOutcome, Stats, Surface};
use crate::tag_sync::{self, page_binding, PageStamp, PageView, TagSync};
use crate::tags::TagMirror;
use crate::tier;
use crate::time::Millis;
use crate::verdict::{self, Verdict};

/// Upper bound on lease steps (lease requests and polls) per read, whatever happens: past it
/// the read ends as a wait in vain (the flight's own poll cap is higher).
pub const MAX_FLIGHT_STEPS: u32 = 1000;

/// The start of a value the host holds: `prefix` may be shorter than the value
/// (`total_len` bytes); the machine asks for more with [`ReadAction::NeedMore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes<'a> {
    /// The first bytes of the value.
    pub prefix: &'a [u8],
    /// The value's whole length.
    pub total_len: usize,
}

/// Why a command the machine asked for brought no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// It ran out of its budget.
    Timeout,
    /// Redis answered with an error reply.
    ReplyError,
    /// No connection (refused, reset, closed).
    NoConnection,
    /// The circuit breaker kept it from being sent.
    CircuitOpen,
    /// The host's transport held it back without sending it (its bound on values waiting for
    /// replies): Redis is not at fault, and a lease the command would have released can be
    /// released by a command without the value.
    HeldBack,
}

impl Failure {
    /// A short description for log lines.
    pub fn name(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::ReplyError => "error reply",
            Failure::NoConnection => "no connection",
            Failure::CircuitOpen => "circuit open",
            Failure::HeldBack => "held back",
        }
    }
}

/// One input from the host: the answer to the step the machine asked for last.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReadInput<'a> {
    /// Begin the read.
    Start,
    /// The tag refresh asked for by [`ReadAction::Refresh`] is under way.
    Refreshed,
    /// This process's write in flight of the cache key, if any ([`ReadAction::OwnWrite`]).
    OwnWrite(Option<Bytes<'a>>),
    /// The tier's bytes for the key, if its map holds any ([`ReadAction::PeekTier`]).
    Tier(Option<Bytes<'a>>),
    /// The tier's bytes kept for outages, if any ([`ReadAction::PeekFallback`]).
    Fallback(Option<Bytes<'a>>),
    /// The entry read from the store, `None` when there is none ([`ReadAction::Get`]).
    Reply(Option<Bytes<'a>>),
    /// [`ReadInput::Reply`] from a store whose entries the tier's index holds in this process
    /// (the embedded store), given in the same call that found the key held and marked it
    /// used ([`LruIndex::touch`]): the bytes are the item's, so the header the index keeps
    /// for them ([`LruIndex::kept_header`]) may stand in for the prefix (which may then be
    /// empty), and the one judged here is kept.
    Held(Option<Bytes<'a>>),
    /// The lease script's integer reply (1 won, 0 held by another, 2 a newer entry); -1 when
    /// Redis did not answer or the host has no Redis.
    LeaseReply(i64),
    /// A poll's reply: the entry, and whether its lease still exists; or a page read's
    /// ([`ReadAction::PageRead`]): the entry, and whether the page-write sequence was at the
    /// write the read named.
    Polled {
        /// The entry, `None` when there is none.
        entry: Option<Bytes<'a>>,
        /// The lease still exists (a page read: the sequence was at the write named).
        leased: bool,
    },
    /// The command asked for brought no reply.
    Failed(Failure),
    /// The pause asked for by [`ReadAction::Wait`] is over.
    Timer,
    /// The host could not decode the parts of the value the last answer served into Next's
    /// shape: the machine goes on as for a corrupt entry.
    Undecodable,
}

/// What the host does with the tier bytes it gave with its last input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TierAction {
    /// Nothing.
    None,
    /// Keep them in the tier (insert them in the index) until `until`; for outages only when
    /// `outage_only`; a page copy bound to page generation `page_gen` when it is not 0
    /// ([`LruIndex::bind_page`]).
    Keep {
        /// Until when the tier may keep them.
        until: Millis,
        /// Served only while Redis cannot be reached.
        outage_only: bool,
        /// The page generation to bind the copy to, 0 for none.
        page_gen: u32,
        /// The number the `GET` or poll that brought them went out under
        /// ([`LruIndex::insert_ordered`]).
        order: u64,
    },
    /// Drop them: the index has forgotten the key already.
    Drop,
}

/// What the host does next.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadAction {
    /// Start the tag refresh without awaiting it, input [`ReadInput::Refreshed`], and await the
    /// refresh before the next input that carries bytes.
    Refresh,
    /// Input this process's write in flight of the cache key (`'use cache'` only).
    OwnWrite,
    /// Input the tier's bytes for the entry key, if the host holds any.
    PeekTier,
    /// After a failed read: input the tier's bytes kept for outages, if any.
    PeekFallback,
    /// Read the entry (`GET key`, or the memory store) within `budget_ms`.
    Get {
        /// The entry key.
        key: String,
        /// The command's budget.
        budget_ms: f64,
    },
    /// Input the same bytes again with at least `need` bytes of prefix.
    NeedMore {
        /// Bytes of prefix needed.
        need: usize,
    },
    /// Send the lease script, then input its reply ([`ReadInput::LeaseReply`]).
    Acquire {
        /// The script call.
        call: ScriptCall,
        /// The command's budget.
        budget_ms: f64,
    },
    /// Wait, then input [`ReadInput::Timer`].
    Wait {
        /// The pause, ms.
        delay_ms: f64,
    },
    /// Send the poll script, then input [`ReadInput::Polled`] (or a failure).
    Poll {
        /// The script call.
        call: ScriptCall,
        /// The command's budget.
        budget_ms: f64,
    },
    /// In place of [`ReadAction::Get`] while page copies may serve, for a page or route
    /// entry: send the page read script ([`PAGE_READ`](crate::scripts::PAGE_READ), a read),
    /// then input its reply as [`ReadInput::Polled`] (the same shape: the entry, and whether
    /// the page-write sequence was at the write the call names), or a failure.
    PageRead {
        /// The script call.
        call: ScriptCall,
        /// The command's budget (a read's).
        budget_ms: f64,
    },
    /// The read is answered.
    Answer(ReadAnswer),
}

/// One step: the action, and what to do with the tier bytes of the last input.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadStep {
    /// What the host does next.
    pub action: ReadAction,
    /// What the host does with the tier bytes it just gave.
    pub tier: TierAction,
}

/// Where the served value's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Nothing is served.
    None = 0,
    /// This process's write in flight.
    OwnWrite = 1,
    /// The tier's bytes given with [`ReadInput::Tier`].
    Tier = 2,
    /// The reply to [`ReadAction::Get`].
    Redis = 3,
    /// The last poll's reply (a lease poll's, or a page read's: [`ReadAction::PageRead`]).
    Poll = 4,
    /// The tier's or fallback bytes given last, kept for a failed or refused read.
    Kept = 5,
}

/// What Next is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// A hit.
    Fresh = 0,
    /// Served once; Next regenerates it behind the answer.
    Stale = 1,
    /// Stale, shown as fresh: another instance regenerates it.
    AsFresh = 2,
    /// A miss (`undefined` / `null`).
    Miss = 3,
}

/// How a served `'use cache'` entry is shown to Next.
#[derive(Clone, Debug, PartialEq)]
pub struct UseCacheShown {
    /// `timestamp` (ms).
    pub timestamp: f64,
    /// `revalidate` (s).
    pub revalidate: f64,
    /// `expire` (s).
    pub expire: f64,
    /// `stale` (s).
    pub stale: f64,
    /// The header the tags are read from: shared with the value judged (and the tier's index
    /// when it keeps that header), so an answer copies no tag.
    header: Rc<DecodedHeader>,
}

impl UseCacheShown {
    /// `tags`.
    pub fn tags(&self) -> &[String] {
        &self.header.meta.tags
    }
}

/// How a served singular-handler value is shown to Next.
#[derive(Clone, Debug, PartialEq)]
pub struct IncrementalShown {
    /// `lastModified` (ms).
    pub last_modified: f64,
    /// `cacheControl`, when one is returned: `revalidate` (`None`: `false`) and `expire`
    /// (`None`: absent).
    pub cache_control: Option<(Option<f64>, Option<f64>)>,
    /// The value kind's code.
    pub value_kind: u8,
    /// The descriptor's flag bits.
    pub value_flags: u8,
    /// Number of `segmentData` parts.
    pub segments: u16,
    /// Lengths of the parts after the header, in order.
    pub parts: Vec<u32>,
}

/// The presentation of a served value, by interface.
#[derive(Clone, Debug, PartialEq)]
pub enum Shown {
    /// Nothing is served.
    Nothing,
    /// A `'use cache'` entry.
    UseCache(UseCacheShown),
    /// A singular-handler value.
    Incremental(IncrementalShown),
}

/// The end of a read.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadAnswer {
    /// Where the served bytes come from.
    pub source: Source,
    /// What Next is told.
    pub served: Served,
    /// Next regenerates the key in this process after this answer.
    pub regenerates: bool,
    /// This read won the key's lease: the host renews it ([`ReadMachine::renewal`]).
    pub holds_lease: bool,
    /// Offset of the payload in the served bytes.
    pub payload_offset: usize,
    /// How the value is shown.
    pub shown: Shown,
    /// Debug log lines, `\n`-separated; empty when none.
    pub log: String,
    /// Error log lines (an unreadable entry, a kind mismatch, a failed read); empty when none.
    pub error: String,
    /// A singular-handler answer: what it leaves for the same request's write of the key
    /// ([`crate::regen::Own`]; the host keeps it and hands it back with the write). `start`
    /// when Next regenerates after it; `fresh_at`/`fresh_due` when Next may call it due and
    /// regenerate on its own; `written_back` and `written_back_made` when it serves a value:
    /// the creation time a write of that very value back must carry (Next 16.5 keeps the
    /// previous entry when a regeneration fails), and when the value was made, which its tags
    /// keep judging it by. Stale by a tag, both are when it was made, so it stays stale and
    /// expires as it would have; else the stamp is when the read began, so Next's delay before
    /// its next attempt holds. [`crate::regen::Own::NONE`] for any other answer.
    pub own: crate::regen::Own,
}

/// An input the machine cannot take in its state: a bug in the host's driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnexpectedInput {
    /// The machine's state when it came.
    pub state: &'static str,
}

impl UnexpectedInput {
    /// The error code.
    pub fn code(&self) -> &'static str {
        "ERR_READ_UNEXPECTED_INPUT"
    }
}

impl UnexpectedInput {
    /// The message, which [`Display`](std::fmt::Display) writes.
    pub fn message(&self) -> String {
        crate::text!("read machine: input not expected while ", self.state)
    }
}

impl std::fmt::Display for UnexpectedInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for UnexpectedInput {}

/// The engine's parts a read step uses, borrowed by the engine for one step.
pub struct ReadCtx<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// The tag mirror.
    pub mirror: &'a TagMirror,
    /// Tagged entries created at or before this time are misses ([`Engine::untrusted_before`]
    /// at the step's time).
    ///
    /// [`Engine::untrusted_before`]: crate::Engine::untrusted_before
    pub untrusted_before: Option<Millis>,
    /// The breaker is closed at the step's time.
    pub redis_answers: bool,
    /// The page announcements at the step's time, while following them caught up
    /// ([`PushFollow::page_view`](crate::tag_sync::PushFollow::page_view)).
    pub pages: Option<PageView>,
    /// The tag sync, to plan a page read that checks the page-write sequence
    /// ([`TagSync::plan_page_read`](crate::tag_sync::TagSync::plan_page_read)).
    pub tag_sync: &'a TagSync,
    /// The tag state is followed by push and caught up at the step's time
    /// ([`Engine::tags_caught_up`]).
    ///
    /// [`Engine::tags_caught_up`]: crate::Engine::tags_caught_up
    pub tags_caught_up: bool,
    /// The tier's index.
    pub lru: &'a mut LruIndex,
    /// Leases this process holds.
    pub leases: &'a mut LeaseTable,
    /// Counters.
    pub stats: &'a Stats,
    /// Where singular-handler regenerations began.
    pub regenerations: &'a mut Regenerations,
    /// Stale `'use cache'` hand-outs.
    pub stale_handouts: &'a mut StaleHandouts,
}

/// Which interface a read belongs to, with what only that interface's reads carry.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    UseCache,
    Incremental {
        is_fetch: bool,
        request_revalidate: f64,
        on_demand: bool,
    },
}

/// A servable value as judged.
#[derive(Clone, Debug, PartialEq)]
struct Servable {
    /// Shared with the tier's index when it keeps the header of the bytes judged.
    header: Rc<DecodedHeader>,
    how: Presentable,
}

#[derive(Clone, Debug, PartialEq)]
enum Presentable {
    UseCache {
        /// `revalidate` that presents it as fresh to a follower.
        as_fresh: f64,
        /// `timestamp` and `revalidate` that make Next serve it once and regenerate it;
        /// `None` when Next cannot be told that (then it is a miss).
        stale_shown: Option<(Millis, f64)>,
    },
    Incremental(Serve),
}

/// What a source held, judged.
#[derive(Clone, Debug, PartialEq)]
struct Judgement {
    found: Found,
    /// Creation time of the entry read (NaN when none, `f64::MAX` when unreadable): a newer
    /// one means "read again".
    timestamp: f64,
    value: Option<Servable>,
    source: Source,
}

impl Judgement {
    fn missing(source: Source) -> Judgement {
        Judgement {
            found: Found::Missing,
            timestamp: f64::NAN,
            value: None,
            source,
        }
    }

    fn unreadable(source: Source) -> Judgement {
        Judgement {
            found: Found::Missing,
            timestamp: f64::MAX,
            value: None,
            source,
        }
    }
}

/// The header of a servable value judged, if any.
fn judged_header(j: Option<&Judgement>) -> Option<&Rc<DecodedHeader>> {
    j.and_then(|j| j.value.as_ref()).map(|v| &v.header)
}

/// The last thing the flight was told, so an answer whose value the host cannot decode can be
/// taken back as if the value had been unreadable from the start.
#[derive(Clone, Copy, Debug, PartialEq)]
enum FlightEvent {
    Begin,
    Acquired(Acquired),
    Polled { leased: bool },
}

/// How to go on when the host cannot decode the value an answer served.
#[derive(Clone, Debug, PartialEq)]
enum Resume {
    /// Served from the tier before any read: drop it and read the store.
    Tier,
    /// Served from a kept copy after a failed read: nothing else is left.
    Kept,
    /// Served from a kept copy while Redis is down, before the flight over `first` began.
    KeptBeforeFlight(Box<Judgement>),
    /// Served at the end of the flight, from bytes of this source.
    Flight(FlightEvent, Source),
}

/// Where the machine is.
#[derive(Clone, Debug, PartialEq)]
enum State {
    New,
    Refreshing,
    OwnWrite,
    Tier,
    Get,
    /// A `Get` answered by the embedded store's bytes ([`ReadInput::Held`]) that needs more of
    /// them: the host gives the longer prefix as a reply, in the same turn, of the same bytes.
    HeldMore,
    Fallback(Failure),
    Lease,
    Waiting,
    Poll,
    Answered(Option<Resume>),
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::New => "new",
            State::Refreshing => "refreshing",
            State::OwnWrite => "waiting for the own write",
            State::Tier => "waiting for the tier",
            State::Get | State::HeldMore => "reading",
            State::Fallback(_) => "waiting for the fallback",
            State::Lease => "requesting the lease",
            State::Waiting => "waiting",
            State::Poll => "polling",
            State::Answered(_) => "answered",
        }
    }
}

/// One read of one cache key: its request, and where it is.
#[derive(Clone, Debug)]
pub struct ReadMachine {
    kind: Kind,
    cache_key: String,
    entry_key: String,
    soft_tags: SoftTags,
    consumer: Consumer,
    /// The lease token the machine was made with: its first read's.
    token: String,
    /// Reads since, each requesting a lease with `token` followed by `.n` (`lease_token`).
    reuses: u32,
    /// This read's lease token, written when it requests the lease ([`ReadMachine::fill_lease_token`]).
    lease_token: String,
    /// A `'use cache'` read asks for this process's write in flight of the key; false once
    /// the host said it holds none ([`ReadMachine::no_write_in_flight`]).
    ask_own_write: bool,
    /// This read asked for a tag refresh: the host gives it no bytes before the refresh ends.
    asked_refresh: bool,
    /// When the request began (a singular-handler regeneration is stamped with it).
    started: Millis,
    state: State,
    /// This process's copy (tier or fallback) to serve when Redis fails or is down.
    kept: Option<Judgement>,
    /// The judgement the flight works on (the first read's, then each poll's).
    current: Option<Judgement>,
    flight: Option<Flight>,
    /// When the flight counts its wait from: a `'use cache'` read's start (before its
    /// sources are read), a singular-handler read's reply.
    flight_start: Option<Millis>,
    flight_steps: u32,
    last_event: FlightEvent,
    acquire_sent_at: Millis,
    /// When this read's winning lease request was sent.
    won_at: Option<Millis>,
    /// The page announcements as seen when the last read of the entry went out.
    page_stamp: PageStamp,
    /// The last `GET` or poll was joined to one another read of this process sent earlier
    /// ([`ReadMachine::joined`]).
    joined: bool,
    /// The number the last `GET` or poll went out under ([`LruIndex::issue`]).
    order: u64,
    /// The last step judged the tier's (or the held store's) bytes by a header the index keeps
    /// with them, or left it kept there ([`ReadMachine::header_kept`]).
    header_kept: bool,
    /// The header the index keeps for the bytes the next input gives, found when the key was
    /// touched ([`Engine::tier_touch_held`](crate::Engine::tier_touch_held)); taken by the
    /// next step.
    offered_kept: Option<Rc<DecodedHeader>>,
    /// The lookup the last judgement reached, for [`ReadMachine::judge`] to count.
    judged_lookup: Option<(Surface, LookupOutcome)>,
    /// The verdict on this process's copy when it was not a hit to serve: the read goes on
    /// to Redis, whose verdict is the one counted; this one counts only if the read ends
    /// without one (a failed or refused read, Redis out of reach).
    tier_lookup: Option<(Surface, LookupOutcome)>,
    /// The read waits on another instance's lease: its polls are judged, not counted.
    polling: bool,
    log: String,
    error: String,
}

/// The request's implicit tags in one buffer, each tag's end offset in another: no allocation
/// per tag, and none at all when a reset machine reuses both.
#[derive(Clone, Debug, Default)]
struct SoftTags {
    text: String,
    ends: Vec<usize>,
}

impl SoftTags {
    fn set<'t>(&mut self, tags: impl IntoIterator<Item = &'t str>) {
        // What the tags need is known only once they are read: room past the pooled allowance
        // is given back each time (a request's implicit tags rarely come near it).
        recycle(&mut self.text, 0);
        self.ends.clear();
        if excess(self.ends.capacity() * std::mem::size_of::<usize>(), 0) {
            self.ends = Vec::new();
        }
        for tag in tags {
            self.text.push_str(tag);
            self.ends.push(self.text.len());
        }
    }

    /// `f` over the tags as a slice: on the stack for the few a request carries, so a
    /// judgement allocates no list.
    fn with_list<R>(&self, f: impl FnOnce(&[&str]) -> R) -> R {
        let mut few = [""; 8];
        let mut many = Vec::new();
        let out: &mut [&str] = if self.ends.len() <= few.len() {
            &mut few
        } else {
            many.resize(self.ends.len(), "");
            &mut many
        };
        let mut start = 0;
        for (slot, &end) in out.iter_mut().zip(&self.ends) {
            *slot = self.text.get(start..end).unwrap_or_default();
            start = end;
        }
        f(out.get(..self.ends.len()).unwrap_or_default())
    }
}

/// Capacity a pooled machine's buffer keeps whatever its read needed: room for every ordinary
/// key, tag list and token, so that reuses with those allocate nothing.
pub const POOLED_KEEP_BYTES: usize = 4096;

/// What a pooled machine may hold between reads and stay as it is ([`ReadMachine::held_bytes`]):
/// a host parks one that holds more ([`ReadMachine::park`]) before pooling it. Twice a buffer's
/// allowance: room for a read whose strings fit a reuse's texts area (2 KiB) with its entry's
/// own copy of the key and a few dozen tags, so an ordinary read is never parked, while a pool
/// of 64 idle machines holds at most 512 KiB whatever was read last.
pub const POOLED_HOLD_BYTES: usize = 2 * POOLED_KEEP_BYTES;

/// True when a pooled buffer with room for `capacity` holds back more than a read needing
/// `need` calls for: over [`POOLED_KEEP_BYTES`], and over twice the need.
fn excess(capacity: usize, need: usize) -> bool {
    capacity > POOLED_KEEP_BYTES && capacity / 2 > need
}

/// Empties `buf` for a reuse needing `need` bytes, and gives back its whole allocation when
/// that is far more than the reuse needs (`excess`): a host pools machines for the life of
/// the process, and a `'use cache'` key (the function's serialized arguments) may be of any
/// length, so a buffer that once held a long one would otherwise keep room for it in every
/// pooled machine (the wasm memory never shrinks). The whole block, not its tail: a tail cut
/// off one long key's room is a little short of the next one's and cannot hold it, where the
/// whole block can, so the allocator's free blocks stay whole. A buffer about as large as the
/// need keeps its room: reads of one long key in a row reallocate nothing.
pub fn recycle(buf: &mut String, need: usize) {
    buf.clear();
    if excess(buf.capacity(), need) {
        *buf = String::new();
    }
}

/// `buf` made a copy of `text` ([`recycle`]).
fn refill(mut buf: String, text: &str) -> String {
    recycle(&mut buf, text.len());
    buf.push_str(text);
    buf
}

/// `buf` emptied ([`recycle`]).
fn emptied(mut buf: String) -> String {
    recycle(&mut buf, 0);
    buf
}

/// A machine's strings: its request's, and its log buffers.
struct Texts {
    cache_key: String,
    entry_key: String,
    soft_tags: SoftTags,
    token: String,
    reuses: u32,
    lease_token: String,
    log: String,
    error: String,
}

/// The lease token a read requests the lease with, should it request it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseToken<'a> {
    /// A token the host drew: this read's, and the base of the machine's later reads' tokens.
    New(&'a str),
    /// The machine's own next token: the one it was made with followed by `.n` for its n-th
    /// reuse, unique across the fleet as that one is, with nothing drawn or passed per read
    /// and nothing written unless the read requests the lease. The count wraps after 2^32
    /// reuses of one machine, long after any lease of its first tokens has expired.
    Next,
}

fn push_line(buf: &mut String, line: &str) {
    if !buf.is_empty() {
        buf.push('\n');
    }
    buf.push_str(line);
}

/// Names of the flight's steps, for the `'use cache'` debug line.
fn step_name(step: Step) -> &'static str {
    match step {
        Step::Serve => "hit",
        Step::ServeStale => "stale: regenerating here",
        Step::ServeAsFresh => "stale: served as fresh while another instance regenerates",
        Step::Acquire => "lease",
        Step::Poll => "poll",
        Step::Regenerate => "miss: regenerating here",
        Step::Fallback => "miss: waited for another instance in vain, regenerating here",
        Step::Released => {
            "miss: the other instance let its lease go without writing, regenerating here"
        }
    }
}

impl ReadMachine {
    /// A `'use cache'` read of `cache_key`, whose entry lives at `entry_key` (the namespace's
    /// [`entry_key`](crate::Namespace::entry_key) for a `cacheHandlers` name; the lease key is
    /// derived from it, [`Namespace::lease_key_of_entry`]), with
    /// the request's implicit tags, begun at `now`. `token` is a random string the host drew,
    /// the lease token should this read request the lease.
    pub fn use_cache(
        entry_key: String,
        cache_key: &str,
        soft_tags: Vec<String>,
        consumer: Consumer,
        token: String,
        now: Millis,
    ) -> ReadMachine {
        ReadMachine::new(
            entry_key,
            Kind::UseCache,
            cache_key,
            soft_tags,
            consumer,
            token,
            now,
        )
    }

    /// A singular-handler read of `cache_key` (entry at `entry_key`) begun at `now`. A
    /// FETCH read (`is_fetch`) is judged with its `soft_tags` (the fetch's tags and the route's
    /// implicit tags) and its own `request_revalidate` (NaN when none); `on_demand` when the
    /// request is an on-demand revalidation.
    #[allow(clippy::too_many_arguments)]
    pub fn incremental(
        entry_key: String,
        cache_key: &str,
        is_fetch: bool,
        soft_tags: Vec<String>,
        request_revalidate: f64,
        consumer: Consumer,
        on_demand: bool,
        token: String,
        now: Millis,
    ) -> ReadMachine {
        let kind = Kind::Incremental {
            is_fetch,
            request_revalidate,
            on_demand,
        };
        ReadMachine::new(entry_key, kind, cache_key, soft_tags, consumer, token, now)
    }

    /// A machine for no read yet, to be reset for its first ([`ReadMachine::reset_use_cache`],
    /// [`ReadMachine::reset_incremental`]): how a host that pools machines makes a new one.
    pub fn idle() -> ReadMachine {
        let texts = Texts {
            cache_key: String::new(),
            entry_key: String::new(),
            soft_tags: SoftTags::default(),
            token: String::new(),
            reuses: 0,
            lease_token: String::new(),
            log: String::new(),
            error: String::new(),
        };
        ReadMachine::fresh(Kind::UseCache, texts, Consumer::Serves, Millis::ZERO)
    }

    /// Makes this machine a new `'use cache'` read, as [`ReadMachine::use_cache`] would, with
    /// the buffers of the read it served last: a host that pools machines allocates nothing
    /// per read for the keys, the implicit tags and the token.
    pub fn reset_use_cache<'t>(
        &mut self,
        entry_key: &str,
        cache_key: &str,
        soft_tags: impl IntoIterator<Item = &'t str>,
        consumer: Consumer,
        token: LeaseToken<'_>,
        now: Millis,
    ) {
        let texts = (entry_key, cache_key, token);
        self.reset(Kind::UseCache, texts, soft_tags, consumer, now);
    }

    /// Makes this machine a new singular-handler read, as [`ReadMachine::incremental`] would,
    /// with the buffers of the read it served last (see [`ReadMachine::reset_use_cache`]).
    #[allow(clippy::too_many_arguments)]
    pub fn reset_incremental<'t>(
        &mut self,
        entry_key: &str,
        cache_key: &str,
        is_fetch: bool,
        soft_tags: impl IntoIterator<Item = &'t str>,
        request_revalidate: f64,
        consumer: Consumer,
        on_demand: bool,
        token: LeaseToken<'_>,
        now: Millis,
    ) {
        let kind = Kind::Incremental {
            is_fetch,
            request_revalidate,
            on_demand,
        };
        let texts = (entry_key, cache_key, token);
        self.reset(kind, texts, soft_tags, consumer, now);
    }

    /// `texts`: the entry key, the cache key and the token.
    fn reset<'t>(
        &mut self,
        kind: Kind,
        (entry_key, cache_key, token): (&str, &str, LeaseToken<'_>),
        soft_tags: impl IntoIterator<Item = &'t str>,
        consumer: Consumer,
        now: Millis,
    ) {
        let mut soft = std::mem::take(&mut self.soft_tags);
        soft.set(soft_tags);
        let log = emptied(std::mem::take(&mut self.log));
        let error = emptied(std::mem::take(&mut self.error));
        let (token, reuses) = match token {
            LeaseToken::New(t) => (refill(std::mem::take(&mut self.token), t), 0),
            LeaseToken::Next => (std::mem::take(&mut self.token), self.reuses.wrapping_add(1)),
        };
        let lease_token = emptied(std::mem::take(&mut self.lease_token));
        *self = ReadMachine::fresh(
            kind,
            Texts {
                cache_key: refill(std::mem::take(&mut self.cache_key), cache_key),
                entry_key: refill(std::mem::take(&mut self.entry_key), entry_key),
                soft_tags: soft,
                token,
                reuses,
                lease_token,
                log,
                error,
            },
            consumer,
            now,
        );
    }

    fn new(
        entry_key: String,
        kind: Kind,
        cache_key: &str,
        soft_tags: Vec<String>,
        consumer: Consumer,
        token: String,
        now: Millis,
    ) -> ReadMachine {
        let mut soft = SoftTags::default();
        soft.set(soft_tags.iter().map(String::as_str));
        let texts = Texts {
            cache_key: cache_key.to_owned(),
            entry_key,
            soft_tags: soft,
            token,
            reuses: 0,
            lease_token: String::new(),
            log: String::new(),
            error: String::new(),
        };
        ReadMachine::fresh(kind, texts, consumer, now)
    }

    /// A machine in its first state, over `texts` (every field is set here, so a reset
    /// machine carries nothing over from its last read but its buffers' capacity).
    fn fresh(kind: Kind, texts: Texts, consumer: Consumer, now: Millis) -> ReadMachine {
        let Texts {
            cache_key,
            entry_key,
            soft_tags,
            token,
            reuses,
            lease_token,
            log,
            error,
        } = texts;
        ReadMachine {
            kind,
            cache_key,
            entry_key,
            soft_tags,
            consumer,
            token,
            reuses,
            lease_token,
            ask_own_write: true,
            asked_refresh: false,
            started: now,
            state: State::New,
            kept: None,
            current: None,
            flight: None,
            flight_start: None,
            flight_steps: 0,
            last_event: FlightEvent::Begin,
            acquire_sent_at: now,
            won_at: None,
            page_stamp: None,
            joined: false,
            order: 0,
            header_kept: false,
            offered_kept: None,
            judged_lookup: None,
            tier_lookup: None,
            polling: false,
            log,
            error,
        }
    }

    /// The host holds no write in flight of this `'use cache'` read's cache key: the read
    /// goes to the tier without asking ([`ReadAction::OwnWrite`]), as it would after
    /// [`ReadInput::OwnWrite`] with none. Call before [`ReadInput::Start`]; a reset machine
    /// asks again.
    pub fn no_write_in_flight(&mut self) {
        self.ask_own_write = false;
    }

    /// Whether [`ReadInput::Start`] would ask for the tier ([`ReadAction::PeekTier`]) given
    /// the mirror's state, whether the tag state is followed by push and caught up, and
    /// whether a page read's tier has a use (a page copy could serve,
    /// [`ReadMachine::page_copies_may_serve`], or the index holds this process's own copy of
    /// the key, which the read drops), as the step below decides it: the host offers the
    /// tier's bytes with the start only then (pulling, they would be looked up and copied for
    /// a refresh that comes first).
    pub fn asks_tier_first(
        &self,
        mirror_synced: bool,
        tags_caught_up: bool,
        page_tier_has_use: bool,
    ) -> bool {
        match self.kind {
            Kind::UseCache => mirror_synced && !self.ask_own_write,
            Kind::Incremental { is_fetch, .. } => tags_caught_up && (is_fetch || page_tier_has_use),
        }
    }

    /// Whether a page copy in the tier could serve a read: page writes are announced
    /// (`pages` some), or Redis does not answer (a copy kept for outages serves then).
    /// Without announcements (Redis Cluster, or a Redis not yet known to be plain) a page read
    /// while Redis answers goes to Redis whatever the tier holds.
    pub fn page_copies_may_serve(pages: Option<PageView>, redis_answers: bool) -> bool {
        pages.is_some() || !redis_answers
    }

    /// The host joined the `GET` or poll just asked for ([`ReadAction::Get`],
    /// [`ReadAction::Poll`]) to the same command of another read of this process, sent
    /// earlier: the view of the page announcements when it went out is that read's, not this
    /// one's, so a page copy from its reply is left for that read to keep (a page announced
    /// in between would otherwise be kept bound to the generation that replaced it, and
    /// serve with no time limit). Call after the step that asked for it, before its reply;
    /// `order` is the joined command's number ([`ReadMachine::order`] of the read that sent
    /// it): what this read keeps is stamped with it, not with the later number this read was
    /// given, or a command sent in between (a lease poll of the key) would be refused as older
    /// (docs/failures.md, "The copy an outage serves").
    pub fn joined(&mut self, order: u64) {
        self.joined = true;
        self.order = order;
    }

    /// The number the `GET` or poll just asked for goes out under
    /// ([`crate::lru::LruIndex::issue`]); a read that joins it is given it ([`ReadMachine::joined`]).
    pub fn order(&self) -> u64 {
        self.order
    }

    /// The entry's Redis key.
    pub fn entry_key(&self) -> &str {
        &self.entry_key
    }

    /// The lease's Redis key, built on demand: only a lease flight needs it.
    pub fn lease_key(&self) -> String {
        Namespace::lease_key_of_entry(&self.entry_key)
    }

    /// When this read's winning lease request was sent, once it won one.
    pub fn won_at(&self) -> Option<Millis> {
        self.won_at
    }

    /// True once the read is answered.
    pub fn is_answered(&self) -> bool {
        matches!(self.state, State::Answered(_))
    }

    fn surface(&self) -> Surface {
        match self.kind {
            Kind::UseCache => Surface::UseCache,
            Kind::Incremental { .. } => Surface::Incremental,
        }
    }

    fn log_prefix(&self) -> &'static str {
        match self.kind {
            Kind::UseCache => "get",
            Kind::Incremental { .. } => "inc get",
        }
    }

    /// Appends a debug line; callers write one only when `ctx.config.debug` is on, so a read
    /// with debugging off builds none.
    fn debug(&mut self, line: &str) {
        let prefix = self.log_prefix();
        // The same verdict twice in a row (on this process's copy, then on Redis's reply, of
        // an entry expired by a tag; or a poll's after the GET's) is logged once. Every line
        // here is this read's (same prefix and key), so its length and end tell it apart.
        let n = prefix.len() + 2 + self.entry_key.len() + line.len();
        let len = self.log.len();
        let starts_line = len == n
            || len.checked_sub(n + 1).map(|i| self.log.as_bytes().get(i)) == Some(Some(&b'\n'));
        if starts_line && self.log.ends_with(line) {
            return;
        }

        // Appended in place, without `format!`, room made once.
        let parts = [prefix, " ", &self.entry_key, " ", line];
        self.log
            .reserve(1 + parts.iter().map(|p| p.len()).sum::<usize>());
        if !self.log.is_empty() {
            self.log.push('\n');
        }
        for part in parts {
            self.log.push_str(part);
        }
    }

    fn fail(&mut self, line: &str) {
        push_line(&mut self.error, line);
    }

    /// Takes one input at `now` and answers with the next step.
    pub fn step(
        &mut self,
        ctx: &mut ReadCtx<'_>,
        input: ReadInput<'_>,
        now: Millis,
    ) -> Result<ReadStep, UnexpectedInput> {
        self.header_kept = false;
        let offered_kept = self.offered_kept.take();
        let state = std::mem::replace(&mut self.state, State::New);
        let unexpected = UnexpectedInput {
            state: state.name(),
        };
        let step = match (state, input) {
            (State::New, ReadInput::Start) => match self.kind {
                Kind::UseCache if ctx.mirror.is_synced() => self.own_write_turn(ctx, now),
                // Never loaded (a refresh failed, or a caller outside Next): refresh first,
                // rather than judge nothing fresh.
                Kind::UseCache => self.ask(State::Refreshing),
                // Following by push and caught up, the host answers a refresh at once and
                // leaves the mirror as it is (js-host/src/tag-sync.ts, `refresh`), so asking
                // would only delay the tier's turn (the driver awaits the refresh before it
                // gives bytes). Without it the judgement is the same: the same mirror and
                // page view; a copy `tier_turn` would skip after a refresh (kept for outages
                // only, or of another page generation, while Redis answers) is `Kept` by
                // `tier_use`, which leads to the same `Get` with no tier action; anything
                // else is peeked either way. A read not caught up still asks, below. A page
                // read that no copy may serve goes to Redis at once, unless the index holds
                // this process's own copy, never written to Redis: `tier_use` drops it while
                // Redis answers (the fleet's value wins), or a read of Redis that fails next
                // would serve it (the fallback takes what the tier holds).
                Kind::Incremental { is_fetch, .. } if ctx.tags_caught_up => {
                    if is_fetch
                        || Self::page_copies_may_serve(ctx.pages, ctx.redis_answers)
                        || ctx.lru.is_local(&self.entry_key)
                    {
                        self.tier_turn(ctx)
                    } else {
                        self.get(ctx, TierAction::None)
                    }
                }
                // No refreshTags hook on this interface: the tag changes are pulled alongside
                // the entry, so the judgement sees every revalidation finished before the
                // request at no extra round trip.
                Kind::Incremental { .. } => self.ask(State::Refreshing),
            },
            (State::Refreshing, ReadInput::Refreshed) => match self.kind {
                Kind::UseCache => self.own_write_turn(ctx, now),
                Kind::Incremental { .. } => self.tier_turn(ctx),
            },
            (State::OwnWrite, ReadInput::OwnWrite(bytes)) => {
                self.flight_start = Some(now);
                match bytes {
                    None => self.tier_turn(ctx),
                    Some(b) => match self.judge(ctx, decoded(b), Source::OwnWrite, now) {
                        Err(need) => self.need_more(State::OwnWrite, need),
                        Ok(j) => self.local(ctx, j, now),
                    },
                }
            }
            (State::Tier, ReadInput::Tier(bytes)) => match bytes {
                None => self.get(ctx, TierAction::None),
                Some(b) => match tier::tier_use_kept(
                    ctx.lru,
                    ctx.redis_answers,
                    ctx.pages.map(|p| p.gen),
                    &self.entry_key,
                    now,
                    Some(b.total_len),
                ) {
                    (tier::TierUse::Gone, _) => self.get(ctx, TierAction::Drop),
                    (tier::TierUse::Kept, _) => self.get(ctx, TierAction::None),
                    // The index keeps the header for these bytes: found in the same lookup
                    // (a tier hit looks its key up once).
                    (tier::TierUse::Serve, Some(kept)) => {
                        match self.judge(ctx, Ok(Rc::clone(&kept)), Source::Tier, now) {
                            Err(need) => self.need_more(State::Tier, need),
                            Ok(j) => {
                                self.keep_judged(ctx, &j, b.total_len, Some(&kept));
                                self.local(ctx, j, now)
                            }
                        }
                    }
                    (tier::TierUse::Serve, None) => match self.index_header(ctx, b) {
                        Err(need) => self.need_more(State::Tier, need),
                        Ok(header) => match self.judge(ctx, header, Source::Tier, now) {
                            Err(need) => self.need_more(State::Tier, need),
                            Ok(j) => {
                                self.keep_header(ctx, &j, b.total_len);
                                self.local(ctx, j, now)
                            }
                        },
                    },
                },
            },
            // A page read's reply (its bytes are the host's poll bytes): `leased` says the
            // page-write sequence was at the write named; if not, the value binds nothing.
            (State::Get, ReadInput::Polled { entry, leased }) => {
                if !leased {
                    self.page_stamp = None;
                }
                match self.judged(ctx, entry.map(decoded), Source::Poll, now) {
                    Err(need) => self.need_more(State::Get, need),
                    Ok((j, tier)) => self.after_first(ctx, j, tier, now),
                }
            }
            (State::Get, ReadInput::Reply(bytes)) => {
                match self.judged(ctx, bytes.map(decoded), Source::Redis, now) {
                    Err(need) => self.need_more(State::Get, need),
                    Ok((j, tier)) => self.after_first(ctx, j, tier, now),
                }
            }
            // The rest of held bytes comes as a reply (the driver's one way to give more of a
            // `Get`'s bytes): still the store's copy, whose header the index may keep.
            (State::Get, ReadInput::Held(bytes))
            | (State::HeldMore, ReadInput::Held(bytes) | ReadInput::Reply(bytes)) => {
                // The header found when the key was touched, for these bytes: no second
                // lookup of the key.
                let offered = offered_kept.filter(|_| bytes.is_some());
                let header = match &offered {
                    Some(kept) => Some(Ok(Rc::clone(kept))),
                    None => match bytes.map(|b| self.index_header(ctx, b)).transpose() {
                        Ok(header) => header,
                        Err(need) => return Ok(self.need_more(State::HeldMore, need)),
                    },
                };
                match self.judged(ctx, header, Source::Redis, now) {
                    Err(need) => self.need_more(State::HeldMore, need),
                    Ok((j, tier)) => {
                        if let Some(b) = bytes {
                            self.keep_judged(ctx, &j, b.total_len, offered.as_ref());
                        }
                        self.after_first(ctx, j, tier, now)
                    }
                }
            }
            // Redis is known to be down (the breaker logged it once): a plain miss, or the
            // copy kept for outages, which is then neither logged nor counted as a miss.
            (State::Get, ReadInput::Failed(Failure::CircuitOpen | Failure::HeldBack)) => {
                if self.kept.is_some() && !ctx.redis_answers {
                    self.settle_tier_lookup(ctx);
                    let missing = Judgement::missing(Source::Redis);
                    return Ok(self.after_first(ctx, missing, TierAction::None, now));
                }
                match self.judged(ctx, None, Source::Redis, now) {
                    Err(need) => self.need_more(State::Get, need),
                    Ok((j, tier)) => self.after_first(ctx, j, tier, now),
                }
            }
            (State::Get, ReadInput::Failed(f)) => self.read_failed(ctx, f, now),
            (State::Fallback(f), ReadInput::Fallback(bytes)) => match bytes {
                None => self.failed_miss(ctx, f, now),
                Some(b) => {
                    if !ctx.lru.touch(&self.entry_key, now) {
                        let mut step = self.failed_miss(ctx, f, now);
                        step.tier = TierAction::Drop;
                        step
                    } else {
                        match self.judge(ctx, decoded(b), Source::Kept, now) {
                            Err(need) => self.need_more(State::Fallback(f), need),
                            Ok(j) if j.value.is_some() => {
                                self.kept = Some(j);
                                self.serve_kept_after_failure(ctx, f, now)
                            }
                            Ok(_) => self.failed_miss(ctx, f, now),
                        }
                    }
                }
            },
            (State::Lease, ReadInput::LeaseReply(code)) => self.lease_answered(ctx, code, now),
            (State::Lease, ReadInput::Failed(f)) => {
                if f != Failure::CircuitOpen && ctx.config.debug {
                    let line = crate::text!("lease request failed (", f.name(), "): no lease");
                    self.debug(&line);
                }
                self.lease_answered(ctx, -1, now)
            }
            (State::Waiting, ReadInput::Timer) => self.poll(ctx),
            (State::Poll, ReadInput::Polled { entry, leased }) => {
                self.polling = true;
                match self.judged(ctx, entry.map(decoded), Source::Poll, now) {
                    Err(need) => self.need_more(State::Poll, need),
                    Ok((j, tier)) => {
                        let found = j.found;
                        self.current = Some(j);
                        self.last_event = FlightEvent::Polled { leased };
                        let step = match self.flight.as_mut() {
                            Some(flight) => {
                                let step = flight.polled(found, leased, now, &ctx.config.lease());
                                if let Some(event) = lease::step_event(step) {
                                    ctx.stats.record_lease(event);
                                }
                                step
                            }
                            None => Step::Fallback,
                        };
                        let mut next = self.fly(ctx, step, now);
                        next.tier = tier;
                        next
                    }
                }
            }
            (State::Poll, ReadInput::Failed(f)) => {
                let line = crate::text!(
                    self.log_prefix(),
                    " failed, treated as a miss: lease poll of ",
                    self.entry_key,
                    " failed (",
                    f.name(),
                    ")"
                );
                self.fail(&line);
                self.miss(ctx, now)
            }
            (State::Answered(Some(resume)), ReadInput::Undecodable) => {
                self.undecodable(ctx, resume, now)
            }
            (state, _) => {
                self.state = state;
                return Err(unexpected);
            }
        };
        Ok(step)
    }

    fn ask(&mut self, state: State) -> ReadStep {
        let action = match state {
            State::Refreshing => {
                self.asked_refresh = true;
                ReadAction::Refresh
            }
            State::OwnWrite => ReadAction::OwnWrite,
            State::Tier => ReadAction::PeekTier,
            _ => ReadAction::PeekFallback,
        };
        self.state = state;
        ReadStep {
            action,
            tier: TierAction::None,
        }
    }

    fn need_more(&mut self, state: State, need: usize) -> ReadStep {
        self.state = state;
        ReadStep {
            action: ReadAction::NeedMore { need },
            tier: TierAction::None,
        }
    }

    /// This process's write in flight first, unless the host said it holds none.
    fn own_write_turn(&mut self, ctx: &mut ReadCtx<'_>, now: Millis) -> ReadStep {
        if self.ask_own_write {
            return self.ask(State::OwnWrite);
        }
        self.flight_start = Some(now);
        self.tier_turn(ctx)
    }

    /// The tier's turn. A copy kept for outages only is of no use while Redis answers
    /// (`tier_use` would say `Kept`), so after a refresh Redis is read at once: asking for the
    /// bytes would make the host wait for the tag refresh first (rule R1 of the driver), a
    /// round trip the read does not need, since the refresh and the read travel together.
    /// Without a refresh the bytes are asked for, and `tier_use` decides (one index lookup
    /// per read, not two).
    fn tier_turn(&mut self, ctx: &mut ReadCtx<'_>) -> ReadStep {
        let key = &self.entry_key;
        if self.asked_refresh
            && ctx.redis_answers
            && ctx.lru.marks(key).is_some_and(|m| {
                !m.local && !tier::serves_while_redis_answers(m, ctx.pages.map(|p| p.gen))
            })
        {
            return self.get(ctx, TierAction::None);
        }
        self.ask(State::Tier)
    }

    fn get(&mut self, ctx: &mut ReadCtx<'_>, tier: TierAction) -> ReadStep {
        self.state = State::Get;
        self.page_stamp = ctx.pages;
        self.joined = false;
        self.order = ctx.lru.issue();
        let budget_ms = budget(ctx.config, OpKind::Read);
        // A page value binds only when read with the page-write sequence at the write this
        // process knows last: one of a write whose announcement it has not heard may be lost
        // by a failover that brings back exactly that sequence, which no pull can tell
        // (docs/decisions/0031-page-entries-in-the-tier-by-push.md, "The value a read binds").
        if ctx.pages.is_some()
            && matches!(
                self.kind,
                Kind::Incremental {
                    is_fetch: false,
                    ..
                }
            )
        {
            match ctx.tag_sync.plan_page_read(&self.entry_key) {
                Some(call) => {
                    return ReadStep {
                        action: ReadAction::PageRead { call, budget_ms },
                        tier,
                    }
                }
                None => self.page_stamp = None,
            }
        }
        ReadStep {
            action: ReadAction::Get {
                key: self.entry_key.clone(),
                budget_ms,
            },
            tier,
        }
    }

    /// This process's copy (its own write, or the tier's) judged.
    fn local(&mut self, ctx: &mut ReadCtx<'_>, j: Judgement, now: Millis) -> ReadStep {
        if j.found == Found::Fresh {
            return self.answer(ctx, Step::Serve, j, Some(Resume::Tier), now);
        }
        // Redis is out of reach: what this process holds is the best there is.
        if j.value.is_some() && !ctx.redis_answers {
            self.settle_tier_lookup(ctx);
            self.log_landed(ctx, Step::ServeStale);
            return self.answer(ctx, Step::ServeStale, j, Some(Resume::Tier), now);
        }
        if j.source == Source::OwnWrite {
            // The write in flight is the newest this process knows: no read.
            return self.after_first(ctx, j, TierAction::None, now);
        }
        if j.value.is_none() {
            ctx.lru.remove(&self.entry_key);
            return self.get(ctx, TierAction::Drop);
        }
        self.kept = Some(Judgement {
            source: Source::Kept,
            ..j
        });
        self.get(ctx, TierAction::None)
    }

    /// The store's read failed (not for an open breaker).
    fn read_failed(&mut self, ctx: &mut ReadCtx<'_>, f: Failure, now: Millis) -> ReadStep {
        if self.kept.is_some() {
            return self.serve_kept_after_failure(ctx, f, now);
        }
        match self.kind {
            // What this process holds beats a miss, a copy kept for outages only included.
            Kind::Incremental { .. } => {
                self.state = State::Fallback(f);
                ReadStep {
                    action: ReadAction::PeekFallback,
                    tier: TierAction::None,
                }
            }
            Kind::UseCache => self.failed_miss(ctx, f, now),
        }
    }

    fn serve_kept_after_failure(
        &mut self,
        ctx: &mut ReadCtx<'_>,
        f: Failure,
        now: Millis,
    ) -> ReadStep {
        self.settle_tier_lookup(ctx);
        if ctx.config.debug {
            let line = crate::text!(
                "redis read failed (",
                f.name(),
                "), served from this process"
            );
            let prefix = self.log_prefix();
            push_line(
                &mut self.log,
                &crate::text!(prefix, " ", self.entry_key, ": ", line),
            );
        }
        match self.kept.take() {
            Some(kept) => self.answer(ctx, Step::ServeStale, kept, Some(Resume::Kept), now),
            None => self.failed_miss(ctx, f, now),
        }
    }

    fn failed_miss(&mut self, ctx: &mut ReadCtx<'_>, f: Failure, now: Millis) -> ReadStep {
        self.settle_tier_lookup(ctx);
        let line = crate::text!(
            self.log_prefix(),
            " failed, treated as a miss: redis read of ",
            self.entry_key,
            " failed (",
            f.name(),
            ")"
        );
        self.fail(&line);
        self.miss(ctx, now)
    }

    /// The read ends in a miss that is not a flight's decision (a failure).
    fn miss(&mut self, ctx: &mut ReadCtx<'_>, now: Millis) -> ReadStep {
        self.answer(
            ctx,
            Step::Regenerate,
            Judgement::missing(Source::None),
            None,
            now,
        )
    }

    /// The first judgement the flight works on: the store's reply (or this process's write).
    fn after_first(
        &mut self,
        ctx: &mut ReadCtx<'_>,
        first: Judgement,
        tier: TierAction,
        now: Millis,
    ) -> ReadStep {
        if first.value.is_none() && !ctx.redis_answers {
            if let Some(kept) = self.kept.take() {
                self.log_landed(ctx, Step::ServeStale);
                let resume = Resume::KeptBeforeFlight(Box::new(first));
                let mut step = self.answer(ctx, Step::ServeStale, kept, Some(resume), now);
                step.tier = tier;
                return step;
            }
        }
        let mut step = self.begin_flight(ctx, first, now);
        step.tier = tier;
        step
    }

    fn begin_flight(&mut self, ctx: &mut ReadCtx<'_>, first: Judgement, now: Millis) -> ReadStep {
        let started = self.flight_start.unwrap_or(now);
        let (flight, step) =
            Flight::begin(first.found, self.consumer, started, &ctx.config.lease());
        self.flight = Some(flight);
        self.current = Some(first);
        self.last_event = FlightEvent::Begin;
        self.fly(ctx, step, now)
    }

    /// Carries out a flight step.
    fn fly(&mut self, ctx: &mut ReadCtx<'_>, step: Step, now: Millis) -> ReadStep {
        self.flight_steps = self.flight_steps.saturating_add(1);
        let step = if self.flight_steps > MAX_FLIGHT_STEPS {
            Step::Fallback
        } else {
            step
        };
        match step {
            Step::Acquire => {
                let seen = self
                    .current
                    .as_ref()
                    .map(|j| j.timestamp)
                    .filter(|t| t.is_finite())
                    .map(Millis);
                self.fill_lease_token();
                match lease::plan_acquire(
                    self.entry_key.clone(),
                    self.lease_key(),
                    &self.lease_token,
                    ctx.config.lease_ttl_ms,
                    seen,
                ) {
                    Ok(call) => {
                        self.state = State::Lease;
                        self.acquire_sent_at = now;
                        ReadStep {
                            action: ReadAction::Acquire {
                                call,
                                budget_ms: budget(ctx.config, OpKind::Lease),
                            },
                            tier: TierAction::None,
                        }
                    }
                    Err(e) => {
                        if ctx.config.debug {
                            let line =
                                crate::text!("lease request failed (", e.message(), "): no lease");
                            self.debug(&line);
                        }
                        self.lease_answered(ctx, -1, now)
                    }
                }
            }
            Step::Poll => {
                let delay_ms = self.flight.map_or(0.0, |f| f.delay_ms);
                if delay_ms > 0.0 {
                    self.state = State::Waiting;
                    ReadStep {
                        action: ReadAction::Wait { delay_ms },
                        tier: TierAction::None,
                    }
                } else {
                    self.poll(ctx)
                }
            }
            landed => {
                let j = self
                    .current
                    .take()
                    .unwrap_or_else(|| Judgement::missing(Source::None));
                self.log_landed(ctx, landed);
                let resume = Resume::Flight(self.last_event, j.source);
                self.answer(ctx, landed, j, Some(resume), now)
            }
        }
    }

    /// The `'use cache'` debug line of the step a read lands on, except a hit's (`answer`
    /// writes that one); the singular handler's judgement line says it (`judge_incremental`).
    fn log_landed(&mut self, ctx: &ReadCtx<'_>, landed: Step) {
        if landed != Step::Serve && self.kind == Kind::UseCache && ctx.config.debug {
            self.debug_step(landed);
        }
    }

    /// The debug line naming `step` and, for a cache, the reader.
    fn debug_step(&mut self, step: Step) {
        let who = match self.consumer {
            Consumer::Caches => " (for a cache: a prerender or an outer cache)",
            Consumer::Serves => "",
        };
        let line = crate::text!(step_name(step), who);
        self.debug(&line);
    }

    fn poll(&mut self, ctx: &mut ReadCtx<'_>) -> ReadStep {
        self.state = State::Poll;
        // A poll does not check the page-write sequence as a page read does: a page value it
        // brings serves this read and binds nothing (the next read reads it again).
        self.page_stamp = None;
        self.joined = false;
        self.order = ctx.lru.issue();
        ReadStep {
            action: ReadAction::Poll {
                call: lease::plan_poll(self.entry_key.clone(), self.lease_key()),
                budget_ms: budget(ctx.config, OpKind::Lease),
            },
            tier: TierAction::None,
        }
    }

    /// Writes this read's lease token (`lease_token`), once: the machine's first token, with
    /// `.n` after it for its n-th reuse ([`LeaseToken::Next`]).
    fn fill_lease_token(&mut self) {
        if !self.lease_token.is_empty() {
            return;
        }
        self.lease_token.push_str(&self.token);
        if self.reuses > 0 {
            self.lease_token.push('.');
            crate::text::push_u64(&mut self.lease_token, u64::from(self.reuses));
        }
    }

    fn lease_answered(&mut self, ctx: &mut ReadCtx<'_>, code: i64, now: Millis) -> ReadStep {
        let result = Acquired::from_reply(code);
        if result == Acquired::Won {
            self.fill_lease_token();
            ctx.leases.hold(
                &self.lease_key(),
                &self.lease_token,
                self.acquire_sent_at,
                ctx.config.lease_ttl_ms,
            );
            self.won_at = Some(self.acquire_sent_at);
        }
        self.last_event = FlightEvent::Acquired(result);
        let step = match self.flight.as_mut() {
            Some(flight) => flight.acquired(result, now, &ctx.config.lease()),
            None => Step::Fallback,
        };
        if let Some(event) = lease::answer_event(result, step) {
            ctx.stats.record_lease(event);
        }
        self.fly(ctx, step, now)
    }

    /// The header of the entry key's item in the tier's index, for bytes the host gave from
    /// the item ([`ReadInput::Tier`] once `tier_use` found it held, [`ReadInput::Held`]): the
    /// one the index keeps for them, else decoded from their prefix. `Err(need)` when the host
    /// left the prefix out and the index keeps none: it gives the bytes again with one.
    fn index_header(
        &self,
        ctx: &ReadCtx<'_>,
        b: Bytes<'_>,
    ) -> Result<Result<Rc<DecodedHeader>, DecodeError>, usize> {
        match ctx.lru.kept_header(&self.entry_key, b.total_len) {
            Some(h) => Ok(Ok(h)),
            None if b.prefix.is_empty() && b.total_len > 0 => Err(b.total_len.min(HEADER_WINDOW)),
            None => Ok(decoded(b)),
        }
    }

    /// Keeps the header of servable bytes the host gave from the entry key's item in the
    /// index with that item ([`LruIndex::keep_header`]), for the next reads of them.
    fn keep_header(&mut self, ctx: &mut ReadCtx<'_>, j: &Judgement, total_len: usize) {
        if let Some(v) = &j.value {
            self.header_kept = ctx.lru.keep_header(&self.entry_key, total_len, &v.header);
        }
    }

    /// [`ReadMachine::keep_header`], for bytes judged by `kept`, the header the index already
    /// keeps with them (found with the key's touch): a judged header that is that one is
    /// what `keep_header` would find kept, without looking the key up again.
    fn keep_judged(
        &mut self,
        ctx: &mut ReadCtx<'_>,
        j: &Judgement,
        total_len: usize,
        kept: Option<&Rc<DecodedHeader>>,
    ) {
        match (&j.value, kept) {
            (Some(v), Some(kept)) if Rc::ptr_eq(&v.header, kept) => self.header_kept = true,
            _ => self.keep_header(ctx, j, total_len),
        }
    }

    /// The header the index keeps for the bytes the next input gives (see `offered_kept`).
    pub(crate) fn offer_kept_header(&mut self, kept: Option<Rc<DecodedHeader>>) {
        self.offered_kept = kept;
    }

    /// An estimate of the heap this machine holds that its request sizes, with `last`, the
    /// step it answered last, when the host keeps that too: the capacities of the cache key's
    /// and implicit tags' buffers and of the answer's log lines and part lengths, and each
    /// entry header it refers to (the values judged, the copy kept, the answer's; one referred
    /// to twice counted twice) by [`DecodedHeader::heap_bytes`]. A read leaves all of it in
    /// the machine until the next reset, so a pooled machine would pin its last read's long
    /// key or thousands of tags for as long as it stays idle: over [`POOLED_HOLD_BYTES`], the
    /// host parks it ([`ReadMachine::park`]).
    pub fn held_bytes(&self, last: Option<&ReadStep>) -> usize {
        // The buffers a read fills to its request's size; the entry key, the token and the log
        // buffers (moved into the answer) are of a size of their own.
        let soft = &self.soft_tags;
        let mut bytes = self.cache_key.capacity()
            + soft.text.capacity()
            + soft.ends.capacity() * std::mem::size_of::<usize>();
        let answer = match last.map(|s| &s.action) {
            Some(ReadAction::Answer(a)) => Some(a),
            _ => None,
        };
        let mut answered = None;
        if let Some(a) = answer {
            bytes += a.log.capacity() + a.error.capacity();
            match &a.shown {
                Shown::UseCache(s) => answered = Some(&s.header),
                Shown::Incremental(s) => bytes += s.parts.capacity() * std::mem::size_of::<u32>(),
                Shown::Nothing => {}
            }
        }
        let before_flight = match &self.state {
            State::Answered(Some(Resume::KeptBeforeFlight(j))) => judged_header(Some(j)),
            _ => None,
        };
        // Twice for one referred to twice: an over-estimate, of headers that are small unless
        // their key or tags make them large.
        let headers = [
            judged_header(self.kept.as_ref()),
            judged_header(self.current.as_ref()),
            self.offered_kept.as_ref(),
            before_flight,
            answered,
        ];
        for h in headers.into_iter().flatten() {
            // Below the address space: it is memory the machine refers to.
            bytes = bytes.saturating_add(h.heap_bytes() as usize);
        }
        bytes
    }

    /// Gives back what the last read left in the machine: its keys' and implicit tags' buffers
    /// and the entry headers it refers to, for a host that pools the machine after a read that
    /// left more than [`POOLED_HOLD_BYTES`] ([`ReadMachine::held_bytes`]). It keeps what is of
    /// a size of its own: the lease token the host drew and the count of reuses the next
    /// token is derived from (the log buffers were moved into the answer). Its entry key reads
    /// empty; a reset makes it a read again.
    pub fn park(&mut self) {
        self.cache_key = String::new();
        self.entry_key = String::new();
        self.soft_tags = SoftTags::default();
        self.kept = None;
        self.current = None;
        self.offered_kept = None;
        self.state = State::New;
    }

    /// Whether the last step judged the bytes the host gave from the tier (or the held store)
    /// by a header the index keeps with them, or left the one it judged kept there: the host
    /// may give those same bytes without their prefix next time ([`ReadInput::Tier`]).
    pub fn header_kept(&self) -> bool {
        self.header_kept
    }

    /// Judges a header a source's bytes gave; `Err(need)` asks for a longer prefix. Counts
    /// the lookup.
    fn judge(
        &mut self,
        ctx: &mut ReadCtx<'_>,
        header: Result<Rc<DecodedHeader>, DecodeError>,
        source: Source,
        now: Millis,
    ) -> Result<Judgement, usize> {
        // Taken out for the judgement, which also writes log lines into the machine.
        let soft_tags = std::mem::take(&mut self.soft_tags);
        let judged = soft_tags.with_list(|soft| self.judge_with(ctx, header, soft, source, now));
        self.soft_tags = soft_tags;
        let lookup = self.judged_lookup.take();
        if let (Ok(j), Some(lookup)) = (&judged, lookup) {
            self.count_lookup(ctx, lookup, source, j.found == Found::Fresh);
        }
        judged
    }

    /// Counts a read once however many sources it judges (`fleetcache.lookups` counts reads):
    /// the verdict on this process's copy waits for Redis's unless it is served as a hit, and
    /// a lease poll is the wait (`fleetcache.lease.waits`), not a lookup.
    fn count_lookup(
        &mut self,
        ctx: &mut ReadCtx<'_>,
        lookup: (Surface, LookupOutcome),
        source: Source,
        fresh: bool,
    ) {
        if self.polling {
            return;
        }
        if source == Source::Tier && !fresh {
            self.tier_lookup = Some(lookup);
            return;
        }
        self.tier_lookup = None;
        ctx.stats.record_lookup(lookup.0, lookup.1);
    }

    /// The read ends on this process's copy, judged without a hit: its verdict counts.
    fn settle_tier_lookup(&mut self, ctx: &mut ReadCtx<'_>) {
        if let Some((surface, outcome)) = self.tier_lookup.take() {
            ctx.stats.record_lookup(surface, outcome);
        }
    }

    fn judge_with(
        &mut self,
        ctx: &mut ReadCtx<'_>,
        header: Result<Rc<DecodedHeader>, DecodeError>,
        soft: &[&str],
        source: Source,
        now: Millis,
    ) -> Result<Judgement, usize> {
        let untrusted = ctx.untrusted_before;
        let inspection =
            verdict::judge_decoded(ctx.mirror, || untrusted, &self.cache_key, header, soft, now);
        match self.kind.clone() {
            Kind::UseCache => self.judge_use_cache(ctx, inspection, soft, source, now),
            Kind::Incremental {
                is_fetch,
                request_revalidate,
                ..
            } => self.judge_incremental(ctx, inspection, is_fetch, request_revalidate, source, now),
        }
    }

    fn judge_use_cache(
        &mut self,
        ctx: &mut ReadCtx<'_>,
        inspection: verdict::Inspection,
        soft: &[&str],
        source: Source,
        now: Millis,
    ) -> Result<Judgement, usize> {
        let lookup = inspection.lookup_outcome(now);
        self.judged_lookup = lookup;
        let timestamp = inspection
            .header
            .as_ref()
            .map_or(0.0, |h| h.meta.timestamp.0);
        match inspection.verdict {
            Verdict::NeedMore(need) => Err(need),
            Verdict::Fresh | Verdict::Stale => {
                let Some(header) = inspection.header else {
                    return Ok(Judgement::unreadable(source));
                };
                let m = &header.meta;
                let stale = inspection.verdict == Verdict::Stale
                    || past_revalidate(m.timestamp, m.revalidate, now);
                // Next drops an entry created at or before its implicit tags' expiration, the
                // value its `getExpiration` gets for these same tags.
                let not_before = tag_sync::expiration(ctx.mirror, soft, ctx.untrusted_before, now);
                let how = Presentable::UseCache {
                    as_fresh: lease::fresh_revalidate(
                        m.timestamp,
                        m.revalidate,
                        m.expire,
                        now,
                        ctx.config.lease_ttl_ms,
                    ),
                    stale_shown: lease::stale_use_cache_presentation(
                        m.timestamp,
                        m.revalidate,
                        m.expire,
                        not_before,
                        now,
                    ),
                };
                Ok(Judgement {
                    found: if stale { Found::Stale } else { Found::Fresh },
                    timestamp,
                    value: Some(Servable { header, how }),
                    source,
                })
            }
            Verdict::Expired => {
                // The core says why: its own lifetime, or a tag.
                if ctx.config.debug {
                    self.debug(lookup.map_or("expired", |(_, o)| o.name()));
                }
                Ok(Judgement {
                    found: Found::Missing,
                    timestamp,
                    value: None,
                    source,
                })
            }
            Verdict::KeyMismatch => {
                if ctx.config.debug {
                    self.debug("hash collision with another key: miss");
                }
                Ok(Judgement {
                    found: Found::Missing,
                    timestamp,
                    value: None,
                    source,
                })
            }
            Verdict::Corrupt(e) => {
                let line = crate::text!(
                    "unreadable entry at ",
                    self.entry_key,
                    " (",
                    e.code(),
                    "): treated as a miss"
                );
                self.fail(&line);
                // An unreadable value never counts as "newer" than this read.
                Ok(Judgement::unreadable(source))
            }
        }
    }

    fn judge_incremental(
        &mut self,
        ctx: &mut ReadCtx<'_>,
        inspection: verdict::Inspection,
        is_fetch: bool,
        request_revalidate: f64,
        source: Source,
        now: Millis,
    ) -> Result<Judgement, usize> {
        let (verdict, header) =
            incremental::present(inspection, request_revalidate, ctx.config.next_release, now);
        let lookup = verdict.lookup_outcome(header.as_deref(), now);
        self.judged_lookup = lookup.map(|outcome| (Surface::Incremental, outcome));
        let timestamp = header.as_ref().map_or(0.0, |h| h.meta.timestamp.0);
        let missing = |timestamp: f64| Judgement {
            found: Found::Missing,
            timestamp,
            value: None,
            source,
        };
        let serve = match verdict {
            IncrementalVerdict::NeedMore(need) => return Err(need),
            IncrementalVerdict::Serve(s) => s,
            IncrementalVerdict::Expired => {
                if ctx.config.debug {
                    self.debug(lookup.map_or("expired", LookupOutcome::name));
                }
                return Ok(missing(timestamp));
            }
            IncrementalVerdict::KeyMismatch => {
                if ctx.config.debug {
                    self.debug("hash collision with another key: miss");
                }
                return Ok(missing(timestamp));
            }
            IncrementalVerdict::Corrupt(code) => {
                let line = crate::text!(
                    "unreadable entry at ",
                    self.entry_key,
                    " (",
                    code,
                    "): treated as a miss"
                );
                self.fail(&line);
                return Ok(Judgement::unreadable(source));
            }
        };
        let Some(header) = header else {
            return Ok(Judgement::unreadable(source));
        };
        // A FETCH request's own revalidate is preferred over the stored one (as Next does).
        let r = if serve.desc.kind == ValueKind::Fetch
            && request_revalidate.is_finite()
            && request_revalidate != 0.0
        {
            request_revalidate
        } else {
            serve.revalidate.unwrap_or(f64::INFINITY)
        };
        let found = if serve.stale || past_revalidate(header.meta.timestamp, r, now) {
            Found::Stale
        } else {
            Found::Fresh
        };
        let kind = serve.desc.kind;
        // Next throws an InvariantError when a FETCH read finds another kind or vice versa.
        let mismatch = if is_fetch {
            kind != ValueKind::Fetch
        } else {
            kind == ValueKind::Fetch
        };
        if mismatch {
            let line = crate::text!(
                "entry at ",
                self.entry_key,
                " has value kind ",
                kind as u8,
                ", read as ",
                if is_fetch { "FETCH" } else { "another kind" },
                ": miss"
            );
            self.fail(&line);
            return Ok(missing(timestamp));
        }
        if ctx.config.debug {
            self.debug(if found == Found::Fresh {
                "hit"
            } else {
                "stale"
            });
        }
        Ok(Judgement {
            found,
            timestamp,
            value: Some(Servable {
                header,
                how: Presentable::Incremental(serve),
            }),
            source,
        })
    }

    /// A store or poll reply judged; a servable one is kept in the tier.
    fn judged(
        &mut self,
        ctx: &mut ReadCtx<'_>,
        header: Option<Result<Rc<DecodedHeader>, DecodeError>>,
        source: Source,
        now: Millis,
    ) -> Result<(Judgement, TierAction), usize> {
        let Some(b) = header else {
            let surface = self.surface();
            self.count_lookup(ctx, (surface, LookupOutcome::Miss), source, false);
            if ctx.config.debug {
                self.debug("miss");
            }
            return Ok((Judgement::missing(source), TierAction::None));
        };
        let j = self.judge(ctx, b, source, now)?;
        // A reply that went out before the command the tier's copy comes from (this process's
        // own write of the key included) may bring the value that copy replaced: it serves
        // this read, and the copy stays (docs/failures.md, "The copy an outage serves").
        let may_keep = ctx
            .lru
            .read_may_keep(&self.entry_key, self.order, self.joined);
        let tier = match j.value.as_ref() {
            Some(_) if !may_keep => TierAction::None,
            Some(v) => {
                let until = tier::tier_expiry(
                    v.header.meta.timestamp,
                    v.header.meta.expire,
                    now,
                    ctx.config.max_ttl_seconds * 1000.0,
                );
                if tier::tier_serves(&v.header) {
                    TierAction::Keep {
                        until,
                        outage_only: false,
                        page_gen: 0,
                        order: self.order,
                    }
                } else if self.joined && matches!(source, Source::Redis | Source::Poll) {
                    TierAction::None
                } else {
                    // A page copy serves while Redis answers only bound to the announcements
                    // (docs/decisions/0031-page-entries-in-the-tier-by-push.md).
                    let bound = match source {
                        Source::Redis | Source::Poll => page_binding(self.page_stamp, ctx.pages),
                        _ => None,
                    };
                    TierAction::Keep {
                        until,
                        outage_only: bound.is_none(),
                        page_gen: bound.unwrap_or(0),
                        order: self.order,
                    }
                }
            }
            None => TierAction::None,
        };
        Ok((j, tier))
    }

    /// Ends the read with the flight's `step` over `j`.
    fn answer(
        &mut self,
        ctx: &mut ReadCtx<'_>,
        step: Step,
        j: Judgement,
        resume: Option<Resume>,
        now: Millis,
    ) -> ReadStep {
        let mut j = j;
        let holds_lease = self.won_at.is_some();
        let (served, shown, payload_offset) = match j.value.as_mut() {
            None => (Served::Miss, Shown::Nothing, 0),
            Some(v) => present(v, step, now),
        };
        let source = if served == Served::Miss {
            Source::None
        } else {
            j.source
        };
        let mut own = crate::regen::Own::NONE;
        let regenerates = match &self.kind.clone() {
            Kind::UseCache => {
                if let (Shown::UseCache(s), Some(v)) = (&shown, j.value.as_ref()) {
                    if step != Step::Serve {
                        // Next 16.4 may give this answer to a page regeneration that joins the
                        // request: that page's write is then stamped no later than the entry.
                        let tags: Vec<&str> = s.tags().iter().map(String::as_str).collect();
                        ctx.stale_handouts.note_answer(
                            &tags,
                            j.found,
                            step,
                            v.header.meta.timestamp,
                            now,
                        );
                    } else if ctx.config.debug {
                        // The flight logs every other step it lands on (`fly`); a hit, from
                        // the tier or from Redis, is answered here without one.
                        self.debug(step_name(step));
                    }
                }
                crate::regen::regenerates(effective_step(served, step), false)
            }
            Kind::Incremental {
                on_demand,
                request_revalidate,
                ..
            } => {
                let (on_demand, request_revalidate) = (*on_demand, *request_revalidate);
                let landed = step;
                let step = effective_step(served, step);
                match step {
                    _ if !ctx.config.debug => {}
                    Step::ServeAsFresh => self.debug(step_name(step)),
                    // A value found and not served (a stale one read for a cache, or the flight
                    // ended its wait on it): named by the step the flight landed on, as a
                    // `'use cache'` read's is.
                    Step::Regenerate if j.value.is_some() => self.debug_step(landed),
                    _ => {}
                }
                if let Some(Servable {
                    header,
                    how: Presentable::Incremental(serve),
                }) = j.value.as_ref()
                {
                    // Tags judge the value by when it was made, and so will they once it is
                    // written back, however late a revalidation reaches Redis: the stamp
                    // only sets when the value written back falls due (Next's retry delay).
                    let made = header.meta.made().0;
                    (own.written_back, own.written_back_made) = if serve.stale {
                        // Stale by a tag: it stays stale, and expires as it would have.
                        let at = made.min(self.started.0);
                        (at, at)
                    } else {
                        (self.started.0.max(made), made)
                    };
                }
                // Where a regeneration of this key begins, if it does: its write is stamped
                // with it.
                ctx.regenerations
                    .note_read(&self.entry_key, step, on_demand, self.started);
                if crate::regen::regenerates(step, on_demand) {
                    own.start = self.started.0;
                }
                // And when Next, judging a fresh answer again, calls it due: past that, a
                // write with no known start may be a regeneration Next began on its own.
                if let (
                    Served::Fresh | Served::AsFresh,
                    Shown::Incremental(s),
                    Some(Servable {
                        how: Presentable::Incremental(serve),
                        ..
                    }),
                ) = (served, &shown, j.value.as_ref())
                {
                    let blind = crate::incremental::next_ignores_cache_control(
                        ctx.config.next_release,
                        serve.desc.kind,
                    );
                    if let Some(r) =
                        crate::incremental::next_revalidate(serve, request_revalidate, blind)
                    {
                        if r * 1000.0 <= crate::regen::MAX_REGENERATION_MS {
                            let due = Millis(s.last_modified + r * 1000.0);
                            ctx.regenerations
                                .note_fresh(&self.entry_key, self.started, due);
                            own.fresh_at = self.started.0;
                            own.fresh_due = due.0;
                        }
                    }
                }
                crate::regen::regenerates(step, on_demand)
            }
        };
        self.state = State::Answered(if served == Served::Miss { None } else { resume });
        ReadStep {
            action: ReadAction::Answer(ReadAnswer {
                source,
                served,
                regenerates,
                holds_lease,
                payload_offset,
                shown,
                // Moved, not copied: a later answer (after `Undecodable`) starts them afresh.
                log: std::mem::take(&mut self.log),
                error: std::mem::take(&mut self.error),
                own,
            }),
            tier: TierAction::None,
        }
    }

    /// The host could not decode the value the answer served: it counts as unreadable from
    /// where it was judged on.
    fn undecodable(&mut self, ctx: &mut ReadCtx<'_>, resume: Resume, now: Millis) -> ReadStep {
        self.log.clear();
        self.error.clear();
        match resume {
            Resume::Tier => {
                self.kept = None;
                ctx.lru.remove(&self.entry_key);
                self.get(ctx, TierAction::Drop)
            }
            // A kept copy that cannot be decoded is never servable: the tier forgets it, as it
            // forgets a copy judged unreadable, so later reads do not serve it again.
            Resume::Kept => {
                ctx.lru.remove(&self.entry_key);
                let mut next = self.miss(ctx, now);
                next.tier = TierAction::Drop;
                next
            }
            Resume::KeptBeforeFlight(first) => {
                ctx.lru.remove(&self.entry_key);
                let mut next = self.begin_flight(ctx, *first, now);
                next.tier = TierAction::Drop;
                next
            }
            Resume::Flight(event, source) => {
                let drop = matches!(source, Source::Redis | Source::Poll | Source::Tier);
                self.current = Some(Judgement::unreadable(source));
                let cfg = ctx.config.lease();
                // The answer taken back landed on a serving step, which counted no wait: the
                // miss it becomes counts what it leads to, as if the value had been unreadable
                // from the start (a win was counted already).
                let step = match (event, self.flight.as_mut()) {
                    (FlightEvent::Acquired(result), Some(flight)) => {
                        flight.found = Found::Missing;
                        let step = flight.acquired(result, now, &cfg);
                        if result != Acquired::Won {
                            if let Some(event) = lease::answer_event(result, step) {
                                ctx.stats.record_lease(event);
                            }
                        }
                        step
                    }
                    (FlightEvent::Polled { leased }, Some(flight)) => {
                        flight.polls = flight.polls.saturating_sub(1);
                        let step = flight.polled(Found::Missing, leased, now, &cfg);
                        if let Some(event) = lease::step_event(step) {
                            ctx.stats.record_lease(event);
                        }
                        step
                    }
                    _ => {
                        let (flight, step) =
                            Flight::begin(Found::Missing, self.consumer, now, &cfg);
                        self.flight = Some(flight);
                        step
                    }
                };
                let mut next = self.fly(ctx, step, now);
                if drop {
                    ctx.lru.remove(&self.entry_key);
                    next.tier = TierAction::Drop;
                }
                next
            }
        }
    }

    /// The renewal of the lease this read won, if it won one.
    pub fn renewal(&self) -> Option<RenewMachine> {
        self.won_at
            .map(|won_at| RenewMachine::new(self.lease_key(), won_at))
    }
}

/// A `'use cache'` hit from the tier's copy of `entry_key`, `total_len` bytes long, answered
/// without a read machine: what a machine reset for `cache_key` and `soft_tags`, with no write
/// in flight and the tag mirror synced, would answer after [`ReadInput::Start`] and
/// [`ReadInput::Tier`] with those bytes and no prefix, when that answer is a fresh serve from
/// the tier. `held`: the bytes are the embedded store's instead, which that machine reads as
/// the `Get`'s reply ([`ReadInput::Held`] after the engine's `tier_touch_held`), and serves as
/// [`Source::Redis`]; the same checks, in the same index. The same checks decide it: [`tier::tier_use_kept`] (the copy is held, live, not
/// this process's own or kept for outages only while Redis answers, and the index keeps its
/// header), then [`verdict::judge_decoded`] (the cache key, `expire`, the tags' and the soft
/// tags' revalidations, an untrusted mirror) and `revalidate`. Anything else is `None`: the
/// host reads with a machine, which looks again and decides as it always does (nothing this
/// did changes its answer: a copy found gone or kept here is found so there too).
pub(crate) fn tier_hit(
    ctx: &mut ReadCtx<'_>,
    entry_key: &str,
    cache_key: &str,
    soft_tags: &[&str],
    total_len: usize,
    held: bool,
    now: Millis,
) -> Option<ReadAnswer> {
    let (tier::TierUse::Serve, Some(kept)) = tier::tier_use_kept(
        ctx.lru,
        ctx.redis_answers,
        ctx.pages.map(|p| p.gen),
        entry_key,
        now,
        Some(total_len),
    ) else {
        return None;
    };
    let untrusted = ctx.untrusted_before;
    let inspection = verdict::judge_decoded(
        ctx.mirror,
        || untrusted,
        cache_key,
        Ok(kept),
        soft_tags,
        now,
    );
    let header = match (&inspection.verdict, &inspection.header) {
        (Verdict::Fresh, Some(h)) if h.meta.kind == crate::envelope::EntryKind::UseCache => {
            Rc::clone(h)
        }
        _ => return None,
    };
    let m = &header.meta;
    if past_revalidate(m.timestamp, m.revalidate, now) {
        return None;
    }
    // Counted as the machine's judgement counts it, once the hit is certain.
    if let Some((surface, outcome)) = inspection.lookup_outcome(now) {
        ctx.stats.record_lookup(surface, outcome);
    }
    // `present` for `Step::Serve`: the entry as stored.
    let shown = UseCacheShown {
        timestamp: m.timestamp.0,
        revalidate: m.revalidate,
        expire: m.expire,
        stale: m.stale,
        header: Rc::clone(&header),
    };
    Some(ReadAnswer {
        source: if held { Source::Redis } else { Source::Tier },
        served: Served::Fresh,
        regenerates: crate::regen::regenerates(Step::Serve, false),
        holds_lease: false,
        payload_offset: header.header_len,
        shown: Shown::UseCache(shown),
        log: String::new(),
        error: String::new(),
        own: crate::regen::Own::NONE,
    })
}

/// A miss is a regeneration here, whatever step it landed on.
fn effective_step(served: Served, step: Step) -> Step {
    if served == Served::Miss {
        Step::Regenerate
    } else {
        step
    }
}

fn budget(config: &Config, kind: OpKind) -> f64 {
    guard::budget_ms(kind, config.read_timeout_ms, config.write_timeout_ms)
}

/// What Next is told about servable `v` for the flight's `step`, and the payload offset. The
/// tags and part lengths are moved into the presentation: an answer is the value's last use.
fn present(v: &mut Servable, step: Step, now: Millis) -> (Served, Shown, usize) {
    let offset = v.header.header_len;
    let m = &v.header.meta;
    let (timestamp, revalidate, expire, stale) = (m.timestamp, m.revalidate, m.expire, m.stale);
    match &v.how {
        Presentable::UseCache {
            as_fresh,
            stale_shown,
        } => {
            let (served, timestamp, revalidate) = match step {
                Step::Serve => (Served::Fresh, timestamp.0, revalidate),
                // Backdated, never a negative revalidate: Next copies an entry's revalidate into
                // the page that reads it, and a page below 1 s answers HTTP 500.
                Step::ServeStale => match stale_shown {
                    Some((ts, r)) => (Served::Stale, ts.0, *r),
                    None => return (Served::Miss, Shown::Nothing, 0),
                },
                Step::ServeAsFresh => (Served::AsFresh, timestamp.0, *as_fresh),
                _ => return (Served::Miss, Shown::Nothing, 0),
            };
            let shown = UseCacheShown {
                timestamp,
                revalidate,
                expire,
                stale,
                header: Rc::clone(&v.header),
            };
            (served, Shown::UseCache(shown), offset)
        }
        Presentable::Incremental(s) => {
            let (served, last_modified) = match step {
                Step::Serve => (Served::Fresh, s.last_modified),
                Step::ServeStale => (Served::Stale, s.last_modified),
                // A follower: another instance regenerates, so Next must see no staleness.
                Step::ServeAsFresh => (Served::AsFresh, now.0),
                _ => return (Served::Miss, Shown::Nothing, 0),
            };
            let shown = IncrementalShown {
                last_modified,
                cache_control: s.cache_control.then_some((s.revalidate, s.expire)),
                value_kind: s.desc.kind as u8,
                value_flags: s.desc.flags(),
                segments: s.desc.segments,
                parts: match Rc::get_mut(&mut v.header) {
                    Some(h) => std::mem::take(&mut h.meta.parts),
                    None => v.header.meta.parts.clone(),
                },
            };
            (served, Shown::Incremental(shown), offset)
        }
    }
}

/// How much of a value's start the machine asks for when the host gave none and the tier's
/// index keeps no header for it: as much as the host gives first otherwise
/// (js-host/src/read-driver.ts, `HEADER_WINDOW`).
pub const HEADER_WINDOW: usize = 4096;

/// The header of bytes a source gave, shared.
fn decoded(b: Bytes<'_>) -> Result<Rc<DecodedHeader>, DecodeError> {
    decode_header(b.prefix, b.total_len).map(Rc::new)
}

/// The engine's parts a renewal step uses.
pub struct RenewCtx<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// Leases this process holds.
    pub leases: &'a mut LeaseTable,
}

/// What the host does next for a renewal.
#[derive(Clone, Debug, PartialEq)]
pub enum RenewStep {
    /// Wait, then input [`RenewInput::Timer`].
    Wait {
        /// The pause, ms.
        delay_ms: f64,
    },
    /// Send the renewal script, then input [`RenewInput::Sent`] or a failure.
    Send {
        /// The script call.
        call: ScriptCall,
        /// The command's budget.
        budget_ms: f64,
    },
    /// The renewals are over (written, released, lapsed, replaced or at their cap).
    Done {
        /// A debug line, empty when none; written only when [`Config::debug`] is on.
        log: String,
    },
}

/// One input to a renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewInput {
    /// Begin.
    Start,
    /// The pause is over.
    Timer,
    /// The renewal was answered: `true` when the script replied 1.
    Sent(bool),
    /// The renewal brought no reply.
    Failed(Failure),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum RenewState {
    New,
    Waiting,
    Sending { sent_at: Millis },
    Done,
}

/// Renews a lease this process won while it holds it, at the lease's renewal interval. It
/// ends once the entry is written or the lease released (the lease table no longer holds
/// it), when the lease lapsed or was replaced, or at its cap.
#[derive(Clone, Debug)]
pub struct RenewMachine {
    lease_key: String,
    won_at: Millis,
    state: RenewState,
}

impl RenewMachine {
    /// A renewal of the lease on `lease_key` won by the request sent at `won_at`.
    pub fn new(lease_key: String, won_at: Millis) -> RenewMachine {
        RenewMachine {
            lease_key,
            won_at,
            state: RenewState::New,
        }
    }

    fn wait(&mut self, ctx: &RenewCtx<'_>) -> RenewStep {
        self.state = RenewState::Waiting;
        RenewStep::Wait {
            delay_ms: lease::renew_every_ms(ctx.config.lease_ttl_ms),
        }
    }

    fn done(&mut self, log: String) -> RenewStep {
        self.state = RenewState::Done;
        RenewStep::Done { log }
    }

    /// Takes one input at `now` and answers with the next step.
    pub fn step(
        &mut self,
        ctx: &mut RenewCtx<'_>,
        input: RenewInput,
        now: Millis,
    ) -> Result<RenewStep, UnexpectedInput> {
        let step = match (self.state, input) {
            (RenewState::New, RenewInput::Start) => self.wait(ctx),
            (RenewState::Waiting, RenewInput::Timer) => {
                match ctx.leases.plan_renew(
                    self.lease_key.clone(),
                    self.won_at,
                    now,
                    ctx.config.lease_ttl_ms,
                ) {
                    Some(call) => {
                        self.state = RenewState::Sending { sent_at: now };
                        RenewStep::Send {
                            call,
                            budget_ms: budget(ctx.config, OpKind::Lease),
                        }
                    }
                    None => self.done(String::new()),
                }
            }
            (RenewState::Sending { sent_at }, RenewInput::Sent(renewed)) => {
                if renewed {
                    ctx.leases.renewed(
                        &self.lease_key,
                        self.won_at,
                        sent_at,
                        ctx.config.lease_ttl_ms,
                    );
                    self.wait(ctx)
                } else if ctx.config.debug {
                    let line = crate::text!(
                        "lease ",
                        self.lease_key,
                        " no longer this process's: not renewed"
                    );
                    self.done(line)
                } else {
                    self.done(String::new())
                }
            }
            // Tried again at the next interval while the lease may still be alive.
            (RenewState::Sending { .. }, RenewInput::Failed(_)) => self.wait(ctx),
            (state, _) => {
                return Err(UnexpectedInput {
                    state: match state {
                        RenewState::New => "new",
                        RenewState::Waiting => "waiting",
                        RenewState::Sending { .. } => "renewing",
                        RenewState::Done => "done",
                    },
                })
            }
        };
        Ok(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a machine's buffers hold room for.
    fn capacities(m: &ReadMachine) -> [usize; 7] {
        [
            m.cache_key.capacity(),
            m.entry_key.capacity(),
            m.soft_tags.text.capacity(),
            m.soft_tags.ends.capacity() * std::mem::size_of::<usize>(),
            m.token.capacity(),
            m.log.capacity(),
            m.lease_token.capacity(),
        ]
    }

    fn reset(m: &mut ReadMachine, key: &str, tags: &[&str], token: &str) {
        let token = LeaseToken::New(token);
        let tags = tags.iter().copied();
        m.reset_use_cache(key, key, tags, Consumer::Serves, token, Millis::ZERO);
    }

    /// A pooled machine kept room for the longest key it ever read, for the life
    /// of the process.
    #[test]
    fn a_reset_gives_back_the_room_a_long_read_took() {
        let long = "k".repeat(512 * 1024);
        let many: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let mut m = ReadMachine::idle();
        reset(&mut m, &long, &many, &long);
        m.log.push_str(&long);
        m.error.push_str(&long);
        m.lease_token.push_str(&long);
        assert!(capacities(&m).iter().all(|&c| c > 2 * POOLED_KEEP_BYTES));
        reset(&mut m, "short", &["t"], "token");
        for c in capacities(&m) {
            assert!(c <= POOLED_KEEP_BYTES, "{c} bytes kept after a short read");
        }
        assert!(m.error.capacity() <= POOLED_KEEP_BYTES);
    }

    /// Ordinary keys, and one long key read again and again, reuse the buffers as they are.
    #[test]
    fn a_reset_keeps_the_room_its_read_needs() {
        let mut m = ReadMachine::idle();
        let ordinary = "k".repeat(POOLED_KEEP_BYTES);
        reset(&mut m, &ordinary, &["a", "b"], "token");
        let at = m.cache_key.as_ptr();
        reset(&mut m, "short", &["t"], "token");
        assert_eq!(m.cache_key.as_ptr(), at, "a short key reuses the buffer");
        reset(&mut m, &ordinary, &["t"], "token");
        assert_eq!(m.cache_key.as_ptr(), at, "so does an ordinary key after it");

        let long = "k".repeat(100_000);
        reset(&mut m, &long, &["t"], "token");
        let at = m.cache_key.as_ptr();
        let half = &long[..60_000];
        reset(&mut m, half, &["t"], "token");
        assert_eq!(
            m.cache_key.as_ptr(),
            at,
            "more than half of the room used: kept"
        );
        assert_eq!(m.cache_key, half);
    }

    /// A `'use cache'` read of `key` answered from Redis with an entry tagged `tags`: the
    /// machine as the answer leaves it, the answer, and the header it shows.
    fn answered(key: &str, tags: &[&str]) -> (ReadMachine, ReadStep, Rc<DecodedHeader>) {
        use crate::write::SetInput;
        let now = Millis(1_795_690_530_000.0);
        let iface = crate::keys::Interface::UseCache("default");
        let mut e = crate::Engine::new(Config {
            prefix: "fc".into(),
            deployment: "d1".into(),
            leases: false,
            ..Config::default()
        })
        .unwrap();
        e.mark_standalone();
        let input = SetInput {
            kind: crate::envelope::EntryKind::UseCache,
            timestamp: now,
            made_at: None,
            revalidate: 60.0,
            expire: 3600.0,
            stale: 30.0,
            tags,
            meta: &[],
            parts: &[1],
            now,
        };
        let mut v = e.plan_set(&iface, key, input).unwrap().header;
        v.push(b'x');
        let (soft, token) = (vec!["soft".to_owned()], "0123456789abcdef".to_owned());
        let mut m = e.read_use_cache(&iface, key, soft, Consumer::Serves, token, now);
        m.no_write_in_flight();
        let mut step = e.read_step(&mut m, ReadInput::Start, now).unwrap();
        for _ in 0..4 {
            let input = match step.action {
                ReadAction::PeekTier => ReadInput::Tier(None),
                ReadAction::Get { .. } => ReadInput::Reply(Some(Bytes {
                    prefix: &v,
                    total_len: v.len(),
                })),
                _ => break,
            };
            step = e.read_step(&mut m, input, now).unwrap();
        }
        let ReadAction::Answer(ReadAnswer {
            served: Served::Fresh,
            shown: Shown::UseCache(shown),
            ..
        }) = &step.action
        else {
            panic!("not a hit: {step:?}");
        };
        let header = Rc::clone(&shown.header);
        (m, step, header)
    }

    /// A machine keeps what its last read left (the cache key, the answer with the entry's header:
    /// its copy of the key and every tag) until its next reset, so a pooled machine idle after a
    /// read of a long key or of an entry with thousands of tags pinned them for as long as it
    /// stayed in the pool. It says so (`held_bytes` over `POOLED_HOLD_BYTES`), and parked it keeps
    /// no header and no more room than a buffer's allowance in all (its lease token).
    #[test]
    fn a_parked_machine_holds_no_more_than_the_keep_after_a_long_key_or_many_tags() {
        let long = "k".repeat(crate::envelope::Limits::MAX_KEY_BYTES);
        let many: Vec<String> = (0..5_000usize).map(|i| crate::text!("tag-", i)).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        for (key, tags) in [(long.as_str(), &["t"][..]), ("short", &many[..])] {
            let (mut m, step, header) = answered(key, tags);
            let held = m.held_bytes(Some(&step));
            let header_bytes = header.heap_bytes() as usize;
            assert!(
                held >= header_bytes + m.cache_key.capacity(),
                "{held} bytes"
            );
            assert!(held > POOLED_HOLD_BYTES, "{held} bytes held said to be few");
            let token = m.token.clone();
            // The host keeps the last step with the machine (the binding's `last`).
            drop(step);
            m.park();
            assert_eq!(Rc::strong_count(&header), 1, "parked, it refers to none");
            assert_eq!(m.held_bytes(None), 0);
            let kept = capacities(&m);
            assert!(kept.iter().sum::<usize>() <= POOLED_KEEP_BYTES, "{kept:?}");
            assert!(m.kept.is_none() && m.current.is_none() && m.offered_kept.is_none());
            assert_eq!(m.state, State::New);
            // The next read's lease token is derived from these.
            assert_eq!((m.token.as_str(), m.reuses), (token.as_str(), 0));
        }
    }

    /// An ordinary read (a key of some hundred bytes, a few tags) holds less than a pooled
    /// machine may: it is pooled as it is, with no call to park it.
    #[test]
    fn an_ordinary_read_is_pooled_as_it_is() {
        let key = "k".repeat(1500);
        let tags: Vec<String> = (0..20usize).map(|i| crate::text!("tag-", i)).collect();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let (m, step, _) = answered(&key, &tags);
        let held = m.held_bytes(Some(&step));
        assert!(held <= POOLED_HOLD_BYTES, "{held} bytes");
        assert!(
            held > 2 * key.len(),
            "{held} bytes: the key and its copy in the header"
        );
    }

    #[test]
    fn recycle_gives_back_whole_blocks_only_past_the_allowance_and_twice_the_need() {
        let mut s = String::with_capacity(1 << 20);
        s.push_str("abc");
        recycle(&mut s, 10);
        assert_eq!((s.len(), s.capacity()), (0, 0));
        let mut s = String::with_capacity(100_000);
        recycle(&mut s, 50_001);
        assert_eq!(s.capacity(), 100_000, "more than half needed: kept");
        let mut s = String::with_capacity(POOLED_KEEP_BYTES);
        recycle(&mut s, 0);
        assert_eq!(s.capacity(), POOLED_KEEP_BYTES, "the allowance is kept");
    }
}
