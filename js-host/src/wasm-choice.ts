/**
 * The flag by which the `fleetcache` CLI asks `wasm.ts` for the tools module (the binding built
 * with its `tools` feature: the server module's exports and the CLI's) instead of the server
 * module. A file of its own so that setting it loads no module: the CLI sets it before anything
 * loads `wasm.ts` (`cli/use-tools.ts`). docs/decisions/0028-wasm-size-budget.md, eighth pass.
 */
export const TOOLS_MODULE = Symbol.for('fleetcache.wasm-tools')
