import type * as Tools from '../wasm/tools/node/fleetcache_wasm'
import { wasm, type Engine } from '../dist/wasm'

/** An engine of the tools module, with the CLI's exports. */
export type ToolsEngine = Tools.Engine

/**
 * The tools module this process loaded (`use-tools.ts`). Throws when it loaded the server
 * module instead: something loaded `../dist/wasm` before the CLI's entry handed it the tools.
 */
export function tools(): typeof Tools {
  if (!('describeEnvelope' in wasm)) {
    throw new Error(
      'fleetcache: this command needs the tools module (wasm/tools), but the process loaded the server module first',
    )
  }
  return wasm as unknown as typeof Tools
}

/** An engine of the tools module (the seed's runtime makes it through `../dist/wasm`). */
export function toolsEngine(engine: Engine): ToolsEngine {
  tools()
  return engine as unknown as ToolsEngine
}
