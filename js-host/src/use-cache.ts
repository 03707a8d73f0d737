/**
 * `cacheHandlers: { default: require.resolve('fleetcache/use-cache'), remote: ... }`: the handler
 * configured from the environment of the server process when it starts.
 */
import { createUseCacheHandler } from './use-cache-handler'

const handler = createUseCacheHandler()
export = handler
