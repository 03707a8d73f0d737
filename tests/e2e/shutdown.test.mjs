// End to end: `close()` runs to its end when a `next start` server is stopped with SIGTERM, with
// the shutdown recipe of docs/operating.md ("Shutdown"): examples/next-app/instrumentation.ts and
// the instrumentation-node.ts it imports, switched on by EXAMPLE_CLOSE_ON_SIGNALS=1, with
// NEXT_MANUAL_SIG_HANDLE=1 in the server's environment. Redis is paused (SIGSTOP) while a route
// handler revalidates, so the revalidation is queued in the instance's outbox; Redis is resumed
// (SIGCONT) and the server sent SIGTERM at once: close() sends the revalidation (fleetcache's "sent
// 1 queued revalidation(s)" line, logged between the handler's line before close() and its line
// after it), and it is in Redis's tag state after the exit. The same for the standalone build's
// server.js, which starts Next's server as `next start` does. Redis's scripts are flushed before
// the pause: the write that timed out sits in Redis's socket buffer and runs once Redis is resumed,
// and had Redis the script, it would put the revalidation into the tag state whether or not close()
// sent anything.
//
// Without NEXT_MANUAL_SIG_HANDLE, Next's own SIGTERM handler (next/dist/server/lib/start-server.js)
// exits the process once its HTTP server is closed, before close() is done: the last test shows
// it with the same handler installed anyway (EXAMPLE_CLOSE_ON_SIGNALS=force).
//
// EXAMPLE_CLOSE_ON_SIGNALS=after-next keeps Next's handler and holds its process.exit until
// close() is done: the revalidation is sent by close() after Next's drain (under `next start` and
// the standalone server.js, whose `cleanup` handler the recipe finds alike), and a request in
// flight at SIGTERM is answered in full before the exit. With NEXT_MANUAL_SIG_HANDLE=1, a SIGTERM
// listener of another module installed before register() (by `node --require`) is not taken for
// Next's handler: the recipe warns that it found none.
//
// The builds (`next build` and the standalone one) compile the recipes into Next's Edge build as
// well as its Node.js one: their output must hold no warning that a Node.js API is not supported
// in the Edge Runtime, which the recipes' process.on / process.exit / process.listeners draw
// unless they sit in a module imported only when NEXT_RUNTIME is 'nodejs' (instrumentation.ts
// importing instrumentation-node.ts, as Next's docs put runtime-specific code).
//
// Run: node --test --test-concurrency=1 tests/e2e/shutdown.test.mjs   (after `make pack`)
// Env: FLEETCACHE_TARBALL, E2E_KEEP_LOGS=1, E2E_NEXT_VERSION.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { failureReport, tearDown } from '../support/diagnostics.mjs'
import { makeLogDir, prepareStandalone, startInstance } from '../support/fleet.mjs'
import { tagRecord } from '../support/observe.mjs'
import { startOrigin } from '../support/origin.mjs'
import { startRedis } from '../support/redis.mjs'
import { waitFor, waitForExit } from '../support/util.mjs'

const KEEP_LOGS = process.env.E2E_KEEP_LOGS === '1'
const TAG = 'products'
const CLOSED_LINE = /\[example\] fleetcache closed in \d+ ms/
const CLOSING_LINE = '[example] SIGTERM: closing fleetcache'
const DRAINED_LINE = '[example] Next drained: closing fleetcache'
// fleetcache's line when its queue of revalidations is sent (tag-sync.ts, replay).
const SENT_LINE = /sent 1 queued revalidation\(s\)/
// The after-next recipe's warning when it finds no SIGTERM handler of Next's.
const NO_HANDLER_LINE = /Next installed no SIGTERM handler/

// Turbopack's warning for a Node.js API in code the Edge build holds ("A Node.js API is used
// (process.on at line: 47) which is not supported in the Edge Runtime.").
const EDGE_WARNING = /Edge Runtime/

let logDir
/** What each build printed: [what, file], read by the first test. */
let buildOutputs
/** The standalone build's server.js (output: 'standalone'), which starts Next as `next start` does. */
let serverJs
let redis
let origin
const instances = []

const report = failureReport(() => ({ logDir, origin, redis: [redis], instances }))

const logOf = (inst) => fs.readFileSync(inst.logFile, 'utf8')

/**
 * Asserts that fleetcache logged that it sent the queued revalidation after the line `before`
 * (the handler's, before close()) and before CLOSED_LINE (after close()): close() sent it.
 */
function assertSentByClose(inst, before) {
  const log = logOf(inst)
  const from = log.indexOf(before)
  assert.ok(from >= 0, `no "${before}" line:\n${inst.logTail(40)}`)
  const after = log.slice(from)
  const sent = after.search(SENT_LINE)
  assert.ok(
    sent >= 0,
    `no "${SENT_LINE.source}" line after "${before}": close() did not send the queued revalidation\n${inst.logTail(40)}`,
  )
  const closed = after.search(CLOSED_LINE)
  assert.ok(
    closed > sent,
    `"${SENT_LINE.source}" is not followed by "${CLOSED_LINE.source}"\n${inst.logTail(40)}`,
  )
}

