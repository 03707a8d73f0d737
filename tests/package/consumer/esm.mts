// TypeScript, ESM (node16 / nodenext: a .mts file): every entry point, with the types a user
// relies on.
import {
  createUseCacheHandler,
  stats,
  type CacheHandler,
  type FleetcacheStats,
  type IncrementalCacheHandler,
  type IncrementalCacheHandlerClass,
} from 'fleetcache'
import { withFleetcache } from 'fleetcache/config'
import { close } from 'fleetcache/shutdown'
import Incremental from 'fleetcache/incremental'
import useCache from 'fleetcache/use-cache'
import wasm from 'fleetcache/wasm'
import { createCache, type WorkerCache } from 'fleetcache/worker'

export const handler: CacheHandler = useCache
export const made: CacheHandler = createUseCacheHandler({ prefix: 'shop' })
export const IncrementalClass: IncrementalCacheHandlerClass = Incremental
export const next: { cacheMaxMemorySize?: number } = withFleetcache({ cacheMaxMemorySize: 0 })
// next.config.ts as the README writes it: the app's own settings inline, whatever their keys,
// kept in the result's type; a fleetcache setting of the wrong type is still refused.
export const inline = withFleetcache({ cacheComponents: true, output: 'standalone', images: {} })
export const kept: boolean = inline.cacheComponents
// @ts-expect-error cacheHandler is a module path
export const wrong = withFleetcache({ cacheHandler: 5 })
// No config at all: the result still has the keys fleetcache sets.
export const bare: string | undefined = withFleetcache().cacheHandler
// @ts-expect-error cacheHandlers maps names to module paths
export const wrongHandlers = withFleetcache({ cacheHandlers: 42 })
export const current: FleetcacheStats | undefined = stats()
export const shut: () => Promise<void> = close
export const module: WebAssembly.Module = wasm
export const cache: WorkerCache = createCache({ module: wasm, prefix: 'edge' })
// Each entry's bundled declarations hold their own copy of the types they use: a value of one
// entry's type is accepted where another's is expected, both ways.
export const fromIndex: typeof useCache = createUseCacheHandler()
export const instance: IncrementalCacheHandler = new Incremental()
export const back: InstanceType<typeof Incremental> = instance
