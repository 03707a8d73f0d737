//! Deterministic simulation of the lease protocol.
//!
//! A virtual clock, a fake store that executes the lease scripts exactly as the Lua does
//! (atomically, at the instant a command "arrives") and keeps real envelopes, and 3 to 10
//! simulated instances, each with its own [`Engine`] stepping one [`ReadMachine`] per request
//! (the machine the host drives), its [`RenewMachine`] while it holds the lease, and a
//! [`WriteMachine`] for its write or its release, racing for the same keys with random network
//! delays, random regeneration times and holders that crash mid-regeneration. Every command
//! goes through the instance's circuit breaker and arms the host's deadline (its budget);
//! some replies are lost, and one instance's event loop may stall for about a second, so
//! replies arrive past their budget and count as timeouts. The host's tier keeps what the
//! machines say to keep, and its own writes. proptest drives the randomness, so a failing
//! schedule shrinks to a small one; `PROPTEST_CASES` sets the number of cases.
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
//!    while its lease is live holds no follower up: every follower waiting on that key ends
//!    within one poll interval of the holder giving up (plus the round trips of the release
//!    and of a poll in flight), unless another request took a new lease on the key meanwhile.
//!
//! Properties 2 and 6 bound times on every schedule: a lost reply costs its command's budget
//! (the host's deadline) where a round trip was counted, and a stall of the follower's
//! instance moves the start of what is left to the stall's end. Property 4 applies to
//! schedules where no reply is lost or held up by a stall: a request whose lease request gets
//! no answer regenerates as if there were no leases, by design, and a holder stalled past the
//! followers' budget lets them fall back; the others hold on every schedule.
//!
//! Holders renew their leases (`lease_renew.lua`) while they regenerate, so regenerations
//! longer than the TTL (down to 200 ms here) still happen once (property 4), and a lease is
//! never extended past its cap of [`MAX_RENEWED_TTLS`] TTLs (property 3).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use fleetcache_core::guard::{Admission, OpKind};
use fleetcache_core::lease::{Consumer, MAX_RENEWED_TTLS, POLL_MAX_MS};
use fleetcache_core::read_machine::{
    Bytes, Failure, ReadAction, ReadInput, ReadMachine, RenewInput, RenewMachine, RenewStep,
    Served, TierAction,
};
use fleetcache_core::stats::LeaseEvent;
use fleetcache_core::write_machine::{WriteInput, WriteMachine, WriteRequest, WriteStep};
use fleetcache_core::{CallResult, Config, Engine, Interface, Millis, Permit};
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
    /// Whether a reply is lost (the command ran at the store), drawn in turn: the host's
    /// deadline fails it.
    lost: Vec<bool>,
    /// One instance's event loop blocked from `T0 + at` for `len` ms (instance, at, len):
    /// its replies and timers wait, and replies past their budget are timeouts.
    stall: Option<(usize, u64, u64)>,
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
    /// A `GET` (or, `poll`, a `lease_poll.lua`) of request `r` reaches the store (the last
    /// field of each command event: its flight's id).
    ReadAtStore(usize, bool, u64),
    /// Request, poll, the entry read, whether the lease existed.
    ReadReply(usize, bool, Option<Vec<u8>>, bool, u64),
    /// The lease request's token, `PX` and seen timestamp reach the store.
    AcquireAtStore(usize, String, u64, String, u64),
    AcquireReply(usize, i64, u64),
    Timer(usize),
    RegenDone(usize),
    /// The store, with the lease token when it is `lease_write.lua`, and the value.
    WriteAtStore(usize, Option<String>, Vec<u8>, u64),
    ReleaseAtStore(usize, String, u64),
    /// The reply to a write or a release.
    WriteReply(usize, u64),
    /// The holder's renewal timer of request `r`.
    RenewDue(usize),
    RenewAtStore(usize, String, u64, u64),
    RenewReply(usize, bool, u64),
    /// The host's deadline of a command (its budget) fires.
    Deadline(usize, Slot, u64),
}

/// The commands a request may have in flight at once, one of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Read = 0,
    Renew = 1,
    Write = 2,
}

#[derive(Clone, Debug, PartialEq)]
enum End {
    Served,
    Regenerated,
}

