// The published peers bench/fleet.mjs runs side by side with fleetcache: each one a copy of
// examples/next-app under target/bench-peers/<id>/ whose next.config, handler files, package.json
// and lockfile come from bench/peers/<id>/ (the peer installed from the npm registry at the
// version that lockfile pins, configured as its README says: bench/peers/README.md).
//
// The copy is written file by file, only where bytes differ, so an unchanged source keeps its
// mtime and the copy's build is reused: one `next build` per peer, again only when a source
// changed.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { cleanEnv, nextBinOf, repoRoot, runLogged } from '../../tests/support/fleet.mjs'
import { BUILD_OUTPUTS } from '../../tests/support/next-release.mjs'

const peersDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'peers')
const exampleDir = path.join(repoRoot, 'examples', 'next-app')

/**
 * The peers: `pkg` the npm package, `env` what every process of it (build and `next start`)
 * gets besides REDIS_URL and ORIGIN_URL, `redisConfig` the CONFIG SET its README asks of the
 * Redis server (undone after its replay).
 */
export const PEERS = [
  {
    id: 'leejpsd',
    pkg: '@leejpsd/nextjs-cache-handler',
    // The README's production checklist: the same DEPLOYMENT_VERSION at build and at run time.
    env: { DEPLOYMENT_VERSION: 'bench-peer-leejpsd' },
    redisConfig: null,
  },
  {
    id: 'trieb',
    pkg: '@trieb.work/nextjs-turbo-redis-cache',
    env: {},
    // "Enable redis key-space notifications for Expire and Evict events" (its README).
    redisConfig: ['notify-keyspace-events', 'Exe'],
  },
]

// What the copy does not take from the example: build output, installed packages, and what
// bench/peers/<id>/ provides instead.
const NOT_COPIED = new Set([
  'node_modules',
  ...BUILD_OUTPUTS,
  'next.config.mjs',
  'package.json',
  'package-lock.json',
  'README.md',
])
const notCopied = (name) => NOT_COPIED.has(name) || name.endsWith('.tsbuildinfo')

function writeIfChanged(file, bytes) {
  try {
    if (Buffer.compare(fs.readFileSync(file), bytes) === 0) return
  } catch {
    // Missing: written below.
  }
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, bytes)
}

// Copies src into dst (files that differ only) and returns the relative paths it holds.
function mirror(src, dst, skip, rel = '') {
  const held = []
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
    if (skip(entry.name)) continue
    const r = path.join(rel, entry.name)
    if (entry.isDirectory()) held.push(...mirror(path.join(src, entry.name), dst, skip, r))
    else if (entry.isFile()) {
      writeIfChanged(path.join(dst, r), fs.readFileSync(path.join(src, entry.name)))
      held.push(r)
    }
  }
  return held
}

// Removes what neither source holds any more (never node_modules or build output).
function prune(dst, keep, rel = '') {
  for (const entry of fs.readdirSync(path.join(dst, rel), { withFileTypes: true })) {
    const r = path.join(rel, entry.name)
    if (NOT_COPIED.has(entry.name) && !keep.has(r)) continue
    if (entry.name.endsWith('.tsbuildinfo')) continue
    if (entry.isDirectory()) {
      if ([...keep].some((k) => k.startsWith(r + path.sep))) prune(dst, keep, r)
      else fs.rmSync(path.join(dst, r), { recursive: true, force: true })
    } else if (!keep.has(r)) fs.rmSync(path.join(dst, r), { force: true })
  }
}

function newestMtime(dir) {
  let newest = 0
  const walk = (d) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      if (notCopied(entry.name) && entry.name !== 'next.config.mjs') continue
      const p = path.join(d, entry.name)
      if (entry.isDirectory()) walk(p)
      else if (entry.isFile()) newest = Math.max(newest, fs.statSync(p).mtimeMs)
    }
  }
  walk(dir)
  return newest
}

const readJson = (file) => {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch {
    return null
  }
}

/**
 * Makes the peer's copy of the app current (sources, `npm ci` from the committed lockfile when
 * what is installed differs from it, `next build` when a source changed). Returns { dir,
 * version, buildId, buildMs }; rejects with the failing command's output.
 */
export async function preparePeerApp(peer, { log, logDir }) {
  const own = path.join(peersDir, peer.id)
  const dir = path.join(repoRoot, 'target', 'bench-peers', peer.id)
  fs.mkdirSync(dir, { recursive: true })
  const held = new Set([...mirror(exampleDir, dir, notCopied), ...mirror(own, dir, () => false)])
  prune(dir, held)
  const logFile = path.join(logDir, `peer-${peer.id}-prepare.log`)
  const lock = readJson(path.join(dir, 'package-lock.json'))
  const want = (name) => lock?.packages?.[`node_modules/${name}`]?.version
  const have = (name) => readJson(path.join(dir, 'node_modules', name, 'package.json'))?.version
  if (!want(peer.pkg))
    throw new Error(`bench/peers/${peer.id}/package-lock.json pins no ${peer.pkg}`)
  if (have('next') !== want('next') || have(peer.pkg) !== want(peer.pkg)) {
    log(`${peer.id}: npm ci in ${path.relative(repoRoot, dir)} (log: ${logFile})`)
    await runLogged('npm', ['ci', '--no-audit', '--no-fund'], {
      cwd: dir,
      env: cleanEnv(),
      logFile,
      timeoutMs: 10 * 60_000,
      what: `npm ci (${peer.pkg})`,
    })
  }
  const buildIdFile = path.join(dir, '.next', 'BUILD_ID')
  const builtAt = fs.existsSync(buildIdFile) ? fs.statSync(buildIdFile).mtimeMs : 0
  const installedAt = fs.statSync(path.join(dir, 'node_modules', peer.pkg, 'package.json')).mtimeMs
  let buildMs = 0
  if (!builtAt || newestMtime(dir) > builtAt || installedAt > builtAt) {
    log(`${peer.id}: next build (log: ${logFile})`)
    const t0 = Date.now()
    await runLogged(process.execPath, [nextBinOf(dir), 'build'], {
      cwd: dir,
      env: cleanEnv(peer.env),
      logFile,
      timeoutMs: 15 * 60_000,
      what: `next build (${peer.pkg})`,
    })
    buildMs = Date.now() - t0
    log(`${peer.id}: next build done in ${(buildMs / 1000).toFixed(1)} s`)
  }
  return {
    dir,
    version: have(peer.pkg),
    buildId: fs.readFileSync(buildIdFile, 'utf8').trim(),
    buildMs,
  }
}

/** The lines of a failure worth quoting: the message, then the log lines that name an error. */
export function failureText(err, maxLines = 12) {
  const lines = String(err?.message ?? err).split('\n')
  const head = lines[0]
  const errors = lines
    .slice(1)
    .filter((l) => /error|failed|cannot|not found|throw|TypeError|ERR_/i.test(l))
    .map((l) => l.trim())
  return [head, ...[...new Set(errors)].slice(0, maxLines - 1)].join('\n')
}
