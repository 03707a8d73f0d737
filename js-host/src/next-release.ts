import { builtWithNext } from './next-build-files'
import { runningNextVersion } from './next-version'

/**
 * The Next.js release this process serves, read once from `next/package.json`
 * (`runningNextVersion`: of the copy of Next loaded, else resolved from the app, its cwd, first,
 * then from this package) and handed to the engine as its `nextRelease` setting. The core
 * decides what a release changes (crates/fleetcache-core/src/next.rs); this file only reads and
 * converts the version.
 */
export interface NextRelease {
  major: number
  minor: number
  patch: number
  /** `-canary.N`, `-rc.N`: precedes the release of the same number. */
  prerelease: boolean
}

/** `16.3.8`, `16.5.0-canary.38` as the engine takes them; undefined for anything else. */
export function parseNextVersion(version: unknown): NextRelease | undefined {
  if (typeof version !== 'string') return undefined
  const m = /^(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.exec(version.trim())
  if (m === null) return undefined
  const major = Number(m[1])
  const minor = Number(m[2])
  const patch = Number(m[3])
  // The engine takes u32s.
  if (![major, minor, patch].every((n) => n <= 0xffffffff)) return undefined
  return { major, minor, patch, prerelease: m[4] !== undefined }
}

/** Undefined until looked up; null when no `next` can be found from here. */
let detected: { version: string; release: NextRelease | undefined } | null | undefined

/** The running Next's version string and its parsed form, or null when none is found. */
export function detectNextRelease(): { version: string; release: NextRelease | undefined } | null {
  if (detected !== undefined) return detected
  const version = runningNextVersion()
  detected = version === undefined ? null : { version, release: parseNextVersion(version) }
  return detected
}

/**
 * The release that built the build output directory `dir` (`builtWithNext`), in
 * `detectNextRelease`'s shape; null when the build names none. For `fleetcache seed`, which
 * writes what a server of that release asks for, wherever the command runs.
 */
export function buildNextRelease(
  dir: string,
): { version: string; release: NextRelease | undefined } | null {
  const version = builtWithNext(dir)
  return version === undefined ? null : { version, release: parseNextVersion(version) }
}
