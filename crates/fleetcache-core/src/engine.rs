//! The engine: the one owner of a process's cache state.
//!
//! [`Engine`] holds every component (configuration, namespace, tag mirror, in-process index,
//! breaker, outbox, lease table, regeneration table, counters) and is the only type that
//! knows them all. Its methods are delegations: each asks the components, which never reach
//! back into the engine, and records the outcome values they return in [`Stats`]. Every
//! method is synchronous, takes the current time as an argument, and performs no I/O.

use std::borrow::Cow;
use std::cell::Cell;

use crate::breaker::{Breaker, BreakerState, CallResult, Permit};
use crate::config::Config;
use crate::envelope::{decode_header, encode_header, EntryKind, EntryMeta};
use crate::error::{ConfigError, DecodeError, PlanError, ProtocolError};
use crate::guard::{self, Admission, OpKind};
use crate::incremental::{
    stale_presentation, Descriptor, IncrementalPlanError, IncrementalSet, IncrementalVerdict,
    LayoutError, Serve, ValueKind, SAME_REVALIDATION_WINDOW_MS,
};
use crate::keys::{Interface, Namespace, TagKeys};
use crate::lease::{
    self, Acquired, Consumer, EntryWrite, Flight, Found, LeaseConfig, LeaseTable, Step,
};
use crate::lru::LruIndex;
use crate::outbox::{missing_permission, Outbox, PendingUpdate, Refusal};
use crate::plan::{surface_of, write_outcome, Inspection, SetInput, SetPlan, TierUse, Verdict};
use crate::regen;
use crate::scripts::{
    check_epoch_candidate, tag_merge_args, tag_refresh_args, tag_update_args, ScriptCall,
    TAG_MERGE, TAG_PAGE, TAG_REFRESH, TAG_UPDATE,
};
use crate::seed;
use crate::stats::{
    Gauges, LeaseEvent, LookupOutcome, RedisResult, Stats, StatsSnapshot, Surface, WriteOutcome,
};
use crate::tags::{
    admit_tags, canonical_tag, DroppedTags, Freshness, RefreshSummary, Revalidation, TagMirror,
    TagRecord, MAX_ENTRY_TAGS,
};
use crate::time::{duration_seconds_to_ttl_ms, is_unlimited, Millis};

/// How often the mirror is pruned by age, at most (ms): pruning walks every record.
pub(crate) const PRUNE_EVERY_MS: f64 = 60_000.0;

/// One process's engine: namespace, configuration, tag mirror and in-process index.
#[derive(Clone, Debug)]
pub struct Engine {
    config: Config,
    namespace: Namespace,
    tag_keys: TagKeys,
    mirror: TagMirror,
    lru: LruIndex,
    /// Health of the Redis connection (issue 5; methods in `guard.rs`).
    pub(crate) breaker: crate::breaker::Breaker,
    /// Revalidations on their way to Redis (issue 5; methods in `guard.rs`).
    pub(crate) outbox: crate::outbox::Outbox,
    /// Regeneration leases this process holds (issue 4; methods in `lease.rs`).
    pub(crate) leases: crate::lease::LeaseTable,
    /// Where this process's singular-handler regenerations began (issue 13; `regen.rs`).
    pub(crate) regenerations: crate::regen::Regenerations,
    /// Stale `'use cache'` entries handed out, by tag (issue 13; `regen.rs`).
    pub(crate) stale_handouts: crate::regen::StaleHandouts,
    /// What the engine decided, counted (issue 7; see `stats.rs`).
    pub(crate) stats: Stats,
    /// Tags dropped from the last list a plan was given (see [`Engine::dropped_tags`]).
    dropped_tags: Cell<DroppedTags>,
    update_sha1: String,
    refresh_sha1: String,
    /// The first time the host passed in (its first Redis command): entries this process
    /// made itself are newer. See [`Engine::untrusted_before`].
    started: Option<Millis>,
    /// Records being merged back into Redis ([`Engine::plan_resend`]).
    resending: Vec<(String, TagRecord)>,
    /// When the mirror was last pruned by age.
    pruned_at: Millis,
}

