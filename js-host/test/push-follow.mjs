// What the push tests on Redis Cluster and Sentinel share: instances that follow the tag state
// by push, each counted apart (`commandMonitor`), and the checks that one of them is caught up
// (a request makes no round trip) and learns another's revalidation by announcement alone.
import assert from 'node:assert/strict'

import { waitFor } from '../../tests/support/util.mjs'
import { useCacheEntry } from './helpers.mjs'

/** EVALSHA calls the instance of `opts` has sent (every tag pull is one). */
export const scriptCalls = (monitor, opts) =>
  monitor.sent(new URL(opts.redisUrl).username, 'evalsha')

/** Waits until one refresh of `handler` makes no round trip: the instance is caught up. */
export async function caughtUp(monitor, handler, opts, what = 'caught up') {
  await waitFor(
    async () => {
      const before = await scriptCalls(monitor, opts)
      await handler.refreshTags()
      return (await scriptCalls(monitor, opts)) === before
    },
    { timeoutMs: 15_000, intervalMs: 20, what },
  )
}

/** Whether a connection of user `name` holds a sharded subscription on `server` (CLIENT LIST). */
export async function subscribedOn(server, name) {
  const list = String(await server.command('CLIENT', 'LIST'))
  return list.split('\n').some((l) => / ssub=[1-9]/.test(l) && l.includes(` user=${name} `))
}

/** Subscribers of `channel` on `server` (PUBSUB SHARDNUMSUB). */
export async function subscribers(server, channel) {
  const [, n] = await server.command('PUBSUB', 'SHARDNUMSUB', channel)
  return Number(n)
}

/** `a` writes `key` with `tag` again until `b` reads it: a write a failover cut off is lost. */
async function writtenAndRead(a, b, key, tag, value) {
  await waitFor(
    async () => {
      await a.set(key, Promise.resolve(useCacheEntry(value, { tags: [tag] })))
      return (await b.get(key, [])) !== undefined
    },
    { timeoutMs: 15_000, intervalMs: 100, what: `${key} written and read` },
  )
}

/**
 * While `b` hears no announcement (subscribed nowhere), each of its requests pulls: it serves
 * what `a` revalidated just before, which it cannot have heard of. Three rounds.
 */
export async function freshInTheGap(a, b) {
  for (let i = 0; i < 3; i++) {
    const [key, tag] = [`k-gap-${String(i)}`, `t-gap-${String(i)}`]
    await writtenAndRead(a, b, key, tag, 'before')
    await a.updateTags([tag])
    await b.refreshTags()
    assert.equal(await b.get(key, []), undefined, `request ${String(i)}: fresh in the gap`)
  }
}

/** Waits until `server`'s ACL log holds user `name`'s refused subscription to `channel`. */
export async function refusedOn(server, name, channel) {
  await waitFor(
    async () =>
      (await server.command('ACL', 'LOG')).some((e) => e.includes(name) && e.includes(channel)),
    { timeoutMs: 15_000, intervalMs: 20, what: `${name}'s refused SSUBSCRIBE on the new master` },
  )
}

/** The loss of the channel is logged among `lines`. */
export function lossLogged(lines) {
  assert.ok(
    lines.some((l) => /tag announcements: channel down, pulling per request/.test(l)),
    `the loss is logged (${lines.join(' | ')})`,
  )
}

/**
 * After a failover that left `b` refused the channel on the new master (`newMaster`): `b` is
 * subscribed nowhere; allowed again, it subscribes on the new master, beside `a`, and none is
 * left on the old one.
 */
export async function resubscribesOnceAllowed({ a, b, newMaster, oldMaster, channel }) {
  assert.equal(await subscribedOn(newMaster, b.user.name), false, 'b is subscribed nowhere')
  assert.equal(await subscribedOn(oldMaster, b.user.name), false, 'not on the old master either')
  await newMaster.command('ACL', 'SETUSER', b.user.name, 'allchannels')
  await waitFor(() => subscribedOn(newMaster, b.user.name), {
    timeoutMs: 15_000,
    intervalMs: 20,
    what: 'b subscribed on the new master',
  })
  assert.ok(await subscribedOn(newMaster, a.user.name), 'a subscribed on the new master')
  assert.equal(await subscribers(oldMaster, channel), 0, 'no subscription left on the old master')
}

/**
 * `a` revalidates; `b` learns it by the announcement: freshness every round, and at least one
 * round where b's caught-up request ran no script and b pulled once in the background (each
 * instance also pulls on its own before its caught-up bound runs out, and on a busy machine
 * such a pull can land inside a round and prove nothing about the announcement).
 */
export async function learnsByAnnouncement(monitor, [a, aOpts], [b, bOpts], name) {
  const rounds = []
  for (let round = 0; round < 5; round++) {
    const key = `k-${name}-${String(round)}`
    const tag = `t-${name}-${String(round)}`
    await writtenAndRead(a, b, key, tag, 'pushed')
    await caughtUp(monitor, a, aOpts)
    await caughtUp(monitor, b, bOpts)
    const bBefore = await scriptCalls(monitor, bOpts)
    const bCalls = async () => (await scriptCalls(monitor, bOpts)) - bBefore
    await a.updateTags([tag])
    await waitFor(async () => (await b.getExpiration([tag])) > 0, {
      timeoutMs: 5000,
      intervalMs: 5,
      what: 'the announcement',
    })
    // One pull in the background by b, which learned it otherwise than by a pull, so that what
    // it regenerates afterwards is judged with a pull after it (docs/failures.md).
    await waitFor(async () => (await bCalls()) >= 1, {
      timeoutMs: 5000,
      intervalMs: 5,
      what: "b's pull after the announcement",
    })
    const bBackground = await bCalls()
    await b.refreshTags()
    assert.equal(await b.get(key, []), undefined, 'invalidated on the other instance')
    const bRequest = (await bCalls()) - bBackground
    rounds.push(`b ${String(bBackground)}+${String(bRequest)}`)
    if (bBackground === 1 && bRequest === 0) return
  }
  assert.fail(
    `every round also ran another pull (b's script calls per round, in the background + by the request: ${rounds.join('; ')})`,
  )
}
