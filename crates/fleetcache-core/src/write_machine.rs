//! The write machine: every decision about one `set` of either Next surface, stepped by the
//! host one input at a time (`docs/internals.md`, "Request machines").
//!
//! A machine is planned when it is created ([`write_start`]): the envelope header, the TTL,
//! whether the entry is stored at all, and whether the tier may serve this process's copy.
//! The host then sends what each [`WriteStep`] asks for and answers with a [`WriteInput`]:
//!
//! ```text
//! start ─► planned ─┬─ stored (TTL) ─┬────────────────────────────► Store ──Sent──► Done(Stored)
//!                   │                └─ large ─► Compress ─Compressed(n)─┘  └─Failed(f)─► Done(Failed
//!                   │                                                          or Unsent, MarkLocal)
//!                   ├─ not cacheable ─┬─ lease held ─► Release ─Sent/Failed─► Done(Skipped)
//!                   ├─ refused ───────┤                                      Done(Refused)
//!                   ├─ abandoned ─────┘                                      Done(Failed)
//!                   └─ (no lease) ───────────────────────────────────────► Done(...)
//! ```
//!
//! The module is a leaf: it borrows the engine's parts through [`WriteCtx`] and never names
//! the engine.

use crate::compression::{self, Compress};
use crate::config::Config;
use crate::envelope::{Codec, EntryKind, EntryMeta};
use crate::error::PlanError;
use crate::guard::{budget_ms, OpKind};
use crate::incremental::{Descriptor, IncrementalPlanError, IncrementalSet, ValueKind};
use crate::keys::{Interface, Namespace};
use crate::lease::{EntryWrite, LeaseTable};
use crate::lru::WriteMark;
use crate::read_machine::Failure;
use crate::regen::Own;
use crate::regen::{self, RecentFills, Regenerations, StaleHandouts};
use crate::scripts::{entry_write_call, ScriptCall};
use crate::stats::{Stats, Surface, WriteOutcome};
use crate::tag_sync::PushFollow;
use crate::tags::{admit_tags, DroppedTags, TagMirror};
use crate::tier::tier_serves_value;
use crate::time::{ahead_of_wall, Millis};
use crate::write::{self, surface_of, write_outcome, SetInput, SetPlan};

/// The engine's parts a write machine reads and changes, borrowed for one transition.
#[derive(Debug)]
pub struct WriteCtx<'a> {
    /// Limits and budgets.
    pub config: &'a Config,
    /// Key naming.
    pub namespace: &'a Namespace,
    /// Leases this process holds: a write or a release takes the token.
    pub leases: &'a mut LeaseTable,
    /// Where this process's singular-handler regenerations began (the creation stamp).
    pub regenerations: &'a mut Regenerations,
    /// Stale `'use cache'` entries handed out (the creation stamp of pages that used one).
    pub stale_handouts: &'a StaleHandouts,
    /// `'use cache'` values written lately (the creation stamp of pages that joined one).
    pub fills: &'a RecentFills,
    /// The tag state, which judges those values as a page's data.
    pub mirror: &'a TagMirror,
    /// Following the tag state by push: how far back the mirror vouched for what reached
    /// Redis when a page's data was judged.
    pub push: Option<&'a PushFollow>,
    /// Counters: every planned write is counted by its outcome.
    pub stats: &'a Stats,
    /// No Redis behind this engine: entries stay in the process, never compressed.
    pub standalone: bool,
    /// The tag state's meta key and channel, when page and route entries of the singular
    /// handler are written with an announcement there (single Redis:
    /// docs/decisions/0031-page-entries-in-the-tier-by-push.md).
    /// With the version id this write announces itself under, if it does.
    pub page_announce: Option<(&'a str, &'a str, String)>,
}

/// One `set`, as the host received it from Next (payload bytes excluded).
#[derive(Clone, Copy, Debug)]
pub enum WriteRequest<'a> {
    /// A `'use cache'` entry of `cacheHandlers.<name>`.
    UseCache {
        /// The handler's interface (a singular-handler interface is refused).
        iface: Interface<'a>,
        /// Next's cache key.
        cache_key: &'a str,
        /// The entry's tags.
        tags: &'a [&'a str],
        /// Creation time Next stamped (ms).
        timestamp: Millis,
        /// Seconds.
        revalidate: f64,
        /// Seconds.
        expire: f64,
        /// Seconds.
        stale: f64,
        /// Bytes of the payload the host appends to the header.
        payload_len: u32,
    },
    /// A value of the singular handler, as value-codec described it.
    Incremental {
        /// Next's cache key.
        cache_key: &'a str,
        /// Value kind code of the descriptor.
        kind: u8,
        /// Descriptor flag bits.
        flags: u8,
        /// `APP_PAGE` segment count.
        segments: u16,
        /// The entry's tags.
        tags: &'a [&'a str],
        /// `cacheControl.revalidate` in seconds (ignored where the flags say `false`).
        revalidate: f64,
        /// `cacheControl.expire` in seconds (ignored where the flags say absent).
        expire: f64,
        /// Lengths of the parts the host appends, its JSON part first.
        parts: &'a [u32],
        /// What the writing request's own read of the key left ([`Own`]).
        own: Own,
    },
    /// Nothing could be produced for `cache_key` (Next's entry rejected, its value could not
    /// be encoded): nothing is stored, and a lease this process holds on it is let go.
    Abandoned {
        /// The interface of the handler.
        iface: Interface<'a>,
        /// Next's cache key.
        cache_key: &'a str,
    },
}

