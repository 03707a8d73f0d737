// The runtime-neutral worker module (`fleetcache/worker`) with a host-supplied transport
// (docs/transport.md), against a real redis-server: the engine is instantiated from bytes (no
// fs in the module), two worker caches share entries and revalidations through the transport,
// and they read and write the same Redis data as the Node handlers.
import assert from 'node:assert/strict'
import { AsyncLocalStorage } from 'node:async_hooks'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createClient, ErrorReply, RESP_TYPES } from 'redis'

import { createCache, defaults } from 'fleetcache/worker'
import { createUseCacheHandler, close } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { assertServedStale, useCacheEntry } from './helpers.mjs'

const wasmBytes = fs.readFileSync(new URL(import.meta.resolve('fleetcache/wasm')))

let redis
let client
let logDir
const sent = []

// A transport as a host would write one (here over node-redis; in a worker, over fetch or a
// socket): bulk strings as Uint8Array, error replies with code ERR_REDIS_REPLY.
const transport = {
  async send(argv, { kind, timeoutMs }) {
    sent.push({ command: String(argv[0]), kind, timeoutMs })
    try {
      return await client.sendCommand(argv.map((a) => (typeof a === 'string' ? a : Buffer.from(a))))
    } catch (err) {
      if (err instanceof ErrorReply)
        throw Object.assign(new Error(err.message), { code: 'ERR_REDIS_REPLY' })
      throw err
    }
  },
}

const now = () => Date.now()
const entry = (value, tags = ['products'], timestamp = now()) =>
  useCacheEntry(value, { tags, timestamp })
const text = async (e) => new Response(e.value).text()
/** An entry stale 9 s ago (revalidate 1 s, stamped 10 s ago), inside its expire. */
const staleEntry = (value) =>
  useCacheEntry(value, { tags: ['products'], timestamp: now() - 10_000, revalidate: 1 })

/**
 * The shared transport, telling when a lease request it carried was answered "held by
 * another" (the lease script's 0): the read then follows the holder, or serves.
 */
function watched() {
  let lost
  const w = {
    held: false,
    lost: new Promise((resolve) => {
      lost = resolve
    }),
    transport: {
      async send(argv, options) {
        const reply = await transport.send(argv, options)
        if (options.kind === 'write' && /^EVAL/.test(String(argv[0])) && reply === 0) {
          w.held = true
          lost()
        }
        return reply
      },
    },
  }
  return w
}

