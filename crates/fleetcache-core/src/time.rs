//! Time as the host hands it in: the core never reads a clock.
//!
//! Everything is milliseconds since the Unix epoch in an `f64`, because that is what
//! `Date.now()` and Next's fractional timestamps are, and an `f64` holds every whole
//! millisecond for the next quarter of a million years exactly.

/// Next's `INFINITE_CACHE` sentinel (`0xfffffffe` seconds), which means "no limit" just like
/// `Infinity`.
pub const INFINITE_CACHE_SECONDS: f64 = 4_294_967_294.0;

/// How far a process's clock may run ahead of its wall clock before the entries it writes are
/// stamped on the wall clock instead ([`ahead_of_wall`]). Above what `Date.now()`'s whole
/// milliseconds and the distance between two readings leave between the two clocks in a
/// process that no step parted (about 2 ms measured), so that such a process's stamps are
/// Next's own, exactly.
pub const CLOCK_AHEAD_SLACK_MS: f64 = 10.0;

/// How far the distance between a host's two clocks may move before a request's start tells
/// the engine (js-host/src/tag-sync.ts, `noteClocks`; the wasm binding's `clockNoteMs`, which
/// the host reads once at load): above what `Date.now()`'s whole milliseconds leave, so a
/// request that finds the clocks as they were makes no call into wasm (a tier hit is one), and
/// below [`CLOCK_AHEAD_SLACK_MS`]. Up to this much drift may thus go untold, so the engine takes
/// a move of more than the slack less this as a step (`Engine::note_clocks`): every move of the
/// real distance by more than the slack is one, whatever the host left untold.
pub const CLOCK_NOTE_MS: f64 = 5.0;

// A filter at the slack or above would leave a step the engine must see untold.
const _: () = assert!(CLOCK_NOTE_MS > 0.0 && CLOCK_NOTE_MS < CLOCK_AHEAD_SLACK_MS);

/// How far `now` (the process's clock, on which Next stamps entries) runs ahead of `wall` (the
/// wall clock), when more than [`CLOCK_AHEAD_SLACK_MS`]; 0 otherwise. A step of the wall clock
/// back after the process started puts it ahead: its entries would be stamped in the future and
/// outlive revalidations made after them (docs/decisions/0036). Moved back by this much, they
/// are on the wall clock, as the fleet's revalidations are. A `wall` that is not a time after
/// the epoch (NaN where the host has one clock; 0, negative or infinite from a broken or mocked
/// `Date.now`) is none: trusted, it would stamp every entry before 1970.
pub fn ahead_of_wall(now: Millis, wall: Millis) -> f64 {
    let ahead = now.0 - wall.0;
    if wall.0 > 0.0 && ahead.is_finite() && ahead > CLOCK_AHEAD_SLACK_MS {
        ahead
    } else {
        0.0
    }
}

/// The time a revalidation recorded at `now` (the process's clock) is stamped at: the later
/// of `now` and `wall` (the wall clock). A process that a step of the wall clock left behind
/// would otherwise stamp its revalidation in the past, and every entry the fleet wrote in
/// between on the wall clock would outlive it; later is the safe side of every comparison a
/// tag time takes part in (docs/decisions/0036). A `wall` that is not a time after the epoch
/// (NaN where the host has one clock; 0, negative or infinite from a broken or mocked
/// `Date.now`) is none, as for [`ahead_of_wall`]: `now` is kept as it is.
pub fn revalidation_stamp(now: Millis, wall: Millis) -> Millis {
    if wall.0 > 0.0 && wall.0.is_finite() && wall.0 > now.0 {
        wall
    } else {
        now
    }
}

/// A point in time in milliseconds since the Unix epoch, as supplied by the host.
#[derive(Copy, Clone, Debug, PartialEq, PartialOrd, Default)]
pub struct Millis(pub f64);

impl Millis {
    /// The epoch itself; also "never" for tag times (0 = none).
    pub const ZERO: Millis = Millis(0.0);

    /// Rounds up to a whole millisecond, so a stored tag time never sorts before the instant
    /// it was taken (a comparison against an entry timestamp stays conservative).
    pub fn ceil(self) -> Millis {
        Millis(self.0.ceil())
    }

    /// The earliest time later than this one (the next `f64` up): what a comparison that must
    /// be strictly later, such as "planned after the time a revalidation is recorded at",
    /// first admits. NaN and infinity are returned as they are.
    pub fn just_after(self) -> Millis {
        let x = self.0;
        if !x.is_finite() {
            return self;
        }
        if x == 0.0 {
            return Millis(f64::from_bits(1));
        }
        let bits = x.to_bits();
        Millis(f64::from_bits(if x > 0.0 { bits + 1 } else { bits - 1 }))
    }

    /// This time plus `s` seconds.
    pub fn plus_seconds(self, s: f64) -> Millis {
        Millis(self.0 + s * 1000.0)
    }

    /// The later of two times (a NaN operand loses).
    pub fn max(self, o: Millis) -> Millis {
        Millis(self.0.max(o.0))
    }

    /// The earlier of two times (a NaN operand loses).
    pub fn min(self, o: Millis) -> Millis {
        Millis(self.0.min(o.0))
    }
}

/// True for durations Next uses to say "no limit": `Infinity` and the `INFINITE_CACHE`
/// sentinel (and anything above it).
pub fn is_unlimited(seconds: f64) -> bool {
    // +Infinity compares above the sentinel; NaN compares false.
    seconds >= INFINITE_CACHE_SECONDS
}