/// What the host reports for the command the last step asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteInput {
    /// The command was answered.
    Sent,
    /// The command got no usable answer.
    Failed(Failure),
    /// The host could not send the value it planned (before answering [`WriteStep::Store`]):
    /// nothing is stored, and the lease is let go as for an abandoned request.
    Abandon,
    /// The host's codec turned the payload into this many bytes ([`WriteStep::Compress`]).
    /// [`WriteInput::Failed`] there means the codec failed: the value is stored plain.
    Compressed(u64),
}

/// Compress the payload before it is stored; the plain value is this process's copy already.
#[derive(Clone, Debug, PartialEq)]
pub struct CompressStep {
    /// The Redis key.
    pub key: String,
    /// The plain envelope's header: `header ++ payload parts` is the value the tier keeps
    /// (until `keep_until`, for outages only when `outage_only`) and this process's readers
    /// see from now on, whatever is stored.
    pub header: Vec<u8>,
    /// The codec to run on the payload parts, concatenated.
    pub codec: Codec,
    /// Its level (`node:zlib`; a `CompressionStream` has its own).
    pub level: u32,
    /// How long the caller waits for the write, compression included, before it resolves
    /// Next's `set` (as [`Store::wait_ms`]).
    pub wait_ms: f64,
    /// The tier keeps the plain copy until then.
    pub keep_until: Millis,
    /// The tier keeps the copy for outages only.
    pub outage_only: bool,
}

/// Where the host writes the entry, and what the in-process tier keeps of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Store {
    /// The Redis key.
    pub key: String,
    /// The envelope header; the value is `header ++ payload parts`.
    pub header: Vec<u8>,
    /// `PX` in ms (at least 1).
    pub ttl_ms: u64,
    /// `None`: `SET key value PX ttl_ms`. Some: this script (it writes the entry and releases
    /// this process's lease), the value appended as its last argument.
    pub script: Option<ScriptCall>,
    /// The command's budget (a write's).
    pub budget_ms: f64,
    /// How long the caller waits for the write before it resolves Next's `set` (a read's
    /// budget: a stalled Redis costs a response no more than a read); the write goes on.
    pub wait_ms: f64,
    /// The tier keeps this process's copy until then (the TTL from the write).
    pub keep_until: Millis,
    /// The tier keeps the copy for outages only (a page or route entry of the singular
    /// handler: docs/decisions/0021-page-entries-out-of-the-tier.md).
    pub outage_only: bool,
    /// The value is `header ++` the codec output of the [`WriteStep::Compress`] step before,
    /// not the payload parts; the tier has the plain copy already.
    pub compressed: bool,
}

/// How a write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteResult {
    /// Written to the store.
    Stored,
    /// Not cacheable (`revalidate: 0`, past its lifetime): nothing stored.
    Skipped,
    /// Refused by the envelope's rules (too large, too many tags, a bad layout): nothing
    /// stored; [`WriteDone::error`] names the code.
    Refused,
    /// The write failed; the host appends the failure's description to
    /// [`WriteDone::error`]. Also the end of an abandoned write.
    Failed,
    /// Not sent: the breaker keeps this process off Redis. The tier's copy serves until
    /// Redis answers again.
    Unsent,
}

/// The end of a write, with the lines the host logs.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteDone {
    /// How it ended.
    pub result: WriteResult,
    /// The tier's copy of the key never reached Redis: mark it this process's own
    /// (`LruIndex::mark_local`), so it serves only until Redis answers again.
    pub mark_local: bool,
    /// Key of the entry the machine planned, when it planned one (for the host's bookkeeping).
    pub key: Option<String>,
    /// Warning line: tags dropped for being too long.
    pub dropped_tags: Option<String>,
    /// Debug line, written only when [`Config::debug`] is on: the host prints it at debug
    /// level, so with debugging off a write builds none.
    pub log: Option<String>,
    /// Error line. With [`WriteResult::Failed`] from a failed command, the host appends
    /// `": "` and its error's description.
    pub error: Option<String>,
}

