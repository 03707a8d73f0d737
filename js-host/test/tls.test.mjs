// TLS (issue 8): the handler talks `rediss://` to a redis-server that only listens with TLS on
// loopback, trusting a CA the test made with openssl (option `tls: { ca }` and
// FLEETCACHE_REDIS_CA_FILE); without that CA the connection is refused and reads are misses.
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { close, createUseCacheHandler, optionsFromEnv } from '../esm/index.mjs'
import { freePort } from '../../tests/support/ports.mjs'
import { stopChild, tailFile, trackChild, waitFor } from '../../tests/support/util.mjs'
import { now, text, useCacheEntry } from './helpers.mjs'

let dir
let server
let port
let seq = 0

function openssl(...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 20_000 })
}

/** A CA and a server certificate for 127.0.0.1 signed by it. */
function makeCertificates() {
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=fleetcache test CA',
  )
  openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    '/CN=127.0.0.1',
  )
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n')
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-extfile',
    'san.ext',
  )
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-tls-'))
  makeCertificates()
  port = await freePort()
  const logFile = path.join(dir, 'redis.log')
  const out = fs.openSync(logFile, 'a')
  const child = trackChild(
    spawn(
      process.env.REDIS_SERVER || 'redis-server',
      [
        '--port',
        '0',
        '--tls-port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--tls-cert-file',
        path.join(dir, 'server.crt'),
        '--tls-key-file',
        path.join(dir, 'server.key'),
        '--tls-ca-cert-file',
        path.join(dir, 'ca.crt'),
        '--tls-auth-clients',
        'no',
        '--save',
        '',
        '--appendonly',
        'no',
      ],
      { stdio: ['ignore', out, out] },
    ),
  )
  fs.closeSync(out)
  server = child
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null)
          throw Object.assign(new Error('redis-server exited'), { fatal: true })
        return /Ready to accept connections/.test(tailFile(logFile, 50))
      },
      { timeoutMs: 10_000, intervalMs: 50, what: 'redis-server with TLS', stopOn: (e) => e.fatal },
    )
  } catch (err) {
    throw new Error(`${err.message}\n${tailFile(logFile, 20)}`, { cause: err })
  }
})

after(async () => {
  await close()
  await stopChild(server, { termTimeoutMs: 5000 })
})

const entry = (value) => useCacheEntry(value, { tags: ['tls'] })

function options(extra = {}) {
  seq += 1
  return {
    redisUrl: `rediss://127.0.0.1:${port}`,
    prefix: 'tlstest',
    deploymentId: 'd1',
    memoryBytes: 0,
    leases: false,
    connectTimeoutMs: 2000 + seq,
    ...extra,
  }
}

describe('TLS (rediss://) with a CA file', () => {
  test('set and get across two instances, and a tag expiry', async () => {
    const ca = fs.readFileSync(path.join(dir, 'ca.crt'))
    const a = createUseCacheHandler(options({ tls: { ca } }))
    // The environment's way: FLEETCACHE_REDIS_CA_FILE.
    const fromEnv = optionsFromEnv({
      REDIS_URL: `rediss://127.0.0.1:${port}`,
      FLEETCACHE_REDIS_CA_FILE: path.join(dir, 'ca.crt'),
      FLEETCACHE_DEPLOYMENT_ID: 'd1',
    })
    assert.match(fromEnv.tls.ca, /BEGIN CERTIFICATE/)
    const b = createUseCacheHandler(options({ tls: fromEnv.tls }))
    await a.set('k1', Promise.resolve(entry('over tls')))
    await b.refreshTags()
    const got = await b.get('k1', [])
    assert.ok(got, 'b reads what a wrote')
    assert.equal(await text(got.value), 'over tls')
    await a.updateTags(['tls'])
    await b.refreshTags()
    assert.equal(await b.get('k1', []), undefined)
  })

  test('a CA file that cannot be read is a configuration error naming the variable', () => {
    assert.throws(
      () => optionsFromEnv({ FLEETCACHE_REDIS_CA_FILE: path.join(dir, 'missing.crt') }),
      /FLEETCACHE_REDIS_CA_FILE/,
    )
  })

  test('without the CA the server is not trusted: reads are quick misses', async () => {
    const c = createUseCacheHandler(options())
    const t0 = now()
    const errors = []
    const { error } = console
    console.error = (...a) => errors.push(a.join(' '))
    try {
      assert.equal(await c.get('k1', []), undefined)
    } finally {
      console.error = error
    }
    assert.ok(now() - t0 < 3000)
    assert.ok(
      errors.some((l) => /certificate/i.test(l)),
      `a certificate error among:\n${errors.join('\n')}`,
    )
  })
})
