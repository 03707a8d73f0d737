/**
 * Where the `fleetcache` CLI hands `wasm.ts` the tools module (the binding built with its `tools`
 * feature: the server module's exports and the CLI's), which `wasm.ts` then uses instead of
 * requiring the server module. A file of its own so that reading it loads no module: the CLI
 * requires the tools glue itself and sets `module` before anything loads `wasm.ts`
 * (`cli-src/use-tools.ts`), so the server code names no path to the tools glue.
 *
 * This module's own object, not a process-wide symbol: only code that requires this very file
 * (this copy's `cli/use-tools.js`) can hand a module over. A value another copy put on a global,
 * such as the `true` an earlier build's CLI set on `Symbol.for('fleetcache.wasm-tools')`, or
 * another version's module, never becomes this copy's engine.
 * docs/decisions/0028-wasm-size-budget.md, eighth pass; docs/decisions/0011.
 */
export const toolsHandover: { module?: unknown } = {}
