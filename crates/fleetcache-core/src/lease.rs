//! One regeneration per key across the fleet (docs/decisions/0008-leases.md): leases, as a sans-IO state machine.
//!
//! When a read finds an entry stale or missing, the request asks Redis for the entry's lease
//! (`LEASE_ACQUIRE`: `SET <lease> <token> NX PX <ttl>` unless a newer entry has landed since
//! the read). The winner, the *holder*, regenerates: Next is told "stale" (serve, regenerate
//! in the background) or "miss" (regenerate, then answer). Everyone else is a *follower*: on a
//! stale entry it serves the entry as fresh, on a miss it polls for the holder's write within
//! a bounded budget and falls back to regenerating itself when the budget runs out
//! (correctness over savings). The holder's write is `LEASE_WRITE`, one script that stores the
//! entry and deletes the lease if the token is still the holder's. A holder that dies blocks
//! no one beyond the lease's `PX`.
//!
//! A stale entry is never handed "as fresh" to a read whose result will itself be stored in a
//! server cache (a prerender, an ISR regeneration, an outer `'use cache'` function: a
//! [`Consumer::Caches`]): such a read treats a stale entry as a miss, as Next does during static
//! generation, so what it builds is at least as new as every revalidation that resolved before
//! it started. The host says which kind of read it is; the flight decides.
//!
//! The core makes every decision ([`Flight`]) and keeps the tokens of the leases this process
//! holds ([`LeaseTable`]); the host draws the random tokens, runs the timers and sends the
//! commands. Time comes in as arguments; nothing here reads a clock.

pub use crate::config::LeaseConfig;
pub use crate::config::{MAX_LEASE_TTL_MS, MAX_LEASE_WAIT_MS};
use crate::error::PlanError;
use crate::keyed::KeyedVec;
use crate::scripts::ScriptCall;
pub use crate::scripts::{LEASE_ACQUIRE, LEASE_POLL, LEASE_RELEASE, LEASE_RENEW, LEASE_WRITE};
use crate::stats::LeaseEvent;
use crate::strhash::HashSeed;
use crate::time::{is_unlimited, Millis};

/// A held lease is renewed every `leaseTtlMs / RENEWALS_PER_TTL`: two renewals may be lost or
/// late before the lease lapses.
pub const RENEWALS_PER_TTL: f64 = 3.0;
/// A lease lives at most this many `leaseTtlMs` from its acquisition, however often it is
/// renewed: a holder whose render never ends (or ends without Next telling the handler)
/// blocks the key for a bounded time.
pub const MAX_RENEWED_TTLS: f64 = 3.0;

/// Shortest pause between a follower's polls (but the last, at the deadline).
pub const POLL_MIN_MS: f64 = 10.0;
/// Longest pause between polls: the most a follower waits after the holder's write lands.
pub const POLL_MAX_MS: f64 = 50.0;
/// A follower's pause before its next poll is the time it has waited divided by this, within
/// [`POLL_MIN_MS`] and [`POLL_MAX_MS`]: a write is picked up within a quarter of the wait
/// before it, plus a round trip (docs/decisions/0009-followers-poll.md).
pub const POLL_WAIT_DIVISOR: f64 = 4.0;
/// Hard cap on polls per flight, whatever the clock does (a bounded loop by construction).
pub const MAX_POLLS: u32 = 10_000;
/// Leases remembered per process; beyond it the oldest are forgotten (they expire in Redis on
/// their own, so forgetting one only skips its early release).
pub const MAX_HELD_LEASES: usize = 10_000;
/// Longest accepted token (the host sends 32 hex digits).
pub const MAX_TOKEN_BYTES: usize = 128;

/// What a read found, as far as regeneration is concerned.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// Servable and within its `revalidate` window: nothing to regenerate.
    Fresh = 0,
    /// Servable, but due for regeneration (past `revalidate`, or stale by a tag).
    Stale = 1,
    /// Nothing servable: missing, expired, unreadable.
    Missing = 2,
}

impl Found {
    /// From the host's code (0 fresh, 1 stale, anything else missing).
    pub fn from_u8(v: u8) -> Found {
        match v {
            0 => Found::Fresh,
            1 => Found::Stale,
            _ => Found::Missing,
        }
    }
}

/// Who gets what a read answers: it decides whether a stale entry may stand in for a fresh one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consumer {
    /// The answer is used for this request only (a response, a dynamic render): a follower may
    /// be served a stale entry as fresh while the holder regenerates.
    Serves,
    /// The answer will be stored in a server cache (a prerender, an ISR regeneration, an outer
    /// cache whose consumer caches): a stale entry is a miss, never served, never served as
    /// fresh. The holder regenerates before it answers; a follower waits for the holder's
    /// write within the wait budget and then regenerates itself.
    Caches,
}

impl Consumer {
    /// From the host's fact "the consumer will store the result in a server cache".
    pub fn from_caches(caches: bool) -> Consumer {
        if caches {
            Consumer::Caches
        } else {
            Consumer::Serves
        }
    }
}

/// The reply to a lease request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The lease is ours: regenerate.
    Won,
    /// Another instance holds it.
    Lost,
    /// A newer entry than the one we judged is stored: read again.
    Newer,
    /// No answer (Redis down, breaker open, timeout): act as if there were no leases.
    Unavailable,
}

impl Acquired {
    /// From the script's integer reply; anything unexpected counts as no answer.
    pub fn from_reply(reply: i64) -> Acquired {
        match reply {
            1 => Acquired::Won,
            0 => Acquired::Lost,
            2 => Acquired::Newer,
            _ => Acquired::Unavailable,
        }
    }
}

