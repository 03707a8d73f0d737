// The runtime-neutral worker module (`fleetcache/worker`) with a host-supplied transport
// (docs/transport.md), against a real redis-server: the engine is instantiated from bytes (no
// fs in the module), two worker caches share entries and revalidations through the transport,
// and they read and write the same Redis data as the Node handlers.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createClient, ErrorReply, RESP_TYPES } from 'redis'

import { createCache } from 'fleetcache/worker'
import { createUseCacheHandler, close } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { useCacheEntry } from './helpers.mjs'

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
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

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
    await a.set('k', entry('from a'))
    await b.refreshTags()
    const got = await b.get('k', [])
    assert.ok(got, 'b misses what a stored')
    assert.equal(await text(got), 'from a')
    assert.ok(sent.some((s) => s.command === 'SET' && s.kind === 'write' && s.timeoutMs > 0))
    assert.ok(sent.some((s) => s.command === 'GET' && s.kind === 'read'))

    await sleep(2)
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

    await worker.set('from-worker', entry('worker wrote this'))
    await node.refreshTags()
    const n = await node.get('from-worker', [])
    assert.ok(n, 'Node misses the worker entry')
    assert.equal(await text(n), 'worker wrote this')

    await sleep(2)
    await worker.updateTags(['products'])
    await node.refreshTags()
    assert.equal(await node.get('from-worker', []), undefined, "the worker's revalidation")
  })
})
