// Next.js config for the fleetcache example: the three lines a user writes.
//
// `withFleetcache` points `cacheHandler` and `cacheHandlers.default` / `.remote` at fleetcache
// (configuring only `default` would leave 'use cache: remote' in each process's memory), keeps
// fleetcache out of the server bundle and lists its .wasm for `output: 'standalone'`.
//
// fleetcache reads its settings (REDIS_URL, FLEETCACHE_PREFIX, FLEETCACHE_DEPLOYMENT_ID, ...)
// from the environment when the server process starts, not here: this file is evaluated at
// build time too, where no Redis is needed.
//
// EXAMPLE_STANDALONE=1 at build time makes an `output: 'standalone'` build in .next-standalone/
// (the end-to-end tests build both, and one must not overwrite the other).
//
// EXAMPLE_DIST_DIR=<dir> at build time builds into that directory instead of .next/ (the
// end-to-end test of what a build does with REDIS_URL set builds a throwaway copy there).
//
// EXAMPLE_DEFAULT_CACHE=1 (at build time and at `next start`) builds and serves the same app
// WITHOUT fleetcache, with Next's default per-process cache, in .next-default/: the baseline of
// the fleet benchmark (bench/fleet.mjs).
//
// EXAMPLE_FLOOR_HANDLERS=<dir> (at build time and at `next start`) builds and serves it, in
// .next-floor/, with the minimal in-process handlers <dir>/floor-incremental-handler.cjs and
// <dir>/floor-use-cache-handler.cjs configured as fleetcache's are: the floor that any custom
// cacheHandler pays, in bench/page-cost.mjs (its handlers are in bench/lib/, which it copies
// to a <dir> inside this app: Turbopack refuses a cacheHandler outside the project's root).
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { withFleetcache } from 'fleetcache/config'

const appDir = dirname(fileURLToPath(import.meta.url))
// The installed Next's [major, minor, patch]: options older releases do not know are left out
// (they warn about unknown keys at every build and start). The e2e suites build this app on
// older releases too (tests/support/next-release.mjs).
const nextVersion = createRequire(import.meta.url)('next/package.json')
  .version.split(/[.-]/)
  .slice(0, 3)
  .map(Number)
const nextAtLeast = (...v) => {
  for (let i = 0; i < 3; i++) if (nextVersion[i] !== v[i]) return nextVersion[i] > v[i]
  return true
}
const standalone = process.env.EXAMPLE_STANDALONE === '1'
const defaultCache = process.env.EXAMPLE_DEFAULT_CACHE === '1'
const floorDir = process.env.EXAMPLE_FLOOR_HANDLERS

const config = {
  cacheComponents: true,
  // Recommended with cacheComponents in 16.4 (without it Next warns at every start); 16.3.8
  // is the oldest release tested to know it.
  ...(nextAtLeast(16, 3, 8) ? { partialPrefetching: true } : {}),
  // Pin the project root so a lockfile elsewhere in the repository is never picked up.
  outputFileTracingRoot: appDir,
  turbopack: { root: appDir },
  ...(standalone ? { output: 'standalone', distDir: '.next-standalone' } : {}),
  ...(defaultCache ? { distDir: '.next-default' } : {}),
  ...(process.env.EXAMPLE_DIST_DIR ? { distDir: process.env.EXAMPLE_DIST_DIR } : {}),
}

// The same settings withFleetcache makes, with the floor's handlers in place of fleetcache's.
function withFloorHandlers(config, dir) {
  const useCache = join(dir, 'floor-use-cache-handler.cjs')
  return {
    ...config,
    distDir: '.next-floor',
    cacheHandler: join(dir, 'floor-incremental-handler.cjs'),
    cacheMaxMemorySize: 0,
    cacheHandlers: { default: useCache, remote: useCache },
    ...(nextAtLeast(16, 4, 0) ? { experimental: { durableUseCacheEntries: false } } : {}),
  }
}

export default defaultCache
  ? config
  : floorDir
    ? withFloorHandlers(config, floorDir)
    : withFleetcache(config)
