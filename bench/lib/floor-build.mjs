// The floor of bench/page-cost.mjs and bench/page-cpu.mjs: examples/next-app built with the
// least custom handlers there can be (bench/lib/floor-*.cjs), in .next-floor/.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { appDir, cleanEnv, nextBinOf, runLogged } from '../../tests/support/fleet.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
// The floor's handlers, written in bench/lib/ and copied into the app, where the build takes
// them from (Turbopack traces a cacheHandler and refuses a file outside the project's root);
// examples/next-app/next.config.mjs reads EXAMPLE_FLOOR_HANDLERS.
const FLOOR_NAMES = ['floor-incremental-handler.cjs', 'floor-use-cache-handler.cjs']
const FLOOR_FILES = FLOOR_NAMES.map((f) => path.join(here, f))
const FLOOR_DIR = path.join(appDir, 'node_modules', '.fleetcache-floor')
export const FLOOR_ENV = { EXAMPLE_FLOOR_HANDLERS: FLOOR_DIR }

// The floor's build in .next-floor/, made again when it is older than the app's fleetcache
// build (prepareApp rebuilds that one when a source of the app changed) or than the floor's
// handlers.
export async function prepareFloor({ log, logDir }) {
  fs.mkdirSync(FLOOR_DIR, { recursive: true })
  for (const name of FLOOR_NAMES) {
    const src = fs.readFileSync(path.join(here, name))
    const dst = path.join(FLOOR_DIR, name)
    if (!fs.existsSync(dst) || !src.equals(fs.readFileSync(dst))) fs.writeFileSync(dst, src)
  }
  const buildId = (dir) => path.join(appDir, dir, 'BUILD_ID')
  const mtime = (f) => (fs.existsSync(f) ? fs.statSync(f).mtimeMs : 0)
  const builtAt = mtime(buildId('.next-floor'))
  const newer = [buildId('.next'), ...FLOOR_FILES].filter((f) => mtime(f) > builtAt)
  if (builtAt && !newer.length) return
  const logFile = path.join(logDir, 'floor-build.log')
  log(
    `next build with the floor's handlers (${builtAt ? `${path.basename(newer[0])} is newer` : 'no .next-floor/BUILD_ID'}; log: ${logFile})`,
  )
  await runLogged(process.execPath, [nextBinOf(appDir), 'build'], {
    cwd: appDir,
    env: cleanEnv(FLOOR_ENV),
    logFile,
    timeoutMs: 15 * 60_000,
    what: "next build (the floor's handlers)",
  })
}
