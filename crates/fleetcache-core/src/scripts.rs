//! Every Lua script the core plans (tag state, leases, seeding), the argument lists of the
//! tag-state scripts, and [`ScriptCall`], the planned invocation the host executes.
//!
//! The tag-state scripts run with `EVALSHA <sha1> 3 <state> <log> <meta> <args...>`; on a `NOSCRIPT` error the
//! host falls back to `EVAL <source> 3 ...` (which also caches the script). They touch only
//! their three `KEYS`, which share the `{<prefix>}` slot, so they are Cluster-safe.

use crate::error::PlanError;
use crate::tags::{Revalidation, TagRecord};
use crate::time::Millis;

/// A Lua script run by Redis (5.1 dialect, Redis 7 semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Script {
    /// Short name for logs and metrics.
    pub name: &'static str,
    /// The Lua source, byte-exact (its SHA-1 is what `EVALSHA` looks up).
    pub source: &'static str,
}

impl Script {
    /// Lowercase hex SHA-1 of the source, as Redis computes it for `EVALSHA`.
    pub fn sha1(&self) -> String {
        sha1_smol::Sha1::from(self.source).digest().to_string()
    }
}

/// Applies a revalidation to tags. `KEYS = [state, log, meta]` and, for a process that
/// follows the state by push, the announcement channel as a fourth (the update then
/// `SPUBLISH`es `'a', epoch, ver, vid, tag, record, ...`),
/// `ARGV = [now_ms, prune_after_ms, epoch_candidate, mode, expire_ms, tag...]`; returns the
/// netstrings `epoch, ver, vid, 0` (`vid` is the id of that version: the epoch candidate).
pub const TAG_UPDATE: Script = Script {
    name: "tag_update",
    source: include_str!("lua/tag_update.lua"),
};

/// Returns what changed since a known version. `KEYS = [state, log, meta]`,
/// `ARGV = [known_epoch, known_ver, known_vid]`; returns the netstrings
/// `epoch, ver, vid, full_flag, tag, record, ...`: every tag when the state is new, older than
/// the reader's version, or holds another id for it (a failover reused the number).
pub const TAG_REFRESH: Script = Script {
    name: "tag_refresh",
    source: include_str!("lua/tag_refresh.lua"),
};

/// One page of the whole tag state. `KEYS = [state]`, `ARGV = [cursor, count]`; returns the
/// netstrings `page, next_cursor, tag, record, ...` (`next_cursor` is `0` after the last).
pub const TAG_PAGE: Script = Script {
    name: "tag_page",
    source: include_str!("lua/tag_page.lua"),
};

/// Merges tag records a process knew and the shared state lost. `KEYS = [state, log, meta]`,
/// `ARGV = [epoch_candidate, tag, record, ...]`; replies like [`TAG_UPDATE`].
pub const TAG_MERGE: Script = Script {
    name: "tag_merge",
    source: include_str!("lua/tag_merge.lua"),
};

/// Takes a lease unless a newer entry is already stored. `KEYS = [entry, lease]`,
/// `ARGV = [token, px, seen_timestamp_ms]`; returns 1 (taken), 0 (held by another) or 2 (a
/// newer entry is stored: read it again).
pub const LEASE_ACQUIRE: Script = Script {
    name: "lease_acquire",
    source: include_str!("lua/lease_acquire.lua"),
};

/// Stores an entry and releases the writer's lease, atomically. `KEYS = [entry, lease]`,
/// `ARGV = [px, token, value]` (the host appends the value); returns 1 when it released.
pub const LEASE_WRITE: Script = Script {
    name: "lease_write",
    source: include_str!("lua/lease_write.lua"),
};

/// Compare-and-delete of a lease. `KEYS = [lease]`, `ARGV = [token]`; returns 1 when it
/// released.
pub const LEASE_RELEASE: Script = Script {
    name: "lease_release",
    source: include_str!("lua/lease_release.lua"),
};

/// A follower's poll: the entry and whether its lease still exists, in one atomic read.
/// `KEYS = [entry, lease]`, no `ARGV`; returns `[entry or nil, 1 | 0]`.
pub const LEASE_POLL: Script = Script {
    name: "lease_poll",
    source: include_str!("lua/lease_poll.lua"),
};

/// Compare-and-`PEXPIRE` of a lease while its holder regenerates. `KEYS = [lease]`,
/// `ARGV = [token, px]`; returns 1 when it extended the lease.
pub const LEASE_RENEW: Script = Script {
    name: "lease_renew",
    source: include_str!("lua/lease_renew.lua"),
};

/// Stores a seeded entry unless the stored one is as new or newer. `KEYS = [entry]`,
/// `ARGV = [px, created_ms, value]` (the host appends the value); returns 1 (stored) or 0
/// (kept the stored entry).
pub const SEED_WRITE: Script = Script {
    name: "seed_write",
    source: include_str!("lua/seed_write.lua"),
};

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

/// Every script, e.g. for preloading with `SCRIPT LOAD` or finding a source by SHA-1.
pub const ALL: &[Script] = &[
    TAG_UPDATE,
    TAG_REFRESH,
    TAG_PAGE,
    TAG_MERGE,
    LEASE_ACQUIRE,
    LEASE_WRITE,
    LEASE_RELEASE,
    LEASE_POLL,
    LEASE_RENEW,
    SEED_WRITE,
];

/// Longest epoch candidate accepted (the host sends 32 hex digits).
pub const MAX_EPOCH_BYTES: usize = 128;

