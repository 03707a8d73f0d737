/**
 * `fleetcache/wasm` is the engine's one `.wasm` file, for workers-style runtimes and bundlers
 * that load it themselves (https://github.com/fleetcache/fleetcache/blob/main/docs/transport.md). Where importing a `.wasm` gives a compiled
 * `WebAssembly.Module` (workerd / Cloudflare Workers: wrangler's default rule for `.wasm`), that
 * is its default export: pass it to `createCache({ module })` from `fleetcache/worker`. Node
 * cannot import it: resolve the path instead (`require.resolve('fleetcache/wasm')`,
 * `import.meta.resolve('fleetcache/wasm')`) and read the bytes. The Node entries (`fleetcache`,
 * `/use-cache`, `/incremental`) need none of this: they load the file themselves.
 */
declare const engine: WebAssembly.Module
export default engine