/**
 * Starts an instance with `env`, pauses Redis while it revalidates TAG (queued: the warning that
 * says so is in its log), then resumes Redis and sends the instance SIGTERM in the same tick.
 * Resolves with { since, code, signal } once it exited (bounded).
 */
async function revalidateDuringOutageThenStop(name, env, { standalone = false, inFlight } = {}) {
  const inst = await startInstance({
    name,
    ...(standalone ? { serverJs } : {}),
    env: {
      REDIS_URL: redis.url,
      ORIGIN_URL: origin.url,
      // One write budget of 300 ms for the revalidation to fail (queued), and for close() to
      // send it.
      FLEETCACHE_WRITE_TIMEOUT_MS: '300',
      ...env,
    },
    logDir,
  })
  instances.push(inst)
  await inst.getData('/products?list=shutdown')
  // A request still in flight at SIGTERM (its origin answer held back): started and seen by the
  // origin before Redis is paused, so its read of Redis is done by then.
  const pending = inFlight === undefined ? undefined : inFlight(inst)
  if (pending !== undefined) {
    pending.result.catch(() => undefined)
    await waitFor(() => origin.calls(pending.originName) > 0, {
      timeoutMs: 15_000,
      intervalMs: 50,
      what: `the origin to be asked for ${pending.originName}`,
    })
  }
  const queued = new RegExp(
    `revalidation of .*${TAG}.* applied on this instance; .*so it is queued`,
  )
  // Redis forgets its scripts: the update that times out while Redis is paused stays in Redis's
  // socket buffer and runs once Redis is resumed, but as an EVALSHA it then fails (NOSCRIPT), so
  // only a later attempt, which loads the script, can write the revalidation. Without the flush,
  // a Redis that ran the script before (any Redis in use) applied it whether or not close() sent
  // anything.
  await redis.command('SCRIPT', 'FLUSH')
  process.kill(redis.pid, 'SIGSTOP')
  let since
  try {
    since = Date.now()
    await inst.call(`/api/expire?tag=${TAG}`)
    await waitFor(() => queued.test(logOf(inst)), {
      timeoutMs: 15_000,
      intervalMs: 50,
      what: `${name} to log that the revalidation of ${TAG} is queued`,
    })
  } finally {
    process.kill(redis.pid, 'SIGCONT')
  }
  inst.child.kill('SIGTERM')
  const exited = await waitForExit(inst.child, 30_000)
  assert.ok(exited, `${name} did not exit within 30 s of SIGTERM\n${inst.logTail(40)}`)
  return {
    inst,
    since,
    code: inst.child.exitCode,
    signal: inst.child.signalCode,
    pending: pending?.result,
  }
}

