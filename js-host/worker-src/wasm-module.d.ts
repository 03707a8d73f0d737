// What workers-style runtimes hand an ES module that imports a `.wasm` file: a compiled
// `WebAssembly.Module` (workerd, Cloudflare Workers; `?module` on Next's edge runtime).
declare module '*.wasm' {
  const module: WebAssembly.Module
  export default module
}
declare module '*.wasm?module' {
  const module: WebAssembly.Module
  export default module
}
