// Least privilege: the handlers work as a Redis ACL user limited to the key prefix
// and the commands fleetcache sends (the `ACL SETUSER` line of docs/operating.md), and a wrong
// password or a missing permission gives a clear error line and an uncached, working handler.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, afterEach, before, describe, test } from 'node:test'

import {
  close,
  createIncrementalCacheHandler,
  createUseCacheHandler,
  stats,
} from '../esm/index.mjs'
import { redisPipeline, startRedis } from '../../tests/support/redis.mjs'
import { waitFor } from '../../tests/support/util.mjs'
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

const PREFIX = 'acltest'

/**
 * The rules of docs/operating.md's `ACL SETUSER` line, after `on >password`, read from the doc
 * itself (its prefix `fleetcache` replaced by this test's), so the line cannot drift from what
 * the handlers send.
 */
export const ACL_RULES = aclRulesOfDocs()

function aclRulesOfDocs() {
  const doc = fs.readFileSync(new URL('../../docs/operating.md', import.meta.url), 'utf8')
  const line = doc.split('\n').find((l) => l.startsWith('ACL SETUSER fleetcache on >CHANGE-ME '))
  assert.ok(line, "docs/operating.md has the handlers' ACL SETUSER line")
  return line
    .split(' ')
    .slice(5)
    .map((rule) => rule.replaceAll('fleetcache', PREFIX))
}

let redis
let seq = 0

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-acl-'))
  redis = await startRedis({ logDir })
  await redis.command('ACL', 'SETUSER', 'fc', 'on', '>s3cret', ...ACL_RULES)
  // The same rules without GET: reads are refused, everything else allowed.
  await redis.command(
    'ACL',
    'SETUSER',
    'fcnoget',
    'on',
    '>s3cret',
    ...ACL_RULES.filter((r) => r !== '+get'),
  )
  // Without ZADD, which only the tag update script calls: revalidations are refused inside the
  // script (Redis 7.0: `ERR The user executing the script can't run this command ...`; 7.2 and
  // Valkey: `ERR ACL failure in script: ... 'zadd' ...`), everything else works.
  await redis.command(
    'ACL',
    'SETUSER',
    'fcnozadd',
    'on',
    '>s3cret',
    ...ACL_RULES.filter((r) => r !== '+zadd'),
  )
  // Without the script commands: tag refreshes and revalidations are refused with NOPERM.
  await redis.command(
    'ACL',
    'SETUSER',
    'fcnoscript',
    'on',
    '>s3cret',
    ...ACL_RULES.filter((r) => r !== '+evalsha' && r !== '+eval'),
  )
  // An ACL written before the scripts used INFO: everything works, unseen but for a warning.
  await redis.command(
    'ACL',
    'SETUSER',
    'fcnoinfo',
    'on',
    '>s3cret',
    ...ACL_RULES.filter((r) => r !== '+info'),
  )
  // INFO for the scripts only (`+info|server`): no INFO memory, nothing the scripts lack.
  await redis.command(
    'ACL',
    'SETUSER',
    'fcinfoserver',
    'on',
    '>s3cret',
    ...ACL_RULES.filter((r) => r !== '+info'),
    '+info|server',
  )
  // With `tagSync: 'push'`: the documented rules and the two docs/operating.md adds for it.
  await redis.command(
    'ACL',
    'SETUSER',
    'fcpush',
    'on',
    '>s3cret',
    ...ACL_RULES,
    '+ssubscribe',
    '+sunsubscribe',
  )
  await redis.command('ACL', 'LOG', 'RESET')
})

// Each test's handlers are its own: closed when it ends, so one still reconnecting (a wrong
// password, a missing certificate) logs nothing into, and asks Redis nothing during, the next.
afterEach(() => close())

after(async () => {
  await close()
  await redis?.stop()
})

function options(user, extra = {}) {
  seq += 1
  return {
    redisUrl: `redis://${user}@127.0.0.1:${redis.port}`,
    prefix: PREFIX,
    deploymentId: 'd1',
    memoryBytes: 0,
    connectTimeoutMs: 1000 + seq,
    ...extra,
  }
}

