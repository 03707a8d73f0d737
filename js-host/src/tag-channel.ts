/**
 * The announcement channel of the tag state for a Node process (`tagSync: 'push'`): a
 * node-redis connection of its own, subscribed with SSUBSCRIBE, that reports every message
 * and every change of the subscription to the tag synchronisation. The core decides what
 * they mean (docs/failures.md, "Freshness").
 */
import { createClient, ErrorReply } from 'redis'

import { describe } from './log'
import { describeConnectionError } from './redis-errors'
import {
  forgetClosedSockets,
  reconnectDelay,
  socketOptions,
  type RedisTransportOptions,
} from './redis-client'
import { keySlot } from './redis-cluster'
import { sentinelNode } from './redis-sentinel'
import type { ChannelEvents, Subscribe } from './tag-sync'
import { withDeadline } from './transport'

/**
 * The subscription for `options`: on the one server of a single URL; on the master of the
 * channel's slot of a Redis Cluster; on the master the sentinels name.
 */
export function redisSubscribe(options: RedisTransportOptions): Subscribe {
  const sentinels = options.sentinels ?? []
  if (sentinels.length > 0) {
    return (channel, events) =>
      subscribeFollowing(options, channel, events, sentinelFinder(options, sentinels))
  }
  if (options.cluster === true) {
    return (channel, events) =>
      subscribeFollowing(options, channel, events, clusterFinder(options, channel))
  }
  return (channel, events) => subscribeSingle(options, channel, events)
}

function subscribeSingle(
  options: RedisTransportOptions,
  channel: string,
  events: ChannelEvents,
): () => Promise<void> {
  // Aborted at close: node-redis's destroy() leaves a socket that has not connected yet (a TLS
  // handshake under way) to its connect budget, and one that connects after it ready and open.
  const sockets = new AbortController()
  const client = createClient({
    url: options.url,
    disableOfflineQueue: true,
    disableClientInfo: true,
    maintNotifications: 'disabled',
    commandOptions: { timeout: 0 },
    socket: socketOptions(options, sockets.signal),
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
      log.warn(
        `tag announcements: channel down, pulling per request: ${describeConnectionError(err)}`,
      )
    }
  })
  client.on('end', down)
  client.on('reconnecting', () => {
    down()
    forgetClosedSockets(sockets.signal)
  })
  client.on('ready', () => {
    if (!closed) void subscribe()
  })
  client.connect().catch((err: unknown) => {
    down()
    if (!closed)
      log.warn(
        `tag announcements: no connection, pulling per request: ${describeConnectionError(err)}`,
      )
  })
  return () => {
    closed = true
    down()
    // Closed at once: nothing waits for a reply on this connection once the channel is closed
    // (a login's, an SSUBSCRIBE's: the subscription is no one's to report any more), and a
    // graceful close waited up to 1 s for them in an outage, beside the transport's second
    // (test/push-close-hung.test.mjs).
    try {
      client.destroy()
    } catch {
      // Never opened.
    }
    sockets.abort()
    return Promise.resolve()
  }
}

/**
 * A connection for a subscription that follows its server (`subscribeFollowing`) to `at`:
 * never reconnected, with the credentials and TLS of the first URL (as the transport's cluster
 * client gives every node). Its socket is destroyed when `sockets` is aborted, in any state.
 */
function connectionTo(options: RedisTransportOptions, at: NodeAddress, sockets: AbortSignal) {
  const u = new URL(options.url)
  return createClient({
    socket: {
      ...socketOptions(options, sockets),
      host: at.host,
      port: at.port,
      reconnectStrategy: false,
      ...(u.protocol === 'rediss:' ? { tls: true as const } : {}),
    },
    ...(u.username === '' ? {} : { username: decodeURIComponent(u.username) }),
    ...(u.password === '' ? {} : { password: decodeURIComponent(u.password) }),
    disableOfflineQueue: true,
    disableClientInfo: true,
    maintNotifications: 'disabled',
    commandOptions: { timeout: 0 },
  })
}

/** One connection of a subscription that follows its server. */
type NodeClient = ReturnType<typeof connectionTo>

/** A Redis server by address. */
export interface NodeAddress {
  host: string
  port: number
}

/** `host:port` (or `[v6]:port`, or `host` alone: port 6379) as a node address. */
export function nodeAddress(address: string): NodeAddress {
  const colon = address.lastIndexOf(':')
  if (colon < 0 || address.endsWith(']'))
    return { host: address.replace(/^\[|\]$/g, ''), port: 6379 }
  return {
    host: address.slice(0, colon).replace(/^\[|\]$/g, ''),
    port: Number(address.slice(colon + 1)),
  }
}

