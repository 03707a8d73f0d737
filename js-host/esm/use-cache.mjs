// ESM entry for `cacheHandlers`: the same handler object as the CommonJS entry.
import handler from '../dist/use-cache.js'
export default handler
