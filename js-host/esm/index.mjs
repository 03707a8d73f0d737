// ESM entry: re-exports the CommonJS build so `import` and `require` share one module graph
// (one engine, one Redis connection per process).
export {
  close,
  createUseCacheHandler,
  createIncrementalCacheHandler,
  ConfigError,
  optionsFromEnv,
  stats,
  withFleetcache,
} from '../dist/index.js'
