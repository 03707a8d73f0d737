// make test-recipes: the `instrumentation.ts` recipes a user copies type-check as a new Next app
// checks them (`next build` runs tsc with the app's tsconfig: strict), against the newest
// @types/node, pinned with TypeScript in this directory's package.json and lockfile (installed by
// scripts/setup.sh). An older @types/node may accept what a newer one rejects: 26's
// `process.listeners(signal)` returns listeners typed for that one signal, so one of SIGTERM's
// is no argument to an array of SIGINT's `includes`.
//
// Checked, each as its own project:
// - every `ts` block of docs/operating.md's "Shutdown" section, grouped by the heading it is
//   under: a block whose first line is a `// <file>` comment is written to that file, and a
//   heading's project holds the files of its blocks and those earlier blocks of the section
//   wrote that its blocks did not (a recipe that reuses the `instrumentation.ts` above it);
// - the example's instrumentation*.ts files (examples/next-app), as they are;
// each under the resolutions and with the import forms of VARIANTS (below). Then the docs'
// `instrumentation.ts` is compared with the example's.
// A block of the section in another spelling of TypeScript or JavaScript (```typescript, ```tsx,
// ```ts with more on its line, an indented fence) is an error, not passed over: it would not be
// checked.
// `fleetcache` is the packed tarball, unpacked into each project's node_modules as npm installs
// it (its declarations are what a user's tsc reads).
//
// Prints one line per project and resolution, one for the comparison, and `recipes: N passed, M failed`; exits 1 on any failure.
// Env: FLEETCACHE_TARBALL (default: the one `make pack` writes).
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, '..', '..')
const run = promisify(execFile)
const version = JSON.parse(
  fs.readFileSync(path.join(repoRoot, 'js-host', 'package.json'), 'utf8'),
).version
const tarball = path.resolve(
  process.env.FLEETCACHE_TARBALL ?? path.join(repoRoot, 'js-host', `fleetcache-${version}.tgz`),
)
const workDir = path.join(repoRoot, 'target', 'recipes')
const tsc = path.join(here, 'node_modules', 'typescript', 'bin', 'tsc')
const typesDir = path.join(here, 'node_modules', '@types')
const DOC = 'docs/operating.md'
const SECTION = 'Shutdown'

for (const [what, file] of [
  ['TypeScript', tsc],
  ['@types/node', path.join(typesDir, 'node', 'package.json')],
]) {
  if (!fs.existsSync(file)) {
    console.error(`${what} is not installed in tests/recipes: run make setup`)
    process.exit(1)
  }
}
if (!fs.existsSync(tarball)) {
  console.error(`no tarball at ${tarball}: run make pack`)
  process.exit(1)
}
const typesVersion = JSON.parse(
  fs.readFileSync(path.join(typesDir, 'node', 'package.json'), 'utf8'),
).version

// Info strings of fenced blocks that hold code a user may copy into instrumentation*.ts: in the
// section, each such block must be a plain ```ts fence at the start of its line, which is what is
// checked. Another spelling (```typescript, ```tsx, ```ts title=..., an indented fence) would
// otherwise be passed over silently, and its recipe never type-checked.
const SCRIPT_LANGS = new Set([
  'ts',
  'typescript',
  'tsx',
  'mts',
  'cts',
  'js',
  'javascript',
  'jsx',
  'mjs',
  'cjs',
])

/**
 * The `ts` blocks of `## <section>` in the markdown text, as projects: one per heading (`###` and
 * deeper) that has blocks, each { name, files: Map<file, source> }. Throws on a block of
 * SCRIPT_LANGS that is not a plain ```ts fence. Lines inside other fenced blocks are not read
 * as headings.
 */
