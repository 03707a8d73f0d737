/**
 * The announcement channel of the tag state for a Node process (`tagSync: 'push'`): a
 * node-redis connection of its own, subscribed with SSUBSCRIBE, that reports every message
 * and every change of the subscription to the tag synchronisation. The core decides what
 * they mean (docs/failures.md, "Freshness").
 */
import { createClient } from 'redis'

import { describe } from './log'
import { socketOptions, type RedisTransportOptions } from './redis-client'
import type { ChannelEvents, Subscribe } from './tag-sync'
import { withDeadline } from './transport'

/**
 * The subscription for `options`, or undefined where this release cannot follow by push (Redis
 * Cluster and Sentinel: each request pulls, as with `tagSync: 'pull'`).
 */
export function redisSubscribe(options: RedisTransportOptions): Subscribe | undefined {
  if (options.cluster === true || (options.sentinels?.length ?? 0) > 0) return undefined
  return (channel, events) => subscribeSingle(options, channel, events)
}

function subscribeSingle(
  options: RedisTransportOptions,
  channel: string,
  events: ChannelEvents,
): () => Promise<void> {
  const client = createClient({
    url: options.url,
    disableOfflineQueue: true,
    disableClientInfo: true,
    maintNotifications: 'disabled',
    commandOptions: { timeout: 0 },
    socket: socketOptions(options),
  })
  const log = options.log
  let closed = false
  let up = false
  let failures = 0
  const down = () => {
    if (up) events.down()
    up = false
  }
  const listener = (msg: Buffer) => {
    events.message(msg)
  }
  // Subscribes (again) and reports the subscription up only once Redis confirmed it: a
  // resubscription node-redis makes on its own after a reconnection is not awaited there.
  const subscribe = async () => {
    try {
      await client.sUnsubscribe(channel).catch(() => undefined)
      await client.sSubscribe(channel, listener, true)
      if (closed) return
      failures = 0
      up = true
      events.up()
    } catch (err) {
      down()
      if (failures++ === 0 && !closed) {
        log.warn(`tag announcements: subscription failed, pulling per request: ${describe(err)}`)
      }
    }
  }
  client.on('error', (err: unknown) => {
    down()
    if (failures++ === 0 && !closed) {
      log.warn(`tag announcements: channel down, pulling per request: ${describe(err)}`)
    }
  })
  client.on('end', down)
  client.on('reconnecting', down)
  client.on('ready', () => {
    if (!closed) void subscribe()
  })
  client.connect().catch((err: unknown) => {
    down()
    if (!closed) log.warn(`tag announcements: no connection, pulling per request: ${describe(err)}`)
  })
  return async () => {
    closed = true
    down()
    try {
      // A graceful close waits for pending replies (an SSUBSCRIBE's): bounded, since a hung
      // Redis never sends them.
      await withDeadline(client.close(), 1000, 'redis close')
    } catch {
      client.destroy()
    }
  }
}