const entry = (value, tags = ['acl']) => useCacheEntry(value, { tags })

/**
 * How often Redis denied `user` the command `object` (its `ACL LOG`, whose entries count
 * repeats), so a test can tell one attempt from endless retries.
 */
async function denials(user, object) {
  let n = 0
  for (const flat of await redis.command('ACL', 'LOG')) {
    const e = {}
    for (let i = 0; i + 1 < flat.length; i += 2) e[flat[i]] = flat[i + 1]
    if (e.username === user && e.object === object) n += Number(e.count)
  }
  return n
}

describe('ACL user limited to the prefix and fleetcache’s commands', () => {
  test('use-cache: set, get on another instance, leases, tag revalidation; nothing denied', async () => {
    const a = createUseCacheHandler(options('fc:s3cret'))
    const b = createUseCacheHandler(options('fc:s3cret'))
    const lines = await capture(async () => {
      assert.equal(await a.get('k1', []), undefined, 'a miss: a takes the lease')
      await a.set('k1', Promise.resolve(entry('as acl user', ['t-acl'])))
      await b.refreshTags()
      const got = await b.get('k1', [])
      assert.ok(got, 'b reads what a wrote')
      assert.equal(await text(got.value), 'as acl user')
      await a.updateTags(['t-acl'])
      await b.refreshTags()
      assert.equal(await b.get('k1', []), undefined, 'the tag expiry reached b')
    })
    assert.deepEqual(lines, [], 'no error lines')
    assert.deepEqual(await redis.command('ACL', 'LOG'), [], 'Redis denied nothing')
  })

  test('the connection handshake sends only what the ACL line allows: no error reply but NOSCRIPT', async () => {
    // node-redis 6 adds `CLIENT MAINT_NOTIFICATIONS` to a RESP3 handshake by default: an
    // unknown subcommand before Redis 8 (one `ERR` per connection in INFO errorstats), a denial
    // in ACL LOG for this user where Redis knows it. Neither is in docs/operating.md's list.
    await redis.command('CONFIG', 'RESETSTAT')
    const a = createUseCacheHandler(options('fc:s3cret'))
    const lines = await capture(async () => {
      assert.equal(await a.get('k-handshake', []), undefined)
      await a.set('k-handshake', Promise.resolve(entry('handshake')))
      await a.refreshTags()
    })
    assert.deepEqual(lines, [], 'no error lines')
    const errors = String(await redis.command('INFO', 'errorstats'))
      .split(/\r?\n/)
      .filter((l) => l.startsWith('errorstat_') && !l.startsWith('errorstat_NOSCRIPT:'))
    assert.deepEqual(errors, [], 'Redis answered no command with an error')
    assert.deepEqual(await redis.command('ACL', 'LOG'), [], 'Redis denied nothing')
  })

  test("leases: a follower polls the holder's lease, the holder renews it; nothing denied", async () => {
    // A short lease so the holder renews it (every third of it) while the follower waits.
    const ttl = { leaseTtlMs: 300, leaseWaitMs: 3000 }
    const a = createUseCacheHandler(options('fc:s3cret', ttl))
    const b = createUseCacheHandler(options('fc:s3cret', ttl))
    const lines = await capture(async () => {
      assert.equal(await a.get('k-lease', []), undefined, 'a miss: a takes the lease')
      const waits = stats().leases.waited
      const following = b.get('k-lease', [])
      await waitFor(() => stats().leases.waited > waits, {
        timeoutMs: 2000,
        intervalMs: 5,
        what: 'b waiting on the lease',
      })
      // Past one lease lifetime: only renewals keep it held, and b polls meanwhile.
      await sleep(450)
      await a.set('k-lease', Promise.resolve(entry('written by the holder')))
      const got = await following
      assert.ok(got, "b gets the holder's write")
      assert.equal(await text(got.value), 'written by the holder')
    })
    assert.deepEqual(lines, [], 'no error lines')
    assert.equal(stats().leases.waitTimeouts, 0, 'the wait ended with the write')
    assert.deepEqual(await redis.command('ACL', 'LOG'), [], 'Redis denied nothing')
  })

  test('incremental: set, get, revalidateTag', async () => {
    const H = createIncrementalCacheHandler(options('fc:s3cret'))
    const h = () => new H({})
    const v = {
      kind: 'APP_ROUTE',
      body: Buffer.from('route'),
      status: 200,
      headers: { 'x-next-cache-tags': 'acl-route' },
    }
    const ctx = {
      kind: 'APP_ROUTE',
      isRoutePPREnabled: false,
      isFallback: false,
      cacheControl: { revalidate: 60, expire: 3600 },
    }
    await h().set('/acl/route', v, ctx)
    assert.ok(await h().get('/acl/route', { kind: 'APP_ROUTE' }))
    await h().revalidateTag(['acl-route'])
    assert.equal(await h().get('/acl/route', { kind: 'APP_ROUTE' }), null)
    assert.deepEqual(await redis.command('ACL', 'LOG'), [], 'Redis denied nothing')
  })

  test("tagSync 'push': a page read from Redis (page_read.lua) and the copy it keeps serving from the tier; nothing denied", async () => {
    const W = createIncrementalCacheHandler(options('fc:s3cret'))
    const R = createIncrementalCacheHandler(
      options('fcpush:s3cret', { tagSync: 'push', memoryBytes: 16 * 1024 * 1024 }),
    )
    const ctx = { kind: 'APP_PAGE', cacheControl: { revalidate: false, expire: undefined } }
    const page = {
      kind: 'APP_PAGE',
      html: '<p>acl</p>',
      rscData: Buffer.from('acl'),
      headers: {},
      status: 200,
      postponed: undefined,
      segmentData: undefined,
    }
    await new W({}).set('/acl/page', page, ctx)
    // Commands Redis ran, a page read's script and the GET it calls included.
    const calls = async () => {
      const s = String(await redis.command('INFO', 'commandstats'))
      return ['get', 'evalsha', 'eval'].reduce(
        (n, c) => n + Number(new RegExp(`cmdstat_${c}:calls=(\\d+)`).exec(s)?.[1] ?? 0),
        0,
      )
    }
    // Caught up, R reads the page from Redis once (its page read), then serves it from its
    // tier: Redis runs nothing for the read. Bounded.
    let fromTier = false
    for (let i = 0; i < 300 && !fromTier; i++) {
      const before = await calls()
      const got = await new R({}).get('/acl/page', { kind: 'APP_PAGE' })
      assert.equal(got?.value.html, '<p>acl</p>')
      fromTier = (await calls()) === before
      if (!fromTier) await sleep(10)
    }
    assert.ok(fromTier, 'R never served the page from its tier')
    assert.deepEqual(await redis.command('ACL', 'LOG'), [], 'Redis denied nothing')
  })

  test('a wrong password: a clear error line, gets are quick misses, sets do not throw', async () => {
    const c = createUseCacheHandler(
      options('fc:wrong', { connectTimeoutMs: SLOW_CONNECT_MS + seq }),
    )
    const lines = await capture(async (seen) => {
      const t0 = now()
      assert.equal(await c.get('k-wrong', []), undefined)
      await c.set('k-wrong', Promise.resolve(entry('x')))
      assert.equal(await c.get('k-wrong', []), undefined)
      // Refused at once, not after waiting for a connection.
      assert.ok(now() - t0 < SLOW_CONNECT_MS, `took ${Math.round(now() - t0)} ms`)
      await waitFor(() => seen.some((l) => /WRONGPASS/.test(l)), {
        timeoutMs: 10_000,
        intervalMs: 20,
        what: 'the WRONGPASS line',
      })
    })
    const auth = lines.filter((l) => /WRONGPASS/.test(l))
    assert.ok(auth.length >= 1, `a WRONGPASS line among:\n${lines.join('\n')}`)
    assert.ok(
      auth.every((l) => !l.includes('\n')),
      'one line each',
    )
  })

  test('a missing permission: the NOPERM error is logged, the read is a miss', async () => {
    const d = createUseCacheHandler(options('fcnoget:s3cret', { leases: false }))
    const lines = await capture(async () => {
      await d.set('k-noget', Promise.resolve(entry('x')))
      assert.equal(await d.get('k-noget', []), undefined)
    })
    const denied = lines.filter((l) => /NOPERM/.test(l))
    assert.ok(denied.length >= 1, `a NOPERM line among:\n${lines.join('\n')}`)
    assert.ok(
      denied.some((l) => /get/i.test(l)),
      'it names the command',
    )
  })
})

