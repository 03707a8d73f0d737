//! Deterministic simulation of the lease protocol.
//!
//! A virtual clock, a fake store that executes the lease scripts exactly as the Lua does
//! (atomically, at the instant a command "arrives") and keeps real envelopes, and 3 to 10
//! simulated instances, each with its own [`Engine`] stepping one [`ReadMachine`] per request
//! (the machine the host drives) and writing with `plan_set` / `plan_entry_write`, racing for
//! the same keys with random network delays,
//! random regeneration times and holders that crash mid-regeneration. proptest drives the
//! randomness, so a failing schedule shrinks to a small one.
//!
//! Properties:
//! 1. never two holders of one live lease: whenever an instance's engine believes it holds
//!    a lease, the store's live lease on that key carries that instance's token;
//! 2. every follower gets a value or falls back within its budget (plus one round trip);
//!    every request ends;
//! 3. no lease outlives its TTL: the `PX` planned is the configured TTL, and every lease the
//!    store saw ended (released or expired) within it;
//! 4. without crashes, and with regenerations shorter than the budget and the TTL, each key
//!    is regenerated exactly once however many requests race for it;
//! 5. a request whose consumer caches (a prerender, an ISR regeneration: about half of them,
//!    at random) never ends on a stale entry, as it is or as fresh: it is served only what a
//!    read found fresh, or it regenerates;
//! 6. a holder that ends without writing (its result not cacheable: `lease_release.lua`)
//!    holds no follower up: every follower waiting on that key ends within one poll interval
//!    of the release (plus the round trips in flight), unless another request took a new
//!    lease on the key meanwhile.
//!
//! Holders renew their leases (`lease_renew.lua`) while they regenerate, so regenerations
//! longer than the TTL (down to 200 ms here) still happen once (property 4), and a lease is
//! never extended past its cap of [`MAX_RENEWED_TTLS`] TTLs (property 3).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use fleetcache_core::lease::{Consumer, EntryWrite, MAX_RENEWED_TTLS, POLL_MAX_MS};
use fleetcache_core::read_machine::{
    Bytes, ReadAction, ReadInput, ReadMachine, RenewInput, RenewMachine, RenewStep, Served,
};
use fleetcache_core::stats::LeaseEvent;
use fleetcache_core::{Config, Engine, EntryKind, Interface, Millis, SetInput};
use proptest::prelude::*;

const IFACE: Interface<'static> = Interface::UseCache("default");
/// Simulated time starts here, so every written entry is newer than an initial stale one
/// (created at 0).
const T0: u64 = 1_000;

#[derive(Clone, Debug)]
struct Req {
    inst: usize,
    key: usize,
    at: u64,
    /// The consumer will store the answer in a server cache.
    caches: bool,
}

#[derive(Clone, Debug)]
struct Scenario {
    instances: usize,
    keys: usize,
    /// Per key: true when an old, stale entry exists at the start (else missing).
    initial_stale: Vec<bool>,
    reqs: Vec<Req>,
    /// One-way network delays, drawn in turn.
    delays: Vec<u64>,
    /// Regeneration times, drawn in turn.
    regen: Vec<u64>,
    /// Whether a regeneration crashes its process, drawn in turn.
    crash: Vec<bool>,
    /// Whether a regeneration yields nothing cacheable (no write; the lease is released),
    /// drawn in turn.
    release: Vec<bool>,
    ttl_ms: u64,
    wait_ms: u64,
}

/// A stored entry: its envelope, and its creation time (what `lease_acquire.lua` compares).
#[derive(Clone, Debug)]
struct StoredEntry {
    ts: u64,
    bytes: Vec<u8>,
}

#[derive(Clone, Debug)]
struct StoredLease {
    token: String,
    set_at: u64,
    /// When it was set or last extended.
    extended_at: u64,
    expires_at: u64,
}

