/**
 * `cacheHandler: require.resolve('fleetcache/incremental')`: the singular handler class,
 * configured from the environment of the server process when it starts. It shares the engine,
 * tag mirror and Redis connection with `fleetcache/use-cache` in the same process.
 */
import { createIncrementalCacheHandler } from './incremental-handler'

const FleetcacheIncrementalHandler = createIncrementalCacheHandler()
export = FleetcacheIncrementalHandler
