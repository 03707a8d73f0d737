// TypeScript with the `workerd` condition (`customConditions`, as for Cloudflare Workers): the
// root entry is the workers build, whose `createCache` needs no module.
import {
  CircuitOpenError,
  createCache,
  module,
  type WorkerCache,
  type WorkUnitStorage,
} from 'fleetcache'
import wasm from 'fleetcache/wasm'

export const cache: WorkerCache = createCache({ prefix: 'shop', deploymentId: 'v1' })
export const same: WebAssembly.Module[] = [module, wasm]

// Where the lines go: failures to onError, the rest to onLog (debug lines with `debug` on).
export const debugging: WorkerCache = createCache({ prefix: 'shop', debug: true })
debugging.onError = (message: string) => {
  console.error(message)
}
debugging.onLog = (level: 'info' | 'debug', message: string) => {
  console.log(level, message)
}
export const refused: 'ERR_REDIS_CIRCUIT_OPEN' = new CircuitOpenError().code

// Next's work-unit storage, as an adapter that bundles Next passes it: anything with getStore.
const workUnits: WorkUnitStorage = { getStore: () => ({ type: 'request' }) }
export const told: WorkerCache = createCache({ prefix: 'shop', workUnitAsyncStorage: workUnits })
// @ts-expect-error workUnitAsyncStorage needs a getStore
export const untold = createCache({ workUnitAsyncStorage: {} })
