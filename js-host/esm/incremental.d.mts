// ESM entry for `cacheHandler`: the same class as the CommonJS entry.
import Handler from '../dist/incremental.js'
export default Handler