/// Checks an epoch candidate: the random token the tag-state scripts store as the state's id
/// when the state does not exist yet.
pub fn check_epoch_candidate(epoch_candidate: &str) -> Result<(), PlanError> {
    if epoch_candidate.is_empty() || epoch_candidate.len() > MAX_EPOCH_BYTES {
        return Err(PlanError::InvalidEpoch);
    }
    Ok(())
}

/// A whole number of ms as a decimal integer (NaN and negatives become 0).
fn int_ms(ms: f64) -> String {
    (ms.ceil().max(0.0) as u64).to_string()
}

/// `ARGV` of [`TAG_UPDATE`]. `now` is rounded up to a whole ms, exactly as
/// [`TagRecord::apply`](crate::TagRecord::apply) rounds it, so both sides store equal records.
pub fn tag_update_args(
    now: Millis,
    prune_after_ms: f64,
    epoch_candidate: &str,
    rev: &Revalidation,
    tags: &[&str],
) -> Vec<String> {
    let (mode, expire_ms) = match rev {
        Revalidation::Expire => ("x", String::new()),
        Revalidation::Stale { .. } => ("s", rev.expire_ms().map(int_ms).unwrap_or_default()),
    };
    let mut args = Vec::with_capacity(5 + tags.len());
    args.push(int_ms(now.0));
    args.push(int_ms(prune_after_ms));
    args.push(epoch_candidate.to_owned());
    args.push(mode.to_owned());
    args.push(expire_ms);
    args.extend(tags.iter().map(|t| (*t).to_owned()));
    args
}

/// `ARGV` of [`TAG_REFRESH`]; `checks` are versions (and their ids) the reader's own updates
/// made that it has not seen in a refresh, each checked like the known one.
pub fn tag_refresh_args(
    known_epoch: &str,
    known_version: u64,
    known_vid: &str,
    checks: &[(u64, String)],
) -> Vec<String> {
    let mut args = Vec::with_capacity(3 + 2 * checks.len());
    args.push(known_epoch.to_owned());
    args.push(known_version.to_string());
    args.push(known_vid.to_owned());
    for (version, vid) in checks {
        args.push(version.to_string());
        args.push(vid.clone());
    }
    args
}

/// `ARGV` of [`TAG_MERGE`].
pub fn tag_merge_args(epoch_candidate: &str, records: &[(String, TagRecord)]) -> Vec<String> {
    let mut args = Vec::with_capacity(1 + 2 * records.len());
    args.push(epoch_candidate.to_owned());
    for (tag, record) in records {
        args.push(tag.clone());
        args.push(record.encode());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `KEYS[...]` index used by a script.
    fn key_indices(source: &str) -> Vec<String> {
        source
            .split("KEYS[")
            .skip(1)
            .map(|rest| rest.chars().take_while(|c| *c != ']').collect())
            .collect()
    }

    #[test]
    fn scripts_use_only_their_declared_keys() {
        for script in ALL {
            let indices = key_indices(script.source);
            assert!(!indices.is_empty(), "{}", script.name);
            for i in &indices {
                // The update script's fourth key is the announcement channel (same slot).
                let channel = script.name == "tag_update" && i == "4";
                assert!(
                    ["1", "2", "3"].contains(&i.as_str()) || channel,
                    "{}: KEYS[{i}]",
                    script.name
                );
            }
            // No key names spelled out, no dynamic key access, no cross-slot helpers.
            for forbidden in [
                "fleetcache:",
                ":tags:",
                ":state",
                ":log",
                ":meta",
                "#KEYS",
                "'KEYS'",
                // The keyspace scan; HSCAN of one key (TAG_PAGE) is a bounded step in one slot.
                "'SCAN'",
                "tostring(",
            ] {
                let code: String = script
                    .source
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                assert!(
                    !code.contains(forbidden),
                    "{} contains {forbidden}",
                    script.name
                );
            }
        }
    }

    #[test]
    fn sha1_is_lowercase_hex() {
        for script in ALL {
            let sha = script.sha1();
            assert_eq!(sha.len(), 40);
            assert!(sha
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        }
        assert_ne!(TAG_UPDATE.sha1(), TAG_REFRESH.sha1());
        let abc = Script {
            name: "t",
            source: "abc",
        };
        assert_eq!(abc.sha1(), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn update_args_layout() {
        let args = tag_update_args(
            Millis(1000.2),
            5e9,
            "ep",
            &Revalidation::Stale {
                expire_seconds: Some(1.5),
            },
            &["a", "b"],
        );
        assert_eq!(args, ["1001", "5000000000", "ep", "s", "1500", "a", "b"]);
        let args = tag_update_args(Millis(7.0), 1.0, "ep", &Revalidation::Expire, &["a"]);
        assert_eq!(args, ["7", "1", "ep", "x", "", "a"]);
        let stale = Revalidation::Stale {
            expire_seconds: None,
        };
        assert_eq!(
            tag_update_args(Millis(7.0), 1.0, "e", &stale, &[])[3..5],
            ["s", ""]
        );
        let zero = Revalidation::Stale {
            expire_seconds: Some(0.0),
        };
        assert_eq!(
            tag_update_args(Millis(7.0), 1.0, "e", &zero, &[])[3..5],
            ["s", "0"]
        );
        assert_eq!(tag_refresh_args("ep", 12, "v", &[]), ["ep", "12", "v"]);
        assert_eq!(
            tag_refresh_args("ep", 12, "v", &[(14, "w".into())]),
            ["ep", "12", "v", "14", "w"]
        );
    }
}