function recipeProjects(markdown, section) {
  const lines = markdown.split('\n')
  const start = lines.findIndex((l) => l === `## ${section}`)
  if (start < 0) throw new Error(`no "## ${section}" heading`)
  const projects = []
  const written = new Map()
  let heading = section
  let current
  for (let i = start + 1; i < lines.length; i++) {
    const line = lines[i]
    if (/^## /.test(line)) break
    const h = /^#{3,} (.*)/.exec(line)
    if (h) {
      heading = h[1]
      current = undefined
      continue
    }
    const fence = /^(\s*)(`{3,}|~{3,})(.*)$/.exec(line)
    if (!fence) continue
    const [, indent, marker, info] = fence
    // The closing fence: the opening's character, at least as many, nothing after them.
    const closing = new RegExp(`^\\s*\\${marker[0]}{${marker.length},}\\s*$`)
    const end = lines.findIndex((l, j) => j > i && closing.test(l))
    if (end < 0) throw new Error(`${section}: the block at line ${i + 1} is not closed`)
    const lang = info.trim().split(/\s+/)[0].toLowerCase()
    const plainTs = indent === '' && marker === '```' && info === 'ts'
    if (!plainTs && SCRIPT_LANGS.has(lang)) {
      throw new Error(
        `${section}: the block at line ${i + 1} (${line.trim()}) is code a user copies but not a plain \`\`\`ts fence at the start of its line: it would not be type-checked`,
      )
    }
    const body = lines.slice(i + 1, end)
    i = end
    if (!plainTs) continue
    const named = /^\/\/ ([\w.-]+\.tsx?)$/.exec(body[0] ?? '')
    const file = named ? named[1] : 'instrumentation.ts'
    if (!current) {
      current = { name: `${DOC}, "${heading}"`, line: i + 1, own: new Map() }
      projects.push(current)
    }
    if (current.own.has(file)) throw new Error(`${current.name}: two blocks for ${file}`)
    current.own.set(file, `${body.join('\n')}\n`)
    written.set(file, current.own.get(file))
    current.files = new Map(written)
  }
  return projects
}

const COMPILER_OPTIONS = {
  // A new Next app's tsconfig (create-next-app; the example's), strict, and only the Node types
  // of this directory.
  target: 'ES2017',
  lib: ['dom', 'dom.iterable', 'esnext'],
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  esModuleInterop: true,
  module: 'esnext',
  moduleResolution: 'bundler',
  resolveJsonModule: true,
  isolatedModules: true,
  typeRoots: [typesDir],
  types: ['node'],
}

// Each project under the tsconfig `next build` writes (`moduleResolution: 'bundler'`) as given,
// then with the import of './instrumentation-node' written './instrumentation-node.ts' and
// `allowImportingTsExtensions` on, as docs/operating.md gives it for an app whose tsconfig says
// `node16` or `nodenext` (Next accepts both: 16.5.0, read in
// `next/dist/lib/typescript/writeConfigurationDefaults.js`), where TypeScript refuses the
// extensionless import (TS2835), under `bundler` and under `nodenext`.
const TS_IMPORT = { allowImportingTsExtensions: true }
const NODENEXT = { module: 'nodenext', moduleResolution: 'nodenext' }
const VARIANTS = {
  bundler: { options: {} },
  "bundler, './instrumentation-node.ts'": { options: TS_IMPORT, tsImport: true },
  "nodenext, './instrumentation-node.ts'": {
    options: { ...NODENEXT, ...TS_IMPORT },
    tsImport: true,
  },
}

/**
 * The files with instrumentation.ts importing './instrumentation-node.ts'; throws when it does not
 * import './instrumentation-node' (the variant would check nothing of the kind).
 */
function withTsImport(files) {
  const hook = files.get('instrumentation.ts') ?? ''
  const from = "import('./instrumentation-node')"
  if (!hook.includes(from)) throw new Error(`instrumentation.ts has no ${from}`)
  return new Map(files).set(
    'instrumentation.ts',
    hook.replaceAll(from, "import('./instrumentation-node.ts')"),
  )
}

async function check(name, files, variant) {
  const dir = path.join(workDir, `project-${check.n++}`)
  fs.rmSync(dir, { recursive: true, force: true })
  const pkgDir = path.join(dir, 'node_modules', 'fleetcache')
  fs.mkdirSync(pkgDir, { recursive: true })
  await run('tar', ['-xzf', tarball, '-C', pkgDir, '--strip-components=1'])
  for (const [file, source] of files) fs.writeFileSync(path.join(dir, file), source)
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify(
      {
        compilerOptions: { ...COMPILER_OPTIONS, ...VARIANTS[variant].options },
        files: [...files.keys()],
      },
      null,
      2,
    ),
  )
  try {
    await run(process.execPath, [tsc, '-p', dir], { cwd: dir })
    console.log(`ok   ${name}, ${variant} (${[...files.keys()].join(', ')})`)
    return true
  } catch (err) {
    console.log(`FAIL ${name}, ${variant} (${[...files.keys()].join(', ')}; in ${dir}):`)
    console.log(`${err.stdout || ''}${err.stderr || ''}`.trim().replace(/^/gm, '     '))
    return false
  }
}
check.n = 0

const projects = recipeProjects(fs.readFileSync(path.join(repoRoot, DOC), 'utf8'), SECTION)
if (projects.length === 0) throw new Error(`no ts block under "## ${SECTION}" in ${DOC}`)
const exampleDir = path.join(repoRoot, 'examples', 'next-app')
const exampleFiles = new Map(
  fs
    .readdirSync(exampleDir)
    .filter((f) => /^instrumentation.*\.ts$/.test(f))
    .map((f) => [f, fs.readFileSync(path.join(exampleDir, f), 'utf8')]),
)

console.log(
  `recipes: TypeScript ${COMPILER_OPTIONS.strict ? 'strict' : ''}, @types/node ${typesVersion}`,
)
fs.rmSync(workDir, { recursive: true, force: true })
let passed = 0
let failed = 0
for (const [name, files] of [
  ...projects.map((p) => [p.name, p.files]),
  ['examples/next-app', exampleFiles],
]) {
  for (const [variant, { tsImport }] of Object.entries(VARIANTS)) {
    let given
    try {
      given = tsImport ? withTsImport(files) : files
    } catch (err) {
      console.log(`FAIL ${name}, ${variant}: ${err.message}`)
      failed++
      continue
    }
    if (await check(name, given, variant)) passed++
    else failed++
  }
}
// The recipes' instrumentation.ts is the example's, but for the example's leading comment: what
// tests/e2e/shutdown.test.mjs runs is what the docs give. The example's instrumentation-node.ts
// is not compared: it holds both recipes behind EXAMPLE_CLOSE_ON_SIGNALS, with the log lines the
// end-to-end test reads.
{
  const name = `${DOC}'s instrumentation.ts is examples/next-app's (its leading comment aside)`
  const strip = (text) => text.replace(/^(\/\/.*\n)+/, '')
  const docs = new Set(
    projects.map((p) => p.files.get('instrumentation.ts')).filter((t) => t !== undefined),
  )
  const example = strip(exampleFiles.get('instrumentation.ts') ?? '')
  const differ = [...docs].filter((t) => strip(t) !== example)
  if (docs.size > 0 && differ.length === 0) {
    passed++
    console.log(`ok   ${name}`)
  } else {
    failed++
    console.log(`FAIL ${name}:`)
    for (const t of differ) {
      console.log(`     docs:\n${strip(t).replace(/^/gm, '       ')}`)
      console.log(`     example:\n${example.replace(/^/gm, '       ')}`)
    }
    if (docs.size === 0) console.log('     no instrumentation.ts block in the docs')
  }
}
console.log(`recipes: ${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
