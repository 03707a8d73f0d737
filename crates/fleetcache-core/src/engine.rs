//! The engine: the one owner of a process's cache state.
//!
//! [`Engine`] holds every component (configuration, namespace, tag mirror, in-process index,
//! breaker, outbox, lease table, regeneration table, counters) and is the only type that
//! knows them all. Its methods are delegations: each asks the components, which never reach
//! back into the engine, and records the outcome values they return in [`Stats`]. Every
//! method is synchronous, takes the current time as an argument, and performs no I/O.

use std::borrow::Cow;
use std::cell::Cell;
use std::rc::Rc;

use crate::breaker::{Breaker, BreakerState, CallResult, Permit};
use crate::compression::{self, Inflation};
use crate::config::Config;
use crate::envelope::DecodedHeader;
use crate::error::{ConfigError, DecodeError, PlanError, ProtocolError};
use crate::guard::{self, Admission, OpKind};
use crate::incremental::{
    self, IncrementalPlanError, IncrementalSet, IncrementalVerdict, ValueKind,
};
use crate::keys::{Interface, KeyHashes, Namespace};
use crate::lease::{
    self, Acquired, Consumer, EntryWrite, Flight, Found, LeaseConfig, LeaseTable, Step,
};
use crate::lru::LruIndex;
use crate::outbox::{missing_permission, Outbox, PendingUpdate, Refusal};
use crate::read_machine::{
    LeaseToken, ReadAnswer, ReadCtx, ReadInput, ReadMachine, ReadStep, RenewCtx, RenewInput,
    RenewMachine, RenewStep, UnexpectedInput,
};
use crate::regen::{self, RecentFills, Regenerations, StaleHandouts};
use crate::scripts::{check_epoch_candidate, ScriptCall};
use crate::seed;
use crate::stats::{Gauges, LeaseEvent, LookupOutcome, RedisResult, Stats, StatsSnapshot, Surface};
use crate::strhash::HashSeed;
use crate::tag_record::TagRecord;
use crate::tag_sync::{self, TagSync};
use crate::tags::Announced;
use crate::tags::{
    admit_tags_seeded, DroppedTags, Freshness, RefreshSummary, Revalidation, TagMirror,
};
use crate::tier::{self, TierUse};
use crate::time::Millis;
use crate::verdict::{self, Inspection};
use crate::write::{SetInput, SetPlan};
use crate::write_machine::{
    self, KeepSignal, WriteCtx, WriteInput, WriteMachine, WriteRequest, WriteStep,
};

/// One process's engine: namespace, configuration, tag mirror and in-process index.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    namespace: Namespace,
    /// What this process knows of the shared tag state.
    mirror: TagMirror,
    /// The bookkeeping of the mirror's exchange with Redis.
    tag_sync: TagSync,
    /// The in-process tier's index.
    lru: LruIndex,
    /// Health of the Redis connection.
    breaker: Breaker,
    /// Revalidations on their way to Redis.
    outbox: Outbox,
    /// Regeneration leases this process holds.
    leases: LeaseTable,
    /// Where this process's singular-handler regenerations began.
    regenerations: Regenerations,
    /// Stale `'use cache'` entries handed out, by tag.
    stale_handouts: StaleHandouts,
    /// `'use cache'` values this process wrote lately (the creation stamp of pages that
    /// joined one).
    fills: RecentFills,
    /// What the engine decided, counted.
    stats: Stats,
    /// Digests of recently used cache keys.
    key_hashes: KeyHashes,
    /// Tags dropped from the last list a plan was given (see [`Engine::dropped_tags`]).
    dropped_tags: Cell<DroppedTags>,
    /// No Redis behind this engine ([`Engine::mark_standalone`]).
    standalone: bool,
    /// Page writes announce themselves ([`Engine::announce_page_writes`]).
    announce_pages: bool,
    /// This process's part of every announced page write's version id
    /// ([`Engine::set_write_id_seed`]), and the writes counted so far: together unique to
    /// each write, as no hash of its key and bytes is.
    write_id_seed: String,
    write_ids: Cell<u64>,
    /// The seed of the maps keyed by request input ([`Engine::with_hash_seed`]).
    hash_seed: HashSeed,
    /// When the host's timer retries ([`Wake::Retry`]), once armed ([`Engine::arm_retry`]).
    retry_at: Option<Millis>,
    /// A failed pull's retry is owed, left to the pull time while there is one
    /// ([`Engine::poll_timeout`]); a pull planned since answers it.
    retry_owed: bool,
    /// The last pull failed, or an update reached another state, and no pull was applied
    /// since: an armed retry still has a pull to do ([`Engine::poll_timeout`]).
    pull_failed: bool,
    /// How far the host's wall clock was ahead of its process's clock when last told
    /// ([`Engine::note_clocks`]).
    wall_ahead: Option<f64>,
    /// How far its process's clock was told to run ahead of the wall clock
    /// ([`crate::time::ahead_of_wall`]), and when (its clock) last, within the longest a
    /// regeneration runs: a regeneration's times taken then are on a scale that far ahead
    /// ([`Engine::write_start_at`]). Each is farther than every one told after it, so the
    /// first within a window is the farthest in it: one farthest distance alone would forget
    /// a nearer one told after it, though that one outlives it. At most [`AHEAD_KEPT`], the
    /// oldest two merged into the farther at the later time (farther for longer: the safe side).
    ahead_seen: Vec<(f64, Millis)>,
}

/// How many distances ahead of the wall clock an engine keeps ([`Engine::note_clocks`]): a
/// few steps within a regeneration's life; more are merged, farther for longer.
const AHEAD_KEPT: usize = 4;

/// What the host's one timer does when its time ([`Engine::poll_timeout`]) has come
/// ([`Engine::handle_timeout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Pull the tag state ([`Engine::plan_tag_pull`]): following by push, the periodic pull,
    /// or one a revalidation learned made due
    /// ([`PushFollow::pull_timeout`](crate::tag_sync::PushFollow::pull_timeout)).
    Pull,
    /// Retry: join the pull out or start one (the breaker's probe, a failed pull's retry, the
    /// state to load, or the pull time come with it), then send what waits (the outbox, the
    /// records to give back); armed again while the breaker is not closed or something waits.
    Retry,
    /// The retry with nothing to pull for: send what waits (the outbox, the records to give
    /// back), and pull nothing; armed again while something waits.
    Send,
}

impl Engine {
    /// Validates `config` and builds an engine with an empty mirror and index, its maps
    /// hashed with the fixed [`HashSeed::default`]: deterministic, for tests, simulations and
    /// tools. A process serving requests uses [`Engine::with_hash_seed`].
    pub fn new(config: Config) -> Result<Engine, ConfigError> {
        Engine::with_hash_seed(config, HashSeed::default())
    }

    /// [`Engine::new`] with the maps keyed by request input (entry keys, tag names) hashed
    /// with `seed`, which the host draws from its secure random source: without it, anyone
    /// who can choose cache keys or tags can choose colliding ones and make every lookup
    /// walk them (docs/decisions/0033-seeded-string-hasher.md).
    pub fn with_hash_seed(config: Config, seed: HashSeed) -> Result<Engine, ConfigError> {
        config.validate()?;
        let namespace =
            Namespace::new(&config.prefix, &config.deployment).map_err(|_| ConfigError::Prefix)?;
        let namespace = match crate::next::durable_use_cache_segment(
            config.durable_use_cache,
            config.next_release,
        ) {
            Some(segment) => namespace.with_use_cache_segment(&segment),
            None => namespace,
        };
        Ok(Engine {
            tag_sync: TagSync::new(namespace.tag_keys()),
            namespace,
            mirror: {
                let mut mirror = TagMirror::with_seed(seed);
                mirror.set_max_tags(config.tag_mirror_max_tags as usize);
                mirror
            },
            lru: LruIndex::with_seed(config.memory_bytes, seed).counting_bookkeeping(),
            breaker: Breaker::new(config.breaker()),
            outbox: Outbox::new(config.outbox_capacity as usize),
            leases: LeaseTable::with_seed(seed),
            regenerations: Regenerations::with_seed(seed),
            stale_handouts: StaleHandouts::with_seed(seed),
            fills: RecentFills::default(),
            stats: Stats::default(),
            key_hashes: KeyHashes::with_seed(seed),
            dropped_tags: Cell::new(DroppedTags::default()),
            standalone: false,
            announce_pages: false,
            write_id_seed: String::new(),
            write_ids: Cell::new(0),
            hash_seed: seed,
            retry_at: None,
            retry_owed: false,
            pull_failed: false,
            wall_ahead: None,
            ahead_seen: Vec::new(),
            config,
        })
    }

    /// Replaces the seed of every map keyed by request input with `seed`, rehashing what they
    /// hold: for a host that could not draw a seed as the engine was made (a Cloudflare
    /// Worker's global scope refuses random values) and draws one later, inside a request.
    /// Every key keeps its value; only the hashing changes (docs/decisions/0033).
    pub fn reseed_hashes(&mut self, seed: HashSeed) {
        self.hash_seed = seed;
        self.mirror.reseed(seed);
        self.lru.reseed(seed);
        self.key_hashes.reseed(seed);
        self.leases.reseed(seed);
        self.regenerations.reseed(seed);
        self.stale_handouts.reseed(seed);
    }

    /// The seeds of every map keyed by request input, and the engine's own (test helper).
    #[cfg(test)]
    pub(crate) fn hash_seeds(&self) -> Vec<HashSeed> {
        let mut out = vec![
            self.hash_seed,
            self.key_hashes.hash_seed().0,
            self.leases.hash_seed(),
            self.regenerations.hash_seed(),
            self.stale_handouts.hash_seed(),
        ];
        out.extend(self.lru.hash_seeds());
        out.extend(self.mirror.hash_seeds());
        out
    }

    /// Sets this process's random part of the version ids of its announced page writes (the
    /// host's secure random source; the wasm binding sets one as page writes start announcing). The id
    /// of each write is it and a count: the same bytes written again after a `FLUSHALL` or a
    /// failover that lost the first write reuse its version number but never its id, which is
    /// how a pull tells them apart (tag_refresh.lua; docs/decisions/0031). Without a seed the
    /// ids are the count alone, unique within this process only.
    pub fn set_write_id_seed(&mut self, seed: &str) -> Result<(), PlanError> {
        check_epoch_candidate(seed)?;
        seed.clone_into(&mut self.write_id_seed);
        Ok(())
    }

    /// The version id of the next announced page write.
    fn next_write_id(&self) -> String {
        let n = self.write_ids.get().wrapping_add(1);
        self.write_ids.set(n);
        let mut id = String::with_capacity(self.write_id_seed.len() + 21);
        id.push_str(&self.write_id_seed);
        id.push('.');
        crate::text::push_u64(&mut id, n);
        id
    }

    /// Tags dropped, for being longer than [`crate::tags::MAX_TAG_BYTES`], from the list the
    /// last entry write or revalidation was planned with: the host logs it, once per list.
    pub fn dropped_tags(&self) -> DroppedTags {
        self.dropped_tags.get()
    }

