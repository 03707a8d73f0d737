// node-redis's errors as the transport rejects with them (src/redis.ts `commandError`), read as
// tag-sync's warning and the breaker read them: a client closed, a connect that timed out and a
// socket timeout are no connection (`connection: true`, the transport contract's mark), not an
// unknown error a warning would quote as `sending ... failed: <text>`, nor a command's timeout.
// Neither can be made to reach a command through the real transport: fleetcache sends a
// command only on a ready client (else `ClientOfflineError`), its own deadline times commands
// (no node-redis socket timeout is set), and a connect timeout ends node-redis's connection
// attempt, reported to its 'error' listener (tls.test.mjs, "rediss:// to a Redis without TLS").
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

const require = createRequire(import.meta.url)
const {
  ClientClosedError,
  ClientOfflineError,
  ConnectionTimeoutError,
  DisconnectsClientError,
  ErrorReply,
  SocketClosedUnexpectedlyError,
  SocketTimeoutError,
  TimeoutError,
} = require('redis')
const { commandError } = require('../dist/redis.js')

const argv = ['GET', 'k']

test("node-redis's connection errors are no connection: marked, not timeouts nor reply errors", () => {
  for (const err of [
    new ClientClosedError(),
    new DisconnectsClientError(),
    new ConnectionTimeoutError(),
    new SocketTimeoutError(5000),
    new SocketClosedUnexpectedlyError(),
    new ClientOfflineError(),
  ]) {
    const mapped = commandError(err, argv, 300)
    assert.equal(mapped.connection, true, `${err.constructor.name}: ${mapped.message}`)
    assert.equal(mapped.code, undefined, `${err.constructor.name}: no timeout or reply code`)
  }
})

test('a connect that timed out says so; a closed client says the connection closed', () => {
  assert.match(commandError(new ConnectionTimeoutError(), argv, 300).message, /connect timed out/)
  assert.match(commandError(new ClientClosedError(), argv, 300).message, /connection closed/)
  assert.match(commandError(new SocketTimeoutError(5000), argv, 300).message, /connection lost/)
})

test('error replies and command timeouts keep their codes', () => {
  assert.equal(commandError(new ErrorReply('OOM no'), argv, 300).code, 'ERR_REDIS_REPLY')
  const timeout = commandError(new TimeoutError(), argv, 300)
  assert.equal(timeout.code, 'ERR_REDIS_TIMEOUT')
  assert.match(timeout.message, /redis GET took longer than 300 ms/)
})

test('a command refused while not connected names what refused the last attempt', () => {
  const refused = Object.assign(new Error('redis is not connected: Redis refused the login'), {
    connection: true,
    refusal: 'Redis refused the login (WRONGPASS; see <doc>)',
  })
  assert.equal(
    commandError(new ClientOfflineError(), argv, 300, () => refused),
    refused,
  )
})
