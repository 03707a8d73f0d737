//! Which Next.js release the handlers run under, and what that changes in the decisions.
//!
//! The handler interfaces kept their method names and shapes through every Next 16 release,
//! but how Next uses what a handler returns did not. The host reads the running release from
//! `next/package.json` when it builds the engine and passes it as [`NextRelease`]; the core
//! asks it the questions below instead of comparing version numbers in several places.

/// A Next.js release (`major.minor.patch`, and whether it is a prerelease such as a canary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NextRelease {
    /// Major version (16 for every release this package supports).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
    /// A prerelease (`-canary.N`, `-rc.N`): it precedes the release of the same number.
    #[serde(default)]
    pub prerelease: bool,
}

impl NextRelease {
    /// A release.
    pub const fn new(major: u32, minor: u32, patch: u32, prerelease: bool) -> NextRelease {
        NextRelease {
            major,
            minor,
            patch,
            prerelease,
        }
    }

    /// True from the release `major.minor.patch` itself on (its prereleases precede it).
    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        let own = (self.major, self.minor, self.patch);
        own > (major, minor, patch) || (own == (major, minor, patch) && !self.prerelease)
    }

    /// Whether Next takes the `cacheControl` that the singular handler's `get` returns for a
    /// page or route entry (16.4.0 on). Earlier releases judge such an entry with their own
    /// prerender manifest and the `cacheControl` of this process's own writes, and with a
    /// `revalidate` of 1 s for a route they know neither way; only `lastModified` reaches
    /// them. FETCH entries are judged with the value's own `revalidate` on every release.
    pub fn honours_returned_cache_control(&self) -> bool {
        self.at_least(16, 4, 0)
    }
}

/// The key segment of `'use cache'` entries when Next's `experimental.durableUseCacheEntries`
/// is on, or `None` when they stay under the deployment.
///
/// With that setting (16.4.0 on) Next keys each `'use cache'` entry by the hash of the code that
/// produces it, the state of the environment variables that code reads, and the Next version,
/// instead of the build or deployment id, so that entries outlive deploys that do not change
/// them. Under the deployment's namespace they would not. Next's cache key (which fleetcache
/// hashes into the Redis key) already tells entries of other code or another release apart, so
/// the segment only has to stay the same across deployments; it names the Next release
/// (`next-16.4.6`, prereleases as `next-16.5.0-pre`) so that a replaced release's entries are
/// easy to find, and expire on their own. An unknown release gives `next-unknown`.
pub fn durable_use_cache_segment(durable: bool, release: Option<NextRelease>) -> Option<String> {
    if !durable {
        return None;
    }
    match release {
        // The setting does not exist before 16.4.0: Next keys by build there.
        Some(r) if !r.at_least(16, 4, 0) => None,
        Some(r) => Some(crate::text!(
            "next-",
            r.major,
            ".",
            r.minor,
            ".",
            r.patch,
            if r.prerelease { "-pre" } else { "" }
        )),
        None => Some("next-unknown".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_entries_follow_the_next_release() {
        let r = |a, b, c, p| Some(NextRelease::new(a, b, c, p));
        assert_eq!(durable_use_cache_segment(false, r(16, 4, 6, false)), None);
        assert_eq!(
            durable_use_cache_segment(true, r(16, 4, 6, false)).as_deref(),
            Some("next-16.4.6")
        );
        assert_eq!(
            durable_use_cache_segment(true, r(16, 5, 0, true)).as_deref(),
            Some("next-16.5.0-pre")
        );
        assert_eq!(durable_use_cache_segment(true, r(16, 3, 8, false)), None);
        assert_eq!(
            durable_use_cache_segment(true, None).as_deref(),
            Some("next-unknown")
        );
    }

    #[test]
    fn cache_control_is_honoured_from_16_4_0() {
        let r = |s: &str| {
            let (num, pre) = s.split_once('-').map_or((s, false), |(n, _)| (n, true));
            let v: Vec<u32> = num.split('.').map(|p| p.parse().unwrap()).collect();
            NextRelease::new(v[0], v[1], v[2], pre)
        };
        for old in ["16.0.0", "16.0.11", "16.2.12", "16.3.8", "16.4.0-canary.3"] {
            assert!(!r(old).honours_returned_cache_control(), "{old}");
        }
        for new in ["16.4.0", "16.4.6", "16.5.0-canary.38", "17.0.0"] {
            assert!(r(new).honours_returned_cache_control(), "{new}");
        }
    }
}