    /// Every tag list entering the engine for a write or a revalidation passes here: the
    /// canonical forms, over-long tags dropped (and noted for [`Engine::dropped_tags`]).
    pub(crate) fn admit_tags<'a>(&self, tags: &[&'a str]) -> Vec<Cow<'a, str>> {
        let admitted = admit_tags_seeded(tags, self.hash_seed);
        self.dropped_tags.set(admitted.dropped);
        admitted.tags
    }

    /// Key naming in effect.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The tag mirror.
    pub fn mirror(&self) -> &TagMirror {
        &self.mirror
    }

    /// The tag mirror, for the host's outbox replay and tests.
    pub fn mirror_mut(&mut self) -> &mut TagMirror {
        &mut self.mirror
    }

    /// The in-process tier's index.
    pub fn lru(&self) -> &LruIndex {
        &self.lru
    }

    /// The in-process tier's index, for inserts, touches and removals.
    pub fn lru_mut(&mut self) -> &mut LruIndex {
        &mut self.lru
    }

    /// The Redis key of an entry.
    pub fn entry_key(&self, iface: &Interface<'_>, cache_key: &str) -> String {
        let hash = self.key_hashes.hash_tag(cache_key);
        self.namespace.entry_key_hashed(iface, &hash)
    }

    /// The Redis keys of an entry and of its lease, the digest of `cache_key` remembered.
    fn read_entry_key(&self, iface: &Interface<'_>, cache_key: &str) -> String {
        let hash = self.key_hashes.hash_tag(cache_key);
        self.namespace.entry_key_hashed(iface, &hash)
    }

    /// Plans a write: the key, the header to put before the payload, and the TTL
    /// ([`crate::write::plan`]).
    pub fn plan_set(
        &self,
        iface: &Interface<'_>,
        cache_key: &str,
        entry: SetInput<'_>,
    ) -> Result<SetPlan, PlanError> {
        let (plan, dropped) = write_machine::plan_use_cache_entry(
            &self.config,
            &self.namespace,
            &self.stats,
            iface,
            cache_key,
            entry,
        );
        self.dropped_tags.set(dropped);
        plan
    }

    /// Judges a stored value read for `cache_key` ([`verdict::judge`]). Counted as a
    /// `'use cache'` lookup unless the entry says otherwise.
    pub fn inspect(
        &self,
        cache_key: &str,
        prefix: &[u8],
        total_len: usize,
        soft_tags: &[&str],
        now: Millis,
    ) -> Inspection {
        let inspection = self.judge(cache_key, prefix, total_len, soft_tags, now);
        if let Some((surface, outcome)) = inspection.lookup_outcome(now) {
            self.stats.record_lookup(surface, outcome);
        }
        inspection
    }

    /// [`Engine::inspect`] without counting (the singular handler counts its own verdict).
    fn judge(
        &self,
        cache_key: &str,
        prefix: &[u8],
        total_len: usize,
        soft_tags: &[&str],
        now: Millis,
    ) -> Inspection {
        verdict::judge(
            &self.mirror,
            || self.untrusted_before(now),
            cache_key,
            prefix,
            total_len,
            soft_tags,
            now,
        )
    }

    /// [`Engine::plan_tag_update`] for a revalidation recorded at `now` with the wall clock
    /// `wall`, stamped as [`Engine::queue_tag_update_at`] stamps it.
    pub fn plan_tag_update_at(
        &mut self,
        tags: &[&str],
        rev: &Revalidation,
        now: Millis,
        wall: Millis,
        epoch_candidate: &str,
    ) -> Result<ScriptCall, PlanError> {
        self.note_clocks(now, wall);
        let at = crate::time::revalidation_stamp(now, wall);
        let call =
            self.plan_tag_update(tags, &rev.expiring_from_wall(at, wall), at, epoch_candidate)?;
        self.mirror.reported_as(rev);
        Ok(call)
    }

    /// Plans a revalidation of `tags` and applies it to the local mirror at once, so this
    /// process sees it even before (or if never) Redis does. `epoch_candidate` is a random
    /// token from the host, used only if the shared state does not exist yet.
    pub fn plan_tag_update(
        &mut self,
        tags: &[&str],
        rev: &Revalidation,
        now: Millis,
        epoch_candidate: &str,
    ) -> Result<ScriptCall, PlanError> {
        let admitted = tag_sync::check_tags(tags.len(), self.admit_tags(tags))?;
        let tags: Vec<&str> = admitted.iter().map(AsRef::as_ref).collect();
        check_epoch_candidate(epoch_candidate)?;
        tag_sync::check_time(now)?;
        self.mirror.apply_local(&tags, rev, now);
        if let Some(push) = self.tag_sync.push_mut() {
            push.learned(now.ceil());
            push.own_update(epoch_candidate);
        }
        self.stats
            .record_revalidation(matches!(rev, Revalidation::Stale { .. }));
        Ok(self.tag_sync.plan_update(
            &tags,
            rev,
            now,
            self.config.prune_after_ms(),
            epoch_candidate,
        ))
    }

    /// Plans the pull of tag changes since the mirror's epoch and version, or, while the
    /// mirror loads the whole state after a full reply, the next page of it (the mirror notes
    /// which of its updates the pull checks).
    ///
    /// One pull at a time: plan the next once this one's reply was applied or the call
    /// failed (its reply, if one still comes, is then dropped). The mirror takes each reply as
    /// the answer to the pull planned last: a page of one load applied to another, or a part
    /// of a state it stopped following applied after it loaded the next one, would leave it
    /// incomplete. Updates may overlap pulls in any order.
    pub fn plan_tag_refresh(&mut self) -> ScriptCall {
        self.mirror.note_planned();
        self.tag_sync.plan_refresh(&self.mirror)
    }

    /// Follows the tag state by push from now on ([`PushFollow`](crate::tag_sync::PushFollow)):
    /// this process's updates announce what they write, and a request needs no pull while
    /// the announcements keep the mirror caught up; a pull still happens at least every
    /// `max_pull_interval_ms`.
    pub fn follow_tags_by_push(&mut self, max_pull_interval_ms: f64) -> Result<(), PlanError> {
        if !(max_pull_interval_ms.is_finite() && max_pull_interval_ms > 0.0) {
            return Err(PlanError::InvalidTime);
        }
        self.tag_sync.follow_by_push(max_pull_interval_ms);
        Ok(())
    }

    /// Writes of page and route entries of the singular handler announce themselves on the
    /// tag state's channel from now on, whatever this process's `tagSync` (single Redis only:
    /// the scripts touch the entry's slot and the tag state's;
    /// docs/decisions/0031-page-entries-in-the-tier-by-push.md).
    pub fn announce_page_writes(&mut self) {
        self.announce_pages = true;
    }

    /// The host got CROSSSLOT for the page write of `argv` (a cluster-enabled Redis behind one
    /// URL): the returned argv writes that entry unannounced
    /// ([`crate::scripts::unannounced_argv`]: empty for a plain `SET`); `None` when `argv` is
    /// not an announcing page write. Later writes still try to announce: the URL may lead to a
    /// plain Redis again (a failover to a node configured otherwise), where push processes
    /// serve page copies on the promise that every page write announces itself.
    pub fn unannounced_write(&self, argv: &[&str]) -> Option<Vec<String>> {
        crate::scripts::unannounced_argv(argv)
    }

    /// The host learnt that Redis is not cluster-enabled (`CLUSTER SLOTS` answered "cluster
    /// support disabled"): page writes can announce themselves, so page copies may serve from
    /// the tier by push (docs/decisions/0031). Until then they are kept for outages only.
    pub fn confirm_plain_redis(&mut self) {
        self.tag_sync.confirm_plain_redis();
    }

    /// The sharded channel the tag updates announce on (the host subscribes to it).
    pub fn tag_announce_channel(&self) -> &str {
        self.tag_sync.announce_channel()
    }

    /// The host's subscription to the announcement channel is confirmed. Whether Redis is
    /// plain is asked again ([`Engine::confirm_plain_redis`]): the connection may lead to
    /// another server now.
    pub fn tag_channel_up(&mut self) {
        self.tag_sync.unconfirm_plain_redis();
        if let Some(p) = self.tag_sync.push_mut() {
            p.subscribed();
        }
    }

    /// The host's subscription is down, reconnecting or dropped: pull until it is back, and
    /// until Redis is known plain again.
    pub fn tag_channel_down(&mut self) {
        self.tag_sync.unconfirm_plain_redis();
        if let Some(p) = self.tag_sync.push_mut() {
            p.channel_down();
        }
    }

    /// Applies a message heard on the announcement channel. A page write's announcement
    /// keeps the tier's copy of its key for outages only (it may be older than the write).
    pub fn apply_announcement(
        &mut self,
        msg: &[u8],
        now: Millis,
    ) -> Result<Announced, ProtocolError> {
        let (result, keys) = self.tag_sync.apply_announcement(&mut self.mirror, msg, now);
        for key in keys {
            if let Ok(key) = std::str::from_utf8(key) {
                self.lru.mark_outage_only(key);
            }
        }
        result
    }

    /// The host's two clocks at a request's start, a write or a revalidation: `now` (its
    /// process's clock, on which the engine counts the pull bound) and `wall` (the wall
    /// clock). Where their distance moved by more than [`crate::time::CLOCK_AHEAD_SLACK_MS`]
    /// less [`crate::time::CLOCK_NOTE_MS`] since the last time it was told, or since the start
    /// of the pull the bound counts from or of the one out (pauses told a few ms at a time by
    /// writes add up; the
    /// host leaves up to that much drift untold, so every move of the real distance by more
    /// than the slack is one), the wall clock was stepped: a machine resumed after a
    /// pause, whose process's clock stood still meanwhile, would otherwise count the pause as
    /// no time, take itself as caught up by push with a mirror the pause made older than the
    /// bound, serve what the fleet revalidated meanwhile as fresh, and vouch for it as of now
    /// in the entries it writes (docs/decisions/0036). Following by push, the mirror is then
    /// judged as after a gap ([`crate::tag_sync::PushFollow::heard_gap`]): only a pull
    /// planned from now on catches up. A `wall` that is not a time after the epoch is none.
    pub fn note_clocks(&mut self, now: Millis, wall: Millis) {
        let ahead = wall.0 - now.0;
        if !(wall.0 > 0.0 && ahead.is_finite()) {
            return;
        }
        let by = crate::time::CLOCK_AHEAD_SLACK_MS - crate::time::CLOCK_NOTE_MS;
        let stepped = self.wall_ahead.is_some_and(|was| (ahead - was).abs() > by);
        if let Some(push) = self.tag_sync.push_mut() {
            if stepped || push.clocks_moved_since_pull(ahead, by) {
                push.clocks_stepped(ahead);
            }
        }
        self.wall_ahead = Some(ahead);
        self.mirror.judge_wall_ahead(ahead);
        let apart = crate::time::ahead_of_wall(now, wall);
        // Past a regeneration's life, or no farther than this one (told later): never the
        // farthest of a window again.
        self.ahead_seen
            .retain(|(a, at)| now.0 - at.0 <= crate::regen::MAX_REGENERATION_MS && *a > apart);
        if apart > 0.0 {
            self.ahead_seen.push((apart, now));
            if self.ahead_seen.len() > AHEAD_KEPT {
                let (_, at) = self.ahead_seen.remove(1);
                if let Some(first) = self.ahead_seen.first_mut() {
                    first.1 = at;
                }
            }
        }
    }

    /// How far ahead of the wall clock its process's clock was told to run, at most, within
    /// the longest a regeneration runs ([`crate::regen::MAX_REGENERATION_MS`]) before `now`.
    fn recent_ahead(&self, now: Millis) -> f64 {
        self.ahead_seen
            .iter()
            .find(|(_, at)| now.0 - at.0 <= crate::regen::MAX_REGENERATION_MS)
            .map_or(0.0, |(ahead, _)| *ahead)
    }

    /// Whether a request at `now` may be judged without pulling the tag state: it follows the
    /// state by push and the announcements keep the mirror caught up.
    pub fn tags_caught_up(&self, now: Millis) -> bool {
        self.tag_sync.caught_up(&self.mirror, now)
    }

    /// Following by push, the pull time at `now`
    /// ([`PushFollow::pull_timeout`](crate::tag_sync::PushFollow::pull_timeout)): a time
    /// not later than `now` means a pull is due ([`Engine::plan_tag_pull`]). The host's one
    /// timer takes the earlier of this and the retry's time ([`Engine::poll_timeout`], which
    /// the host asks: this is the crate's, for it and the tests). `None`: no pull time (a pull
    /// is out, the mirror is not caught up, or pulling per request).
    pub(crate) fn tag_pull_timeout(&self, now: Millis) -> Option<Millis> {
        self.tag_sync
            .push()
            .and_then(|p| p.pull_timeout(&self.mirror, now))
    }

    /// [`Engine::plan_tag_refresh`] (one at a time, as it says), planned at `now`: following
    /// by push, the pull's start is what bounds how far the mirror may be behind.
    pub fn plan_tag_pull(&mut self, now: Millis) -> ScriptCall {
        // This pull's outcome decides the next retry.
        self.retry_owed = false;
        let call = self.tag_sync.plan_pull(&mut self.mirror, now);
        if let Some(push) = self.tag_sync.push_mut() {
            push.clocks_at_plan(self.wall_ahead);
        }
        call
    }

    /// The pull planned last ([`Engine::plan_tag_pull`]) failed, reported at `now`: its reply
    /// will not come. Following by push, a revalidation it was to answer stays due, after a
    /// backoff from `now` ([`PushFollow::pull_failed`](crate::tag_sync::PushFollow::pull_failed)).
    ///
    /// The failure is retried on the host's timer ([`Engine::poll_timeout`]): at the pull
    /// time while there is one (following by push, caught up), else by the retry, armed from
    /// the moment the pull time is found gone.
    pub fn tag_pull_failed(&mut self, now: Millis) {
        if let Some(p) = self.tag_sync.push_mut() {
            p.pull_failed(now);
        }
        self.retry_owed = true;
        self.pull_failed = true;
    }

    /// Arms the retry at `now` ([`Wake::Retry`]), due after [`Engine::retry_in_ms`]: the host
    /// calls it when something it could not do must be tried again on its own (a send that
    /// failed or waits its backoff, records not given back, a load left to run after a
    /// merge, the breaker not closed or something waiting after a retry). An armed retry
    /// stays unless this one is due sooner (the second it waits when nothing is learned
    /// would otherwise hold back a failed pull's retry past its backoff), or until nothing is
    /// left for it to do ([`Engine::poll_timeout`] disarms it then).
    pub fn arm_retry(&mut self, now: Millis) {
        let at = Millis(now.0 + self.retry_in_ms(now));
        if self.retry_at.map_or(true, |r| at.0 < r.0) {
            self.retry_at = Some(at);
        }
    }

    /// When the host's one timer should next wake, asked at `now`, and for what: the earlier
    /// of the pull time (following by push:
    /// [`PushFollow::pull_timeout`](crate::tag_sync::PushFollow::pull_timeout)) and the retry's
    /// ([`Engine::arm_retry`]), the retry on a tie (it pulls too: one pull). A time not later
    /// than `now` has come: [`Engine::handle_timeout`] says what to do. `None`: no timer.
    ///
    /// A failed pull's retry ([`Engine::tag_pull_failed`]) is left to the pull time while
    /// there is one; asked when it has none (the channel went down, the bound passed, pulling per
    /// request), this arms the retry at `now`: nothing else would ask Redis again until a
    /// request came. The host asks after every event that can move either time (a pull planned,
    /// applied or failed, a revalidation learned or made, the retry armed) and when the timer
    /// fires; a timer that fires early finds its time not come, and is set again.
    ///
    /// An armed retry left with nothing to do is disarmed: no failed pull since the last one
    /// applied, the breaker closed, the mirror synced, no revalidation nor record to send (a
    /// request's pull or command succeeded, a later revalidation's send went through). Its
    /// wake would otherwise pull once more after every recovery.
    pub fn poll_timeout(&mut self, now: Millis) -> Option<(Millis, Wake)> {
        let (pull, retry) = self.wake_times(now);
        match (pull, retry) {
            (Some(p), Some(r)) if p.0 < r.0 => Some((p, Wake::Pull)),
            (_, Some(r)) => Some((r, self.retry_wake(pull, r, now))),
            (Some(p), None) => Some((p, Wake::Pull)),
            (None, None) => None,
        }
    }

    /// The pull time and the retry's at `now`, the retry armed for a failed pull that has no
    /// pull time, and disarmed when nothing is left for it ([`Engine::poll_timeout`]).
    fn wake_times(&mut self, now: Millis) -> (Option<Millis>, Option<Millis>) {
        let pull = self.tag_pull_timeout(now);
        if self.retry_owed && pull.is_none() {
            self.retry_owed = false;
            self.arm_retry(now);
        }
        let sends = !self.outbox.is_empty() || self.resend_len() > 0;
        if self.retry_at.is_some() && !sends && !self.retry_pulls(now) {
            self.retry_at = None;
        }
        (pull, self.retry_at)
    }

    /// Whether the retry pulls, asked at `now`: for a failed pull (none applied since), the
    /// breaker's probe, or the state to load (a load left to run after a merge). Otherwise it
    /// is armed for revalidations or lost records to send, and sends them alone.
    fn retry_pulls(&self, now: Millis) -> bool {
        self.pull_failed
            || self.breaker.state(now) != BreakerState::Closed
            || !self.mirror.is_synced()
    }

    /// The retry's wake, due at `at` and asked at `now`: it pulls when [`Engine::retry_pulls`]
    /// says so or the pull time has come by then (one wake, one pull), else it only sends.
    fn retry_wake(&self, pull: Option<Millis>, at: Millis, now: Millis) -> Wake {
        if self.retry_pulls(now) || pull.is_some_and(|p| p.0 <= at.0) {
            Wake::Retry
        } else {
            Wake::Send
        }
    }

    /// The wake whose time has come at `now` ([`Engine::poll_timeout`]), for the host to do
    /// at once; a retry is handed out once (disarmed: the host arms it again if what it does
    /// fails). `None`: nothing is due (a timer that fired early, or late after what it was
    /// set for was done or moved).
    pub fn handle_timeout(&mut self, now: Millis) -> Option<Wake> {
        let (pull, retry) = self.wake_times(now);
        if retry.is_some_and(|r| r.0 <= now.0) {
            self.retry_at = None;
            return Some(self.retry_wake(pull, now, now));
        }
        pull.filter(|p| p.0 <= now.0).map(|_| Wake::Pull)
    }

    /// Merges the reply of a [`TAG_REFRESH`](crate::TAG_REFRESH) call, received at `now`, into
    /// the mirror (and prunes the mirror by age, at most once a minute).
    pub fn apply_refresh(
        &mut self,
        reply: &[u8],
        now: Millis,
    ) -> Result<RefreshSummary, ProtocolError> {
        let keep_ms = self.config.prune_after_ms();
        let summary = self
            .tag_sync
            .apply_refresh(&mut self.mirror, reply, now, keep_ms)?;
        self.pull_failed = false;
        Ok(summary)
    }

    /// Tag records Redis lost that this process knew ([`TagMirror::lost`]).
    pub fn tag_records_lost(&self) -> u64 {
        self.mirror.lost()
    }

    /// Tag records the mirror folded past `Config::tag_mirror_max_tags`, over the engine's
    /// life (crate::tag_fold): 0 while every live tag fits.
    pub fn tags_folded(&self) -> u64 {
        self.mirror.folded()
    }

    /// The merge that gives Redis back records it lost and this process knows (after a flush,
    /// an empty restart or a failover that lost updates), at most
    /// [`MAX_RESEND_BATCH`](crate::tags::MAX_RESEND_BATCH) of them; `None` when nothing
    /// waits. The same batch is planned again until [`Engine::ack_resend`].
    pub fn plan_resend(&mut self, epoch_candidate: &str) -> Result<Option<ScriptCall>, PlanError> {
        check_epoch_candidate(epoch_candidate)?;
        Ok(self.tag_sync.plan_resend(&mut self.mirror, epoch_candidate))
    }

    /// Redis applied the batch of [`Engine::plan_resend`].
    pub fn ack_resend(&mut self) {
        self.tag_sync.ack_resend();
    }

    /// Records waiting to be merged back into Redis, the batch in flight included, and one
    /// for the state's meta hash when it is to be made anew: a merge is due while above 0.
    pub fn resend_len(&self) -> usize {
        self.tag_sync.resend_len(&self.mirror)
    }

    /// Records waiting to be merged back into Redis, the batch in flight included: one per
    /// tag, without the meta hash [`Engine::resend_len`] counts (what the host's lines count).
    pub fn resend_records(&self) -> usize {
        self.tag_sync.resend_records(&self.mirror)
    }

    /// No Redis: the mirror is complete by definition (this process is the whole fleet), and
    /// entries, which never leave the process, are not compressed.
    pub fn mark_standalone(&mut self) {
        self.mirror.mark_synced();
        self.standalone = true;
    }

    /// How to inflate a stored value into its plain envelope, `None` when it is plain
    /// ([`compression::plan_inflation`], bounded by `maxEntryBytes`).
    pub fn plan_inflation(
        &self,
        prefix: &[u8],
        total_len: usize,
    ) -> Result<Option<Inflation>, DecodeError> {
        compression::plan_inflation(prefix, total_len, self.config.max_entry_bytes)
    }

    /// Tagged entries created at or before the returned time cannot be judged fresh now
    /// ([`TagSync::untrusted_before`], with the breaker's state as the outage).
    pub fn untrusted_before(&self, now: Millis) -> Option<Millis> {
        let outage = self.breaker.state(now) != BreakerState::Closed;
        self.tag_sync.untrusted_before(&self.mirror, outage)
    }

    /// The in-process tier's copy of `key` may be served (it is marked as just used); false
    /// when it is absent, past its lifetime, this process's own copy that never reached Redis
    /// while Redis answers again (the fleet's value wins: it is dropped, read Redis), or a copy
    /// kept for outages only while Redis answers (it stays for the next outage).
    pub fn tier_touch(&mut self, key: &str, now: Millis) -> bool {
        self.tier_use(key, now) == TierUse::Serve
    }

    /// [`Engine::tier_touch`] of `read`'s entry key, whose bytes the host holds `total_len`
    /// long (the embedded store's, about to be given with [`ReadInput::Held`]): the header
    /// the index keeps for them is found in the same lookup and handed to `read`, so a hit
    /// looks its key up in the index once.
    pub fn tier_touch_held(
        &mut self,
        read: &mut ReadMachine,
        total_len: usize,
        now: Millis,
    ) -> bool {
        let (found, kept) = self.tier_use_kept(read.entry_key(), now, Some(total_len));
        read.offer_kept_header(kept);
        found == TierUse::Serve
    }

    /// After a Redis read of `key` failed: whether the tier's copy may be judged and served,
    /// whatever it is kept for (a copy for outages only, this process's own). False when it is
    /// absent or past its lifetime (then removed).
    pub fn tier_fallback(&mut self, key: &str, now: Millis) -> bool {
        self.lru.touch(key, now)
    }

    /// [`Engine::tier_touch`], telling a copy that is kept but not served now
    /// ([`TierUse::Kept`]) from one that is gone: the host keeps the bytes of the first
    /// ([`tier::tier_use`]).
    pub fn tier_use(&mut self, key: &str, now: Millis) -> TierUse {
        self.tier_use_kept(key, now, None).0
    }

    /// [`tier::tier_use_kept`] with this engine's breaker and page view at `now`.
    fn tier_use_kept(
        &mut self,
        key: &str,
        now: Millis,
        total_len: Option<usize>,
    ) -> (TierUse, Option<Rc<DecodedHeader>>) {
        let redis_answers = self.breaker.state(now) == BreakerState::Closed;
        let pages = self.tag_sync.page_view(&self.mirror, now).map(|p| p.gen);
        tier::tier_use_kept(&mut self.lru, redis_answers, pages, key, now, total_len)
    }

    /// Takes note of the reply of a [`TAG_UPDATE`](crate::TAG_UPDATE) call (optional: it only saves the next
    /// refresh from fetching this process's own update again). Never feed it to
    /// [`Engine::apply_refresh`]: it carries no tags, and would skip other instances' updates.
    ///
    /// An update that reached another state than the one the mirror follows (a failover, a
    /// flush) owes a pull, as a failed pull does ([`Engine::poll_timeout`]): only a pull
    /// compares that state with the mirror and gives back what it lost, and a retry that only
    /// sent ([`Wake::Send`]) would otherwise leave an idle process waiting for a request.
    pub fn apply_update_reply(&mut self, reply: &[u8]) -> Result<RefreshSummary, ProtocolError> {
        let followed = !self.mirror.epoch().is_empty();
        let summary = self.mirror.apply_update_reply(reply)?;
        if followed && self.mirror.epoch().is_empty() {
            self.pull_failed = true;
            self.retry_owed = true;
        }
        Ok(summary)
    }

    /// Next's `getExpiration(tags)`: the latest expiry over `tags`, 0 when none is known.
    /// Next drops a hit created at or before it, so without a trusted tag state it is the
    /// time of [`Engine::untrusted_before`].
    pub fn get_expiration(&self, tags: &[&str], now: Millis) -> Millis {
        tag_sync::expiration(&self.mirror, tags, self.untrusted_before(now), now)
    }

    /// How the mirror judges an entry created at `timestamp` with these tags (any form).
    pub fn tag_freshness(&self, tags: &[&str], timestamp: Millis, now: Millis) -> Freshness {
        tag_sync::freshness(&self.mirror, tags, timestamp, now)
    }

    /// Drops mirror records older than the configured pruning age; returns how many.
    pub fn prune_mirror(&mut self, now: Millis) -> usize {
        self.mirror.prune(now, self.config.prune_after_ms())
    }
    /// Budget of a command of this kind, in ms ([`guard::budget_ms`]).
    pub fn budget_ms(&self, kind: OpKind) -> f64 {
        guard::budget_ms(
            kind,
            self.config.read_timeout_ms,
            self.config.write_timeout_ms,
        )
    }

    /// Budget of a connection attempt that a command may wait for, in ms.
    pub fn connect_budget_ms(&self) -> f64 {
        self.config().connect_timeout_ms
    }

    /// Whether to send a command of `kind` at `now`.
    pub fn admit(&mut self, kind: OpKind, now: Millis) -> Admission {
        self.tag_sync.note_start(now);
        let budget_ms = self.budget_ms(kind);
        match self.breaker.admit(now) {
            Some(permit) => Admission::Send { permit, budget_ms },
            None => Admission::Skip,
        }
    }

    /// Reports the outcome of an admitted command; true when the breaker changed state.
    pub fn report(&mut self, permit: Permit, result: CallResult, now: Millis) -> bool {
        self.settle(permit, result, guard::redis_result(result), now)
    }

    /// Reports an admitted command Redis answered with an error reply: a reachable Redis for
    /// the breaker and the outbox, counted as a reply error only (not also as `ok`); true when
    /// the breaker changed state.
    pub fn report_reply_error(&mut self, permit: Permit, now: Millis) -> bool {
        self.settle(permit, CallResult::Success, RedisResult::ReplyError, now)
    }

    fn settle(
        &mut self,
        permit: Permit,
        result: CallResult,
        counted: RedisResult,
        now: Millis,
    ) -> bool {
        self.stats.record_redis(counted);
        if result == CallResult::Success {
            // Redis answers: an outbox update that got no reply need not wait its backoff.
            self.outbox.answered();
        }
        let changed = self.breaker.record(permit, result, now);
        if changed && self.breaker.state(now) == BreakerState::Closed {
            self.stats.record_breaker_recovery();
        }
        changed
    }

    /// The breaker (state, counters).
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The breaker's state at `now`.
    pub fn breaker_state(&self, now: Millis) -> BreakerState {
        self.breaker.state(now)
    }

    /// [`Engine::queue_tag_update`] for a revalidation the host records at `now` (its
    /// process's clock), with its wall clock `wall` (NaN where it has one clock): stamped at
    /// [`crate::time::revalidation_stamp`], the later of the two, everywhere it goes (the
    /// mirror, the outbox, Redis), so no revalidation is stamped before its host's wall clock
    /// (docs/decisions/0036).
    pub fn queue_tag_update_at(
        &mut self,
        tags: &[&str],
        rev: &Revalidation,
        now: Millis,
        wall: Millis,
    ) -> Result<Option<PendingUpdate>, PlanError> {
        self.note_clocks(now, wall);
        let at = crate::time::revalidation_stamp(now, wall);
        let queued = self.queue_tag_update(tags, &rev.expiring_from_wall(at, wall), at)?;
        self.mirror.reported_as(rev);
        Ok(queued)
    }

    /// Records a revalidation: applied to the mirror at once, and queued for Redis behind
    /// any earlier one. Returns the oldest queued update when the outbox had to drop it (the
    /// host must log it): its records are queued to be merged back instead
    /// ([`TagMirror::give_back_unsent`]), after the queue is sent.
    pub fn queue_tag_update(
        &mut self,
        tags: &[&str],
        rev: &Revalidation,
        now: Millis,
    ) -> Result<Option<PendingUpdate>, PlanError> {
        let admitted = tag_sync::check_tags(tags.len(), self.admit_tags(tags))?;
        let tags: Vec<&str> = admitted.iter().map(AsRef::as_ref).collect();
        tag_sync::check_time(now)?;
        self.mirror.apply_local(&tags, rev, now);
        if let Some(push) = self.tag_sync.push_mut() {
            push.learned(now.ceil());
        }
        self.stats
            .record_revalidation(matches!(rev, Revalidation::Stale { .. }));
        self.stats.record_outbox_queued();
        let owned = tags.iter().map(|t| (*t).to_owned()).collect();
        let dropped = self.outbox.push(owned, *rev, now);
        if let Some(update) = &dropped {
            // Merged back after the queue is sent: dropped, it held on this process only, and
            // the rest of the fleet served what it invalidated for as long as Redis was up.
            let mut written = TagRecord::default();
            written.apply(&update.rev, update.at);
            self.mirror.give_back_unsent(&update.tags, &written);
        }
        Ok(dropped)
    }

    /// The update script call for the outbox's head, with its sequence number for
    /// [`Engine::ack_outbox`]; `None` when nothing waits ([`Outbox::plan_head`]).
    pub fn plan_outbox_head(
        &mut self,
        epoch_candidate: &str,
    ) -> Result<Option<(u64, ScriptCall)>, PlanError> {
        check_epoch_candidate(epoch_candidate)?;
        let head = self.outbox.plan_head(
            self.tag_sync.update_keys(),
            self.config.prune_after_ms(),
            epoch_candidate,
        );
        if let (Some(_), Some(push)) = (&head, self.tag_sync.push_mut()) {
            push.own_update(epoch_candidate);
        }
        Ok(head)
    }

    /// Redis applied outbox update `seq`; false when it was no longer the head.
    ///
    /// What the update wrote is no longer given back by a merge: a whole state answered while
    /// the update waited (writes refused, `OOM`, with reads answered) lacked it, so the
    /// comparison queued it to be given back as well, and it would reach Redis twice.
    pub fn ack_outbox(&mut self, seq: u64) -> bool {
        // Every tag of one update gets the same record: one, not one per tag.
        if let Some(update) = self.outbox.head().filter(|u| u.seq == seq) {
            let mut written = TagRecord::default();
            written.apply(&update.rev, update.at);
            self.tag_sync.sent(&mut self.mirror, &update.tags, &written);
        }
        let acked = self.outbox.ack(seq);
        if acked {
            self.stats.record_outbox_sent();
        }
        acked
    }

    /// The outbox (length, dropped count).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
    /// Plans a write of the singular handler: validates the parts against the descriptor
    /// ([`IncrementalSet::set_input`]) and plans the envelope (key, header, TTL from
    /// `expire`, or the configured default when the value has neither `expire` nor a
    /// `revalidate` limit).
    pub fn plan_incremental_set(
        &self,
        cache_key: &str,
        set: &IncrementalSet<'_>,
    ) -> Result<SetPlan, IncrementalPlanError> {
        let (plan, dropped) = write_machine::plan_incremental_entry(
            &self.config,
            &self.namespace,
            &self.stats,
            cache_key,
            set,
        );
        self.dropped_tags.set(dropped);
        plan
    }

    /// Judges a stored singular-handler value read for `cache_key` and what to present to
    /// Next ([`incremental::present`]).
    ///
    /// `soft_tags` are checked with the entry's own tags (FETCH: the request's `tags` and
    /// `softTags`); `request_revalidate` is a FETCH request's `revalidate` (NaN when none).
    /// Returns the decoded header too, for the payload offset and part lengths.
    pub fn inspect_incremental(
        &self,
        cache_key: &str,
        prefix: &[u8],
        total_len: usize,
        soft_tags: &[&str],
        request_revalidate: f64,
        now: Millis,
    ) -> (IncrementalVerdict, Option<std::rc::Rc<DecodedHeader>>) {
        let inspection = self.judge(cache_key, prefix, total_len, soft_tags, now);
        let judged = incremental::present(
            inspection,
            request_revalidate,
            self.config.next_release,
            now,
        );
        if let Some(outcome) = judged.0.lookup_outcome(judged.1.as_deref(), now) {
            self.stats.record_lookup(Surface::Incremental, outcome);
        }
        judged
    }

    /// Whether the running Next judges a value of this kind without the `cacheControl` that
    /// `get` returns ([`incremental::next_ignores_cache_control`]).
    pub fn next_ignores_cache_control(&self, kind: ValueKind) -> bool {
        incremental::next_ignores_cache_control(self.config.next_release, kind)
    }

    /// True when this process's tag mirror already holds this revalidation, recorded by
    /// `updateTags` in the host's turn `turn` ([`Engine::revalidation_paired`]), for every
    /// tag ([`TagMirror::holds_revalidation`]), however long that turn has run. Once only: a
    /// third report of it is another event.
    pub fn revalidation_recorded(
        &mut self,
        tags: &[&str],
        rev: &Revalidation,
        now: Millis,
        turn: u64,
    ) -> bool {
        let held = self.mirror.holds_revalidation(tags, rev, now, turn);
        if held {
            self.mirror.unmark_paired();
        }
        held
    }

    /// The revalidation just recorded came through the `'use cache'` interface's `updateTags`
    /// in the host's turn `turn`, a number the host changes between synchronous runs: the
    /// singular handler's `revalidateTag` of the same event, which Next calls next in the same
    /// run (docs/decisions/0005-one-tag-write-per-revalidation.md), skips its write.
    pub fn revalidation_paired(&mut self, turn: u64) {
        self.mirror.mark_paired(turn);
    }
    /// The lease settings in effect.
    pub fn lease_config(&self) -> LeaseConfig {
        self.config.lease()
    }

    /// Starts a flight for a read by `consumer` that found `found`, as [`Flight::begin`].
    pub fn lease_begin(&self, found: Found, consumer: Consumer, now: Millis) -> (Flight, Step) {
        Flight::begin(found, consumer, now, &self.lease_config())
    }

    /// Reports a lease request's answer to `flight` ([`Flight::acquired`]) and counts what it
    /// meant ([`lease::answer_event`]).
    pub fn lease_answered(&self, flight: &mut Flight, result: Acquired, now: Millis) -> Step {
        let step = flight.acquired(result, now, &self.lease_config());
        if let Some(event) = lease::answer_event(result, step) {
            self.stats.record_lease(event);
        }
        step
    }

    /// Reports a follower's poll to `flight` ([`Flight::polled`]), counting a wait that ran
    /// out of budget or ended on a lease let go without a write.
    pub fn lease_polled(
        &self,
        flight: &mut Flight,
        found: Found,
        leased: bool,
        now: Millis,
    ) -> Step {
        let step = flight.polled(found, leased, now, &self.lease_config());
        if let Some(event) = lease::step_event(step) {
            self.stats.record_lease(event);
        }
        step
    }

    /// Plans a lease request for the entry of `cache_key` ([`lease::plan_acquire`]). Report a
    /// win with [`Engine::lease_won`].
    pub fn plan_lease_acquire(
        &self,
        iface: &Interface<'_>,
        cache_key: &str,
        token: &str,
        seen_timestamp: Option<Millis>,
    ) -> Result<ScriptCall, PlanError> {
        lease::plan_acquire(
            self.namespace.entry_key(iface, cache_key),
            self.namespace.lease_key(iface, cache_key),
            token,
            self.config.lease_ttl_ms,
            seen_timestamp,
        )
    }

    /// The lease request sent at `sent_at` with `token` was won.
    pub fn lease_won(
        &mut self,
        iface: &Interface<'_>,
        cache_key: &str,
        token: &str,
        sent_at: Millis,
    ) {
        let key = self.namespace.lease_key(iface, cache_key);
        self.leases
            .hold(&key, token, sent_at, self.config.lease_ttl_ms);
    }

    /// How often the host renews a lease it holds, ms ([`lease::renew_every_ms`]).
    pub fn lease_renew_every_ms(&self) -> f64 {
        lease::renew_every_ms(self.config.lease_ttl_ms)
    }

    /// Plans the renewal, at `now`, of the lease on `cache_key` that this process won with
    /// the request sent at `won_at` ([`LeaseTable::plan_renew`]). Report a success with
    /// [`Engine::lease_renewed`].
    pub fn plan_lease_renew(
        &self,
        iface: &Interface<'_>,
        cache_key: &str,
        won_at: Millis,
        now: Millis,
    ) -> Option<ScriptCall> {
        let key = self.namespace.lease_key(iface, cache_key);
        self.leases
            .plan_renew(key, won_at, now, self.config.lease_ttl_ms)
    }

    /// The renewal planned at `sent_at` of the lease won at `won_at` was answered: `renewed`
    /// when Redis extended it. A refusal changes nothing here: the lease is no longer this
    /// process's in Redis, and its expiry in the table is already no later than Redis's.
    pub fn lease_renewed(
        &mut self,
        iface: &Interface<'_>,
        cache_key: &str,
        won_at: Millis,
        sent_at: Millis,
        renewed: bool,
    ) {
        if renewed {
            let key = self.namespace.lease_key(iface, cache_key);
            self.leases
                .renewed(&key, won_at, sent_at, self.config.lease_ttl_ms);
        }
    }

    /// Plans a follower's poll of the entry of `cache_key` ([`lease::plan_poll`]). Report
    /// with [`Engine::lease_polled`].
    pub fn plan_lease_poll(&self, iface: &Interface<'_>, cache_key: &str) -> ScriptCall {
        lease::plan_poll(
            self.namespace.entry_key(iface, cache_key),
            self.namespace.lease_key(iface, cache_key),
        )
    }

    /// True while this process holds a live lease on the entry of `cache_key`.
    pub fn holds_lease(&self, iface: &Interface<'_>, cache_key: &str, now: Millis) -> bool {
        self.leases
            .holds(&self.namespace().lease_key(iface, cache_key), now)
    }

    /// How to store the entry of `cache_key` that is `ttl_ms` long-lived: with the lease
    /// released in the same script when this process holds it ([`LeaseTable::plan_write`]).
    pub fn plan_entry_write(
        &mut self,
        iface: &Interface<'_>,
        cache_key: &str,
        ttl_ms: u64,
    ) -> EntryWrite {
        let entry_key = self.namespace.entry_key(iface, cache_key);
        let lease_key = self.namespace.lease_key(iface, cache_key);
        self.leases.plan_write(entry_key, lease_key, ttl_ms)
    }

    /// Releases the lease on `cache_key` without a write (the regeneration produced nothing
    /// to store), when this process holds it.
    pub fn plan_lease_release(
        &mut self,
        iface: &Interface<'_>,
        cache_key: &str,
    ) -> Option<ScriptCall> {
        let lease_key = self.namespace.lease_key(iface, cache_key);
        self.leases.plan_release(lease_key)
    }

    /// The leases this process holds.
    pub fn lease_table(&self) -> &LeaseTable {
        &self.leases
    }
    /// Redis answered outbox update `seq` with the error reply `error` at `now`: see
    /// [`Outbox::refuse`].
    pub fn refuse_outbox(&mut self, seq: u64, error: &str, now: Millis) -> Refusal {
        self.outbox.refuse(seq, error, now)
    }

    /// Outbox update `seq` got no reply at `now`: see [`Outbox::fail`].
    pub fn fail_outbox(&mut self, seq: u64, now: Millis) {
        self.outbox.fail(seq, now);
    }

    /// When the host's timer should next refresh the tag state and replay the outbox, in ms
    /// from `now` ([`Outbox::timer_ms`]). While the breaker is closed and a revalidation
    /// learned waits for a pull that failed ([`Engine::tag_pull_failed`]), sooner: after that
    /// pull's backoff, at least [`MIN_RETRY_MS`](crate::outbox::MIN_RETRY_MS). While it is
    /// not closed, its probe rules, as for everything else.
    pub fn retry_in_ms(&self, now: Millis) -> f64 {
        let probe_at = self.breaker.next_probe_at();
        let ms = self.outbox.timer_ms(probe_at, now);
        match (
            probe_at,
            self.tag_sync.push().and_then(|p| p.retry_in_ms(now)),
        ) {
            (None, Some(pull)) => ms.min(pull.max(crate::outbox::MIN_RETRY_MS)),
            _ => ms,
        }
    }

    /// What a permission error says the ACL user lacks, with this engine's key prefix: see
    /// [`missing_permission`].
    pub fn missing_permission(&self, error: &str) -> Option<String> {
        missing_permission(error, self.namespace().prefix())
    }
    /// The creation time to stamp on a seeded entry the build wrote at `built_at`
    /// ([`seed::seed_timestamp`]).
    pub fn seed_timestamp(&self, built_at: Millis, now: Millis) -> Option<Millis> {
        seed::seed_timestamp(built_at, now)
    }

    /// Plans the write of a seeded entry of `cache_key` created at `created`, `ttl_ms`
    /// long-lived from its creation ([`seed::plan_write`]).
    pub fn plan_seed_write(
        &self,
        iface: &Interface<'_>,
        cache_key: &str,
        created: Millis,
        ttl_ms: u64,
        now: Millis,
    ) -> Option<ScriptCall> {
        let announce = (self.announce_pages && *iface == Interface::Incremental).then(|| {
            let (meta, channel) = self.tag_sync.announce_target();
            (meta, channel, self.next_write_id())
        });
        seed::plan_write(
            self.namespace.entry_key(iface, cache_key),
            created,
            ttl_ms,
            now,
            announce,
        )
    }
    /// The engine's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The host found nothing stored under a key of `surface` (an empty reply never reaches
    /// [`Engine::inspect`], so the host reports it).
    pub fn record_miss(&self, surface: Surface) {
        self.stats.record_lookup(surface, LookupOutcome::Miss);
    }

    /// Counts a lease event.
    pub fn record_lease(&self, event: LeaseEvent) {
        self.stats.record_lease(event);
    }

    /// Every counter and gauge at `now`.
    pub fn stats_snapshot(&self, now: Millis) -> StatsSnapshot {
        let u = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        self.stats.snapshot(Gauges {
            breaker_state: match self.breaker.state(now) {
                BreakerState::Closed => "closed",
                BreakerState::Open => "open",
                BreakerState::HalfOpen => "half-open",
            },
            breaker_trips: self.breaker.trips(),
            breaker_rejected: self.breaker.rejected(),
            outbox_length: u(self.outbox.len()),
            outbox_capacity: u(self.outbox.capacity()),
            outbox_dropped: self.outbox.dropped(),
            outbox_refused: self.outbox.refused(),
            outbox_parked: self.outbox.parked(),
            memory_bytes: self.lru().used_bytes(),
            memory_entries: u(self.lru().len()),
            tags: u(self.mirror().len()),
            tags_folded: self.mirror().folded(),
        })
    }
    /// A read of the singular handler's `cache_key`, begun at `started`, was answered with
    /// `step`; `on_demand` when the request is an on-demand revalidation (Next regenerates
    /// whatever the read found). Remembers where this process's regeneration began.
    pub fn note_incremental_read(
        &mut self,
        cache_key: &str,
        step: Step,
        on_demand: bool,
        started: Millis,
    ) {
        let key = self.namespace.entry_key(&Interface::Incremental, cache_key);
        self.regenerations.note_read(&key, step, on_demand, started);
    }

    /// The creation time of the singular handler's entry for `cache_key`, a value of `kind`
    /// carrying `tags`, written at `now` ([`regen::incremental_created`]).
    pub fn incremental_created(
        &mut self,
        cache_key: &str,
        kind: ValueKind,
        tags: &[&str],
        now: Millis,
    ) -> Millis {
        let key = self.namespace.entry_key(&Interface::Incremental, cache_key);
        regen::incremental_created(
            &mut self.regenerations,
            (
                &self.stale_handouts,
                &self.fills,
                &self.mirror,
                self.tag_sync.push(),
            ),
            (&key, regen::Own::NONE),
            kind,
            tags,
            (now, 0.0),
        )
    }

    /// A `'use cache'` read answered with `step` an entry carrying `tags`, created at
    /// `created`, that it found `found`: a stale entry handed out (marked stale or as fresh)
    /// is remembered, for [`Engine::incremental_created`].
    pub fn note_use_cache_answer(
        &mut self,
        tags: &[&str],
        found: Found,
        step: Step,
        created: Millis,
        now: Millis,
    ) {
        self.stale_handouts
            .note_answer(tags, found, step, created, now);
    }

    fn write_ctx(&mut self) -> WriteCtx<'_> {
        let id = self.announce_pages.then(|| self.next_write_id());
        WriteCtx {
            config: &self.config,
            namespace: &self.namespace,
            leases: &mut self.leases,
            regenerations: &mut self.regenerations,
            stale_handouts: &self.stale_handouts,
            fills: &self.fills,
            mirror: &self.mirror,
            push: self.tag_sync.push(),
            stats: &self.stats,
            standalone: self.standalone,
            page_announce: id.map(|id| {
                let (meta, channel) = self.tag_sync.announce_target();
                (meta, channel, id)
            }),
        }
    }

    /// Plans one `set` at `now` ([`write_machine::write_start`]); its first step comes from
    /// [`Engine::write_first`].
    pub fn write_start(&mut self, request: WriteRequest<'_>, now: Millis) -> WriteMachine {
        write_machine::write_start(self.write_ctx(), request, now, now)
    }

    /// [`Engine::write_start`] where the host's wall clock `wall` may differ from `now`: an
    /// entry written while `now` runs ahead of it is stamped on it
    /// ([`crate::time::ahead_of_wall`]). Its times may have been taken before (the read that
    /// began its regeneration, the pull that vouched for its data), while `now` ran farther
    /// ahead: a step of the wall clock in between (a pause of the machine) brought the two
    /// closer. They are moved back by the farthest distance told ([`Engine::note_clocks`]) within
    /// the longest a regeneration runs, so that none is stamped after the wall clock of its
    /// time (older, the safe side, for a while after such a step).
    pub fn write_start_at(
        &mut self,
        request: WriteRequest<'_>,
        now: Millis,
        wall: Millis,
    ) -> WriteMachine {
        self.note_clocks(now, wall);
        let ahead = self.recent_ahead(now);
        let wall = if ahead > 0.0 {
            Millis(now.0 - ahead)
        } else {
            wall
        };
        write_machine::write_start(self.write_ctx(), request, now, wall)
    }

    /// The first step of `machine` ([`WriteMachine::start`]).
    pub fn write_first(&mut self, machine: &mut WriteMachine, now: Millis) -> WriteStep {
        let step = machine.start(self.write_ctx(), now);
        self.note_own_page_write(machine);
        self.note_own_keep(machine);
        self.note_fill(machine, now);
        step
    }

    /// The step of `machine` after `input` ([`WriteMachine::step`]).
    pub fn write_step(
        &mut self,
        machine: &mut WriteMachine,
        input: WriteInput,
        now: Millis,
    ) -> WriteStep {
        let step = machine.step(self.write_ctx(), input, now);
        self.note_own_page_write(machine);
        self.note_own_keep(machine);
        self.note_fill(machine, now);
        step
    }

    /// A `'use cache'` write has begun or ended: Next 16.3.8 and later hand its value to the
    /// requests of this process that joined the invocation ([`RecentFills`]) once Next's `set`
    /// resolves, which the host does within a read's budget even while the write goes on.
    fn note_fill(&mut self, machine: &mut WriteMachine, now: Millis) {
        let wait = self.budget_ms(OpKind::Read);
        match machine.take_fill(now, wait) {
            Some((tags, made, ended, Some(told))) => self.fills.ended(tags, made, told, ended),
            Some((tags, made, ended, None)) => self.fills.note(tags, made, ended),
            None => {}
        }
    }

    /// This process's page write that announces itself was planned or has ended. A read of
    /// the page whose `GET` went out before it may bring the value it replaces while its own
    /// announcement is still on its way: it counts as heard now, so no such read keeps what it
    /// reads for serving, and the key's copy (the writer's, or one such a read kept meanwhile)
    /// serves outages only.
    fn note_own_page_write(&mut self, machine: &mut WriteMachine) {
        if let Some(key) = machine.take_page_signal() {
            self.tag_sync.own_page_write();
            self.lru.mark_outage_only(&key);
        }
    }

    /// This process's write keeps its copy in the tier from now on, or has ended: no read
    /// that went out before the write's end replaces that copy (docs/failures.md, "The copy
    /// an outage serves").
    fn note_own_keep(&mut self, machine: &mut WriteMachine) {
        match machine.take_keep_signal() {
            Some(KeepSignal::Kept(key)) => machine.hold_mark(self.lru.write_begins(&key)),
            Some(KeepSignal::Ended(_)) => {
                if let Some(mark) = machine.take_mark() {
                    self.lru.write_ends(mark);
                }
            }
            None => {}
        }
    }

    /// Page announcements and gaps this process heard, its own page writes included
    /// ([`crate::tag_sync::TagSync::page_heard`]).
    pub fn page_heard(&self) -> u32 {
        self.tag_sync.page_heard()
    }
}