#[derive(Default)]
struct Store {
    entries: HashMap<usize, StoredEntry>,
    leases: HashMap<usize, StoredLease>,
    /// (set_at, extended_at, ended_at) of every lease that ended.
    ended: Vec<(u64, u64, u64)>,
    /// (key, at) of every release without a write.
    released: Vec<(usize, u64)>,
    /// (key, at) of every lease taken.
    taken: Vec<(usize, u64)>,
}

impl Store {
    /// The live lease of `key` at `now` (expiring it, Redis-style, when its time is up).
    fn lease(&mut self, key: usize, now: u64) -> Option<&StoredLease> {
        if let Some(l) = self.leases.get(&key) {
            if l.expires_at <= now {
                self.ended.push((l.set_at, l.extended_at, l.expires_at));
                self.leases.remove(&key);
            }
        }
        self.leases.get(&key)
    }

    fn get(&self, key: usize) -> Option<Vec<u8>> {
        self.entries.get(&key).map(|e| e.bytes.clone())
    }

    /// `lease_acquire.lua`.
    fn acquire(&mut self, key: usize, token: &str, px: u64, seen: f64, now: u64) -> i64 {
        if let Some(e) = self.entries.get(&key) {
            if e.ts as f64 > seen {
                return 2;
            }
        }
        if self.lease(key, now).is_some() {
            return 0;
        }
        self.leases.insert(
            key,
            StoredLease {
                token: token.to_owned(),
                set_at: now,
                extended_at: now,
                expires_at: now + px,
            },
        );
        self.taken.push((key, now));
        1
    }

    /// `lease_renew.lua`.
    fn renew(&mut self, key: usize, token: &str, px: u64, now: u64) -> bool {
        self.lease(key, now);
        match self.leases.get_mut(&key) {
            Some(l) if l.token == token => {
                l.extended_at = now;
                l.expires_at = now + px;
                true
            }
            _ => false,
        }
    }

    /// `lease_release.lua`.
    fn release(&mut self, key: usize, token: &str, now: u64) {
        let mine = self.lease(key, now).is_some_and(|l| l.token == token);
        if mine {
            if let Some(l) = self.leases.remove(&key) {
                self.ended.push((l.set_at, l.extended_at, now));
                self.released.push((key, now));
            }
        }
    }

