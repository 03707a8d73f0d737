// cacheHandler (singular) for the bench's peer build: the README's "Wire up" file as written there.
const { createIncrementalCacheHandler } = require('@leejpsd/nextjs-cache-handler/incremental')
module.exports = createIncrementalCacheHandler({
  client: { type: 'redis', url: process.env.REDIS_URL },
  buildNamespace: process.env.DEPLOYMENT_VERSION,
  abortTimeoutMs: 1500,
})