/** failingConnectionLines (helpers.mjs) while Redis refuses the login at `url`. */
function refusedLoginLines(url) {
  return failingConnectionLines(
    createUseCacheHandler({
      ...options('unused'),
      redisUrl: url,
      connectTimeoutMs: FAILING_CONNECT_MS,
    }),
    'k-login',
    't-login',
  )
}

const LOGIN_DOC =
  /https:\/\/github\.com\/fleetcache\/fleetcache\/blob\/main\/docs\/troubleshooting\.md#at-start/

/** Every line names the refused login, none says Redis is unreachable. */
function assertNamesLogin(lines, code) {
  const all = lines.join('\n')
  assert.ok(lines.length > 0, 'lines were logged')
  assert.deepEqual(
    lines.filter((l) => /unreachable/i.test(l)),
    [],
    `no line says unreachable:\n${all}`,
  )
  const connection = lines.filter((l) => /redis connection:/.test(l))
  assert.equal(connection.length, 1, all)
  assert.match(connection[0], new RegExp(`redis connection: Redis refused the login: ${code}`))
  assert.match(connection[0], LOGIN_DOC)
  const queued = lines.filter((l) => /revalidation of t-login .* applied on this instance/.test(l))
  assert.equal(queued.length, 1, all)
  assert.match(queued[0], new RegExp(`; Redis refused the login \\(${code}; see `))
  assert.match(queued[0], LOGIN_DOC)
  const closing = lines.filter((l) => /closing with 1 queued revalidation/.test(l))
  assert.equal(closing.length, 1, all)
  assert.match(closing[0], new RegExp(`\\(Redis refused the login \\(${code}; see `))
  for (const l of lines.filter((x) => /failed/.test(x))) {
    assert.match(l, new RegExp(`Redis refused the login: ${code}`), `names the login: ${l}`)
  }
}

