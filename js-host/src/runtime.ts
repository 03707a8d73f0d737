import { docLink } from './doc-link'
import {
  DEV_SERVER_VARS,
  durableUseCacheEntries,
  durableUseCacheEntriesIn,
  localOnlyPhase,
  useCacheKeyEnvVars,
  type ResolvedOptions,
} from './config'
import { buildRecord, type BuildRecord } from './build-record'
import { buildIdFileProblem, NO_DEPLOYMENT_FOUND } from './env-options'
import { checkEvictionPolicy } from './eviction-policy'
import { createLogger, type Logger } from './log'
import { GuardedTransport } from './guard'
import { RedisTransport } from './redis'
import { redisSubscribe } from './tag-channel'
import type { Subscribe } from './tag-sync'
import { buildId } from './next-build-files'
import { buildNextRelease, detectNextRelease } from './next-release'
import { MemoryStore, RedisStore, type EntryStore } from './store'
import { nodeTagSync, type TagSync } from './tags'
import type { FleetcacheStats } from './stats'
import { addStats, engineStats, primeStats } from './stats-sum'
import { telemetry } from './telemetry'
import { RedisReplyError, type Transport } from './transport'
import { coreDefaults, wasm, type Engine } from './wasm'
import { registry as closables, type Closable } from './closing'
import { PACKAGE_VERSION } from './package-version'

/**
 * The process-wide registry of runtimes (closing.ts, which closes them). Every version of the
 * package loaded in the process registers there (two copies in node_modules), so the entries
 * this version made are those whose key starts with `OWN`: another version's runtime is of
 * another shape, and this one neither returns nor reads it (`close()` shuts it all the same,
 * through its own `shut`).
 */
const registry = (): Map<string, Runtime> => closables<Runtime>()

/** What the key of every runtime this version registers starts with: the package version. */
const OWN = `${PACKAGE_VERSION} `

/**
 * Everything one process shares between its handlers: the engine (tag mirror, in-process
 * index), the Redis connection and the entry store. Next constructs the singular handler
 * several times per request and may load this package through both `import` and `require`,
 * so runtimes are kept in a process-wide registry keyed by the package version and their
 * configuration.
 */
export interface Runtime extends Closable {
  readonly engine: Engine
  readonly transport: Transport | undefined
  readonly store: EntryStore
  readonly tags: TagSync
  readonly log: Logger
  readonly options: ResolvedOptions
  /**
   * The record of the build this server process serves under its deployment
   * (build-record.ts); undefined where there is none (no Redis, no build id, not a server).
   */
  readonly builds?: BuildRecord | undefined
}

/**
 * The options as this process uses them: a `next build` worker never talks to Redis, whichever
 * handler asks (docs/decisions/0022). Its entries stay in the process, so nothing a build
 * renders lands under a namespace (the build's own deployment id does not exist yet while it
 * runs) that no server reads. Nor does a development server (`localOnlyPhase`).
 */
function forThisProcess(
  options: ResolvedOptions,
  phase: ReturnType<typeof localOnlyPhase>,
): ResolvedOptions {
  return phase !== undefined && options.redisUrl !== undefined
    ? { ...options, redisUrl: undefined }
    : options
}

/**
 * The announcement subscription when these options follow the tag state by push, else
 * undefined (every request pulls).
 */
function pushFor(options: ResolvedOptions, engine: Engine, log: Logger): Subscribe | undefined {
  if (options.tagSync !== 'push' || options.redisUrl === undefined) return undefined
  return redisSubscribe({
    url: options.redisUrl,
    cluster: options.cluster,
    seeds: options.redisSeeds,
    sentinels: options.sentinels,
    sentinelUsername: options.sentinelUsername,
    sentinelPassword: options.sentinelPassword,
    tlsCa: options.tlsCa,
    tlsCert: options.tlsCert,
    tlsKey: options.tlsKey,
    commandTimeoutMs: options.engine.writeTimeoutMs ?? coreDefaults().writeTimeoutMs,
    connectTimeoutMs: engine.connectBudgetMs,
    log,
  })
}

/** The first wait before `CLUSTER SLOTS` is asked again after an answer that settles nothing. */
const CLUSTER_SLOTS_RETRY_MS = 1000
/** The longest wait between two such asks (doubling from the first). */
const CLUSTER_SLOTS_RETRY_MAX_MS = 60_000

/**
 * `subscribe`, asking Redis `CLUSTER SLOTS` each time the subscription is confirmed: page
 * copies serve from the tier by push only on a Redis known not to be cluster-enabled (an error
 * reply "cluster support disabled"). A cluster-enabled server behind one URL refuses the
 * announcing page writes (CROSSSLOT), so none would be heard there; a success says so, and no
 * answer (yet) leaves the tier's page copies for outages only, as in decision 0021. Asked
 * again on every confirmation, since the engine forgets the answer whenever the subscription
 * goes down or comes up (the URL may lead to another server after a failover); an answer for
 * an earlier subscription is ignored, and one that settles nothing (a timeout, a refusal) is
 * asked again after a doubling wait while the subscription lasts. The command is in the
 * documented ACL (docs/operating.md).
 */
