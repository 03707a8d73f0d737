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
///
/// The scripts below are `static`, not `const`: a `const` is copied into every crate and
/// function that names it, and each copy brought its own copy of the source text into the
/// wasm module (docs/decisions/0028-wasm-size-budget.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Script {
    /// Short name for logs and metrics.
    pub name: &'static str,
    /// The Lua source as sent, byte-exact (its SHA-1 is what `EVALSHA` looks up): the file
    /// without comments, blank lines, indentation and the spaces no token needs.
    pub source: &'static str,
    /// Lowercase hex SHA-1 of `source`, computed at compile time: a script is planned on
    /// every request, and hashing its text each time cost time and the hash's code.
    sha1: &'static str,
}

impl Script {
    /// Lowercase hex SHA-1 of the source, as Redis computes it for `EVALSHA`.
    pub fn sha1(&self) -> String {
        self.sha1.to_owned()
    }
}

/// The text a script is sent as: its file under `src/lua/` without comment lines, blank
/// lines, indentation, and the spaces no token needs, compacted at compile time. The files
/// are written for readers; Redis needs none of that, and it was almost half of the source
/// text the wasm module carries (docs/decisions/0028-wasm-size-budget.md). The scripts use no
/// long strings or long comments (`[[...]]`) and no string spans lines, so each kept line
/// holds the same tokens, in the same order, as in the file (the tests lex both and compare).
macro_rules! lua {
    ($name:literal, $file:literal) => {{
        const FILE: &[u8] = include_bytes!($file);
        const BYTES: [u8; compact::<0>(FILE).1] = compact(FILE).0;
        const SOURCE: &str = match core::str::from_utf8(&BYTES) {
            Ok(source) => source,
            Err(_) => panic!("a Lua script is not UTF-8"),
        };
        const SHA1: [u8; 40] = sha1_hex(&BYTES);
        Script {
            name: $name,
            source: SOURCE,
            sha1: match core::str::from_utf8(&SHA1) {
                Ok(hex) => hex,
                Err(_) => panic!("hex digits are ASCII"),
            },
        }
    }};
}

// Evaluated at compile time only (by `lua!`): an index out of range is a build error, never a
// panic at run time, and `<[u8]>::get` is not a const fn at the crate's minimum Rust version.
#[allow(clippy::indexing_slicing)]
/// Where the line starting at `at` ends (its `\n` or the end of `src`), and where its text
/// starts after indentation.
const fn line_bounds(src: &[u8], at: usize) -> (usize, usize) {
    let mut start = at;
    while start < src.len() && (src[start] == b' ' || src[start] == b'\t') {
        start += 1;
    }
    let mut end = start;
    while end < src.len() && src[end] != b'\n' {
        end += 1;
    }
    (start, end)
}

/// A byte of a Lua name, keyword or number.
const fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `a` then `b` with no space between could lex otherwise than with one: two words
/// (`local x`), a number (`a` ends a word that began with a digit: `number`) then `.`
/// (`1 ..`), `..` then `.`, `-` then `-` (a comment), a comparison's `=` (`~ =` is no `~=`),
/// `[` then `[` or `=` (a long string).
const fn joins(a: u8, b: u8, number: bool) -> bool {
    (is_word(a) && is_word(b))
        || (b == b'.' && ((number && is_word(a)) || a == b'.'))
        || (a == b'-' && b == b'-')
        || (b == b'=' && (a == b'=' || a == b'~' || a == b'<' || a == b'>'))
        || (a == b'[' && (b == b'[' || b == b'='))
}