describe('a refused login: every line names it, none says unreachable', () => {
  test('a wrong password (WRONGPASS)', async () => {
    const lines = await refusedLoginLines(`redis://fc:wrong@127.0.0.1:${redis.port}`)
    assertNamesLogin(lines, 'WRONGPASS')
  })

  test('no password where Redis requires one (NOAUTH)', async () => {
    const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-acl-noauth-'))
    const locked = await startRedis({ logDir })
    try {
      await locked.command('CONFIG', 'SET', 'requirepass', 'topsecret')
      const lines = await refusedLoginLines(`redis://127.0.0.1:${locked.port}`)
      assertNamesLogin(lines, 'NOAUTH')
    } finally {
      await locked.stop()
    }
  })
})

test('a refusal that ends (NOAUTH for a moment): once logged in, an outage reads as unreachable, not refused', async () => {
  // What refused the connection is the latest attempt's: an attempt that fails otherwise (Redis
  // gone) replaces it, so the warnings of a later outage do not send the operator to the
  // password.
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-acl-moment-'))
  const locked = await startRedis({ logDir })
  let stopped = false
  try {
    await locked.command('CONFIG', 'SET', 'requirepass', 'topsecret')
    const c = createUseCacheHandler({
      ...options('unused'),
      redisUrl: `redis://127.0.0.1:${locked.port}`,
      connectTimeoutMs: 300,
    })
    const lines = await capture(async (seen) => {
      assert.equal(await c.get('k-moment', []), undefined)
      await waitFor(
        () => seen.some((l) => /redis connection: Redis refused the login: NOAUTH/.test(l)),
        {
          timeoutMs: 10_000,
          intervalMs: 20,
          what: 'the refused login line',
        },
      )
      await redisPipeline(locked.port, [
        ['AUTH', 'topsecret'],
        ['CONFIG', 'SET', 'requirepass', ''],
      ])
      await waitFor(
        async () => {
          await c.set('k-moment', Promise.resolve(entry('x')))
          return (await c.get('k-moment', [])) !== undefined
        },
        { timeoutMs: 20_000, intervalMs: 200, what: 'a read served from Redis once logged in' },
      )
      await locked.stop()
      stopped = true
      await c.updateTags(['t-moment'])
      await close()
    })
    const all = lines.join('\n')
    const queued = lines.filter((l) =>
      /revalidation of t-moment .* applied on this instance/.test(l),
    )
    assert.equal(queued.length, 1, all)
    assert.match(queued[0], /; Redis is unreachable, so it is queued/)
    const closing = lines.filter((l) => /closing with 1 queued revalidation/.test(l))
    assert.equal(closing.length, 1, all)
    assert.match(closing[0], /\(Redis is unreachable\)/)
  } finally {
    if (!stopped) await locked.stop()
  }
})

