//! Time to begin and end `n` writes in flight in one [`LruIndex`], ended newest first, then
//! dropped unended (ended as abandoned) oldest first: the cost of the write marks' bookkeeping
//! with many writes in flight in one process. A measurement, not a test (the core itself reads
//! no clock): `cargo run -p fleetcache-core --release --example write_marks`.
use fleetcache_core::lru::WriteMark;
use fleetcache_core::LruIndex;
use std::time::Instant;

fn main() {
    for n in [1_000usize, 10_000, 100_000] {
        let mut l = LruIndex::new(u64::MAX);
        let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        let t = Instant::now();
        let mut marks: Vec<WriteMark> = keys.iter().map(|k| l.write_begins(k)).collect();
        let begun = t.elapsed();
        let t = Instant::now();
        while let Some(m) = marks.pop() {
            l.write_ends(m);
        }
        let ended = t.elapsed();
        let mut marks: Vec<WriteMark> = keys.iter().map(|k| l.write_begins(k)).collect();
        let t = Instant::now();
        for m in marks.drain(..) {
            drop(m);
        }
        l.settle();
        let settled = t.elapsed();
        assert_eq!((l.marks_live(), l.writes_in_flight()), (0, 0));
        println!(
            "{n} marks: begin {begun:?}, end newest first {ended:?}, drop+settle oldest first {settled:?}"
        );
    }
}