/// What the host does next for one request.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// Serve the entry as it is.
    Serve = 0,
    /// Serve the entry marked stale, so Next regenerates it in the background (this request
    /// holds the lease, or leases are unavailable).
    ServeStale = 1,
    /// Serve the stale entry as fresh: another instance holds the lease and regenerates.
    ServeAsFresh = 2,
    /// Send [`LEASE_ACQUIRE`] and report the reply to [`Flight::acquired`].
    Acquire = 3,
    /// Wait [`Flight::delay_ms`], read the entry again and report to [`Flight::polled`].
    Poll = 4,
    /// Answer a miss: Next regenerates (this request holds the lease, or leases are
    /// unavailable).
    Regenerate = 5,
    /// Answer a miss: the holder's write did not arrive within the wait budget, so this
    /// request regenerates too.
    Fallback = 6,
    /// Answer a miss: the holder let its lease go without writing (its result was not
    /// cacheable, too large, or its render failed), so this request regenerates at once
    /// rather than wait out its budget. It does not take the lease: what the holder produced
    /// could not be shared, so neither could this request's result, and taking turns would
    /// only queue the followers behind each other's renders.
    Released = 7,
}

/// One request's way through the lease protocol. It is `Copy` and small, so a host can keep
/// it as plain numbers (`found`, `started`, `polls`) between calls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flight {
    /// What the first read found.
    pub found: Found,
    /// Who gets the answer.
    pub consumer: Consumer,
    /// When the request started waiting on the protocol (its first read's time).
    pub started: Millis,
    /// Polls made so far.
    pub polls: u32,
    /// Pause before the next poll, when the last step was [`Step::Poll`].
    pub delay_ms: f64,
}

impl Flight {
    /// Starts a flight for a read by `consumer` that found `found` at `now`.
    pub fn begin(
        found: Found,
        consumer: Consumer,
        now: Millis,
        cfg: &LeaseConfig,
    ) -> (Flight, Step) {
        let flight = Flight {
            found,
            consumer,
            started: now,
            polls: 0,
            delay_ms: 0.0,
        };
        let step = match found {
            Found::Fresh => Step::Serve,
            _ if cfg.enabled => Step::Acquire,
            Found::Stale => flight.regenerate_stale(),
            Found::Missing => Step::Regenerate,
        };
        (flight, step)
    }

    /// Resumes a flight from the numbers a host kept.
    pub fn resume(found: Found, consumer: Consumer, started: Millis, polls: u32) -> Flight {
        Flight {
            found,
            consumer,
            started,
            polls,
            delay_ms: 0.0,
        }
    }

    /// This request regenerates a stale entry: in the background behind the stale value, or,
    /// when the answer will be cached, before it answers (a stale value would be stored).
    fn regenerate_stale(&self) -> Step {
        match self.consumer {
            Consumer::Serves => Step::ServeStale,
            Consumer::Caches => Step::Regenerate,
        }
    }

    /// The instant after which a follower stops waiting.
    pub fn deadline(&self, cfg: &LeaseConfig) -> Millis {
        Millis(self.started.0 + cfg.wait_ms)
    }

    /// The lease request was answered at `now`.
    pub fn acquired(&mut self, result: Acquired, now: Millis, cfg: &LeaseConfig) -> Step {
        match (result, self.found) {
            (_, Found::Fresh) => Step::Serve,
            (Acquired::Won | Acquired::Unavailable, Found::Stale) => self.regenerate_stale(),
            (Acquired::Won | Acquired::Unavailable, Found::Missing) => Step::Regenerate,
            (Acquired::Lost, Found::Stale) => match self.consumer {
                Consumer::Serves => Step::ServeAsFresh,
                // Stale data passed off as fresh would outlive this request in the consumer's
                // cache: wait for the holder's write like a follower on a miss.
                Consumer::Caches => self.next_poll(now, cfg),
            },
            // Someone wrote a newer entry since our read: read it now rather than
            // regenerating what was just regenerated.
            (Acquired::Newer, _) => {
                self.delay_ms = 0.0;
                Step::Poll
            }
            (Acquired::Lost, Found::Missing) => self.next_poll(now, cfg),
        }
    }

    /// A poll (a read of the entry while following, [`LEASE_POLL`]) found `found` at `now`;
    /// `leased`: the entry's lease still existed when the entry was read (read atomically
    /// with it). No lease and nothing servable means the holder ended without writing
    /// (released, or its lease lapsed): [`Step::Released`] at once, instead of waiting out
    /// the budget for a write that will not come.
    pub fn polled(&mut self, found: Found, leased: bool, now: Millis, cfg: &LeaseConfig) -> Step {
        self.polls = self.polls.saturating_add(1);
        match (found, self.consumer) {
            (Found::Fresh, _) => Step::Serve,
            // Newer than what we saw, yet already stale (a tag was revalidated meanwhile):
            // rare, so no second round of leases; Next regenerates it in the background.
            (Found::Stale, Consumer::Serves) => Step::ServeStale,
            // Still the stale entry (the holder has not written yet), or a newer one that is
            // stale already: neither may go into the consumer's cache.
            (Found::Stale, Consumer::Caches) | (Found::Missing, _) if leased => {
                self.next_poll(now, cfg)
            }
            (Found::Stale, Consumer::Caches) | (Found::Missing, _) => Step::Released,
        }
    }

