// cacheHandlers.default for the bench's peer build: the README's "Wire up" file as written there.
const { createCacheComponentsHandler } = require('@leejpsd/nextjs-cache-handler/cache-components')
module.exports = createCacheComponentsHandler({
  client: { type: 'redis', url: process.env.REDIS_URL },
  buildNamespace: process.env.DEPLOYMENT_VERSION,
  abortTimeoutMs: 1500,
})
