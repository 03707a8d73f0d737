// A wasm trap inside a call that holds the engine borrowed.
//
// The release module aborts on a panic (`panic = "immediate-abort"`; a panic on
// wasm32-unknown-unknown always ended in a trap). A trap unwinds no Rust frame, so the
// wasm-bindgen borrow of every object the call held is never released: the engine stays
// borrowed and every later call that needs it throws "recursive use of an object detected".
// What fleetcache promises then (docs/failures.md, "A trap in the engine"): the process goes on
// serving without its cache (reads are misses, writes are not stored, each with its error line),
// nothing stale is served, and nothing throws out of an event handler or `close()`. No code
// path can panic on purpose, so the trap is provoked the one way JS can
// (engine-trap-child.mjs): a call whose third object is a bogus pointer past the module's
// memory, after the glue borrowed the machine and the engine, which is where a panic inside
// the call (an out-of-memory abort, an index out of range) leaves them. Each scenario runs in
// a process of its own, so that one that ends its process fails only itself.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'

import { startTestRedis } from './helpers.mjs'

const child = fileURLToPath(new URL('./engine-trap-child.mjs', import.meta.url))
let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-js-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await redis?.stop()
})

/** Runs `scenario` in a process of its own: its exit status, results and stderr. */
function scenario(name) {
  const out = spawnSync(process.execPath, [child, name, redis.url, JSON.stringify(redis.options)], {
    encoding: 'utf8',
    timeout: 60_000,
  })
  const line = out.stdout.trim().split('\n').at(-1) ?? ''
  return { status: out.status, result: line.startsWith('{') ? JSON.parse(line) : null, out }
}

describe('a wasm trap with the engine borrowed', () => {
  test('after the trap the handler answers misses, throws nothing and closes', () => {
    const { status, result, out } = scenario('serve')
    assert.equal(status, 0, out.stderr)
    assert.equal(result.before, 'before', 'a hit before the trap')
    assert.equal(result.after, null, 'a write and a read after the trap: a miss')
    // Not recorded anywhere: the caller (a Server Action awaits it) must learn it, not get a
    // resolved promise for a revalidation that reached neither this instance nor Redis.
    assert.match(result.revalidation, /^rejected: .*ERR_ENGINE_FAILED/, 'updateTags rejects')
    assert.match(result.incRevalidation, /^rejected: .*ERR_ENGINE_FAILED/, 'revalidateTag rejects')
    assert.match(`${out.stdout}${out.stderr}`, /revalidation of t not recorded/, 'said')
    assert.equal(result.beforeAgain, null, 'what was cached before is not served either')
    assert.equal(result.closed, true)
    assert.match(`${out.stdout}${out.stderr}`, /recursive use of an object detected/, 'said')
    // What a health check reads: healthy before, failed after (the counts as they were).
    assert.deepEqual(result.statsBefore, { engine: 'ok', hits: 1 })
    assert.deepEqual(result.statsAfter, { engine: 'failed', hits: 1 })
  })

  test('a trap that left a pooled read machine borrowed (not the engine) costs no read', () => {
    const { status, result, out } = scenario('machine')
    assert.equal(status, 0, out.stderr)
    assert.deepEqual(result.ucBefore, ['v', 'v'])
    assert.deepEqual(result.ucAfter, ['v', 'v', 'v'], "'use cache' reads after the trap")
    const f = Buffer.from('f').toString('base64')
    assert.deepEqual(result.incBefore, [f, f, f])
    assert.deepEqual(result.incAfter, [f, f, f], 'singular handler reads after the trap')
    assert.equal(result.engine, 'ok', 'the engine is sound: stats say so')
    assert.equal(result.closed, true)
  })

  test('a tag announcement reaching the trapped engine does not end the process', () => {
    const { status, result, out } = scenario('announce')
    // Today: tagChannelDown throws from the Redis client's error handler: uncaught, exit 1.
    assert.equal(status, 0, `the process died:\n${out.stderr}`)
    assert.equal(result.arrived, true, 'an announcement reached the trapped engine')
    assert.equal(result.closed, true, 'close() finished')
  })

  // The revalidation was recorded here, then the engine trapped before it went to Redis: it
  // never will (the outbox is the dead engine's), and nothing of this instance is served again,
  // so the rest of the fleet never learns it. Next's call must reject, as for a trap before the
  // revalidation was recorded (fixed in 5115e88).
  for (const borrow of ['shared', 'mutable']) {
    test(`a trap (engine left borrowed ${borrow}) while the recorded revalidation is planned for Redis rejects in both handlers`, () => {
      const { status, result, out } = scenario(`replay-${borrow}`)
      assert.equal(status, 0, out.stderr)
      assert.match(result.useCache, /^rejected: ERR_ENGINE_FAILED/, `updateTags:\n${out.stderr}`)
      assert.match(
        result.incremental,
        /^rejected: ERR_ENGINE_FAILED/,
        `revalidateTag:\n${out.stderr}`,
      )
      if (borrow === 'mutable') {
        assert.equal(result.expirationIsNow, true, 'getExpiration answers as revalidated now')
      }
      assert.equal(result.closed, true)
    })
  }
})