    /// Schedules the next poll within the budget, or gives up.
    fn next_poll(&mut self, now: Millis, cfg: &LeaseConfig) -> Step {
        let remaining = self.deadline(cfg).0 - now.0;
        // NaN (a bad clock) gives up too.
        if remaining.is_nan() || remaining <= 0.0 || self.polls >= MAX_POLLS {
            return Step::Fallback;
        }
        // The pause grows with the wait, so the lateness of the pick-up stays a small part of
        // the whole wait: a doubling schedule (10, 20, 40 ms) saw a write at 31 ms at 70. The
        // last poll is at the deadline itself. A clock that went back waits POLL_MIN_MS.
        let waited = now.0 - self.started.0;
        let pause = (waited / POLL_WAIT_DIVISOR).clamp(POLL_MIN_MS, POLL_MAX_MS);
        self.delay_ms = pause.min(remaining);
        Step::Poll
    }
}

/// A lease this process holds.
#[derive(Clone, Debug, PartialEq)]
struct Held {
    token: String,
    /// When the winning request was sent: identifies this holding (a later lease on the same
    /// key is another one) and starts the cap on renewals.
    won_at: Millis,
    /// When the lease is gone in Redis at the earliest: counted from when the request was
    /// sent, which is no later than when Redis set it, so this process never believes it
    /// holds a lease that Redis has already let go.
    expires_at: Millis,
}

/// The tokens of the leases this process holds, by lease key. Bounded by
/// [`MAX_HELD_LEASES`].
#[derive(Clone, Debug, Default)]
pub struct LeaseTable {
    held: KeyedVec<Held>,
}

impl LeaseTable {
    /// An empty table.
    pub fn new() -> LeaseTable {
        LeaseTable::default()
    }

    /// An empty table, its lease keys (derived from cache keys) hashed with `seed`.
    pub fn with_seed(seed: HashSeed) -> LeaseTable {
        LeaseTable {
            held: KeyedVec::with_seed(0, seed),
        }
    }

    /// Rehashes the keys with `seed` ([`crate::Engine::reseed_hashes`]).
    pub fn reseed(&mut self, seed: HashSeed) {
        self.held.reseed(seed);
    }

    /// The seed the keys are hashed with.
    #[cfg(test)]
    pub(crate) fn hash_seed(&self) -> HashSeed {
        self.held.hash_seed()
    }

    /// Records that `token` won `lease_key`; the request was sent at `sent_at`.
    pub fn hold(&mut self, lease_key: &str, token: &str, sent_at: Millis, ttl_ms: f64) {
        if self.held.len() >= MAX_HELD_LEASES && !self.held.contains_key(lease_key) {
            self.held.retain(|_, h| h.expires_at.0 > sent_at.0);
            if self.held.len() >= MAX_HELD_LEASES {
                // All live: forget the one closest to expiring (it expires in Redis anyway).
                let oldest = self
                    .held
                    .iter()
                    .min_by(|a, b| a.1.expires_at.0.total_cmp(&b.1.expires_at.0))
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.held.remove(&k);
                }
            }
        }
        self.held.insert(
            lease_key,
            Held {
                token: token.to_owned(),
                won_at: sent_at,
                expires_at: Millis(sent_at.0 + ttl_ms),
            },
        );
    }

    /// The token of the holding of `lease_key` won at `won_at`, while it is live at `now`.
    fn renewable(&self, lease_key: &str, won_at: Millis, now: Millis) -> Option<&str> {
        self.held
            .get(lease_key)
            .filter(|h| h.won_at.0 == won_at.0 && now.0 < h.expires_at.0)
            .map(|h| h.token.as_str())
    }

    /// Plans the renewal, at `now`, of the holding of `lease_key` won at `won_at`
    /// ([`LEASE_RENEW`]) for leases of `ttl_ms`. `None` ends the renewals: the lease was
    /// written or released, lapsed, was replaced by a later holding, or has reached its cap
    /// ([`renew_px`]).
    pub fn plan_renew(
        &self,
        lease_key: String,
        won_at: Millis,
        now: Millis,
        ttl_ms: f64,
    ) -> Option<ScriptCall> {
        let token = self.renewable(&lease_key, won_at, now)?;
        let px = renew_px(ttl_ms, won_at, now);
        if px < 1.0 {
            return None;
        }
        Some(ScriptCall {
            script: &LEASE_RENEW,
            sha1: LEASE_RENEW.sha1(),
            // `px` is a whole number of ms in [1, MAX_LEASE_TTL_MS]: as an integer it prints
            // the same digits, without the float formatter (a tenth of the wasm module's code).
            args: vec![token.to_owned(), crate::text::u64_text(px as u64)],
            keys: vec![lease_key],
        })
    }

    /// A renewal of the holding of `lease_key` won at `won_at`, planned at `sent_at` for
    /// leases of `ttl_ms`, succeeded. Replies may come out of order: the latest expiry wins.
    pub fn renewed(&mut self, lease_key: &str, won_at: Millis, sent_at: Millis, ttl_ms: f64) {
        let px = renew_px(ttl_ms, won_at, sent_at);
        if let Some(h) = self.held.get_mut(lease_key) {
            if h.won_at.0 == won_at.0 {
                h.expires_at = Millis(h.expires_at.0.max(sent_at.0 + px));
            }
        }
    }

    /// How to store the entry at `entry_key` for `ttl_ms`: with the lease at `lease_key`
    /// released in the same script ([`LEASE_WRITE`]) when this process holds it (the token is
    /// taken from the table).
    pub fn plan_write(&mut self, entry_key: String, lease_key: String, ttl_ms: u64) -> EntryWrite {
        match self.take(&lease_key) {
            None => EntryWrite::Set,
            Some(token) => EntryWrite::WriteAndRelease(ScriptCall {
                script: &LEASE_WRITE,
                sha1: LEASE_WRITE.sha1(),
                keys: vec![entry_key, lease_key],
                args: vec![crate::text::u64_text(ttl_ms.max(1)), token],
            }),
        }
    }

    /// Releases the lease at `lease_key` without a write ([`LEASE_RELEASE`]), when this
    /// process holds it (the token is taken from the table).
    pub fn plan_release(&mut self, lease_key: String) -> Option<ScriptCall> {
        let token = self.take(&lease_key)?;
        Some(release_call(lease_key, token))
    }

    /// True while this process holds a live lease on `lease_key` at `now`.
    pub fn holds(&self, lease_key: &str, now: Millis) -> bool {
        self.held
            .get(lease_key)
            .is_some_and(|h| now.0 < h.expires_at.0)
    }

    /// The token of `lease_key`, removed from the table. Returned even when the lease has
    /// expired: compare-and-delete with a stale token is harmless, and storing the entry is
    /// still right.
    pub fn take(&mut self, lease_key: &str) -> Option<String> {
        self.held.remove(lease_key).map(|h| h.token)
    }

    /// Leases remembered.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True when no lease is remembered.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// A whole number of ms as a decimal `PX` (at least 1: `PX 0` is an error in Redis).
