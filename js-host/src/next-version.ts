/**
 * The Next.js releases fleetcache is tested on, and the start-up warning for the others.
 *
 * `SUPPORTED_NEXT` is the `next` range of package.json's `peerDependencies` (a unit test keeps
 * the two equal). npm checks it at install time; this module checks the release a server
 * actually runs, once per process and package version, because installs with `--legacy-peer-deps`, `--force`, other
 * package managers or a copied `node_modules` skip npm's check.
 */
import { join } from 'node:path'

import { loadedNextDirs } from './consumer'
import type { Logger } from './log'
import { PACKAGE_VERSION } from './package-version'

/**
 * The `next` peer range: every 16.x release from 16.0.0. npm lets a prerelease satisfy a range
 * only through a bound with the same release numbers and a prerelease tag, so this range
 * refuses every canary at install; a clause for the canaries of the next line is added when
 * one is tested (tests/compat/run.mjs, RELEASES). README, "Next.js compatibility", lists what
 * was tested.
 */
export const SUPPORTED_NEXT = '>=16.0.0 <17.0.0'

const LOWEST: [number, number, number] = [16, 0, 0]
const BELOW: [number, number, number] = [17, 0, 0]

/**
 * Set on `globalThis` when this version of the package has checked the running Next.js: one key
 * per package version, since each version checks against its own range (two copies in
 * node_modules: one that supports the running release, checking first, must not silence one
 * that does not), and copies of one version check once. Builds from before this key used
 * `fleetcache.next-version-checked` for every version, which no version reads now.
 */
const WARNED = Symbol.for(`fleetcache.next-version-checked@${PACKAGE_VERSION}`)

function triple(version: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/.exec(version)
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined
}

function less(a: readonly number[], b: readonly number[], orEqual: boolean): boolean {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return (a[i] ?? 0) < (b[i] ?? 0)
  return orEqual
}

/**
 * Why `version` is outside the 16.x line, or undefined when it is inside. Looser than npm's
 * reading of `SUPPORTED_NEXT` for prereleases: a canary counts by its release numbers, as
 * semver's `includePrerelease` does (16.6.0-canary.1 is inside, 16.0.0-canary.19, before
 * 16.0.0, and 17.0.0-canary.0 are not): a canary of a newer line than the tested one
 * (16.6.0-canary.x) is refused by npm at install unless forced, and then runs without a
 * warning at start.
 */
export function nextVersionProblem(version: string): string | undefined {
  const v = triple(version)
  if (v === undefined) return `Next.js reports version "${version}", which is not a version number`
  const pre = version.includes('-')
  // 16.0.0-canary.x precedes 16.0.0: below the range even though its numbers equal the bound.
  if (less(v, LOWEST, pre) || !less(v, BELOW, false)) {
    return `Next.js ${version} is outside the range fleetcache supports (${SUPPORTED_NEXT})`
  }
  return undefined
}

/**
 * The version of the `next` this process runs: the copy of Next it has loaded
 * (`loadedNextDirs`), which the working directory may not resolve (a monorepo started from its
 * root with the app's `next`). When none is loaded (a process outside Next) or the loaded
 * copies differ in version, `installedNextVersion()`.
 */
export function runningNextVersion(): string | undefined {
  const versions = new Set(loadedNextDirs().map((dir) => versionIn(join(dir, 'package.json'))))
  const only = versions.size === 1 ? [...versions][0] : undefined
  return only ?? installedNextVersion()
}

/** The version of the `next` resolved from `cwd`, then from here. */
export function installedNextVersion(cwd: string = process.cwd()): string | undefined {
  for (const from of [cwd, __dirname]) {
    try {
      const version = versionIn(require.resolve('next/package.json', { paths: [from] }))
      if (version !== undefined) return version
    } catch {
      // Not resolvable from there (fleetcache used without Next, or a bundled copy): next place.
    }
  }
  return undefined
}

/**
 * `node:fs`, taken through `process.getBuiltinModule` (in Node since 20.16 and 22.3, below the
 * package's `engines`) rather than imported: the tracers Next runs at build time do not follow a
 * read through it. `readFileSync(file)` of a path they cannot work out (here a `next` found at
 * run time; env-options.ts's PEM file is the other) had Turbopack (Next 16.5.0) put every file
 * of `dist/` into the trace of every route, each of the two reads alone (decision 0011, the
 * 2026-12-08 amendment). Not the `turbopackIgnore` comment: Next documents it, and
 * `webpackIgnore`, for `import()`, `require()`, `require.resolve()`, `new Worker()` and
 * `new URL()` ("Magic Comments", https://nextjs.org/docs/app/api-reference/turbopack), not for
 * `fs` calls.
 */
const fs = process.getBuiltinModule('node:fs')

/** The `version` of the package.json `file`; undefined when it cannot be read or has none. */
function versionIn(file: string): string | undefined {
  try {
    const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: unknown }
    return typeof pkg.version === 'string' ? pkg.version : undefined
  } catch {
    return undefined
  }
}

/**
 * Warns once per process and package version, through `log`, when the running Next.js is outside
 * this version's `SUPPORTED_NEXT`.
 * Nothing when no `next` can be found (fleetcache used without Next.js). Returns the warning.
 */
export function checkNextVersion(
  log: Logger,
  version: string | undefined = runningNextVersion(),
): string | undefined {
  const g = globalThis as unknown as Record<symbol, boolean | undefined>
  if (g[WARNED] === true || version === undefined) return undefined
  g[WARNED] = true
  const problem = nextVersionProblem(version)
  if (problem === undefined) return undefined
  const message = `${problem}: it is not tested with this release, and its cache handlers may behave differently (README, "Next.js compatibility")`
  log.warn(message)
  return message
}
