import { docLink } from './doc-link'
import type { Logger } from './log'
import { describe } from './log'
import { RedisReplyError, type Transport } from './transport'

/**
 * The warning for a Redis whose `INFO memory` (`info`) says it evicts any key when full
 * (`maxmemory-policy allkeys-*` under a `maxmemory`): the tag state has no TTL and is rarely
 * read, so such a policy may evict it, and a revalidation that no running instance knows is
 * then undone (docs/operating.md, "Eviction policy"). `undefined` for any other policy, or
 * without a `maxmemory` (nothing is evicted).
 */
export function evictionWarning(info: string): string | undefined {
  const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1]
  const maxmemory = /^maxmemory:(\d+)/m.exec(info)?.[1]
  if (policy?.startsWith('allkeys-') !== true || maxmemory === undefined || maxmemory === '0')
    return undefined
  return (
    `Redis evicts any key when full (maxmemory-policy ${policy}): it may evict the tag state, ` +
    'and a revalidation no running instance knows is then undone; set maxmemory-policy ' +
    `volatile-lru (${docLink('docs/operating.md#eviction-policy-volatile-lru')})`
  )
}

/**
 * Asks Redis for its eviction policy once, off every request's path and outside the circuit
 * breaker (`transport` is the unguarded one), and logs {@link evictionWarning}. An ACL that
 * refuses `INFO` is warned of too: the tag scripts need `INFO server` to name the server a
 * load's cursor came from (docs/operating.md, "Access control"), and they go on without it
 * unseen. One that refuses `INFO memory` only (`+info|server`) gives the scripts what they need:
 * a debug line, as for a Redis that does not answer.
 */
export function checkEvictionPolicy(transport: Transport, log: Logger): void {
  transport.send(['INFO', 'memory']).then(
    (reply) => {
      const info = Buffer.isBuffer(reply) ? reply.toString('latin1') : String(reply)
      const warning = evictionWarning(info)
      if (warning !== undefined) log.warn(warning)
    },
    (err: unknown) => {
      if (!refused(err)) {
        log.debug(`eviction policy not checked: ${describe(err)}`)
        return
      }
      transport.send(['INFO', 'server']).then(
        () => {
          log.debug(
            'eviction policy not checked: the Redis ACL user may run INFO server (what the tag ' +
              'scripts need), not INFO memory',
          )
        },
        (again: unknown) => {
          if (!refused(again)) {
            log.debug(`eviction policy not checked: ${describe(again)}`)
            return
          }
          log.warn(
            'the Redis ACL user may not run INFO: a tag-state load that moves to another server ' +
              '(a failover, a restart) may skip tags and judge entries of those tags fresh after ' +
              `their revalidation; add +info (${docLink('docs/operating.md#access-control')})`,
          )
        },
      )
    },
  )
}

/** An error reply of the ACL's (`NOPERM`). */
function refused(err: unknown): boolean {
  return err instanceof RedisReplyError && /\bNOPERM\b/.test(err.message)
}
