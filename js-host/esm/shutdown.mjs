// ESM entry for a shutdown hook: `close()` alone, the same function as the CommonJS entry's and
// as `close` from `fleetcache`; loads nothing else of the package (no wasm, no Redis client).
export { close } from '../dist/shutdown.js'
