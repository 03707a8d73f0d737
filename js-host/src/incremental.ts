/**
 * `cacheHandler: require.resolve('fleetcache/incremental')`: the singular handler class,
 * configured from the environment of the server process when it starts. It shares the engine,
 * tag mirror and Redis connection with `fleetcache/use-cache` in the same process. Next loads
 * this module on the first request; an invalid setting stops the process then (startup.ts).
 */
import { createIncrementalCacheHandler } from './incremental-handler'
import { startFromEnvironment } from './startup'

const FleetcacheIncrementalHandler = createIncrementalCacheHandler(
  startFromEnvironment() === undefined ? {} : undefined,
)
export = FleetcacheIncrementalHandler