/// Converts a lifetime in seconds to a Redis `PX` value in milliseconds.
///
/// Returns 0, meaning "do not store", for NaN, zero and negative durations. `Infinity`, the
/// `INFINITE_CACHE` sentinel and anything above `max_ttl_seconds` become `max_ttl_seconds`.
/// Any positive duration yields at least 1 ms, because `PX 0` is an error in Redis.
pub fn duration_seconds_to_ttl_ms(seconds: f64, max_ttl_seconds: f64) -> u64 {
    if seconds.is_nan() || seconds <= 0.0 {
        return 0;
    }
    let seconds = if is_unlimited(seconds) || seconds > max_ttl_seconds {
        max_ttl_seconds
    } else {
        seconds
    };
    // `as` saturates (and maps NaN to 0) for float-to-int casts, so this cannot wrap.
    let ms = (seconds * 1000.0).ceil() as u64;
    ms.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a wall clock that is a time after the epoch, more than the slack behind `now`,
    /// moves entries: a host without one passes NaN, and one that passes no time at all (0, a
    /// negative value, an infinity: a mocked `Date.now`) would otherwise stamp every entry
    /// before 1970, stored for nothing (its TTL gone) and older than every revalidation.
    #[test]
    fn only_a_wall_clock_behind_now_by_more_than_the_slack_moves_entries() {
        let now = Millis(1_765_000_000_000.0);
        for wall in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -1.0,
            -5_000.0,
            now.0,
            now.0 + 5_000.0,
            now.0 - CLOCK_AHEAD_SLACK_MS,
        ] {
            assert_eq!(ahead_of_wall(now, Millis(wall)), 0.0, "wall {wall}");
        }
        assert_eq!(ahead_of_wall(now, Millis(now.0 - 5_000.0)), 5_000.0);
        assert_eq!(
            ahead_of_wall(now, Millis(now.0 - 5.0 * 3_600_000.0)),
            5.0 * 3_600_000.0
        );
    }

    /// The later of the two clocks, and only a wall clock that is a time after the epoch:
    /// NaN, infinities, 0 and negatives leave `now` as it is (an infinite stamp would make
    /// every entry of the tags stale for good).
    #[test]
    fn a_revalidation_is_stamped_no_earlier_than_a_usable_wall_clock() {
        let now = Millis(1_765_000_000_000.0);
        for wall in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -1.0,
            now.0 - 5_000.0,
            now.0,
        ] {
            assert_eq!(revalidation_stamp(now, Millis(wall)), now, "wall {wall}");
        }
        assert_eq!(
            revalidation_stamp(now, Millis(now.0 + 5_000.0)),
            Millis(now.0 + 5_000.0)
        );
        assert_eq!(
            revalidation_stamp(now, Millis(now.0 + 0.5)),
            Millis(now.0 + 0.5)
        );
    }

    const MAX: f64 = 30.0 * 86_400.0;

    #[test]
    fn ttl_rejects_nothing_to_store() {
        assert_eq!(duration_seconds_to_ttl_ms(f64::NAN, MAX), 0);
        assert_eq!(duration_seconds_to_ttl_ms(0.0, MAX), 0);
        assert_eq!(duration_seconds_to_ttl_ms(-1.0, MAX), 0);
        assert_eq!(duration_seconds_to_ttl_ms(f64::NEG_INFINITY, MAX), 0);
    }

    #[test]
    fn ttl_clamps_unlimited_and_long() {
        let max_ms = 2_592_000_000;
        assert_eq!(duration_seconds_to_ttl_ms(f64::INFINITY, MAX), max_ms);
        assert_eq!(
            duration_seconds_to_ttl_ms(INFINITE_CACHE_SECONDS, MAX),
            max_ms
        );
        assert_eq!(duration_seconds_to_ttl_ms(31_536_000.0, MAX), max_ms);
        // The sentinel means "no limit" even when the configured maximum is larger.
        assert_eq!(
            duration_seconds_to_ttl_ms(INFINITE_CACHE_SECONDS, 1e10),
            10_000_000_000_000
        );
    }

    #[test]
    fn ttl_rounds_up_to_at_least_one_ms() {
        assert_eq!(duration_seconds_to_ttl_ms(1e-9, MAX), 1);
        assert_eq!(duration_seconds_to_ttl_ms(1.0005, MAX), 1001);
        assert_eq!(duration_seconds_to_ttl_ms(60.0, MAX), 60_000);
    }

    #[test]
    fn millis_helpers() {
        assert_eq!(Millis(1.2).ceil(), Millis(2.0));
        assert_eq!(Millis(2.0).ceil(), Millis(2.0));
        assert_eq!(Millis(1000.0).plus_seconds(1.5), Millis(2500.0));
        assert_eq!(Millis(1.0).max(Millis(2.0)), Millis(2.0));
        assert_eq!(Millis(1.0).min(Millis(2.0)), Millis(1.0));
        assert_eq!(Millis::default(), Millis::ZERO);
        assert!(is_unlimited(f64::INFINITY));
        assert!(!is_unlimited(f64::NEG_INFINITY));
        assert!(!is_unlimited(f64::NAN));
    }

    /// The next time up, and nothing between: a clock at 1.8e12 ms steps by 2^-12 ms.
    #[test]
    fn just_after_is_the_next_time_up() {
        let t = Millis(1_800_000_000_011.0);
        let next = t.just_after();
        assert!(next.0 > t.0);
        assert_eq!(next.0 - t.0, 1.0 / 4096.0);
        assert!(Millis::ZERO.just_after().0 > 0.0);
        assert!(Millis(-0.0).just_after().0 > 0.0);
        assert_eq!(Millis(f64::MAX).just_after().0, f64::INFINITY);
        assert_eq!(Millis(-1.0).just_after().0, -1.0 + f64::EPSILON / 2.0);
        assert_eq!(Millis(f64::INFINITY).just_after().0, f64::INFINITY);
        assert!(Millis(f64::NAN).just_after().0.is_nan());
    }
}
