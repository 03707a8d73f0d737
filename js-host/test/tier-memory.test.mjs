// The in-process tier's byte budget is a memory bound, against a real
// redis-server: what the tier keeps is measured as the ArrayBuffer memory it retains after a
// full garbage collection, not as the bytes the engine counts.
//
// A reply node-redis hands over is a view into the socket's read chunk (up to 64 KiB, shared
// with every reply pipelined with it), and a small copy made with Buffer.from lands in one of
// Node's 8 KiB pool slabs: either way one small entry can keep far more than its own size.
//
// Needs `node --expose-gc` (the Makefile's test-js runs this file with it).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { close, createUseCacheHandler } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { bytes, memoryAfterGc, useCacheEntry } from './helpers.mjs'

const BUDGET = 400 * 1024
/** What "within the budget" allows: the bound. */
const SLACK = 1.2

let redis

before(async () => {
  assert.equal(
    typeof globalThis.gc,
    'function',
    'run this file with node --expose-gc (make test-js does)',
  )
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-tier-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

let seq = 0
/** A handler with a runtime of its own (the odd connect budget keeps runtimes apart). */
function handler(memoryBytes) {
  seq += 1
  return createUseCacheHandler({
    redisUrl: redis.url,
    prefix: 'tiermem',
    deploymentId: 'd1',
    memoryBytes,
    leases: false,
    connectTimeoutMs: 3000 + seq,
    // Thousands of reads at once on a busy machine: none may time out and leave a gap.
    readTimeoutMs: 10_000,
  })
}

/** ArrayBuffer memory of the process after full collections. */
async function retained() {
  return (await memoryAfterGc()).arrayBuffers
}

/** Writes `entries` ([key, size] pairs) through a handler without a tier, 32 at a time. */
async function write(entries) {
  const writer = handler(0)
  for (let i = 0; i < entries.length; i += 32) {
    await Promise.all(
      entries.slice(i, i + 32).map(([key, size]) => {
        const payload = Buffer.alloc(size, key.charCodeAt(key.length - 1))
        return writer.set(key, Promise.resolve(useCacheEntry(payload, { tags: ['tm'] })))
      }),
    )
  }
}

/** Reads `keys` at once through `h`, each to the end of its stream, as Next does. */
async function readAll(h, keys) {
  const got = await Promise.all(keys.map((k) => h.get(k, [])))
  let n = 0
  for (const e of got) if (e !== undefined) n += (await bytes(e.value)).length
  return n
}

/** Runs `fn(i)` for i in [0, n), `size` at once. */
async function inWaves(n, size, fn) {
  for (let i = 0; i < n; i += size) {
    await Promise.all(Array.from({ length: Math.min(size, n - i) }, (_, j) => fn(i + j)))
  }
}

/** A deterministic pseudo-random sequence (the workloads are the same on every run). */
function lcg(seed) {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

/**
 * Runs `workload` against a fresh handler with the tier budget, and returns the ArrayBuffer
 * memory the process retains afterwards over what it retained before, and the bytes the
 * engine counted (from `stats()`, summed over runtimes, so taken as a difference too).
 */
async function measure(workload) {
  const h = handler(BUDGET)
  // Connected and warm (tag state loaded) before the baseline.
  await h.refreshTags()
  await readAll(h, ['absent'])
  const before = await retained()
  await workload(h)
  const after = await retained()
  return after - before
}

describe('the in-process tier retains at most its budget', () => {
  test('pages read 40 entries of 1 KB at once, one hot entry per page', async (t) => {
    const PAGES = 60
    const PER_PAGE = 40
    const ROUNDS = 4
    // Pages at once: 480 reads in flight, within the transport's queue bound.
    const WAVE = 12
    const COLD = 1200
    await write([
      ...Array.from({ length: PAGES }, (_, p) => [`hot-${p}`, 1024]),
      ...Array.from({ length: COLD }, (_, i) => [`cold-${i}`, 1000 + (i % 48)]),
    ])
    const next = lcg(14)
    const held = await measure(async (h) => {
      for (let r = 0; r < ROUNDS; r++) {
        // Every page at once; each page's reads at once (pipelined on one connection). A
        // page's hot entry is read again after its other entries, as the next request of
        // that page does: hot entries stay in the tier while the others churn through.
        await inWaves(PAGES, WAVE, async (p) => {
          const cold = Array.from(
            { length: PER_PAGE - 1 },
            () => `cold-${Math.floor(next() * COLD)}`,
          )
          await readAll(h, [`hot-${p}`, ...cold])
          await readAll(h, [`hot-${p}`])
        })
      }
    })
    t.diagnostic(`retained ${held} bytes, ${(held / BUDGET).toFixed(2)}x the budget`)
    assert.ok(
      held <= BUDGET * SLACK,
      `retained ${(held / 1024).toFixed(0)} KiB for a ${BUDGET / 1024} KiB budget (${(held / BUDGET).toFixed(1)}x)`,
    )
  })

  test('a mix of sizes: small entries read alongside large ones', async (t) => {
    // Small entries kept by the tier, each read in one burst with a value of up to 300 KB
    // (under the budget; the tier keeps some of them too).
    const SMALL = 120
    const sizes = [64, 200, 700, 3000, 9000]
    const next = lcg(7)
    const entries = [
      ...Array.from({ length: SMALL }, (_, i) => [`small-${i}`, sizes[i % sizes.length]]),
      ...Array.from({ length: 24 }, (_, i) => [
        `large-${i}`,
        20_000 + Math.floor(next() * 280_000),
      ]),
    ]
    await write(entries)
    const held = await measure(async (h) => {
      for (let i = 0; i < SMALL; i += 4) {
        const large = `large-${Math.floor(next() * 24)}`
        await readAll(h, [
          `small-${i}`,
          `small-${i + 1}`,
          large,
          `small-${i + 2}`,
          `small-${i + 3}`,
        ])
        // The small ones again: used more often than the large, they stay.
        await readAll(
          h,
          Array.from({ length: i + 4 }, (_, j) => `small-${j}`),
        )
      }
    })
    t.diagnostic(`retained ${held} bytes, ${(held / BUDGET).toFixed(2)}x the budget`)
    assert.ok(
      held <= BUDGET * SLACK,
      `retained ${(held / 1024).toFixed(0)} KiB for a ${BUDGET / 1024} KiB budget (${(held / BUDGET).toFixed(1)}x)`,
    )
  })
})