/**
 * Finds the server the channel lives on and subscribes there: `open` connects to one (a
 * connection that never reconnects; it rejects once the subscription is closed), `subscribe`
 * subscribes on such a connection. Resolves with the connection once Redis confirmed the
 * subscription on it; rejects when no server took it this time (tried again later). `closing`
 * fires when the subscription closes: a connection of the finder's own (a sentinel's) is
 * closed then, and none is made after it.
 */
type Finder = (
  open: (at: NodeAddress) => Promise<NodeClient>,
  subscribe: (client: NodeClient) => Promise<void>,
  closing: AbortSignal,
) => Promise<NodeClient>

/**
 * The subscription where the channel's server changes (Cluster: the master of the channel's
 * slot; Sentinel: the current master), on a connection of its own that `find` opens. A
 * connection is never reconnected: node-redis would resubscribe on its own, on the old
 * server, and a cluster client moves a subscription without telling anyone (no event says a
 * sharded subscription is gone or back: node-redis issue 2725), so a gap could go unseen.
 * Instead every loss (an error, the connection closed, Redis moving the channel away with an
 * unasked SUNSUBSCRIBE) reports the subscription down at once, drops the connection, and
 * `find` looks for the server again after the reconnection delay; up only once Redis confirmed
 * a new SSUBSCRIBE.
 */
function subscribeFollowing(
  options: RedisTransportOptions,
  channel: string,
  events: ChannelEvents,
  find: Finder,
): () => Promise<void> {
  const log = options.log
  // Each connection with what aborts its socket (see subscribeSingle).
  const clients = new Map<NodeClient, AbortController>()
  const lost = new WeakSet<NodeClient>()
  const closing = new AbortController()
  let current: NodeClient | undefined
  let closed = false
  let up = false
  let failures = 0
  let retries = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  const down = () => {
    if (up) events.down()
    up = false
  }
  // A connection's error names a refused login or an untrusted certificate as such; a failed
  // subscription may be a command refused (NOPERM on SSUBSCRIBE), no login's.
  const warnOnce = (what: 'channel down' | 'subscription failed', err: unknown) => {
    if (failures++ === 0 && !closed) {
      const why = what === 'channel down' ? describeConnectionError(err) : describe(err)
      log.warn(`tag announcements: ${what}, pulling per request: ${why}`)
    }
  }
  const drop = (client: NodeClient) => {
    const sockets = clients.get(client)
    clients.delete(client)
    client.destroy()
    sockets?.abort()
  }
  const again = () => {
    if (closed || timer !== undefined) return
    timer = setTimeout(() => {
      timer = undefined
      void attempt()
    }, reconnectDelay(retries++))
    timer.unref()
  }
  const onLoss = (client: NodeClient, err?: unknown) => {
    if (lost.has(client)) return
    lost.add(client)
    if (client !== current) return
    current = undefined
    down()
    drop(client)
    warnOnce('channel down', err ?? new Error('connection closed'))
    again()
  }
  const open = async (at: NodeAddress): Promise<NodeClient> => {
    // A search under way at close goes on to its next node: no connection is made for it (one
    // made then would be closed only once its connect budget ended, after close() returned).
    if (closing.signal.aborted) throw new Error('closed')
    const sockets = new AbortController()
    const client = connectionTo(options, at, sockets.signal)
    clients.set(client, sockets)
    // Listened to from the start: an 'error' without a listener would throw, and a loss
    // between the confirmation and the adoption must not go unseen.
    client.on('error', (err: unknown) => {
      onLoss(client, err)
    })
    client.on('end', () => {
      onLoss(client)
    })
    client.on('sharded-channel-moved', () => {
      onLoss(client, new Error(`Redis moved ${channel} away (SUNSUBSCRIBE)`))
    })
    try {
      // Bounded as a whole: node-redis's connectTimeout ends with the TCP connection, and the
      // handshake (AUTH, with credentials) waits forever on a server that accepted it but
      // hangs, which would stall every later attempt.
      await withDeadline(client.connect(), options.connectTimeoutMs, 'connect')
    } catch (err) {
      drop(client)
      throw err
    }
    if (closed) {
      drop(client)
      throw new Error('closed')
    }
    return client
  }
  const listener = (msg: Buffer) => {
    events.message(msg)
  }
  // Bounded like the connection: an attempt stuck on a hung server would never try another.
  const subscribe = (client: NodeClient) =>
    withDeadline(client.sSubscribe(channel, listener, true), options.connectTimeoutMs, 'SSUBSCRIBE')
  const attempt = async () => {
    let client: NodeClient
    try {
      client = await find(open, subscribe, closing.signal)
    } catch (err) {
      // No connection of a failed attempt is current: none is left open.
      for (const other of clients.keys()) drop(other)
      warnOnce('subscription failed', err)
      again()
      return
    }
    if (closed || lost.has(client) || !client.isReady) {
      drop(client)
      again()
      return
    }
    for (const other of clients.keys()) if (other !== client) drop(other)
    current = client
    failures = 0
    retries = 0
    up = true
    events.up()
  }
  void attempt()
  return () => {
    closed = true
    closing.abort()
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    down()
    current = undefined
    // Every connection closed at once, the subscribed one too: nothing waits for a reply on
    // them once the channel is closed (see subscribeSingle).
    for (const client of clients.keys()) drop(client)
    return Promise.resolve()
  }
}

