//! The sans-IO engine: it plans Redis commands and judges replies, and the host performs the
//! I/O in between. Every method is synchronous and takes the current time as an argument.

use crate::envelope::{DecodedHeader, EntryKind};
use crate::error::{DecodeError, PlanError};
use crate::stats::{LookupOutcome, Surface, WriteOutcome};
use crate::time::{is_unlimited, Millis};

/// An entry to be written, as Next hands it over (payload excluded).
#[derive(Clone, Copy, Debug)]
pub struct SetInput<'a> {
    /// Must match the interface the entry is written under.
    pub kind: EntryKind,
    /// Creation time (ms).
    pub timestamp: Millis,
    /// Seconds; `Infinity` (or the sentinel) for `revalidate: false`.
    pub revalidate: f64,
    /// Seconds after `timestamp` when the entry is gone; `Infinity` (or the sentinel) for
    /// "no limit".
    pub expire: f64,
    /// Seconds of client-side staleness.
    pub stale: f64,
    /// The entry's own tags.
    pub tags: &'a [&'a str],
    /// Opaque host metadata stored in the header.
    pub meta: &'a [u8],
    /// Lengths of the payload parts the host will append, in order.
    pub parts: &'a [u32],
    /// The time of the write.
    pub now: Millis,
}

/// How to write an entry.
#[derive(Clone, Debug, PartialEq)]
pub struct SetPlan {
    /// The Redis key.
    pub key: String,
    /// Envelope header; the stored value is `header ++ parts...`.
    pub header: Vec<u8>,
    /// `PX` in ms; `None` means "do not store" (already expired, `expire <= 0` or
    /// `revalidate == 0`).
    pub ttl_ms: Option<u64>,
}

/// What a stored value is worth to the request that read it.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Serve it.
    Fresh,
    /// Serve it, marked for background regeneration (`revalidate: -1`): a tag was
    /// revalidated with a profile.
    Stale,
    /// A miss: past its own `expire`, or expired by a tag.
    Expired,
    /// Another cache key with the same hash: a miss.
    KeyMismatch,
    /// Not a readable envelope: a miss and a log line (`DecodeError::code`).
    Corrupt(DecodeError),
    /// Call again with at least this many bytes of the value.
    NeedMore(usize),
}

/// The verdict plus the decoded header when there is one (for every verdict but `Corrupt`
/// and `NeedMore`). Only `Fresh` and `Stale` entries may be served.
#[derive(Clone, Debug, PartialEq)]
pub struct Inspection {
    /// The decision.
    pub verdict: Verdict,
    /// The header, when it could be decoded.
    pub header: Option<DecodedHeader>,
}

/// What the in-process tier may do with its copy of a key now ([`Engine::tier_use`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierUse {
    /// Absent, past its lifetime, or dropped: the host drops the bytes too.
    Gone = 0,
    /// Judge it and serve it if it is servable (it is marked as just used).
    Serve = 1,
    /// Kept for outages only, and Redis answers: read Redis, keep the bytes.
    Kept = 2,
}

/// The interface an entry kind belongs to.
pub fn surface_of(kind: EntryKind) -> Surface {
    match kind {
        EntryKind::UseCache => Surface::UseCache,
        EntryKind::Incremental => Surface::Incremental,
    }
}

/// What a write plan counts as.
pub fn write_outcome(plan: &Result<SetPlan, PlanError>) -> WriteOutcome {
    match plan {
        Ok(p) if p.ttl_ms.is_some() => WriteOutcome::Stored,
        Ok(_) => WriteOutcome::NotCacheable,
        Err(PlanError::TooLarge { .. }) => WriteOutcome::TooLarge,
        Err(_) => WriteOutcome::Invalid,
    }
}

/// Why an expired entry is a miss: its own `expire` when that has passed, else a tag.
pub fn expiry_cause(header: Option<&DecodedHeader>, now: Millis) -> LookupOutcome {
    match header {
        Some(h)
            if !is_unlimited(h.meta.expire)
                && now.0 > h.meta.timestamp.plus_seconds(h.meta.expire).0 =>
        {
            LookupOutcome::Expired
        }
        _ => LookupOutcome::ExpiredByTag,
    }
}

