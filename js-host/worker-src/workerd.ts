/**
 * Entry for workerd / Cloudflare Workers (`workerd` and `worker` export conditions): the `.wasm`
 * arrives as a compiled `WebAssembly.Module` through an ES import, so `createCache()` needs no
 * `module` option. Everything else is the runtime-neutral API of `./index.js`.
 */
import wasmModule from '../wasm/fleetcache_wasm_bg.wasm'
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
