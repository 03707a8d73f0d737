// TLS: the handler talks `rediss://` to a redis-server that only listens with TLS on
// loopback, trusting a CA the test made with openssl (option `tls: { ca }` and
// FLEETCACHE_REDIS_CA_FILE); without that CA the connection is refused and reads are misses.
// Mutual TLS: a second server requires a client certificate (`--tls-auth-clients yes`); the
// handler presents one (`tls: { cert, key }`, FLEETCACHE_REDIS_CERT_FILE and
// FLEETCACHE_REDIS_KEY_FILE), and without it gets one clear error line and serves misses.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, afterEach, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import { close, createUseCacheHandler, optionsFromEnv, stats } from '../esm/index.mjs'
import { makeCertificates } from '../../tests/support/certs.mjs'
import { freePort } from '../../tests/support/ports.mjs'
import { redisCommand, startRedis } from '../../tests/support/redis.mjs'
import { stopChild, tailFile, trackChild, waitFor } from '../../tests/support/util.mjs'
import {
  FAILING_CONNECT_MS,
  SLOW_CONNECT_MS,
  capture,
  channelDownLines,
  failingConnectionLines,
  now,
  text,
  useCacheEntry,
} from './helpers.mjs'

let dir
let server
let port
let mtlsServer
let mtlsPort
let sentinel
let sentinelPort
let seq = 0

/** A redis-server listening with TLS only; `authClients`: whether it requires a client certificate. */
async function startTlsRedis(name, authClients) {
  const tlsPort = await freePort()
  const logFile = path.join(dir, `${name}.log`)
  const out = fs.openSync(logFile, 'a')
  const child = trackChild(
    spawn(
      process.env.REDIS_SERVER || 'redis-server',
      [
        '--port',
        '0',
        '--tls-port',
        String(tlsPort),
        '--bind',
        '127.0.0.1',
        '--tls-cert-file',
        path.join(dir, 'server.crt'),
        '--tls-key-file',
        path.join(dir, 'server.key'),
        '--tls-ca-cert-file',
        path.join(dir, 'ca.crt'),
        '--tls-auth-clients',
        authClients ? 'yes' : 'no',
        '--save',
        '',
        '--appendonly',
        'no',
      ],
      { stdio: ['ignore', out, out] },
    ),
  )
  fs.closeSync(out)
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null)
          throw Object.assign(new Error('redis-server exited'), { fatal: true })
        return /Ready to accept connections/.test(tailFile(logFile, 50))
      },
      {
        timeoutMs: 10_000,
        intervalMs: 50,
        what: `redis-server with TLS (${name})`,
        stopOn: (e) => e.fatal,
      },
    )
  } catch (err) {
    await stopChild(child, { termTimeoutMs: 2000 })
    throw new Error(`${err.message}\n${tailFile(logFile, 20)}`, { cause: err })
  }
  return { child, port: tlsPort }
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-tls-'))
  makeCertificates(dir)
  ;({ child: server, port } = await startTlsRedis('redis', false))
  ;({ child: mtlsServer, port: mtlsPort } = await startTlsRedis('redis-mtls', true))
})

// Each test's handlers are its own: closed when it ends, so one still reconnecting (a wrong
// password, a missing certificate) logs nothing into, and asks Redis nothing during, the next.
afterEach(() => close())

after(async () => {
  await close()
  await stopChild(server, { termTimeoutMs: 5000 })
  await stopChild(mtlsServer, { termTimeoutMs: 5000 })
  await stopChild(sentinel, { termTimeoutMs: 5000 })
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
    const c = createUseCacheHandler(options({ connectTimeoutMs: SLOW_CONNECT_MS + seq }))
    const t0 = now()
    const errors = []
    const { error } = console
    console.error = (...a) => errors.push(a.join(' '))
    try {
      assert.equal(await c.get('k1', []), undefined)
    } finally {
      console.error = error
    }
    // Refused at once, not after waiting for a connection.
    assert.ok(now() - t0 < SLOW_CONNECT_MS, `took ${Math.round(now() - t0)} ms`)
    assert.ok(
      errors.some((l) => /certificate/i.test(l)),
      `a certificate error among:\n${errors.join('\n')}`,
    )
  })
})