/// What the host does next.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteStep {
    /// Keep the plain copy, compress the payload (see [`CompressStep`]); answer
    /// [`WriteInput::Compressed`], or [`WriteInput::Failed`] when the codec failed.
    Compress(CompressStep),
    /// Store `header ++ payload` (see [`Store`]); answer [`WriteInput::Sent`] or
    /// [`WriteInput::Failed`].
    Store(Store),
    /// Run this script (it releases this process's lease without a write) under `budget_ms`;
    /// answer [`WriteInput::Sent`] or [`WriteInput::Failed`].
    Release {
        /// The lease release call.
        call: ScriptCall,
        /// The command's budget (a write's).
        budget_ms: f64,
    },
    /// Nothing more to send.
    Done(WriteDone),
}

/// What a planned machine does at its first step.
#[derive(Clone, Debug, PartialEq)]
enum Plan {
    Store {
        key: String,
        header: Vec<u8>,
        ttl_ms: u64,
        outage_only: bool,
        payload_len: u64,
        /// The codec to run first, and the fields to encode the compressed header from.
        compress: Option<(Compress, Box<EntryMeta>)>,
    },
    /// Not stored; a held lease is released first.
    End(WriteDone),
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    /// Planned, the first step not yet taken.
    Planned(Plan),
    /// The Compress step is out.
    Compressing(Box<Compressing>),
    /// The Store step is out.
    Storing {
        key: String,
        bytes: u64,
        ttl_ms: u64,
        /// Bytes stored instead, when compressed.
        stored: Option<u64>,
        /// The write announces itself (a page or route entry: `ENTRY_WRITE`).
        announced: bool,
        /// The lease the write releases, and its token (taken from the table when the write
        /// was planned): released on its own when the write is held back unsent.
        lease: Option<(String, String)>,
    },
    /// The Release step is out; then this end.
    Releasing(WriteDone),
    Done,
}

/// A write waiting for the host's codec.
#[derive(Clone, Debug, PartialEq)]
struct Compressing {
    key: String,
    /// The plain header, stored as it is when compression does not pay.
    header: Vec<u8>,
    meta: EntryMeta,
    codec: Codec,
    ttl_ms: u64,
    keep_until: Millis,
    outage_only: bool,
    /// Header plus payload, plain.
    bytes: u64,
    /// The payload's plain length.
    payload_len: u64,
}

/// A `'use cache'` value written, as [`WriteMachine::take_fill`] tells it: its tags (canonical),
/// its creation time, until when it is joinable, and until when it was told joinable before.
pub type FillNote = (Vec<String>, Millis, Millis, Option<Millis>);

/// One `set` in progress. Owns no engine state: every transition borrows it via [`WriteCtx`].
///
/// Not `Clone`: once its copy is kept it holds the write's mark in the tier index, which
/// ends when the machine ends or is dropped, once ([`crate::lru::WriteMark`]); a clone would
/// be a second write sharing one mark.
#[derive(Debug, PartialEq)]
pub struct WriteMachine {
    /// The interface's handler name; `None` for the singular handler.
    name: Option<String>,
    cache_key: String,
    /// Prefix of log lines: `set` or `inc set`.
    verb: &'static str,
    dropped_tags: Option<String>,
    state: State,
    /// The key of a page write of this process that announces itself, once when its Store
    /// step is planned and once when that step ends ([`WriteMachine::take_page_signal`]).
    page_signal: Option<String>,
    /// The key whose copy this write keeps in the tier, from its first Compress or Store step
    /// until it ends.
    keeping: Option<String>,
    /// [`WriteMachine::take_keep_signal`].
    keep_signal: Option<KeepSignal>,
    /// The write's mark in the tier index while it keeps its copy
    /// ([`WriteMachine::hold_mark`]): dropped with the machine, it ends there.
    mark: Option<WriteMark>,
    /// A `'use cache'` entry's tags (canonical) and creation time, until the write has ended
    /// ([`WriteMachine::take_fill`]).
    fill: Option<(Vec<String>, Millis)>,
    /// Until when the value was noted as joinable while its write went on.
    fill_noted_until: Option<Millis>,
}

/// When this process's write keeps its copy of a key in the tier
/// ([`WriteMachine::take_keep_signal`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeepSignal {
    /// Its first Compress or Store step is out: the host keeps the copy now, and sends the
    /// value later.
    Kept(String),
    /// It has ended (stored, failed, abandoned).
    Ended(String),
}

