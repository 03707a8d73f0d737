//! The freshness contract (docs/failures.md, "Freshness") as a property: several instances,
//! each with its own real [`Engine`], share a model of Redis; proptest draws histories of
//! writes, reads, revalidations in all three modes, flushes, failovers that lose the last
//! updates (a restore of an earlier state), restarts, outages and lost replies, and shrinks a
//! violation to a minimal one.
//!
//! The model runs the tag scripts' rules as `src/lua/*.lua` state them (update, refresh with
//! version ids, merge); `tests/lua_scripts.rs` checks the Lua agrees with the same Rust rules
//! on a real redis-server. Each instance does what the host does: refresh the tag state at the
//! start of a request, step the core's read machine (its in-process tier, then Redis, then the
//! lease), keep what the machine says to keep, send revalidations through the outbox, give
//! lost records back, and report every command to its circuit breaker.
//!
//! The invariant: a read whose refresh succeeded never serves as fresh (or as stale where only
//! a miss is allowed) an entry that a revalidation resolved before the read invalidated,
//! unless Redis, at that refresh, did not hold that revalidation (it was lost and no instance
//! that knew it has written it back yet). And the liveness half: once Redis answers and every
//! instance has caught up, every revalidation a live instance knows of is back in Redis.
//!
//! Following the state by push (the second property), an instance skips the refresh while
//! the core says it is caught up; the update script announces each version to the instances
//! whose channel listens, delivered in order, late, or lost with a channel that drops before
//! the instance notices. The invariant becomes: within the bound, or pulled. A read that
//! skipped its refresh honours every revalidation that resolved before it, except one that
//! resolved less than the bound ([`PUSH_BOUND_MS`], the longest time between pulls) before
//! it and whose announcement has not reached the instance: still on its way, or lost with a
//! channel whose drop the instance had not noticed. A read that pulled, as above.

use std::collections::{HashMap, HashSet, VecDeque};

use fleetcache_core::guard::{Admission, OpKind};
use fleetcache_core::lease::Consumer;
use fleetcache_core::read_machine::{
    Bytes, Failure, ReadAction, ReadInput, Served, Source, TierAction,
};
use fleetcache_core::{
    netstring, CallResult, Config, Engine, EntryKind, Interface, Millis, Revalidation, ScriptCall,
    SetInput, TagRecord,
};
use proptest::prelude::*;

const IFACE: Interface<'static> = Interface::UseCache("default");
const TAGS: [&str; 3] = ["a", "b", "_N_T_/p"];
const KEYS: [&str; 2] = ["k0", "k1"];
const T0: f64 = 1_795_690_530_000.0;
/// The longest time between pulls of an instance that follows the state by push.
const PUSH_BOUND_MS: f64 = 1_000.0;

/// The tag state as Redis holds it.
#[derive(Clone, Debug, Default)]
struct TagState {
    epoch: Option<String>,
    ver: u64,
    ids: HashMap<u64, String>,
    records: HashMap<String, TagRecord>,
    log: HashMap<String, u64>,
}

/// Redis: entries and the tag state.
#[derive(Clone, Debug, Default)]
struct Redis {
    entries: HashMap<String, Vec<u8>>,
    tags: TagState,
    /// Announcements published by the last command, for the listening channels.
    published: Vec<Vec<u8>>,
}

fn ms(s: &str) -> f64 {
    s.parse::<f64>().unwrap()
}

impl TagState {
    fn bump(&mut self, candidate: &str) -> Vec<u8> {
        if self.epoch.is_none() {
            self.epoch = Some(candidate.to_owned());
        }
        self.ver += 1;
        self.ids.insert(self.ver, candidate.to_owned());
        self.ids.remove(&self.ver.wrapping_sub(1024));
        netstring::encode([
            self.epoch.clone().unwrap_or_default(),
            self.ver.to_string(),
            candidate.to_owned(),
            "0".to_owned(),
        ])
    }