    /// `lease_write.lua` (or a plain SET when `token` is None).
    fn write(&mut self, key: usize, token: Option<&str>, entry: StoredEntry, now: u64) {
        self.entries.insert(key, entry);
        let Some(token) = token else { return };
        let mine = self.lease(key, now).is_some_and(|l| l.token == token);
        if mine {
            if let Some(l) = self.leases.remove(&key) {
                self.ended.push((l.set_at, l.extended_at, now));
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Start(usize),
    /// A `GET` (or, `poll`, a `lease_poll.lua`) of request `r` reaches the store.
    ReadAtStore(usize, bool),
    /// Request, poll, the entry read, whether the lease existed.
    ReadReply(usize, bool, Option<Vec<u8>>, bool),
    /// The lease request's token, `PX` and seen timestamp reach the store.
    AcquireAtStore(usize, String, u64, String),
    AcquireReply(usize, i64),
    Timer(usize),
    RegenDone(usize),
    WriteAtStore(usize, Option<String>, u64, Vec<u8>),
    ReleaseAtStore(usize, String),
    /// The holder's renewal timer of request `r`.
    RenewDue(usize),
    RenewAtStore(usize, String, u64),
    RenewReply(usize, bool),
}

#[derive(Clone, Debug, PartialEq)]
enum End {
    Served,
    Regenerated,
}

struct ReqState {
    read: Option<ReadMachine>,
    renewal: Option<RenewMachine>,
    started: u64,
    follower_on_miss: bool,
    end: Option<(End, u64)>,
}

struct Sim {
    sc: Scenario,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    store: Store,
    engines: Vec<Engine>,
    dead: Vec<bool>,
    reqs: Vec<ReqState>,
    delay_i: usize,
    regen_i: usize,
    crash_i: usize,
    release_i: usize,
    regenerations: HashMap<usize, u32>,
    max_delay: u64,
}

fn key_name(k: usize) -> String {
    format!("k{k}")
}

/// The envelope of `key` created at `ts`: fresh for an hour.
fn envelope(e: &Engine, key: usize, ts: u64, revalidate: f64) -> Vec<u8> {
    let parts = [1u32];
    let plan = e
        .plan_set(
            &IFACE,
            &key_name(key),
            SetInput {
                kind: EntryKind::UseCache,
                timestamp: Millis(ts as f64),
                revalidate,
                expire: 86_400.0,
                stale: 0.0,
                tags: &[],
                meta: &[],
                parts: &parts,
                now: Millis(ts as f64),
            },
        )
        .unwrap();
    let mut v = plan.header;
    v.push(b'x');
    v
}

impl Sim {
    fn new(sc: Scenario) -> Sim {
        let engines: Vec<Engine> = (0..sc.instances)
            .map(|_| {
                let mut e = Engine::new(Config {
                    lease_ttl_ms: sc.ttl_ms as f64,
                    lease_wait_ms: sc.wait_ms as f64,
                    ..Config::default()
                })
                .unwrap();
                // No tag state to load: the reads go straight to their sources.
                e.mark_standalone();
                e
            })
            .collect();
        let mut store = Store::default();
        for (k, stale) in sc.initial_stale.iter().enumerate() {
            if *stale {
                // Created at 0 with a half-second revalidate: stale from the first request on.
                let bytes = envelope(&engines[0], k, 0, 0.5);
                store.entries.insert(k, StoredEntry { ts: 0, bytes });
            }
        }
        let max_delay = sc.delays.iter().copied().max().unwrap_or(0);
        let reqs = sc
            .reqs
            .iter()
            .map(|_| ReqState {
                read: None,
                renewal: None,
                started: 0,
                follower_on_miss: false,
                end: None,
            })
            .collect();
        let mut sim = Sim {
            dead: vec![false; sc.instances],
            engines,
            store,
            reqs,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            delay_i: 0,
            regen_i: 0,
            crash_i: 0,
            release_i: 0,
            regenerations: HashMap::new(),
            max_delay,
            sc,
        };
        for (i, r) in sim.sc.reqs.clone().iter().enumerate() {
            sim.at(T0 + r.at, Ev::Start(i));
        }
        sim
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, ev)));
    }

    fn delay(&mut self) -> u64 {
        let d = self.sc.delays[self.delay_i % self.sc.delays.len()];
        self.delay_i += 1;
        d
    }

    fn inst(&self, r: usize) -> usize {
        self.sc.reqs[r].inst
    }

    fn key(&self, r: usize) -> usize {
        self.sc.reqs[r].key
    }

    fn token(r: usize, inst: usize) -> String {
        format!("i{inst}-r{r}")
    }

    fn run(&mut self) -> Result<(), TestCaseError> {
        let mut steps = 0u32;
        while let Some(Reverse((t, _, ev))) = self.queue.pop() {
            steps += 1;
            prop_assert!(steps < 1_000_000, "simulation did not settle");
            prop_assert!(t >= self.now);
            self.now = t;
            self.handle(ev)?;
            self.check_holders()?;
        }
        Ok(())
    }