function askingClusterSlots(
  subscribe: Subscribe,
  engine: Engine,
  transport: Transport,
  log: Logger,
): Subscribe {
  /** The subscription the asks are for: any `up` or `down` makes earlier answers void. */
  let current = 0
  let warned = false
  const ask = (mine: number, waitMs: number): void => {
    const again = (): void => {
      const timer = setTimeout(() => {
        if (mine === current) ask(mine, Math.min(waitMs * 2, CLUSTER_SLOTS_RETRY_MAX_MS))
      }, waitMs)
      timer.unref()
    }
    transport.send(['CLUSTER', 'SLOTS'], { kind: 'read' }).then(
      () => {
        if (mine !== current || warned) return
        warned = true
        log.warn(
          'redis is cluster-enabled behind a single URL: page and route entries are not served from memory while it answers (set cluster: true to use Redis Cluster)',
        )
      },
      (err: unknown) => {
        if (mine !== current) return
        if (err instanceof RedisReplyError && /cluster support disabled/i.test(err.message)) {
          engine.confirmPlainRedis()
        } else {
          again()
        }
      },
    )
  }
  return (channel, events) =>
    subscribe(channel, {
      ...events,
      up: () => {
        events.up()
        current++
        ask(current, CLUSTER_SLOTS_RETRY_MS)
      },
      down: () => {
        current++
        events.down()
      },
    })
}

/**
 * `pushFor`, asking `CLUSTER SLOTS` once subscribed (`askingClusterSlots`), but on a Redis Cluster
 * (`cluster: true`), which is known not to be plain.
 */
function pushWithCheck(
  options: ResolvedOptions,
  engine: Engine,
  transport: Transport | undefined,
  log: Logger,
): Subscribe | undefined {
  const subscribe = pushFor(options, engine, log)
  // On Redis Cluster (`cluster: true`) nothing is asked: page writes are not announced there
  // (the script would span two slots), so the tier never serves page copies by push.
  return subscribe === undefined || transport === undefined || options.cluster
    ? subscribe
    : askingClusterSlots(subscribe, engine, transport, log)
}

/** Set once this process has warned about the variables in durable `'use cache'` keys. */
const KEY_VARS_WARNED = Symbol.for('fleetcache.key-env-vars-warned')

/**
 * Durable `'use cache'` keys carry a hash of some environment variables: one that differs per
 * instance splits the fleet's entries without any error, so a server warns once at start,
 * naming them and the fix (docs/decisions/0032). Whether the values differ between instances,
 * or whether the app chose durable entries (the recorded config has Next's defaults merged in),
 * a process cannot tell: it warns whenever there are any, but for those the app declared the
 * same on every instance (`uniformEnvVars`) and those only Next's development server sets
 * (`DEV_SERVER_VARS`), which no production instance has. Once per process, however many runtimes it opens
 * (handlers configured in code beside the handler modules).
 */
function logKeyEnvVars(log: Logger, uniform: readonly string[]): void {
  const g = globalThis as unknown as Record<symbol, boolean | undefined>
  if (g[KEY_VARS_WARNED] === true) return
  // With those the app vouches for, those only a development server sets: nothing to act on.
  const known = new Set([...uniform, ...DEV_SERVER_VARS])
  const all = useCacheKeyEnvVars()
  const read = all.read.filter((n) => !known.has(n))
  const existence = all.existence.filter((n) => !known.has(n))
  if (read.length === 0 && existence.length === 0) return
  g[KEY_VARS_WARNED] = true
  const parts = [
    ...(read.length > 0 ? [`the values of ${read.join(', ')}`] : []),
    ...(existence.length > 0
      ? [`whether ${existence.join(', ')} ${existence.length === 1 ? 'is' : 'are'} set`]
      : []),
  ]
  log.warn(
    `'use cache' keys (experimental.durableUseCacheEntries) include ${parts.join(' and ')} (environment variables, from server-reference-manifest.json): instances where these differ share no 'use cache' entry; to share them, set experimental.durableUseCacheEntries: false in next.config (withFleetcache does unless the config sets it), or, if they are the same on every instance, list them in FLEETCACHE_UNIFORM_ENV_VARS (option uniformEnvVars)`,
  )
}

/**
 * Who opens a runtime: a server (the handlers), or `fleetcache seed`, which writes only the
 * singular handler's entries and is no place for the server's start-up warnings.
 */
