/**
 * Observability: the engine's counters as OpenTelemetry instruments, Redis command
 * latency and entry sizes as histograms, a span per Redis command.
 *
 * The counters live in the core, incremented where it decides (docs/decisions/0014); this
 * module only reads them when a metric reader collects (observable instruments), so the request
 * path makes no metric call. The two histograms and the spans are recorded by `guard.ts`, the
 * one place every Redis command passes through.
 *
 * `@opentelemetry/api` is an optional peer dependency, loaded once per package version with a
 * guarded `require` when that version's first runtime starts. Without it `telemetry()` is `undefined` and the only cost is
 * that one check per command. With it but no TracerProvider registered, a command starts no
 * span: the API's non-recording one cost about 2% of a Redis hit's CPU, and nothing could see
 * it (a command's span is never made the active one, so it is nobody's parent). Names and
 * attributes: docs/observability.md.
 */
import type * as OtelApi from '@opentelemetry/api'

import type { FleetcacheStats } from './stats'
import { PACKAGE_VERSION } from './package-version'
import { addStats, engineStats } from './stats-sum'
import { createInstruments } from './telemetry-instruments'
import type { Engine } from './wasm'

// The public stats types live in stats.ts: this module's declarations name @opentelemetry/api,
// an optional peer, so no public declaration may lead here.
export type { FleetcacheStats, LookupStats, WriteStats } from './stats'

type Api = typeof OtelApi

/** `@opentelemetry/api` if the application has it; `null` when it does not. */
function loadApi(): Api | null {
  try {
    // Optional peer dependency: absent is normal, not an error.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@opentelemetry/api') as Api
  } catch {
    return null
  }
}

/**
 * How often (ms) a command checks whether the application registered or replaced the global
 * MeterProvider or TracerProvider.
 */
const REBIND_CHECK_MS = 1000

/** How a guarded command ended, as `guard.ts` reports it. */
export type CommandResult = 'ok' | 'reply-error' | 'timeout' | 'connection-error'

/**
 * This version's OpenTelemetry binding in the process (one per package version: `telemetry()`).
 * Instruments are created against the global
 * MeterProvider, spans started by the registered TracerProvider's tracer; since an application
 * may register its SDK after fleetcache started (Next's `instrumentation.ts` and the handlers
 * load in no fixed order), commands check at most once a second whether either provider
 * changed, and rebind; until a TracerProvider is registered, every command also asks the
 * proxy provider for its delegate, so the first one registered traces the next command.
 */
export class Telemetry {
  private readonly engines = new Set<Engine>()
  private provider: OtelApi.MeterProvider | undefined
  private duration: OtelApi.Histogram | undefined
  private size: OtelApi.Histogram | undefined
  private nextCheck = 0
  /** The registered TracerProvider's tracer; undefined while none is registered. */
  private tracer: OtelApi.Tracer | undefined
  /**
   * While no TracerProvider is registered: the API's proxy provider found at the last check,
   * whose delegate every command asks for (an identity check), so that a provider registered
   * on it traces the very next command. Undefined while a tracer is bound.
   */
  private proxy: OtelApi.TracerDelegator | undefined

  constructor(private readonly api: Api) {
    this.bind()
  }

  /** Reads this engine's counters at every collection from now on. */
  track(engine: Engine): void {
    this.engines.add(engine)
  }

  /** Stops reading an engine (its runtime was closed). */
  untrack(engine: Engine): void {
    this.engines.delete(engine)
  }

  private bind(): void {
    const found = registeredTracer(this.api)
    this.tracer = found.tracer
    this.proxy = found.tracer === undefined ? found.proxy : undefined
    const provider = this.api.metrics.getMeterProvider()
    if (provider === this.provider) return
    this.provider = provider
    const instruments = createInstruments(
      this.api,
      provider.getMeter('fleetcache', PACKAGE_VERSION),
      () => this.collect(),
    )
    this.duration = instruments.duration
    this.size = instruments.size
  }

  /** The sum of every tracked engine's counters; undefined when none is tracked. */
  collect(): FleetcacheStats | undefined {
    let total: FleetcacheStats | undefined
    for (const engine of this.engines) {
      const s = engineStats(engine)
      total = total === undefined ? s : addStats(total, s)
    }
    return total
  }