struct ReqState {
    read: Option<ReadMachine>,
    renewal: Option<RenewMachine>,
    write: Option<WriteMachine>,
    /// The command in flight per [`Slot`]: its id and the breaker's permit.
    flights: [Option<(u64, Permit)>; 3],
    /// When its regeneration began.
    regen_began: u64,
    /// Its read won the lease.
    held: bool,
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
    /// Per instance: the tier's bytes by key (the host's map beside the engine's index).
    tiers: Vec<HashMap<usize, Vec<u8>>>,
    lost_i: usize,
    flight_seq: u64,
    /// (key, at) of every lease holder that ended without a write.
    abandoned: Vec<(usize, u64)>,
}

fn key_name(k: usize) -> String {
    format!("k{k}")
}

/// The envelope of `key` created at `ts`, as the write machine plans it.
fn envelope(e: &mut Engine, key: usize, ts: u64, revalidate: f64) -> Vec<u8> {
    let now = Millis(ts as f64);
    let name = key_name(key);
    let request = WriteRequest::UseCache {
        iface: IFACE,
        cache_key: &name,
        tags: &[],
        timestamp: now,
        revalidate,
        expire: 86_400.0,
        stale: 0.0,
        payload_len: 1,
    };
    let mut m = e.write_start(request, now);
    let WriteStep::Store(store) = e.write_first(&mut m, now) else {
        panic!("the seed entry is stored");
    };
    let mut v = store.header;
    v.push(b'x');
    v
}

/// The creation time in an envelope's header, as `lease_acquire.lua` reads it.
fn created(value: &[u8]) -> u64 {
    fleetcache_core::decode_header(value, value.len())
        .map(|h| h.meta.timestamp.0 as u64)
        .unwrap()
}

