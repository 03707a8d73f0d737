// Every proptest regressions file must still be read by the properties it was written for, and
// every seed in it must be one proptest can parse. proptest finds a file by the path of the
// source that invokes `proptest!` (FileFailurePersistence::SourceParallel, its default): a test
// source renamed or removed, or its properties moved to another module, leaves the file unread
// and its seeds silently untested; a line it cannot parse is skipped with a warning no one sees.
//
//   node scripts/check-proptest-regressions.mjs   exit 1, naming each problem (make lint runs it)
//
// The mapping, as proptest resolves it for a crate under crates/<name>/:
//   crates/<name>/proptest-regressions/<path>.txt  read by crates/<name>/src/<path>.rs
//                                                  (a directory with lib.rs holds src/)
//   crates/<name>/tests/<stem>.proptest-regressions read by crates/<name>/tests/<stem>.rs
//                                                  (tests/ has no lib.rs: the file sits beside it)
// The source must exist and invoke `proptest!`. Each line that is not blank or a `#` comment
// must be `cc` and 64 hex digits (the seed), then optionally a `#` comment.
//
// Not checked: that a seed still draws the case its comment names. proptest stores the seed of
// the case it first drew, before shrinking, and `# shrinks to` the shrunk case; only the defect
// the seed found, put back, shows what the seed shrinks to now.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const SEED = /^cc [0-9a-f]{64}(\s*#.*)?$/

// Committed files and files not yet added (proptest writes new ones), ignored ones left out.
const files = execFileSync(
  'git',
  ['ls-files', '-z', '--cached', '--others', '--exclude-standard', '--', 'crates'],
  { cwd: repoRoot, encoding: 'utf8' },
)
  .split('\0')
  .filter((f) => f !== '')

// The source proptest reads `file` for, or null when `file` is no regressions file.
function sourceOf(file) {
  const inDir = /^(crates\/[^/]+)\/proptest-regressions\/(.+)\.txt$/.exec(file)
  if (inDir) return `${inDir[1]}/src/${inDir[2]}.rs`
  const beside = /^(crates\/[^/]+\/tests\/(?:.+\/)?[^/]+)\.proptest-regressions$/.exec(file)
  if (beside) return `${beside[1]}.rs`
  return null
}

const problems = []
let checked = 0
for (const file of files) {
  if (!file.endsWith('.proptest-regressions') && !file.includes('/proptest-regressions/')) continue
  const abs = path.join(repoRoot, file)
  if (!fs.existsSync(abs)) continue // deleted in the work tree, not yet in the index
  checked++
  const source = sourceOf(file)
  if (source === null) {
    problems.push(`${file}: not where proptest looks for a crate's regressions`)
    continue
  }
  const sourceAbs = path.join(repoRoot, source)
  if (!fs.existsSync(sourceAbs)) {
    problems.push(`${file}: its test source ${source} is gone (renamed or removed?)`)
  } else if (!fs.readFileSync(sourceAbs, 'utf8').includes('proptest!')) {
    problems.push(`${file}: ${source} invokes no proptest!, so nothing replays these seeds`)
  }
  fs.readFileSync(abs, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const t = line.trim()
      if (t === '' || t.startsWith('#')) return
      if (!SEED.test(t)) problems.push(`${file}:${String(i + 1)}: not a seed proptest reads`)
    })
}

if (checked === 0) problems.push('no proptest regressions file found under crates/')
if (problems.length > 0) {
  console.error(
    `check-proptest-regressions: ${String(problems.length)} problem(s):\n  ${problems.join('\n  ')}`,
  )
  process.exit(1)
}
