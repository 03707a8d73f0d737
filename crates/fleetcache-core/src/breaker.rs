//! Circuit breaker for the Redis connection (docs/decisions/0007-failure-handling.md): closed, open, half-open, with the
//! time passed in.
//!
//! The host asks [`Breaker::admit`] before every Redis command and reports how it went with
//! [`Breaker::record`]. While the breaker is open nothing is sent, so a dead or hung Redis
//! costs the fleet a few failed commands per instance, not a queue of requests each waiting
//! for its deadline. It trips on either of two signals:
//!
//! - `failures` consecutive failures (a Redis that died: every command fails), or
//! - a failure rate of at least `failure_rate` over the last `window_ms`, once at least
//!   `min_calls` results are in the window (a Redis that is flaky, so successes keep resetting
//!   the consecutive count).
//!
//! After `open_ms` exactly one command is let through as a probe (half-open). Its success
//! closes the breaker; its failure reopens it for twice as long, up to `max_open_ms`, so a
//! long outage costs one probe per `max_open_ms` per instance. A probe whose result never
//! arrives (a host bug) is replaced after `probe_timeout_ms`, so the breaker cannot stay
//! half-open forever, and never sooner, so probes cannot pile up.
//!
//! Every state change starts a new generation; results of commands admitted in an earlier
//! generation are ignored, so a burst of late timeouts from before a recovery cannot reopen
//! the breaker, and late successes from before an outage cannot close it.

pub use crate::config::BreakerConfig;
use crate::time::Millis;

/// Buckets of the failure-rate window: the window slides in steps of `window_ms / 10`.
const BUCKETS: usize = 10;

/// The breaker's state as the host sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Commands are sent.
    Closed = 0,
    /// Commands are refused until the open period ends.
    Open = 1,
    /// One probe is in flight; every other command is refused.
    HalfOpen = 2,
}

/// How a command admitted by [`Breaker::admit`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallResult {
    /// Redis answered (an error reply about the command itself, such as `NOSCRIPT`, is an
    /// answer too: Redis is healthy).
    Success,
    /// The connection failed or was not available.
    Failure,
    /// No answer within the command's budget.
    Timeout,
}

/// Permission to send one command; hand it back to [`Breaker::record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permit {
    generation: u64,
    probe: bool,
}

impl Permit {
    /// True when this command is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// A positive integer that survives the trip through JS (below 2^53 for any realistic
    /// number of state changes).
    pub fn to_token(self) -> u64 {
        self.generation
            .saturating_mul(2)
            .saturating_add(u64::from(self.probe))
    }

