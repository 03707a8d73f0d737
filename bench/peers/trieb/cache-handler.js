// cacheHandlers.default and .remote for the bench's peer build: the README's ESM variant of
// cache-handler.js (the app's package.json says "type": "module").
import { redisCacheHandler } from '@trieb.work/nextjs-turbo-redis-cache'

export default redisCacheHandler
