// Failure reports for the end-to-end and fault suites. A test body wrapped by `report.wrap` is
// rethrown on failure with the origin's stats, each Redis's keys and each instance's log tail,
// so a red CI run says what the fleet was doing; `report.failed` tells the suite's `after` to
// keep its logs.
import fs from 'node:fs'
import { after, before } from 'node:test'

import { indent } from './util.mjs'

/**
 * `scene()` returns what is running now: `{ logDir, origin, redis: [...], instances: [...] }`
 * (any of them may be missing or undefined).
 */
export function failureReport(scene) {
  const report = {
    failed: false,
    async describe() {
      const { logDir, origin, redis = [], instances = [] } = scene()
      const parts = [`--- diagnostics (logs in ${logDir}) ---`]
      try {
        if (origin) parts.push(origin.describe())
        for (const r of redis) if (r) parts.push(await r.describe())
        for (const inst of instances) {
          if (!inst) continue
          const state =
            inst.running === false
              ? ` exited (code ${inst.child?.exitCode}, signal ${inst.child?.signalCode})`
              : ''
          parts.push(
            `--- ${inst.name} ${inst.url}${state}; last lines of ${inst.logFile} ---\n${inst.logTail(60)}`,
          )
        }
      } catch (e) {
        parts.push(`(diagnostics failed: ${e.message})`)
      }
      return parts.join('\n\n')
    },
    wrap(fn) {
      return async (t) => {
        try {
          await fn(t)
        } catch (err) {
          report.failed = true
          const wrapped = new Error(`${err.message}\n\n${indent(await report.describe(), '  ')}`, {
            cause: err,
          })
          wrapped.stack = `${wrapped.message}\n${err.stack?.split('\n').slice(1).join('\n') ?? ''}`
          throw wrapped
        }
      }
    },
  }
  return report
}

/**
 * A suite's `after`: stops its Next instances first (they hold connections to the rest), then
 * its services (anything with `stop()` or `close()`: Redis, a cluster, the origin), then
 * removes `logDir`, unless a test failed or `keep` (E2E_KEEP_LOGS=1) asks for the logs, which
 * is then said on stderr with `tag`.
 */
export async function tearDown({ tag, logDir, failed, keep, instances = [], services = [] }) {
  await Promise.allSettled(instances.map((i) => i?.stop()))
  await Promise.allSettled(services.map((s) => (s?.stop ? s.stop() : s?.close?.())))
  if (!logDir) return
  if (failed || keep) process.stderr.write(`[${tag}] logs kept in ${logDir}\n`)
  else fs.rmSync(logDir, { recursive: true, force: true })
}

/**
 * The `before` and `after` of a fleet suite, called inside its `describe`: `setUp` starts what
 * `scene()` then returns (as for `failureReport`); its failure, like a failed test wrapped by
 * the returned report's `wrap`, keeps the logs. `after` stops the scene's instances, then its
 * origin and each Redis (`tearDown`), and removes its log directory unless E2E_KEEP_LOGS=1.
 */
export function fleetSuite({ tag, scene, setUp, timeout = 20 * 60_000 }) {
  const report = failureReport(scene)
  before(
    async () => {
      try {
        await setUp()
      } catch (err) {
        report.failed = true
        throw err
      }
    },
    { timeout },
  )
  after(() => {
    const { logDir, origin, redis = [], instances = [] } = scene()
    return tearDown({
      tag,
      logDir,
      failed: report.failed,
      keep: process.env.E2E_KEEP_LOGS === '1',
      instances,
      services: [origin, ...redis],
    })
  })
  return report
}
