// make test-package: the packed tarball (js-host/fleetcache-<version>.tgz) as a user gets it.
//
// - contents: README, license texts, changelog and every file `exports` names are in it, and
//   the registry metadata is set;
// - publint (every message, suggestions included) and @arethetypeswrong/cli, both pinned in this
//   directory's package.json and lockfile; the rules ignored on purpose are listed below, each
//   with its reason;
// - a fresh project in a temp dir installs the tarball from its path (its dependencies come
//   from the npm registry) and uses every entry point from CommonJS, ESM and the `fleetcache`
//   bin, and TypeScript checks them with `module: node16`, `nodenext`, `bundler` and `node`
//   (node10, through `typesVersions`) resolution, and with the `workerd` condition;
// - the same installed by pnpm (isolated node_modules): every entry point from CommonJS and ESM,
//   and withFleetcache's handler paths and tracing glob reach the files in pnpm's layout.
//
// Prints one line per check and `package: N passed, M failed`; exits 1 on any failure and then
// keeps the temp project. Env: FLEETCACHE_TARBALL (default: the one `make pack` writes).
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, '..', '..')
const version = JSON.parse(
  fs.readFileSync(path.join(repoRoot, 'js-host', 'package.json'), 'utf8'),
).version
const tarball = path.resolve(
  process.env.FLEETCACHE_TARBALL ?? path.join(repoRoot, 'js-host', `fleetcache-${version}.tgz`),
)
const tools = JSON.parse(fs.readFileSync(path.join(here, 'package.json'), 'utf8')).devDependencies
const bin = (name) => path.join(here, 'node_modules', '.bin', name)
const run = promisify(execFile)

// ---- rules ignored on purpose ----------------------------------------------------------------

/** publint message codes to accept, with the reason. None today: every message fails. */
const PUBLINT_IGNORED = {}

/**
 * @arethetypeswrong/cli runs, each over some entry points, in every resolution it knows: node10
 * (TypeScript's legacy `moduleResolution: node`, which Next 16 still type-checks with when an
 * app's tsconfig says so) ignores `exports` and finds each subpath's types through
 * `typesVersions`; node16 (CommonJS and ESM callers) and bundler through `exports`.
 */
const ATTW_RUNS = [
  {
    name: 'the Node entries',
    args: ['--exclude-entrypoints', './worker', './wasm'],
    ignored: {},
  },
  {
    name: 'fleetcache/worker and fleetcache/wasm',
    args: ['--entrypoints', './worker', './wasm'],
    ignored: {
      // Both are ESM only, on purpose: they are for workers runtimes (workerd, edge, Deno) and
      // bundlers, which load ES modules; a CommonJS caller in Node uses `import()` for
      // fleetcache/worker and resolves the path of fleetcache/wasm (docs/transport.md).
      'cjs-resolves-to-esm':
        'ESM only on purpose: entries for workers runtimes and bundlers (docs/transport.md)',
    },
  },
]

// ---- the checks ------------------------------------------------------------------------------

let passed = 0
let failed = 0
const indent = (text) =>
  String(text)
    .trimEnd()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n')

async function check(name, fn) {
  try {
    const note = await fn()
    passed++
    console.log(`ok ${name}${note ? ` (${note})` : ''}`)
  } catch (err) {
    failed++
    console.log(`FAIL ${name}\n${indent(err.message ?? err)}`)
  }
}

/** Runs a command; rejects with its output when it exits non-zero. */
async function sh(file, args, options = {}) {
  try {
    return await run(file, args, { maxBuffer: 64 * 1024 * 1024, timeout: 300_000, ...options })
  } catch (err) {
    throw new Error(
      `${path.basename(file)} ${args.join(' ')} exited ${err.code}\n${err.stdout ?? ''}${err.stderr ?? ''}`,
    )
  }
}

if (!fs.existsSync(tarball)) {
  console.error(`no tarball at ${tarball}: run make pack`)
  process.exit(1)
}
for (const name of ['publint', 'attw', 'tsc']) {
  if (!fs.existsSync(bin(name))) {
    console.error(`${name} is not installed in tests/package: run make setup`)
    process.exit(1)
  }
}
console.log(`checking ${path.relative(process.cwd(), tarball)}`)

const listing = (await sh('tar', ['tzf', tarball])).stdout.split('\n').filter(Boolean)
const manifest = JSON.parse(
  (await sh('tar', ['xzf', tarball, '-O', 'package/package.json'])).stdout,
)