// from plan.rs
impl Engine {
    /// Validates `config` and builds an engine with an empty mirror and index.
    pub fn new(config: Config) -> Result<Engine, ConfigError> {
        config.validate()?;
        let namespace =
            Namespace::new(&config.prefix, &config.deployment).map_err(|_| ConfigError::Prefix)?;
        Ok(Engine {
            tag_keys: namespace.tag_keys(),
            namespace,
            mirror: TagMirror::new(),
            lru: LruIndex::new(config.memory_bytes),
            breaker: crate::breaker::Breaker::new(config.breaker()),
            outbox: crate::outbox::Outbox::new(config.outbox_capacity as usize),
            leases: crate::lease::LeaseTable::new(),
            regenerations: crate::regen::Regenerations::new(),
            stale_handouts: crate::regen::StaleHandouts::default(),
            stats: Stats::default(),
            dropped_tags: Cell::new(DroppedTags::default()),
            update_sha1: TAG_UPDATE.sha1(),
            refresh_sha1: TAG_REFRESH.sha1(),
            started: None,
            resending: Vec::new(),
            pruned_at: Millis::ZERO,
            config,
        })
    }

    /// Tags dropped, for being longer than [`crate::tags::MAX_TAG_BYTES`], from the list the
    /// last entry write or revalidation was planned with: the host logs it, once per list.
    pub fn dropped_tags(&self) -> DroppedTags {
        self.dropped_tags.get()
    }

