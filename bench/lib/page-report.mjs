// What bench/page-cost.mjs and bench/page-cpu.mjs share: the report both write into
// (bench/PAGE-COST.md), the call to an instance's probe (bench/lib/page-cost-probe.cjs) and the
// order their instances start in.
import { randomInt } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { rng } from './stats.mjs'

/** bench/PAGE-COST.md: each run's section goes on top, earlier runs kept below. */
export const PAGE_COST_REPORT = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'PAGE-COST.md',
)
const REPORT_HEADER =
  '# Page cost: where the time of a cached page request goes\n\nWritten by `node bench/page-cost.mjs` and `node bench/page-cpu.mjs`, newest run first; a section titled "conclusion (by hand)" is an engineer\'s reading of the runs next to it, and says which.\n\n'
// The headers earlier versions wrote, replaced by this one.
const OLD_HEADERS = [
  '# Page cost: where the time of a cached page request goes\n\nWritten by `node bench/page-cost.mjs`; never edited by hand. Newest run first.\n\n',
  '# Page cost: where the time of a cached page request goes\n\nWritten by `node bench/page-cost.mjs` and `node bench/page-cpu.mjs`; never edited by hand. Newest run first.\n\n',
]

/** Puts `report` (one run's section) on top of bench/PAGE-COST.md under the current header. */
export function prependPageCostReport(report) {
  let previous = fs.existsSync(PAGE_COST_REPORT)
    ? fs.readFileSync(PAGE_COST_REPORT, 'utf8').replace(REPORT_HEADER, '')
    : ''
  for (const h of OLD_HEADERS) previous = previous.replace(h, '')
  fs.writeFileSync(PAGE_COST_REPORT, REPORT_HEADER + report + '\n\n' + previous)
}

/** Asks `inst`'s probe for `pathname`; its JSON reply, or throws with the probe's error. */
export async function probe(inst, pathname, method) {
  const res = await fetch(`http://127.0.0.1:${String(inst.probePort)}${pathname}`, {
    method,
    signal: AbortSignal.timeout(30_000),
  })
  const body = await res.json()
  if (res.status !== 200) throw new Error(`probe ${pathname} on ${inst.name}: ${body.error}`)
  return body
}

/**
 * The order bench/page-cost.mjs and bench/page-cpu.mjs start their instances in (and rotate
 * from in each round): `items` shuffled with a seed. An instance's place in that order changes
 * what it costs (bench/PAGE-COST.md, runs 12 to 17: the later started ran fewer GCs per
 * request, a difference as large as the one looked for), so the list's own order would favour
 * the same variant in every run. `setting` is the environment variable `name`'s value: unset, a
 * seed drawn for this run; an integer, that seed (to repeat a run); 'list', the list's own order
 * (every run before 2026-12-06). Returns the order, and `how`: a sentence for the Method line
 * that names the setting repeating it.
 */
export function startOrder(items, name, setting, label = (x) => String(x)) {
  if (setting === 'list') {
    return {
      order: [...items],
      how: `started in the list's order (${name}=list): ${items.map(label).join(', ')}`,
    }
  }
  const seed = setting === undefined || setting === '' ? randomInt(2 ** 31) : Number(setting)
  if (!Number.isInteger(seed)) throw new Error(`${name}=${setting}: an integer seed or 'list'`)
  const order = [...items]
  const rand = rng(seed)
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[order[i], order[j]] = [order[j], order[i]]
  }
  return {
    order,
    how: `started in an order shuffled with seed ${String(seed)} (${name}=${String(seed)} repeats it; ${name}=list, the list's own): ${order.map(label).join(', ')}`,
  }
}