// Evaluated at compile time only (by `lua!`): an index out of range is a build error, never a
// panic at run time, and `<[u8]>::get` is not a const fn at the crate's minimum Rust version.
#[allow(clippy::indexing_slicing)]
/// The script `src` as sent, and its length: each line with code, without its indentation,
/// a trailing `--` comment or a space that [`joins`] does not need, ending in `\n`; comment
/// lines and blank lines dropped. Strings (`'...'`, `"..."`, with `\` escapes) are copied as
/// they are. With `N` 0 it only counts (the length sizes the array of the second call).
const fn compact<const N: usize>(src: &[u8]) -> ([u8; N], usize) {
    let mut out = [0u8; N];
    let mut j = 0;
    let mut at = 0;
    while at < src.len() {
        let (start, end) = line_bounds(src, at);
        // The byte last written on this line (0: none yet), the open string's quote (0: none),
        // whether spaces were skipped since, and whether the last word began with a digit.
        let (mut last, mut quote, mut space, mut number) = (0u8, 0u8, false, false);
        let mut i = start;
        while i < end {
            let c = src[i];
            i += 1;
            if quote == 0 {
                if c == b' ' || c == b'\t' || c == b'\r' {
                    space = true;
                    continue;
                }
                if c == b'-' && i < end && src[i] == b'-' {
                    break;
                }
                if space && last != 0 && joins(last, c, number) {
                    if N > 0 {
                        out[j] = b' ';
                    }
                    j += 1;
                }
                // A word starts here: after a space or a byte of no word.
                if is_word(c) && (space || !is_word(last)) {
                    number = c.is_ascii_digit();
                }
                space = false;
                if c == b'\'' || c == b'"' {
                    quote = c;
                }
            } else if c == b'\\' && i < end {
                if N > 0 {
                    out[j] = c;
                }
                j += 1;
                last = src[i];
                if N > 0 {
                    out[j] = last;
                }
                j += 1;
                i += 1;
                continue;
            } else if c == quote {
                quote = 0;
            }
            if N > 0 {
                out[j] = c;
            }
            j += 1;
            last = c;
        }
        if last != 0 {
            if N > 0 {
                out[j] = b'\n';
            }
            j += 1;
        }
        at = end + 1;
    }
    (out, j)
}

// Evaluated at compile time only (by `lua!`): an index out of range is a build error, never a
// panic at run time, and `<[u8]>::get` is not a const fn at the crate's minimum Rust version.
#[allow(clippy::indexing_slicing)]
/// SHA-1 (FIPS 180-4) of `data` as 40 lowercase hex digits, for [`lua!`] at compile time.
const fn sha1_hex(data: &[u8]) -> [u8; 40] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    // The message, a 1 bit, zeros, and the bit length: whole 64-byte blocks.
    let blocks = (data.len() + 8) / 64 + 1;
    let bit_len = (data.len() as u64) * 8;
    let mut block = 0;
    while block < blocks {
        let mut w = [0u32; 80];
        let mut t = 0;
        while t < 16 {
            let mut word = 0u32;
            let mut k = 0;
            while k < 4 {
                let i = block * 64 + t * 4 + k;
                let byte = if i < data.len() {
                    data[i]
                } else if i == data.len() {
                    0x80
                } else if i >= blocks * 64 - 8 {
                    (bit_len >> ((blocks * 64 - 1 - i) * 8)) as u8
                } else {
                    0
                };
                word = (word << 8) | byte as u32;
                k += 1;
            }
            w[t] = word;
            t += 1;
        }
        while t < 80 {
            w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
            t += 1;
        }
        let (mut a, mut b, mut c, mut d, mut e) = (h[0], h[1], h[2], h[3], h[4]);
        t = 0;
        while t < 80 {
            let (f, k) = if t < 20 {
                ((b & c) | (!b & d), 0x5A82_7999)
            } else if t < 40 {
                (b ^ c ^ d, 0x6ED9_EBA1)
            } else if t < 60 {
                ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC)
            } else {
                (b ^ c ^ d, 0xCA62_C1D6)
            };
            let next = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(w[t]);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = next;
            t += 1;
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
        block += 1;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        let nibble = (h[i / 8] >> (28 - (i % 8) * 4)) & 0xf;
        out[i] = HEX[nibble as usize];
        i += 1;
    }
    out
}

/// Applies a revalidation to tags. `KEYS = [state, log, meta]` and, for a process that
/// follows the state by push, the announcement channel as a fourth (the update then
/// `SPUBLISH`es `'a', epoch, ver, vid, prev, tag, record, ...`, `prev` the id of the
/// version it follows),
/// `ARGV = [now_ms, prune_after_ms, epoch_candidate, mode, expire_ms, tag...]`; returns the
/// netstrings `epoch, ver, vid, 0` (`vid` is the id of that version: the epoch candidate).
pub static TAG_UPDATE: Script = lua!("tag_update", "lua/tag_update.lua");

/// Returns what changed since a known version. `KEYS = [state, log, meta]`,
/// `ARGV = [known_epoch, known_ver, known_vid]`; returns the netstrings
/// `epoch, ver, vid, full_flag, tag, record, ...`: every tag when the state is new, older than
/// the reader's version, or holds another id for it (a failover reused the number).
pub static TAG_REFRESH: Script = lua!("tag_refresh", "lua/tag_refresh.lua");

/// One page of the whole tag state. `KEYS = [state, log, meta]`,
/// `ARGV = [cursor, count, seen_ver, seen_vid]` (the version the previous page was read at);
/// returns the netstrings `page, next_cursor, ver, vid, rolled_back, tag, record, ...`
/// (`next_cursor` is `0` after the last; `rolled_back` `1`, with no tags, when the state no
/// longer holds `seen_ver` with that id).
pub static TAG_PAGE: Script = lua!("tag_page", "lua/tag_page.lua");