    /// Every tag list entering the engine for a write or a revalidation passes here: the
    /// canonical forms, over-long tags dropped (and noted for [`Engine::dropped_tags`]).
    pub(crate) fn admit_tags<'a>(&self, tags: &[&'a str]) -> Vec<Cow<'a, str>> {
        let admitted = admit_tags(tags);
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
        self.namespace.entry_key(iface, cache_key)
    }

    /// Plans a write: the key, the header to put before the payload, and the TTL.
    pub fn plan_set(
        &self,
        iface: &Interface<'_>,
        cache_key: &str,
        entry: SetInput<'_>,
    ) -> Result<SetPlan, PlanError> {
        let plan = self.plan_set_uncounted(iface, cache_key, entry);
        self.stats
            .record_write(surface_of(entry.kind), write_outcome(&plan));
        plan
    }

    fn plan_set_uncounted(
        &self,
        iface: &Interface<'_>,
        cache_key: &str,
        entry: SetInput<'_>,
    ) -> Result<SetPlan, PlanError> {
        if iface.kind() != entry.kind {
            return Err(PlanError::KindMismatch);
        }
        let tags = self.admit_tags(entry.tags);
        if tags.len() > MAX_ENTRY_TAGS {
            return Err(PlanError::TagLimit);
        }
        let meta = EntryMeta {
            kind: entry.kind,
            timestamp: entry.timestamp,
            revalidate: entry.revalidate,
            expire: entry.expire,
            stale: entry.stale,
            key: cache_key.to_owned(),
            tags: tags.into_iter().map(Cow::into_owned).collect(),
            meta: entry.meta.to_vec(),
            parts: entry.parts.to_vec(),
        };
        let header = encode_header(&meta)?;
        // encode_header has checked that the parts add up within u32.
        let payload: u64 = entry.parts.iter().map(|p| u64::from(*p)).sum();
        let size = (header.len() as u64).saturating_add(payload);
        if size > self.config.max_entry_bytes {
            return Err(PlanError::TooLarge {
                size,
                max: self.config.max_entry_bytes,
            });
        }
        Ok(SetPlan {
            key: self.entry_key(iface, cache_key),
            header,
            ttl_ms: self.ttl_ms(&entry),
        })
    }

    /// Redis lifetime of an entry. A finite `expire` counts from the entry's creation, not
    /// from the write, so an entry is never kept past the instant Next would call it a miss.
    fn ttl_ms(&self, e: &SetInput<'_>) -> Option<u64> {
        if e.revalidate == 0.0 {
            return None;
        }
        let max = self.config.max_ttl_seconds;
        let seconds = if is_unlimited(e.expire) {
            let no_revalidate = is_unlimited(e.revalidate);
            match e.kind {
                EntryKind::Incremental if no_revalidate => self.config.default_ttl_seconds,
                _ => max,
            }
        } else {
            let remaining_ms = e.timestamp.0 + e.expire * 1000.0 - e.now.0;
            remaining_ms / 1000.0
        };
        match duration_seconds_to_ttl_ms(seconds, max) {
            0 => None,
            ms => Some(ms),
        }
    }

    /// Judges a stored value read for `cache_key`.
    ///
    /// `prefix` is the start of the value, `total_len` its length, `soft_tags` the request's
    /// implicit tags. Checks, in order: the envelope, the stored key, the entry's own
    /// `expire`, then its tags and the soft tags against the mirror. Time-based
    /// `revalidate` is left to Next, which applies it to whatever the handler returns.
    /// Counted as a `'use cache'` lookup unless the entry says otherwise.
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
    pub(crate) fn judge(
        &self,
        cache_key: &str,
        prefix: &[u8],
        total_len: usize,
        soft_tags: &[&str],
        now: Millis,
    ) -> Inspection {
        let header = match decode_header(prefix, total_len) {
            Ok(header) => header,
            Err(DecodeError::NeedMore { header_len }) => {
                return Inspection {
                    verdict: Verdict::NeedMore(header_len),
                    header: None,
                }
            }
            Err(e) => {
                return Inspection {
                    verdict: Verdict::Corrupt(e),
                    header: None,
                }
            }
        };
        let m = &header.meta;
        let verdict = if m.key != cache_key {
            Verdict::KeyMismatch
        } else if !is_unlimited(m.expire) && now.0 > m.timestamp.plus_seconds(m.expire).0 {
            Verdict::Expired
        } else if (!m.tags.is_empty() || !soft_tags.is_empty())
            && self
                .untrusted_before(now)
                .is_some_and(|before| m.timestamp <= before)
        {
            // No tag state to prove it fresh by (see `untrusted_before`): a miss.
            Verdict::Expired
        } else {
            // Borrowed, without allocating, for every tag Next 16.2.7 and later produce.
            let soft: Vec<Cow<'_, str>> = soft_tags.iter().map(|t| canonical_tag(t)).collect();
            let tags = m
                .tags
                .iter()
                .map(String::as_str)
                .chain(soft.iter().map(AsRef::as_ref));
            match self.mirror.evaluate(m.timestamp, tags, now) {
                Freshness::Fresh => Verdict::Fresh,
                Freshness::Stale => Verdict::Stale,
                Freshness::Expired => Verdict::Expired,
            }
        };
        Inspection {
            verdict,
            header: Some(header),
        }
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
        if tags.is_empty() {
            return Err(PlanError::NoTags);
        }
        let admitted = self.admit_tags(tags);
        if admitted.is_empty() {
            return Err(PlanError::TagLimit);
        }
        let tags: Vec<&str> = admitted.iter().map(AsRef::as_ref).collect();
        check_epoch_candidate(epoch_candidate)?;
        if !(now.0.is_finite() && now.0 >= 0.0) {
            return Err(PlanError::InvalidTime);
        }
        self.mirror.apply_local(&tags, rev, now);
        self.stats
            .record_revalidation(matches!(rev, Revalidation::Stale { .. }));
        Ok(ScriptCall {
            script: &TAG_UPDATE,
            sha1: self.update_sha1.clone(),
            keys: self.tag_keys.to_vec(),
            args: tag_update_args(
                now,
                self.config.prune_after_ms(),
                epoch_candidate,
                rev,
                &tags,
            ),
        })
    }

    /// Plans the pull of tag changes since the mirror's epoch and version, or, while the
    /// mirror loads the whole state after a full reply, the next page of it.
    pub fn plan_tag_refresh(&self) -> ScriptCall {
        if let Some(cursor) = self.mirror.page_cursor() {
            return ScriptCall {
                script: &TAG_PAGE,
                sha1: TAG_PAGE.sha1(),
                keys: vec![self.tag_keys.state.clone()],
                args: vec![cursor.to_owned(), crate::tags::PAGE_COUNT.to_string()],
            };
        }
        ScriptCall {
            script: &TAG_REFRESH,
            sha1: self.refresh_sha1.clone(),
            keys: self.tag_keys.to_vec(),
            args: tag_refresh_args(
                self.mirror.epoch(),
                self.mirror.version(),
                self.mirror.version_id(),
                self.mirror.unconfirmed_updates(),
            ),
        }
    }

    /// Merges the reply of a [`TAG_REFRESH`] call, received at `now`, into the mirror (and
    /// prunes the mirror by age, at most once a minute).
    pub fn apply_refresh(
        &mut self,
        reply: &[u8],
        now: Millis,
    ) -> Result<RefreshSummary, ProtocolError> {
        let keep_ms = self.config.prune_after_ms();
        let summary = self.mirror.apply_refresh(reply, now, keep_ms)?;
        if now.0 - self.pruned_at.0 >= PRUNE_EVERY_MS {
            self.pruned_at = now;
            self.mirror.prune(now, keep_ms);
        }
        Ok(summary)
    }

    /// The merge that gives Redis back records it lost and this process knows (after a flush,
    /// an empty restart or a failover that lost updates), at most
    /// [`MAX_RESEND_BATCH`](crate::tags::MAX_RESEND_BATCH) of them; `None` when nothing
    /// waits. The same batch is planned again until [`Engine::ack_resend`].
    pub fn plan_resend(&mut self, epoch_candidate: &str) -> Result<Option<ScriptCall>, PlanError> {
        check_epoch_candidate(epoch_candidate)?;
        if self.resending.is_empty() {
            self.resending = self.mirror.take_resend();
        }
        if self.resending.is_empty() {
            return Ok(None);
        }
        Ok(Some(ScriptCall {
            script: &TAG_MERGE,
            sha1: TAG_MERGE.sha1(),
            keys: self.tag_keys.to_vec(),
            args: tag_merge_args(epoch_candidate, &self.resending),
        }))
    }

    /// Redis applied the batch of [`Engine::plan_resend`].
    pub fn ack_resend(&mut self) {
        self.resending.clear();
    }

    /// Records waiting to be merged back into Redis, the batch in flight included.
    pub fn resend_len(&self) -> usize {
        self.mirror.resend_len() + self.resending.len()
    }

    /// No Redis: the mirror is complete by definition (this process is the whole fleet).
    pub fn mark_standalone(&mut self) {
        self.mirror.mark_synced();
    }

    /// Notes the time of the host's first Redis command; later calls change nothing.
    pub(crate) fn note_start(&mut self, now: Millis) {
        if self.started.is_none() && now.0.is_finite() {
            self.started = Some(now);
        }
    }

    /// Tagged entries created at or before the returned time cannot be judged fresh now:
    /// `None` once the mirror is synced. Before that, this process does not know what others
    /// revalidated. While Redis answers, that holds for every tagged entry (the answer is a
    /// miss until the tag state is loaded). While the breaker is open nobody's
    /// revalidations can be heard anyway, so entries this process made itself since it
    /// started are judged by what it knows, and only older ones are misses.
    pub fn untrusted_before(&self, now: Millis) -> Option<Millis> {
        if self.mirror.is_synced() {
            return None;
        }
        let outage = self.breaker.state(now) != crate::breaker::BreakerState::Closed;
        match self.started {
            Some(started) if outage => Some(started),
            _ => Some(Millis(f64::MAX)),
        }
    }

    /// The in-process tier's copy of `key` may be served (it is marked as just used); false
    /// when it is absent, past its lifetime, this process's own copy that never reached Redis
    /// while Redis answers again (the fleet's value wins: it is dropped, read Redis), or a copy
    /// kept for outages only while Redis answers (it stays for the next outage).
    pub fn tier_touch(&mut self, key: &str, now: Millis) -> bool {
        self.tier_use(key, now) == TierUse::Serve
    }

    /// After a Redis read of `key` failed: whether the tier's copy may be judged and served,
    /// whatever it is kept for (a copy for outages only, this process's own). False when it is
    /// absent or past its lifetime (then removed).
    pub fn tier_fallback(&mut self, key: &str, now: Millis) -> bool {
        self.lru.touch(key, now)
    }

    /// [`Engine::tier_touch`], telling a copy that is kept but not served now
    /// ([`TierUse::Kept`]) from one that is gone: the host keeps the bytes of the first.
    pub fn tier_use(&mut self, key: &str, now: Millis) -> TierUse {
        if self.breaker.state(now) == crate::breaker::BreakerState::Closed {
            if self.lru.is_local(key) {
                self.lru.remove(key);
                return TierUse::Gone;
            }
            if self.lru.is_outage_only(key) {
                return TierUse::Kept;
            }
        }
        if self.lru.touch(key, now) {
            TierUse::Serve
        } else {
            TierUse::Gone
        }
    }

    /// Takes note of the reply of a [`TAG_UPDATE`] call (optional: it only saves the next
    /// refresh from fetching this process's own update again). Never feed it to
    /// [`Engine::apply_refresh`]: it carries no tags, and would skip other instances' updates.
    pub fn apply_update_reply(&mut self, reply: &[u8]) -> Result<RefreshSummary, ProtocolError> {
        self.mirror.apply_update_reply(reply)
    }

    /// Next's `getExpiration(tags)`: the latest expiry over `tags`, 0 when none is known.
    /// Next drops a hit created at or before it, so without a trusted tag state it is the
    /// time of [`Engine::untrusted_before`].
    pub fn get_expiration(&self, tags: &[&str], now: Millis) -> Millis {
        let canonical: Vec<Cow<'_, str>> = tags.iter().map(|t| canonical_tag(t)).collect();
        let known = self
            .mirror
            .expiration(canonical.iter().map(AsRef::as_ref), now);
        match self.untrusted_before(now) {
            Some(before) if !tags.is_empty() => known.max(before),
            _ => known,
        }
    }

    /// How the mirror judges an entry created at `timestamp` with these tags (any form).
    pub fn tag_freshness(&self, tags: &[&str], timestamp: Millis, now: Millis) -> Freshness {
        let tags: Vec<Cow<'_, str>> = tags.iter().map(|t| canonical_tag(t)).collect();
        self.mirror
            .evaluate(timestamp, tags.iter().map(AsRef::as_ref), now)
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
        self.note_start(now);
        let budget_ms = self.budget_ms(kind);
        match self.breaker.admit(now) {
            Some(permit) => Admission::Send { permit, budget_ms },
            None => Admission::Skip,
        }
    }

    /// Reports the outcome of an admitted command; true when the breaker changed state.
    pub fn report(&mut self, permit: Permit, result: CallResult, now: Millis) -> bool {
        self.stats.record_redis(guard::redis_result(result));
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

    /// Records a revalidation: applied to the mirror at once, and queued for Redis behind
    /// any earlier one. Returns the oldest queued update when the outbox had to drop it (the
    /// host must log it: the rest of the fleet will not see it).
    pub fn queue_tag_update(
        &mut self,
        tags: &[&str],
        rev: &Revalidation,
        now: Millis,
    ) -> Result<Option<PendingUpdate>, PlanError> {
        if tags.is_empty() {
            return Err(PlanError::NoTags);
        }
        let admitted = self.admit_tags(tags);
        if admitted.is_empty() {
            return Err(PlanError::TagLimit);
        }
        let tags: Vec<&str> = admitted.iter().map(AsRef::as_ref).collect();
        if !(now.0.is_finite() && now.0 >= 0.0) {
            return Err(PlanError::InvalidTime);
        }
        self.mirror_mut().apply_local(&tags, rev, now);
        self.stats
            .record_revalidation(matches!(rev, Revalidation::Stale { .. }));
        self.stats.record_outbox_queued();
        let owned = tags.iter().map(|t| (*t).to_owned()).collect();
        Ok(self.outbox.push(owned, *rev, now))
    }

    /// The update script call for the outbox's head, with its sequence number for
    /// [`Engine::ack_outbox`]; `None` when nothing waits ([`Outbox::plan_head`]).
    pub fn plan_outbox_head(
        &self,
        epoch_candidate: &str,
    ) -> Result<Option<(u64, ScriptCall)>, PlanError> {
        check_epoch_candidate(epoch_candidate)?;
        Ok(self.outbox.plan_head(
            self.tag_keys.to_vec(),
            self.config.prune_after_ms(),
            epoch_candidate,
        ))
    }

    /// Redis applied outbox update `seq`; false when it was no longer the head.
    pub fn ack_outbox(&mut self, seq: u64) -> bool {
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
    /// Plans a write of the singular handler: validates the parts against the descriptor and
    /// plans the envelope (key, header, TTL from `expire`, or the configured default when the
    /// value has neither `expire` nor a `revalidate` limit).
    pub fn plan_incremental_set(
        &self,
        cache_key: &str,
        set: &IncrementalSet<'_>,
    ) -> Result<SetPlan, IncrementalPlanError> {
        if let Err(e) = set.desc.check_parts(set.parts.len()) {
            self.stats
                .record_write(Surface::Incremental, WriteOutcome::Invalid);
            return Err(IncrementalPlanError::Layout(e));
        }
        let meta = set.desc.encode();
        let unlimited = f64::INFINITY;
        let input = SetInput {
            kind: EntryKind::Incremental,
            timestamp: set.created.min(set.now),
            revalidate: if set.desc.revalidate_false {
                unlimited
            } else {
                set.revalidate
            },
            expire: if set.desc.no_expire || set.desc.no_cache_control {
                unlimited
            } else {
                set.expire
            },
            stale: 0.0,
            tags: set.tags,
            meta: &meta,
            parts: set.parts,
            now: set.now,
        };
        self.plan_set(&Interface::Incremental, cache_key, input)
            .map_err(IncrementalPlanError::Plan)
    }

    /// Judges a stored singular-handler value read for `cache_key`.
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
    ) -> (IncrementalVerdict, Option<crate::envelope::DecodedHeader>) {
        let judged = self.judge_incremental(
            cache_key,
            prefix,
            total_len,
            soft_tags,
            request_revalidate,
            now,
        );
        if let Some(outcome) = judged.0.lookup_outcome(judged.1.as_ref(), now) {
            self.stats.record_lookup(Surface::Incremental, outcome);
        }
        judged
    }

    /// [`Engine::inspect_incremental`] without counting.
    fn judge_incremental(
        &self,
        cache_key: &str,
        prefix: &[u8],
        total_len: usize,
        soft_tags: &[&str],
        request_revalidate: f64,
        now: Millis,
    ) -> (IncrementalVerdict, Option<crate::envelope::DecodedHeader>) {
        let inspection = self.judge(cache_key, prefix, total_len, soft_tags, now);
        let header = inspection.header;
        let stale = match inspection.verdict {
            Verdict::Fresh => false,
            Verdict::Stale => true,
            Verdict::Expired => return (IncrementalVerdict::Expired, header),
            Verdict::KeyMismatch => return (IncrementalVerdict::KeyMismatch, header),
            Verdict::Corrupt(e) => return (IncrementalVerdict::Corrupt(e.code()), None),
            Verdict::NeedMore(n) => return (IncrementalVerdict::NeedMore(n), None),
        };
        let Some(h) = header else {
            return (
                IncrementalVerdict::Corrupt("ERR_DECODE_HEADER_LENGTH"),
                None,
            );
        };
        let m = &h.meta;
        if m.kind != EntryKind::Incremental {
            return (
                IncrementalVerdict::Corrupt(LayoutError::EntryKind.code()),
                None,
            );
        }
        let desc = match Descriptor::decode(&m.meta).and_then(|d| {
            d.check_parts(m.parts.len())?;
            Ok(d)
        }) {
            Ok(d) => d,
            Err(e) => return (IncrementalVerdict::Corrupt(e.code()), None),
        };
        let revalidate = (!desc.revalidate_false).then_some(m.revalidate);
        let expire = (!desc.no_expire && !desc.no_cache_control).then_some(m.expire);
        let (last_modified, revalidate) = if stale {
            match stale_presentation(
                desc.kind,
                m.timestamp.0,
                revalidate,
                expire,
                request_revalidate,
                now.0,
            ) {
                Some(p) => p,
                None => return (IncrementalVerdict::Expired, Some(h)),
            }
        } else {
            (m.timestamp.0, revalidate)
        };
        let serve = Serve {
            desc,
            last_modified,
            revalidate,
            expire,
            cache_control: !desc.no_cache_control,
            stale,
        };
        (IncrementalVerdict::Serve(serve), Some(h))
    }

    /// True when this process's tag mirror already holds this revalidation, issued no more
    /// than [`SAME_REVALIDATION_WINDOW_MS`] ago, for every tag: then it is the same event
    /// seen through a second handler, and writing it to Redis again would only cost a round
    /// trip (the merge rules make the second write a no-op).
    pub fn revalidation_recorded(&self, tags: &[&str], rev: &Revalidation, now: Millis) -> bool {
        if tags.is_empty() || !now.0.is_finite() {
            return false;
        }
        // What the same revalidation issued at the start of the window would have recorded;
        // a scheduled expiry may end as late as one issued now.
        let mut probe = TagRecord::default();
        probe.apply(rev, Millis(now.0 - SAME_REVALIDATION_WINDOW_MS));
        if probe.has_pending() {
            if let Some(ms) = rev.expire_ms() {
                probe.pending_exp = Millis(now.ceil().0 + ms);
            }
        }
        tags.iter().all(|tag| {
            self.mirror()
                .record(&crate::tags::canonical_tag(tag))
                .is_some_and(|r| r.covers(&probe) && r.updated_at >= probe.updated_at)
        })
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
    /// meant: a lease won, contention with another holder, or a wait that ran out.
    pub fn lease_answered(&self, flight: &mut Flight, result: Acquired, now: Millis) -> Step {
        let step = flight.acquired(result, now, &self.lease_config());
        let counted = [lease::answer_event(result), lease::step_event(step)];
        for event in counted.into_iter().flatten() {
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
    /// from `now` ([`Outbox::timer_ms`]).
    pub fn retry_in_ms(&self, now: Millis) -> f64 {
        self.outbox.timer_ms(self.breaker.next_probe_at(), now)
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
        seed::plan_write(
            self.namespace.entry_key(iface, cache_key),
            created,
            ttl_ms,
            now,
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

    /// Counts a lease event (issue 4's lease logic and the host's wait loop call this).
    pub fn record_lease(&self, event: LeaseEvent) {
        self.stats.record_lease(event);
    }

    /// Counts a Redis error reply (a healthy Redis refusing one command).
    pub fn record_reply_error(&self) {
        self.stats.record_redis(RedisResult::ReplyError);
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
        self.regenerations
            .note_read(cache_key, step, on_demand, started);
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
        regen::incremental_created(
            &mut self.regenerations,
            &self.stale_handouts,
            cache_key,
            kind,
            tags,
            now,
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
}
