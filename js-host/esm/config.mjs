// ESM entry for next.config.mjs / next.config.ts: no wasm, no connections.
export { withFleetcache } from '../dist/next-config.js'