test("tagSync 'push' with a wrong password: the announcement channel's line names the login", async () => {
  const lines = await channelDownLines(
    createUseCacheHandler(
      options('fcpush:wrong', { tagSync: 'push', connectTimeoutMs: FAILING_CONNECT_MS }),
    ),
    'k-login-push',
  )
  const channel = lines.filter((l) => /tag announcements:/.test(l))
  assert.equal(channel.length, 1, lines.join('\n'))
  assert.match(channel[0], /pulling per request: Redis refused the login: WRONGPASS /)
  assert.match(channel[0], new RegExp(`; see ${LOGIN_DOC.source}$`))
})

describe('an ACL without +info', () => {
  test('a warning at start names it; the handler works', async () => {
    const h = createUseCacheHandler(options('fcnoinfo:s3cret', { leases: false }))
    const lines = await capture(async (lines) => {
      await h.set('k-noinfo', Promise.resolve(entry('x')))
      await h.refreshTags()
      assert.equal(await text((await h.get('k-noinfo', [])).value), 'x')
      await waitFor(() => lines.some((l) => l.includes('add +info')), {
        timeoutMs: 5000,
        intervalMs: 20,
        what: 'the warning',
      })
    })
    assert.equal(lines.filter((l) => l.includes('+info')).length, 1, lines.join('\n'))
    assert.equal(
      await denials('fcnoinfo', 'info'),
      2,
      'two INFOs of its own (memory, then server), refused',
    )
  })

  test('with +info|server only, no warning: the scripts have what they need', async (t) => {
    const debug = []
    t.mock.method(console, 'log', (...a) => debug.push(a.join(' ')))
    const h = createUseCacheHandler(options('fcinfoserver:s3cret', { leases: false, debug: true }))
    const lines = await capture(async () => {
      await h.set('k-infoserver', Promise.resolve(entry('x')))
      await h.refreshTags()
      assert.equal(await text((await h.get('k-infoserver', [])).value), 'x')
      await waitFor(() => debug.some((l) => l.includes('may run INFO server')), {
        timeoutMs: 5000,
        intervalMs: 20,
        what: 'the debug line',
      })
    })
    assert.deepEqual(
      lines.filter((l) => l.includes('+info')),
      [],
      'no warning to add +info',
    )
    assert.equal(await denials('fcinfoserver', 'info'), 1, 'INFO memory only, refused')
  })
})

