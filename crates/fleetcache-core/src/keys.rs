//! Redis key layout (internals.md, "Redis keys").
//!
//! User-controlled text (cache keys, odd deployment ids, handler names that bypassed
//! validation) only ever reaches a key through a SHA-256 digest, so no key can contain a
//! `{`, `}`, `:` or space that would change its structure or its Redis Cluster slot.

use crate::strhash::{reseed, str_map, HashSeed, StrMap};
use std::cell::RefCell;

use sha2::{Digest, Sha256};

use crate::envelope::EntryKind;
use crate::error::KeyError;

/// Longest possible entry or lease key: prefix 64, deployment 64, interface 35, hash tag 34,
/// plus separators and suffix.
pub const MAX_ENTRY_KEY_LEN: usize = 64 + 1 + 64 + 1 + 35 + 1 + 34 + 2;

/// Deployment segment used when the host gives none.
pub const DEFAULT_DEPLOYMENT: &str = "default";

/// True for `[A-Za-z0-9._-]{1,64}`: the characters that can never alter a key's structure.
pub fn is_valid_prefix(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// True for `[a-z-]{1,32}`, the names Next accepts as `cacheHandlers` keys.
fn is_valid_handler_name(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

/// Lowercase hex of the first `digits / 2` bytes of SHA-256 of `data`.
fn sha256_hex(data: &[u8], digits: usize) -> String {
    let digest = Sha256::digest(data);
    let mut out = String::with_capacity(digits);
    for b in digest.iter().take(digits.div_ceil(2)) {
        push_hex(&mut out, *b);
    }
    out.truncate(digits);
    out
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for nibble in [b >> 4, b & 0x0f] {
        // A nibble is < 16, so this lookup always succeeds.
        if let Some(c) = HEX.get(usize::from(nibble)) {
            out.push(char::from(*c));
        }
    }
}

/// Which of Next's two cache interfaces an entry belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interface<'a> {
    /// `cacheHandlers.<name>` (`'use cache'`), e.g. `default` or `remote`.
    UseCache(&'a str),
    /// The singular `cacheHandler` (ISR, full-route and fetch cache).
    Incremental,
}

impl<'a> Interface<'a> {
    /// A `cacheHandlers` interface, checking that `name` is `[a-z-]{1,32}` as Next requires.
    pub fn use_cache(name: &'a str) -> Result<Interface<'a>, KeyError> {
        if is_valid_handler_name(name) {
            Ok(Interface::UseCache(name))
        } else {
            Err(KeyError::InvalidHandlerName)
        }
    }

    /// Parses a key segment as produced by [`Interface::segment`]: `inc` or `uc-<name>`.
    ///
    /// Bare handler names are not accepted here, because `inc` is itself a valid handler name
    /// and the two readings would be ambiguous; use [`Interface::use_cache`] for those.
    pub fn parse(segment: &'a str) -> Result<Interface<'a>, KeyError> {
        if segment == "inc" {
            return Ok(Interface::Incremental);
        }
        match segment.strip_prefix("uc-") {
            Some(name) => Interface::use_cache(name).map_err(|_| KeyError::InvalidInterface),
            None => Err(KeyError::InvalidInterface),
        }
    }

    /// The key segment: `uc-<name>` or `inc`.
    ///
    /// A `UseCache` name built directly (bypassing [`Interface::use_cache`]) that is not
    /// `[a-z-]{1,32}` becomes `uc-_<16 hex digits of its SHA-256>`; `_` never occurs in a
    /// valid name, so the hashed form cannot collide with a real one.
    pub fn segment(&self) -> String {
        let mut segment = String::new();
        self.push_segment(&mut segment);
        segment
    }

    /// Appends [`Interface::segment`] to `out` (no allocation of its own: keys are built on
    /// every read).
    fn push_segment(&self, out: &mut String) {
        match self {
            Interface::Incremental => out.push_str("inc"),
            Interface::UseCache(name) if is_valid_handler_name(name) => {
                out.push_str("uc-");
                out.push_str(name);
            }
            Interface::UseCache(name) => {
                out.push_str("uc-_");
                out.push_str(&sha256_hex(name.as_bytes(), 16));
            }
        }
    }

    /// The envelope kind written under this interface.
    pub fn kind(&self) -> EntryKind {
        match self {
            Interface::UseCache(_) => EntryKind::UseCache,
            Interface::Incremental => EntryKind::Incremental,
        }
    }
}

/// The three Redis keys that hold tag state, all in the `{<prefix>}` slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagKeys {
    /// HASH tag -> tag record.
    pub state: String,
    /// ZSET tag scored by the version of its last update.
    pub log: String,
    /// HASH with `epoch` and `ver`.
    pub meta: String,
    /// Sharded pub/sub channel (same slot) on which updates announce what they write, for
    /// the processes that follow the state by push.
    pub announce: String,
}

impl TagKeys {
    /// The keys in script order (`KEYS[1..3]` of both tag scripts).
    pub fn to_vec(&self) -> Vec<String> {
        vec![self.state.clone(), self.log.clone(), self.meta.clone()]
    }
}

/// Whether `id` has the shape of a hashed deployment id (`h` + 16 lowercase hex digits).
fn looks_hashed(id: &str) -> bool {
    id.len() == 17
        && id.starts_with('h')
        && id
            .bytes()
            .skip(1)
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A validated prefix plus a sanitised deployment: everything needed to name keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    prefix: String,
    deployment: String,
    /// The segment `'use cache'` entries use instead of `deployment`, when set
    /// ([`Namespace::with_use_cache_segment`]).
    use_cache: Option<String>,
}

/// `[A-Za-z0-9._-]{1,64}` kept as is, empty as `default`, anything else hashed.
fn sanitise_segment(segment: &str) -> String {
    if segment.is_empty() {
        DEFAULT_DEPLOYMENT.to_owned()
    } else if is_valid_prefix(segment) && !looks_hashed(segment) {
        segment.to_owned()
    } else {
        crate::text!("h", sha256_hex(segment.as_bytes(), 16))
    }
}

impl Namespace {
    /// Checks `prefix` and sanitises `deployment`: kept as is when it is
    /// `[A-Za-z0-9._-]{1,64}`, `default` when empty, otherwise `h` + 16 hex digits of its
    /// SHA-256. An id that already has that hashed shape is hashed too, so a kept id can never
    /// equal the hashed form of another.
    pub fn new(prefix: &str, deployment: &str) -> Result<Namespace, KeyError> {
        if !is_valid_prefix(prefix) {
            return Err(KeyError::InvalidPrefix);
        }
        Ok(Namespace {
            prefix: prefix.to_owned(),
            deployment: sanitise_segment(deployment),
            use_cache: None,
        })
    }

    /// The same namespace, with `'use cache'` entries (and their leases) under `segment`
    /// instead of the deployment, sanitised like a deployment id. For entries whose cache key
    /// already names what they depend on, so that they outlive one deployment.
    pub fn with_use_cache_segment(mut self, segment: &str) -> Namespace {
        self.use_cache = Some(sanitise_segment(segment));
        self
    }

    /// The segment `'use cache'` entries are stored under: the deployment unless
    /// [`Namespace::with_use_cache_segment`] set another one.
    pub fn use_cache_segment(&self) -> &str {
        self.use_cache.as_deref().unwrap_or(&self.deployment)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The deployment segment as used in keys (after sanitising).
    pub fn deployment(&self) -> &str {
        &self.deployment
    }

    /// The Redis Cluster hash tag content for a cache key: 32 hex digits (128 bits) of its
    /// SHA-256.
    pub fn hash_tag(cache_key: &str) -> String {
        sha256_hex(cache_key.as_bytes(), 32)
    }

    fn slot_key(&self, iface: &Interface<'_>, cache_key: &str, suffix: &str) -> String {
        self.slot_key_hashed(iface, &Namespace::hash_tag(cache_key), suffix)
    }

    fn slot_key_hashed(&self, iface: &Interface<'_>, hash: &str, suffix: &str) -> String {
        let segment = match iface {
            Interface::UseCache(_) => self.use_cache_segment(),
            Interface::Incremental => &self.deployment,
        };
        // Built by hand, not with `format!`: this runs on every read.
        let mut key = String::with_capacity(
            self.prefix.len() + segment.len() + hash.len() + suffix.len() + 48,
        );
        for part in [&*self.prefix, ":", segment, ":"] {
            key.push_str(part);
        }
        iface.push_segment(&mut key);
        for part in [":{", hash, "}:", suffix] {
            key.push_str(part);
        }
        key
    }

    /// The entry key of a cache key whose [`Namespace::hash_tag`] is `hash`.
    pub fn entry_key_hashed(&self, iface: &Interface<'_>, hash: &str) -> String {
        self.slot_key_hashed(iface, hash, "e")
    }

    /// The entry key and the lease key of `cache_key`, whose [`Namespace::hash_tag`] is
    /// `hash` (as [`KeyHashes::hash_tag`] gives it): the digest is computed once for both.
    pub fn slot_keys(&self, iface: &Interface<'_>, hash: &str) -> (String, String) {
        let entry = self.slot_key_hashed(iface, hash, "e");
        let lease = Namespace::lease_key_of_entry(&entry);
        (entry, lease)
    }

    /// The lease key beside an entry key built here: the same slot, suffix `l` for `e`. A read
    /// that never requests the lease (every hit) never builds it.
    pub fn lease_key_of_entry(entry_key: &str) -> String {
        let slot = entry_key.strip_suffix('e').unwrap_or(entry_key);
        let mut key = String::with_capacity(slot.len() + 1);
        key.push_str(slot);
        key.push('l');
        key
    }

    /// `<prefix>:<deployment>:<interface>:{<hash>}:e`
    pub fn entry_key(&self, iface: &Interface<'_>, cache_key: &str) -> String {
        self.slot_key(iface, cache_key, "e")
    }

    /// `<prefix>:<deployment>:<interface>:{<hash>}:l`, in the same slot as the entry.
    pub fn lease_key(&self, iface: &Interface<'_>, cache_key: &str) -> String {
        self.slot_key(iface, cache_key, "l")
    }

    /// `<prefix>:<deployment>:builds`: a HASH in which each server process records the build
    /// it serves under this deployment (field `<next release> <build id>`, value the time in ms
    /// until which that build's entries may still be served), so that a process can tell when
    /// two builds serve under one deployment id and warn (docs/internals.md, "Redis keys").
    /// Under the deployment segment as entries of the singular handler are, so `fleetcache
    /// purge --deployment` deletes it with them. Three segments: no entry, lease or tag key has
    /// that shape, whatever the deployment.
    pub fn builds_key(&self) -> String {
        crate::text!(self.prefix, ":", self.deployment, ":builds")
    }

    /// The tag-state keys. They depend on the prefix only: a revalidation from any
    /// deployment must reach every deployment's entries.
    pub fn tag_keys(&self) -> TagKeys {
        let base = crate::text!(self.prefix, ":tags:{", self.prefix, "}");
        TagKeys {
            state: crate::text!(base, ":state"),
            log: crate::text!(base, ":log"),
            meta: crate::text!(base, ":meta"),
            announce: crate::text!(base, ":announce"),
        }
    }
}

/// The digests of recently used cache keys: a SHA-256 per request costs more than the rest of
/// a tier hit, and a process reads the same keys again and again. Bounded: at most
/// [`KeyHashes::ENTRIES`] keys of at most [`KeyHashes::MAX_KEY_BYTES`] bytes are remembered,
/// and the whole memo is cleared when it is full.
#[derive(Clone, Debug, Default)]
pub struct KeyHashes {
    memo: RefCell<Memo>,
}

/// Each key's position in `hashes`: a `HashMap<String, usize>` is a map type the core has
/// already, where a `HashMap<String, String>` would be one more copy of the hash table code
/// in the wasm module (docs/decisions/0028-wasm-size-budget.md).
#[derive(Clone, Debug, Default)]
struct Memo {
    index: StrMap<usize>,
    hashes: Vec<String>,
}

impl KeyHashes {
    /// Keys remembered at most.
    pub const ENTRIES: usize = 4096;
    /// Longer keys are hashed every time.
    pub const MAX_KEY_BYTES: usize = 512;

    /// An empty memo, its keys hashed with `seed` (the host's random one: keys come from
    /// requests).
    pub fn with_seed(seed: HashSeed) -> KeyHashes {
        KeyHashes {
            memo: RefCell::new(Memo {
                index: str_map(0, seed),
                hashes: Vec::new(),
            }),
        }
    }

    /// Rehashes the remembered keys with `seed` ([`crate::Engine::reseed_hashes`]).
    pub fn reseed(&mut self, seed: HashSeed) {
        reseed(&mut self.memo.get_mut().index, seed);
    }

    /// The seed the remembered keys are hashed with, and how many there are.
    #[cfg(test)]
    pub(crate) fn hash_seed(&self) -> (HashSeed, usize) {
        let memo = self.memo.borrow();
        (*memo.index.hasher(), memo.index.len())
    }

    /// [`Namespace::hash_tag`] of `cache_key`, remembered.
    pub fn hash_tag(&self, cache_key: &str) -> String {
        if cache_key.len() > KeyHashes::MAX_KEY_BYTES {
            return Namespace::hash_tag(cache_key);
        }
        {
            let memo = self.memo.borrow();
            if let Some(hash) = memo.index.get(cache_key).and_then(|&i| memo.hashes.get(i)) {
                return hash.clone();
            }
        }
        let hash = Namespace::hash_tag(cache_key);
        let mut memo = self.memo.borrow_mut();
        if memo.index.len() >= KeyHashes::ENTRIES {
            memo.index.clear();
            memo.hashes.clear();
        }
        let i = memo.hashes.len();
        memo.hashes.push(hash.clone());
        memo.index.insert(cache_key.to_owned(), i);
        hash
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.memo.borrow().index.len()
    }

    /// True when no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.memo.borrow().index.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn ns(dep: &str) -> Namespace {
        Namespace::new("fc", dep).unwrap()
    }

    #[test]
    fn a_reseeded_memo_finds_every_remembered_key() {
        use crate::strhash::reseed_checks::{finds_all, held};
        let new = HashSeed::from_bytes([9; 16]);
        let mut memo = KeyHashes::default();
        let keys: Vec<String> = (0..500).map(|i| format!("/posts/{i}")).collect();
        let hashes: Vec<String> = keys.iter().map(|k| memo.hash_tag(k)).collect();
        let before = held(&memo.memo.borrow().index);
        memo.reseed(new);
        finds_all(&memo.memo.borrow().index, &before, new);
        assert_eq!(memo.hash_seed(), (new, 500));
        for (k, h) in keys.iter().zip(&hashes) {
            assert_eq!(&memo.hash_tag(k), h);
        }
        assert_eq!(memo.hash_seed().1, 500, "found, not remembered again");
    }

    #[test]
    fn the_builds_key_is_under_the_deployment_segment_entries_use() {
        assert_eq!(ns("dpl_abc").builds_key(), "fc:dpl_abc:builds");
        assert_eq!(ns("").builds_key(), "fc:default:builds");
        // An id that is hashed in entry keys is hashed here too, the same way.
        let odd = ns("release 7 (blue)");
        let h = Namespace::hash_tag("k");
        let entry = odd.entry_key(&Interface::Incremental, "k");
        let segment = odd.deployment().to_owned();
        assert!(segment.starts_with('h') && segment.len() == 17, "{segment}");
        assert_eq!(entry, format!("fc:{segment}:inc:{{{h}}}:e"));
        assert_eq!(odd.builds_key(), format!("fc:{segment}:builds"));
        // Not the 'use cache' segment: the builds are the deployment's.
        let durable = ns("dpl_abc").with_use_cache_segment("next-16.4.6");
        assert_eq!(durable.builds_key(), "fc:dpl_abc:builds");
    }

    #[test]
    fn use_cache_entries_may_have_a_segment_of_their_own() {
        let n = ns("dpl_abc").with_use_cache_segment("next-16.4.6");
        let h = Namespace::hash_tag("k");
        let uc = Interface::use_cache("default").unwrap();
        assert_eq!(
            n.entry_key(&uc, "k"),
            format!("fc:next-16.4.6:uc-default:{{{h}}}:e")
        );
        assert_eq!(
            n.lease_key(&uc, "k"),
            format!("fc:next-16.4.6:uc-default:{{{h}}}:l")
        );
        // The singular handler keeps the deployment.
        assert_eq!(
            n.entry_key(&Interface::Incremental, "k"),
            format!("fc:dpl_abc:inc:{{{h}}}:e")
        );
        assert_eq!(n.use_cache_segment(), "next-16.4.6");
        assert_eq!(ns("dpl_abc").use_cache_segment(), "dpl_abc");
        // Sanitised like a deployment id.
        assert!(ns("d")
            .with_use_cache_segment("a b")
            .use_cache_segment()
            .starts_with('h'));
    }

    #[test]
    fn layout_matches_internals() {
        let n = ns("dpl_abc");
        let h = Namespace::hash_tag("k");
        assert_eq!(h.len(), 32);
        assert_eq!(
            n.entry_key(&Interface::use_cache("default").unwrap(), "k"),
            format!("fc:dpl_abc:uc-default:{{{h}}}:e")
        );
        assert_eq!(
            n.lease_key(&Interface::Incremental, "k"),
            format!("fc:dpl_abc:inc:{{{h}}}:l")
        );
        let t = n.tag_keys();
        assert_eq!(t.state, "fc:tags:{fc}:state");
        assert_eq!(t.log, "fc:tags:{fc}:log");
        assert_eq!(t.meta, "fc:tags:{fc}:meta");
        assert_eq!(
            t.to_vec(),
            vec![t.state.clone(), t.log.clone(), t.meta.clone()]
        );
    }

    #[test]
    fn sha256_prefix_is_the_known_digest() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223...
        assert_eq!(
            Namespace::hash_tag("abc"),
            "ba7816bf8f01cfea414140de5dae2223"
        );
    }

    #[test]
    fn deployment_sanitising() {
        assert_eq!(ns("").deployment(), "default");
        assert_eq!(ns("build-1.2_x").deployment(), "build-1.2_x");
        let d = ns("a:b").deployment().to_owned();
        assert_eq!(d.len(), 17);
        assert!(d.starts_with('h'));
        assert_ne!(ns("a:c").deployment(), d);
        assert!(ns(&"x".repeat(65)).deployment().starts_with('h'));
        assert_eq!(Namespace::new("", "x"), Err(KeyError::InvalidPrefix));
        assert_eq!(Namespace::new("a{b}", "x"), Err(KeyError::InvalidPrefix));
        assert_eq!(ns("x").prefix(), "fc");
    }

    #[test]
    fn interfaces() {
        assert_eq!(
            Interface::use_cache("remote"),
            Ok(Interface::UseCache("remote"))
        );
        assert_eq!(
            Interface::use_cache("Remote"),
            Err(KeyError::InvalidHandlerName)
        );
        assert_eq!(Interface::use_cache(""), Err(KeyError::InvalidHandlerName));
        assert_eq!(
            Interface::use_cache(&"a".repeat(33)),
            Err(KeyError::InvalidHandlerName)
        );
        assert_eq!(Interface::parse("inc"), Ok(Interface::Incremental));
        assert_eq!(
            Interface::parse("uc-default"),
            Ok(Interface::UseCache("default"))
        );
        assert_eq!(Interface::parse("default"), Err(KeyError::InvalidInterface));
        assert_eq!(Interface::parse("uc-"), Err(KeyError::InvalidInterface));
        assert_eq!(Interface::UseCache("inc").segment(), "uc-inc");
        let odd = Interface::UseCache("a:{b}").segment();
        assert!(odd.starts_with("uc-_") && odd.len() == 20, "{odd}");
        assert_eq!(Interface::Incremental.kind(), EntryKind::Incremental);
        assert_eq!(Interface::UseCache("x").kind(), EntryKind::UseCache);
    }

    fn safe_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '{' | '}')
    }

    fn any_iface() -> impl Strategy<Value = Option<String>> {
        // None = Incremental; names mix valid, invalid and clashing-looking forms.
        prop_oneof![
            Just(None),
            "[a-c-]{1,3}".prop_map(Some),
            "(inc|uc-a|a:b|\\{x\\}|)".prop_map(Some),
            any::<String>().prop_map(Some),
        ]
    }

    fn iface_of(name: &Option<String>) -> Interface<'_> {
        match name {
            None => Interface::Incremental,
            Some(n) => Interface::UseCache(n),
        }
    }

    proptest! {
        #[test]
        fn distinct_inputs_give_distinct_entry_keys(
            inputs in proptest::collection::vec(
                (
                    "(|default|a|b:c|A b|[a-c:{ ]{0,3})",
                    any_iface(),
                    "(|k|[a-c{}: ]{0,3})",
                ),
                1..40,
            )
        ) {
            let mut seen: HashMap<String, (String, Option<String>, String)> = HashMap::new();
            for (dep, iface, key) in inputs {
                let n = ns(&dep);
                let k = n.entry_key(&iface_of(&iface), &key);
                let dep_norm = if dep.is_empty() { "default".to_owned() } else { dep.clone() };
                let triple = (dep_norm, iface.clone(), key.clone());
                if let Some(prev) = seen.get(&k) {
                    prop_assert_eq!(prev, &triple);
                }
                seen.insert(k.clone(), triple);
                // The key decomposes into exactly the derived segments, so it is injective
                // as long as each segment is.
                let parts: Vec<&str> = k.split(':').collect();
                let hash = format!("{{{}}}", Namespace::hash_tag(&key));
                let seg = iface_of(&iface).segment();
                prop_assert_eq!(parts, vec!["fc", n.deployment(), seg.as_str(), hash.as_str(), "e"]);
            }
        }

        #[test]
        fn keys_are_bounded_and_free_of_user_text(
            dep in prop_oneof![any::<String>(), "\\PC{200,3000}", "[\\x00 {}:]{1,10}"],
            name in any::<String>(),
            key in prop_oneof![any::<String>(), "\\PC{1000,5000}"],
        ) {
            let n = ns(&dep);
            for iface in [Interface::Incremental, Interface::UseCache(&name)] {
                let e = n.entry_key(&iface, &key);
                let l = n.lease_key(&iface, &key);
                for k in [&e, &l] {
                    prop_assert!(k.len() <= MAX_ENTRY_KEY_LEN, "{} bytes", k.len());
                    prop_assert!(k.chars().all(safe_char), "{}", k);
                    // The hash tag is the first brace pair and is the only one.
                    let open = k.find('{').unwrap();
                    let close = k.find('}').unwrap();
                    prop_assert!(open < close);
                    prop_assert_eq!(k.matches('{').count(), 1);
                    prop_assert_eq!(k.matches('}').count(), 1);
                    prop_assert_eq!(&k[open + 1..close], Namespace::hash_tag(&key));
                }
                prop_assert_eq!(&e[..e.len() - 1], &l[..l.len() - 1]);
                if key.chars().count() >= 8 {
                    prop_assert!(!e.contains(&key));
                }
                if !is_valid_prefix(&dep) && dep.chars().count() >= 8 {
                    prop_assert!(!e.contains(&dep));
                }
            }
        }
    }

    #[test]
    fn a_kept_deployment_id_never_equals_a_hashed_one() {
        let hashed = Namespace::new("fc", "not a valid id").map(|n| n.deployment().to_owned());
        let hashed = hashed.unwrap_or_default();
        assert!(looks_hashed(&hashed));
        let literal = Namespace::new("fc", &hashed).map(|n| n.deployment().to_owned());
        assert_ne!(literal.unwrap_or_default(), hashed);
    }

    #[test]
    fn remembered_digests_are_the_digests_and_the_memo_is_bounded() {
        let memo = KeyHashes::default();
        assert_eq!(memo.hash_tag("k"), Namespace::hash_tag("k"));
        assert_eq!(memo.hash_tag("k"), Namespace::hash_tag("k"));
        let long = "x".repeat(KeyHashes::MAX_KEY_BYTES + 1);
        assert_eq!(memo.hash_tag(&long), Namespace::hash_tag(&long));
        assert_eq!(memo.len(), 1, "long keys are not remembered");
        for i in 0..KeyHashes::ENTRIES + 1 {
            memo.hash_tag(&format!("k{i}"));
        }
        assert!(memo.len() <= KeyHashes::ENTRIES);
        let ns = Namespace::new("p", "d").unwrap();
        let iface = Interface::UseCache("default");
        let (e, l) = ns.slot_keys(&iface, &memo.hash_tag("k"));
        assert_eq!(
            (e, l),
            (ns.entry_key(&iface, "k"), ns.lease_key(&iface, "k"))
        );
    }
}