/// Plans a `'use cache'` entry write of `cache_key` (counted by outcome): the header and TTL,
/// with the entry's tags admitted. Also what was dropped from its tags.
pub fn plan_use_cache_entry(
    config: &Config,
    namespace: &Namespace,
    stats: &Stats,
    iface: &Interface<'_>,
    cache_key: &str,
    entry: SetInput<'_>,
) -> (Result<SetPlan, PlanError>, DroppedTags) {
    let (plan, dropped) = if iface.kind() == entry.kind {
        let admitted = admit_tags(entry.tags);
        let key = namespace.entry_key(iface, cache_key);
        (
            write::plan(config, key, cache_key, &entry, admitted.tags),
            admitted.dropped,
        )
    } else {
        (Err(PlanError::KindMismatch), DroppedTags::default())
    };
    stats.record_write(surface_of(entry.kind), write_outcome(&plan));
    (plan, dropped)
}

/// Plans a singular-handler value write of `cache_key` described by `set` (counted by
/// outcome; a layout that does not fit its descriptor counts as invalid).
pub fn plan_incremental_entry(
    config: &Config,
    namespace: &Namespace,
    stats: &Stats,
    cache_key: &str,
    set: &IncrementalSet<'_>,
) -> (Result<SetPlan, IncrementalPlanError>, DroppedTags) {
    let meta = set.desc.encode();
    let input = match set.set_input(&meta) {
        Ok(input) => input,
        Err(e) => {
            stats.record_write(Surface::Incremental, WriteOutcome::Invalid);
            return (Err(IncrementalPlanError::Layout(e)), DroppedTags::default());
        }
    };
    let (plan, dropped) = plan_use_cache_entry(
        config,
        namespace,
        stats,
        &Interface::Incremental,
        cache_key,
        input,
    );
    (plan.map_err(IncrementalPlanError::Plan), dropped)
}

/// Whole seconds of a TTL, as the write's debug line shows it.
fn ttl_seconds(ttl_ms: u64) -> u64 {
    (ttl_ms + 500) / 1000
}