impl Sim {
    fn new(sc: Scenario) -> Sim {
        let mut engines: Vec<Engine> = (0..sc.instances)
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
                let bytes = envelope(&mut engines[0], k, 0, 0.5);
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
                write: None,
                flights: [None; 3],
                regen_began: 0,
                held: false,
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
            tiers: vec![HashMap::new(); sc.instances],
            lost_i: 0,
            flight_seq: 0,
            abandoned: Vec::new(),
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

    /// The longest a command of a request can keep it waiting once sent: a round trip, or,
    /// when replies may be lost, the host's deadline (the command's budget) if that is longer.
    fn round_trip(&self) -> u64 {
        let trip = 2 * self.max_delay;
        if self.sc.lost.iter().any(|l| *l) {
            let e = &self.engines[0];
            let budget = e.budget_ms(OpKind::Read).max(e.budget_ms(OpKind::Lease));
            trip.max(budget.ceil() as u64)
        } else {
            trip
        }
    }

    /// When a stall of instance `inst`'s event loop ends (0: it has none): nothing of it runs
    /// before then.
    fn stall_end(&self, inst: usize) -> u64 {
        match self.sc.stall {
            Some((si, at, len)) if si == inst => T0 + at + len,
            _ => 0,
        }
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

    /// Sends a command of request `r` in `slot` through its instance's breaker and arms the
    /// host's deadline for it: the flight's id, or the failure to hand the machine at once.
    fn send(&mut self, r: usize, slot: Slot, kind: OpKind) -> Result<u64, Failure> {
        let inst = self.inst(r);
        match self.engines[inst].admit(kind, Millis(self.now as f64)) {
            Admission::Skip => Err(Failure::CircuitOpen),
            Admission::Send { permit, budget_ms } => {
                self.flight_seq += 1;
                let id = self.flight_seq;
                self.reqs[r].flights[slot as usize] = Some((id, permit));
                self.at(
                    self.now + budget_ms.ceil() as u64,
                    Ev::Deadline(r, slot, id),
                );
                Ok(id)
            }
        }
    }

    /// A reply of flight `id` reached the host: true when it is still awaited (not timed
    /// out); its success is reported to the breaker.
    fn landed(&mut self, r: usize, slot: Slot, id: u64) -> bool {
        match self.reqs[r].flights[slot as usize] {
            Some((current, permit)) if current == id => {
                self.reqs[r].flights[slot as usize] = None;
                let inst = self.inst(r);
                self.engines[inst].report(permit, CallResult::Success, Millis(self.now as f64));
                true
            }
            _ => false,
        }
    }

    /// Schedules the reply of a command that ran at the store, unless it is lost.
    fn reply(&mut self, ev: Ev) {
        let lost = self.sc.lost[self.lost_i % self.sc.lost.len()];
        self.lost_i += 1;
        if !lost {
            let d = self.delay();
            self.at(self.now + d, ev);
        }
    }

    /// Applies a step's tier action to the bytes the host gave with the input before, as the
    /// host does (the tier's map beside the engine's index).
    fn tier(&mut self, inst: usize, key: usize, action: TierAction, given: Option<&[u8]>) {
        let name = self.engines[inst].entry_key(&IFACE, &key_name(key));
        match action {
            TierAction::None => {}
            TierAction::Drop => {
                self.tiers[inst].remove(&key);
            }
            TierAction::Keep {
                until,
                outage_only,
                order,
                ..
            } => {
                if let Some(v) = given {
                    self.remember(inst, key, &name, v.to_vec(), (until, order), outage_only);
                }
            }
        }
    }

    fn remember(
        &mut self,
        inst: usize,
        key: usize,
        name: &str,
        value: Vec<u8>,
        (until, order): (Millis, u64),
        outage_only: bool,
    ) {
        let lru = self.engines[inst].lru_mut();
        // One key per request: nothing is evicted at the default memory size.
        let evicted = lru.insert_ordered(name, value.len() as u64, until, order);
        assert!(evicted.is_empty());
        if outage_only {
            lru.mark_outage_only(name);
        }
        if lru.contains(name) {
            self.tiers[inst].insert(key, value);
        }
    }

    /// Hands request `r`'s machine one input (`given`: the bytes it carries) and carries out
    /// the steps it asks for, up to the next one that waits for the network or a timer.
    fn feed(
        &mut self,
        r: usize,
        input: ReadInput<'_>,
        given: Option<Vec<u8>>,
    ) -> Result<(), TestCaseError> {
        let inst = self.inst(r);
        let key = self.key(r);
        let now = Millis(self.now as f64);
        let Some(mut read) = self.reqs[r].read.take() else {
            prop_assert!(false, "request {} has no read", r);
            return Ok(());
        };
        let lost = input == ReadInput::LeaseReply(0);
        let mut step = self.engines[inst].read_step(&mut read, input, now).unwrap();
        let mut given = given;
        loop {
            self.tier(inst, key, step.tier, given.as_deref());
            let peek = matches!(step.action, ReadAction::PeekTier);
            match step.action {
                ReadAction::Refresh => {
                    given = None;
                    step = self.engines[inst]
                        .read_step(&mut read, ReadInput::Refreshed, now)
                        .unwrap();
                }
                // Writes come after their read's answer here: none is in flight at a read.
                ReadAction::OwnWrite => {
                    given = None;
                    step = self.engines[inst]
                        .read_step(&mut read, ReadInput::OwnWrite(None), now)
                        .unwrap();
                }
                ReadAction::PeekTier | ReadAction::PeekFallback => {
                    given = self.tiers[inst].get(&key).cloned();
                    let b = given.as_deref().map(|v| Bytes {
                        prefix: v,
                        total_len: v.len(),
                    });
                    let input = if peek {
                        ReadInput::Tier(b)
                    } else {
                        ReadInput::Fallback(b)
                    };
                    step = self.engines[inst].read_step(&mut read, input, now).unwrap();
                }
                _ => break,
            }
        }
        // A command the breaker keeps back is failed at once.
        let mut refused = None;
        match step.action {
            ReadAction::Get { .. } => match self.send(r, Slot::Read, OpKind::Read) {
                Ok(id) => {
                    let d = self.delay();
                    self.at(self.now + d, Ev::ReadAtStore(r, false, id));
                }
                Err(f) => refused = Some(f),
            },
            ReadAction::Poll { .. } => {
                if lost {
                    self.reqs[r].follower_on_miss = true;
                }
                match self.send(r, Slot::Read, OpKind::Read) {
                    Ok(id) => {
                        let d = self.delay();
                        self.at(self.now + d, Ev::ReadAtStore(r, true, id));
                    }
                    Err(f) => refused = Some(f),
                }
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
                match self.send(r, Slot::Read, OpKind::Lease) {
                    Ok(id) => {
                        let d = self.delay();
                        let ev = Ev::AcquireAtStore(
                            r,
                            call.args[0].clone(),
                            px,
                            call.args[2].clone(),
                            id,
                        );
                        self.at(self.now + d, ev);
                    }
                    Err(f) => refused = Some(f),
                }
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
                    self.reqs[r].held = true;
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
        if let Some(f) = refused {
            self.feed(r, ReadInput::Failed(f), None)?;
        }
        Ok(())
    }

    /// Carries out request `r`'s write steps up to one that waits for the store.
    fn write_steps(&mut self, r: usize, mut step: WriteStep) -> Result<(), TestCaseError> {
        let inst = self.inst(r);
        let key = self.key(r);
        let now = Millis(self.now as f64);
        loop {
            let sent = match step {
                WriteStep::Compress(c) => {
                    // Payloads here are a few bytes, far below the compression threshold.
                    return Err(TestCaseError::fail(format!("compression asked: {c:?}")));
                }
                WriteStep::Store(store) => {
                    let mut value = store.header;
                    value.push(b'x');
                    // The host's own copy: readers here need no round trip.
                    self.remember(
                        inst,
                        key,
                        &store.key,
                        value.clone(),
                        // Ordered by the engine when the write ends.
                        (store.keep_until, 0),
                        store.outage_only,
                    );
                    let token = match store.script {
                        None => None,
                        Some(call) => {
                            prop_assert_eq!(call.script.name, "lease_write");
                            Some(call.args[1].clone())
                        }
                    };
                    self.send(r, Slot::Write, OpKind::Write).map(|id| {
                        let d = self.delay();
                        self.at(self.now + d, Ev::WriteAtStore(r, token, value, id));
                    })
                }
                WriteStep::Release { call, .. } => {
                    prop_assert_eq!(call.script.name, "lease_release");
                    self.send(r, Slot::Write, OpKind::Write).map(|id| {
                        let d = self.delay();
                        self.at(
                            self.now + d,
                            Ev::ReleaseAtStore(r, call.args[0].clone(), id),
                        );
                    })
                }
                WriteStep::Done(done) => {
                    if done.mark_local {
                        if let Some(k) = &done.key {
                            self.engines[inst].lru_mut().mark_local(k);
                        }
                    }
                    self.reqs[r].write = None;
                    return Ok(());
                }
            };
            match sent {
                Ok(()) => return Ok(()),
                Err(f) => {
                    let Some(mut m) = self.reqs[r].write.take() else {
                        return Ok(());
                    };
                    step = self.engines[inst].write_step(&mut m, WriteInput::Failed(f), now);
                    self.reqs[r].write = Some(m);
                }
            }
        }
    }

    /// Hands request `r`'s write machine `input`.
    fn write_input(&mut self, r: usize, input: WriteInput) -> Result<(), TestCaseError> {
        let inst = self.inst(r);
        let Some(mut m) = self.reqs[r].write.take() else {
            return Ok(());
        };
        let step = self.engines[inst].write_step(&mut m, input, Millis(self.now as f64));
        self.reqs[r].write = Some(m);
        self.write_steps(r, step)
    }

    /// Carries out request `r`'s renewal step.
    fn renew_steps(&mut self, r: usize, mut step: RenewStep) -> Result<(), TestCaseError> {
        let inst = self.inst(r);
        loop {
            match step {
                RenewStep::Wait { delay_ms } => {
                    self.at(self.now + delay_ms as u64, Ev::RenewDue(r));
                    return Ok(());
                }
                RenewStep::Send { call, .. } => {
                    prop_assert_eq!(call.script.name, "lease_renew");
                    let px: u64 = call.args[1].parse().unwrap();
                    prop_assert!((1..=self.sc.ttl_ms).contains(&px));
                    match self.send(r, Slot::Renew, OpKind::Lease) {
                        Ok(id) => {
                            let d = self.delay();
                            let ev = Ev::RenewAtStore(r, call.args[0].clone(), px, id);
                            self.at(self.now + d, ev);
                            return Ok(());
                        }
                        Err(f) => {
                            let Some(mut renewal) = self.reqs[r].renewal.take() else {
                                return Ok(());
                            };
                            step = self.engines[inst]
                                .renew_step(
                                    &mut renewal,
                                    RenewInput::Failed(f),
                                    Millis(self.now as f64),
                                )
                                .unwrap();
                            self.reqs[r].renewal = Some(renewal);
                        }
                    }
                }
                // Written, released, lapsed or capped: the timer stops.
                _ => {
                    self.reqs[r].renewal = None;
                    return Ok(());
                }
            }
        }
    }

    /// Hands request `r`'s renewal `input`.
    fn renew_input(&mut self, r: usize, input: RenewInput) -> Result<(), TestCaseError> {
        let inst = self.inst(r);
        let Some(mut renewal) = self.reqs[r].renewal.take() else {
            return Ok(());
        };
        let step = self.engines[inst]
            .renew_step(&mut renewal, input, Millis(self.now as f64))
            .unwrap();
        self.reqs[r].renewal = Some(renewal);
        self.renew_steps(r, step)
    }

    /// The request whose host an event runs on (`None`: it happens at the store).
    fn host_of(ev: &Ev) -> Option<usize> {
        match ev {
            Ev::Start(r)
            | Ev::ReadReply(r, ..)
            | Ev::AcquireReply(r, ..)
            | Ev::Timer(r)
            | Ev::RegenDone(r)
            | Ev::WriteReply(r, _)
            | Ev::RenewDue(r)
            | Ev::RenewReply(r, ..)
            | Ev::Deadline(r, ..) => Some(*r),
            _ => None,
        }
    }

    fn handle(&mut self, ev: Ev) -> Result<(), TestCaseError> {
        if let Some(r) = Self::host_of(&ev) {
            let inst = self.inst(r);
            if self.dead[inst] {
                if matches!(ev, Ev::Start(_)) {
                    self.reqs[r].end = Some((End::Served, self.now)); // never ran
                }
                return Ok(());
            }
            // The event loop of this instance is blocked: everything it would run waits for
            // the end of the stall, in order (a timer before a reply of the same instant).
            if let Some((si, at, len)) = self.sc.stall {
                if si == inst && self.now >= T0 + at && self.now < T0 + at + len {
                    self.at(T0 + at + len, ev);
                    return Ok(());
                }
            }
        }
        match ev {
            Ev::Start(r) => {
                let inst = self.inst(r);
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
                self.feed(r, ReadInput::Start, None)?;
            }
            Ev::ReadAtStore(r, poll, id) => {
                // A poll is `lease_poll.lua`: the entry and the lease, read together.
                let key = self.key(r);
                let entry = self.store.get(key);
                let leased = self.store.lease(key, self.now).is_some();
                self.reply(Ev::ReadReply(r, poll, entry, leased, id));
            }
            Ev::ReadReply(r, poll, entry, leased, id) => {
                if !self.landed(r, Slot::Read, id) {
                    return Ok(());
                }
                let bytes = entry.as_deref().map(|v| Bytes {
                    prefix: v,
                    total_len: v.len(),
                });
                let input = if poll {
                    ReadInput::Polled {
                        entry: bytes,
                        leased,
                    }
                } else {
                    ReadInput::Reply(bytes)
                };
                let given = entry.clone();
                self.feed(r, input, given)?;
            }
            Ev::AcquireAtStore(r, token, px, seen, id) => {
                let seen: f64 = seen.parse().unwrap();
                let reply = self.store.acquire(self.key(r), &token, px, seen, self.now);
                self.reply(Ev::AcquireReply(r, reply, id));
            }
            Ev::AcquireReply(r, reply, id) => {
                if self.landed(r, Slot::Read, id) {
                    self.feed(r, ReadInput::LeaseReply(reply), None)?;
                }
            }
            Ev::Timer(r) => self.feed(r, ReadInput::Timer, None)?,
            Ev::Deadline(r, slot, id) => {
                let timed_out =
                    matches!(self.reqs[r].flights[slot as usize], Some((c, _)) if c == id);
                if !timed_out {
                    return Ok(());
                }
                if let Some((_, permit)) = self.reqs[r].flights[slot as usize].take() {
                    let inst = self.inst(r);
                    let now = Millis(self.now as f64);
                    self.engines[inst].report(permit, CallResult::Timeout, now);
                }
                let f = Failure::Timeout;
                match slot {
                    Slot::Read => self.feed(r, ReadInput::Failed(f), None)?,
                    Slot::Write => self.write_input(r, WriteInput::Failed(f))?,
                    Slot::Renew => self.renew_input(r, RenewInput::Failed(f))?,
                }
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
                let now = Millis(self.now as f64);
                // A holder whose lease is still live gives up: its followers must not wait on.
                let token = Self::token(r, inst);
                let live = self
                    .store
                    .lease(self.key(r), self.now)
                    .is_some_and(|l| l.token == token);
                if release && self.reqs[r].held && live {
                    self.abandoned.push((self.key(r), self.now));
                }
                let request = if release {
                    // Nothing cacheable: no write; the lease, when held, is let go.
                    WriteRequest::Abandoned {
                        iface: IFACE,
                        cache_key: &key,
                    }
                } else {
                    // Created when the regeneration began, as Next stamps it.
                    WriteRequest::UseCache {
                        iface: IFACE,
                        cache_key: &key,
                        tags: &[],
                        timestamp: Millis(self.reqs[r].regen_began as f64),
                        revalidate: 3_600.0,
                        expire: 86_400.0,
                        stale: 0.0,
                        payload_len: 1,
                    }
                };
                let mut m = self.engines[inst].write_start(request, now);
                let step = self.engines[inst].write_first(&mut m, now);
                self.reqs[r].write = Some(m);
                self.write_steps(r, step)?;
            }
            Ev::WriteAtStore(r, token, bytes, id) => {
                let key = self.key(r);
                let ts = created(&bytes);
                let entry = StoredEntry { ts, bytes };
                self.store.write(key, token.as_deref(), entry, self.now);
                self.reply(Ev::WriteReply(r, id));
            }
            Ev::ReleaseAtStore(r, token, id) => {
                let key = self.key(r);
                self.store.release(key, &token, self.now);
                self.reply(Ev::WriteReply(r, id));
            }
            Ev::WriteReply(r, id) => {
                if self.landed(r, Slot::Write, id) {
                    self.write_input(r, WriteInput::Sent)?;
                }
            }
            Ev::RenewDue(r) => self.renew_input(r, RenewInput::Timer)?,
            Ev::RenewAtStore(r, token, px, id) => {
                let ok = self.store.renew(self.key(r), &token, px, self.now);
                self.reply(Ev::RenewReply(r, ok, id));
            }
            Ev::RenewReply(r, ok, id) => {
                if self.landed(r, Slot::Renew, id) {
                    self.renew_input(r, RenewInput::Sent(ok))?;
                }
            }
        }
        Ok(())
    }

    fn regenerate(&mut self, r: usize) {
        let d = self.sc.regen[self.regen_i % self.sc.regen.len()];
        self.regen_i += 1;
        self.reqs[r].regen_began = self.now;
        *self.regenerations.entry(self.key(r)).or_default() += 1;
        self.at(self.now + d, Ev::RegenDone(r));
    }

    fn finish(&mut self, r: usize, end: End) -> Result<(), TestCaseError> {
        prop_assert!(self.reqs[r].end.is_none(), "request {} ended twice", r);
        // Property 2: a follower on a miss ends (served or fallen back) within its budget
        // plus its last command: a round trip, or its deadline when replies are lost (poll
        // delays are whole ms here: +1). A stall of its instance moves the budget's end to the
        // stall's end, when its timers and replies run. The flight of a 'use cache' read
        // counts from the request's start.
        if self.reqs[r].follower_on_miss {
            let started = self.reqs[r].started;
            let stall_end = self.stall_end(self.inst(r));
            let trip = self.round_trip();
            let bound = (started + self.sc.wait_ms).max(stall_end) + trip + 1;
            prop_assert!(
                self.now <= bound,
                "follower {} ended at {} > budget end {}",
                r,
                self.now,
                bound
            );
            // Property 6: a holder that gives up without a write ends the wait within one
            // poll interval (plus the release's trip to the store, a poll in flight, and the
            // poll that finds the lease gone: round trips, or deadlines when replies are lost;
            // after a stall of the follower's instance, from its end), unless a new lease was
            // taken.
            let key = self.key(r);
            for &(k, at) in &self.abandoned {
                let relet = self
                    .store
                    .taken
                    .iter()
                    .any(|&(tk, t)| tk == key && t >= at && t <= self.now);
                if k == key && at >= started && !relet {
                    let bound =
                        (at + 2 * self.max_delay).max(stall_end) + POLL_MAX_MS as u64 + trip + 1;
                    prop_assert!(
                        self.now <= bound,
                        "follower {} ended at {}, the holder gave up at {}: > {}",
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
            // Half the schedules lose no reply, so the exactly-once property applies.
            prop_oneof![
                Just(vec![false]),
                prop::collection::vec(prop::bool::weighted(0.1), 1..16)
            ],
            prop::option::weighted(0.3, (0..instances, 0u64..3_000, 900u64..=1_200)),
        )
            .prop_map(
                move |(
                    initial_stale,
                    reqs,
                    delays,
                    regen,
                    crash,
                    release,
                    ttl_ms,
                    wait_ms,
                    lost,
                    stall,
                )| {
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
                        lost,
                        stall,
                    }
                },
            )
    })
}

/// Cases per run: `PROPTEST_CASES` when set (longer runs find rarer schedules).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    #[test]
    fn leases_hold_their_promises(sc in scenario()) {
        keeps_the_promises(sc)?;
    }
}

/// Runs `sc`, the simulation checking properties 1, 2, 5 and 6 as it goes, then checks that
/// every request ended and properties 3 and 4.
fn keeps_the_promises(sc: Scenario) -> Result<(), TestCaseError> {
    let no_crash = sc.crash.iter().all(|c| !c)
        && sc.release.iter().all(|r| !r)
        && sc.lost.iter().all(|l| !l)
        && sc.stall.is_none();
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
        prop_assert!(
            ended - extended_at <= ttl,
            "lease lived {} ms > {}",
            ended - extended_at,
            ttl
        );
        prop_assert!(
            ended - set_at <= cap + max_delay,
            "lease renewed {} ms > {} + {}",
            ended - set_at,
            cap,
            max_delay
        );
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
            prop_assert_eq!(
                sim.regenerations.get(&k).copied().unwrap_or(0),
                1,
                "key {}",
                k
            );
        }
    }
    Ok(())
}

/// A request of a stored seed's case: `caches` was added to the strategy after the first three
/// were found, and is false for them.
fn req(inst: usize, key: usize, at: u64) -> Req {
    Req {
        inst,
        key,
        at,
        caches: false,
    }
}

/// A stored seed's shrunk case, from the strategy's fields at the time (`initial_stale`,
/// `reqs`, `delays`, `regen`, `crash`, `ttl_ms`, `wait_ms`, and `release` for the last); the
/// fields added since draw nothing: no release, no lost reply, no stall.
#[allow(clippy::too_many_arguments)]
fn seed_case(
    instances: usize,
    keys: usize,
    initial_stale: &[bool],
    reqs: Vec<Req>,
    delays: &[u64],
    regen: &[u64],
    ttl_ms: u64,
    wait_ms: u64,
) -> Scenario {
    Scenario {
        instances,
        keys,
        initial_stale: initial_stale.to_vec(),
        reqs,
        delays: delays.to_vec(),
        regen: regen.to_vec(),
        crash: vec![false],
        release: vec![false],
        ttl_ms,
        wait_ms,
        lost: vec![false],
        stall: None,
    }
}

/// The shrunk cases of the four seeds `tests/lease_sim.proptest-regressions` held, written out:
/// the strategy's fields added since (`caches`, `release`, `lost`, `stall`) made each seed draw
/// another case. Each case is named by the first 8 hex digits of its seed.
#[rustfmt::skip]
#[test]
fn the_shrunk_cases_of_the_stored_seeds_keep_the_promises() -> Result<(), TestCaseError> {
    let cases = [
        // A regeneration (1222 ms) longer than the lease (1217 ms), no wait budget.
        ("16d21937", seed_case(3, 1, &[false], vec![req(0, 0, 1479), req(0, 0, 209)], &[12], &[1222], 1217, 0)),
        ("28da7a49", seed_case(3, 1, &[false], vec![req(0, 0, 0), req(0, 0, 608), req(0, 0, 0), req(0, 0, 0), req(0, 0, 8)], &[0], &[71], 1000, 31)),
        ("1308cb43", seed_case(3, 3, &[false, false, false], vec![req(0, 1, 1607), req(0, 0, 244), req(0, 0, 0), req(0, 0, 109), req(0, 0, 103), req(0, 0, 12), req(0, 1, 1779), req(0, 2, 40)], &[4, 1, 0, 0, 0, 0, 0, 9, 0, 9], &[99], 1000, 372)),
        ("022c6fa3", seed_case(3, 1, &[false], vec![req(0, 0, 2051), req(0, 0, 18), req(0, 0, 0), req(0, 0, 0), req(0, 0, 21)], &[18, 0, 4, 9, 10, 0], &[1506], 228, 94)),
    ];
    let failed: Vec<String> = cases
        .into_iter()
        .filter_map(|(seed, sc)| keeps_the_promises(sc).err().map(|e| format!("seed {seed}: {e}")))
        .collect();
    prop_assert!(failed.is_empty(), "{}", failed.join("\n"));
    Ok(())
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
        lost: vec![false],
        stall: None,
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