impl Inspection {
    /// The lookup this verdict counts as, and the interface it belongs to (the entry's, else
    /// `'use cache'`); `None` for [`Verdict::NeedMore`], which is no decision yet.
    pub fn lookup_outcome(&self, now: Millis) -> Option<(Surface, LookupOutcome)> {
        let surface = self
            .header
            .as_ref()
            .map_or(Surface::UseCache, |h| surface_of(h.meta.kind));
        let outcome = match &self.verdict {
            Verdict::Fresh => LookupOutcome::Hit,
            Verdict::Stale => LookupOutcome::Stale,
            Verdict::Expired => expiry_cause(self.header.as_ref(), now),
            Verdict::KeyMismatch => LookupOutcome::KeyMismatch,
            Verdict::Corrupt(_) => LookupOutcome::Corrupt,
            Verdict::NeedMore(_) => return None,
        };
        Some((surface, outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::engine::{Engine, PRUNE_EVERY_MS};
    use crate::envelope::decode_header;
    use crate::error::{ConfigError, PlanError};
    use crate::keys::Interface;
    use crate::netstring;
    use crate::scripts::{TAG_REFRESH, TAG_UPDATE};
    use crate::tags::{Revalidation, TagRecord};
    use crate::time::INFINITE_CACHE_SECONDS;

    const NOW: f64 = 1_795_690_530_000.0;
    const DEFAULT: Interface<'static> = Interface::UseCache("default");

    /// An engine that follows no shared state (its tag mirror is complete as it is).
    fn engine() -> Engine {
        let mut e = shared_engine();
        e.mark_standalone();
        e
    }

    /// An engine whose mirror waits for its first refresh from Redis.
    fn shared_engine() -> Engine {
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
        assert_eq!(call.args, ["", "0", ""]);
        load(&mut e, "E", "4", &["x".into(), "0,10,0,0,10".into()], 20.0);
        assert_eq!(e.plan_tag_refresh().args, ["E", "4", "v"]);
        assert_eq!(e.get_expiration(&["x", "y"], Millis(20.0)), Millis(10.0));
        e.apply_update_reply(&netstring::encode(["E", "6", "v6", "0"]))
            .unwrap();
        assert_eq!(e.plan_tag_refresh().args, ["E", "4", "v", "6", "v6"]);
        assert_eq!(e.prune_mirror(Millis(1e13)), 1);
        assert!(e.mirror_mut().is_empty());
        assert!(e.lru_mut().insert("k", 1, Millis(1.0)).is_empty());
    }

    /// Loads a whole state into `e` as a server does: the full header, one page (of `pairs`,
    /// tag and record text), the catch-up refresh.
    fn load(e: &mut Engine, epoch: &str, ver: &str, pairs: &[String], now: f64) {
        let s = e
            .apply_refresh(
                &netstring::encode([epoch, ver, "v", "1", "c1"]),
                Millis(now),
            )
            .unwrap();
        assert!(s.full);
        let call = e.plan_tag_refresh();
        assert_eq!(call.script.name, "tag_page");
        assert_eq!(call.keys, [e.namespace().tag_keys().state.clone()]);
        assert_eq!(call.args, ["c1", "1000"]);
        let mut page = vec!["page".to_owned(), "0".to_owned()];
        page.extend(pairs.iter().cloned());
        e.apply_refresh(&netstring::encode(&page), Millis(now))
            .unwrap();
        assert_eq!(e.plan_tag_refresh().args, [epoch, ver, "v"]);
        e.apply_refresh(&netstring::encode([epoch, ver, "v", "0"]), Millis(now))
            .unwrap();
        assert!(e.mirror().is_synced());
    }

    /// Issue 14, item 2: a week of per-item revalidations (a new tag every minute, from this
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
            let mut reply = vec!["E".to_owned(), ver.to_string(), "v".into(), "0".into()];
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
                ..input(&["t"], &[1])
            },
        );
        let untagged = stored(
            &e,
            "u",
            SetInput {
                timestamp: Millis(NOW - 10.0),
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
}
