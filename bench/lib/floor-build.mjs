// The floor of bench/page-cost.mjs and bench/page-cpu.mjs: examples/next-app built with the
// least custom handlers there can be (bench/lib/floor-*.cjs), in .next-floor/.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import {
  appDir,
  cleanEnv,
  newestSourceMtime,
  nextBinOf,
  runLogged,
} from '../../tests/support/fleet.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
// The floor's handlers, written in bench/lib/ and copied into the app, where the build takes
// them from (Turbopack traces a cacheHandler and refuses a file outside the project's root);
// examples/next-app/next.config.mjs reads EXAMPLE_FLOOR_HANDLERS.
const FLOOR_NAMES = ['floor-incremental-handler.cjs', 'floor-use-cache-handler.cjs']
const FLOOR_DIR = path.join(appDir, 'node_modules', '.fleetcache-floor')
export const FLOOR_ENV = { EXAMPLE_FLOOR_HANDLERS: FLOOR_DIR }

// What the floor's build in .next-floor/ was made from, besides the app's sources: the Next
// release installed and the floor's handlers (written after each build; npm ci, which changes
// Next, removes it with node_modules).
const FLOOR_STAMP = path.join(FLOOR_DIR, 'build.json')

/**
 * Why the floor's build must be made again, or null when it is current. Its inputs are the
 * app's sources, the floor's handlers and the installed Next: not fleetcache, which the floor
 * does not run, so a reinstalled tarball (after which prepareApp rebuilds .next/) leaves it be.
 */
function floorBuildReason(inputs) {
  const buildId = path.join(appDir, '.next-floor', 'BUILD_ID')
  const builtAt = fs.existsSync(buildId) ? fs.statSync(buildId).mtimeMs : 0
  if (!builtAt) return 'no .next-floor/BUILD_ID'
  let stamp = null
  try {
    stamp = JSON.parse(fs.readFileSync(FLOOR_STAMP, 'utf8'))
  } catch {
    return `no ${path.relative(appDir, FLOOR_STAMP)}: what it was built from is unknown`
  }
  if (stamp.next !== inputs.next) return `next ${String(stamp.next)} then, ${inputs.next} now`
  for (const name of FLOOR_NAMES) {
    if (stamp.handlers?.[name] !== inputs.handlers[name]) return `bench/lib/${name} changed`
  }
  const sources = newestSourceMtime(appDir)
  if (sources.mtimeMs > builtAt) {
    return `${path.relative(appDir, sources.file)} changed after the last build`
  }
  return null
}

// The floor's build in .next-floor/, made again when one of its own inputs changed
// (floorBuildReason).
export async function prepareFloor({ log, logDir }) {
  fs.mkdirSync(FLOOR_DIR, { recursive: true })
  const inputs = {
    next: JSON.parse(
      fs.readFileSync(path.join(appDir, 'node_modules', 'next', 'package.json'), 'utf8'),
    ).version,
    handlers: {},
  }
  for (const name of FLOOR_NAMES) {
    const src = fs.readFileSync(path.join(here, name))
    const dst = path.join(FLOOR_DIR, name)
    if (!fs.existsSync(dst) || !src.equals(fs.readFileSync(dst))) fs.writeFileSync(dst, src)
    inputs.handlers[name] = createHash('sha256').update(src).digest('hex')
  }
  const reason = floorBuildReason(inputs)
  if (reason === null) return
  const logFile = path.join(logDir, 'floor-build.log')
  log(`next build with the floor's handlers (${reason}; log: ${logFile})`)
  await runLogged(process.execPath, [nextBinOf(appDir), 'build'], {
    cwd: appDir,
    env: cleanEnv(FLOOR_ENV),
    logFile,
    timeoutMs: 15 * 60_000,
    what: "next build (the floor's handlers)",
  })
  fs.writeFileSync(FLOOR_STAMP, `${JSON.stringify(inputs, null, 2)}\n`)
}
