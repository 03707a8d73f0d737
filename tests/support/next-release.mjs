// Runs the e2e suites against another Next.js release than the one the example apps pin.
//
// E2E_NEXT_VERSION=<version> (e.g. 16.0.11, 16.5.0): each example app the suites use
// (examples/next-app, examples/next-incremental) is copied into
// target/next-releases/<version>/<app>/, with `next` set to that version in its package.json and
// the lockfile committed under tests/compat/<version>/<app>/package-lock.json, installed with
// `npm ci`. Unset: the example apps themselves, as pinned (nothing here changes them).
//
// The copy is made file by file and only files whose bytes differ are written, so an unchanged
// source keeps its mtime and prepareApp (tests/support/fleet.mjs) reuses the release's build:
// one `next build` per release and app, rebuilt only when a source or the tarball changed.
//
// A suite that runs two releases at once (tests/e2e/mixed-releases.test.mjs) names the other one
// itself: releaseAppDir(dir, version), or exampleDir(name, version) in fleet.mjs. Every copy is
// kept current from what its directory says (releaseCopyOf), with or without the variable.
//
// Tests that check a behaviour a release cannot have skip with skipBefore()/skipFrom(), whose
// message names the release and the reason.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const examplesDir = path.join(repoRoot, 'examples')

/** The release under test, from E2E_NEXT_VERSION; null: the pinned example apps. */
export const nextRelease = process.env.E2E_NEXT_VERSION?.trim() || null
if (nextRelease && !/^16\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(nextRelease))
  throw new Error(`E2E_NEXT_VERSION=${nextRelease}: expected a Next 16 version such as 16.0.11`)

/** Where a release's copies of the example apps are built (under the gitignored target/). */
const releasesDir = path.join(repoRoot, 'target', 'next-releases')
export const releaseRootOf = (version) => path.join(releasesDir, version)

/** The committed lockfile of one app at one release. */
export const lockfileOf = (version, app) =>
  path.join(repoRoot, 'tests', 'compat', version, app, 'package-lock.json')

/**
 * What the tests and benchmarks build into an example app's directory: outputs, never sources
 * of the app (a change in them rebuilds nothing, a copy of the app leaves them behind).
 */
export const BUILD_OUTPUTS = [
  '.next',
  '.next-standalone',
  '.next-webpack',
  '.next-default',
  // bench/page-cost.mjs's and page-cpu.mjs's floor build.
  '.next-floor',
  '.next-adapter',
  '.next-build-phase',
  'next-env.d.ts',
]

// Files of an example that are not sources of the copy: build output, installed packages and
// what the copy gets from elsewhere (package.json is rewritten, the lockfile is the release's).
const NOT_COPIED = new Set(['node_modules', ...BUILD_OUTPUTS, 'package.json', 'package-lock.json'])
const notCopied = (name) => NOT_COPIED.has(name) || name.endsWith('.tsbuildinfo')

/**
 * The directory the suites use for an example app: with a release (`version`, by default
 * E2E_NEXT_VERSION), an app under examples/ maps to that release's copy; any other directory
 * (and every one without a release) is returned as is, so a copy passed again stays itself.
 */
export function releaseAppDir(dir, version = nextRelease) {
  if (!version) return dir
  const rel = path.relative(examplesDir, path.resolve(dir))
  if (!rel || rel.startsWith('..') || path.isAbsolute(rel) || rel.includes(path.sep)) return dir
  return path.join(releaseRootOf(version), rel)
}

/**
 * The release and example app of a directory releaseAppDir returned for a release
 * ({ version, source }), or null for any other directory.
 */
export function releaseCopyOf(dir) {
  const rel = path.relative(releasesDir, path.resolve(dir))
  if (!rel || rel.startsWith('..') || path.isAbsolute(rel)) return null
  const parts = rel.split(path.sep)
  if (parts.length !== 2) return null
  const [version, app] = parts
  if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) return null
  const source = path.join(examplesDir, app)
  if (!fs.existsSync(path.join(source, 'package.json'))) return null
  return { version, source }
}

/** The example app's source directory for a directory releaseAppDir returned, or null. */
export const exampleSourceOf = (dir) => releaseCopyOf(dir)?.source ?? null

function writeIfChanged(file, bytes) {
  try {
    if (Buffer.compare(fs.readFileSync(file), Buffer.from(bytes)) === 0) return false
  } catch {
    // Missing: written below.
  }
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, bytes)
  return true
}

// Mirrors src into dst: writes what differs, removes what src no longer has (but never the
// copy's node_modules or build output).
function mirror(src, dst) {
  fs.mkdirSync(dst, { recursive: true })
  const names = new Set()
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
    if (notCopied(entry.name)) continue
    names.add(entry.name)
    const s = path.join(src, entry.name)
    const d = path.join(dst, entry.name)
    if (entry.isDirectory()) mirror(s, d)
    else if (entry.isFile()) writeIfChanged(d, fs.readFileSync(s))
  }
  for (const entry of fs.readdirSync(dst, { withFileTypes: true })) {
    if (notCopied(entry.name) || names.has(entry.name)) continue
    fs.rmSync(path.join(dst, entry.name), { recursive: true, force: true })
  }
}

