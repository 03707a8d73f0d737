/**
 * Where the `fleetcache` CLI hands `wasm.ts` the tools module (the binding built with its `tools`
 * feature: the server module's exports and the CLI's), which `wasm.ts` then uses instead of
 * requiring the server module. A file of its own so that reading it loads no module: the CLI
 * requires the tools glue itself and sets this before anything loads `wasm.ts`
 * (`cli-src/use-tools.ts`), so the server code names no path to the tools glue.
 * docs/decisions/0028-wasm-size-budget.md, eighth pass; docs/decisions/0011.
 */
export const TOOLS_MODULE = Symbol.for('fleetcache.wasm-tools')