    /// Hands request `r`'s machine one input and carries out the steps it asks for, up to
    /// the next one that waits for the network or a timer.
    fn feed(&mut self, r: usize, input: ReadInput<'_>) -> Result<(), TestCaseError> {
        let inst = self.inst(r);
        let now = Millis(self.now as f64);
        let Some(mut read) = self.reqs[r].read.take() else {
            prop_assert!(false, "request {} has no read", r);
            return Ok(());
        };
        let lost = input == ReadInput::LeaseReply(0);
        let mut step = self.engines[inst].read_step(&mut read, input, now).unwrap();
        loop {
            // This host keeps no tier: nothing is ever given back.
            let next = match &step.action {
                ReadAction::Refresh => ReadInput::Refreshed,
                ReadAction::OwnWrite => ReadInput::OwnWrite(None),
                ReadAction::PeekTier => ReadInput::Tier(None),
                ReadAction::PeekFallback => ReadInput::Fallback(None),
                _ => break,
            };
            step = self.engines[inst].read_step(&mut read, next, now).unwrap();
        }
        match step.action {
            ReadAction::Get { .. } => {
                let d = self.delay();
                self.at(self.now + d, Ev::ReadAtStore(r, false));
            }
            ReadAction::Poll { .. } => {
                if lost {
                    self.reqs[r].follower_on_miss = true;
                }
                let d = self.delay();
                self.at(self.now + d, Ev::ReadAtStore(r, true));
            }
            ReadAction::Wait { delay_ms } => {
                if lost {
                    self.reqs[r].follower_on_miss = true;
                }
                prop_assert!((0.0..=50.0).contains(&delay_ms));
                self.at(self.now + delay_ms.ceil() as u64, Ev::Timer(r));
            }
            ReadAction::Acquire { call, .. } => {
                // Property 3: the lease is set with the configured TTL, nothing longer.
                let px: u64 = call.args[1].parse().unwrap();
                prop_assert_eq!(px, self.sc.ttl_ms);
                let d = self.delay();
                let ev = Ev::AcquireAtStore(r, call.args[0].clone(), px, call.args[2].clone());
                self.at(self.now + d, ev);
            }
            ReadAction::NeedMore { .. } => {
                prop_assert!(false, "whole values are given: no NeedMore");
            }
            ReadAction::Answer(a) => {
                // Property 5.
                if self.sc.reqs[r].caches {
                    prop_assert!(
                        matches!(a.served, Served::Fresh | Served::Miss),
                        "request {} of a caching consumer got a stale entry ({:?})",
                        r,
                        a.served
                    );
                }
                if a.holds_lease {
                    // The host starts the holder's renewal timer.
                    let mut renewal = read.renewal().unwrap();
                    let s = self.engines[inst]
                        .renew_step(&mut renewal, RenewInput::Start, now)
                        .unwrap();
                    let RenewStep::Wait { delay_ms } = s else {
                        prop_assert!(false, "a renewal begins with a wait: {:?}", s);
                        return Ok(());
                    };
                    self.reqs[r].renewal = Some(renewal);
                    self.at(self.now + delay_ms as u64, Ev::RenewDue(r));
                }
                let end = if a.served == Served::Miss {
                    End::Regenerated
                } else {
                    End::Served
                };
                self.finish(r, end)?;
                if a.regenerates {
                    self.regenerate(r);
                }
            }
            _ => {}
        }
        self.reqs[r].read = Some(read);
        Ok(())
    }

