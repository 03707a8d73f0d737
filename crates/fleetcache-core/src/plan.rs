//! The sans-IO engine: it plans Redis commands and judges replies, and the host performs the
//! I/O in between. Every method is synchronous and takes the current time as an argument.

use crate::config::Config;
use crate::envelope::{decode_header, encode_header, DecodedHeader, EntryKind, EntryMeta};
use crate::error::{ConfigError, DecodeError, PlanError, ProtocolError};
use crate::keys::{Interface, Namespace, TagKeys};
use crate::lru::LruIndex;
use crate::scripts::{tag_refresh_args, tag_update_args, Script, TAG_REFRESH, TAG_UPDATE};
use crate::tags::{Freshness, RefreshSummary, Revalidation, TagMirror};
use crate::time::{duration_seconds_to_ttl_ms, is_unlimited, Millis};

/// Longest epoch candidate accepted (the host sends 32 hex digits).
const MAX_EPOCH_BYTES: usize = 128;

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

/// A script invocation: `EVALSHA sha1 <keys.len()> keys... args...`, falling back to
/// `EVAL script.source ...` on `NOSCRIPT`.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptCall {
    /// The script (for the `NOSCRIPT` fallback and for logs).
    pub script: &'static Script,
    /// Its SHA-1.
    pub sha1: String,
    /// `KEYS`, in order.
    pub keys: Vec<String>,
    /// `ARGV`, in order.
    pub args: Vec<String>,
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
    pub(crate) stats: crate::stats::Stats,
    update_sha1: String,
    refresh_sha1: String,
}

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
            stats: crate::stats::Stats::default(),
            update_sha1: TAG_UPDATE.sha1(),
            refresh_sha1: TAG_REFRESH.sha1(),
            config,
        })
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
        self.stats.record_write(
            crate::stats::surface_of(entry.kind),
            crate::stats::write_outcome(&plan),
        );
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
        crate::tags::check_tags(entry.tags)?;
        let meta = EntryMeta {
            kind: entry.kind,
            timestamp: entry.timestamp,
            revalidate: entry.revalidate,
            expire: entry.expire,
            stale: entry.stale,
            key: cache_key.to_owned(),
            tags: entry.tags.iter().map(|t| (*t).to_owned()).collect(),
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
        crate::stats::count_inspection(&self.stats, &inspection, now);
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
        } else {
            let tags = m
                .tags
                .iter()
                .map(String::as_str)
                .chain(soft_tags.iter().copied());
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
        crate::tags::check_tags(tags)?;
        if epoch_candidate.is_empty() || epoch_candidate.len() > MAX_EPOCH_BYTES {
            return Err(PlanError::InvalidEpoch);
        }
        if !(now.0.is_finite() && now.0 >= 0.0) {
            return Err(PlanError::InvalidTime);
        }
        self.mirror.apply_local(tags, rev, now);
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
                tags,
            ),
        })
    }

    /// Plans the pull of tag changes since the mirror's epoch and version.
    pub fn plan_tag_refresh(&self) -> ScriptCall {
        ScriptCall {
            script: &TAG_REFRESH,
            sha1: self.refresh_sha1.clone(),
            keys: self.tag_keys.to_vec(),
            args: tag_refresh_args(self.mirror.epoch(), self.mirror.version()),
        }
    }

    /// Merges the reply of a [`TAG_REFRESH`] call into the mirror.
    pub fn apply_refresh(&mut self, reply: &[u8]) -> Result<RefreshSummary, ProtocolError> {
        self.mirror.apply_refresh(reply)
    }

    /// Takes note of the reply of a [`TAG_UPDATE`] call (optional: it only saves the next
    /// refresh from fetching this process's own update again). Never feed it to
    /// [`Engine::apply_refresh`]: it carries no tags, and would skip other instances' updates.
    pub fn apply_update_reply(&mut self, reply: &[u8]) -> Result<RefreshSummary, ProtocolError> {
        self.mirror.apply_update_reply(reply)
    }

    /// Next's `getExpiration(tags)`: the latest expiry over `tags`, 0 when none is known.
    pub fn get_expiration(&self, tags: &[&str], now: Millis) -> Millis {
        self.mirror.expiration(tags.iter().copied(), now)
    }

    /// Drops mirror records older than the configured pruning age; returns how many.
    pub fn prune_mirror(&mut self, now: Millis) -> usize {
        self.mirror.prune(now, self.config.prune_after_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netstring;
    use crate::time::INFINITE_CACHE_SECONDS;

    const NOW: f64 = 1_795_690_530_000.0;
    const DEFAULT: Interface<'static> = Interface::UseCache("default");

    fn engine() -> Engine {
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
        let long = "x".repeat(2000);
        let tags = [long.as_str()];
        assert_eq!(
            e.plan_set(&DEFAULT, "k", input(&tags, &[]))
                .err()
                .map(|e| e.code()),
            Some("ERR_PLAN_TAG_LIMIT")
        );
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
        let long = "t".repeat(1025);
        assert_eq!(
            e.plan_tag_update(&[&long], &rev, Millis(1.0), "ep"),
            Err(PlanError::TagLimit)
        );
        let many = vec!["t"; 1025];
        assert_eq!(
            e.plan_tag_update(&many, &rev, Millis(1.0), "ep"),
            Err(PlanError::TagLimit)
        );
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
        let mut e = engine();
        let call = e.plan_tag_refresh();
        assert_eq!(call.script.name, "tag_refresh");
        assert_eq!(call.sha1, TAG_REFRESH.sha1());
        assert_eq!(call.args, ["", "0"]);
        let reply = netstring::encode(["E", "4", "1", "x", "0,10,0,0,10"]);
        let s = e.apply_refresh(&reply).unwrap();
        assert_eq!((s.full, s.changed, s.version), (true, 1, 4));
        assert_eq!(e.plan_tag_refresh().args, ["E", "4"]);
        assert_eq!(e.get_expiration(&["x", "y"], Millis(20.0)), Millis(10.0));
        let s = e
            .apply_update_reply(&netstring::encode(["E", "5", "0"]))
            .unwrap();
        assert_eq!(s.version, 5);
        assert_eq!(e.prune_mirror(Millis(1e13)), 1);
        assert!(e.mirror_mut().is_empty());
        assert!(e.lru_mut().insert("k", 1, Millis(1.0)).is_empty());
    }
}
