// examples/next-app configured with @leejpsd/nextjs-cache-handler as its README's quick start
// says (both interfaces), for bench/fleet.mjs. Where this departs from the README, and why:
// bench/peers/README.md.
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const appDir = dirname(fileURLToPath(import.meta.url))
// The README's config is a next.config.ts (CommonJS `require.resolve`); this one is ESM.
const require = createRequire(import.meta.url)

export default {
  outputFileTracingRoot: appDir,
  turbopack: { root: appDir },
  cacheComponents: true,
  // As examples/next-app sets it: the same app in every variant.
  partialPrefetching: true,
  deploymentId: process.env.DEPLOYMENT_VERSION,
  generateBuildId: async () => process.env.DEPLOYMENT_VERSION ?? 'dev-build',
  cacheMaxMemorySize: 0,
  cacheHandler: require.resolve('./cache-incremental.cjs'),
  cacheHandlers: { default: require.resolve('./cache-components.cjs') },
}