/** How many other nodes one subscription attempt is sent on to from a node it asked. */
const MAX_REDIRECTIONS = 3

/**
 * Redis Cluster: the master of the channel's slot, found by asking a node known (the seeds,
 * then every node the last `CLUSTER SLOTS` named, so a dead seed or a failed master does not
 * end the search) for the layout and going on to the master it names, until a node names
 * itself: only there is the channel subscribed. A replica would take the SSUBSCRIBE as well
 * (Redis serves sharded pub/sub on a slot's replicas without READONLY) and pass on what its
 * master publishes, but only while its replication link lasts, which nothing here would see
 * break. A MOVED answer to the SSUBSCRIBE (the slot moved in between) is followed too.
 */
function clusterFinder(options: RedisTransportOptions, channel: string): Finder {
  const slot = keySlot(channel)
  const seeds = [options.url, ...(options.seeds ?? [])].map((url) => {
    const u = new URL(url)
    return `${u.hostname}:${u.port === '' ? '6379' : u.port}`
  })
  let known = [...new Set(seeds)]
  let start = 0
  return async (open, subscribe) => {
    let lastError: unknown = new Error('no cluster node known')
    const order = known.map((_, i) => known[(start + i) % known.length] ?? '')
    // The next attempt starts one node further: a node that keeps failing is not always first.
    start = (start + 1) % Math.max(known.length, 1)
    for (const address of order) {
      let at = nodeAddress(address)
      for (let hop = 0; hop <= MAX_REDIRECTIONS; hop++) {
        let client: NodeClient
        try {
          client = await open(at)
        } catch (err) {
          lastError = err
          break
        }
        let owner: NodeAddress | undefined
        try {
          const layout = await withDeadline(
            client.sendCommand(['CLUSTER', 'SLOTS']),
            options.connectTimeoutMs,
            'CLUSTER SLOTS',
          )
          const nodes = nodesOfSlots(layout)
          if (nodes.length > 0) known = [...new Set([...nodes, ...seeds])]
          owner = masterOfSlot(layout, slot, at.host)
        } catch (err) {
          client.destroy()
          lastError = err
          break
        }
        if (owner === undefined) {
          client.destroy()
          lastError = new Error(
            `node ${at.host}:${String(at.port)} names no master of slot ${String(slot)}`,
          )
          break
        }
        if (owner.host !== at.host || owner.port !== at.port) {
          client.destroy()
          at = owner
          continue
        }
        try {
          await subscribe(client)
          return client
        } catch (err) {
          client.destroy()
          lastError = err
          const moved =
            err instanceof ErrorReply ? /^MOVED \d+ (\S*):(\d+)$/.exec(err.message) : null
          if (moved === null) break
          at = { host: moved[1] === '' ? at.host : (moved[1] ?? at.host), port: Number(moved[2]) }
        }
      }
    }
    throw lastError
  }
}

/**
 * The master a `CLUSTER SLOTS` reply names for `slot`; `asked`: the host of the node that
 * replied, for a master it names without an endpoint.
 */
export function masterOfSlot(reply: unknown, slot: number, asked: string): NodeAddress | undefined {
  if (!Array.isArray(reply)) return undefined
  for (const range of reply) {
    if (!Array.isArray(range)) continue
    const [from, to, master] = range as unknown[]
    if (typeof from !== 'number' || typeof to !== 'number' || slot < from || slot > to) continue
    if (!Array.isArray(master)) return undefined
    const [host, port] = master as unknown[]
    if (typeof port !== 'number') return undefined
    return { host: typeof host === 'string' && host !== '' ? host : asked, port }
  }
  return undefined
}

