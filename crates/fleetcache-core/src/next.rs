//! Which Next.js release the handlers run under, and what that changes in the decisions.
//!
//! The handler interfaces kept their method names and shapes through every Next 16 release,
//! but how Next uses what a handler returns did not. The host reads the running release from
//! `next/package.json` when it builds the engine and passes it as [`NextRelease`]; the core
//! asks it the questions below instead of comparing version numbers in several places.

/// A Next.js release (`major.minor.patch`, and whether it is a prerelease such as a canary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

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