/// Creates the machine for `request` at `now` and plans it. Nothing is sent before
/// [`WriteMachine::step`] is called with [`WriteInput`]s; the first step comes from
/// [`WriteMachine::start`]. `wall`: the host's wall clock, when it differs from `now` (else
/// `now`): where `now` runs ahead of it ([`ahead_of_wall`]), the entry's creation and made
/// times are moved back onto it.
pub fn write_start(
    ctx: WriteCtx<'_>,
    request: WriteRequest<'_>,
    now: Millis,
    wall: Millis,
) -> WriteMachine {
    let ahead = ahead_of_wall(now, wall);
    let onto_wall = |t: Millis| Millis(t.0 - ahead);
    let (iface, cache_key) = match request {
        WriteRequest::UseCache {
            iface, cache_key, ..
        }
        | WriteRequest::Abandoned { iface, cache_key } => (iface, cache_key),
        WriteRequest::Incremental { cache_key, .. } => (Interface::Incremental, cache_key),
    };
    let verb = match iface {
        Interface::Incremental => "inc set",
        Interface::UseCache(_) => "set",
    };
    let debug = ctx.config.debug;
    let key = ctx.namespace.entry_key(&iface, cache_key);
    let refused = |code: &str, message: String| {
        Plan::End(WriteDone {
            result: WriteResult::Refused,
            mark_local: false,
            key: Some(key.clone()),
            dropped_tags: None,
            log: None,
            error: Some(crate::text!(
                verb,
                " failed, entry not stored: ",
                code,
                ": ",
                message
            )),
        })
    };
    // `compressible`: images are compressed already.
    let (planned, dropped, outage_only, payload_len, compressible) = match request {
        WriteRequest::UseCache {
            iface,
            cache_key,
            tags,
            timestamp,
            revalidate,
            expire,
            stale,
            payload_len,
        } => {
            let parts = [payload_len];
            let timestamp = regen::use_cache_created(
                (ctx.stale_handouts, ctx.fills, ctx.mirror, ctx.push),
                tags,
                timestamp,
                (now, ahead),
            );
            let input = SetInput {
                kind: EntryKind::UseCache,
                timestamp: onto_wall(timestamp),
                made_at: regen::use_cache_made(timestamp, ctx.push).map(onto_wall),
                revalidate,
                expire,
                stale,
                tags,
                meta: &[],
                parts: &parts,
                now,
            };
            let (plan, dropped) = plan_use_cache_entry(
                ctx.config,
                ctx.namespace,
                ctx.stats,
                &iface,
                cache_key,
                input,
            );
            (
                plan.map_err(|e| (e.code(), e.message())),
                dropped,
                false,
                u64::from(payload_len),
                true,
            )
        }
        WriteRequest::Incremental {
            cache_key,
            kind,
            flags,
            segments,
            tags,
            revalidate,
            expire,
            parts,
            own,
        } => match Descriptor::from_wire(kind, flags, segments) {
            Err(e) => (
                Err((e.code(), e.message())),
                DroppedTags::default(),
                false,
                0,
                false,
            ),
            Ok(desc) => {
                // The entry is stamped with the start of the regeneration that produced it,
                // remembered by entry key (bounded in length, unlike a cache key).
                let key = ctx.namespace.entry_key(&Interface::Incremental, cache_key);
                let created = regen::incremental_created(
                    ctx.regenerations,
                    (ctx.stale_handouts, ctx.fills, ctx.mirror, ctx.push),
                    (&key, own),
                    desc.kind,
                    tags,
                    (now, ahead),
                );
                let set = IncrementalSet {
                    desc,
                    revalidate,
                    expire,
                    tags,
                    parts,
                    created: onto_wall(created),
                    made: regen::incremental_made(desc.kind, own, created, ctx.push).map(onto_wall),
                    now,
                };
                let (plan, dropped) =
                    plan_incremental_entry(ctx.config, ctx.namespace, ctx.stats, cache_key, &set);
                let payload: u64 = parts.iter().map(|p| u64::from(*p)).sum();
                (
                    plan.map_err(|e| (e.code(), e.message())),
                    dropped,
                    !tier_serves_value(desc.kind),
                    payload,
                    desc.kind != ValueKind::Image,
                )
            }
        },
        WriteRequest::Abandoned { .. } => {
            let done = WriteDone {
                result: WriteResult::Failed,
                mark_local: false,
                log: debug.then(|| crate::text!(verb, " ", key, ": nothing to store")),
                key: Some(key),
                dropped_tags: None,
                error: None,
            };
            return WriteMachine {
                name: owned_name(&iface),
                cache_key: cache_key.to_owned(),
                verb,
                dropped_tags: None,
                state: State::Planned(Plan::End(done)),
                page_signal: None,
                keeping: None,
                keep_signal: None,
                mark: None,
                fill: None,
                fill_noted_until: None,
            };
        }
    };
    // Noted with Next's stamp, not one lowered for a value it may have joined
    // (`regen::use_cache_created`): invocations of one tag that overlap, one after the other,
    // would otherwise hand the oldest stamp on from each to the next for as long as they go on.
    let fill = match request {
        WriteRequest::UseCache {
            tags, timestamp, ..
        } => Some((RecentFills::tags_of(tags), timestamp)),
        _ => None,
    };
    let plan = match planned {
        Err((code, message)) => refused(code, message),
        Ok(SetPlan {
            key, ttl_ms: None, ..
        }) => Plan::End(WriteDone {
            result: WriteResult::Skipped,
            mark_local: false,
            log: debug.then(|| crate::text!(verb, " ", key, " skipped (not cacheable)")),
            key: Some(key),
            dropped_tags: None,
            error: None,
        }),
        Ok(SetPlan {
            key,
            header,
            ttl_ms: Some(ttl_ms),
            meta,
        }) => {
            let header_len = header.len() as u64;
            let compress =
                compression::decide(ctx.config, ctx.standalone, payload_len, compressible)
                    .map(|c| (c, Box::new(meta)));
            Plan::Store {
                key,
                header,
                ttl_ms,
                outage_only,
                payload_len: header_len.saturating_add(payload_len),
                compress,
            }
        }
    };
    WriteMachine {
        name: owned_name(&iface),
        cache_key: cache_key.to_owned(),
        verb,
        dropped_tags: (!dropped.is_empty())
            .then(|| crate::text!(verb, " ", key, ": ", dropped.message())),
        state: State::Planned(plan),
        page_signal: None,
        keeping: None,
        keep_signal: None,
        mark: None,
        fill,
        fill_noted_until: None,
    }
}

/// The second item of `v`, `""` when there is none.
fn second(v: &[String]) -> &str {
    v.get(1).map_or("", String::as_str)
}

fn owned_name(iface: &Interface<'_>) -> Option<String> {
    match iface {
        Interface::UseCache(name) => Some((*name).to_owned()),
        Interface::Incremental => None,
    }
}

impl WriteMachine {
    /// The key of this process's page write that announces itself, when its Store step was
    /// planned or has ended since the last call: the engine then treats it as an announcement
    /// this process heard ([`crate::Engine`]'s write steps).
    pub fn take_page_signal(&mut self) -> Option<String> {
        self.page_signal.take()
    }

    /// The key of the copy this write keeps in the tier, when that began or ended since the
    /// last call: the engine orders reads of the key against the write
    /// ([`crate::lru::LruIndex::write_begins`]).
    pub fn take_keep_signal(&mut self) -> Option<KeepSignal> {
        self.keep_signal.take()
    }