await check('contents: docs, licenses, metadata and every exported file', async () => {
  const files = new Set(listing.map((f) => f.replace(/^package\//, '')))
  const problems = []
  for (const f of ['README.md', 'LICENSE-MIT', 'LICENSE-APACHE', 'CHANGELOG.md']) {
    if (!files.has(f)) problems.push(`missing ${f}`)
  }
  for (const f of files) if (/(^|\/)\.stamp$/.test(f)) problems.push(`build stamp packed: ${f}`)
  const targets = []
  const walk = (v) =>
    typeof v === 'string' ? targets.push(v) : Object.values(v ?? {}).forEach(walk)
  walk(manifest.exports)
  walk(manifest.bin)
  for (const t of targets) {
    if (!files.has(t.replace(/^\.\//, ''))) problems.push(`exports/bin name ${t}, not packed`)
  }
  // The module the bin loads instead of the server's (docs/decisions/0028-wasm-size-budget.md,
  // eighth pass); no entry point names it, so the loop above does not see it.
  for (const f of ['wasm/tools/fleetcache_wasm_bg.wasm', 'wasm/tools/node/fleetcache_wasm.js']) {
    if (!files.has(f)) problems.push(`missing ${f} (the CLI's module)`)
  }
  // The CLI is in cli/, outside dist/, and only it names the tools glue: Turbopack traces every
  // file under dist/ (the instrumentation hook's trace gets no exclude), so a stale dist/cli/
  // (left by a build from before the move) or a require of cli/ or wasm/tools/ from dist/ would
  // put them in standalone trees again (docs/decisions/0011, amended 2026-12-07).
  for (const f of files) if (f.startsWith('dist/cli/')) problems.push(`packed: ${f}`)
  const distJs = (await sh('tar', ['xzf', tarball, '-O', '--wildcards', 'package/dist/*.js']))
    .stdout
  const reach = distJs.match(/require\([^)]*(\.\.\/cli\/|wasm\/tools\/)[^)]*\)/g)
  if (reach !== null) problems.push(`dist/ requires the CLI's files: ${reach.join(', ')}`)
  for (const field of ['repository', 'homepage', 'bugs', 'keywords', 'type', 'license']) {
    if (manifest[field] === undefined) problems.push(`package.json has no "${field}"`)
  }
  if (problems.length > 0) throw new Error(problems.join('\n'))
  return `${files.size} files`
})

// A declaration file is for a user's tsc only when an entry point's types reach it: the `types`
// that `exports`, `types` and `typesVersions` name, and every file their imports, re-exports and
// `import("...")` types name, transitively (read with TypeScript's own scanner). Any other
// declaration file in the tarball is an internal module's: not an API, yet an editor offers
// auto-imports from it (a `fleetcache/dist/...` path under `moduleResolution: node`).
await check('declarations: only what the entry points reach', async () => {
  const ts = (await import('typescript')).default
  const files = new Set(listing.map((f) => f.replace(/^package\//, '')))
  const isDeclaration = (f) => /\.d\.[cm]?ts$/.test(f)
  const starts = []
  const walk = (v, key) =>
    typeof v === 'string'
      ? key === 'types' && starts.push(v)
      : Object.entries(v ?? {}).forEach(([k, x]) => walk(x, k))
  walk(manifest.exports)
  if (manifest.types !== undefined) starts.push(manifest.types)
  for (const targets of Object.values(manifest.typesVersions ?? {})) {
    for (const list of Object.values(targets)) list.forEach((t) => starts.push(t))
  }
  const problems = []
  const reached = new Set()
  const queue = starts.map((s) => path.posix.normalize(s))
  while (queue.length > 0) {
    const file = queue.pop()
    if (reached.has(file)) continue
    if (!files.has(file)) {
      problems.push(`${file}: named as types, not packed`)
      continue
    }
    reached.add(file)
    const text = (await sh('tar', ['xzf', tarball, '-O', `package/${file}`])).stdout
    const { importedFiles, referencedFiles } = ts.preProcessFile(text, true, true)
    for (const { fileName } of [...importedFiles, ...referencedFiles]) {
      if (!fileName.startsWith('.') || /\.wasm(\?|$)/.test(fileName)) continue
      const base = path.posix.join(path.posix.dirname(file), fileName)
      const stem = base.replace(/\.([cm]?)js$/, '.d.$1ts')
      const found = [stem, `${base}.d.ts`, `${base}/index.d.ts`].find(
        (c) => isDeclaration(c) && files.has(c),
      )
      if (found === undefined) problems.push(`${file} imports ${fileName}: no declaration packed`)
      else queue.push(found)
    }
  }
  const internal = [...files].filter((f) => isDeclaration(f) && !reached.has(f)).sort()
  if (internal.length > 0) {
    problems.push(
      `${internal.length} declaration file(s) no entry point's types reach: ${internal.join(' ')}`,
    )
  }
  if (problems.length > 0) throw new Error(problems.join('\n'))
  return `${reached.size} files: ${[...reached].sort().join(' ')}`
})

await check(`publint ${tools.publint}`, async () => {
  const { publint } = await import('publint')
  const { formatMessage } = await import('publint/utils')
  const buf = fs.readFileSync(tarball)
  const tar = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)
  const { messages, pkg } = await publint({ pack: { tarball: tar }, level: 'suggestion' })
  const bad = messages.filter((m) => !(m.code in PUBLINT_IGNORED))
  if (bad.length > 0) {
    throw new Error(
      bad.map((m) => `${m.type} ${m.code}: ${formatMessage(m, pkg, { color: false })}`).join('\n'),
    )
  }
})

for (const r of ATTW_RUNS) {
  await check(`@arethetypeswrong/cli ${tools['@arethetypeswrong/cli']}: ${r.name}`, async () => {
    const rules = Object.keys(r.ignored)
    await sh(bin('attw'), [
      tarball,
      // The package ships its own types; do not look for @types/fleetcache on the registry.
      '--no-definitely-typed',
      '--format',
      'table-flipped',
      '--no-color',
      '--no-emoji',
      ...r.args,
      ...(rules.length > 0 ? ['--ignore-rules', ...rules] : []),
    ])
    return rules.length > 0
      ? `ignored: ${rules.map((k) => `${k}, ${r.ignored[k]}`).join('; ')}`
      : 'no rule ignored'
  })
}

// ---- a fresh project ---------------------------------------------------------------------------

const project = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-package-'))
const write = (name, text) => fs.writeFileSync(path.join(project, name), text)
// No Redis and no fleetcache settings: loading an entry must not need any.
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/REDIS|^FLEETCACHE_|^NODE_OPTIONS$/.test(k)),
)
let installed = false

await check('a fresh project installs the tarball', async () => {
  write('package.json', JSON.stringify({ name: 'consumer', version: '0.0.0', private: true }))
  // @types/node: a TypeScript project has it; the version this directory pins.
  await sh(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      tarball,
      `@types/node@${tools['@types/node']}`,
    ],
    { cwd: project, env },
  )
  const got = JSON.parse(
    fs.readFileSync(path.join(project, 'node_modules', 'fleetcache', 'package.json'), 'utf8'),
  )
  if (got.version !== version) throw new Error(`installed ${got.version}, expected ${version}`)
  installed = true
})

for (const f of fs.readdirSync(path.join(here, 'consumer'))) {
  fs.copyFileSync(path.join(here, 'consumer', f), path.join(project, f))
}

// The scripts' last line says what they covered (the lines before it are fleetcache's own logs).
const node = async (file) =>
  (await sh(process.execPath, [file], { cwd: project, env })).stdout.trim().split('\n').pop()

await check('CommonJS: require every entry point', async () => {
  if (!installed) throw new Error('not installed')
  return node('cjs.cjs')
})

await check('ESM: import every entry point', async () => {
  if (!installed) throw new Error('not installed')
  return node('esm.mjs')
})

// The bin loads the tools module at start, so this also checks that it is installed and loads.
await check('the fleetcache bin: --version', async () => {
  if (!installed) throw new Error('not installed')
  const r = await sh(path.join(project, 'node_modules', '.bin', 'fleetcache'), ['--version'], {
    cwd: project,
    env,
  })
  if (r.stdout !== `${version}\n`) throw new Error(`printed ${JSON.stringify(r.stdout)}`)
  return r.stdout.trim()
})

for (const config of ['node16', 'nodenext', 'bundler', 'node10', 'workerd']) {
  await check(`TypeScript ${tools.typescript}: tsc --noEmit, ${config}`, async () => {
    if (!installed) throw new Error('not installed')
    await sh(bin('tsc'), ['-p', `tsconfig.${config}.json`], { cwd: project, env })
  })
}

// ---- the same, installed by pnpm ---------------------------------------------------------------

// pnpm's default layout: node_modules/fleetcache is a symlink into
// node_modules/.pnpm/fleetcache@<spec>_<peers>/node_modules/fleetcache, and a package sees only
// its declared dependencies. The version tests/e2e/pnpm-app pins (its `packageManager`), from the
// npm registry through npx. tests/e2e/pnpm.test.mjs builds and runs a Next app on such an install.
const pnpmSpec = JSON.parse(
  fs.readFileSync(path.join(repoRoot, 'tests', 'e2e', 'pnpm-app', 'package.json'), 'utf8'),
).packageManager
const pnpmProject = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-package-pnpm-'))
let pnpmInstalled = false

await check(
  `${pnpmSpec}: a fresh project installs the tarball (isolated node_modules)`,
  async () => {
    fs.writeFileSync(
      path.join(pnpmProject, 'package.json'),
      JSON.stringify({ name: 'consumer-pnpm', version: '0.0.0', private: true }),
    )
    await sh('npx', ['-y', pnpmSpec, 'add', tarball, '--reporter=append-only'], {
      cwd: pnpmProject,
      env,
    })
    const real = fs.realpathSync(path.join(pnpmProject, 'node_modules', 'fleetcache'))
    if (!real.includes(`${path.sep}.pnpm${path.sep}`)) {
      throw new Error(`node_modules/fleetcache is ${real}, not in pnpm's node_modules/.pnpm`)
    }
    pnpmInstalled = true
    return path.relative(pnpmProject, real)
  },
)

for (const f of ['cjs.cjs', 'esm.mjs']) {
  fs.copyFileSync(path.join(here, 'consumer', f), path.join(pnpmProject, f))
}
const pnpmNode = async (file) =>
  (await sh(process.execPath, [file], { cwd: pnpmProject, env })).stdout.trim().split('\n').pop()

await check(`${pnpmSpec}: CommonJS and ESM use every entry point`, async () => {
  if (!pnpmInstalled) throw new Error('not installed')
  return `${await pnpmNode('cjs.cjs')}; ${await pnpmNode('esm.mjs')}`
})

// pnpm's bin is a shell script that runs the package's cli/main.js from node_modules/.pnpm.
await check(`${pnpmSpec}: the fleetcache bin: --version`, async () => {
  if (!pnpmInstalled) throw new Error('not installed')
  const r = await sh(path.join(pnpmProject, 'node_modules', '.bin', 'fleetcache'), ['--version'], {
    cwd: pnpmProject,
    env,
  })
  if (r.stdout !== `${version}\n`) throw new Error(`printed ${JSON.stringify(r.stdout)}`)
  return r.stdout.trim()
})

// What Next is told: the handlers by absolute path, and a tracing glob, relative to the project,
// that reaches the .wasm through pnpm's directory (Next's tracing cannot see the glue's fs read).
await check(
  `${pnpmSpec}: withFleetcache's handler paths and tracing glob reach the files`,
  async () => {
    if (!pnpmInstalled) throw new Error('not installed')
    const script = `
    const fs = require('node:fs')
    const path = require('node:path')
    const { withFleetcache } = require('fleetcache/config')
    const c = withFleetcache({}, { nextVersion: '16.5.0' })
    const files = [c.cacheHandler, c.cacheHandlers.default, c.cacheHandlers.remote]
    const globs = c.outputFileTracingIncludes['/*']
    if (globs.length !== 1 || !globs[0].endsWith('/wasm/fleetcache_wasm_bg.wasm'))
      throw new Error('globs: ' + globs)
    files.push(path.join(process.cwd(), globs[0]))
    // No exclude: the CLI's code and tools module are out of every trace's reach (decision 0011).
    if (c.outputFileTracingExcludes !== undefined)
      throw new Error('excludes: ' + JSON.stringify(c.outputFileTracingExcludes))
    for (const f of files) if (!fs.existsSync(f)) throw new Error('no file at ' + f)
    for (const g of globs) if (!g.startsWith('node_modules/.pnpm/')) throw new Error('glob ' + g)
    console.log(globs[0])
  `
    const r = await sh(process.execPath, ['-e', script], { cwd: pnpmProject, env })
    return r.stdout.trim()
  },
)

console.log(`package: ${passed} passed, ${failed} failed`)
if (failed > 0) {
  console.log(`kept the projects: ${project} ${pnpmProject}`)
  process.exitCode = 1
} else {
  fs.rmSync(project, { recursive: true, force: true })
  fs.rmSync(pnpmProject, { recursive: true, force: true })
}