fn px(ms: f64) -> String {
    crate::text::u64_text(ms.ceil().max(1.0) as u64)
}

/// The `PX` of a renewal sent at `now` of a lease of `ttl_ms` won at `won_at`: the TTL, cut
/// so the lease never lives past [`MAX_RENEWED_TTLS`] TTLs from its acquisition; 0 when that
/// cap is reached.
pub fn renew_px(ttl_ms: f64, won_at: Millis, now: Millis) -> f64 {
    let left = won_at.0 + MAX_RENEWED_TTLS * ttl_ms - now.0;
    if left.is_nan() {
        return 0.0;
    }
    ttl_ms.min(left).max(0.0).floor()
}

/// How often a holder renews a lease of `ttl_ms`: every [`RENEWALS_PER_TTL`]th of the TTL,
/// so a renewal has most of the TTL to arrive (at least 1 ms).
pub fn renew_every_ms(ttl_ms: f64) -> f64 {
    (ttl_ms / RENEWALS_PER_TTL).floor().max(1.0)
}

/// Plans a lease request ([`LEASE_ACQUIRE`]) for the entry at `entry_key`, whose lease is
/// `lease_key`, living `ttl_ms`: `token` is a fresh random token from the host,
/// `seen_timestamp` the creation time of the entry the read judged stale (`None` when it
/// found none).
pub fn plan_acquire(
    entry_key: String,
    lease_key: String,
    token: &str,
    ttl_ms: f64,
    seen_timestamp: Option<Millis>,
) -> Result<ScriptCall, PlanError> {
    check_token(token)?;
    let seen = seen_timestamp.map_or(-1.0, |t| t.0);
    Ok(ScriptCall {
        script: &LEASE_ACQUIRE,
        sha1: LEASE_ACQUIRE.sha1(),
        keys: vec![entry_key, lease_key],
        args: vec![
            token.to_owned(),
            px(ttl_ms),
            // Exact text of the f64: Lua's tonumber reads the same value.
            if seen.is_finite() {
                crate::decimal::exact_decimal(seen)
            } else {
                "-1".to_owned()
            },
        ],
    })
}

/// Plans a follower's poll ([`LEASE_POLL`]): the entry at `entry_key` and whether its lease
/// `lease_key` still exists, read together.
pub fn plan_poll(entry_key: String, lease_key: String) -> ScriptCall {
    ScriptCall {
        script: &LEASE_POLL,
        sha1: LEASE_POLL.sha1(),
        keys: vec![entry_key, lease_key],
        args: Vec::new(),
    }
}

/// The lease event a lease request's answer counts as, if any: a lease won, or a follower
/// that starts waiting for the holder's write. A follower that does not wait is not a wait:
/// one serving a stale entry as fresh, or one with no wait budget (`leaseWaitMs` 0) that
/// regenerates at once.
pub fn answer_event(result: Acquired, step: Step) -> Option<LeaseEvent> {
    match (result, step) {
        (Acquired::Won, _) => Some(LeaseEvent::Acquired),
        (Acquired::Lost, Step::Poll) => Some(LeaseEvent::Waited),
        _ => None,
    }
}

/// The lease event a flight's step counts as, if any: a wait that ran out of budget, or one
/// that ended on a lease let go without a write.
pub fn step_event(step: Step) -> Option<LeaseEvent> {
    match step {
        Step::Fallback => Some(LeaseEvent::WaitTimedOut),
        Step::Released => Some(LeaseEvent::WaitReleased),
        _ => None,
    }
}

/// How to store an entry: a plain `SET`, or [`LEASE_WRITE`] when this process holds its lease.
#[derive(Clone, Debug, PartialEq)]
pub enum EntryWrite {
    /// `SET <key> <value> PX <ttl>`.
    Set,
    /// The script call; the host appends the value as the last argument.
    WriteAndRelease(ScriptCall),
}

fn check_token(token: &str) -> Result<(), PlanError> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(PlanError::InvalidToken);
    }
    Ok(())
}