export type RuntimeRole = 'server' | 'seed'

/**
 * The runtime for these options, created on first use. `buildDir`: the build output directory
 * it serves (`fleetcache seed`'s argument), where whether Next keys `'use cache'` entries
 * durably and which Next release built it (`diagnostics/framework.json`; none named: judged
 * like the newest) are read; by default the server's, found from the working directory, and
 * the `next` it resolves.
 */
export function runtimeFor(
  given: ResolvedOptions,
  role: RuntimeRole = 'server',
  buildDir?: string,
): Runtime {
  // `fleetcache seed` writes to the Redis it is given, even when run from a `next dev` shell.
  const phase = role === 'server' ? localOnlyPhase() : undefined
  const build = phase === 'next build'
  const options = forThisProcess(given, phase)
  // A build directory decides the release and the 'use cache' keys: one runtime per build. The
  // version first: another version's runtime for the same options is not this one's.
  const key =
    OWN + (buildDir === undefined ? JSON.stringify(options) : JSON.stringify([options, buildDir]))
  let id = key
  if (role === 'seed') {
    // Never shared: a seed closes its runtime when done (`closeRuntime`), which must not end
    // another seed's of the same build. Registered still, so `close()` and `stats()` see it.
    for (let n = 0; registry().has(id); n++) id = `${key}#${String(n)}`
  } else {
    const existing = registry().get(id)
    if (existing !== undefined) return existing
  }
  const log = createLogger(options.debug)
  // How Next uses what a handler returns changed across 16.x: the core decides per release.
  // A seed writes for the release that built what it seeds (docs/decisions/0024), not for the
  // `next` its working directory happens to resolve.
  const next = buildDir === undefined ? detectNextRelease() : buildNextRelease(buildDir)
  if (next !== null && next.release === undefined)
    log.warn(`next ${next.version}: version not understood, judged like the newest release`)
  // Set below once the connection exists; started by its first success.
  let builds: BuildRecord | undefined
  const durable =
    phase === undefined &&
    (buildDir === undefined ? durableUseCacheEntries() : durableUseCacheEntriesIn(buildDir))
  const engine = new wasm.Engine({
    ...options.engine,
    ...(next?.release === undefined ? {} : { nextRelease: next.release }),
    // Next keys durable 'use cache' entries by code hash and release, not by build: the core
    // then stores them where the next deployment finds them.
    ...(phase === undefined ? { durableUseCache: durable } : {}),
    // Without it the read machines write no debug line: the logger would drop them.
    debug: options.debug,
  })
  const redis =
    options.redisUrl === undefined
      ? undefined
      : new RedisTransport({
          url: options.redisUrl,
          cluster: options.cluster,
          seeds: options.redisSeeds,
          sentinels: options.sentinels,
          sentinelUsername: options.sentinelUsername,
          sentinelPassword: options.sentinelPassword,
          tlsCa: options.tlsCa,
          tlsCert: options.tlsCert,
          tlsKey: options.tlsKey,
          // Only for a command sent without a budget (every guarded one has its kind's).
          commandTimeoutMs: options.engine.writeTimeoutMs ?? coreDefaults().writeTimeoutMs,
          // The read budget may be the longest: a read within it is not cut off by the
          // connection being given up (test/hung-connection.test.mjs, "answers, slowly").
          longestCommandMs: Math.max(
            engine.budgetMs(wasm.CommandKind.Read),
            engine.budgetMs(wasm.CommandKind.Write),
            engine.budgetMs(wasm.CommandKind.Lease),
          ),
          connectTimeoutMs: engine.connectBudgetMs,
          log,
          // Once Redis is used at all: loading the handler opens no connection.
          onFirstReady: () => {
            if (redis !== undefined) checkEvictionPolicy(redis, log)
            builds?.start()
          },
        })
  // A server's build, under its deployment: not where no build is served (a seed, a build or
  // development server, which have no connection anyway) nor where no id was found (warned of
  // below: the namespace is `default`, every build's that finds none).
  const served =
    redis === undefined ||
    role !== 'server' ||
    phase !== undefined ||
    options.deploymentSource === NO_DEPLOYMENT_FOUND
      ? undefined
      : buildId(process.cwd(), process.env)
  if (redis !== undefined && served !== undefined) {
    builds = buildRecord({
      transport: redis,
      key: engine.buildsKey,
      deploymentId: options.engine.deployment,
      deploymentSource: options.deploymentSource,
      namespace: `${engine.prefix}:${engine.deployment}`,
      release: next?.version,
      buildId: served,
      maxTtlMs: (options.engine.maxTtlSeconds ?? coreDefaults().maxTtlSeconds) * 1000,
      budgetMs: engine.budgetMs(wasm.CommandKind.Write),
      log,
    })
  }
  // Every command asks the engine first (breaker, budget) and reports back.
  const transport = redis === undefined ? undefined : new GuardedTransport(engine, redis, log)
  const store: EntryStore =
    transport === undefined
      ? new MemoryStore(engine)
      : new RedisStore(transport, engine, options.engine.memoryBytes ?? coreDefaults().memoryBytes)
  if (transport === undefined && phase === undefined) {
    log.warn(
      options.givenInCode
        ? 'no redisUrl in the options given in code (the environment, REDIS_URL included, is not read then): using an in-process store, so this instance shares nothing with the rest of the fleet'
        : 'no REDIS_URL set: using an in-process store, so this instance shares nothing with the rest of the fleet',
    )
  }
  const runtime: Runtime = {
    engine,
    transport,
    store,
    tags: nodeTagSync(engine, transport, log, pushWithCheck(options, engine, transport, log)),
    log,
    options,
    builds,
    // What `close()` (closing.ts) does to each runtime: what runs on its own stops at once,
    // then the connections close.
    shut: async () => {
      telemetry()?.untrack(engine)
      builds?.stop()
      // The connections close even when the engine behind the tag channel has trapped.
      try {
        await runtime.tags.stop()
      } finally {
        if (transport) await transport.close()
      }
    },
  }
  // Queued revalidations go out as soon as Redis answers anything again; while the breaker
  // is open the tag sync probes on a timer, so an idle instance notices the recovery too.
  if (transport !== undefined) {
    transport.onBacklog = () => {
      void runtime.tags.drain()
    }
    transport.onTrip = () => {
      runtime.tags.watch()
    }
    // Every instance on one Redis announces its page writes, pulling or not: the instances
    // that follow the tag state by push serve pages from their tier on that promise (a fleet
    // may mix both). Cluster cannot: the scripts would span two slots.
    if (!options.cluster) engine.announcePageWrites()
  } else {
    engine.markStandalone()
  }
  log.info(
    build
      ? `next build: in-process store, Redis is not used during a build${given.redisUrl === undefined ? '' : ' (REDIS_URL is read by the server at start)'}`
      : phase !== undefined
        ? `${phase}: in-process store, Redis is not used by a development server${given.redisUrl === undefined ? '' : ` (next start uses ${given.givenInCode ? 'redisUrl' : 'REDIS_URL'})`}`
        : `namespace ${engine.prefix}:${engine.deployment} (deployment from ${options.deploymentSource})${engine.useCacheSegment === engine.deployment ? '' : `, 'use cache' entries under ${engine.prefix}:${engine.useCacheSegment} (experimental.durableUseCacheEntries)`}, store ${describeMode(options)}${describeStore(options.redisUrl)}`,
  )
  if (
    transport !== undefined &&
    role === 'server' &&
    options.deploymentSource === NO_DEPLOYMENT_FOUND
  ) {
    // Every build that finds no id shares this namespace on the Redis: one build would serve
    // another's pages and RSC payloads. Not an invalid setting (nothing names a build), so
    // the server starts, but the start line's `none found` alone went to stdout.
    log.warn(
      `no deployment id and no build id (${buildIdFileProblem()}): entries are stored under ${engine.prefix}:${engine.deployment}, which every build that finds none shares, so one build may serve another's pages; start the server from the app directory, or set FLEETCACHE_DIST_DIR to the build directory or FLEETCACHE_DEPLOYMENT_ID (${docLink('docs/troubleshooting.md#at-start')})`,
    )
  }
  if (durable && role === 'server') logKeyEnvVars(log, options.uniformEnvVars)
  registry().set(id, runtime)
  primeStats(engine)
  // OpenTelemetry (optional peer dependency) is looked up here, once per process and package
  // version (telemetry.ts).
  telemetry()?.track(engine)
  return runtime
}

/**
 * The cache's counters and gauges, summed over the runtimes this version of the package opened
 * in this process (the same numbers this version's OpenTelemetry instruments report;
 * https://github.com/fleetcache/fleetcache/blob/main/docs/observability.md). `undefined` before this
 * version's first handler has started.
 */
export function stats(): FleetcacheStats | undefined {
  let total: FleetcacheStats | undefined
  for (const [id, r] of registry()) {
    if (!id.startsWith(OWN)) continue
    const s = engineStats(r.engine)
    total = total === undefined ? s : addStats(total, s)
  }
  return total
}

/** Cluster or Sentinel, for the start-up line. */
function describeMode(options: ResolvedOptions): string {
  if (options.cluster) return 'cluster '
  if (options.sentinels.length > 0) return `via sentinels ${options.sentinels.join(',')}, master `
  return ''
}

/** The store for the start-up line, without credentials. */
function describeStore(url: string | undefined): string {
  if (url === undefined) return 'in-process'
  const u = new URL(url)
  return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`
}