    fn handle(&mut self, ev: Ev) -> Result<(), TestCaseError> {
        match ev {
            Ev::Start(r) => {
                let inst = self.inst(r);
                if self.dead[inst] {
                    self.reqs[r].end = Some((End::Served, self.now)); // never ran
                    return Ok(());
                }
                let consumer = Consumer::from_caches(self.sc.reqs[r].caches);
                let read = self.engines[inst].read_use_cache(
                    &IFACE,
                    &key_name(self.key(r)),
                    Vec::new(),
                    consumer,
                    Self::token(r, inst),
                    Millis(self.now as f64),
                );
                self.reqs[r].read = Some(read);
                self.reqs[r].started = self.now;
                self.feed(r, ReadInput::Start)?;
            }
            Ev::ReadAtStore(r, poll) => {
                // A poll is `lease_poll.lua`: the entry and the lease, read together.
                let key = self.key(r);
                let entry = self.store.get(key);
                let leased = self.store.lease(key, self.now).is_some();
                let d = self.delay();
                self.at(self.now + d, Ev::ReadReply(r, poll, entry, leased));
            }
            Ev::ReadReply(r, poll, entry, leased) => {
                if self.dead[self.inst(r)] {
                    return Ok(());
                }
                let entry = entry.as_deref().map(|v| Bytes {
                    prefix: v,
                    total_len: v.len(),
                });
                let input = if poll {
                    ReadInput::Polled { entry, leased }
                } else {
                    ReadInput::Reply(entry)
                };
                self.feed(r, input)?;
            }
            Ev::AcquireAtStore(r, token, px, seen) => {
                let seen: f64 = seen.parse().unwrap();
                let reply = self.store.acquire(self.key(r), &token, px, seen, self.now);
                let d = self.delay();
                self.at(self.now + d, Ev::AcquireReply(r, reply));
            }
            Ev::AcquireReply(r, reply) => {
                if self.dead[self.inst(r)] {
                    return Ok(());
                }
                self.feed(r, ReadInput::LeaseReply(reply))?;
            }
            Ev::Timer(r) => {
                if self.dead[self.inst(r)] {
                    return Ok(());
                }
                self.feed(r, ReadInput::Timer)?;
            }
            Ev::RegenDone(r) => {
                let inst = self.inst(r);
                let crash = self.sc.crash[self.crash_i % self.sc.crash.len()];
                self.crash_i += 1;
                if crash {
                    // The process dies mid-regeneration: no write, no release.
                    self.dead[inst] = true;
                    return Ok(());
                }
                let key = key_name(self.key(r));
                let release = self.sc.release[self.release_i % self.sc.release.len()];
                self.release_i += 1;
                if release {
                    // Nothing cacheable: no write; the lease, when held, is let go.
                    if let Some(call) = self.engines[inst].plan_lease_release(&IFACE, &key) {
                        prop_assert_eq!(call.script.name, "lease_release");
                        let d = self.delay();
                        self.at(self.now + d, Ev::ReleaseAtStore(r, call.args[0].clone()));
                    }
                    return Ok(());
                }
                let bytes = envelope(&self.engines[inst], self.key(r), self.now, 3_600.0);
                let token = match self.engines[inst].plan_entry_write(&IFACE, &key, 60_000) {
                    EntryWrite::Set => None,
                    EntryWrite::WriteAndRelease(call) => {
                        prop_assert_eq!(call.script.name, "lease_write");
                        Some(call.args[1].clone())
                    }
                };
                let d = self.delay();
                self.at(self.now + d, Ev::WriteAtStore(r, token, self.now, bytes));
            }
            Ev::WriteAtStore(r, token, ts, bytes) => {
                let key = self.key(r);
                let entry = StoredEntry { ts, bytes };
                self.store.write(key, token.as_deref(), entry, self.now);
            }
            Ev::ReleaseAtStore(r, token) => {
                let key = self.key(r);
                self.store.release(key, &token, self.now);
            }
            Ev::RenewDue(r) => {
                let inst = self.inst(r);
                if self.dead[inst] {
                    return Ok(());
                }
                let now = Millis(self.now as f64);
                let Some(mut renewal) = self.reqs[r].renewal.take() else {
                    return Ok(());
                };
                let step = self.engines[inst]
                    .renew_step(&mut renewal, RenewInput::Timer, now)
                    .unwrap();
                let RenewStep::Send { call, .. } = step else {
                    return Ok(()); // written, released, lapsed or capped: the timer stops
                };
                prop_assert_eq!(call.script.name, "lease_renew");
                let px: u64 = call.args[1].parse().unwrap();
                prop_assert!((1..=self.sc.ttl_ms).contains(&px));
                self.reqs[r].renewal = Some(renewal);
                let d = self.delay();
                self.at(self.now + d, Ev::RenewAtStore(r, call.args[0].clone(), px));
            }
            Ev::RenewAtStore(r, token, px) => {
                let ok = self.store.renew(self.key(r), &token, px, self.now);
                let d = self.delay();
                self.at(self.now + d, Ev::RenewReply(r, ok));
            }
            Ev::RenewReply(r, ok) => {
                let inst = self.inst(r);
                if self.dead[inst] {
                    return Ok(());
                }
                let Some(mut renewal) = self.reqs[r].renewal.take() else {
                    return Ok(());
                };
                let now = Millis(self.now as f64);
                let step = self.engines[inst]
                    .renew_step(&mut renewal, RenewInput::Sent(ok), now)
                    .unwrap();
                if let RenewStep::Wait { delay_ms } = step {
                    self.reqs[r].renewal = Some(renewal);
                    self.at(self.now + delay_ms as u64, Ev::RenewDue(r));
                }
            }
        }
        Ok(())
    }