describe('fleetcache/worker with a host transport', () => {
  before(async () => {
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-worker-'))
    redis = await startRedis({ logDir })
    client = createClient({ url: redis.url }).withTypeMapping({
      [RESP_TYPES.BLOB_STRING]: Buffer,
    })
    await client.connect()
  })

  after(async () => {
    await close()
    await client?.close()
    await redis?.stop()
    fs.rmSync(logDir, { recursive: true, force: true })
  })

  test('two worker caches share entries and revalidations through the transport', async () => {
    const opts = { module: wasmBytes, transport, prefix: 'wt', deploymentId: 'd1' }
    const a = createCache(opts)
    const b = createCache(opts)
    assert.equal(a.storeKind, 'transport')
    // Stamped a second ago: the revalidation below comes after it on any clock reading.
    await a.set('k', entry('from a', ['products'], now() - 1000))
    await b.refreshTags()
    const got = await b.get('k', [])
    assert.ok(got, 'b misses what a stored')
    assert.equal(await text(got), 'from a')
    assert.ok(sent.some((s) => s.command === 'SET' && s.kind === 'write' && s.timeoutMs > 0))
    assert.ok(sent.some((s) => s.command === 'GET' && s.kind === 'read'))

    await a.updateTags(['products'])
    // b learns of it on its next refresh (one round trip), as Next calls refreshTags per request.
    await b.refreshTags()
    assert.equal(await b.get('k', []), undefined, "a's revalidation did not reach b")
    // The first refresh loaded the script with EVAL after NOSCRIPT, or found it: either way
    // tag state went through EVALSHA.
    assert.ok(sent.some((s) => s.command === 'EVALSHA'))
  })

  test('the worker module and the Node handler read each other’s entries', async () => {
    const node = createUseCacheHandler({ redisUrl: redis.url, prefix: 'mix', deploymentId: 'd1' })
    const worker = createCache({ module: wasmBytes, transport, prefix: 'mix', deploymentId: 'd1' })
    await node.set('from-node', Promise.resolve(entry('node wrote this')))
    await worker.refreshTags()
    const w = await worker.get('from-node', [])
    assert.ok(w, 'the worker misses the Node entry')
    assert.equal(await text(w), 'node wrote this')

    await worker.set('from-worker', entry('worker wrote this', ['products'], now() - 1000))
    await node.refreshTags()
    const n = await node.get('from-worker', [])
    assert.ok(n, 'Node misses the worker entry')
    assert.equal(await text(n), 'worker wrote this')

    await worker.updateTags(['products'])
    await node.refreshTags()
    assert.equal(await node.get('from-worker', []), undefined, "the worker's revalidation")
  })
  test('a lease renewal keeps no Node process alive: its wait does not hold the event loop', async () => {
    // A miss with leases on takes the regeneration's lease and renews it while the caller
    // regenerates; a host on Node (Next's edge runtime, a test) must still exit at its end,
    // as the Node handlers' renewals let it (read-io.ts).
    const c = createCache({ module: wasmBytes, transport, prefix: 'wt-renew', deploymentId: 'd1' })
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const idle = timers()
    const leases = sent.length
    assert.equal(await c.get('renewed', []), undefined)
    assert.ok(
      sent.slice(leases).some((s) => s.kind === 'write' && s.command === 'EVALSHA'),
      'the miss took the lease',
    )
    assert.equal(timers(), idle, 'a timer holds the process open while the lease is renewed')
    await c.set('renewed', entry('v'))
  })
  test('with a transport and no way to know the consumer, a stale entry is never handed over as fresh: a follower waits for the holder, as on a miss', async () => {
    // docs/transport.md and docs/single-flight.md: the worker takes leases as the Node handlers
    // do and, where it cannot know what a read is for, takes it to be stored (a prerender, an
    // outer 'use cache' scope): a stale entry handed over as fresh would be baked into it.
    const opts = { module: wasmBytes, transport, prefix: 'wt-lease', deploymentId: 'd1' }
    const a = createCache(opts)
    const w = watched()
    const b = createCache({ ...opts, transport: w.transport })
    await a.set('old', staleEntry('old'))
    assert.equal(
      await a.get('old', []),
      undefined,
      'the first reader takes the lease and, its answer maybe stored, regenerates before it answers',
    )
    const following = b.get('old', [])
    // Or the follower answered without following: the assertions below say how.
    await Promise.race([w.lost, following])
    await a.set('old', entry('regenerated'))
    const got = await following
    assert.ok(got, "the follower regenerated instead of waiting for the holder's write")
    assert.equal(await text(got), 'regenerated', 'the follower got the stale entry as fresh')

    assert.equal(await a.get('new', []), undefined, 'the first reader of a miss regenerates')
    const w2 = watched()
    const c = createCache({ ...opts, transport: w2.transport })
    const waiting = c.get('new', [])
    await Promise.race([w2.lost, waiting])
    await a.set('new', entry('regenerated'))
    const miss = await waiting
    assert.ok(miss, "the second cache regenerated instead of waiting for the holder's write")
    assert.equal(await text(miss), 'regenerated')
  })
  test("with workUnitAsyncStorage, a read Next's rule says serves a response gets a stale entry as fresh while another cache holds its lease (one regeneration)", async () => {
    const workUnits = new AsyncLocalStorage()
    const opts = {
      module: wasmBytes,
      transport,
      prefix: 'wt-serves',
      deploymentId: 'd1',
      workUnitAsyncStorage: workUnits,
    }
    const a = createCache(opts)
    const cases = [
      ['request', { type: 'request' }],
      ['prerender-runtime', { type: 'prerender-runtime' }],
      [
        "a 'use cache' scope whose consumer does not cache (16.4)",
        { type: 'cache', consumerWillServerCache: false },
      ],
    ]
    for (const [name, store] of cases) {
      const key = `old ${name}`
      await a.set(key, staleEntry('old'))
      assertServedStale(
        await workUnits.run({ type: 'request' }, () => a.get(key, [])),
        `${name}: to the first reader of a response, which takes the lease`,
      )
      const w = watched()
      const b = createCache({ ...opts, transport: w.transport })
      const asFresh = await workUnits.run(store, () => b.get(key, []))
      assert.ok(w.held, `${name}: the follower found no lease held`)
      assert.ok(asFresh, `${name}: the follower misses the stale entry`)
      assert.equal(await text(asFresh), 'old')
      assert.ok(
        asFresh.timestamp + asFresh.revalidate * 1000 > now(),
        `${name}: the follower, the lease held by the first, got it stale, not as fresh`,
      )
    }
  })
  test('with workUnitAsyncStorage, a prerender, a caching scope, an unknown store type, no store or a getStore that throws never gets a stale entry as fresh: it waits for the holder', async () => {
    const workUnits = new AsyncLocalStorage()
    const cases = [
      ['prerender', () => ({ type: 'prerender' })],
      ['prerender-ppr', () => ({ type: 'prerender-ppr' })],
      ["a 'use cache' scope (before 16.4: no field)", () => ({ type: 'cache' })],
      [
        "a 'use cache' scope whose consumer caches (16.4)",
        () => ({ type: 'cache', consumerWillServerCache: true }),
      ],
      ['unstable_cache', () => ({ type: 'unstable-cache' })],
      ['a store type no release had', () => ({ type: 'from-a-later-next' })],
      ['a store without a type', () => ({})],
      // Next 16.2 and later never ask the handler outside a work unit: the storage given is
      // not the one Next runs in.
      ['no work-unit store', () => undefined],
      [
        'a getStore that throws',
        () => {
          throw new Error('not in this context')
        },
      ],
    ]
    const base = { module: wasmBytes, transport, prefix: 'wt-caches', deploymentId: 'd1' }
    const a = createCache({ ...base, workUnitAsyncStorage: workUnits })
    for (const [name, getStore] of cases) {
      const key = `old ${name}`
      await a.set(key, staleEntry('old'))
      assertServedStale(
        await workUnits.run({ type: 'request' }, () => a.get(key, [])),
        `${name}: to the first reader of a response, which takes the lease`,
      )
      const w = watched()
      const b = createCache({ ...base, transport: w.transport, workUnitAsyncStorage: { getStore } })
      const following = b.get(key, [])
      await Promise.race([w.lost, following])
      await a.set(key, entry('regenerated'))
      const got = await following
      assert.ok(got, `${name}: the follower regenerated instead of waiting for the holder`)
      assert.equal(await text(got), 'regenerated', `${name}: the follower got the stale entry`)
    }
  })
  test('an outage reports its opening once to onError, nothing for its failed probes, and its closing once to onLog, as the Node handlers log them', async () => {
    // The host's transport to a Redis that is gone: every command refused at once, for want of
    // a connection. The clock is the test's: the breaker's open time passes when it says so.
    const clock = { t: Date.now() }
    let down = false
    let attempts = 0
    const flaky = {
      send(argv, options) {
        if (!down) return transport.send(argv, options)
        attempts += 1
        return Promise.reject(
          Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
        )
      },
    }
    const c = createCache({
      module: wasmBytes,
      transport: flaky,
      prefix: 'wt-outage',
      deploymentId: 'd1',
      now: () => clock.t,
    })
    const reports = []
    c.onError = (m) => reports.push(m)
    // The lines that report no failure; debug is off, so info lines only.
    const infos = []
    c.onLog = (level, m) => infos.push(`${level}: ${m}`)
    const { breakerMaxOpenMs } = defaults()
    const closed = () => c.engine.breakerState(clock.t) === 0
    const trips = () => c.engine.breakerTrips
    await c.set('k', entry('v', ['products'], clock.t))
    assert.equal(await text(await c.get('k', [])), 'v')
    const outage = async (n) => {
      down = true
      const leading = reports.length
      const quiet = infos.length
      while (closed()) assert.equal(await c.get('k', []), undefined)
      // The failures that opened it, the breaker closed when each was sent, are reported.
      const opening = reports.slice(leading)
      assert.ok(
        opening.some((m) => /get failed, treated as a miss: .*ECONNREFUSED/.test(m)),
        opening.join('\n'),
      )
      assert.deepEqual(
        opening
          .filter((m) => /redis circuit open/.test(m))
          .map(
            (m) => /^redis circuit open after a failure of \S+ \(opened (.*) so far\)/.exec(m)?.[1],
          ),
        [n],
        `one report of the opening:\n${opening.join('\n')}`,
      )
      const opened = reports.length
      // Probes, each once the breaker's open time is up: a read's, a write's, a tag refresh's
      // and, after a revalidation queued meanwhile, whatever the next refresh sends first.
      const probes = [
        () => c.get('k', []),
        () => c.set('w', entry('w', ['products'], clock.t)),
        () => c.refreshTags(),
        () => c.updateTags(['products']),
        () => c.refreshTags(),
      ]
      for (const probe of probes) {
        clock.t += breakerMaxOpenMs
        const before = attempts
        await probe()
        assert.equal(attempts, before + 1, 'the probe: one command let through, and failed')
      }
      // More revalidations while the breaker is open (none a probe): queued behind it.
      for (const tag of ['later-1', 'later-2', 'later-3']) await c.updateTags([tag])
      assert.equal(trips(), Number(/\d+/.exec(n)?.[0] ?? 1), 'a failed probe is not an opening')
      // The first revalidation made during the outage says it is queued, and that the later
      // ones are debug lines; nothing else is reported. Before: one report per revalidation.
      const queued = reports
        .slice(opened)
        .filter((m) => /^revalidation of .* applied on this instance;/.test(m))
      assert.equal(queued.length, 1, `reported while the breaker was open:\n${queued.join('\n')}`)
      assert.match(
        queued[0],
        /^revalidation of products .*; while Redis does not answer, the revalidations made after it are logged at debug/,
      )
      assert.deepEqual(
        reports
          .slice(opened)
          .filter((m) => !/^revalidation of products .*applied on this instance;/.test(m)),
        [],
        `reported while the breaker was open:\n${reports.slice(leading).join('\n')}`,
      )
      down = false
      for (let i = 0; i < 5 && !closed(); i++) {
        clock.t += breakerMaxOpenMs
        await c.refreshTags()
      }
      assert.ok(closed(), 'a probe that succeeds closes the breaker')
      // The replay the successful refresh started sends one command per queued revalidation,
      // past that refresh's end, each a real round trip: waited for, up to 10 s (a count of
      // event-loop turns ran out under load before the replies came).
      const until = performance.now() + 10_000
      while (c.engine.outboxLength > 0 && performance.now() < until) {
        await new Promise((resolve) => setImmediate(resolve))
      }
      assert.equal(c.engine.outboxLength, 0, 'the queued revalidations were sent')
      // The operator who saw the opening sees the outage end: the closing once, as Node's
      // info line, and the queued revalidation's replay; no failure among them.
      assert.deepEqual(
        infos.slice(quiet),
        [
          'info: redis circuit closed: Redis answers again, cache reads and writes resume',
          'info: redis is back: sent 4 queued revalidation(s), in order; 4 were made while it did not answer',
        ],
        `onLog during the outage:\n${infos.slice(quiet).join('\n')}`,
      )
      assert.deepEqual(
        reports.filter((m) => /circuit closed|redis is back/.test(m)),
        [],
        'no line of recovery is passed to onError',
      )
    }
    await outage('once')
    await outage('2 times')
  })
})