/// Merges tag records a process knew and the shared state lost. `KEYS = [state, log, meta]`,
/// `ARGV = [epoch_candidate, tag, record, ...]`; replies like [`TAG_UPDATE`].
pub static TAG_MERGE: Script = lua!("tag_merge", "lua/tag_merge.lua");

/// Takes a lease unless a newer entry is already stored. `KEYS = [entry, lease]`,
/// `ARGV = [token, px, seen_timestamp_ms]`; returns 1 (taken), 0 (held by another) or 2 (a
/// newer entry is stored: read it again).
pub static LEASE_ACQUIRE: Script = lua!("lease_acquire", "lua/lease_acquire.lua");

/// Stores an entry and releases the writer's lease, atomically. `KEYS = [entry, lease]`,
/// `ARGV = [px, token, value]` (the host appends the value); returns 1 when it released.
pub static LEASE_WRITE: Script = lua!("lease_write", "lua/lease_write.lua");

/// Stores a page or route entry of the singular handler and announces the write on the tag
/// state's channel (docs/decisions/0031-page-entries-in-the-tier-by-push.md).
/// `KEYS = [entry, meta, channel, lease]` (the lease in mode `l` only),
/// `ARGV = [px, mode, arg, value]` (the host appends the value): mode `''` a plain write
/// (returns 1), `l` releases the lease held with token `arg` as [`LEASE_WRITE`] does (1 when
/// released), `s` a seed created at `arg` ms, as [`SEED_WRITE`] (1 stored, 0 kept and not
/// announced).
pub static ENTRY_WRITE: Script = lua!("entry_write", "lua/entry_write.lua");