    fn regenerate(&mut self, r: usize) {
        let d = self.sc.regen[self.regen_i % self.sc.regen.len()];
        self.regen_i += 1;
        *self.regenerations.entry(self.key(r)).or_default() += 1;
        self.at(self.now + d, Ev::RegenDone(r));
    }

    fn finish(&mut self, r: usize, end: End) -> Result<(), TestCaseError> {
        prop_assert!(self.reqs[r].end.is_none(), "request {} ended twice", r);
        // Property 2: a follower on a miss ends (served or fallen back) within its budget
        // plus the round trip of its last poll (poll delays are whole ms here: +1). The
        // flight of a 'use cache' read counts from the request's start.
        if self.reqs[r].follower_on_miss {
            let started = self.reqs[r].started;
            let bound = started + self.sc.wait_ms + 2 * self.max_delay + 1;
            prop_assert!(
                self.now <= bound,
                "follower {} ended at {} > budget end {}",
                r,
                self.now,
                bound
            );
            // Property 6: a release without a write ends the wait within one poll interval
            // (plus the round trips of a poll in flight), unless a new lease was taken.
            let key = self.key(r);
            for &(k, at) in &self.store.released {
                let relet = self
                    .store
                    .taken
                    .iter()
                    .any(|&(tk, t)| tk == key && t >= at && t <= self.now);
                if k == key && at >= started && !relet {
                    let bound = at + POLL_MAX_MS as u64 + 3 * self.max_delay + 1;
                    prop_assert!(
                        self.now <= bound,
                        "follower {} ended at {}, released at {}: > {}",
                        r,
                        self.now,
                        at,
                        bound
                    );
                }
            }
        }
        self.reqs[r].end = Some((end, self.now));
        Ok(())
    }

