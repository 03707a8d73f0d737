// TypeScript with the `workerd` condition (`customConditions`, as for Cloudflare Workers): the
// root entry is the workers build, whose `createCache` needs no module.
import { createCache, module, type WorkerCache } from 'fleetcache'
import wasm from 'fleetcache/wasm'

export const cache: WorkerCache = createCache({ prefix: 'shop', deploymentId: 'v1' })
export const same: WebAssembly.Module[] = [module, wasm]
