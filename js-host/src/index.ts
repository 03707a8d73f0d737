export { createUseCacheHandler } from './use-cache-handler'
export type { CacheEntry, CacheHandler, UseCacheHandlerOptions } from './use-cache-handler'
export { createIncrementalCacheHandler } from './incremental-handler'
export type {
  CacheControl,
  IncrementalCacheEntry,
  IncrementalCacheHandler,
  IncrementalCacheHandlerClass,
  IncrementalCacheHandlerOptions,
  IncrementalGetContext,
  IncrementalSetContext,
  IncrementalValue,
} from './incremental-handler'
export { ConfigError, optionsFromEnv } from './config'
export type { FleetcacheOptions } from './config'
export type { Durations } from './tags'
export type { Transport } from './transport'
export { stats } from './runtime'
export { close } from './closing'
export type { FleetcacheStats, LookupStats, WriteStats } from './stats'
export { withFleetcache } from './next-config'
export type { NextConfigLike, WithFleetcacheOptions } from './next-config'
