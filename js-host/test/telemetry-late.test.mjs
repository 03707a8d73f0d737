// A TracerProvider registered after fleetcache started (Next's instrumentation.ts and the
// handlers load in no fixed order): until then a Redis command starts no span at all, not even
// the API's no-op one; the first command after the registration gets a client span, a child of
// the span active where the cache was called (not only one a second later, when fleetcache
// looks at the global providers again). Its own file (so its own process): telemetry.test.mjs
// registers its SDK before loading fleetcache.
import assert from 'node:assert/strict'
import { AsyncLocalStorage } from 'node:async_hooks'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'

import { startTestRedis, useCacheEntry } from './helpers.mjs'

const require = createRequire(import.meta.url)
const api = require('@opentelemetry/api')
const { context, trace, ROOT_CONTEXT } = api
const {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} = require('@opentelemetry/sdk-trace-base')

// Every no-op span the API hands out (a ProxyTracer without a delegate, the no-op provider's
// tracers) is started by NoopTracer.startSpan. The class is not exported; its file is the one
// the API itself loaded (same path, so the same module instance).
const apiDir = path.dirname(require.resolve('@opentelemetry/api'))
const { NoopTracer } = require(path.join(apiDir, 'trace', 'NoopTracer.js'))
let noopSpans = 0
const noopStartSpan = NoopTracer.prototype.startSpan
NoopTracer.prototype.startSpan = function (...args) {
  noopSpans++
  return noopStartSpan.apply(this, args)
}

/** The smallest context manager that carries the active context across awaits. */
class AlsContextManager {
  #als = new AsyncLocalStorage()
  active() {
    return this.#als.getStore() ?? ROOT_CONTEXT
  }
  with(ctx, fn, thisArg, ...args) {
    return this.#als.run(ctx, () => fn.apply(thisArg, args))
  }
  bind(_ctx, target) {
    return target
  }
  enable() {
    return this
  }
  disable() {
    return this
  }
}
context.setGlobalContextManager(new AlsContextManager())

const { createUseCacheHandler, close, stats } = await import('../esm/index.mjs')

let logDir
let redis

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-telemetry-late-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

test('no span before a TracerProvider is registered; a span for the next command after', async () => {
  // The spy sees the API's no-op spans (else "none" below would prove nothing).
  trace.getTracer('probe').startSpan('probe').end()
  assert.equal(noopSpans, 1, 'the spy counts no-op spans')
  noopSpans = 0

  const uc = createUseCacheHandler({
    ...redis.options,
    redisUrl: redis.url,
    prefix: 'otel-late',
    deploymentId: 'd1',
    // Every read goes to Redis: no in-process tier.
    memoryBytes: 0,
  })
  await uc.refreshTags()
  await uc.set('k', Promise.resolve(useCacheEntry('v', { tags: ['t'] })))
  for (let i = 0; i < 5; i++) assert.ok(await uc.get('k', []), 'hit expected')
  const sent = stats().redis.ok
  assert.ok(sent >= 7, `Redis commands sent: ${sent}`)
  assert.equal(noopSpans, 0, 'commands without a TracerProvider start no span')

  // Registered just after fleetcache looked at the global provider (its once-a-second check,
  // seen here as a call of `trace.getTracerProvider`), so that check cannot be what finds it.
  const getTracerProvider = trace.getTracerProvider
  let looked = 0
  trace.getTracerProvider = function (...args) {
    looked++
    return getTracerProvider.apply(this, args)
  }
  try {
    for (let i = 0; looked === 0; i++) {
      assert.ok(i < 200, 'fleetcache looks at the global provider about once a second')
      assert.ok(await uc.get('k', []), 'hit expected')
      // Pacing only (a request every 25 ms, as traffic would): nothing waits on it.
      await sleep(25)
    }
  } finally {
    trace.getTracerProvider = getTracerProvider
  }
  const spans = new InMemorySpanExporter()
  assert.ok(
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }),
    ),
  )
  const tracer = trace.getTracer('app')
  const request = await tracer.startActiveSpan('request', async (span) => {
    assert.ok(await uc.get('k', []), 'hit expected')
    span.end()
    return span
  })
  const ours = spans
    .getFinishedSpans()
    .filter((s) => s.parentSpanContext?.spanId === request.spanContext().spanId)
  assert.equal(ours.length, 1, `the last request's spans: ${ours.map((s) => s.name)}`)
  const [get] = ours
  assert.equal(get.name, 'GET')
  assert.equal(get.kind, api.SpanKind.CLIENT)
  assert.equal(get.instrumentationScope.name, 'fleetcache')
  assert.equal(get.attributes['db.system.name'], 'redis')
  assert.equal(get.attributes['db.operation.name'], 'GET')
  assert.equal(get.spanContext().traceId, request.spanContext().traceId)
  assert.equal(noopSpans, 0, 'no no-op span after the registration either')
})
