// The numeric settings' checks, in options and in FLEETCACHE_* variables: each refuses what is
// out of the setting's range with a message that states that range (not "a positive number"
// for a rate that may not pass 1, or for a budget capped at a minute), and the ranges are the
// core's (`Config::validate`, crates/fleetcache-core/src/config.rs): a value the host's check
// lets through the engine accepts, and one just past it both refuse. No Redis.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { describe, test } from 'node:test'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')
const { resolveOptions, optionsFromEnv } = require('../dist/config.js')
const { RANGES, rangeText } = require('../dist/option-checks.js')

const refusedOption = (opts) => {
  try {
    resolveOptions({ redisUrl: 'redis://127.0.0.1:1', ...opts })
  } catch (err) {
    return err.message
  }
  assert.fail(`${JSON.stringify(opts)} was accepted`)
}

const refusedEnv = (env) => {
  try {
    optionsFromEnv(env)
  } catch (err) {
    return err.message
  }
  assert.fail(`${JSON.stringify(env)} was accepted`)
}

describe('numeric settings state the range they are checked against', () => {
  // One case per kind of bound: open at 0 with a ceiling, a rate in (0, 1], a whole count from
  // 1, a closed floor of 1 ms, a floor of 0 (0 accepted), no ceiling at all.
  test('options', () => {
    for (const [setting, value, why] of [
      ['breakerFailureRate', -1, 'must be a number > 0 and <= 1'],
      ['breakerFailureRate', 0, 'must be a number > 0 and <= 1'],
      ['breakerFailureRate', 1.5, 'must be a number > 0 and <= 1'],
      ['readTimeoutMs', -5, 'must be a number of milliseconds > 0 and <= 60000'],
      ['commandTimeoutMs', 0, 'must be a number of milliseconds > 0 and <= 60000'],
      ['breakerOpenMs', -1, 'must be a number of milliseconds > 0 and <= 3600000'],
      ['maxTtlSeconds', Number.NaN, 'must be a number of seconds > 0 and <= 3153600000'],
      ['defaultTtlSeconds', -1, 'must be a number of seconds > 0'],
      ['outboxCapacity', -1, 'must be a whole number from 1 to 1000000'],
      ['breakerFailures', 0, 'must be a whole number from 1 to 4294967295'],
      ['compressLevel', 10, 'must be a whole number from 1 to 9'],
      ['leaseTtlMs', 0.5, 'must be a number of milliseconds from 1 to 600000'],
      ['leaseWaitMs', -1, 'must be a number of milliseconds from 0 to 60000'],
      ['leaseWaitMs', 60_001, 'must be a number of milliseconds from 0 to 60000'],
    ]) {
      assert.equal(
        refusedOption({ [setting]: value }),
        `${setting}: ${why}, got ${String(value)}`,
        setting,
      )
    }
    // The edges the messages name are accepted.
    for (const opts of [
      { breakerFailureRate: 1 },
      { leaseWaitMs: 0 },
      { leaseTtlMs: 1 },
      { readTimeoutMs: 60_000 },
    ]) {
      assert.doesNotThrow(() => resolveOptions({ redisUrl: 'redis://127.0.0.1:1', ...opts }))
    }
  })

  test('environment variables', () => {
    for (const [name, raw, why] of [
      ['FLEETCACHE_BREAKER_FAILURE_RATE', '-1', 'must be a number > 0 and <= 1'],
      ['FLEETCACHE_BREAKER_FAILURES', '-5', 'must be a whole number from 1 to 4294967295'],
      ['FLEETCACHE_READ_TIMEOUT_MS', '0', 'must be a number of milliseconds > 0 and <= 60000'],
      ['FLEETCACHE_OUTBOX_CAPACITY', '-1', 'must be a whole number from 1 to 1000000'],
      ['FLEETCACHE_LEASE_TTL_MS', 'abc', 'must be a number of milliseconds from 1 to 600000'],
      ['FLEETCACHE_LEASE_WAIT_MS', '-1', 'must be a number of milliseconds from 0 to 60000'],
    ]) {
      assert.equal(refusedEnv({ [name]: raw }), `${name}: ${why}, got "${raw}"`, name)
    }
    // Read as Number() reads it (configuration.md says so): spaces around, an exponent, a
    // base prefix; spaces alone are no number.
    for (const [raw, n] of [
      [' 16 ', 16],
      ['1e3', 1000],
      ['0x10', 16],
      ['0o20', 16],
      ['0b10000', 16],
    ]) {
      assert.equal(optionsFromEnv({ FLEETCACHE_OUTBOX_CAPACITY: raw }).outboxCapacity, n, raw)
    }
    assert.match(refusedEnv({ FLEETCACHE_LEASE_WAIT_MS: ' ' }), /from 0 to 60000, got " "$/)
  })

  test("the ranges are the core's: its bounds, and what the engine accepts and refuses", () => {
    const bounds = wasm.bounds()
    const ceilings = {
      maxEntryBytes: bounds.maxEntryBytes,
      maxTtlSeconds: bounds.maxTtlSeconds,
      readTimeoutMs: bounds.maxBudgetMs,
      writeTimeoutMs: bounds.maxBudgetMs,
      connectTimeoutMs: bounds.maxBudgetMs,
      commandTimeoutMs: bounds.maxBudgetMs,
      breakerWindowMs: bounds.maxBreakerMs,
      breakerOpenMs: bounds.maxBreakerMs,
      breakerMaxOpenMs: bounds.maxBreakerMs,
      outboxCapacity: bounds.maxOutboxCapacity,
      tagMirrorMaxTags: bounds.maxTagMirrorMaxTags,
      leaseTtlMs: bounds.maxLeaseTtlMs,
      leaseWaitMs: bounds.maxLeaseWaitMs,
      compressLevel: bounds.maxCompressLevel,
      breakerFailureRate: 1,
      breakerFailures: 2 ** 32 - 1,
      breakerMinCalls: 2 ** 32 - 1,
      defaultTtlSeconds: Number.POSITIVE_INFINITY,
    }
    assert.deepEqual(
      Object.fromEntries(Object.entries(RANGES).map(([k, r]) => [k, r.max])),
      ceilings,
    )
    const engine = (setting, value) => {
      // commandTimeoutMs is no engine setting: it stands for the read and write budgets.
      const config =
        setting === 'commandTimeoutMs'
          ? { readTimeoutMs: value, writeTimeoutMs: value }
          : setting === 'breakerOpenMs'
            ? { breakerOpenMs: value, breakerMaxOpenMs: Math.max(value, 1000) }
            : setting === 'breakerMaxOpenMs'
              ? { breakerMaxOpenMs: value, breakerOpenMs: Math.min(value, 1000) }
              : { [setting]: value }
      try {
        new wasm.Engine(config).free()
        return true
      } catch {
        return false
      }
    }
    for (const [setting, r] of Object.entries(RANGES)) {
      const lowest = r.minOpen ? r.min + (r.whole ? 1 : 1e-3) : r.min
      const below = r.minOpen ? r.min : r.min - (r.whole ? 1 : 1e-3)
      assert.ok(engine(setting, lowest), `${setting}: ${String(lowest)} (${rangeText(r)})`)
      assert.ok(!engine(setting, below), `${setting}: ${String(below)} (${rangeText(r)})`)
      if (Number.isFinite(r.max)) {
        assert.ok(engine(setting, r.max), `${setting}: ${String(r.max)}`)
        const above = r.max + (r.whole || r.max > 1 ? 1 : 1e-3)
        assert.ok(!engine(setting, above), `${setting}: ${String(above)}`)
      }
    }
  })
})
