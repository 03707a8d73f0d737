// The floor of bench/page-cost.mjs and bench/page-cpu.mjs: examples/next-app built with the
// least custom handlers there can be (bench/lib/floor-*.cjs), in .next-floor/.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import {
  appDir,
  buildStaleReason,
  cleanEnv,
  dropBuildStamp,
  installedNextVersion,
  nextBinOf,
  runLogged,
  writeBuildStamp,
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

// The floor's build in .next-floor/, made again when one of its inputs changed: the app's
// sources, the floor's handlers and the installed Next (tests/support/fleet.mjs
// buildStaleReason); not fleetcache, which the floor does not run, so a reinstalled tarball
// (after which prepareApp rebuilds .next/) leaves it be.
export async function prepareFloor({ log, logDir }) {
  fs.mkdirSync(FLOOR_DIR, { recursive: true })
  const inputs = { next: installedNextVersion(appDir), handlers: {} }
  for (const name of FLOOR_NAMES) {
    const src = fs.readFileSync(path.join(here, name))
    const dst = path.join(FLOOR_DIR, name)
    if (!fs.existsSync(dst) || !src.equals(fs.readFileSync(dst))) fs.writeFileSync(dst, src)
    inputs.handlers[name] = createHash('sha256').update(src).digest('hex')
  }
  const reason = buildStaleReason({
    dir: appDir,
    distDir: '.next-floor',
    stampFile: FLOOR_STAMP,
    inputs,
  })
  if (reason === null) return
  dropBuildStamp(FLOOR_STAMP)
  const logFile = path.join(logDir, 'floor-build.log')
  log(`next build with the floor's handlers (${reason}; log: ${logFile})`)
  await runLogged(process.execPath, [nextBinOf(appDir), 'build'], {
    cwd: appDir,
    env: cleanEnv(FLOOR_ENV),
    logFile,
    timeoutMs: 15 * 60_000,
    what: "next build (the floor's handlers)",
  })
  writeBuildStamp(FLOOR_STAMP, inputs)
}
