// The deadlines of Redis commands in flight (deadlines.ts): a queue per budget and one timer
// per queue, in place of a timer per command. What a timer per command guaranteed must hold:
// a command that waits past its budget expires, never before it; one settled in time never
// expires; the process is kept alive by a waiting command and by nothing else.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const { Deadlines } = require('../dist/deadlines.js')

/** Resolves with `performance.now()` when `expire` is called. */
function expiring(d, budgetMs) {
  let deadline
  const expired = new Promise((resolve) => {
    deadline = d.add(budgetMs, () => resolve(performance.now()))
  })
  return { deadline, expired }
}

test('a command that waits past its budget expires, not before', async () => {
  const d = new Deadlines()
  const t0 = performance.now()
  const { expired } = expiring(d, 40)
  const at = await expired
  assert.ok(at - t0 >= 40, `expired after ${String(at - t0)} ms, budget 40`)
  assert.equal(d.held, 0)
})

test('commands settled in time never expire; the others do, each at its own deadline', async () => {
  const d = new Deadlines()
  const calls = []
  const handles = []
  // Two budgets interleaved, sent a few ms apart: every odd one settles at once.
  for (let i = 0; i < 20; i++) {
    const budget = i % 4 < 2 ? 30 : 60
    const sentAt = performance.now()
    handles.push(
      d.add(budget, () => {
        calls.push({ i, budget, late: performance.now() - sentAt })
      }),
    )
    if (i % 2 === 1) handles[i].settle()
    await new Promise((r) => setImmediate(r))
  }
  // Sent last with the longest budget: when it expires, every other deadline has passed.
  await expiring(d, 60).expired
  const expired = calls.map((c) => c.i).sort((a, b) => a - b)
  assert.deepEqual(
    expired,
    Array.from({ length: 10 }, (_, k) => 2 * k),
    'exactly the unsettled ones',
  )
  for (const c of calls) assert.ok(c.late >= c.budget, `#${String(c.i)} after ${String(c.late)} ms`)
  // Settling after the expiry changes nothing.
  for (const h of handles) h.settle()
  assert.equal(calls.length, 10)
  assert.equal(d.held, 0)
})

test('settled commands behind one that waits are dropped when it ends, not held forever', async () => {
  const d = new Deadlines()
  const first = expiring(d, 30)
  for (let i = 0; i < 5000; i++) d.add(30, () => assert.fail('settled: never expires')).settle()
  assert.equal(d.held, 5001, 'held behind the waiting head')
  await first.expired
  assert.equal(d.held, 0)
  // Settled in order, nothing is held at all.
  for (let i = 0; i < 5000; i++) d.add(30, () => assert.fail('never')).settle()
  assert.equal(d.held, 0)
})

test('a waiting command keeps the process alive until it expires; settled ones do not', () => {
  const child = fileURLToPath(new URL('../dist/deadlines.js', import.meta.url))
  const run = (body) =>
    spawnSync(
      process.execPath,
      ['-e', `const { Deadlines } = require(${JSON.stringify(child)}); ${body}`],
      { encoding: 'utf8', timeout: 10_000 },
    )
  const waits = run(
    `const t = Date.now(); new Deadlines().add(300, () => console.log('expired', Date.now() - t))`,
  )
  assert.match(waits.stdout, /^expired \d+/, waits.stderr)
  const t = Date.now()
  const settled = run(`new Deadlines().add(5000, () => console.log('expired')).settle()`)
  assert.equal(settled.stdout, '', 'a settled command never expires')
  assert.ok(Date.now() - t < 4000, `the process waited ${String(Date.now() - t)} ms`)
})
