/**
 * `cacheHandlers: { default: require.resolve('fleetcache/use-cache'), remote: ... }`: the handler
 * configured from the environment of the server process when it starts. Next loads this module
 * at server boot: an invalid setting stops the process here, with the variable named
 * (startup.ts).
 */
import { startFromEnvironment } from './startup'
import { createUseCacheHandler } from './use-cache-handler'

const handler = createUseCacheHandler(startFromEnvironment() === undefined ? {} : undefined)
export = handler