describe('a revalidation Redis refuses for want of a permission', () => {
  test('one log line naming the permission, dropped from the outbox, the handler keeps serving', async () => {
    const d = createUseCacheHandler(options('fcnozadd:s3cret', { leases: false }))
    const refusedBefore = stats()?.outbox.refused ?? 0
    const lines = await capture(async () => {
      await d.set('k-nz', Promise.resolve(entry('v1', ['t-nz'])))
      assert.ok(await d.get('k-nz', []), 'a hit before the revalidation')
      await d.updateTags(['t-nz'])
      // It holds on this instance (its own mirror).
      assert.equal(await d.get('k-nz', []), undefined, 'expired here')
      // More revalidations, and successful commands that would replay a queued one.
      for (const t of ['t-nz2', 't-nz3', 't-nz4']) await d.updateTags([t])
      for (let i = 0; i < 5; i++) {
        await d.set(`k-nz-${i}`, Promise.resolve(entry(`v${i}`, ['t-later'])))
        const got = await d.get(`k-nz-${i}`, [])
        assert.ok(got, 'the handler keeps serving from Redis')
        assert.equal(await text(got.value), `v${i}`)
        await d.refreshTags()
      }
      await sleep(100)
    })
    const refused = lines.filter((l) => /revalidation dropped/.test(l))
    assert.equal(refused.length, 1, `one line for four refused revalidations:\n${lines.join('\n')}`)
    assert.match(refused[0], /\+zadd/, 'it names the missing permission')
    assert.match(
      refused[0],
      /blob\/main\/docs\/operating\.md#access-control\)/,
      'and where the ACL line is',
    )
    assert.ok(!refused[0].includes('\n'), 'one line')
    assert.deepEqual(
      lines.filter((l) => !/revalidation dropped/.test(l)),
      [],
      'nothing else logged',
    )
    assert.equal(stats().outbox.length, 0, 'nothing waits in the outbox')
    assert.equal(
      stats().outbox.refused - refusedBefore,
      4,
      'stats() counts the refused revalidations',
    )
    // Each revalidation was tried once: no replays after the later successful commands.
    assert.equal(await denials('fcnozadd', 'zadd'), 4)
    await sleep(200)
    await d.get('k-nz-0', [])
    assert.equal(await denials('fcnozadd', 'zadd'), 4, 'no retries')
  })

  test('NOPERM on the scripts themselves: one line for revalidations, one for refreshes', async () => {
    const e = createUseCacheHandler(options('fcnoscript:s3cret', { leases: false }))
    const lines = await capture(async () => {
      for (let i = 0; i < 3; i++) {
        await e.refreshTags()
        await e.updateTags([`t-ns${i}`])
      }
      await e.set('k-ns', Promise.resolve(entry('tagged', ['t-ns-other'])))
      await e.set('k-ns-untagged', Promise.resolve(entry('still cached', [])))
      await e.refreshTags()
      // Without the tag state, nothing tagged can be proven fresh: a miss, not old content.
      assert.equal(await e.get('k-ns', []), undefined, 'a tagged entry is a miss')
      const got = await e.get('k-ns-untagged', [])
      assert.ok(got, 'untagged entries still work')
      assert.equal(await text(got.value), 'still cached')
      await sleep(100)
    })
    const refused = lines.filter((l) => /revalidation dropped/.test(l))
    const refresh = lines.filter((l) => /tag refresh refused/.test(l))
    assert.equal(refused.length, 1, lines.join('\n'))
    assert.equal(refresh.length, 1, lines.join('\n'))
    for (const l of [...refused, ...refresh]) {
      assert.match(l, /NOPERM/)
      assert.match(l, /\+evalsha/, 'it names the missing permission')
      assert.match(l, /docs\/operating\.md/)
    }
    assert.equal(lines.length, 2, `nothing else logged:\n${lines.join('\n')}`)
    // 4 refreshes, and one more before each read: a process without the tag state asks again.
    assert.equal(await denials('fcnoscript', 'evalsha'), 3 + 6, '3 revalidations, 6 refreshes')
  })
})
