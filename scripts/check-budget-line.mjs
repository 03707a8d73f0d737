// The wasm size budget is set in one place, WASM_BUDGET_BYTES in the Makefile; the Budget line
// of docs/decisions/0028-wasm-size-budget.md's "Current state" restates both of its values,
// and a reader believes that line. This fails when either value there differs from the
// Makefile's, so a change of the budget cannot leave the summary stale.
//
//   node scripts/check-budget-line.mjs   exit 1, saying which value differs (make lint runs this)
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const DOC = 'docs/decisions/0028-wasm-size-budget.md'

/**
 * The Makefile's two budgets: the one under `ifeq ($(PREBUILT_STD),yes)` (a prebuilt std) and
 * the one under its `else` (std built from source).
 */
function makefileBudgets(text) {
  const m = text.match(
    /^ifeq \(\$\(PREBUILT_STD\),yes\)\nWASM_BUDGET_BYTES := (\d+)\nelse\nWASM_BUDGET_BYTES := (\d+)\nendif$/m,
  )
  if (m === null) throw new Error('Makefile: no ifeq/else block setting WASM_BUDGET_BYTES twice')
  return { prebuilt: Number(m[1]), buildStd: Number(m[2]) }
}

/** The two budgets the doc's Budget bullet (in "Current state", before the log) states. */
function docBudgets(text) {
  const state = text.split(/^## /m).find((s) => s.startsWith('Current state\n'))
  if (state === undefined) throw new Error(`${DOC}: no "## Current state" section`)
  const bullet = state.match(/^- \*\*Budget:\*\*([\s\S]*?)(?=^- \*\*|^$)/m)
  if (bullet === null) throw new Error(`${DOC}: no "- **Budget:**" line in "Current state"`)
  const line = bullet[1].replace(/\s+/g, ' ')
  const number = (re, what) => {
    const m = line.match(re)
    if (m === null) throw new Error(`${DOC}: the Budget line does not state the ${what} budget`)
    return Number(m[1].replaceAll(',', ''))
  }
  return {
    buildStd: number(/([\d,]+) bytes where std is built from source/, 'build-std'),
    prebuilt: number(/([\d,]+) with a prebuilt wasm32 std/, 'prebuilt-std'),
  }
}

const inMakefile = makefileBudgets(fs.readFileSync(path.join(repoRoot, 'Makefile'), 'utf8'))
const inDoc = docBudgets(fs.readFileSync(path.join(repoRoot, DOC), 'utf8'))
let failed = false
for (const [key, what] of [
  ['buildStd', 'std built from source'],
  ['prebuilt', 'a prebuilt std'],
]) {
  if (inMakefile[key] !== inDoc[key]) {
    console.error(
      `${DOC}: the Budget line in "Current state" says ${String(inDoc[key])} bytes for ${what}, ` +
        `the Makefile's WASM_BUDGET_BYTES ${String(inMakefile[key])}`,
    )
    failed = true
  }
}
if (failed) process.exit(1)
console.log(
  `budget line: ${String(inMakefile.buildStd)} and ${String(inMakefile.prebuilt)} bytes, as the Makefile says`,
)
