// ESM entry for `cacheHandler`: the same class as the CommonJS entry (one module graph).
import Handler from '../dist/incremental.js'
export default Handler
