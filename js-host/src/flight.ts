import { describe } from './log'
import type { Runtime } from './runtime'
import { isCircuitOpen, runScript } from './transport'
import type { Interface } from './wasm'

/**
 * What is left of the lease protocol outside the machines until the write machine sends its
 * own `Release` step: the read side is the core's read machine, stepped by read-driver.ts.
 */

/**
 * Releases this process's lease on `cacheKey` when it holds one and will not write the
 * entry (nothing cacheable came out of the regeneration): the others stop waiting at once
 * instead of at their budget. Never rejects.
 */
export async function releaseLease(rt: Runtime, iface: Interface, cacheKey: string): Promise<void> {
  const { engine, transport, log } = rt
  try {
    const argv = engine.planLeaseRelease(iface, cacheKey)
    if (argv.length === 0 || transport === undefined) return
    await runScript(transport, argv, (sha) => engine.scriptSource(sha), { kind: 'write' })
  } catch (err) {
    // It expires on its own.
    if (!isCircuitOpen(err)) log.debug(`lease release failed (${describe(err)}): it expires`)
  }
}