/// The request machines: one read or renewal at a time, stepped by the host.
impl Engine {
    /// A `'use cache'` read of `cache_key` ([`ReadMachine::use_cache`]).
    pub fn read_use_cache(
        &self,
        iface: &Interface<'_>,
        cache_key: &str,
        soft_tags: Vec<String>,
        consumer: Consumer,
        token: String,
        now: Millis,
    ) -> ReadMachine {
        ReadMachine::use_cache(
            self.read_entry_key(iface, cache_key),
            cache_key,
            soft_tags,
            consumer,
            token,
            now,
        )
    }

    /// A singular-handler read of `cache_key` ([`ReadMachine::incremental`]).
    #[allow(clippy::too_many_arguments)]
    pub fn read_incremental(
        &self,
        cache_key: &str,
        is_fetch: bool,
        soft_tags: Vec<String>,
        request_revalidate: f64,
        consumer: Consumer,
        on_demand: bool,
        token: String,
        now: Millis,
    ) -> ReadMachine {
        ReadMachine::incremental(
            self.read_entry_key(&Interface::Incremental, cache_key),
            cache_key,
            is_fetch,
            soft_tags,
            request_revalidate,
            consumer,
            on_demand,
            token,
            now,
        )
    }

    /// Makes `read` a new `'use cache'` read of `cache_key`, as [`Engine::read_use_cache`]
    /// would, reusing its buffers ([`ReadMachine::reset_use_cache`]). `entry_key`: the key
    /// [`Engine::entry_key`] gave for `cache_key` under `iface`, when the host remembers it
    /// (the key is not hashed again); `None` derives it.
    #[allow(clippy::too_many_arguments)]
    pub fn reset_read_use_cache<'t>(
        &self,
        read: &mut ReadMachine,
        iface: &Interface<'_>,
        cache_key: &str,
        entry_key: Option<&str>,
        soft_tags: impl IntoIterator<Item = &'t str>,
        consumer: Consumer,
        token: LeaseToken<'_>,
        now: Millis,
    ) {
        let derived;
        let entry_key = match entry_key {
            Some(k) => k,
            None => {
                derived = self.read_entry_key(iface, cache_key);
                &derived
            }
        };
        read.reset_use_cache(entry_key, cache_key, soft_tags, consumer, token, now);
    }

    /// Makes `read` a new singular-handler read of `cache_key`, as
    /// [`Engine::read_incremental`] would, reusing its buffers
    /// ([`ReadMachine::reset_incremental`]); `entry_key` as for
    /// [`Engine::reset_read_use_cache`].
    #[allow(clippy::too_many_arguments)]
    pub fn reset_read_incremental<'t>(
        &self,
        read: &mut ReadMachine,
        cache_key: &str,
        entry_key: Option<&str>,
        is_fetch: bool,
        soft_tags: impl IntoIterator<Item = &'t str>,
        request_revalidate: f64,
        consumer: Consumer,
        on_demand: bool,
        token: LeaseToken<'_>,
        now: Millis,
    ) {
        let derived;
        let entry_key = match entry_key {
            Some(k) => k,
            None => {
                derived = self.read_entry_key(&Interface::Incremental, cache_key);
                &derived
            }
        };
        read.reset_incremental(
            entry_key,
            cache_key,
            is_fetch,
            soft_tags,
            request_revalidate,
            consumer,
            on_demand,
            token,
            now,
        );
    }

    /// Whether `read`, not started, asks for the tier first if started at `now`
    /// ([`ReadMachine::asks_tier_first`]).
    pub fn read_asks_tier_first(&self, read: &ReadMachine, now: Millis) -> bool {
        let caught_up = self.tag_sync.caught_up(&self.mirror, now);
        // Caught up, the page view is some exactly when Redis is known plain; the breaker and
        // the index are read only then (pulling, every read pays this call).
        let pages = caught_up
            && (self.tag_sync.plain_redis()
                || self.breaker.state(now) != BreakerState::Closed
                || self.lru.is_local(read.entry_key()));
        read.asks_tier_first(self.mirror.is_synced(), caught_up, pages)
    }

    /// Steps `read` with `input` at `now` ([`ReadMachine::step`]).
    pub fn read_step(
        &mut self,
        read: &mut ReadMachine,
        input: ReadInput<'_>,
        now: Millis,
    ) -> Result<ReadStep, UnexpectedInput> {
        read.step(&mut self.read_ctx(now), input, now)
    }

    /// A `'use cache'` hit from the tier's copy of `entry_key` (`total_len` bytes; `held`: the
    /// embedded store's, served as from Redis), answered without a read machine, or `None`:
    /// then the host reads as always, with a machine reset for the same read
    /// (`reset_read_use_cache`, `entry_key` given, no write in flight) and started with those
    /// bytes offered (`held`: given as the `Get`'s reply after `tier_touch_held`). Taken only where that machine would answer the same:
    /// the tag mirror synced (the machine would refresh first) and debugging off (it would log
    /// the hit); the module `read_machine`'s `tier_hit` says which checks it makes.
    pub fn read_tier_hit(
        &mut self,
        entry_key: &str,
        cache_key: &str,
        soft_tags: &[&str],
        total_len: usize,
        held: bool,
        now: Millis,
    ) -> Option<ReadAnswer> {
        if self.config.debug || !self.mirror.is_synced() {
            return None;
        }
        let mut ctx = self.read_ctx(now);
        let (entry, key, soft) = (entry_key, cache_key, soft_tags);
        crate::read_machine::tier_hit(&mut ctx, entry, key, soft, total_len, held, now)
    }

    /// What a read step at `now` sees of the engine.
    fn read_ctx(&mut self, now: Millis) -> ReadCtx<'_> {
        // The breaker's state once per step (`untrusted_before` asks it too).
        let redis_answers = self.breaker.state(now) == BreakerState::Closed;
        let untrusted_before = self.tag_sync.untrusted_before(&self.mirror, !redis_answers);
        ReadCtx {
            config: &self.config,
            mirror: &self.mirror,
            untrusted_before,
            redis_answers,
            pages: self.tag_sync.page_view(&self.mirror, now),
            tag_sync: &self.tag_sync,
            tags_caught_up: self.tag_sync.caught_up(&self.mirror, now),
            lru: &mut self.lru,
            leases: &mut self.leases,
            stats: &self.stats,
            regenerations: &mut self.regenerations,
            stale_handouts: &mut self.stale_handouts,
        }
    }

    /// Steps `renewal` with `input` at `now` ([`RenewMachine::step`]).
    pub fn renew_step(
        &mut self,
        renewal: &mut RenewMachine,
        input: RenewInput,
        now: Millis,
    ) -> Result<RenewStep, UnexpectedInput> {
        let mut ctx = RenewCtx {
            config: &self.config,
            leases: &mut self.leases,
        };
        renewal.step(&mut ctx, input, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::envelope::{decode_header, EntryKind};
    use crate::error::{ConfigError, DecodeError, PlanError};
    use crate::keys::Interface;
    use crate::netstring;
    use crate::scripts::{TAG_REFRESH, TAG_UPDATE};
    use crate::tag_fold::FOLDED_TAG;
    use crate::tag_sync::PRUNE_EVERY_MS;
    use crate::tags::{Revalidation, TagRecord};
    use crate::time::INFINITE_CACHE_SECONDS;
    use crate::verdict::Verdict;

    const NOW: f64 = 1_795_690_530_000.0;
    const DEFAULT: Interface<'static> = Interface::UseCache("default");

    /// Ms from `now` until the pull time ([`Engine::tag_pull_timeout`], 0 when it has
    /// come); `None`: no pull time.
    fn pull_in(e: &Engine, now: f64) -> Option<f64> {
        e.tag_pull_timeout(Millis(now))
            .map(|at| (at.0 - now).max(0.0))
    }

    /// An engine that follows no shared state (its tag mirror is complete as it is).
    fn engine() -> Engine {
        let mut e = shared_engine();
        e.mark_standalone();
        e
    }

    /// An engine following tags by push (1 s bound), its channel up, its mirror synced by a
    /// full refresh of an empty state answered at 1 ms.
    fn following_by_push_synced_at_1() -> Engine {
        let mut e = engine();
        e.follow_tags_by_push(1000.0).unwrap();
        e.tag_channel_up();
        e.apply_refresh(
            &netstring::encode(["E", "1", "v1", "1", "0", "", "0"]),
            Millis(1.0),
        )
        .unwrap();
        e
    }

    /// An engine whose mirror waits for its first refresh from Redis.
    pub(super) fn shared_engine() -> Engine {
        Engine::new(Config {
            prefix: "fc".into(),
            deployment: "d1".into(),
            ..Config::default()
        })
        .unwrap()
    }

    fn input<'a>(tags: &'a [&'a str], parts: &'a [u32]) -> SetInput<'a> {
        SetInput {
            kind: EntryKind::UseCache,
            timestamp: Millis(NOW),
            made_at: None,
            revalidate: 900.0,
            expire: 3600.0,
            stale: 300.0,
            tags,
            meta: b"",
            parts,
            now: Millis(NOW + 1000.0),
        }
    }

    fn stored(e: &Engine, key: &str, inp: SetInput<'_>) -> Vec<u8> {
        let plan = e.plan_set(&DEFAULT, key, inp).unwrap();
        let mut v = plan.header;
        v.extend(std::iter::repeat(7u8).take(inp.parts.iter().sum::<u32>() as usize));
        v
    }

    #[test]
    fn an_engine_hashes_every_map_keyed_by_request_input_with_its_seed() {
        let seed = HashSeed::from_bytes([0x3c; 16]);
        let config = Config {
            prefix: "fc".into(),
            deployment: "d1".into(),
            ..Config::default()
        };
        let e = Engine::with_hash_seed(config, seed).unwrap();
        assert!(
            e.hash_seeds().iter().all(|s| *s == seed),
            "{:?}",
            e.hash_seeds()
        );
    }

    #[test]
    fn reseeding_rehashes_every_map_and_every_lookup_still_finds_its_value() {
        let new = HashSeed::from_bytes([0xa5; 16]);
        let mut e = engine();
        assert!(e.hash_seeds().iter().all(|s| *s == HashSeed::default()));
        let now = Millis(NOW);
        let keys: Vec<String> = (0..300)
            .map(|i| e.entry_key(&DEFAULT, &i.to_string()))
            .collect();
        for k in &keys {
            let order = e.lru_mut().issue();
            e.lru_mut().insert_ordered(k, 100, Millis(NOW + 1e6), order);
        }
        for k in &keys[..50] {
            assert!(e.lru_mut().remove(k));
        }
        let marks: Vec<_> = keys[40..80]
            .iter()
            .map(|k| e.lru_mut().write_begins(k))
            .collect();
        let tags: Vec<String> = (0..200).map(|i| format!("tag-{i}")).collect();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let rev = Revalidation::Expire;
        e.queue_tag_update(&tags, &rev, now).unwrap();
        e.revalidation_paired(1);
        let expiration = e.get_expiration(&tags[..1], now);
        assert!(expiration > Millis::ZERO);
        e.mirror_mut()
            .restore_resend(&[("tag-7".to_owned(), TagRecord::default())]);

        e.reseed_hashes(new);

        assert!(
            e.hash_seeds().iter().all(|s| *s == new),
            "{:?}",
            e.hash_seeds()
        );
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(e.entry_key(&DEFAULT, &i.to_string()), *k);
            assert_eq!(e.lru().contains(k), i >= 50, "{k}");
        }
        assert_eq!(e.lru().writes_in_flight(), 40);
        assert!(
            !e.lru_mut().read_may_keep(&keys[60], u64::MAX, false),
            "a write in flight"
        );
        assert_eq!(e.lru().removed_remembered().0, 50);
        for tag in &tags {
            assert_eq!(
                e.mirror().record(tag).map(|r| r.expired),
                Some(now),
                "{tag}"
            );
        }
        assert_eq!(e.get_expiration(&tags[..1], now), expiration);
        assert!(e.revalidation_recorded(&tags, &rev, now, 1));
        assert_eq!(e.mirror().resend_len(), 1);
        for m in marks {
            e.lru_mut().write_ends(m);
        }
        assert_eq!(e.lru().writes_in_flight(), 0);
    }

    #[test]
    fn new_rejects_bad_config() {
        let bad = Config {
            prefix: "a b".into(),
            ..Config::default()
        };
        assert_eq!(Engine::new(bad).err(), Some(ConfigError::Prefix));
        let e = engine();
        assert_eq!(e.namespace().deployment(), "d1");
        assert_eq!(e.config().prefix, "fc");
        assert_eq!(e.lru().capacity(), 50 * 1024 * 1024);
    }

    #[test]
    fn set_then_inspect_fresh() {
        let mut e = engine();
        let v = stored(&e, "k", input(&["t"], &[3, 4]));
        let i = e.inspect("k", &v, v.len(), &["_N_T_/p"], Millis(NOW + 2000.0));
        assert_eq!(i.verdict, Verdict::Fresh);
        let h = i.header.unwrap();
        assert_eq!(h.payload_len, 7);
        assert_eq!(h.meta.tags, vec!["t".to_owned()]);
        assert_eq!(h.header_len + 7, v.len());
        // Stale by a profile revalidation of an own tag, expired by a soft tag.
        let rev = Revalidation::Stale {
            expire_seconds: Some(31_536_000.0),
        };
        e.plan_tag_update(&["t"], &rev, Millis(NOW + 3000.0), "ep")
            .unwrap();
        let i = e.inspect("k", &v, v.len(), &["_N_T_/p"], Millis(NOW + 4000.0));
        assert_eq!(i.verdict, Verdict::Stale);
        e.plan_tag_update(
            &["_N_T_/p"],
            &Revalidation::Expire,
            Millis(NOW + 5000.0),
            "ep",
        )
        .unwrap();
        let i = e.inspect("k", &v, v.len(), &["_N_T_/p"], Millis(NOW + 6000.0));
        assert_eq!(i.verdict, Verdict::Expired);
        let i = e.inspect("k", &v, v.len(), &[], Millis(NOW + 6000.0));
        assert_eq!(i.verdict, Verdict::Stale);
    }

    #[test]
    fn inspect_other_verdicts() {
        let e = engine();
        let v = stored(&e, "k", input(&[], &[1]));
        let i = e.inspect("other", &v, v.len(), &[], Millis(NOW));
        assert_eq!(i.verdict, Verdict::KeyMismatch);
        assert!(i.header.is_some());
        let i = e.inspect("k", &v[..10], v.len(), &[], Millis(NOW));
        assert_eq!(i.verdict, Verdict::NeedMore(48));
        assert_eq!(i.header, None);
        let i = e.inspect("k", b"{\"json\":1}", 10, &[], Millis(NOW));
        assert_eq!(i.verdict, Verdict::Corrupt(DecodeError::BadMagic));
        // Own lifetime: expire 3600 s after the timestamp.
        let at = |ms: f64| e.inspect("k", &v, v.len(), &[], Millis(NOW + ms)).verdict;
        assert_eq!(at(3_600_000.0), Verdict::Fresh);
        assert_eq!(at(3_600_001.0), Verdict::Expired);
        let mut inp = input(&[], &[1]);
        inp.expire = INFINITE_CACHE_SECONDS;
        let v = stored(&e, "k", inp);
        let i = e.inspect("k", &v, v.len(), &[], Millis(NOW + 1e13));
        assert_eq!(i.verdict, Verdict::Fresh);
    }

    #[test]
    fn ttl_rules() {
        let e = engine();
        let ttl = |f: fn(&mut SetInput<'_>)| {
            let mut inp = input(&[], &[]);
            f(&mut inp);
            e.plan_set(
                &Interface::parse(if inp.kind == EntryKind::UseCache {
                    "uc-default"
                } else {
                    "inc"
                })
                .unwrap(),
                "k",
                inp,
            )
            .unwrap()
            .ttl_ms
        };
        // 3600 s from the timestamp, written 1 s later.
        assert_eq!(ttl(|_| {}), Some(3_599_000));
        assert_eq!(ttl(|i| i.expire = 0.0), None);
        assert_eq!(ttl(|i| i.expire = -1.0), None);
        assert_eq!(ttl(|i| i.revalidate = 0.0), None);
        assert_eq!(ttl(|i| i.expire = 0.5), None); // already past it
        assert_eq!(ttl(|i| i.expire = f64::INFINITY), Some(2_592_000_000));
        assert_eq!(
            ttl(|i| i.expire = INFINITE_CACHE_SECONDS),
            Some(2_592_000_000)
        );
        assert_eq!(ttl(|i| i.expire = 1e9), Some(2_592_000_000));
        assert_eq!(
            ttl(|i| {
                i.kind = EntryKind::Incremental;
                i.expire = f64::INFINITY;
                i.revalidate = f64::INFINITY;
            }),
            Some(2_592_000_000) // default 1 year, clamped to 30 days
        );
        let short = Engine::new(Config {
            default_ttl_seconds: 60.0,
            ..Config::default()
        })
        .unwrap();
        let mut inp = input(&[], &[]);
        inp.kind = EntryKind::Incremental;
        inp.expire = f64::INFINITY;
        inp.revalidate = f64::INFINITY;
        assert_eq!(
            short
                .plan_set(&Interface::Incremental, "k", inp)
                .unwrap()
                .ttl_ms,
            Some(60_000)
        );
        inp.revalidate = 60.0;
        assert_eq!(
            short
                .plan_set(&Interface::Incremental, "k", inp)
                .unwrap()
                .ttl_ms,
            Some(2_592_000_000)
        );
    }

    #[test]
    fn set_refusals() {
        let e = Engine::new(Config {
            max_entry_bytes: 100,
            ..Config::default()
        })
        .unwrap();
        let header_len = e
            .plan_set(&DEFAULT, "k", input(&[], &[0]))
            .unwrap()
            .header
            .len() as u64;
        assert!(e
            .plan_set(&DEFAULT, "k", input(&[], &[(100 - header_len) as u32]))
            .is_ok());
        assert_eq!(
            e.plan_set(&DEFAULT, "k", input(&[], &[(101 - header_len) as u32])),
            Err(PlanError::TooLarge {
                size: 101,
                max: 100
            })
        );
        assert_eq!(
            e.plan_set(&Interface::Incremental, "k", input(&[], &[])),
            Err(PlanError::KindMismatch)
        );
        // An over-long tag is dropped; the entry is stored with the others.
        let long = "x".repeat(crate::tags::MAX_TAG_BYTES + 1);
        let tags = [long.as_str(), "kept"];
        let plan = e.plan_set(&DEFAULT, "k", input(&tags, &[])).unwrap();
        let h = decode_header(&plan.header, plan.header.len()).unwrap();
        assert_eq!(h.meta.tags, ["kept"]);
        assert_eq!(e.dropped_tags().count, 1);
        // More distinct tags than the envelope counts: not stored, never stored without some.
        let many: Vec<String> = (0..=crate::tags::MAX_ENTRY_TAGS)
            .map(|i| format!("t{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let big = Engine::new(Config {
            max_entry_bytes: 1 << 30,
            ..Config::default()
        })
        .unwrap();
        assert_eq!(
            big.plan_set(&DEFAULT, "k", input(&many, &[]))
                .err()
                .map(|e| e.code()),
            Some("ERR_PLAN_TAG_LIMIT")
        );
        assert!(big.plan_set(&DEFAULT, "k", input(&many[1..], &[])).is_ok());
        let mut inp = input(&[], &[]);
        inp.revalidate = f64::NAN;
        assert_eq!(
            e.plan_set(&DEFAULT, "k", inp).err().map(|e| e.code()),
            Some("ERR_ENCODE_NUMBER")
        );
        let plan = e.plan_set(&DEFAULT, "k", input(&[], &[])).unwrap();
        assert_eq!(plan.key, e.entry_key(&DEFAULT, "k"));
    }

    /// A step of the wall clock against the process's clock (a machine resumed after a pause,
    /// its process's clock held still) is a gap following by push: only a pull planned after
    /// it catches up. Within the slack less the host's filter, a first reading, or a wall clock
    /// that is no time, is not.
    #[test]
    fn following_by_push_a_step_of_the_wall_clock_asks_for_a_pull() {
        let caught_up_pull = |e: &mut Engine, at: f64| {
            e.plan_tag_pull(Millis(at));
            e.apply_refresh(
                &netstring::encode(["E", "1", "v1", "0", "0", ""]),
                Millis(at + 1.0),
            )
            .unwrap();
        };
        let mut e = following_by_push_synced_at_1();
        caught_up_pull(&mut e, 10.0);
        assert!(e.tags_caught_up(Millis(12.0)));
        // The first reading, a move within the slack less the host's filter (what drift the
        // host left untold may add), and no wall clock leave it caught up.
        e.note_clocks(Millis(12.0), Millis(5_012.0));
        e.note_clocks(Millis(13.0), Millis(5_018.0));
        e.note_clocks(Millis(14.0), Millis(f64::NAN));
        e.note_clocks(Millis(14.0), Millis(0.0));
        assert!(e.tags_caught_up(Millis(15.0)));
        // Paused 900 ms: Next's clock moved 1 ms, the wall clock 901.
        e.note_clocks(Millis(16.0), Millis(5_924.0));
        assert!(!e.tags_caught_up(Millis(17.0)));
        caught_up_pull(&mut e, 20.0);
        assert!(e.tags_caught_up(Millis(22.0)));
    }

    /// Pauses each within the engine's threshold, told one at a time by calls that hand it both
    /// clocks unfiltered (a write's start, a revalidation), add up: the bound is counted on the
    /// process's clock from the last pull's start, so once the distance moved past the slack
    /// less the host's filter since then, the mirror is older than the bound by more than the
    /// slack, and only a pull planned after catches up. That pull's distance is the next one
    /// compared with.
    #[test]
    fn following_by_push_pauses_that_add_up_past_the_slack_since_the_pull_ask_for_a_pull() {
        let mut e = following_by_push_synced_at_1();
        let pulled = |e: &mut Engine, at: f64, wall: f64| {
            e.note_clocks(Millis(at), Millis(wall));
            e.plan_tag_pull(Millis(at));
            e.apply_refresh(
                &netstring::encode(["E", "1", "v1", "0", "0", ""]),
                Millis(at + 1.0),
            )
            .unwrap();
        };
        pulled(&mut e, 10.0, 5_010.0);
        assert!(e.tags_caught_up(Millis(12.0)));
        // Paused 4 ms, told by a write: within.
        e.note_clocks(Millis(12.0), Millis(5_016.0));
        assert!(e.tags_caught_up(Millis(12.0)), "4 ms since the pull");
        // Twice more, each 4 ms from the last told: 12 ms since the pull.
        e.note_clocks(Millis(13.0), Millis(5_021.0));
        e.note_clocks(Millis(14.0), Millis(5_026.0));
        assert!(
            !e.tags_caught_up(Millis(15.0)),
            "paused 12 ms since the pull, 4 ms at a time"
        );
        pulled(&mut e, 15.0, 5_027.0);
        assert!(e.tags_caught_up(Millis(16.0)));
        e.note_clocks(Millis(17.0), Millis(5_033.0));
        assert!(e.tags_caught_up(Millis(17.0)), "4 ms since the new pull");
        // While a pull is out, a move is measured from its start too: once applied, the bound
        // counts from it. Back 3 ms as it is planned, then on 4 and 2 ms, each told: within
        // the threshold of the last told and of the pull before, 6 ms from this one's start.
        pulled(&mut e, 20.0, 5_023.0);
        e.note_clocks(Millis(30.0), Millis(5_030.0));
        e.plan_tag_pull(Millis(30.0));
        e.note_clocks(Millis(31.0), Millis(5_035.0));
        e.note_clocks(Millis(32.0), Millis(5_038.0));
        e.apply_refresh(
            &netstring::encode(["E", "1", "v1", "0", "0", ""]),
            Millis(33.0),
        )
        .unwrap();
        assert!(
            !e.tags_caught_up(Millis(34.0)),
            "moved 6 ms since the start of the pull the bound counts from"
        );
    }

    /// A revalidation whose `expire` is later ends the serving of its tags' entries stale no
    /// later than that long after the wall clock of its making: recorded by a process whose
    /// clock runs ahead (the stamp, on that clock) or judged by one whose clock runs behind
    /// (comparing on its own clock), it came late by that distance (docs/decisions/0036).
    /// Entries made before it are stale at once either way.
    #[test]
    fn a_delayed_expiry_ends_no_later_than_on_the_wall_clock() {
        const T: f64 = 1_795_690_530_000.0;
        let rev = Revalidation::Stale {
            expire_seconds: Some(10.0),
        };
        let made = Millis(T - 1_000.0);
        // Recorded 5 s ahead: stamped at its clock, due 10 s after its wall clock.
        let mut e = engine();
        e.queue_tag_update_at(&["a"], &rev, Millis(T + 5_000.0), Millis(T))
            .unwrap();
        let record = e.mirror().known("a").unwrap();
        assert_eq!(record.pending_at, Millis(T + 5_000.0));
        assert_eq!(record.pending_exp, Millis(T + 10_000.0));
        // Judged 5 s behind (the host told it both clocks): due when its wall clock says so.
        let mut e = engine();
        e.queue_tag_update_at(&["a"], &rev, Millis(T - 5_000.0), Millis(T))
            .unwrap();
        let behind = |ms: f64| Millis(T - 5_000.0 + ms);
        assert_eq!(e.tag_freshness(&["a"], made, behind(0.0)), Freshness::Stale);
        assert_eq!(
            e.tag_freshness(&["a"], made, behind(9_999.0)),
            Freshness::Stale
        );
        assert_eq!(
            e.tag_freshness(&["a"], made, behind(10_000.0)),
            Freshness::Expired
        );
        assert_eq!(e.get_expiration(&["a"], behind(9_999.0)), Millis::ZERO);
        assert_eq!(e.get_expiration(&["a"], behind(10_000.0)), Millis(T));
        // Next's own comparisons are untouched: the stamps are not moved.
        assert_eq!(
            e.tag_freshness(&["a"], Millis(T + 1.0), behind(10_000.0)),
            Freshness::Fresh
        );
        // Recorded ahead through `updateTags`, the singular handler's second report of the
        // same event (as Next reports it: its `expire` uncut) is still taken for it (0005).
        let mut e = engine();
        e.queue_tag_update_at(&["a"], &rev, Millis(T + 5_000.0), Millis(T))
            .unwrap();
        e.revalidation_paired(7);
        assert!(e.revalidation_recorded(&["a"], &rev, Millis(T + 5_000.5), 7));
    }

    /// The host tells the engine the clocks at a request's start only when their distance
    /// moved by more than [`crate::time::CLOCK_NOTE_MS`] since it last did, so up to that much
    /// drift may have gone untold before a pause: a pause longer than the slack is a gap
    /// whatever that drift was, in either direction (a pause of 12 ms after 4.9 ms of drift
    /// the other way was told as 7.1 ms, within the slack, and left the mirror caught up).
    #[test]
    fn following_by_push_a_pause_past_the_slack_after_untold_drift_asks_for_a_pull() {
        use crate::time::{CLOCK_AHEAD_SLACK_MS, CLOCK_NOTE_MS};
        for dir in [1.0, -1.0] {
            let mut e = following_by_push_synced_at_1();
            e.note_clocks(Millis(10.0), Millis(5_010.0));
            e.plan_tag_pull(Millis(10.0));
            e.apply_refresh(
                &netstring::encode(["E", "1", "v1", "0", "0", ""]),
                Millis(11.0),
            )
            .unwrap();
            assert!(e.tags_caught_up(Millis(12.0)));
            // Drift the host's filter left untold (just under its threshold), then a pause
            // (the wall clock moves on, the process's clock does not) or a jump of the process's
            // clock past the slack, the other way: told, the distance moved less than the slack.
            let drift = -dir * (CLOCK_NOTE_MS - 0.1);
            let pause = dir * (CLOCK_AHEAD_SLACK_MS + 2.0);
            e.note_clocks(Millis(20.0), Millis(5_020.0 + drift + pause));
            assert!(
                !e.tags_caught_up(Millis(21.0)),
                "a step of {pause} ms after {drift} ms of untold drift"
            );
        }
    }

    /// The distance a write moves a regeneration's times back by is never less than the
    /// farthest told within a regeneration's life before it, past [`AHEAD_KEPT`] nearer ones
    /// told one after another (merged: farther for longer), and none once all are older.
    #[test]
    fn the_distance_ahead_kept_is_the_farthest_within_a_regenerations_life() {
        use crate::regen::MAX_REGENERATION_MS;
        let base = 1_795_690_530_000.0;
        let step = MAX_REGENERATION_MS / 8.0;
        let told: Vec<(f64, f64)> = (0..7u32)
            .map(|i| (7_000.0 - 1_000.0 * f64::from(i), base + step * f64::from(i)))
            .collect();
        let mut e = engine();
        for (ahead, at) in &told {
            e.note_clocks(Millis(*at), Millis(at - ahead));
        }
        for k in 0..24u32 {
            let now = base + step * 6.0 + step * f64::from(k) / 2.0;
            let farthest = told
                .iter()
                .filter(|(_, at)| now - at <= MAX_REGENERATION_MS)
                .map(|(ahead, _)| *ahead)
                .fold(0.0, f64::max);
            let kept = e.recent_ahead(Millis(now));
            assert!(kept >= farthest, "at {k}: {kept} < {farthest}");
            if farthest == 0.0 {
                assert_eq!(kept, 0.0, "at {k}");
            }
        }
    }

    #[test]
    fn following_by_push_a_request_pulls_until_caught_up() {
        let mut e = engine();
        let synced = netstring::encode(["E", "1", "v1", "1", "0", "", "0"]);
        assert!(
            e.plan_tag_update(&["a"], &Revalidation::Expire, Millis(1.0), "ep")
                .unwrap()
                .keys
                .len()
                == 3
        );
        assert!(e.follow_tags_by_push(0.0).is_err());
        e.follow_tags_by_push(1000.0).unwrap();
        let update = e
            .plan_tag_update(&["a"], &Revalidation::Expire, Millis(1.0), "ep")
            .unwrap();
        assert_eq!(
            update.keys.last().map(String::as_str),
            Some(e.tag_announce_channel())
        );
        assert_eq!(e.tag_announce_channel(), "fc:tags:{fc}:announce");
        // A pull planned before the subscription is confirmed does not count.
        e.plan_tag_pull(Millis(10.0));
        e.tag_channel_up();
        e.apply_refresh(&synced, Millis(11.0)).unwrap();
        assert!(!e.tags_caught_up(Millis(12.0)));
        e.plan_tag_pull(Millis(20.0));
        e.apply_refresh(
            &netstring::encode(["E", "1", "v1", "0", "0", ""]),
            Millis(21.0),
        )
        .unwrap();
        assert!(e.tags_caught_up(Millis(22.0)));
        assert_eq!(pull_in(&e, 500.0), Some(320.0), "20 + 800");
        // Past the bound: requests pull, no pull time.
        assert!(!e.tags_caught_up(Millis(1020.0)));
        assert_eq!(pull_in(&e, 1020.0), None);
        e.plan_tag_pull(Millis(1020.0));
        e.apply_refresh(
            &netstring::encode(["E", "1", "v1", "0", "0", ""]),
            Millis(1021.0),
        )
        .unwrap();
        assert!(e.tags_caught_up(Millis(1022.0)));
        // A gap: pull again, and only a pull planned after it counts.
        e.plan_tag_pull(Millis(1030.0));
        let gap = netstring::encode(["a", "E", "3", "v3", "", "a", "5,5,0,0,5"]);
        assert_eq!(
            e.apply_announcement(&gap, Millis(1_000.0)),
            Ok(Announced::Gap)
        );
        e.apply_refresh(
            &netstring::encode(["E", "1", "v1", "0", "0", ""]),
            Millis(1031.0),
        )
        .unwrap();
        assert!(!e.tags_caught_up(Millis(1032.0)));
        e.plan_tag_pull(Millis(1040.0));
        e.apply_refresh(
            &netstring::encode(["E", "3", "v3", "0", "0", ""]),
            Millis(1041.0),
        )
        .unwrap();
        assert!(e.tags_caught_up(Millis(1042.0)));
        assert_eq!(pull_in(&e, 1042.0), Some(798.0));
        let next = netstring::encode(["a", "E", "4", "v4", "", "a", "5,5,0,0,5"]);
        assert_eq!(
            e.apply_announcement(&next, Millis(1_000.0)),
            Ok(Announced::Applied(1))
        );
        assert!(e.tags_caught_up(Millis(1043.0)));
        // Learned by announcement: the next pull, which vouches past it, is due at once
        // (regen::use_cache_made); planning it is enough, the periodic one follows as before.
        assert_eq!(pull_in(&e, 1043.0), Some(0.0));
        e.plan_tag_pull(Millis(1043.0));
        e.apply_refresh(
            &netstring::encode(["E", "4", "v4", "0", "0", ""]),
            Millis(1044.0),
        )
        .unwrap();
        assert_eq!(pull_in(&e, 1044.0), Some(799.0));
        // And by one of this process's own: just after the time it is recorded at (a pull
        // planned at that time would vouch for nothing against it).
        e.queue_tag_update(&["b"], &Revalidation::Expire, Millis(1045.0))
            .unwrap();
        let due = pull_in(&e, 1045.0).unwrap_or_default();
        assert!(due > 0.0 && due < 1e-9, "{due}");
        assert_eq!(pull_in(&e, 1045.001), Some(0.0));
        assert!(e.tags_caught_up(Millis(1045.0)));
        e.tag_channel_down();
        assert!(!e.tags_caught_up(Millis(1044.0)));
    }

    /// Following by push, a pull on a revalidation learned that fails leaves it due: the
    /// host's retry comes after the backoff (not the 1 s it waits when nothing is
    /// learned), and never before the breaker's probe.
    #[test]
    fn a_failed_learned_pull_is_retried_after_its_backoff_and_the_breaker() {
        let mut e = engine();
        e.follow_tags_by_push(1000.0).unwrap();
        e.tag_channel_up();
        e.plan_tag_pull(Millis(20.0));
        let synced = netstring::encode(["E", "1", "v1", "1", "0", "", "0"]);
        e.apply_refresh(&synced, Millis(21.0)).unwrap();
        assert!(e.tags_caught_up(Millis(22.0)));
        assert_eq!(e.retry_in_ms(Millis(22.0)), 1000.0);
        // Failed with nothing learned: the usual retry.
        e.plan_tag_pull(Millis(30.0));
        e.tag_pull_failed(Millis(30.0));
        assert_eq!(e.retry_in_ms(Millis(31.0)), 1000.0);
        let next = netstring::encode(["a", "E", "2", "v2", "", "a", "5,5,0,0,5"]);
        assert_eq!(
            e.apply_announcement(&next, Millis(40.0)),
            Ok(Announced::Applied(1))
        );
        assert_eq!(
            pull_in(&e, 40.0),
            Some(90.0),
            "from the failed pull: 30 + 100"
        );
        e.plan_tag_pull(Millis(240.0));
        e.tag_pull_failed(Millis(240.0));
        assert_eq!(
            pull_in(&e, 250.0),
            Some(190.0),
            "the second in a row: 240 + 200"
        );
        assert_eq!(e.retry_in_ms(Millis(250.0)), 190.0);
        // Open breaker: its probe rules.
        for t in 0..5 {
            let Admission::Send { permit, .. } = e.admit(OpKind::Read, Millis(251.0 + t as f64))
            else {
                panic!("closed breaker admits");
            };
            e.report(permit, CallResult::Failure, Millis(251.0 + t as f64));
        }
        assert_eq!(e.breaker_state(Millis(260.0)), BreakerState::Open);
        let probe = e.breaker().next_probe_at().unwrap().0 - 260.0;
        assert!(probe > 190.0, "{probe}");
        assert_eq!(e.retry_in_ms(Millis(260.0)), probe.min(1000.0));
        // Applied: what was learned is answered, the next pull is the periodic one.
        e.plan_tag_pull(Millis(2_000.0));
        e.apply_refresh(
            &netstring::encode(["E", "2", "v2", "0", "0", ""]),
            Millis(2_001.0),
        )
        .unwrap();
        assert!(e.tags_caught_up(Millis(2_002.0)));
        assert_eq!(pull_in(&e, 2_002.0), Some(798.0));
        assert_eq!(
            e.tag_sync
                .push()
                .and_then(|p| p.retry_in_ms(Millis(2_002.0))),
            None
        );
    }

    #[test]
    fn tag_update_call() {
        let mut e = engine();
        let rev = Revalidation::Stale {
            expire_seconds: Some(60.0),
        };
        let call = e
            .plan_tag_update(&["a", "b"], &rev, Millis(1000.5), "ep")
            .unwrap();
        assert_eq!(call.script.name, "tag_update");
        assert_eq!(call.sha1, TAG_UPDATE.sha1());
        assert_eq!(
            call.keys,
            [
                "fc:tags:{fc}:state",
                "fc:tags:{fc}:log",
                "fc:tags:{fc}:meta"
            ]
        );
        let prune = (30.0 * 86_400_000.0 + 86_400_000.0) as u64;
        assert_eq!(
            call.args,
            [
                "1001".to_owned(),
                prune.to_string(),
                "ep".into(),
                "s".into(),
                "60000".into(),
                "a".into(),
                "b".into()
            ]
        );
        assert_eq!(e.mirror().record("a").unwrap().stale, Millis(1001.0));
        assert_eq!(e.get_expiration(&["a"], Millis(61_001.0)), Millis(1001.0));
        assert_eq!(e.get_expiration(&["a"], Millis(61_000.0)), Millis::ZERO);

        assert_eq!(
            e.plan_tag_update(&[], &rev, Millis(1.0), "ep"),
            Err(PlanError::NoTags)
        );
        // Only over-long tags are dropped; a list of nothing else is refused.
        let long = "t".repeat(crate::tags::MAX_TAG_BYTES + 1);
        assert_eq!(
            e.plan_tag_update(&[&long], &rev, Millis(1.0), "ep"),
            Err(PlanError::TagLimit)
        );
        assert_eq!(e.dropped_tags().count, 1);
        let call = e
            .plan_tag_update(&[&long, "kept"], &rev, Millis(1.0), "ep")
            .unwrap();
        assert_eq!(call.args[5..], ["kept".to_owned()]);
        assert_eq!(e.dropped_tags().count, 1);
        let many: Vec<String> = (0..1025).map(|i| format!("t{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let call = e.plan_tag_update(&many, &rev, Millis(1.0), "ep").unwrap();
        assert_eq!(call.args.len(), 5 + 1025);
        assert!(e.dropped_tags().is_empty());
        assert_eq!(
            e.plan_tag_update(&["a"], &rev, Millis(1.0), ""),
            Err(PlanError::InvalidEpoch)
        );
        assert_eq!(
            e.plan_tag_update(&["a"], &rev, Millis(f64::NAN), "ep"),
            Err(PlanError::InvalidTime)
        );
        assert_eq!(
            e.plan_tag_update(&["a"], &rev, Millis(-1.0), "ep"),
            Err(PlanError::InvalidTime)
        );
    }

    #[test]
    fn refresh_call_follows_the_mirror() {
        let mut e = shared_engine();
        let call = e.plan_tag_refresh();
        assert_eq!(call.script.name, "tag_refresh");
        assert_eq!(call.sha1, TAG_REFRESH.sha1());
        assert_eq!(call.args, ["", "0", "", "0", ""]);
        load(&mut e, "E", "4", &["x".into(), "0,10,0,0,10".into()], 20.0);
        assert_eq!(e.plan_tag_refresh().args, ["E", "4", "v", "0", ""]);
        assert_eq!(e.get_expiration(&["x", "y"], Millis(20.0)), Millis(10.0));
        e.apply_update_reply(&netstring::encode(["E", "6", "v6", "0"]))
            .unwrap();
        assert_eq!(
            e.plan_tag_refresh().args,
            ["E", "4", "v", "0", "", "6", "v6"]
        );
        assert_eq!(e.prune_mirror(Millis(1e13)), 1);
        assert!(e.mirror_mut().is_empty());
        assert!(e.lru_mut().insert("k", 1, Millis(1.0)).is_empty());
    }

    /// Loads a whole state into `e` as a server does: the full header, one page (of `pairs`,
    /// tag and record text), the catch-up refresh.
    fn load(e: &mut Engine, epoch: &str, ver: &str, pairs: &[String], now: f64) {
        let s = e
            .apply_refresh(
                &netstring::encode([epoch, ver, "v", "1", "0", "", "c1"]),
                Millis(now),
            )
            .unwrap();
        assert!(s.full);
        let call = e.plan_tag_refresh();
        assert_eq!(call.script.name, "tag_page");
        assert_eq!(call.keys, e.namespace().tag_keys().to_vec());
        let epoch_named = if epoch == crate::tags::EPOCH_WITHOUT_META {
            ""
        } else {
            epoch
        };
        assert_eq!(call.args, ["c1", "1000", ver, "v", epoch_named]);
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
        assert_eq!(e.plan_tag_refresh().args, [epoch, ver, "v", "0", ""]);
        e.apply_refresh(
            &netstring::encode([epoch, ver, "v", "0", "0", ""]),
            Millis(now),
        )
        .unwrap();
        assert!(e.mirror().is_synced());
    }

    /// The state "E" at version 1, followed at 20 ms, holding one record: `b` expired at 10.
    fn follow_b_expired_at_10(e: &mut Engine) {
        load(
            e,
            "E",
            "1",
            &["b".to_owned(), "0,10,0,0,10".to_owned()],
            20.0,
        );
    }

    /// A week of per-item revalidations (a new tag every minute, from this
    /// process and from another instance alike), refreshed as requests do. Redis forgets a tag
    /// once it is older than the pruning age (`tag_update.lua`); the mirror must forget it by
    /// the same rule, so what it holds stays flat instead of growing with every tag it ever
    /// heard of. Fails when `apply_refresh` stops pruning.
    #[test]
    fn the_mirror_stays_flat_over_a_week_of_per_item_revalidations() {
        use std::collections::HashMap;
        const MINUTE: f64 = 60_000.0;
        let mut e = Engine::new(Config {
            prefix: "fc".into(),
            deployment: "d1".into(),
            max_ttl_seconds: 3600.0,
            tag_prune_after_ms: Some(2.0 * 3_600_000.0),
            ..Config::default()
        })
        .unwrap();
        let keep = e.config().prune_after_ms();
        // Redis, modelled: the records, and the version that last changed each tag.
        let mut state: HashMap<String, (TagRecord, u64)> = HashMap::new();
        let mut ver = 0u64;
        load(&mut e, "E", "0", &[], NOW);
        let week = 7 * 24 * 60;
        let mut sizes = Vec::with_capacity(week);
        for minute in 0..week {
            let t = Millis(NOW + minute as f64 * MINUTE);
            let tag = format!("item-{minute}");
            if minute % 2 == 0 {
                // This process revalidates: applied at once, sent through the outbox.
                e.queue_tag_update(&[&tag], &Revalidation::Expire, t)
                    .unwrap();
                let seq = e.outbox().head().unwrap().seq;
                assert!(e.ack_outbox(seq));
            }
            // Either way the update reaches Redis, which prunes by age (the script's rule,
            // `updated_at + prune_after < now`, applied in full rather than 64 at a time).
            ver += 1;
            let record = &mut state.entry(tag).or_default();
            record.0.apply(&Revalidation::Expire, t);
            record.1 = ver;
            state.retain(|_, (r, _)| r.updated_at.0 + keep >= t.0);
            // A request's refresh: what changed since the mirror's version.
            let known = e.mirror().version();
            let mut reply = vec![
                "E".to_owned(),
                ver.to_string(),
                "v".into(),
                "0".into(),
                "0".into(),
                String::new(),
            ];
            for (tag, (record, v)) in &state {
                if *v > known {
                    reply.push(tag.clone());
                    reply.push(record.encode());
                }
            }
            e.apply_refresh(&netstring::encode(&reply), t).unwrap();
            let m = e.mirror();
            sizes.push(m.len() + m.unconfirmed() + m.resend_len());
            // Never more than Redis keeps plus what one pruning interval adds.
            assert!(
                m.len() <= state.len() + (PRUNE_EVERY_MS / MINUTE) as usize + 1,
                "minute {minute}: mirror {} vs redis {}",
                m.len(),
                state.len()
            );
        }
        // Flat: the second day on, the size stays within one pruning interval of what the
        // pruning age holds, however many tags came and went (10,080 over the week).
        let held = (keep / MINUTE) as usize + 1;
        let later = &sizes[24 * 60..];
        let (low, high) = (
            later.iter().min().copied().unwrap_or(0),
            later.iter().max().copied().unwrap_or(0),
        );
        assert!(low >= held - 1, "low {low}, held {held}");
        assert!(
            high <= held + (PRUNE_EVERY_MS / MINUTE) as usize + 1,
            "high {high}, held {held}"
        );
        assert_eq!(e.mirror().unconfirmed(), 0);
    }

    /// Trips the breaker with consecutive failures at `now`.
    fn trip(e: &mut Engine, now: f64) {
        for _ in 0..e.config().breaker().failures {
            if let crate::guard::Admission::Send { permit, .. } =
                e.admit(crate::guard::OpKind::Read, Millis(now))
            {
                e.report(permit, crate::breaker::CallResult::Failure, Millis(now));
            }
        }
        assert_ne!(
            e.breaker_state(Millis(now)),
            crate::breaker::BreakerState::Closed
        );
    }

    #[test]
    fn nothing_tagged_is_fresh_before_the_tag_state_is_loaded() {
        let mut e = shared_engine();
        // The process's first Redis command, at NOW.
        let _ = e.admit(crate::guard::OpKind::Read, Millis(NOW));
        let old = stored(
            &e,
            "k",
            SetInput {
                timestamp: Millis(NOW - 10.0),
                made_at: None,
                ..input(&["t"], &[1])
            },
        );
        let untagged = stored(
            &e,
            "u",
            SetInput {
                timestamp: Millis(NOW - 10.0),
                made_at: None,
                ..input(&[], &[1])
            },
        );
        let verdict = |e: &Engine, key: &str, v: &[u8], soft: &[&str], at: f64| {
            e.inspect(key, v, v.len(), soft, Millis(at)).verdict
        };
        // Redis answers but the mirror is empty: a miss, whatever the tags.
        assert_eq!(verdict(&e, "k", &old, &[], NOW + 1.0), Verdict::Expired);
        assert_eq!(
            verdict(&e, "u", &untagged, &["_N_T_/p"], NOW + 1.0),
            Verdict::Expired
        );
        assert_eq!(verdict(&e, "u", &untagged, &[], NOW + 1.0), Verdict::Fresh);
        assert_eq!(
            e.get_expiration(&["_N_T_/p"], Millis(NOW + 1.0)),
            Millis(f64::MAX)
        );
        assert_eq!(e.get_expiration(&[], Millis(NOW + 1.0)), Millis::ZERO);
        // Redis out of reach: what this process made since it started is judged by what it
        // knows; what is older is still a miss.
        trip(&mut e, NOW + 2.0);
        let own = stored(
            &e,
            "n",
            SetInput {
                timestamp: Millis(NOW + 1.0),
                made_at: None,
                ..input(&["t"], &[1])
            },
        );
        assert_eq!(verdict(&e, "k", &old, &[], NOW + 3.0), Verdict::Expired);
        assert_eq!(verdict(&e, "n", &own, &[], NOW + 3.0), Verdict::Fresh);
        assert_eq!(e.get_expiration(&["t"], Millis(NOW + 3.0)), Millis(NOW));
        // Loaded: judged by the tags alone.
        load(&mut e, "E", "1", &[], NOW + 4.0);
        assert_eq!(verdict(&e, "k", &old, &[], NOW + 5.0), Verdict::Fresh);
        assert_eq!(e.get_expiration(&["t"], Millis(NOW + 5.0)), Millis::ZERO);
    }

    #[test]
    fn own_tier_copies_are_dropped_once_redis_answers() {
        let mut e = shared_engine();
        assert!(e.lru_mut().insert("k", 10, Millis(NOW + 1e6)).is_empty());
        assert!(e.lru_mut().insert("w", 10, Millis(NOW + 1e6)).is_empty());
        trip(&mut e, NOW);
        assert!(e.lru_mut().mark_local("k"));
        // Redis is out of reach: this process's own copy is all there is.
        assert!(e.tier_touch("k", Millis(NOW + 1.0)));
        // Redis answers again (the probe succeeds): the fleet's value wins.
        let probe_at = NOW + e.config().breaker().open_ms;
        match e.admit(crate::guard::OpKind::Read, Millis(probe_at)) {
            crate::guard::Admission::Send { permit, .. } => {
                e.report(
                    permit,
                    crate::breaker::CallResult::Success,
                    Millis(probe_at),
                );
            }
            crate::guard::Admission::Skip => panic!("no probe admitted"),
        }
        assert!(!e.tier_touch("k", Millis(probe_at + 1.0)));
        assert!(!e.lru().contains("k"));
        assert!(e.tier_touch("w", Millis(probe_at + 1.0)));
        // A copy kept for outages only: never served while Redis answers, and kept for the
        // next outage.
        assert!(e.lru_mut().mark_outage_only("w"));
        assert!(!e.tier_touch("w", Millis(probe_at + 2.0)));
        assert!(e.lru().contains("w"));
        trip(&mut e, probe_at + 3.0);
        assert!(e.tier_touch("w", Millis(probe_at + 4.0)));
    }

    #[test]
    fn lost_records_go_back_in_batches_until_acknowledged() {
        let mut e = shared_engine();
        let record = "0,10,0,0,10";
        let mut items = Vec::new();
        for i in 0..300 {
            items.push(format!("t{i}"));
            items.push(record.to_owned());
        }
        load(&mut e, "E", "1", &items, 20.0);
        assert_eq!(e.plan_resend("c").unwrap(), None);
        // Redis comes back empty.
        load(&mut e, "F", "0", &[], 30.0);
        assert_eq!(e.resend_len(), 300);
        let first = e.plan_resend("c").unwrap().unwrap();
        assert_eq!(first.script.name, "tag_merge");
        assert_eq!(first.args.len(), 1 + 2 * crate::tags::MAX_RESEND_BATCH);
        // Not acknowledged: the same batch again.
        assert_eq!(e.plan_resend("c").unwrap().unwrap().args, first.args);
        e.ack_resend();
        assert_eq!(e.resend_len(), 300 - crate::tags::MAX_RESEND_BATCH);
        let second = e.plan_resend("c").unwrap().unwrap();
        assert_eq!(
            second.args.len(),
            1 + 2 * (300 - crate::tags::MAX_RESEND_BATCH)
        );
        e.ack_resend();
        assert_eq!(e.plan_resend("c").unwrap(), None);
        assert_eq!(e.plan_resend(""), Err(PlanError::InvalidEpoch));
    }

    #[test]
    fn a_record_only_queued_for_redis_is_given_back_but_not_counted_lost() {
        let mut e = shared_engine();
        // Redis has no tag state yet (epoch ''): nothing revalidated so far.
        load(&mut e, "", "0", &[], 20.0);
        // Redis is out of reach: "q" is applied here and queued, never sent.
        e.queue_tag_update(&["q"], &Revalidation::Expire, Millis(25.0))
            .unwrap();
        // Redis answers, still without a tag state: it lacks "q", but lost nothing.
        load(&mut e, "", "0", &[], 30.0);
        assert_eq!(e.resend_len(), 1, "given back, unless the queue sends it");
        assert_eq!(e.tag_records_lost(), 0, "no state was replaced");
        // The queue sent it: nothing is left to give back. Then Redis is flushed: the new
        // state lacks it.
        let seq = e.outbox().head().map(|u| u.seq).unwrap();
        assert!(e.ack_outbox(seq));
        assert_eq!(e.resend_len(), 0, "sent once, not merged back as well");
        assert_eq!(e.plan_resend("c").unwrap(), None);
        load(
            &mut e,
            "E",
            "1",
            &["q".to_owned(), "0,25,0,0,25".to_owned()],
            35.0,
        );
        assert_eq!(e.resend_len(), 0, "Redis has it");
        load(&mut e, "F", "0", &[], 40.0);
        assert_eq!(e.tag_records_lost(), 1);
        // Answered in full again at version 0: the same loss, not counted again.
        load(&mut e, "F", "0", &[], 45.0);
        assert_eq!(e.tag_records_lost(), 1);
    }

    /// Writes refused (OOM under `noeviction`) while refreshes answer a state that lacks the
    /// queued revalidations: the comparison queues them to be given back, and the outbox sends
    /// them too. Before, each reached Redis twice once writes were accepted (the update, then
    /// the merge: one more version every instance loaded). A merge planned before the send
    /// (it failed, and is planned again until acknowledged) loses the records the send covers.
    /// Only tests such as this one see the rule (`TagSync::sent`): the freshness simulation
    /// cannot, as a record given back twice is merged over one Redis holds and covers, which
    /// changes no verdict (it costs a version more for every instance to load).
    #[test]
    fn a_queued_revalidation_the_outbox_sends_is_not_given_back_again() {
        let mut e = shared_engine();
        load(&mut e, "", "0", &[], 20.0);
        e.queue_tag_update(&["q"], &Revalidation::Expire, Millis(25.0))
            .unwrap();
        let stale = Revalidation::Stale {
            expire_seconds: None,
        };
        e.queue_tag_update(&["r"], &stale, Millis(26.0)).unwrap();
        load(&mut e, "", "0", &[], 30.0);
        assert_eq!(e.resend_len(), 2);
        // The merge went out first and failed: planned again until acknowledged.
        assert!(e.plan_resend("c").unwrap().is_some());
        let seq = e.outbox().head().map(|u| u.seq).unwrap();
        assert!(e.ack_outbox(seq));
        assert_eq!(e.resend_len(), 1, "q was sent; r waits for its own send");
        let seq = e.outbox().head().map(|u| u.seq).unwrap();
        assert!(e.ack_outbox(seq));
        assert_eq!(e.resend_len(), 0);
        assert_eq!(e.plan_resend("c").unwrap(), None);
    }

    /// A record the queue's revalidation does not cover (an expiry Redis lost, then a
    /// profile revalidation of the same tag queued) is still given back after the send.
    #[test]
    fn a_lost_record_the_queued_revalidation_does_not_cover_is_still_given_back() {
        let mut e = shared_engine();
        follow_b_expired_at_10(&mut e);
        let stale = Revalidation::Stale {
            expire_seconds: None,
        };
        e.queue_tag_update(&["b"], &stale, Millis(25.0)).unwrap();
        load(&mut e, "F", "0", &[], 30.0);
        let seq = e.outbox().head().map(|u| u.seq).unwrap();
        assert!(e.ack_outbox(seq));
        assert_eq!(e.resend_len(), 1, "the expiry at 10 is given back");
        assert!(e.plan_resend("c").unwrap().is_some());
    }

    /// One tag revalidated twice while queued, stale then expired: neither update alone
    /// covers the record the comparison queued (stale at 25 and expired at 27), so it is
    /// still merged back after both are sent, once: one more version, nothing lost.
    #[test]
    fn a_tag_revalidated_twice_in_two_ways_while_queued_is_merged_back_once() {
        let mut e = shared_engine();
        load(&mut e, "", "0", &[], 20.0);
        let stale = Revalidation::Stale {
            expire_seconds: None,
        };
        e.queue_tag_update(&["q"], &stale, Millis(25.0)).unwrap();
        e.queue_tag_update(&["q"], &Revalidation::Expire, Millis(27.0))
            .unwrap();
        load(&mut e, "", "0", &[], 30.0);
        assert_eq!(e.resend_len(), 1);
        for _ in 0..2 {
            let seq = e.outbox().head().map(|u| u.seq).unwrap();
            assert!(e.ack_outbox(seq));
        }
        assert_eq!(e.resend_len(), 1, "neither update covers both");
        let call = e.plan_resend("c").unwrap().unwrap();
        assert!(call.args.iter().any(|a| a == "q"), "{:?}", call.args);
    }

    /// The outbox's update reached a state that a flush replaced before its reply came back
    /// (the reply on one connection, a refresh on another): the refresh answered the new
    /// state, which lacks it, and queued it to be given back; the acknowledgement takes it off
    /// that queue. Its reply names the state that is gone, so the next refresh loads the new
    /// one again, and the comparison queues the record again: nothing is lost for good.
    #[test]
    fn an_update_acknowledged_from_a_state_replaced_since_is_given_back_after_all() {
        let mut e = shared_engine();
        load(&mut e, "E", "1", &[], 20.0);
        e.queue_tag_update(&["q"], &Revalidation::Expire, Millis(25.0))
            .unwrap();
        let (seq, _) = e.plan_outbox_head("c").unwrap().unwrap();
        // Applied to state E at version 2; then a flush, and another instance makes state F.
        let other = ["x".to_owned(), "0,10,0,0,10".to_owned()];
        load(&mut e, "F", "1", &other, 30.0);
        assert_eq!(e.resend_len(), 1, "F lacks q");
        assert!(e.ack_outbox(seq));
        assert_eq!(e.resend_len(), 0, "taken off: it reached Redis");
        e.apply_update_reply(&netstring::encode(["E", "2", "c", "0"]))
            .unwrap();
        // The reply named another state than F: the next refresh names none.
        assert_eq!(e.plan_tag_refresh().args[0], "");
        load(&mut e, "F", "1", &other, 31.0);
        assert_eq!(e.resend_len(), 1, "F still lacks q: given back after all");
        let call = e.plan_resend("c2").unwrap().unwrap();
        assert!(call.args.iter().any(|a| a == "q"), "{:?}", call.args);
    }

    /// A tag Redis had a record of, revalidated again while Redis is out of reach
    /// (queued), then lost by a flush: Redis lost its record (an expiry at 10, which the
    /// queued profile revalidation does not cover), so the loss is counted.
    #[test]
    fn a_record_redis_had_is_counted_lost_though_the_tag_is_queued_again() {
        let mut e = shared_engine();
        follow_b_expired_at_10(&mut e);
        let stale = Revalidation::Stale {
            expire_seconds: None,
        };
        e.queue_tag_update(&["b"], &stale, Millis(25.0)).unwrap();
        load(&mut e, "F", "0", &[], 30.0);
        assert_eq!(e.resend_len(), 1, "b's record is given back");
        assert_eq!(e.tag_records_lost(), 1, "Redis lost b's expiry at 10");
    }

    /// TAG_REFRESH answers in full under the same epoch when the reader is over
    /// 1024 versions behind (lua/tag_refresh.lua `reused`: the id of its version is gone), a
    /// state that replaced nothing. `replaced` (tags.rs, `self.version > 0`) says it did: a
    /// revalidation of this process not yet applied (queued while Redis was out of reach) is
    /// counted, and logged as "tag state in Redis was replaced (flushed, restarted empty,
    /// restored or failed over)".
    #[test]
    fn a_full_answer_to_a_reader_far_behind_replaced_nothing() {
        let mut e = shared_engine();
        let b = ["b".to_owned(), "0,10,0,0,10".to_owned()];
        load(&mut e, "E", "1", &b, 20.0);
        // Redis is out of reach for this process: "q" is applied here and queued.
        e.queue_tag_update(&["q"], &Revalidation::Expire, Millis(25.0))
            .unwrap();
        // Meanwhile the fleet made 2000 more versions; the same state, answered in full.
        load(&mut e, "E", "2001", &b, 30.0);
        assert_eq!(e.tag_records_lost(), 0, "the same state: nothing replaced");
    }

    /// The merge giving a lost record back is in flight (taken out of the mirror's
    /// queue, `plan_resend`) when the state at version 0 is answered in full again: the same
    /// loss, counted once.
    #[test]
    fn a_loss_whose_merge_is_in_flight_is_not_counted_again() {
        let mut e = shared_engine();
        follow_b_expired_at_10(&mut e);
        load(&mut e, "F", "0", &[], 30.0);
        assert_eq!(e.tag_records_lost(), 1);
        assert!(e.plan_resend("c").unwrap().is_some(), "the merge goes out");
        load(&mut e, "F", "0", &[], 31.0);
        assert_eq!(e.tag_records_lost(), 1, "one loss, counted once");
        assert_eq!(e.resend_len(), 1, "still one record to give back");
    }

    /// The merge giving a lost record back is in flight when another state replaces the
    /// one that lost it (a second flush or failover): the record is the same loss, counted
    /// once, as it is while it still waits in the queue.
    #[test]
    fn a_loss_whose_merge_is_in_flight_is_not_counted_again_by_a_replacement() {
        for in_flight in [false, true] {
            let mut e = shared_engine();
            follow_b_expired_at_10(&mut e);
            load(&mut e, "F", "0", &[], 30.0);
            assert_eq!(e.tag_records_lost(), 1);
            if in_flight {
                assert!(e.plan_resend("c").unwrap().is_some(), "the merge goes out");
            }
            load(&mut e, "G", "0", &[], 31.0);
            assert_eq!(
                e.tag_records_lost(),
                1,
                "merge in flight: {in_flight}: one loss, counted once"
            );
            assert_eq!(e.resend_len(), 1, "still one record to give back");
        }
    }

    /// The merge giving a lost record back is in flight when the tag is revalidated again
    /// here and another state replaces the one that lost it: the newer record is queued
    /// besides the batch in flight (it does not cover it). One tag: the count the host's lines
    /// give as "n waiting", one per tag, is 1, as is the count of tags the last batches name.
    #[test]
    fn a_tag_queued_again_beside_its_merge_in_flight_is_one_record_waiting() {
        let mut e = shared_engine();
        follow_b_expired_at_10(&mut e);
        load(&mut e, "F", "0", &[], 30.0);
        assert!(e.plan_resend("c").unwrap().is_some(), "the merge goes out");
        e.queue_tag_update(&["b"], &Revalidation::Expire, Millis(32.0))
            .unwrap();
        load(&mut e, "G", "0", &[], 33.0);
        assert_eq!(e.resend_records(), 1, "one tag waits to be given back");
        assert!(e.resend_len() >= 1, "a merge is due");
    }

    /// Revalidations Redis never had, because this process dropped them (the outbox
    /// full, or Redis refused them for a permission), counted as lacking from a state that
    /// replaced the one followed (the log line says "lacks", not "lost by Redis").
    #[test]
    fn a_revalidation_dropped_unsent_is_not_counted_lost_by_redis() {
        let mut e = Engine::new(Config {
            prefix: "fc".into(),
            deployment: "d1".into(),
            outbox_capacity: 1,
            ..Config::default()
        })
        .unwrap();
        load(&mut e, "E", "1", &[], 20.0);
        // Redis out of reach: "q" queued, then pushed out by "r" (the host logs the drop).
        e.queue_tag_update(&["q"], &Revalidation::Expire, Millis(21.0))
            .unwrap();
        let dropped = e
            .queue_tag_update(&["r"], &Revalidation::Expire, Millis(22.0))
            .unwrap();
        assert_eq!(dropped.map(|u| u.tags), Some(vec!["q".to_owned()]));
        // "r" refused for a permission (dropped too).
        let seq = e.outbox().head().map(|u| u.seq).unwrap();
        assert!(matches!(
            e.refuse_outbox(seq, "NOPERM this user has no permissions", Millis(23.0)),
            Refusal::Dropped { .. }
        ));
        // A full state after a restart of Redis that had neither.
        load(&mut e, "F", "0", &[], 30.0);
        // Counted: the log line says the new state lacks records this instance knows of,
        // not that Redis had them (TagMirror::lost); q, queued to be merged back when it was
        // dropped, is not among them. q and r hold here and are given back.
        assert_eq!(e.tag_records_lost(), 1);
        assert_eq!(e.resend_len(), 2);
    }

    /// An engine following a state whose outbox holds `capacity` revalidations.
    fn following_with_outbox(capacity: u32, max_tags: u32) -> Engine {
        let mut e = Engine::new(Config {
            prefix: "fc".into(),
            deployment: "d1".into(),
            outbox_capacity: capacity,
            tag_mirror_max_tags: max_tags,
            ..Config::default()
        })
        .unwrap();
        load(&mut e, "E", "1", &[], 20.0);
        e
    }

    /// A revalidation pushed out of a full outbox is merged back, with what it wrote, though
    /// no state was lost: before, it held on this process only while Redis kept serving the
    /// rest of the fleet what it invalidated.
    #[test]
    fn a_revalidation_pushed_out_of_the_outbox_is_merged_back() {
        let mut e = following_with_outbox(1, 100);
        e.queue_tag_update(&["q"], &Revalidation::Expire, Millis(21.0))
            .unwrap();
        let dropped = e
            .queue_tag_update(&["r"], &Revalidation::Expire, Millis(22.0))
            .unwrap();
        assert!(dropped.is_some());
        assert_eq!(e.resend_len(), 1);
        let merge = e.plan_resend("E").unwrap().expect("a merge is planned");
        assert_eq!(merge.args[1], "q");
        let mut record = TagRecord::default();
        record.apply(&Revalidation::Expire, Millis(21.0));
        assert_eq!(merge.args[2], record.encode());
        // Not counted as a loss of Redis's: nothing says Redis had it.
        assert_eq!(e.tag_records_lost(), 0);
    }

    /// Past the mirror's bound of exact records, what the dropped revalidations wrote is merged
    /// back under the folded record: the queue stays bounded and nothing is left out.
    #[test]
    fn merged_back_unsent_revalidations_fold_past_the_bound() {
        let mut e = following_with_outbox(1, 2);
        for (i, tag) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            e.queue_tag_update(&[tag], &Revalidation::Expire, Millis(21.0 + i as f64))
                .unwrap();
        }
        // a, b, c and d were pushed out: a and b exact, c and d under the folded record.
        assert_eq!(e.resend_len(), 3);
        let merge = e.plan_resend("E").unwrap().expect("a merge is planned");
        let tags: Vec<&str> = merge.args[1..]
            .iter()
            .step_by(2)
            .map(String::as_str)
            .collect();
        assert_eq!(tags, ["a", "b", FOLDED_TAG]);
        let mut folded = TagRecord::default();
        folded.apply(&Revalidation::Expire, Millis(24.0));
        assert_eq!(merge.args[6], folded.encode());
    }

    /// The tags a planned merge gives back, and their records.
    fn merged(call: &ScriptCall) -> Vec<(String, String)> {
        call.args[1..]
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect()
    }

    /// A later revalidation of the same tag still queued when one is pushed out: its send
    /// takes the record merged back off the queue only when what it wrote covers it (a stale
    /// revalidation does not cover an expiry; a later expiry does).
    #[test]
    fn a_merged_back_record_leaves_the_queue_only_for_a_send_that_covers_it() {
        let mut e = following_with_outbox(2, 100);
        let stale = Revalidation::Stale {
            expire_seconds: None,
        };
        e.queue_tag_update(&["q"], &Revalidation::Expire, Millis(21.0))
            .unwrap();
        e.queue_tag_update(&["q"], &stale, Millis(30.0)).unwrap();
        e.queue_tag_update(&["q"], &Revalidation::Expire, Millis(40.0))
            .unwrap();
        // The expiry at 21 was pushed out; the stale one at 30 is sent.
        let (seq, _) = e.plan_outbox_head("c").unwrap().unwrap();
        assert!(e.ack_outbox(seq));
        assert_eq!(
            e.resend_len(),
            1,
            "a stale revalidation does not cover an expiry"
        );
        // A merge planned (and failed) before the expiry at 40 is sent keeps it too.
        let planned = e.plan_resend("E").unwrap().unwrap();
        let mut at21 = TagRecord::default();
        at21.apply(&Revalidation::Expire, Millis(21.0));
        assert_eq!(merged(&planned), [("q".to_owned(), at21.encode())]);
        let (seq, _) = e.plan_outbox_head("c").unwrap().unwrap();
        assert!(e.ack_outbox(seq));
        assert_eq!(
            e.resend_len(),
            0,
            "Redis holds an expiry at 40: it covers the one at 21"
        );
        assert_eq!(e.plan_resend("E").unwrap(), None);
    }

    /// The outbox's head was sent and its reply had not come when a revalidation pushed it
    /// out: its acknowledgement no longer finds it at the head, and what it wrote is merged
    /// back all the same (once more, harmless: a merge never weakens a record).
    #[test]
    fn a_head_pushed_out_while_its_send_is_in_flight_is_still_merged_back() {
        let mut e = following_with_outbox(1, 100);
        e.queue_tag_update(&["q"], &Revalidation::Expire, Millis(21.0))
            .unwrap();
        let (seq, _) = e.plan_outbox_head("c").unwrap().unwrap();
        e.queue_tag_update(&["r"], &Revalidation::Expire, Millis(22.0))
            .unwrap();
        assert!(!e.ack_outbox(seq), "no longer the head");
        assert_eq!(e.outbox().len(), 1, "r still queued");
        assert_eq!(e.resend_len(), 1, "q still merged back");
    }

    /// Records merged back wait in one queue with those a lost state lacks; however many
    /// revalidations a full outbox pushes out, with a merge in flight, and whatever tags they
    /// name, it holds at most `tagMirrorMaxTags` exact records plus the folded one (and the
    /// batch in flight): nothing a dropped revalidation wrote is left out of it.
    #[test]
    fn the_queue_of_records_merged_back_stays_bounded_with_a_merge_in_flight() {
        let max = 4;
        let mut e = following_with_outbox(1, max);
        // Revalidation i of tags t(2i) and t(2i+1), made at 21 + i.
        let revalidate = |e: &mut Engine, i: u32| {
            let (a, b) = (format!("t{}", 2 * i), format!("t{}", 2 * i + 1));
            e.queue_tag_update(
                &[&a, &b],
                &Revalidation::Expire,
                Millis(21.0 + f64::from(i)),
            )
            .unwrap();
        };
        for i in 0..10u32 {
            revalidate(&mut e, i);
        }
        // A merge goes out (and is planned again until acknowledged) while more are pushed out.
        let in_flight = merged(&e.plan_resend("E").unwrap().unwrap());
        for i in 10..200u32 {
            revalidate(&mut e, i);
            assert!(e.mirror().resend_len() <= max as usize + 1);
        }
        e.ack_resend();
        let rest = merged(&e.plan_resend("E").unwrap().unwrap());
        assert!(rest.len() <= max as usize + 1, "{}", rest.len());
        // Every pushed-out revalidation is in one of the two merges, by its tag or folded.
        let mut all: Vec<(String, String)> = in_flight;
        all.extend(rest);
        let folded = all
            .iter()
            .filter(|(t, _)| t == FOLDED_TAG)
            .map(|(_, r)| TagRecord::parse(r.as_bytes()).unwrap())
            .fold(TagRecord::default(), |mut m, r| {
                m.merge(&r);
                m
            });
        for i in 0..199u32 {
            let mut want = TagRecord::default();
            want.apply(&Revalidation::Expire, Millis(21.0 + f64::from(i)));
            for t in [format!("t{}", 2 * i), format!("t{}", 2 * i + 1)] {
                let exact = all
                    .iter()
                    .find(|(x, _)| *x == t)
                    .map(|(_, r)| TagRecord::parse(r.as_bytes()).unwrap());
                assert!(
                    exact.is_some_and(|r| r.covers(&want)) || folded.covers(&want),
                    "{t} left out"
                );
            }
        }
    }

    /// What the folded record merged back holds judges no entry made after the last of the
    /// revalidations folded into it, at any time: a scheduled expiry far off (a year) merged
    /// with one due (a second) expires, once due, what either made stale, no more (the stronger
    /// of the two, as `TagRecord::merge` always takes), and nothing made after them.
    #[test]
    fn the_folded_record_merged_back_spares_every_entry_made_after_what_it_holds() {
        let mut e = following_with_outbox(1, 1);
        let year = Revalidation::Stale {
            expire_seconds: Some(31_536_000.0),
        };
        let second = Revalidation::Stale {
            expire_seconds: Some(1.0),
        };
        // x is merged back by its tag (the bound is one record); the others fold.
        e.queue_tag_update(&["x"], &Revalidation::Expire, Millis(500.0))
            .unwrap();
        e.queue_tag_update(&["a"], &second, Millis(1_000.0))
            .unwrap();
        e.queue_tag_update(&["b"], &year, Millis(2_000.0)).unwrap();
        e.queue_tag_update(&["c"], &year, Millis(3_000.0)).unwrap();
        e.queue_tag_update(&["d"], &Revalidation::Expire, Millis(4_000.0))
            .unwrap();
        let call = e.plan_resend("E").unwrap().unwrap();
        let all = merged(&call);
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all.iter().any(|(t, _)| t == "x"), "{all:?}");
        let (_, record) = all.iter().find(|(t, _)| t == FOLDED_TAG).unwrap();
        let folded = TagRecord::parse(record.as_bytes()).unwrap();
        for now in [3_000.0, 3_500.0, 4_000.0, 10_000.0, 1e12, 1e15] {
            assert_eq!(
                folded.freshness(Millis(3_001.0), Millis(now)),
                Freshness::Fresh
            );
        }
        // Made before c's revalidation: b's and c's expiry a year off merged with a's, due at
        // 2,000 ms, expires them from then on (stronger than each alone; one regeneration).
        assert_eq!(
            folded.freshness(Millis(1_500.0), Millis(3_000.0)),
            Freshness::Expired
        );
        assert_eq!(
            folded.freshness(Millis(2_500.0), Millis(3_000.0)),
            Freshness::Expired
        );
    }
}

#[cfg(test)]
mod guard_tests;

#[cfg(test)]
mod seed_tests;

#[cfg(test)]
mod stats_tests;

#[cfg(test)]
mod incremental_tests;

#[cfg(test)]
mod lease_tests;

#[cfg(test)]
mod outbox_tests;

#[cfg(test)]
mod regen_tests;

#[cfg(test)]
mod next_tests;

#[cfg(test)]
mod read_tests;

#[cfg(test)]
mod page_push_tests;

#[cfg(test)]
mod write_tests;

#[cfg(test)]
mod timeout_tests;

#[cfg(test)]
mod first_step_tests;