  /**
   * Called as a command is sent, at `t` (ms): a client span for it (a child of the active span,
   * if any), or `undefined` while no TracerProvider is registered. Checks first, at most once
   * a second, whether the application registered or replaced a provider; while none is
   * registered, also whether one was registered since on the API's proxy provider, at every
   * command: the application's first provider traces the next command, not one a second
   * later (one registered through another copy of the API puts that copy's proxy on the
   * global, which only the once-a-second check reads).
   */
  startSpan(command: string, t: number): OtelApi.Span | undefined {
    if (t >= this.nextCheck) {
      this.nextCheck = t + REBIND_CHECK_MS
      this.bind()
    } else if (this.proxy !== undefined) {
      this.tracer = this.proxy.getDelegateTracer('fleetcache', PACKAGE_VERSION)
      if (this.tracer !== undefined) this.proxy = undefined
    }
    return this.tracer?.startSpan(command, {
      kind: this.api.SpanKind.CLIENT,
      attributes: { 'db.system.name': 'redis', 'db.operation.name': command },
    })
  }

  /**
   * Records one finished command: its duration, the size of the entry it read or wrote (GET,
   * SET, a script's: guard.ts `entryBytes`); ends its span.
   */
  recordCommand(
    command: string,
    result: CommandResult,
    seconds: number,
    bytes: number | undefined,
    span: OtelApi.Span | undefined,
  ): void {
    const attributes: OtelApi.Attributes = { 'db.operation.name': command }
    if (result !== 'ok') attributes['error.type'] = result
    this.duration?.record(seconds, attributes)
    if (bytes !== undefined) this.size?.record(bytes, { 'db.operation.name': command })
    if (span === undefined) return
    if (result !== 'ok') {
      span.setAttribute('error.type', result)
      span.setStatus({ code: this.api.SpanStatusCode.ERROR })
    }
    span.end()
  }
}

/**
 * The tracer of the TracerProvider the application registered, or `undefined` while it has
 * registered none, with the proxy provider asked (`undefined` for a provider that is no
 * proxy). In `@opentelemetry/api` 1.x `trace.getTracerProvider()` is a ProxyTracerProvider:
 * the one `trace.setGlobalTracerProvider` put on the process's global (seen by every copy of
 * the API compatible with the one that registered it), else this copy's own. Its
 * `getDelegateTracer` (the API's `TracerDelegator` interface, the one its ProxyTracers ask)
 * answers `undefined` until a provider is registered: that is how the API itself decides to
 * hand out no-op spans. A global provider without that method is used as it is.
 */
function registeredTracer(api: Api): {
  tracer: OtelApi.Tracer | undefined
  proxy: OtelApi.TracerDelegator | undefined
} {
  const provider: OtelApi.TracerProvider & Partial<OtelApi.TracerDelegator> =
    api.trace.getTracerProvider()
  if (typeof provider.getDelegateTracer !== 'function') {
    return { tracer: provider.getTracer('fleetcache', PACKAGE_VERSION), proxy: undefined }
  }
  const proxy = provider as OtelApi.TracerDelegator
  return { tracer: proxy.getDelegateTracer('fleetcache', PACKAGE_VERSION), proxy }
}

/**
 * The key of this version's telemetry on `globalThis`: one per package version, so that each
 * version of the package loaded in one process (two copies in node_modules) reads its own
 * engines, with its own code, under a meter and a tracer of its own version, and one that finds
 * no `@opentelemetry/api` leaves the others theirs. Builds from before this key used
 * `fleetcache.telemetry` for every version, which no version reads now.
 */
const SLOT = Symbol.for(`fleetcache.telemetry@${PACKAGE_VERSION}`)

type Slot = { telemetry: Telemetry | undefined }

/**
 * This version's telemetry, created on first call: `undefined` when `@opentelemetry/api` is not
 * installed where this copy of the package finds it. Kept on `globalThis` under a key of this
 * version (like the runtimes, closing.ts and runtime.ts), so that copies of one version (ESM and
 * CommonJS, a bundler's and node_modules') register their instruments once, and every version
 * its own.
 */
export function telemetry(): Telemetry | undefined {
  const g = globalThis as unknown as Record<symbol, Slot | undefined>
  let slot = g[SLOT]
  if (slot === undefined) {
    const api = loadApi()
    slot = { telemetry: api === null ? undefined : new Telemetry(api) }
    g[SLOT] = slot
  }
  return slot.telemetry
}