/** The package.json of an example with `next` set to the release. */
export function releasePackageJson(source, version) {
  const pkg = JSON.parse(fs.readFileSync(path.join(source, 'package.json'), 'utf8'))
  // Every Next 16 release accepts React ^19 (its peerDependencies), so only `next` changes.
  pkg.dependencies = { ...pkg.dependencies, next: version }
  pkg.name = `${pkg.name}-next-${version}`
  return JSON.stringify(pkg, null, 2) + '\n'
}

/**
 * Makes the release's copy of one example current: sources, package.json and the committed
 * lockfile. Without a committed lockfile, one is resolved from the example's own (`npm install
 * --package-lock-only`, keeping every other pinned version) and written to tests/compat/ to be
 * committed. `run(cmd, args, { cwd, what })` runs a command (fleet.mjs passes its runLogged).
 * Returns { dir, source, lockfileCreated }.
 */
export async function syncReleaseApp(dir, { run, log = () => {} }) {
  const copy = releaseCopyOf(dir)
  if (!copy) throw new Error(`${dir} is not a copy of an example app`)
  const { version, source } = copy
  const app = path.basename(source)
  mirror(source, dir)
  writeIfChanged(path.join(dir, 'package.json'), releasePackageJson(source, version))
  const lockfile = lockfileOf(version, app)
  let lockfileCreated = false
  if (!fs.existsSync(lockfile)) {
    log(`no ${path.relative(repoRoot, lockfile)}: resolving one from the example's lockfile`)
    fs.copyFileSync(path.join(source, 'package-lock.json'), path.join(dir, 'package-lock.json'))
    await run('npm', ['install', '--package-lock-only', '--no-audit', '--no-fund'], {
      cwd: dir,
      what: `npm install --package-lock-only (next@${version})`,
    })
    const lock = JSON.parse(fs.readFileSync(path.join(dir, 'package-lock.json'), 'utf8'))
    const got = lock.packages?.['node_modules/next']?.version
    if (got !== version) throw new Error(`the resolved lockfile has next@${got}`)
    fs.mkdirSync(path.dirname(lockfile), { recursive: true })
    fs.copyFileSync(path.join(dir, 'package-lock.json'), lockfile)
    lockfileCreated = true
    log(`wrote ${path.relative(repoRoot, lockfile)}: commit it`)
  }
  writeIfChanged(path.join(dir, 'package-lock.json'), fs.readFileSync(lockfile))
  return { dir, source, lockfileCreated }
}

// ---- versions --------------------------------------------------------------------------------

/** [major, minor, patch, prerelease|null] of a version string. */
export function parseVersion(v) {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$/.exec(v)
  if (!m) throw new Error(`not a version: ${v}`)
  return [Number(m[1]), Number(m[2]), Number(m[3]), m[4] ?? null]
}

/** Semver order of two versions (prerelease identifiers compared as semver does). */
export function compareVersions(a, b) {
  const x = parseVersion(a)
  const y = parseVersion(b)
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] - y[i]
  if (x[3] === y[3]) return 0
  if (x[3] === null) return 1
  if (y[3] === null) return -1
  const p = x[3].split('.')
  const q = y[3].split('.')
  for (let i = 0; i < Math.max(p.length, q.length); i++) {
    if (p[i] === undefined) return -1
    if (q[i] === undefined) return 1
    const np = /^\d+$/.test(p[i])
    const nq = /^\d+$/.test(q[i])
    if (np && nq && Number(p[i]) !== Number(q[i])) return Number(p[i]) - Number(q[i])
    if (np !== nq) return np ? -1 : 1
    if (p[i] !== q[i]) return p[i] < q[i] ? -1 : 1
  }
  return 0
}

/** The Next version the suites run: E2E_NEXT_VERSION, else the one examples/next-app pins. */
export function testedNextVersion() {
  if (nextRelease) return nextRelease
  const pkg = JSON.parse(
    fs.readFileSync(path.join(examplesDir, 'next-app', 'package.json'), 'utf8'),
  )
  return pkg.dependencies.next
}

/**
 * The oldest Next release the package supports: the lower bound of its `next` peer range
 * (js-host/package.json), which the Makefile's `COMPAT_OLDEST` reads too.
 */
export function oldestSupportedNext() {
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'js-host', 'package.json'), 'utf8'))
  const found = /^>=(\d+\.\d+\.\d+)\s/.exec(pkg.peerDependencies.next)
  if (!found) throw new Error(`js-host/package.json: no lower bound in next's peer range`)
  return found[1]
}

/** True when the tested release is `version` or newer (a canary of it counts as newer). */
export const nextAtLeast = (version) => compareVersions(testedNextVersion(), version) >= 0

/**
 * For `test(name, { skip: skipBefore('16.4.0', 'why') }, fn)`: a skip message naming the
 * release and the reason when the tested release is older than `version`, else false.
 */
export function skipBefore(version, reason) {
  const v = testedNextVersion()
  return compareVersions(v, version) < 0 ? `Next ${v} is older than ${version}: ${reason}` : false
}

/** The converse of skipBefore: skips on `version` and newer. */
export function skipFrom(version, reason) {
  const v = testedNextVersion()
  return compareVersions(v, version) >= 0 ? `Next ${v} is ${version} or newer: ${reason}` : false
}
