// The rule both builds apply to Next's work-unit store (src/consumer-rule.ts): whether a read's
// answer will be stored in a server cache, so that it is never handed a stale entry. Next
// 16.4's `willConsumerServerCache` by the store's type, for every 16.x; where the store cannot
// be read, taken to be stored. The Node handlers take a read outside any work unit to serve a
// response (their singular handler's response cache reads pages so); the workers entry does not.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

const require = createRequire(import.meta.url)
const { willServerCache } = require('../dist/consumer-rule.js')

const storage = (store) => ({ getStore: () => store })
const throwing = (store, field) =>
  Object.defineProperty(store, field, {
    get() {
      throw new Error(`${field} cannot be read`)
    },
  })

test("every store type Next has, judged as Next 16.5's willConsumerServerCache judges it", () => {
  const cases = [
    [{ type: 'request' }, false],
    [{ type: 'prerender-runtime' }, false],
    [{ type: 'validation-client' }, false],
    [{ type: 'build-time-generator' }, false],
    [{ type: 'prerender' }, true],
    [{ type: 'prerender-client' }, true],
    [{ type: 'prerender-legacy' }, true],
    [{ type: 'prerender-ppr' }, true],
    [{ type: 'cache', consumerWillServerCache: true }, true],
    [{ type: 'cache', consumerWillServerCache: false }, false],
    [{ type: 'private-cache', consumerWillServerCache: false }, false],
    [{ type: 'unstable-cache', consumerWillServerCache: false }, false],
    // Releases before 16.4 have no such field: their scopes are taken to cache.
    [{ type: 'cache' }, true],
    [{ type: 'private-cache' }, true],
    [{ type: 'unstable-cache' }, true],
    // A type no release had, none, a store that is not an object.
    [{ type: 'from-a-later-next' }, true],
    [{}, true],
    [{ type: 7 }, true],
    ['request', true],
  ]
  for (const [store, caches] of cases) {
    assert.equal(willServerCache(storage(store)), caches, JSON.stringify(store))
  }
})

test('outside any work unit, the rule says neither: each build decides', () => {
  assert.equal(willServerCache(storage(undefined)), undefined)
  assert.equal(willServerCache(storage(null)), undefined)
})

test('where the store cannot be read, taken to be stored', () => {
  assert.equal(willServerCache(null), true, 'no storage')
  const failing = {
    getStore() {
      throw new Error('not in this context')
    },
  }
  assert.equal(willServerCache(failing), true, 'a getStore that throws')
  assert.equal(willServerCache(storage(throwing({}, 'type'))), true, 'a type that throws')
  const scope = throwing({ type: 'cache' }, 'consumerWillServerCache')
  assert.equal(willServerCache(storage(scope)), true, "a scope's field that throws")
  const revoked = Proxy.revocable({}, {})
  revoked.revoke()
  assert.equal(willServerCache(storage(revoked.proxy)), true, 'a revoked Proxy')
})

test('a field the type does not use is not read', () => {
  // Next's rule reads `consumerWillServerCache` of cache scopes only: a request's store serves
  // whatever that field holds or does.
  const request = throwing({ type: 'request' }, 'consumerWillServerCache')
  assert.equal(willServerCache(storage(request)), false)
  assert.equal(willServerCache(storage({ type: 'request', consumerWillServerCache: true })), false)
  assert.equal(
    willServerCache(storage({ type: 'prerender', consumerWillServerCache: false })),
    true,
  )
})