    /// The permit a token came from. A token the breaker never issued decodes to a permit
    /// of a generation that does not match, so its result is ignored.
    pub fn from_token(token: u64) -> Permit {
        Permit {
            generation: token / 2,
            probe: token % 2 == 1,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    index: i64,
    ok: u32,
    failed: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Closed,
    Open { until: Millis },
    HalfOpen { probe_deadline: Millis },
}

/// A circuit breaker; see the module documentation.
#[derive(Clone, Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
    generation: u64,
    consecutive: u32,
    buckets: [Bucket; BUCKETS],
    open_for: f64,
    trips: u64,
    rejected: u64,
}

/// A time as a whole number of `step`s; NaN and infinities saturate (no panic), which can
/// only blur the window for a host that hands in such times.
fn steps(now: Millis, step: f64) -> i64 {
    (now.0 / step).floor() as i64
}

impl Breaker {
    /// A closed breaker. The configuration is taken as is: [`Config::validate`] checks it.
    ///
    /// [`Config::validate`]: crate::Config::validate
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            config,
            state: State::Closed,
            generation: 1,
            consecutive: 0,
            buckets: [Bucket::default(); BUCKETS],
            open_for: config.open_ms,
            trips: 0,
            rejected: 0,
        }
    }

    /// The state at `now` (an open breaker whose time is up reports `HalfOpen`: the next
    /// command becomes the probe).
    pub fn state(&self, now: Millis) -> BreakerState {
        match self.state {
            State::Closed => BreakerState::Closed,
            State::Open { until } if now < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// When the breaker admits its next probe: `None` while closed. The host runs a probe
    /// then (a tag refresh), so an idle instance also learns that Redis is back.
    pub fn next_probe_at(&self) -> Option<Millis> {
        match self.state {
            State::Closed => None,
            State::Open { until } => Some(until),
            State::HalfOpen { probe_deadline } => Some(probe_deadline),
        }
    }

    /// Times the breaker opened from closed since it was created: outages, each counted once
    /// however many of its probes failed (a failed probe keeps the breaker open, in the same
    /// outage), so it pairs with the recoveries and with the host's one log line per opening.
    pub fn trips(&self) -> u64 {
        self.trips
    }

    /// Commands refused since the breaker was created.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Asks to send one command at `now`: `Some(permit)` to send it, `None` to skip Redis.
    pub fn admit(&mut self, now: Millis) -> Option<Permit> {
        match self.state {
            State::Closed => Some(Permit {
                generation: self.generation,
                probe: false,
            }),
            State::Open { until } if now >= until => Some(self.start_probe(now)),
            State::HalfOpen { probe_deadline } if now >= probe_deadline => {
                Some(self.start_probe(now))
            }
            State::Open { .. } | State::HalfOpen { .. } => {
                self.rejected = self.rejected.saturating_add(1);
                None
            }
        }
    }

    fn start_probe(&mut self, now: Millis) -> Permit {
        self.generation = self.generation.saturating_add(1);
        self.state = State::HalfOpen {
            probe_deadline: Millis(now.0 + self.config.probe_timeout_ms),
        };
        Permit {
            generation: self.generation,
            probe: true,
        }
    }

    /// Reports how an admitted command ended. Returns true when the state changed.
    pub fn record(&mut self, permit: Permit, result: CallResult, now: Millis) -> bool {
        if permit.generation != self.generation {
            return false;
        }
        let ok = result == CallResult::Success;
        match self.state {
            State::Closed => {
                self.count(ok, now);
                if ok {
                    self.consecutive = 0;
                    return false;
                }
                self.consecutive = self.consecutive.saturating_add(1);
                if self.consecutive >= self.config.failures || self.rate_exceeded(now) {
                    self.trips = self.trips.saturating_add(1);
                    self.trip(now);
                    return true;
                }
                false
            }
            State::HalfOpen { .. } if permit.probe => {
                if ok {
                    self.generation = self.generation.saturating_add(1);
                    self.state = State::Closed;
                    self.consecutive = 0;
                    self.buckets = [Bucket::default(); BUCKETS];
                    self.open_for = self.config.open_ms;
                } else {
                    self.open_for = (self.open_for * 2.0).min(self.config.max_open_ms);
                    self.trip(now);
                }
                true
            }
            State::HalfOpen { .. } | State::Open { .. } => false,
        }
    }

    fn trip(&mut self, now: Millis) {
        self.generation = self.generation.saturating_add(1);
        self.state = State::Open {
            until: Millis(now.0 + self.open_for),
        };
    }

    fn step(&self) -> f64 {
        self.config.window_ms / BUCKETS as f64
    }

    fn count(&mut self, ok: bool, now: Millis) {
        let index = steps(now, self.step());
        let slot = index.rem_euclid(BUCKETS as i64) as usize;
        if let Some(bucket) = self.buckets.get_mut(slot) {
            if bucket.index != index {
                *bucket = Bucket {
                    index,
                    ok: 0,
                    failed: 0,
                };
            }
            if ok {
                bucket.ok = bucket.ok.saturating_add(1);
            } else {
                bucket.failed = bucket.failed.saturating_add(1);
            }
        }
    }

    fn rate_exceeded(&self, now: Millis) -> bool {
        let current = steps(now, self.step());
        let (mut ok, mut failed) = (0u64, 0u64);
        for b in &self.buckets {
            // Only buckets of the last window count; a host clock that went backwards leaves
            // buckets "from the future", which count too rather than being lost.
            if b.index > current.saturating_sub(BUCKETS as i64) {
                ok += u64::from(b.ok);
                failed += u64::from(b.failed);
            }
        }
        let total = ok + failed;
        total >= u64::from(self.config.min_calls)
            && total > 0
            && failed as f64 >= self.config.failure_rate * total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(ms: f64) -> Millis {
        Millis(1_795_690_530_000.0 + ms)
    }

    fn fail(b: &mut Breaker, now: Millis) -> bool {
        let p = b.admit(now).expect("admitted");
        b.record(p, CallResult::Failure, now)
    }

    #[test]
    fn consecutive_failures_open_then_one_probe_closes() {
        let mut b = Breaker::new(BreakerConfig::default());
        for i in 0..4 {
            assert!(!fail(&mut b, at(f64::from(i))));
        }
        assert_eq!(b.state(at(4.0)), BreakerState::Closed);
        assert!(fail(&mut b, at(4.0)));
        assert_eq!(b.state(at(5.0)), BreakerState::Open);
        assert_eq!(b.admit(at(500.0)), None);
        assert_eq!(b.rejected(), 1);
        // Open time over: one probe, everything else refused while it is out.
        let probe = b.admit(at(1004.0)).unwrap();
        assert!(probe.is_probe());
        assert_eq!(b.admit(at(1005.0)), None);
        assert_eq!(b.admit(at(3000.0)), None);
        assert!(b.record(probe, CallResult::Success, at(1010.0)));
        assert_eq!(b.state(at(1010.0)), BreakerState::Closed);
        assert!(!b.admit(at(1011.0)).unwrap().is_probe());
        assert_eq!(b.trips(), 1);
    }

    #[test]
    fn success_resets_the_consecutive_count() {
        let mut b = Breaker::new(BreakerConfig::default());
        for i in 0..20 {
            let now = at(f64::from(i) * 1000.0);
            if i % 4 == 3 {
                let p = b.admit(now).unwrap();
                b.record(p, CallResult::Success, now);
            } else {
                fail(&mut b, now);
            }
        }
        // 15 of 20 failed over 20 s, but never 5 in a row and never 20 in one 10 s window.
        assert_eq!(b.state(at(20_000.0)), BreakerState::Closed);
    }

    #[test]
    fn failure_rate_opens_without_consecutive_failures() {
        let mut b = Breaker::new(BreakerConfig::default());
        let mut opened = None;
        for i in 0..40 {
            let now = at(f64::from(i) * 10.0);
            let p = b.admit(now).unwrap();
            let result = if i % 2 == 0 {
                CallResult::Timeout
            } else {
                CallResult::Success
            };
            if b.record(p, result, now) {
                opened = Some(i);
                break;
            }
        }
        // The 20th result fills the window at a 50 % failure rate (it is a timeout).
        assert_eq!(opened, Some(20));
    }

    #[test]
    fn failed_probe_doubles_the_open_time_up_to_the_cap() {
        let mut b = Breaker::new(BreakerConfig {
            max_open_ms: 5_000.0,
            ..BreakerConfig::default()
        });
        for _ in 0..5 {
            fail(&mut b, at(0.0));
        }
        let mut t = 0.0;
        for want in [2000.0, 4000.0, 5000.0, 5000.0] {
            t += b.open_for;
            let p = b.admit(at(t)).unwrap();
            assert!(p.is_probe());
            b.record(p, CallResult::Timeout, at(t));
            assert_eq!(b.open_for, want);
            assert_eq!(b.admit(at(t + want - 1.0)), None);
        }
    }

    #[test]
    fn an_outage_is_one_trip_however_many_probes_fail() {
        let mut b = Breaker::new(BreakerConfig::default());
        for _ in 0..5 {
            fail(&mut b, at(0.0));
        }
        assert_eq!(b.trips(), 1);
        // Each failed probe keeps the breaker open (a state change), in the same outage.
        let mut t = 0.0;
        for _ in 0..3 {
            t += b.open_for;
            let p = b.admit(at(t)).unwrap();
            assert!(b.record(p, CallResult::Timeout, at(t)));
            assert_eq!(b.state(at(t)), BreakerState::Open);
        }
        assert_eq!(b.trips(), 1);
        t += b.open_for;
        let p = b.admit(at(t)).unwrap();
        assert!(b.record(p, CallResult::Success, at(t)));
        // The next outage is the second.
        for _ in 0..5 {
            fail(&mut b, at(t + 1.0));
        }
        assert_eq!(b.trips(), 2);
    }

    #[test]
    fn late_results_of_an_older_generation_are_ignored() {
        let mut b = Breaker::new(BreakerConfig::default());
        let old: Vec<_> = (0..10).map(|_| b.admit(at(0.0)).unwrap()).collect();
        for p in &old[..5] {
            b.record(*p, CallResult::Failure, at(1.0));
        }
        assert_eq!(b.state(at(2.0)), BreakerState::Open);
        // A success from before the trip does not close it.
        assert!(!b.record(old[5], CallResult::Success, at(3.0)));
        let probe = b.admit(at(1001.0)).unwrap();
        b.record(probe, CallResult::Success, at(1002.0));
        // Timeouts of commands sent before the outage do not reopen it.
        for p in &old[6..] {
            assert!(!b.record(*p, CallResult::Timeout, at(1003.0)));
        }
        assert_eq!(b.state(at(1003.0)), BreakerState::Closed);
    }

    #[test]
    fn lost_probe_is_replaced_after_the_probe_timeout() {
        let cfg = BreakerConfig::default();
        let replaced_at = 1000.0 + cfg.probe_timeout_ms;
        let mut b = Breaker::new(cfg);
        for _ in 0..5 {
            fail(&mut b, at(0.0));
        }
        let lost = b.admit(at(1000.0)).unwrap();
        assert_eq!(b.admit(at(replaced_at - 1.0)), None);
        let second = b.admit(at(replaced_at)).unwrap();
        assert!(second.is_probe());
        // The lost probe's late report is ignored.
        assert!(!b.record(lost, CallResult::Success, at(replaced_at + 1.0)));
        assert_eq!(b.state(at(replaced_at + 1.0)), BreakerState::HalfOpen);
    }

    #[test]
    fn tokens_round_trip_and_strange_times_do_not_panic() {
        let mut b = Breaker::new(BreakerConfig::default());
        let p = b.admit(Millis(f64::NAN)).unwrap();
        assert_eq!(Permit::from_token(p.to_token()), p);
        assert!(p.to_token() > 0);
        for t in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1e300, 1e300] {
            let p = b.admit(Millis(t));
            if let Some(p) = p {
                b.record(p, CallResult::Failure, Millis(t));
            }
        }
        // A forged token is just ignored.
        assert!(!b.record(Permit::from_token(u64::MAX), CallResult::Success, at(0.0)));
    }

    #[derive(Clone, Debug)]
    enum Step {
        Admit,
        Report { which: usize, result: u8 },
        Wait(u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Admit),
            3 => (any::<usize>(), 0u8..3).prop_map(|(which, result)| Step::Report { which, result }),
            2 => (0u16..3000).prop_map(Step::Wait),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Half-open is never skipped: the breaker only goes from open to closed through a
        /// probe that reported success. No probe storm: while a probe is outstanding and its
        /// timeout has not passed, no other command is admitted, and an open breaker admits
        /// nothing before its time is up.
        #[test]
        fn half_open_is_never_skipped_and_probes_do_not_storm(
            steps in proptest::collection::vec(step(), 1..300)
        ) {
            let cfg = BreakerConfig::default();
            let mut b = Breaker::new(cfg);
            let mut now = at(0.0);
            let mut outstanding: Vec<Permit> = Vec::new();
            let mut last_probe: Option<Millis> = None;
            for s in steps {
                let before = b.state;
                match s {
                    Step::Admit => {
                        if let Some(p) = b.admit(now) {
                            match before {
                                State::Closed => prop_assert!(!p.is_probe()),
                                State::Open { until } => {
                                    prop_assert!(now >= until, "admitted while open");
                                    prop_assert!(p.is_probe());
                                }
                                State::HalfOpen { probe_deadline } => {
                                    prop_assert!(now >= probe_deadline, "second probe before the first timed out");
                                    prop_assert!(p.is_probe());
                                }
                            }
                            if p.is_probe() {
                                if let Some(prev) = last_probe {
                                    prop_assert!(now.0 - prev.0 >= cfg.open_ms.min(cfg.probe_timeout_ms));
                                }
                                last_probe = Some(now);
                            }
                            outstanding.push(p);
                        }
                    }
                    Step::Report { which, result } => {
                        if !outstanding.is_empty() {
                            let p = outstanding.swap_remove(which % outstanding.len());
                            let result = [CallResult::Success, CallResult::Failure, CallResult::Timeout][usize::from(result)];
                            b.record(p, result, now);
                            let after = b.state;
                            if matches!(after, State::Closed) && !matches!(before, State::Closed) {
                                prop_assert!(p.is_probe() && result == CallResult::Success,
                                    "closed without a successful probe");
                                prop_assert!(matches!(before, State::HalfOpen { .. }), "open went straight to closed");
                            }
                        }
                    }
                    Step::Wait(ms) => now = Millis(now.0 + f64::from(ms)),
                }
            }
        }
    }
}