    /// Property 1.
    fn check_holders(&mut self) -> Result<(), TestCaseError> {
        let now = self.now;
        for k in 0..self.sc.keys {
            let name = key_name(k);
            let holders: Vec<usize> = (0..self.sc.instances)
                .filter(|i| self.engines[*i].holds_lease(&IFACE, &name, Millis(now as f64)))
                .collect();
            prop_assert!(holders.len() <= 1, "two holders of {}: {:?}", name, holders);
            if let Some(i) = holders.first() {
                let live = self.store.lease(k, now).map(|l| l.token.clone());
                let prefix = format!("i{i}-");
                prop_assert!(
                    live.as_deref().is_some_and(|t| t.starts_with(&prefix)),
                    "instance {} believes it holds {} at {} but the store has {:?}",
                    i,
                    name,
                    now,
                    live
                );
            }
        }
        Ok(())
    }
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (3usize..=10, 1usize..=3).prop_flat_map(|(instances, keys)| {
        (
            prop::collection::vec(any::<bool>(), keys),
            prop::collection::vec((0..instances, 0..keys, 0u64..3_000, any::<bool>()), 1..40),
            prop::collection::vec(0u64..=20, 1..16),
            prop::collection::vec(1u64..=2_500, 1..8),
            prop::collection::vec(prop::bool::weighted(0.2), 1..8),
            prop::collection::vec(prop::bool::weighted(0.2), 1..8),
            200u64..=8_000,
            0u64..=3_000,
        )
            .prop_map(
                move |(initial_stale, reqs, delays, regen, crash, release, ttl_ms, wait_ms)| {
                    Scenario {
                        instances,
                        keys,
                        initial_stale,
                        reqs: reqs
                            .into_iter()
                            .map(|(inst, key, at, caches)| Req {
                                inst,
                                key,
                                at,
                                caches,
                            })
                            .collect(),
                        delays,
                        regen,
                        crash,
                        release,
                        ttl_ms,
                        wait_ms,
                    }
                },
            )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn leases_hold_their_promises(sc in scenario()) {
        let no_crash = sc.crash.iter().all(|c| !c) && sc.release.iter().all(|r| !r);
        let max_regen = sc.regen.iter().copied().max().unwrap_or(0);
        let max_delay = sc.delays.iter().copied().max().unwrap_or(0);
        let ttl = sc.ttl_ms;
        let wait = sc.wait_ms;
        let requested: Vec<usize> = {
            let mut k: Vec<usize> = sc.reqs.iter().map(|r| r.key).collect();
            k.sort_unstable();
            k.dedup();
            k
        };
        let mut sim = Sim::new(sc);
        sim.run()?;
        // Every request ended.
        for (i, r) in sim.reqs.iter().enumerate() {
            let dead = sim.dead[sim.sc.reqs[i].inst];
            prop_assert!(r.end.is_some() || dead, "request {} never ended", i);
        }
        // Property 3: every lease ended within its TTL of being set or extended, and within
        // its cap of being set. The cap is counted between the requests' sending times (the
        // core knows no other): a renewal that travels longer than the acquisition did moves
        // the end by the difference, at most one network delay.
        let cap = (MAX_RENEWED_TTLS * ttl as f64) as u64;
        for (set_at, extended_at, ended) in &sim.store.ended {
            prop_assert!(ended - extended_at <= ttl, "lease lived {} ms > {}", ended - extended_at, ttl);
            prop_assert!(ended - set_at <= cap + max_delay, "lease renewed {} ms > {} + {}", ended - set_at, cap, max_delay);
        }
        for l in sim.store.leases.values() {
            prop_assert!(l.expires_at - l.extended_at <= ttl);
            prop_assert!(l.expires_at - l.set_at <= cap + max_delay);
        }
        // Property 4: one regeneration per key when nothing crashes or ends without a write,
        // and regenerations finish within the budget and the renewal cap (not the TTL: the
        // holder renews its lease).
        let slack = 8 * max_delay + 200;
        if no_crash && max_regen + slack < wait && max_regen + slack < cap {
            for k in requested {
                prop_assert_eq!(sim.regenerations.get(&k).copied().unwrap_or(0), 1, "key {}", k);
            }
        }
    }
}

/// The same simulation with a handwritten schedule: ten instances on one missing key, the
/// holder crashes, the followers fall back within the budget, a later request takes over
/// once the lease has expired.
#[test]
fn crashed_holder_blocks_no_one_beyond_its_lease() {
    let sc = Scenario {
        instances: 10,
        keys: 1,
        initial_stale: vec![false],
        reqs: (0..10)
            .map(|i| Req {
                inst: i,
                key: 0,
                at: i as u64,
                caches: false,
            })
            .chain(std::iter::once(Req {
                inst: 9,
                key: 0,
                at: 3_000,
                caches: false,
            }))
            .collect(),
        delays: vec![1],
        regen: vec![100],
        crash: vec![true, false],
        release: vec![false],
        ttl_ms: 2_000,
        wait_ms: 500,
    };
    let mut sim = Sim::new(sc);
    sim.run().unwrap();
    let fell_back: u64 = sim
        .engines
        .iter()
        .map(|e| e.stats().leases(LeaseEvent::WaitTimedOut))
        .sum();
    assert_eq!(fell_back, 9, "the nine followers fall back after 500 ms");
    // The holder crashed; nine fallbacks; the late request sees their write and is served.
    assert!(matches!(sim.reqs[10].end, Some((End::Served, _))));
    assert!(sim.store.leases.is_empty() || sim.store.lease(0, 10_000).is_none());
}