describe('an untrusted server certificate: every line names it, none says unreachable', () => {
  test('a read at once, then a revalidation, a write and a read past the connect budget, and close()', async () => {
    const lines = await failingConnectionLines(
      createUseCacheHandler(options({ connectTimeoutMs: FAILING_CONNECT_MS })),
      'k-untrusted',
      't-untrusted',
    )
    const all = lines.join('\n')
    const doc =
      /https:\/\/github\.com\/fleetcache\/fleetcache\/blob\/main\/docs\/configuration\.md#redis-cluster-tls-sentinel/
    assert.deepEqual(
      lines.filter((l) => /unreachable/i.test(l)),
      [],
      `no line says unreachable:\n${all}`,
    )
    const connection = lines.filter((l) => /redis connection:/.test(l))
    assert.equal(connection.length, 1, all)
    assert.match(
      connection[0],
      /redis connection: the TLS certificate of Redis is not trusted: SELF_SIGNED_CERT_IN_CHAIN/,
    )
    assert.match(connection[0], doc)
    const queued = lines.filter((l) => /revalidation of t-untrusted .* applied/.test(l))
    assert.equal(queued.length, 1, all)
    assert.match(
      queued[0],
      /; the TLS certificate of Redis is not trusted \(SELF_SIGNED_CERT_IN_CHAIN; see /,
    )
    assert.match(queued[0], doc)
    const closing = lines.filter((l) => /closing with 1 queued revalidation/.test(l))
    assert.equal(closing.length, 1, all)
    assert.match(closing[0], /\(the TLS certificate of Redis is not trusted \(SELF_SIGNED/)
    for (const l of lines.filter((x) => /failed/.test(x))) {
      assert.match(l, /the TLS certificate of Redis is not trusted: SELF_SIGNED/, l)
    }
  })
})

test("tagSync 'push' without the CA: the announcement channel's line names the certificate", async () => {
  const lines = await channelDownLines(
    createUseCacheHandler(options({ tagSync: 'push', connectTimeoutMs: FAILING_CONNECT_MS })),
    'k-untrusted-push',
  )
  const channel = lines.filter((l) => /tag announcements:/.test(l))
  assert.equal(channel.length, 1, lines.join('\n'))
  assert.match(
    channel[0],
    /pulling per request: the TLS certificate of Redis is not trusted: SELF_SIGNED_CERT_IN_CHAIN: .*; see https:\/\/github\.com\/fleetcache\/fleetcache\/blob\/main\/docs\/configuration\.md#redis-cluster-tls-sentinel$/,
  )
})

describe('rediss:// to a Redis without TLS', () => {
  test('the lines say to check TLS, and give the configured connect budget', async () => {
    const plain = await startRedis({ logDir: dir })
    try {
      // A Redis without TLS reads the handshake as a command that never ends: no answer.
      const c = createUseCacheHandler(
        options({ redisUrl: `rediss://127.0.0.1:${plain.port}`, connectTimeoutMs: 300 }),
      )
      const lines = await capture(async (seen) => {
        assert.equal(await c.get('k-plain', []), undefined)
        await waitFor(() => seen.some((l) => /redis connection:/.test(l)), {
          timeoutMs: 10_000,
          intervalMs: 20,
          what: 'the connection error line',
        })
      })
      const hint = /the URL is rediss:\/\/: does the server speak TLS\?/
      const connect = lines.filter((l) => /redis connect took longer/.test(l))
      assert.equal(connect.length, 1, `one connect timeout line among:\n${lines.join('\n')}`)
      assert.match(connect[0], /redis connect took longer than 300 ms/)
      assert.match(connect[0], hint)
      const connection = lines.filter((l) => /redis connection:/.test(l))
      assert.equal(connection.length, 1, lines.join('\n'))
      assert.match(connection[0], /Connection timeout/)
      assert.match(connection[0], hint)
    } finally {
      await close()
      await plain.stop()
    }
  })
})

describe('redis:// to a Redis with TLS only', () => {
  test('the lines say to check the scheme, and the first read is a quick miss', async () => {
    // The server takes the plain command for a broken handshake and resets the connection.
    const c = createUseCacheHandler(
      options({ redisUrl: `redis://127.0.0.1:${port}`, connectTimeoutMs: SLOW_CONNECT_MS + seq }),
    )
    const lines = await capture(async (seen) => {
      const t0 = now()
      assert.equal(await c.get('k-scheme', []), undefined)
      // Reset at once, not after waiting for a connection.
      assert.ok(now() - t0 < SLOW_CONNECT_MS, `took ${Math.round(now() - t0)} ms`)
      await waitFor(() => seen.some((l) => /redis connection:/.test(l)), {
        timeoutMs: 10_000,
        intervalMs: 20,
        what: 'the connection error line',
      })
    })
    const hint = /\(the URL is redis:\/\/: does the server require TLS\? .*use rediss:\/\/\)/
    const connection = lines.filter((l) => /redis connection:/.test(l))
    assert.equal(connection.length, 1, `one connection error line among:\n${lines.join('\n')}`)
    assert.match(connection[0], hint)
    const miss = lines.filter((l) => /get failed, treated as a miss/.test(l))
    assert.equal(miss.length, 1, lines.join('\n'))
    assert.match(miss[0], hint)
  })
})

describe('mutual TLS: a server that requires a client certificate', () => {
  const pem = (name) => path.join(dir, name)

  test('with the client certificate: set and get across two instances, and a tag expiry', async () => {
    const ca = fs.readFileSync(pem('ca.crt'))
    const a = createUseCacheHandler(
      options({
        redisUrl: `rediss://127.0.0.1:${mtlsPort}`,
        tls: {
          ca,
          cert: fs.readFileSync(pem('client.crt')),
          key: fs.readFileSync(pem('client.key')),
        },
      }),
    )
    // The environment's way.
    const fromEnv = optionsFromEnv({
      REDIS_URL: `rediss://127.0.0.1:${mtlsPort}`,
      FLEETCACHE_REDIS_CA_FILE: pem('ca.crt'),
      FLEETCACHE_REDIS_CERT_FILE: pem('client.crt'),
      FLEETCACHE_REDIS_KEY_FILE: pem('client.key'),
      FLEETCACHE_DEPLOYMENT_ID: 'd1',
    })
    assert.match(fromEnv.tls.cert, /BEGIN CERTIFICATE/)
    assert.match(fromEnv.tls.key, /PRIVATE KEY/)
    const b = createUseCacheHandler(options({ redisUrl: fromEnv.redisUrl, tls: fromEnv.tls }))
    const lines = await capture(async () => {
      await a.set('k-mtls', Promise.resolve(entry('mutual tls')))
      await b.refreshTags()
      const got = await b.get('k-mtls', [])
      assert.ok(got, 'b reads what a wrote')
      assert.equal(await text(got.value), 'mutual tls')
      await a.updateTags(['tls'])
      await b.refreshTags()
      assert.equal(await b.get('k-mtls', []), undefined)
    })
    assert.deepEqual(lines, [], 'no error lines')
  })

  test('certificate and key: both or neither, and readable, or a configuration error', () => {
    const env = { REDIS_URL: `rediss://127.0.0.1:${mtlsPort}` }
    assert.throws(
      () => optionsFromEnv({ ...env, FLEETCACHE_REDIS_CERT_FILE: pem('client.crt') }),
      (err) =>
        err.code === 'ERR_FLEETCACHE_CONFIG' &&
        /FLEETCACHE_REDIS_CERT_FILE.*FLEETCACHE_REDIS_KEY_FILE/.test(err.message),
    )
    assert.throws(
      () => optionsFromEnv({ ...env, FLEETCACHE_REDIS_KEY_FILE: pem('client.key') }),
      (err) =>
        err.code === 'ERR_FLEETCACHE_CONFIG' && /^FLEETCACHE_REDIS_KEY_FILE:/.test(err.message),
    )
    assert.throws(
      () =>
        optionsFromEnv({
          ...env,
          FLEETCACHE_REDIS_CERT_FILE: pem('client.crt'),
          FLEETCACHE_REDIS_KEY_FILE: pem('missing.key'),
        }),
      (err) =>
        err.code === 'ERR_FLEETCACHE_CONFIG' &&
        /^FLEETCACHE_REDIS_KEY_FILE: cannot read .*missing\.key/.test(err.message),
    )
    // In code: `tls.cert` without `tls.key`.
    assert.throws(
      () => createUseCacheHandler(options({ tls: { cert: 'x' } })),
      (err) => err.code === 'ERR_FLEETCACHE_CONFIG' && /^tls:/.test(err.message),
    )
  })

  test('without a client certificate: one clear error line, quick misses, the handler keeps working', async () => {
    const c = createUseCacheHandler(
      options({
        redisUrl: `rediss://127.0.0.1:${mtlsPort}`,
        tls: { ca: fs.readFileSync(pem('ca.crt')) },
        connectTimeoutMs: SLOW_CONNECT_MS + seq,
      }),
    )
    const lines = await capture(async (seen) => {
      const t0 = now()
      for (let i = 0; i < 3; i++) assert.equal(await c.get('k-mtls', []), undefined)
      await c.set('k-nocert', Promise.resolve(entry('not stored')))
      await c.updateTags(['tls-nocert'])
      assert.equal(await c.get('k-nocert', []), undefined)
      // Refused at once, not after waiting for a connection.
      assert.ok(now() - t0 < SLOW_CONNECT_MS, `took ${Math.round(now() - t0)} ms`)
      await waitFor(() => seen.some((l) => /redis connection:/.test(l)), {
        timeoutMs: 10_000,
        intervalMs: 20,
        what: 'the connection error line',
      })
    })
    const connection = lines.filter((l) => /redis connection:/.test(l))
    assert.equal(connection.length, 1, `one connection error line among:\n${lines.join('\n')}`)
    // docs/operating.md's line.
    assert.match(
      connection[0],
      /redis connection: Redis requires a TLS client certificate: ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: .*\(the server requires a TLS client certificate: set FLEETCACHE_REDIS_CERT_FILE and FLEETCACHE_REDIS_KEY_FILE\); see https:\/\/github\.com\/fleetcache\/fleetcache\/blob\/main\/docs\/operating\.md#tls-client-certificates; reconnecting in the background$/,
    )
    assert.ok(
      lines.every((l) => !l.includes('\n')),
      `every line is one line:\n${lines.join('\n---\n')}`,
    )
    assert.ok(stats().outbox.length >= 1, 'the revalidation waits in the outbox')
  })

  test('a client certificate no CA of the server signed: the line names it, quick misses', async () => {
    // A certificate of its own CA: the server's alert is ERR_SSL_TLSV1_ALERT_UNKNOWN_CA, a code
    // without CERT in it, which waiting does not fix any more than a certificate not presented.
    await promisify(execFile)(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'],
        ...['-nodes', '-keyout', 'stranger.key', '-out', 'stranger.crt', '-days', '2'],
        ...['-subj', '/CN=fleetcache test stranger'],
      ],
      { cwd: dir, timeout: 20_000 },
    )
    const c = createUseCacheHandler(
      options({
        redisUrl: `rediss://127.0.0.1:${mtlsPort}`,
        tls: {
          ca: fs.readFileSync(pem('ca.crt')),
          cert: fs.readFileSync(pem('stranger.crt')),
          key: fs.readFileSync(pem('stranger.key')),
        },
        connectTimeoutMs: SLOW_CONNECT_MS + seq,
      }),
    )
    const lines = await capture(async (seen) => {
      const t0 = now()
      for (let i = 0; i < 3; i++) assert.equal(await c.get('k-stranger', []), undefined)
      // Refused at once, not after waiting for a connection.
      assert.ok(now() - t0 < SLOW_CONNECT_MS, `took ${Math.round(now() - t0)} ms`)
      await waitFor(() => seen.some((l) => /redis connection:/.test(l)), {
        timeoutMs: 10_000,
        intervalMs: 20,
        what: 'the connection error line',
      })
    })
    const connection = lines.filter((l) => /redis connection:/.test(l))
    assert.equal(connection.length, 1, lines.join('\n'))
    // docs/troubleshooting.md's line.
    assert.match(
      connection[0],
      /redis connection: Redis did not accept the TLS client certificate: ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: .*\(the server did not accept the client certificate: .*\); see https:\/\/github\.com\/fleetcache\/fleetcache\/blob\/main\/docs\/operating\.md#tls-client-certificates; reconnecting in the background$/,
    )
  })
})

test('the CLI reads the same TLS variables: FLEETCACHE_REDIS_CA_FILE, _CERT_FILE, _KEY_FILE', async () => {
  const cli = fileURLToPath(new URL('../cli/main.js', import.meta.url))
  const env = {
    PATH: process.env.PATH,
    REDIS_URL: `rediss://127.0.0.1:${mtlsPort}`,
    FLEETCACHE_PREFIX: 'tlstest',
    FLEETCACHE_REDIS_CA_FILE: path.join(dir, 'ca.crt'),
  }
  const withCert = {
    ...env,
    FLEETCACHE_REDIS_CERT_FILE: path.join(dir, 'client.crt'),
    FLEETCACHE_REDIS_KEY_FILE: path.join(dir, 'client.key'),
  }
  const { stdout } = await promisify(execFile)(process.execPath, [cli, 'stats', '--json'], {
    env: withCert,
    timeout: 30_000,
  })
  assert.ok(Array.isArray(JSON.parse(stdout).rows))
  await assert.rejects(
    promisify(execFile)(process.execPath, [cli, 'stats'], { env, timeout: 30_000 }),
    (err) => err.code === 1 && /requires a TLS client certificate/.test(err.stderr),
  )
})

test('Sentinel with a master that requires a client certificate (rediss:// master name)', async () => {
  // The sentinel itself listens without TLS and reaches the master with TLS (tls-replication),
  // presenting the server certificate as its client certificate.
  sentinelPort = await freePort()
  const conf = path.join(dir, 'sentinel.conf')
  fs.writeFileSync(
    conf,
    [
      `port ${sentinelPort}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `tls-cert-file ${path.join(dir, 'server.crt')}`,
      `tls-key-file ${path.join(dir, 'server.key')}`,
      `tls-ca-cert-file ${path.join(dir, 'ca.crt')}`,
      'tls-replication yes',
      `sentinel monitor tlsmaster 127.0.0.1 ${mtlsPort} 1`,
      '',
    ].join('\n'),
  )
  const logFile = path.join(dir, 'sentinel.log')
  const out = fs.openSync(logFile, 'a')
  sentinel = trackChild(
    spawn(process.env.REDIS_SERVER || 'redis-server', [conf, '--sentinel'], {
      stdio: ['ignore', out, out],
    }),
  )
  fs.closeSync(out)
  await waitFor(
    async () => {
      const info = await redisCommand(sentinelPort, ['SENTINEL', 'MASTER', 'tlsmaster'], {
        timeoutMs: 500,
      }).catch(() => [])
      return info[info.indexOf('flags') + 1] === 'master'
    },
    {
      timeoutMs: 15_000,
      intervalMs: 100,
      what: `the sentinel to reach the TLS master\n${tailFile(logFile, 10)}`,
    },
  )
  const tls = {
    ca: fs.readFileSync(path.join(dir, 'ca.crt')),
    cert: fs.readFileSync(path.join(dir, 'client.crt')),
    key: fs.readFileSync(path.join(dir, 'client.key')),
  }
  const viaSentinel = (extra) =>
    createUseCacheHandler(
      options({
        redisUrl: 'rediss://tlsmaster',
        sentinels: [`127.0.0.1:${sentinelPort}`],
        ...extra,
      }),
    )
  const a = viaSentinel({ tls })
  const b = createUseCacheHandler(options({ redisUrl: `rediss://127.0.0.1:${mtlsPort}`, tls }))
  await a.set('k-sn-mtls', Promise.resolve(entry('sentinel and mutual tls')))
  const got = await b.get('k-sn-mtls', [])
  assert.ok(got, 'written to the master the sentinel named')
  assert.equal(await text(got.value), 'sentinel and mutual tls')
})
