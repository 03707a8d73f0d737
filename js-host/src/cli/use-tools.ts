/**
 * The CLI entry's first import: before `../wasm` is loaded, it asks for the tools module, which
 * has the exports `inspect` and `seed` call (`describeEnvelope`, `inspectEntry`, `planSeedWrite`,
 * ...) and which the server module leaves out. One module per process: an engine's objects belong
 * to the module that made them, and the seed's runtime is the package's own (`runtimeFor`).
 */
import { TOOLS_MODULE } from '../wasm-choice'

;(globalThis as Record<symbol, unknown>)[TOOLS_MODULE] = true