/** Every node (`host:port`) a `CLUSTER SLOTS` reply names, masters and replicas. */
export function nodesOfSlots(reply: unknown): string[] {
  const nodes: string[] = []
  if (!Array.isArray(reply)) return nodes
  for (const range of reply) {
    if (!Array.isArray(range)) continue
    for (const node of range.slice(2)) {
      if (!Array.isArray(node)) continue
      const [host, port] = node as unknown[]
      if (typeof port !== 'number' || typeof host !== 'string' || host === '') continue
      nodes.push(host.includes(':') ? `[${host}]:${String(port)}` : `${host}:${String(port)}`)
    }
  }
  return nodes
}

/**
 * Redis Sentinel: the master the sentinels name now (`SENTINEL GET-MASTER-ADDR-BY-NAME`, asked
 * of each in turn, with the sentinels' own credentials, as the transport asks them), once the
 * server named says it is a master (`INFO replication`; else the next sentinel is asked). A
 * sentinel that names the old master for a moment after a failover costs one more attempt:
 * Sentinel closes the clients of a master it turns into a replica (CLIENT KILL), which ends
 * that subscription too.
 */
function sentinelFinder(options: RedisTransportOptions, sentinels: readonly string[]): Finder {
  const name = decodeURIComponent(new URL(options.url).hostname)
  let start = 0
  const ask = async (at: NodeAddress, closing: AbortSignal): Promise<NodeAddress> => {
    // Not made once the subscription closed: Node 20.20 connects a socket made with a signal
    // that already fired.
    if (closing.aborted) throw new Error('closed')
    // Aborted when the question ends, or when the subscription closes while it waits (its
    // budget, connectTimeoutMs twice, would otherwise keep the connection after close()).
    const sockets = new AbortController()
    const stop = () => {
      sockets.abort()
    }
    closing.addEventListener('abort', stop, { once: true })
    const client = createClient({
      socket: {
        host: at.host,
        port: at.port,
        connectTimeout: options.connectTimeoutMs,
        reconnectStrategy: false,
        signal: sockets.signal,
      },
      ...(options.sentinelUsername === undefined ? {} : { username: options.sentinelUsername }),
      ...(options.sentinelPassword === undefined ? {} : { password: options.sentinelPassword }),
      disableClientInfo: true,
      maintNotifications: 'disabled',
      commandOptions: { timeout: 0 },
    })
    client.on('error', () => undefined)
    try {
      // The handshake too (AUTH with the sentinels' credentials): see `open`.
      await withDeadline(client.connect(), options.connectTimeoutMs, 'sentinel connect')
      const reply = await withDeadline(
        client.sendCommand(['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name]),
        options.connectTimeoutMs,
        'sentinel',
      )
      if (!Array.isArray(reply) || reply.length < 2) {
        throw new Error(`sentinel ${at.host}:${String(at.port)} monitors no master named "${name}"`)
      }
      return { host: String(reply[0]), port: Number(reply[1]) }
    } finally {
      closing.removeEventListener('abort', stop)
      client.destroy()
      sockets.abort()
    }
  }
  return async (open, subscribe, closing) => {
    let lastError: unknown = new Error('no sentinel')
    const order = sentinels.map((_, i) => sentinels[(start + i) % sentinels.length] ?? '')
    start = (start + 1) % sentinels.length
    for (const address of order) {
      let master: NodeAddress
      try {
        master = await ask(sentinelNode(address), closing)
      } catch (err) {
        lastError = err
        continue
      }
      let client: NodeClient
      try {
        client = await open(master)
      } catch (err) {
        lastError = err
        continue
      }
      // A sentinel may name a replica (a stale view: one that was cut off, or that no later
      // configuration reached); a subscription there would hear its master only while its
      // replication link lasts. Asked before the SSUBSCRIBE (a subscribed RESP2 connection
      // takes no INFO): a demotion after it is Sentinel's, which closes this connection.
      let role: string | undefined
      try {
        const info = await withDeadline(
          client.sendCommand(['INFO', 'replication']),
          options.connectTimeoutMs,
          'INFO replication',
        )
        const text =
          typeof info === 'string' ? info : Buffer.isBuffer(info) ? info.toString('utf8') : ''
        role = /^role:(\w+)/m.exec(text)?.[1]
      } catch (err) {
        client.destroy()
        lastError = err
        continue
      }
      if (role !== 'master') {
        client.destroy()
        lastError = new Error(
          `sentinel ${address} names ${master.host}:${String(master.port)}, which is a ${role ?? 'server of unknown role'}, not a master`,
        )
        continue
      }
      await subscribe(client)
      return client
    }
    throw lastError
  }
}