/// An [`ENTRY_WRITE`] call with these `KEYS` and `ARGV` (the value appended by the host).
#[inline(never)]
pub fn entry_write_call(keys: &[&str], args: &[&str]) -> ScriptCall {
    ScriptCall {
        script: &ENTRY_WRITE,
        sha1: ENTRY_WRITE.sha1(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    }
}

/// The call that writes what the `EVALSHA` argv of an [`ENTRY_WRITE`] call writes without
/// announcing it (the value is appended by the host as before): an empty argv for its mode
/// `''` (the host sends `SET entry value PX px`), [`LEASE_WRITE`] for mode `l`, [`SEED_WRITE`]
/// for mode `s`; `None` for any other argv. For a Redis that refuses the script's two slots
/// (CROSSSLOT: cluster-enabled behind one URL).
pub fn unannounced_argv(argv: &[&str]) -> Option<Vec<String>> {
    if argv.get(1).copied() != Some(ENTRY_WRITE.sha1().as_str()) {
        return None;
    }
    // `[EVALSHA, sha1, numkeys, entry, meta, channel, (lease,) px, mode, arg, id]`.
    let lease = argv.get(2).copied() == Some("4");
    let at = if lease { 7 } else { 6 };
    let (entry, px, mode, arg) = (
        argv.get(3)?,
        argv.get(at)?,
        argv.get(at + 1)?,
        argv.get(at + 2)?,
    );
    let mut v = Vec::with_capacity(7);
    let (script, numkeys) = match *mode {
        "" => return Some(v),
        "l" if lease => (&LEASE_WRITE, "2"),
        "s" => (&SEED_WRITE, "1"),
        _ => return None,
    };
    v.push("EVALSHA".to_owned());
    v.push(script.sha1());
    v.push(numkeys.to_owned());
    v.push((*entry).to_owned());
    if lease {
        v.push((*argv.get(6)?).to_owned());
    }
    v.push((*px).to_owned());
    v.push((*arg).to_owned());
    Some(v)
}

/// Compare-and-delete of a lease. `KEYS = [lease]`, `ARGV = [token]`; returns 1 when it
/// released.
pub static LEASE_RELEASE: Script = lua!("lease_release", "lua/lease_release.lua");

/// A follower's poll: the entry and whether its lease still exists, in one atomic read.
/// `KEYS = [entry, lease]`, no `ARGV`; returns `[entry or nil, 1 | 0]`.
pub static LEASE_POLL: Script = lua!("lease_poll", "lua/lease_poll.lua");

/// A push follower's read of a page or route entry: the entry and whether the page-write
/// sequence is still at the write the reader knows last, in one atomic read.
/// `KEYS = [entry, meta]`, `ARGV = [epoch, pver, pvid]`; returns `[entry or nil, 1 | 0]`
/// (docs/decisions/0031-page-entries-in-the-tier-by-push.md).
pub static PAGE_READ: Script = lua!("page_read", "lua/page_read.lua");

/// Compare-and-`PEXPIRE` of a lease while its holder regenerates. `KEYS = [lease]`,
/// `ARGV = [token, px]`; returns 1 when it extended the lease.
pub static LEASE_RENEW: Script = lua!("lease_renew", "lua/lease_renew.lua");

/// Stores a seeded entry unless the stored one is as new or newer. `KEYS = [entry]`,
/// `ARGV = [px, created_ms, value]` (the host appends the value); returns 1 (stored) or 0
/// (kept the stored entry).
pub static SEED_WRITE: Script = lua!("seed_write", "lua/seed_write.lua");

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
pub static ALL: [&Script; 12] = [
    &TAG_UPDATE,
    &TAG_REFRESH,
    &TAG_PAGE,
    &TAG_MERGE,
    &LEASE_ACQUIRE,
    &LEASE_WRITE,
    &LEASE_RELEASE,
    &LEASE_POLL,
    &PAGE_READ,
    &LEASE_RENEW,
    &SEED_WRITE,
    &ENTRY_WRITE,
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
    crate::text::u64_text(ms.ceil().max(0.0) as u64)
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

/// `ARGV` of [`TAG_REFRESH`]; `anchor` the version (and id) the last page of the reader's load
/// was read at ([`crate::tags::TagMirror::anchor`]), `checks` versions (and their ids) the
/// reader's own updates made that it has not seen in a refresh, and `part` the one the last
/// part it was answered was cut from ([`crate::tags::TagMirror::part_check`]), each checked
/// like the known one.
pub fn tag_refresh_args(
    known_epoch: &str,
    known_version: u64,
    known_vid: &str,
    anchor: Option<(u64, &str)>,
    checks: &[(u64, String)],
    part: Option<(u64, &str)>,
) -> Vec<String> {
    let mut args = Vec::with_capacity(7 + 2 * checks.len());
    args.push(known_epoch.to_owned());
    args.push(crate::text::u64_text(known_version));
    args.push(known_vid.to_owned());
    let (anchor_version, anchor_vid) = anchor.unwrap_or((0, ""));
    args.push(crate::text::u64_text(anchor_version));
    args.push(anchor_vid.to_owned());
    for (version, vid) in checks {
        args.push(crate::text::u64_text(*version));
        args.push(vid.clone());
    }
    if let Some((version, vid)) = part {
        args.push(crate::text::u64_text(version));
        args.push(vid.to_owned());
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

    /// The tokens of one line as Lua 5.1's lexer splits them, for the constructs the scripts
    /// use: names, numbers (`llex.c`'s `read_numeral`: digits and dots, an exponent's sign, then
    /// any word bytes), strings with their quotes and escapes, operators by longest match (a
    /// `[[`/`[=` long bracket is a token of its own, so a compaction that made one fails); a
    /// `--` comment ends the line.
    fn lua_tokens(line: &str) -> Vec<String> {
        let b = line.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let start = i;
            if c == b' ' || c == b'\t' || c == b'\r' {
                i += 1;
                continue;
            }
            if line[i..].starts_with("--") {
                break;
            }
            if c == b'\'' || c == b'"' {
                i += 1;
                while b[i] != c {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            } else if c.is_ascii_digit()
                || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
            {
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                    i += 1;
                    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                        i += 1;
                    }
                }
                while i < b.len() && is_word(b[i]) {
                    i += 1;
                }
            } else if is_word(c) {
                while i < b.len() && is_word(b[i]) {
                    i += 1;
                }
            } else {
                let op = ["...", "..", "==", "~=", "<=", ">=", "[[", "[="]
                    .into_iter()
                    .find(|op| line[i..].starts_with(op));
                i += op.map_or(1, str::len);
            }
            out.push(line[start..i].to_owned());
        }
        out
    }

    /// The text sent is the file's lines of code, in order, each with the same tokens as in
    /// the file: no comment line, no blank line, only spaces no token needs taken out.
    #[test]
    fn sources_are_the_files_code_lines() {
        // The files as written, compiled in: the test reads nothing at run time.
        let files = [
            ("tag_update", include_str!("lua/tag_update.lua")),
            ("tag_refresh", include_str!("lua/tag_refresh.lua")),
            ("tag_page", include_str!("lua/tag_page.lua")),
            ("tag_merge", include_str!("lua/tag_merge.lua")),
            ("lease_acquire", include_str!("lua/lease_acquire.lua")),
            ("lease_write", include_str!("lua/lease_write.lua")),
            ("lease_release", include_str!("lua/lease_release.lua")),
            ("lease_poll", include_str!("lua/lease_poll.lua")),
            ("page_read", include_str!("lua/page_read.lua")),
            ("lease_renew", include_str!("lua/lease_renew.lua")),
            ("seed_write", include_str!("lua/seed_write.lua")),
            ("entry_write", include_str!("lua/entry_write.lua")),
        ];
        assert_eq!(files.len(), ALL.len());
        for script in ALL {
            let file = files
                .iter()
                .find(|(name, _)| *name == script.name)
                .map(|(_, text)| *text)
                .unwrap();
            let code: Vec<Vec<String>> = file
                .lines()
                .map(lua_tokens)
                .filter(|t| !t.is_empty())
                .collect();
            let sent = script
                .source
                .strip_suffix('\n')
                .expect("the source ends with a newline");
            let sent: Vec<Vec<String>> = sent.split('\n').map(lua_tokens).collect();
            assert_eq!(sent, code, "{}", script.name);
            assert!(
                !script.source.contains("  ") && !script.source.contains("\n "),
                "{} has no runs of spaces and no indentation",
                script.name
            );
            let tokens: usize = code.iter().map(Vec::len).sum();
            let lines = code.len();
            assert!(
                script.source.len()
                    < code.iter().flatten().map(String::len).sum::<usize>() + tokens - lines
                        + lines,
                "{}: fewer spaces than one between every two tokens",
                script.name
            );
            assert!(
                file.contains("--"),
                "{} has its comments in the file",
                script.name
            );
        }
    }

    /// What the compaction keeps a space for, and what it copies as it is.
    #[test]
    fn compaction_keeps_the_spaces_tokens_need() {
        fn sent(lua: &str) -> String {
            let (bytes, len) = compact::<256>(lua.as_bytes());
            String::from_utf8(bytes[..len].to_vec()).unwrap()
        }
        for (lua, compacted) in [
            ("  local x = a - -b", "local x=a- -b\n"),
            (
                "y = 1 .. x .. 'z' .. a1 .. 2.5 .. 0xf .. t.k",
                "y=1 ..x..'z'..a1..2.5 ..0xf ..t.k\n",
            ),
            ("z = x .. .5", "z=x.. .5\n"),
            ("s = 'a  b -- c' -- a comment", "s='a  b -- c'\n"),
            ("t = \"it\\\" s\" ..  'q\\' '", "t=\"it\\\" s\"..'q\\' '\n"),
            ("if a ~= b and c <= d then", "if a~=b and c<=d then\n"),
            ("u = v[ [x] ]", "u=v[ [x]]\n"),
            ("-- only a comment\n\n\tend  ", "end\n"),
        ] {
            assert_eq!(sent(lua), compacted, "{lua}");
            assert_eq!(compact::<0>(lua.as_bytes()).1, compacted.len(), "{lua}");
        }
    }

    /// The SHA-1 computed at compile time is the one Redis computes (checked against an
    /// independent implementation, and on the standard test vectors).
    #[test]
    fn compile_time_sha1_is_sha1() {
        for script in ALL {
            assert_eq!(
                script.sha1(),
                sha1_smol::Sha1::from(script.source).digest().to_string(),
                "{}",
                script.name
            );
        }
        for (input, digest) in [
            ("", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            ("abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
            ),
        ] {
            assert_eq!(&sha1_hex(input.as_bytes()), digest.as_bytes(), "{input}");
        }
        for len in 0..200 {
            let data = vec![b'x'; len];
            assert_eq!(
                std::str::from_utf8(&sha1_hex(&data)).unwrap(),
                sha1_smol::Sha1::from(&data).digest().to_string(),
                "length {len}"
            );
        }
    }

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
                // The update script's fourth key is the announcement channel (same slot); the
                // page write's is the entry's lease (its second and third the tag state's meta
                // and channel: single Redis only, docs/decisions/0031).
                let channel = script.name == "tag_update" && i == "4";
                let lease = script.name == "entry_write" && i == "4";
                assert!(
                    ["1", "2", "3"].contains(&i.as_str()) || channel || lease,
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
        assert_eq!(
            tag_refresh_args("ep", 12, "v", None, &[], None),
            ["ep", "12", "v", "0", ""]
        );
        assert_eq!(
            tag_refresh_args(
                "ep",
                12,
                "v",
                Some((14, "w")),
                &[(14, "w".into())],
                Some((20, "x"))
            ),
            ["ep", "12", "v", "14", "w", "14", "w", "20", "x"]
        );
    }
}
