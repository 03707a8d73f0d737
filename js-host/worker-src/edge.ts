/**
 * Entry for Next.js's edge runtime and Vercel-style edge (`edge-light` condition): the
 * `.wasm` is imported with `?module` (a plain import is taken for the ESM integration
 * there) and arrives compiled. Everything else is the runtime-neutral API of `./index.js`.
 */
import wasmModule from '../wasm/fleetcache_wasm_bg.wasm?module'
import { WorkerCache, type WorkerCacheOptions, type WasmSource } from './index.js'

export * from './index.js'

/** The engine's compiled module, as this runtime loaded it. */
export const module: WebAssembly.Module = wasmModule

/** A `'use cache'`-shaped cache; `module` defaults to the package's own `.wasm`. */
export function createCache(
  options: Omit<WorkerCacheOptions, 'module'> & { module?: WasmSource } = {},
): WorkerCache {
  return new WorkerCache({ ...options, module: options.module ?? wasmModule })
}