/// Whether a servable `'use cache'` entry is due for regeneration by time: Next regenerates
/// once `now > timestamp + revalidate * 1000`.
pub fn past_revalidate(timestamp: Millis, revalidate: f64, now: Millis) -> bool {
    revalidate.is_finite() && !is_unlimited(revalidate) && now.0 > timestamp.0 + revalidate * 1000.0
}

/// The `revalidate` (s) that presents a `'use cache'` entry to a follower as fresh: the
/// stored one when it still is, else long enough to cover the holder's lease, so Next does
/// not start a regeneration of its own. Never past `expire`.
pub fn fresh_revalidate(
    timestamp: Millis,
    revalidate: f64,
    expire: f64,
    now: Millis,
    lease_ttl_ms: f64,
) -> f64 {
    if !past_revalidate(timestamp, revalidate, now) && revalidate >= 0.0 {
        return revalidate;
    }
    let age_s = ((now.0 - timestamp.0) / 1000.0).max(0.0);
    let shown = (age_s + lease_ttl_ms / 1000.0).ceil();
    if expire.is_finite() && !is_unlimited(expire) && expire > 0.0 {
        shown.min(expire)
    } else {
        shown
    }
}

/// How a `'use cache'` entry that must be regenerated in the background is shown to Next:
/// `(timestamp, revalidate)`, or `None` when Next cannot be told "stale" without being told
/// "expired" (then the entry is a miss: a blocking regeneration, never an old value).
///
/// Next serves an entry and regenerates it behind the answer when
/// `now > timestamp + revalidate * 1000`, and drops it when `now > timestamp + expire * 1000`.
/// A negative `revalidate` would do it too, but Next copies an entry's `revalidate` into the
/// page that reads it (the smallest wins), and a page whose `revalidate` is below 1 answers
/// HTTP 500 (`Invalid revalidate configuration provided`): Next 16.3 reaches that through a
/// page that joins an invocation a request already read, 16.4 through its cross-request join.
/// So the entry keeps its own `revalidate` (at least 1 s when it has one, shortened to whole
/// seconds that fit inside `expire`) and its `timestamp` moves back just past that window.
/// The timestamp never moves later than the entry's own, and stays after `not_before`: Next
/// discards an entry created at or before its implicit tags' expiration (`getExpiration`), so
/// a window reaching back that far is shortened too.
pub fn stale_use_cache_presentation(
    timestamp: Millis,
    revalidate: f64,
    expire: f64,
    not_before: Millis,
    now: Millis,
) -> Option<(Millis, f64)> {
    if !(timestamp.0.is_finite() && now.0.is_finite() && revalidate.is_finite()) {
        return None;
    }
    if expire.is_nan() || expire <= 0.0 {
        return None;
    }
    // 0 is "dynamic" to Next and stays so; anything between 0 and 1 s would fail a page.
    let mut shown = if revalidate > 0.0 {
        revalidate.max(1.0)
    } else {
        0.0
    };
    // The longest whole-second window that still leaves the backdated entry inside `expire`.
    let room = (expire * 1000.0 - 1.0) / 1000.0;
    if shown > room {
        let whole = room.floor();
        if whole < 1.0 {
            return None;
        }
        shown = whole;
    }
    let floor = if not_before.0.is_finite() {
        not_before.0.max(0.0)
    } else {
        0.0
    };
    let after_tags = ((now.0 - floor - 2.0) / 1000.0).floor();
    if shown > after_tags {
        if after_tags < 1.0 {
            return None;
        }
        shown = after_tags;
    }
    let backdated = timestamp.0.min(now.0 - shown * 1000.0 - 1.0);
    if now.0 > backdated + expire * 1000.0 || backdated <= floor {
        return None;
    }
    Some((Millis(backdated), shown))
}

