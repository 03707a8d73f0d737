// Every build output a test, benchmark, script or example names as a path literal must be one
// the build still makes. A file moved by the build (the CLI out of `dist/` into `cli/`, say)
// otherwise leaves a test loading nothing or a benchmark failing only when someone runs it.
//
//   node scripts/check-build-paths.mjs   exit 1, naming file:line, for each path no build
//                                        output ends with (make lint runs this, after `make js`)
//
// Checked: quoted strings in the committed .mjs/.cjs/.js/.ts files and the Makefile that name a
// file of fleetcache's own build under one of its output directories (`dist/`, `cli/`, `wasm/`,
// `worker/`), such as '../dist/index.js', 'js-host/wasm/node/fleetcache_wasm.js' or
// 'node_modules/fleetcache/cli/main.js', and runs of quoted arguments on one line, as
// `path.join(root, 'js-host', 'dist', 'index.js')` has, joined with `/`. Such a path is an output when, with its leading `./`,
// `../`, `/`, `package/`, `js-host/` and `node_modules/fleetcache/` parts dropped, some file the
// build wrote ends with it. Another package's files (`next/dist/...`), paths with a glob or a
// `${...}` placeholder are not checked.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const OUTPUT_DIRS = ['js-host/dist', 'js-host/cli', 'js-host/wasm', 'js-host/worker']
const SOURCES = ['tests', 'bench', 'scripts', 'js-host/test', 'examples', 'Makefile']
const ARGS = /(?:(['"])[\w@.-]+\1\s*,\s*)+(['"])[\w@.-]+\.(?:m?js|cjs|d\.m?ts|wasm|json)\2/g
const LITERAL =
  /(['"`])((?:[\w@.-]+\/)*(?:dist|cli|wasm|worker)\/[\w./-]*\.(?:m?js|cjs|d\.m?ts|wasm|json))\1/g

function walk(rel, out) {
  const abs = path.join(repoRoot, rel)
  const stat = fs.statSync(abs, { throwIfNoEntry: false })
  if (stat === undefined) return out
  if (stat.isFile()) {
    out.push(rel)
    return out
  }
  for (const entry of fs.readdirSync(abs, { withFileTypes: true })) {
    walk(path.posix.join(rel, entry.name), out)
  }
  return out
}

const outputs = []
for (const dir of OUTPUT_DIRS) {
  if (!fs.existsSync(path.join(repoRoot, dir))) {
    console.error(`check-build-paths: ${dir} is missing; run \`make js\` first`)
    process.exit(2)
  }
  walk(dir, outputs)
}

// Made by the build under js-host/: a literal names it relative to js-host/ (an installed
// package's root) or to the repository root.
// Null: not a path into fleetcache's own outputs.
function ownPath(literal) {
  const p = literal
    .replace(/^(\.\.?\/|\/)+/, '')
    .replace(/^(package|js-host|node_modules\/fleetcache|fleetcache)\//, '')
  return /^(dist|cli|wasm|worker)\//.test(p) ? p : null
}

function isOutput(p) {
  return outputs.some((o) => o === `js-host/${p}`)
}

const problems = []
const committed = execFileSync('git', ['ls-files', '-z', '--', ...SOURCES], {
  cwd: repoRoot,
  encoding: 'utf8',
}).split('\0')
for (const file of committed) {
  if (!/\.(m?js|cjs|ts)$/.test(file) && path.basename(file) !== 'Makefile') continue
  const lines = fs.readFileSync(path.join(repoRoot, file), 'utf8').split('\n')
  lines.forEach((line, i) => {
    const args = [...line.matchAll(ARGS)].map((m) => m[0].replace(/['"\s]/g, '').replace(/,/g, '/'))
    for (const literal of [...[...line.matchAll(LITERAL)].map((m) => m[2]), ...args]) {
      if (/[*]|\$\{/.test(literal)) continue
      const p = ownPath(literal)
      if (p !== null && !isOutput(p)) problems.push(`${file}:${String(i + 1)}: ${literal}`)
    }
  })
}

if (problems.length > 0) {
  console.error('paths naming a build output the build does not make:')
  for (const p of problems) console.error(`  ${p}`)
  process.exit(1)
}
console.log('check-build-paths: every build output named in tests, benchmarks and scripts exists')
