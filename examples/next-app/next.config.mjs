// Next.js config for the fleetcache example.
//
// Both 'use cache' kinds go through fleetcache: `default` ('use cache') and `remote`
// ('use cache: remote'). Configuring only `default` would leave 'use cache: remote' in Next's
// built-in per-process memory store.
//
// fleetcache reads its settings (REDIS_URL, FLEETCACHE_PREFIX, FLEETCACHE_DEPLOYMENT_ID, ...)
// from the environment when the server process starts, not here: this file is evaluated at
// build time too, where no Redis is needed.
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

// Absolute path: Next resolves relative handler paths against different directories at build
// time and at run time.
const fleetcacheUseCache = resolveHandler('fleetcache/use-cache')

/** @type {import('next').NextConfig} */
const nextConfig = {
  cacheComponents: true,
  // Recommended with cacheComponents in 16.4 (without it Next warns at every start).
  partialPrefetching: true,
  cacheHandlers: {
    default: fleetcacheUseCache,
    remote: fleetcacheUseCache,
  },
  // Load fleetcache (and its .wasm) from node_modules at run time instead of bundling it.
  serverExternalPackages: ['fleetcache'],
  // Pin the project root so a lockfile elsewhere in the repository is never picked up.
  outputFileTracingRoot: appDir,
  turbopack: { root: appDir },
}

export default nextConfig