/// The [`LEASE_RELEASE`] call that lets go of the lease at `lease_key` held with `token`.
pub fn release_call(lease_key: String, token: String) -> ScriptCall {
    ScriptCall {
        script: &LEASE_RELEASE,
        sha1: LEASE_RELEASE.sha1(),
        keys: vec![lease_key],
        args: vec![token],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    use proptest::prelude::*;

    const CFG: LeaseConfig = LeaseConfig {
        enabled: true,
        ttl_ms: 10_000.0,
        wait_ms: 1_000.0,
    };

    /// What Next does with a `'use cache'` entry returned to a request: serve it and regenerate
    /// behind it (stale), drop it (expired, or created at or before the implicit tags'
    /// expiration), or serve it as it is.
    fn next_sees(ts: f64, revalidate: f64, expire: f64, not_before: f64, now: f64) -> &'static str {
        if now > ts + expire * 1000.0 || ts <= not_before {
            "miss"
        } else if now > ts + revalidate * 1000.0 {
            "stale"
        } else {
            "fresh"
        }
    }

    #[test]
    fn stale_use_cache_entries_keep_a_revalidate_a_page_accepts() {
        const NOW: f64 = 1_795_690_530_000.0;
        let at = |ts: f64, r: f64, e: f64, nb: f64| {
            stale_use_cache_presentation(Millis(ts), r, e, Millis(nb), Millis(NOW))
        };
        // A fresh-by-time entry stale by a tag: its own revalidate, timestamp just past it.
        let (ts, r) = at(NOW - 5_000.0, 900.0, 31_536_000.0, 0.0).unwrap();
        assert_eq!(r, 900.0);
        assert_eq!(ts.0, NOW - 900_001.0);
        assert_eq!(next_sees(ts.0, r, 31_536_000.0, 0.0, NOW), "stale");
        // Already past its window: unchanged.
        let old = NOW - 2_000_000.0;
        assert_eq!(
            at(old, 900.0, 31_536_000.0, 0.0),
            Some((Millis(old), 900.0))
        );
        // Below one second: raised to 1 (a page fails on less).
        assert_eq!(at(NOW - 10.0, 0.5, 60.0, 0.0).map(|p| p.1), Some(1.0));
        // No time limit (revalidate = expire = Next's "infinite"): shortened to fit, and the
        // timestamp never reaches 0 or earlier (Next would discard it).
        let inf = crate::time::INFINITE_CACHE_SECONDS;
        let (ts, r) = at(NOW - 10.0, inf, inf, 0.0).unwrap();
        assert!(r >= 1.0 && ts.0 > 0.0);
        assert_eq!(next_sees(ts.0, r, inf, 0.0, NOW), "stale");
        // expire leaves no whole second: a miss, never an old value.
        assert_eq!(at(NOW - 10.0, 60.0, 0.9, 0.0), None);
        // Shortened so the timestamp stays after the implicit tags' expiration.
        let nb = NOW - 30_000.0;
        let (ts, r) = at(NOW - 10.0, 900.0, 3600.0, nb).unwrap();
        assert_eq!(r, 29.0);
        assert_eq!(next_sees(ts.0, r, 3600.0, nb, NOW), "stale");
        // An implicit tag expired within the last second: no room, a miss.
        assert_eq!(at(NOW - 10.0, 900.0, 3600.0, NOW - 500.0), None);
        // Bad numbers: a miss.
        assert_eq!(at(f64::NAN, 60.0, 600.0, 0.0), None);
        assert_eq!(at(NOW, f64::NAN, 600.0, 0.0), None);
        assert_eq!(at(NOW, 60.0, f64::NAN, 0.0), None);
    }

    #[test]
    fn fresh_is_served_without_a_lease() {
        let (_, step) = Flight::begin(Found::Fresh, Consumer::Serves, Millis(0.0), &CFG);
        assert_eq!(step, Step::Serve);
    }

    #[test]
    fn holder_and_follower_on_stale() {
        let (mut f, step) = Flight::begin(Found::Stale, Consumer::Serves, Millis(0.0), &CFG);
        assert_eq!(step, Step::Acquire);
        assert_eq!(
            f.acquired(Acquired::Won, Millis(1.0), &CFG),
            Step::ServeStale
        );
        let (mut f, _) = Flight::begin(Found::Stale, Consumer::Serves, Millis(0.0), &CFG);
        assert_eq!(
            f.acquired(Acquired::Lost, Millis(1.0), &CFG),
            Step::ServeAsFresh
        );
        let (mut f, _) = Flight::begin(Found::Stale, Consumer::Serves, Millis(0.0), &CFG);
        assert_eq!(
            f.acquired(Acquired::Unavailable, Millis(1.0), &CFG),
            Step::ServeStale
        );
    }

    #[test]
    fn a_caching_consumer_never_gets_a_stale_entry() {
        // Holder, or no lease service: regenerate before answering.
        let (mut f, step) = Flight::begin(Found::Stale, Consumer::Caches, Millis(0.0), &CFG);
        assert_eq!(step, Step::Acquire);
        assert_eq!(
            f.acquired(Acquired::Won, Millis(1.0), &CFG),
            Step::Regenerate
        );
        let (mut f, _) = Flight::begin(Found::Stale, Consumer::Caches, Millis(0.0), &CFG);
        assert_eq!(
            f.acquired(Acquired::Unavailable, Millis(1.0), &CFG),
            Step::Regenerate
        );
        let off = LeaseConfig {
            enabled: false,
            ..CFG
        };
        assert_eq!(
            Flight::begin(Found::Stale, Consumer::Caches, Millis(0.0), &off).1,
            Step::Regenerate
        );
        // Follower: waits for the holder's write, past the old entry, and takes it.
        let (mut f, _) = Flight::begin(Found::Stale, Consumer::Caches, Millis(0.0), &CFG);
        assert_eq!(f.acquired(Acquired::Lost, Millis(1.0), &CFG), Step::Poll);
        assert_eq!(f.polled(Found::Stale, true, Millis(20.0), &CFG), Step::Poll);
        assert_eq!(
            f.polled(Found::Fresh, true, Millis(40.0), &CFG),
            Step::Serve
        );
        // ... or regenerates itself once the budget is spent.
        let (mut f, _) = Flight::begin(Found::Stale, Consumer::Caches, Millis(0.0), &CFG);
        f.acquired(Acquired::Lost, Millis(1.0), &CFG);
        assert_eq!(
            f.polled(Found::Stale, true, Millis(CFG.wait_ms + 1.0), &CFG),
            Step::Fallback
        );
        // A fresh entry is served to anyone.
        assert_eq!(
            Flight::begin(Found::Fresh, Consumer::Caches, Millis(0.0), &CFG).1,
            Step::Serve
        );
        assert_eq!(Consumer::from_caches(true), Consumer::Caches);
        assert_eq!(Consumer::from_caches(false), Consumer::Serves);
    }

    fn arb_found() -> impl Strategy<Value = Found> {
        (0u8..3).prop_map(Found::from_u8)
    }

    fn arb_acquired() -> impl Strategy<Value = Acquired> {
        (-1i64..3).prop_map(Acquired::from_reply)
    }

    proptest! {
        /// A follower picks up a write that lands while it waits within a quarter of the time
        /// it had waited, never less than POLL_MIN_MS nor more than POLL_MAX_MS, plus the
        /// round trip of the poll that missed it: the pause before each poll grows with the
        /// wait (a fast regeneration is seen soon after it lands, a slow one polled at most
        /// every POLL_MAX_MS). Polls are no closer than POLL_MIN_MS, except the last one at
        /// the deadline.
        #[test]
        fn a_write_is_picked_up_within_a_quarter_of_the_wait(
            wait_ms in 0.0f64..5_000.0,
            acquire_rtt in 0.0f64..20.0,
            rtts in proptest::collection::vec(0.0f64..20.0, 1..400),
            write_after in 0.0f64..5_000.0,
        ) {
            let cfg = LeaseConfig { wait_ms, ..CFG };
            let start = 1_000.0;
            let (mut f, _) = Flight::begin(Found::Missing, Consumer::Caches, Millis(start), &cfg);
            let mut now = start + acquire_rtt;
            let mut step = f.acquired(Acquired::Lost, Millis(now), &cfg);
            let write = start + write_after;
            // The poll before the write, when it was sent and answered.
            let mut missed: Option<(f64, f64)> = None;
            let mut i = 0;
            while step == Step::Poll {
                let remaining = start + wait_ms - now;
                prop_assert!(f.delay_ms <= remaining + 1e-9);
                if f.delay_ms < remaining - 1e-9 {
                    prop_assert!(f.delay_ms >= POLL_MIN_MS - 1e-9, "{}", f.delay_ms);
                }
                prop_assert!(f.delay_ms <= POLL_MAX_MS + 1e-9);
                let sent = now + f.delay_ms;
                let rtt = rtts[i % rtts.len()];
                i += 1;
                if sent >= write {
                    if let Some((missed_sent, missed_answered)) = missed {
                        let waited = write - start;
                        let bound = missed_answered - missed_sent
                            + (waited.max(missed_answered - start) / 4.0)
                                .clamp(POLL_MIN_MS, POLL_MAX_MS);
                        prop_assert!(
                            sent - write <= bound + 1e-9,
                            "written at {} ms, polled {} ms later (bound {})",
                            waited, sent - write, bound
                        );
                    }
                    break;
                }
                missed = Some((sent, sent + rtt));
                now = sent + rtt;
                step = f.polled(Found::Missing, true, Millis(now), &cfg);
            }
        }

        /// A stale presentation always reads to Next as stale, never expired or discarded,
        /// with a `revalidate` a page accepts (at least 1 s unless the entry's is 0).
        #[test]
        fn stale_use_cache_presentation_is_stale_for_next(
            age in 0.0f64..1e10,
            revalidate in prop_oneof![Just(0.0), 0.001f64..1e7, Just(crate::time::INFINITE_CACHE_SECONDS)],
            expire in prop_oneof![0.001f64..1e8, Just(crate::time::INFINITE_CACHE_SECONDS)],
            since_tags in proptest::option::of(0.0f64..1e9),
        ) {
            let now = 1_795_690_530_000.0;
            let ts = now - age;
            let nb = since_tags.map_or(0.0, |d| now - d);
            if let Some((shown_ts, r)) =
                stale_use_cache_presentation(Millis(ts), revalidate, expire, Millis(nb), Millis(now))
            {
                prop_assert!(shown_ts.0 <= ts);
                prop_assert!(r <= revalidate.max(1.0));
                prop_assert!(revalidate == 0.0 || r >= 1.0);
                if revalidate > 0.0 {
                    prop_assert_eq!(next_sees(shown_ts.0, r, expire, nb, now), "stale");
                } else {
                    prop_assert!(next_sees(shown_ts.0, r, expire, nb, now) != "miss");
                }
            }
        }

        /// Whatever the lease answers and the polls find, a caching consumer's flight ends
        /// either on a fresh entry (`Serve` after a fresh read) or on a miss (`Regenerate`,
        /// `Fallback`): never on a stale entry, as it is or as fresh. A serving consumer's
        /// flight on a stale entry ends on it (stale or as fresh) or on a newer entry.
        #[test]
        fn caching_consumers_end_on_fresh_data_or_a_miss(
            first in arb_found(),
            caches in any::<bool>(),
            reply in arb_acquired(),
            polls in proptest::collection::vec((arb_found(), any::<bool>(), 0.0f64..400.0), 0..40),
            enabled in any::<bool>(),
        ) {
            let cfg = LeaseConfig { enabled, ..CFG };
            let consumer = Consumer::from_caches(caches);
            let (mut f, mut step) = Flight::begin(first, consumer, Millis(0.0), &cfg);
            let mut last_found = first;
            let mut now = 0.0;
            if step == Step::Acquire {
                now += 1.0;
                step = f.acquired(reply, Millis(now), &cfg);
            }
            let mut polls = polls.into_iter();
            while step == Step::Poll {
                let Some((found, leased, dt)) = polls.next() else { break };
                now += f.delay_ms.max(dt.min(f.delay_ms + 1.0));
                last_found = found;
                step = f.polled(found, leased, Millis(now), &cfg);
            }
            prop_assert!(step != Step::Acquire);
            if caches {
                prop_assert!(
                    matches!(step, Step::Regenerate | Step::Fallback | Step::Released | Step::Poll)
                        || (step == Step::Serve && last_found == Found::Fresh),
                    "{:?} after {:?}", step, last_found
                );
            }
            if step == Step::ServeAsFresh {
                prop_assert!(!caches);
            }
        }
    }

    #[test]
    fn follower_on_a_miss_polls_within_its_budget_then_falls_back() {
        let (mut f, _) = Flight::begin(Found::Missing, Consumer::Serves, Millis(0.0), &CFG);
        assert_eq!(f.acquired(Acquired::Lost, Millis(2.0), &CFG), Step::Poll);
        assert_eq!(f.delay_ms, POLL_MIN_MS);
        let mut now = 2.0;
        let mut delays = Vec::new();
        let mut polls = 0;
        loop {
            now += f.delay_ms;
            delays.push(f.delay_ms);
            polls += 1;
            assert!(polls < 100);
            match f.polled(Found::Missing, true, Millis(now), &CFG) {
                Step::Poll => {}
                Step::Fallback => break,
                other => panic!("{other:?}"),
            }
        }
        assert!(now <= 1_000.0 + 1e-9, "{now}");
        // Polled at 12, 22, 32, 42, 52.5, 65.6, ... ms: a quarter of the wait, 10 ms at least.
        assert_eq!(&delays[..4], &[10.0, 10.0, 10.0, 10.0]);
        assert!((delays[4] - 42.0 / 4.0).abs() < 1e-9, "{delays:?}");
        assert_eq!(delays[delays.len() - 2], POLL_MAX_MS);
        assert!(delays.iter().all(|d| *d <= POLL_MAX_MS));
        // Found on a later poll.
        let (mut f, _) = Flight::begin(Found::Missing, Consumer::Serves, Millis(0.0), &CFG);
        f.acquired(Acquired::Lost, Millis(0.0), &CFG);
        assert_eq!(
            f.polled(Found::Fresh, true, Millis(15.0), &CFG),
            Step::Serve
        );
        // Zero budget: straight to regenerating.
        let zero = LeaseConfig {
            wait_ms: 0.0,
            ..CFG
        };
        let (mut f, _) = Flight::begin(Found::Missing, Consumer::Serves, Millis(0.0), &zero);
        assert_eq!(
            f.acquired(Acquired::Lost, Millis(0.0), &zero),
            Step::Fallback
        );
    }

    #[test]
    fn newer_entry_is_read_again() {
        let (mut f, _) = Flight::begin(Found::Stale, Consumer::Serves, Millis(0.0), &CFG);
        assert_eq!(f.acquired(Acquired::Newer, Millis(1.0), &CFG), Step::Poll);
        assert_eq!(f.delay_ms, 0.0);
        assert_eq!(f.polled(Found::Fresh, true, Millis(2.0), &CFG), Step::Serve);
        assert_eq!(Acquired::from_reply(7), Acquired::Unavailable);
    }

    #[test]
    fn disabled_leases_regenerate_everywhere() {
        let off = LeaseConfig {
            enabled: false,
            ..CFG
        };
        assert_eq!(
            Flight::begin(Found::Stale, Consumer::Serves, Millis(0.0), &off).1,
            Step::ServeStale
        );
        assert_eq!(
            Flight::begin(Found::Missing, Consumer::Serves, Millis(0.0), &off).1,
            Step::Regenerate
        );
    }

    #[test]
    fn table_holds_until_the_ttl_counted_from_the_send() {
        let mut t = LeaseTable::new();
        t.hold("l", "tok", Millis(100.0), 50.0);
        assert!(t.holds("l", Millis(149.0)));
        assert!(!t.holds("l", Millis(150.0)));
        assert_eq!(t.take("l").as_deref(), Some("tok"));
        assert!(t.take("l").is_none());
        for i in 0..(MAX_HELD_LEASES + 5) {
            t.hold(&format!("k{i}"), "t", Millis(0.0), 1e9);
        }
        assert_eq!(t.len(), MAX_HELD_LEASES);
    }

    #[test]
    fn presentations() {
        let ts = Millis(1_000_000.0);
        assert!(!past_revalidate(ts, 60.0, Millis(1_060_000.0)));
        assert!(past_revalidate(ts, 60.0, Millis(1_060_001.0)));
        assert!(!past_revalidate(ts, f64::INFINITY, Millis(1e13)));
        // Still fresh: unchanged. Past it: age + lease time, capped by expire.
        assert_eq!(
            fresh_revalidate(ts, 60.0, 3600.0, Millis(1_010_000.0), 10_000.0),
            60.0
        );
        assert_eq!(
            fresh_revalidate(ts, 60.0, 3600.0, Millis(1_100_000.0), 10_000.0),
            110.0
        );
        assert_eq!(
            fresh_revalidate(ts, 60.0, 105.0, Millis(1_100_000.0), 10_000.0),
            105.0
        );
        assert_eq!(
            fresh_revalidate(ts, -1.0, f64::INFINITY, Millis(1_001_000.0), 10_000.0),
            11.0
        );
    }

    #[test]
    fn config_validation() {
        let ok = Config::default();
        assert_eq!(ok.validate(), Ok(()));
        let bad_ttl = Config {
            lease_ttl_ms: 0.0,
            ..Config::default()
        };
        assert_eq!(
            bad_ttl.validate(),
            Err(crate::error::ConfigError::Lease("leaseTtlMs"))
        );
        let bad_wait = Config {
            lease_wait_ms: f64::NAN,
            ..Config::default()
        };
        assert_eq!(
            bad_wait.validate(),
            Err(crate::error::ConfigError::Lease("leaseWaitMs"))
        );
    }
}