    /// Holds the mark the tier index gave for this write's copy ([`KeepSignal::Kept`]) until
    /// the write ends ([`WriteMachine::take_mark`]); a machine dropped before that ends it.
    pub fn hold_mark(&mut self, mark: WriteMark) {
        self.mark = Some(mark);
    }

    /// The mark of [`WriteMachine::hold_mark`], once the write has ended
    /// ([`KeepSignal::Ended`]), to hand back to the index.
    pub fn take_mark(&mut self) -> Option<WriteMark> {
        self.mark.take()
    }

    /// The tags and creation time of the `'use cache'` entry this machine writes (or failed
    /// to), until when requests that joined its invocation may get it, and until when it was
    /// told so before, as of step `now`. Next hands the value to them when its `set` resolves,
    /// which the host does once the write has ended or `wait_ms` after its first step,
    /// whichever comes first (the write then goes on: a slow Redis). So a write that does not
    /// end at its first step is told then, joinable for `wait_ms`, before a request that joined
    /// it can write what it rendered from it; and told again when it ends, with the time it
    /// was told until, which its end replaces ([`RecentFills::ended`]).
    ///
    /// [`RecentFills::ended`]: crate::regen::RecentFills::ended
    pub fn take_fill(&mut self, now: Millis, wait_ms: f64) -> Option<FillNote> {
        if self.is_done() {
            let (tags, made) = self.fill.take()?;
            return Some((tags, made, now, self.fill_noted_until.take()));
        }
        if self.fill_noted_until.is_some() {
            return None;
        }
        let (tags, made) = self.fill.as_ref()?;
        let until = Millis(now.0 + wait_ms.max(0.0));
        self.fill_noted_until = Some(until);
        Some((tags.clone(), *made, until, None))
    }

    /// Notes the copy `step` keeps, when it is the write's first.
    fn note_kept(&mut self, step: WriteStep) -> WriteStep {
        let key = match &step {
            WriteStep::Compress(c) => Some(&c.key),
            WriteStep::Store(s) => Some(&s.key),
            _ => None,
        };
        if let (Some(key), None) = (key, &self.keeping) {
            self.keeping = Some(key.clone());
            self.keep_signal = Some(KeepSignal::Kept(key.clone()));
        }
        step
    }

