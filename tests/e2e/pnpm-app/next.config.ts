// The create-next-app form with withFleetcache around it, and `output: 'standalone'`: one
// build serves `next start` and `node .next/standalone/server.js` (tests/e2e/pnpm.test.mjs).
import type { NextConfig } from 'next'
import { withFleetcache } from 'fleetcache/config'

const nextConfig: NextConfig = {
  cacheComponents: true,
  partialPrefetching: true,
  output: 'standalone',
}

export default withFleetcache(nextConfig)