    /// The announcement of `tag_update.lua` for the version just made, of `tags`.
    fn announcement(&self, tags: &[String]) -> Vec<u8> {
        let mut items = vec![
            "a".to_owned(),
            self.epoch.clone().unwrap_or_default(),
            self.ver.to_string(),
            self.ids.get(&self.ver).cloned().unwrap_or_default(),
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
        let reply = self.bump(candidate);
        for tag in &args[5..] {
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
        reply
    }

    /// `tag_merge.lua`.
    fn merge(&mut self, args: &[String]) -> Vec<u8> {
        let reply = self.bump(&args[0]);
        for pair in args[1..].chunks(2) {
            let record = TagRecord::parse(pair[1].as_bytes()).unwrap();
            self.records
                .entry(pair[0].clone())
                .or_default()
                .merge(&record);
            self.log.insert(pair[0].clone(), self.ver);
        }
        reply
    }

    /// `tag_refresh.lua`.
    fn refresh(&self, args: &[String]) -> Vec<u8> {
        let (known_epoch, known_ver, known_vid) =
            (&args[0], args[1].parse::<u64>().unwrap(), &args[2]);
        let epoch = self.epoch.clone().unwrap_or_default();
        let reused = |v: u64, id: &str| {
            !id.is_empty()
                && v > 0
                && (v > self.ver || self.ids.get(&v).map(String::as_str) != Some(id))
        };
        let rolled_back = reused(known_ver, known_vid)
            || args[3..]
                .chunks(2)
                .any(|p| reused(p[0].parse::<u64>().unwrap(), &p[1]));
        let full = epoch != *known_epoch || known_ver > self.ver || rolled_back;
        let mut items = vec![
            epoch,
            self.ver.to_string(),
            self.ids.get(&self.ver).cloned().unwrap_or_default(),
            if full { "1" } else { "0" }.to_owned(),
        ];
        if full {
            // The first page, as the script reads it from cursor 0.
            let bytes = self.page(&["0".to_owned()]);
            let page = netstring::decode(&bytes).unwrap();
            items.extend(
                page.iter()
                    .skip(1)
                    .map(|b| String::from_utf8(b.to_vec()).unwrap()),
            );
        } else {
            for (tag, record) in &self.records {
                if self.log.get(tag).is_some_and(|v| *v > known_ver) {
                    items.push(tag.clone());
                    items.push(record.encode());
                }
            }
        }
        netstring::encode(items)
    }

    /// `tag_page.lua`: HSCAN in pages of two, in tag order, so every tag present for the
    /// whole scan is returned (HSCAN's guarantee) and a load spans several calls.
    fn page(&self, args: &[String]) -> Vec<u8> {
        let after = args[0].strip_prefix('c');
        let mut tags: Vec<&String> = self
            .records
            .keys()
            .filter(|t| after.map_or(true, |a| t.as_str() > a))
            .collect();
        tags.sort();
        let page: Vec<&String> = tags.into_iter().take(2).collect();
        let cursor = match page.last() {
            Some(last) if page.len() == 2 => format!("c{last}"),
            _ => "0".to_owned(),
        };
        let mut items = vec!["page".to_owned(), cursor];
        for tag in page {
            items.push(tag.clone());
            items.push(self.records[tag].encode());
        }
        netstring::encode(items)
    }

    fn covers(&self, tag: &str, single: &TagRecord) -> bool {
        self.records.get(tag).is_some_and(|r| r.covers(single))
    }
}

impl Redis {
    fn run(&mut self, call: &ScriptCall) -> Vec<u8> {
        match call.script.name {
            "tag_update" => {
                let reply = self.tags.update(&call.args);
                // A fourth key: the announcement channel.
                if call.keys.len() == 4 {
                    let msg = self.tags.announcement(&call.args[5..]);
                    self.published.push(msg);
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
    at: Millis,
    resolved: Option<usize>,
    /// The time it resolved.
    resolved_at: Option<f64>,
}

impl Rev {
    fn single(&self) -> TagRecord {
        let mut r = TagRecord::default();
        r.apply(&self.rev, self.at);
        r
    }
}

struct Instance {
    engine: Engine,
    tier: HashMap<String, Vec<u8>>,
    /// Outbox entries in order: the index of their revalidation.
    queued: VecDeque<usize>,
    /// Revalidations this instance has certainly heard of: it issued them, or a refresh of
    /// its succeeded while Redis held them.
    learned: HashSet<usize>,
    /// A refresh of this instance has succeeded since it started.
    loaded: bool,
    /// When it started.
    started: f64,
    /// Following by push: the announcements its channel received, not yet applied, each
    /// with the revalidation it announces.
    inbox: VecDeque<(Vec<u8>, Option<usize>)>,
    /// Its channel is subscribed (whether the instance noticed a drop or not).
    listening: bool,
    /// The instance believes its channel is subscribed (it has not noticed a drop).
    believed: bool,
    /// Revalidations whose announcement has not reached it: on its way, or lost while it
    /// believed its channel up.
    unheard: HashSet<usize>,
    /// The step of its last successful refresh, and what Redis held then.
    pulled: Option<(usize, TagState)>,
}

fn config() -> Config {
    Config {
        prefix: "sim".into(),
        deployment: "d".into(),
        memory_bytes: 1 << 20,
        breaker_failures: 1,
        ..Config::default()
    }
}

impl Instance {
    fn new(now: f64, push: bool) -> Instance {
        let mut engine = Engine::new(config()).unwrap();
        if push {
            engine.follow_tags_by_push(PUSH_BOUND_MS).unwrap();
        }
        Instance {
            loaded: false,
            started: now,
            engine,
            tier: HashMap::new(),
            queued: VecDeque::new(),
            learned: HashSet::new(),
            inbox: VecDeque::new(),
            listening: false,
            believed: false,
            unheard: HashSet::new(),
            pulled: None,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Instance stores a regeneration of a key with these tags (bit mask over TAGS), which
    /// began `began` ms ago: the entry counts as created then, so revalidations made during
    /// the render leave it stale.
    Write {
        inst: usize,
        key: usize,
        tags: u8,
        began: u16,
    },
    /// A request on an instance reads a key with these soft tags.
    Read {
        inst: usize,
        key: usize,
        soft: u8,
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
    Flush,
    /// Keep the current Redis state to restore later.
    Snapshot,
    /// Restore the kept state: a failover to a replica that lost what came since.
    Failover,
    Restart {
        inst: usize,
    },
    Down,
    Up,
    /// The next reply to this instance is lost (the command ran, or did not for a read).
    LoseReply {
        inst: usize,
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
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..2usize, 0u8..8, prop_oneof![Just(0u16), 0u16..2000])
            .prop_map(|(inst, key, tags, began)| Op::Write { inst, key, tags, began }),
        6 => (0..3usize, 0..2usize, 0u8..4).prop_map(|(inst, key, soft)| Op::Read { inst, key, soft }),
        4 => (0..3usize, 1u8..8, 0u8..4).prop_map(|(inst, tags, mode)| Op::Revalidate { inst, tags, mode }),
        2 => (0..3usize).prop_map(|inst| Op::Tick { inst }),
        1 => Just(Op::Flush),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Failover),
        1 => (0..3usize).prop_map(|inst| Op::Restart { inst }),
        1 => Just(Op::Down),
        2 => Just(Op::Up),
        1 => (0..3usize).prop_map(|inst| Op::LoseReply { inst }),
        3 => (0u16..1500).prop_map(|ms| Op::Advance { ms }),
        5 => (0..3usize).prop_map(|inst| Op::Deliver { inst }),
        2 => (0..3usize).prop_map(|inst| Op::Subscribe { inst }),
        1 => (0..3usize).prop_map(|inst| Op::DropChannel { inst }),
        1 => (0..3usize).prop_map(|inst| Op::NoticeDown { inst }),
    ]
}

fn mask(bits: u8) -> Vec<&'static str> {
    TAGS.iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, t)| *t)
        .collect()
}

struct World {
    redis: Redis,
    kept: Option<Redis>,
    up: bool,
    lose: HashSet<usize>,
    now: f64,
    step: usize,
    insts: Vec<Instance>,
    revs: Vec<Rev>,
    seq: u64,
    /// The instances follow the state by push.
    push: bool,
    /// The revalidation the command being sent records (the outbox's head).
    publishing: Option<usize>,
}

impl World {
    fn new(push: bool) -> World {
        World {
            redis: Redis::default(),
            kept: None,
            up: true,
            lose: HashSet::new(),
            now: T0,
            step: 0,
            insts: (0..3).map(|_| Instance::new(T0, push)).collect(),
            revs: Vec::new(),
            seq: 0,
            push,
            publishing: None,
        }
    }

    /// Every channel drops (its server went away), unnoticed for now.
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
    /// and the reply arrived. `run` executes it on the model.
    fn send(
        &mut self,
        i: usize,
        kind: OpKind,
        run: impl FnOnce(&mut Redis) -> Vec<u8>,
    ) -> Option<Vec<u8>> {
        self.try_send(i, kind, run).ok()
    }

    /// [`World::send`], telling a command the breaker kept back from one without a reply.
    fn try_send(
        &mut self,
        i: usize,
        kind: OpKind,
        run: impl FnOnce(&mut Redis) -> Vec<u8>,
    ) -> Result<Vec<u8>, Failure> {
        let now = Millis(self.now);
        let Admission::Send { permit, .. } = self.insts[i].engine.admit(kind, now) else {
            return Err(Failure::CircuitOpen);
        };
        let result = if self.up {
            // A write runs even when its reply is lost; a lost read changes nothing.
            let reply = run(&mut self.redis);
            for msg in std::mem::take(&mut self.redis.published) {
                for inst in &mut self.insts {
                    if inst.listening {
                        inst.inbox.push_back((msg.clone(), self.publishing));
                    }
                    if inst.listening || inst.believed {
                        inst.unheard.extend(self.publishing);
                    }
                }
            }
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
        result.ok_or(Failure::Timeout)
    }

    /// The request's tag refresh; true when it succeeded.
    fn refresh(&mut self, i: usize) -> bool {
        let call = self.insts[i].engine.plan_tag_pull(Millis(self.now));
        let Some(reply) = self.send(i, OpKind::Read, |r| r.run(&call)) else {
            return false;
        };
        self.insts[i]
            .engine
            .apply_refresh(&reply, Millis(self.now))
            .unwrap();
        self.insts[i].pulled = Some((self.step, self.redis.tags.clone()));
        // Synced: the mirror has everything Redis holds now (a load in progress has not).
        if self.insts[i].engine.mirror().is_synced() {
            for (n, r) in self.revs.iter().enumerate() {
                let single = r.single();
                if r.tags.iter().all(|t| self.redis.tags.covers(t, &single)) {
                    self.insts[i].learned.insert(n);
                }
            }
            self.insts[i].loaded = true;
        }
        true
    }

    /// Sends the outbox, then the records to give back, until done or a failure.
    fn drain(&mut self, i: usize) {
        loop {
            let token = self.token();
            let Some((seq, call)) = self.insts[i].engine.plan_outbox_head(&token).unwrap() else {
                break;
            };
            self.publishing = self.insts[i].queued.front().copied();
            let sent = self.send(i, OpKind::Write, |r| r.run(&call));
            self.publishing = None;
            let Some(reply) = sent else {
                return;
            };
            self.insts[i].engine.ack_outbox(seq);
            if let Some(rev) = self.insts[i].queued.pop_front() {
                self.revs[rev].resolved.get_or_insert(self.step);
                self.revs[rev].resolved_at.get_or_insert(self.now);
            }
            self.insts[i].engine.apply_update_reply(&reply).unwrap();
        }
        loop {
            let token = self.token();
            let Some(call) = self.insts[i].engine.plan_resend(&token).unwrap() else {
                break;
            };
            let Some(reply) = self.send(i, OpKind::Write, |r| r.run(&call)) else {
                return;
            };
            self.insts[i].engine.ack_resend();
            self.insts[i].engine.apply_update_reply(&reply).unwrap();
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.step += 1;
        let now = Millis(self.now);
        match *op {
            Op::Advance { ms } => self.now += f64::from(ms),
            Op::Down => {
                self.up = false;
                self.drop_channels();
            }
            Op::Up => self.up = true,
            Op::LoseReply { inst } => {
                self.lose.insert(inst);
            }
            Op::Flush => {
                if self.up {
                    self.redis = Redis::default();
                }
            }
            Op::Snapshot => self.kept = Some(self.redis.clone()),
            Op::Failover => {
                if let Some(kept) = self.kept.clone() {
                    self.redis = kept;
                    self.drop_channels();
                }
            }
            Op::Restart { inst } => self.insts[inst] = Instance::new(self.now, self.push),
            Op::Deliver { inst } => {
                if let Some((msg, rev)) = self.insts[inst].inbox.pop_front() {
                    self.insts[inst].engine.apply_announcement(&msg).unwrap();
                    if let Some(rev) = rev {
                        self.insts[inst].unheard.remove(&rev);
                    }
                }
            }
            Op::Subscribe { inst } => {
                if self.push && self.up {
                    self.insts[inst].listening = true;
                    self.insts[inst].believed = true;
                    self.insts[inst].engine.tag_channel_up();
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
                self.refresh(inst);
                self.drain(inst);
            }
            Op::Write {
                inst,
                key,
                tags,
                began,
            } => {
                let tags = mask(tags);
                let plan = self.insts[inst]
                    .engine
                    .plan_set(
                        &IFACE,
                        KEYS[key],
                        SetInput {
                            kind: EntryKind::UseCache,
                            timestamp: Millis(self.now - f64::from(began)),
                            revalidate: 900.0,
                            expire: 3600.0,
                            stale: 30.0,
                            tags: &tags,
                            meta: b"",
                            parts: &[1],
                            now,
                        },
                    )
                    .unwrap();
                let mut value = plan.header;
                value.push(7);
                let ttl = plan.ttl_ms.unwrap() as f64;
                let e = &mut self.insts[inst].engine;
                assert!(e
                    .lru_mut()
                    .insert(&plan.key, 1, Millis(self.now + ttl))
                    .is_empty());
                self.insts[inst]
                    .tier
                    .insert(plan.key.clone(), value.clone());
                let (key_name, stored) = (plan.key.clone(), value);
                let written = self.send(inst, OpKind::Write, |r| {
                    r.entries.insert(key_name, stored);
                    Vec::new()
                });
                if written.is_none() {
                    self.insts[inst].engine.lru_mut().mark_local(&plan.key);
                }
            }
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
                let dropped = self.insts[inst]
                    .engine
                    .queue_tag_update(&tags, &rev, now)
                    .unwrap();
                prop_assert!(
                    dropped.is_none(),
                    "the outbox never fills in these histories"
                );
                self.revs.push(Rev {
                    tags,
                    rev,
                    at: now,
                    resolved: None,
                    resolved_at: None,
                });
                self.insts[inst].queued.push_back(self.revs.len() - 1);
                self.insts[inst].learned.insert(self.revs.len() - 1);
                self.drain(inst);
            }
            Op::Read { inst, key, soft } => self.read(inst, key, soft)?,
        }
        Ok(())
    }

    fn read(&mut self, inst: usize, key: usize, soft: u8) -> Result<(), TestCaseError> {
        let started = self.step;
        // Following by push and caught up: no refresh.
        let caught_up = self.insts[inst].engine.tags_caught_up(Millis(self.now));
        let refreshed = caught_up || self.refresh(inst);
        // What Redis held when the refresh ran, for the exception of lost revalidations.
        // Caught up without a pull: what it held at the last pull, for what resolved before it.
        let (held, pulled_step) = match &self.insts[inst].pulled {
            Some((step, tags)) if caught_up => (tags.clone(), *step),
            _ => (self.redis.tags.clone(), started),
        };
        let soft = mask(soft);
        let now = Millis(self.now);
        let cache_key = KEYS[key];
        let key_name = self.insts[inst].engine.entry_key(&IFACE, cache_key);
        let Some((verdict, value)) = self.read_machine(inst, cache_key, &key_name, &soft)? else {
            return Ok(());
        };
        let loaded = self.insts[inst].loaded;
        if !refreshed && loaded {
            // The exception while Redis cannot be asked: judged by the last loaded state.
            return Ok(());
        }
        let outage =
            self.insts[inst].engine.breaker_state(now) != fleetcache_core::BreakerState::Closed;
        let header = fleetcache_core::decode_header(&value, value.len()).unwrap();
        let tags: Vec<&str> = header
            .meta
            .tags
            .iter()
            .map(String::as_str)
            .chain(soft.iter().copied())
            .collect();
        for (n, r) in self.revs.iter().enumerate() {
            let Some(resolved) = r.resolved else { continue };
            if resolved >= started {
                continue;
            }
            let single = r.single();
            for tag in r.tags.iter().filter(|t| tags.contains(t)) {
                let required = single.freshness(header.meta.timestamp, now);
                // Shown as fresh to a follower counts as fresh.
                let got = match verdict {
                    Served::Stale => fleetcache_core::Freshness::Stale,
                    _ => fleetcache_core::Freshness::Fresh,
                };
                // Never heard of, and not in Redis when this read asked: lost with Redis's state.
                let lost = !self.insts[inst].learned.contains(&n)
                    && resolved < pulled_step
                    && !held.covers(tag, &single);
                // Before the tag state is loaded, while Redis is out of reach: this instance's
                // own entries, made since it started, are judged by its own revalidations.
                let own =
                    !refreshed && outage && header.meta.timestamp.0 > self.insts[inst].started;
                // Caught up without a pull: within the bound.
                let within = caught_up
                    && r.resolved_at.is_some_and(|t| t + PUSH_BOUND_MS > self.now)
                    && self.insts[inst].unheard.contains(&n);
                if got < required && !lost && !own && !within {
                    prop_assert!(
                        false,
                        "instance {} served {:?} an entry of {} created at {} tagged {}, invalidated \
                         ({:?}) by revalidation #{} {:?} at {} resolved at step {} (caught up \
                         without a pull: {})",
                        inst, verdict, cache_key, header.meta.timestamp.0 - T0, tag, required, n,
                        r.rev, r.at.0 - T0, resolved, caught_up
                    );
                }
            }
        }
        Ok(())
    }

    /// One read as the host does it: the read machine stepped over this instance's tier and
    /// Redis (a lease request is won whenever Redis answers it: reads do not overlap here).
    /// What it served, and the bytes, unless it answered a miss.
    fn read_machine(
        &mut self,
        inst: usize,
        cache_key: &str,
        key_name: &str,
        soft: &[&str],
    ) -> Result<Option<(Served, Vec<u8>)>, TestCaseError> {
        let now = Millis(self.now);
        let soft_tags = soft.iter().map(|t| (*t).to_owned()).collect();
        let token = self.token();
        let engine = &mut self.insts[inst].engine;
        let mut m =
            engine.read_use_cache(&IFACE, cache_key, soft_tags, Consumer::Serves, token, now);
        let mut tier_bytes: Option<Vec<u8>> = None;
        let mut reply: Option<Vec<u8>> = None;
        let mut step = self.insts[inst]
            .engine
            .read_step(&mut m, ReadInput::Start, now)
            .unwrap();
        for _ in 0..100 {
            match step.tier {
                TierAction::None => {}
                TierAction::Drop => {
                    self.insts[inst].tier.remove(key_name);
                }
                // Only a reply is ever kept here (no polls): its bytes.
                TierAction::Keep { until, outage_only } => {
                    if let Some(v) = reply.clone() {
                        let instance = &mut self.insts[inst];
                        let evicted =
                            instance
                                .engine
                                .lru_mut()
                                .insert(key_name, v.len() as u64, until);
                        if outage_only {
                            instance.engine.lru_mut().mark_outage_only(key_name);
                        }
                        for k in evicted {
                            instance.tier.remove(&k);
                        }
                        if instance.engine.lru().contains(key_name) {
                            instance.tier.insert(key_name.to_owned(), v);
                        }
                    }
                }
            }
            let input_bytes: Option<Vec<u8>>;
            let input = match &step.action {
                ReadAction::Refresh => ReadInput::Refreshed,
                ReadAction::OwnWrite => ReadInput::OwnWrite(None),
                ReadAction::PeekTier | ReadAction::PeekFallback => {
                    input_bytes = self.insts[inst].tier.get(key_name).cloned();
                    tier_bytes.clone_from(&input_bytes);
                    let b = input_bytes.as_deref().map(|v| Bytes {
                        prefix: v,
                        total_len: v.len(),
                    });
                    if matches!(step.action, ReadAction::PeekTier) {
                        ReadInput::Tier(b)
                    } else {
                        ReadInput::Fallback(b)
                    }
                }
                ReadAction::Get { key, .. } => {
                    let k = key.clone();
                    match self.try_send(inst, OpKind::Read, |r| {
                        r.entries.get(&k).cloned().unwrap_or_default()
                    }) {
                        Ok(v) if !v.is_empty() => {
                            reply = Some(v);
                            input_bytes = reply.clone();
                            ReadInput::Reply(input_bytes.as_deref().map(|v| Bytes {
                                prefix: v,
                                total_len: v.len(),
                            }))
                        }
                        Ok(_) => ReadInput::Reply(None),
                        Err(f) => ReadInput::Failed(f),
                    }
                }
                ReadAction::Acquire { .. } => {
                    match self.try_send(inst, OpKind::Lease, |_| Vec::new()) {
                        Ok(_) => ReadInput::LeaseReply(1),
                        Err(f) => ReadInput::Failed(f),
                    }
                }
                ReadAction::Answer(a) => {
                    let bytes = match a.source {
                        Source::None => return Ok(None),
                        Source::Redis => reply.clone(),
                        Source::Tier | Source::Kept => tier_bytes.clone(),
                        Source::OwnWrite | Source::Poll => None,
                    };
                    prop_assert!(bytes.is_some(), "served from {:?} without bytes", a.source);
                    return Ok(bytes.map(|b| (a.served, b)));
                }
                other => {
                    prop_assert!(false, "no lease is lost here: {:?}", other);
                    return Ok(None);
                }
            };
            step = self.insts[inst]
                .engine
                .read_step(&mut m, input, now)
                .unwrap();
        }
        prop_assert!(false, "the read never ended");
        Ok(None)
    }

    /// Redis answers and every instance catches up: what any of them knows is in Redis.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        self.up = true;
        self.lose.clear();
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
            for n in &inst.learned {
                let r = &self.revs[*n];
                let single = r.single();
                for tag in &r.tags {
                    prop_assert!(
                        self.redis.tags.covers(tag, &single),
                        "instance {} knew revalidation #{} {:?} of {} at {}; Redis lacks it after settling",
                        i, n, r.rev, tag, r.at.0 - T0
                    );
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_read_serves_what_a_resolved_revalidation_invalidated(
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let mut w = World::new(false);
        for op in &ops {
            w.apply(op)?;
        }
        w.settle()?;
    }

    #[test]
    fn following_by_push_a_read_is_within_the_bound_or_pulled(
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let mut w = World::new(true);
        for op in &ops {
            w.apply(op)?;
        }
        w.settle()?;
    }
}