    fn iface(&self) -> Interface<'_> {
        match &self.name {
            Some(name) => Interface::UseCache(name),
            None => Interface::Incremental,
        }
    }

    /// True once the machine has answered [`WriteStep::Done`].
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The planned header's and payload's total size when the machine stores an entry.
    pub fn value_len(&self) -> Option<u64> {
        match &self.state {
            State::Planned(Plan::Store { payload_len, .. }) => Some(*payload_len),
            State::Compressing(c) => Some(c.bytes),
            State::Storing { bytes, .. } => Some(*bytes),
            _ => None,
        }
    }

    /// The first step: the store, or (nothing to store) the release of a lease this
    /// process holds on the key, or the end. Called once; later calls answer the end.
    pub fn start(&mut self, ctx: WriteCtx<'_>, now: Millis) -> WriteStep {
        let step = self.first(ctx, now);
        self.note_kept(step)
    }

    fn first(&mut self, mut ctx: WriteCtx<'_>, now: Millis) -> WriteStep {
        let state = std::mem::replace(&mut self.state, State::Done);
        match state {
            State::Planned(Plan::Store {
                key,
                header,
                ttl_ms,
                outage_only,
                payload_len,
                compress: Some((compress, meta)),
            }) => {
                let keep_until = Millis(now.0 + ttl_ms as f64);
                self.state = State::Compressing(Box::new(Compressing {
                    key: key.clone(),
                    header: header.clone(),
                    payload_len: payload_len.saturating_sub(header.len() as u64),
                    meta: *meta,
                    codec: compress.codec,
                    ttl_ms,
                    keep_until,
                    outage_only,
                    bytes: payload_len,
                }));
                WriteStep::Compress(CompressStep {
                    key,
                    header,
                    codec: compress.codec,
                    level: compress.level,
                    wait_ms: self.budget(&ctx, OpKind::Read),
                    keep_until,
                    outage_only,
                })
            }
            State::Planned(Plan::Store {
                key,
                header,
                ttl_ms,
                outage_only,
                payload_len,
                compress: None,
            }) => self.store(
                &mut ctx,
                Planned {
                    key,
                    header,
                    ttl_ms,
                    keep_until: Millis(now.0 + ttl_ms as f64),
                    outage_only,
                    bytes: payload_len,
                    stored: None,
                },
            ),
            State::Planned(Plan::End(done)) => self.release_then(ctx, done),
            other => {
                self.state = other;
                self.end(WriteDone::plain(WriteResult::Failed))
            }
        }
    }

    /// The next step after `input`.
    pub fn step(&mut self, mut ctx: WriteCtx<'_>, input: WriteInput, _now: Millis) -> WriteStep {
        let debug = ctx.config.debug;
        // Every input ends a Store step.
        if let State::Storing {
            key,
            announced: true,
            ..
        } = &self.state
        {
            self.page_signal = Some(key.clone());
        }
        let state = std::mem::replace(&mut self.state, State::Done);
        match (state, input) {
            (State::Planned(Plan::Store { key, .. }), WriteInput::Abandon) => {
                self.abandon(ctx, Some(key))
            }
            (State::Planned(Plan::End(done)), WriteInput::Abandon) => self.abandon(ctx, done.key),
            (State::Compressing(c), WriteInput::Abandon) => self.abandon(ctx, Some(c.key)),
            (State::Planned(plan), _) => {
                // An input before the first step: take the first step.
                self.state = State::Planned(plan);
                self.start(ctx, _now)
            }
            (
                State::Compressing(c),
                WriteInput::Compressed(_) | WriteInput::Failed(_) | WriteInput::Sent,
            ) => {
                // Stored plain when the codec failed (or an answer came out of turn), or when
                // its output does not pay for the inflation every read from Redis costs.
                let c = *c;
                let compressed = match input {
                    WriteInput::Compressed(len)
                        if compression::worth_storing(c.payload_len, len) =>
                    {
                        compression::compressed_header(&c.meta, c.codec, len)
                            .ok()
                            .map(|h| (h, len))
                    }
                    _ => None,
                };
                let (header, stored) = match compressed {
                    Some((h, len)) => {
                        let total = (h.len() as u64).saturating_add(len);
                        (h, Some(total))
                    }
                    None => (c.header, None),
                };
                self.store(
                    &mut ctx,
                    Planned {
                        key: c.key,
                        header,
                        ttl_ms: c.ttl_ms,
                        keep_until: c.keep_until,
                        outage_only: c.outage_only,
                        bytes: c.bytes,
                        stored,
                    },
                )
            }
            (
                State::Storing {
                    key,
                    bytes,
                    ttl_ms,
                    stored,
                    ..
                },
                WriteInput::Sent,
            ) => self.end(WriteDone {
                result: WriteResult::Stored,
                mark_local: false,
                log: debug.then(|| {
                    let mut line = crate::text!(self.verb, " ", key, " ", bytes, " B");
                    if let Some(s) = stored {
                        line.push_str(&crate::text!(" (", s, " B stored compressed)"));
                    }
                    line.push_str(&crate::text!(" ttl ", ttl_seconds(ttl_ms), " s"));
                    line
                }),
                key: Some(key),
                dropped_tags: None,
                error: None,
            }),
            (
                State::Storing { key, lease, .. },
                WriteInput::Failed(f @ (Failure::CircuitOpen | Failure::HeldBack)),
            ) => {
                // Not sent. The breaker's opening was logged once, and the transport logs its
                // bound once per burst; the copy here serves meanwhile. Held back with Redis
                // answering, a lease the write would have released goes now, by a command
                // without the value, or the other instances would wait for it until it expires.
                let held = f == Failure::HeldBack;
                let done = WriteDone {
                    result: WriteResult::Unsent,
                    mark_local: true,
                    log: debug.then(|| {
                        crate::text!(
                            self.verb,
                            " ",
                            key,
                            " not sent: ",
                            if held {
                                "held back"
                            } else {
                                "Redis is known to be down"
                            },
                            ", kept in this process"
                        )
                    }),
                    key: Some(key),
                    dropped_tags: None,
                    error: None,
                };
                match lease.filter(|_| held) {
                    Some((lease_key, token)) => {
                        self.state = State::Releasing(done);
                        WriteStep::Release {
                            call: crate::lease::release_call(lease_key, token),
                            budget_ms: self.budget(&ctx, OpKind::Write),
                        }
                    }
                    None => self.end(done),
                }
            }
            (
                State::Storing { key, .. },
                WriteInput::Failed(_) | WriteInput::Abandon | WriteInput::Compressed(_),
            ) => self.end(WriteDone {
                result: WriteResult::Failed,
                mark_local: true,
                key: Some(key),
                dropped_tags: None,
                log: None,
                error: Some(crate::text!(self.verb, " failed, entry not stored")),
            }),
            (State::Releasing(done), WriteInput::Sent) => self.end(done),
            (State::Releasing(mut done), WriteInput::Failed(f)) => {
                if f != Failure::CircuitOpen && debug {
                    // It expires on its own.
                    let line = crate::text!("lease release failed (", f.name(), "): it expires");
                    done.log = Some(match done.log {
                        Some(l) => crate::text!(l, "; ", line),
                        None => line,
                    });
                }
                self.end(done)
            }
            (State::Releasing(done), WriteInput::Abandon | WriteInput::Compressed(_)) => {
                self.end(done)
            }
            (State::Done, _) => self.end(WriteDone::plain(WriteResult::Failed)),
        }
    }

    /// Nothing is stored after all: a held lease is let go.
    fn abandon(&mut self, ctx: WriteCtx<'_>, key: Option<String>) -> WriteStep {
        let mut done = WriteDone::plain(WriteResult::Failed);
        done.log = key
            .as_ref()
            .filter(|_| ctx.config.debug)
            .map(|k| crate::text!(self.verb, " ", k, ": nothing to store"));
        done.key = key;
        self.release_then(ctx, done)
    }

    /// The Store step of `planned`: written with the release of this process's lease when
    /// it holds one.
    fn store(&mut self, ctx: &mut WriteCtx<'_>, planned: Planned) -> WriteStep {
        let Planned {
            key,
            header,
            ttl_ms,
            keep_until,
            outage_only,
            bytes,
            stored,
        } = planned;
        let lease_key = ctx.namespace.lease_key(&self.iface(), &self.cache_key);
        // The copies kept for outages only are exactly the page and route entries of the
        // singular handler: the writes other instances' tiers must hear of.
        let announce = ctx.page_announce.take().filter(|_| outage_only);
        let announced = announce.is_some();
        if announced {
            self.page_signal = Some(key.clone());
        }
        let write = ctx.leases.plan_write(key.clone(), lease_key, ttl_ms);
        let lease = match &write {
            EntryWrite::WriteAndRelease(call) => {
                Some((second(&call.keys).to_owned(), second(&call.args).to_owned()))
            }
            EntryWrite::Set => None,
        };
        let script = match (write, announce) {
            (EntryWrite::Set, None) => None,
            (EntryWrite::WriteAndRelease(call), None) => Some(call),
            (write, Some((meta, channel, id))) => {
                let px = crate::text::u64_text(ttl_ms);
                Some(match &write {
                    EntryWrite::Set => {
                        entry_write_call(&[&key, meta, channel], &[&px, "", "", &id])
                    }
                    // LEASE_WRITE's `[entry, lease]` and `[px, token]`: the lease and the
                    // token, as ENTRY_WRITE takes them in mode 'l'.
                    EntryWrite::WriteAndRelease(call) => {
                        let (lease, token) = (second(&call.keys), second(&call.args));
                        entry_write_call(&[&key, meta, channel, lease], &[&px, "l", token, &id])
                    }
                })
            }
        };
        self.state = State::Storing {
            key: key.clone(),
            bytes,
            ttl_ms,
            stored,
            announced,
            lease,
        };
        WriteStep::Store(Store {
            key,
            header,
            ttl_ms,
            script,
            budget_ms: self.budget(ctx, OpKind::Write),
            wait_ms: self.budget(ctx, OpKind::Read),
            keep_until,
            outage_only,
            compressed: stored.is_some(),
        })
    }

    fn budget(&self, ctx: &WriteCtx<'_>, kind: OpKind) -> f64 {
        budget_ms(
            kind,
            ctx.config.read_timeout_ms,
            ctx.config.write_timeout_ms,
        )
    }

    /// Releases this process's lease on the key when it holds one, then ends with `done`.
    fn release_then(&mut self, ctx: WriteCtx<'_>, done: WriteDone) -> WriteStep {
        let lease_key = ctx.namespace.lease_key(&self.iface(), &self.cache_key);
        match ctx.leases.plan_release(lease_key) {
            Some(call) => {
                self.state = State::Releasing(done);
                WriteStep::Release {
                    call,
                    budget_ms: self.budget(&ctx, OpKind::Write),
                }
            }
            None => self.end(done),
        }
    }

    fn end(&mut self, mut done: WriteDone) -> WriteStep {
        self.state = State::Done;
        if let Some(key) = self.keeping.take() {
            self.keep_signal = Some(KeepSignal::Ended(key));
        }
        done.dropped_tags = self.dropped_tags.take();
        WriteStep::Done(done)
    }
}

/// What a Store step writes.
struct Planned {
    key: String,
    header: Vec<u8>,
    ttl_ms: u64,
    keep_until: Millis,
    outage_only: bool,
    /// Header plus payload, plain.
    bytes: u64,
    /// Header plus codec output, when that is what is stored.
    stored: Option<u64>,
}

impl WriteDone {
    fn plain(result: WriteResult) -> WriteDone {
        WriteDone {
            result,
            mark_local: false,
            key: None,
            dropped_tags: None,
            log: None,
            error: None,
        }
    }
}
