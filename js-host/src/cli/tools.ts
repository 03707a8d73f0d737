import type * as Tools from '../../wasm/tools/node/fleetcache_wasm'
import { wasm, type Engine, type ToolsEngine } from '../wasm'

/**
 * The tools module this process loaded (`use-tools.ts`). Throws when it loaded the server
 * module instead: something loaded `../wasm` before the CLI's entry asked for the tools.
 */
export function tools(): typeof Tools {
  if (!('describeEnvelope' in wasm)) {
    throw new Error(
      'fleetcache: this command needs the tools module (wasm/tools), but the process loaded the server module first',
    )
  }
  return wasm as unknown as typeof Tools
}

/** An engine of the tools module (the seed's runtime makes it through `../wasm`). */
export function toolsEngine(engine: Engine): ToolsEngine {
  tools()
  return engine as unknown as ToolsEngine
}