describe('fleetcache e2e: close() at SIGTERM of `next start`', () => {
  before(
    async () => {
      try {
        logDir = makeLogDir('fleetcache-shutdown-')
        // The regular build (`next start`) and the standalone one.
        const standalone = await prepareStandalone({ logDir })
        serverJs = standalone.serverJs
        buildOutputs = [
          ['next build', standalone.app.buildOutput],
          ["next build, output: 'standalone'", standalone.buildOutput],
        ]
        redis = await startRedis({ logDir })
        origin = await startOrigin()
      } catch (err) {
        report.failed = true
        throw err
      }
    },
    { timeout: 900_000 },
  )

  after(async () => {
    await tearDown({
      tag: 'shutdown',
      logDir,
      failed: report.failed,
      keep: KEEP_LOGS,
      instances,
      services: [origin, redis],
    })
  })

  test(
    'the builds of the example, with the recipes in its instrumentation, print no "Edge Runtime" warning',
    report.wrap(async () => {
      for (const [what, file] of buildOutputs) {
        const lines = fs
          .readFileSync(file, 'utf8')
          .split('\n')
          .filter((l) => EDGE_WARNING.test(l))
        assert.deepEqual(
          lines,
          [],
          `${what} (${file}) warned ${lines.length} time(s) about the Edge Runtime`,
        )
      }
    }),
  )

  for (const [how, standalone] of [
    ['`next start`', false],
    ['standalone server.js', true],
  ]) {
    test(
      `${how} with NEXT_MANUAL_SIG_HANDLE=1: the documented handler sends the queued revalidation and logs close() done before it exits`,
      { timeout: 120_000 },
      report.wrap(async () => {
        const { inst, since, code, signal } = await revalidateDuringOutageThenStop(
          standalone ? 'recipe-standalone' : 'recipe',
          { EXAMPLE_CLOSE_ON_SIGNALS: '1', NEXT_MANUAL_SIG_HANDLE: '1' },
          { standalone },
        )
        const log = logOf(inst)
        assert.ok(log.includes(CLOSING_LINE), `no "${CLOSING_LINE}" line:\n${inst.logTail(40)}`)
        assert.match(
          log,
          CLOSED_LINE,
          `close() did not finish before the exit:\n${inst.logTail(40)}`,
        )
        assertSentByClose(inst, CLOSING_LINE)
        assert.equal(
          code,
          143,
          `exit code ${code} (signal ${signal}), expected 143 (128 + SIGTERM)`,
        )
        const record = await tagRecord(redis, TAG)
        assert.ok(
          record !== null && record.expired >= since,
          `Redis's tag state lacks the revalidation of ${TAG} issued at ${since}: ${JSON.stringify(record)}\n${inst.logTail(40)}`,
        )
      }),
    )
  }

  // The standalone server.js calls the same startServer, from the traced copy of Next: the
  // recipe finds the same `cleanup` there.
  for (const [how, standalone] of [
    ['`next start`', false],
    ['standalone server.js', true],
  ]) {
    test(
      `after-next, ${how}: Next's handler drains, close() sends the queued revalidation before Next's process.exit is made, with Next's code`,
      { timeout: 120_000 },
      report.wrap(async () => {
        const { inst, since, code, signal } = await revalidateDuringOutageThenStop(
          standalone ? 'after-next-standalone' : 'after-next',
          { EXAMPLE_CLOSE_ON_SIGNALS: 'after-next' },
          { standalone },
        )
        const log = logOf(inst)
        assert.doesNotMatch(log, NO_HANDLER_LINE, inst.logTail(40))
        assert.match(
          log,
          CLOSED_LINE,
          `close() did not finish before the exit:\n${inst.logTail(40)}`,
        )
        assertSentByClose(inst, DRAINED_LINE)
        assert.equal(code, 143, `exit code ${code} (signal ${signal}), expected Next's 143`)
        const record = await tagRecord(redis, TAG)
        assert.ok(
          record !== null && record.expired >= since,
          `Redis's tag state lacks the revalidation of ${TAG} issued at ${since}: ${JSON.stringify(record)}\n${inst.logTail(40)}`,
        )
      }),
    )
  }

  test(
    'after-next: a request in flight at SIGTERM is answered in full before close() and the exit',
    { timeout: 120_000 },
    report.wrap(async () => {
      const list = 'shutdown-slow'
      origin.delay(`products-${list}`, 3_000)
      try {
        const { inst, code, signal, pending } = await revalidateDuringOutageThenStop(
          'after-next-inflight',
          { EXAMPLE_CLOSE_ON_SIGNALS: 'after-next' },
          {
            inFlight: (inst) => ({
              originName: `products-${list}`,
              result: inst.getData(`/products?list=${list}`),
            }),
          },
        )
        const data = await pending
        assert.equal(data.name, `products-${list}`, JSON.stringify(data))
        const log = logOf(inst)
        assert.ok(log.includes(DRAINED_LINE), `no "${DRAINED_LINE}" line:\n${inst.logTail(40)}`)
        assert.match(
          log,
          CLOSED_LINE,
          `close() did not finish before the exit:\n${inst.logTail(40)}`,
        )
        assert.equal(code, 143, `exit code ${code} (signal ${signal}), expected Next's 143`)
      } finally {
        origin.delay(`products-${list}`, 0)
      }
    }),
  )

  test(
    "after-next with NEXT_MANUAL_SIG_HANDLE=1 and another module's SIGTERM listener: the recipe finds no handler of Next's and warns",
    { timeout: 120_000 },
    report.wrap(async () => {
      // Installed before register() runs, as 16.5.0's `next start --experimental-cpu-prof` adds
      // its own: a listener that does not end the process, so the instance is killed below.
      const other = path.join(logDir, 'other-sigterm-listener.cjs')
      fs.writeFileSync(other, "process.on('SIGTERM', () => console.log('[other] SIGTERM'))\n")
      const inst = await startInstance({
        name: 'after-next-other-listener',
        env: {
          REDIS_URL: redis.url,
          ORIGIN_URL: origin.url,
          EXAMPLE_CLOSE_ON_SIGNALS: 'after-next',
          NEXT_MANUAL_SIG_HANDLE: '1',
          NODE_OPTIONS: `--require ${other}`,
        },
        logDir,
      })
      instances.push(inst)
      try {
        await inst.getData('/products?list=shutdown')
        await waitFor(() => NO_HANDLER_LINE.test(logOf(inst)), {
          timeoutMs: 15_000,
          intervalMs: 50,
          what: `the recipe to warn that Next installed no SIGTERM handler`,
        })
      } finally {
        inst.child.kill('SIGKILL')
        await waitForExit(inst.child, 30_000)
      }
    }),
  )

  test(
    "without NEXT_MANUAL_SIG_HANDLE, Next's SIGTERM handler exits before close() is done, and the recipe warns at start",
    { timeout: 120_000 },
    report.wrap(async () => {
      const { inst, code, signal } = await revalidateDuringOutageThenStop('next-handles', {
        EXAMPLE_CLOSE_ON_SIGNALS: 'force',
      })
      const log = logOf(inst)
      assert.match(log, /NEXT_MANUAL_SIG_HANDLE is not set/, inst.logTail(40))
      assert.ok(log.includes(CLOSING_LINE), `no "${CLOSING_LINE}" line:\n${inst.logTail(40)}`)
      assert.doesNotMatch(log, CLOSED_LINE, 'close() finished before Next exited')
      assert.equal(signal, null, `${inst.name} was killed by ${signal}`)
    }),
  )
})
