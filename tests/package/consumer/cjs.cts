// TypeScript, CommonJS (node16 / nodenext: a .cts file): every entry point, with the types a
// user relies on.
import fleetcache = require('fleetcache')
import useCache = require('fleetcache/use-cache')
import Incremental = require('fleetcache/incremental')
import config = require('fleetcache/config')
import shutdown = require('fleetcache/shutdown')

const handler: fleetcache.CacheHandler = useCache
const made: fleetcache.CacheHandler = fleetcache.createUseCacheHandler({ prefix: 'shop' })
const IncrementalClass: fleetcache.IncrementalCacheHandlerClass = Incremental
const next: { cacheMaxMemorySize?: number } = config.withFleetcache({ cacheMaxMemorySize: 0 })
// The app's own keys inline (next.config.ts as the README writes it), kept in the result's type.
const inline: boolean = config.withFleetcache({ cacheComponents: true }).cacheComponents
// No config at all: the result still has the keys fleetcache sets.
const bare: string | undefined = config.withFleetcache().cacheHandler
// @ts-expect-error cacheHandler is a module path
config.withFleetcache({ cacheHandler: 5 })
const stats: fleetcache.FleetcacheStats | undefined = fleetcache.stats()
const shut: () => Promise<void> = shutdown.close

// ESM only (fleetcache/worker, fleetcache/wasm): a dynamic import from CommonJS.
async function workers(bytes: Uint8Array): Promise<'memory' | 'transport'> {
  const { createCache } = await import('fleetcache/worker')
  const wasm: WebAssembly.Module = (await import('fleetcache/wasm')).default
  const cache = createCache({ module: bytes.length > 0 ? bytes : wasm })
  return cache.storeKind
}

// Each entry's bundled declarations hold their own copy of the types they use: a value of one
// entry's type is accepted where another's is expected, both ways.
const fromIndex: typeof useCache = fleetcache.createUseCacheHandler()
const instance: fleetcache.IncrementalCacheHandler = new Incremental()
const back: InstanceType<typeof Incremental> = instance

export = {
  handler,
  made,
  IncrementalClass,
  next,
  inline,
  bare,
  stats,
  shut,
  workers,
  fromIndex,
  back,
}
