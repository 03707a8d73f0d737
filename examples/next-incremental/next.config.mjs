// Next.js config for the fleetcache singular-handler example (no cacheComponents, so the
// classic caching model applies: ISR, `export const revalidate`, the fetch cache and
// `unstable_cache`).
//
// - cacheHandler: the singular handler (ISR, full-route cache, route handlers, fetch cache).
// - cacheHandlers.default/remote: 'use cache' goes through fleetcache too, and the two handlers
//   share one engine, tag mirror and Redis connection in each server process.
// - cacheMaxMemorySize: 0 turns off Next's per-process memory cache in front of the handler;
//   with it, each instance would keep serving its own copy after another one revalidated.
//
// EXAMPLE_ADAPTER=1 (at build time and at `next start`) sets `adapterPath` to a deployment
// adapter that changes nothing (adapter.mjs) and builds into .next-adapter/: from Next 16.3.8
// such a build keeps its prerenders under server/route-cache/ (the end-to-end test of
// `fleetcache seed` reads it).
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const appDir = dirname(fileURLToPath(import.meta.url))

function resolveHandler(specifier) {
  try {
    return require.resolve(specifier)
  } catch (err) {
    throw new Error(
      `Cannot resolve '${specifier}' from ${appDir}. Install the fleetcache package into this ` +
        'app first, e.g. `npm install --no-save --no-audit --no-fund ../../js-host/fleetcache-<version>.tgz` ' +
        `(a real copy, not a symlink). Cause: ${err.message}`,
    )
  }
}

const useCache = resolveHandler('fleetcache/use-cache')

/** @type {import('next').NextConfig} */
const nextConfig = {
  cacheHandler: resolveHandler('fleetcache/incremental'),
  cacheMaxMemorySize: 0,
  cacheHandlers: { default: useCache, remote: useCache },
  serverExternalPackages: ['fleetcache'],
  outputFileTracingRoot: appDir,
  turbopack: { root: appDir },
  ...(process.env.EXAMPLE_ADAPTER === '1'
    ? { adapterPath: `${appDir}/adapter.mjs`, distDir: '.next-adapter' }
    : {}),
}

export default nextConfig
