// examples/next-app configured with @trieb.work/nextjs-turbo-redis-cache as its README's hybrid
// setup (ISR + Cache Components) says, for bench/fleet.mjs. Where this departs from the README,
// and why: bench/peers/README.md.
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
  cacheHandler: require.resolve('@trieb.work/nextjs-turbo-redis-cache'),
  cacheHandlers: {
    default: require.resolve('./cache-handler.js'),
    remote: require.resolve('./cache-handler.js'),
  },
  cacheMaxMemorySize: 0,
}
