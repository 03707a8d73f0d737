// The `fleetcache` command's own flags, which need no Redis: `--version` prints the package's
// version, and usage errors exit 2. The commands that talk to Redis are tested end to
// end in tests/e2e/cli.test.mjs (and through Sentinel and TLS in sentinel / tls.test.mjs).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url))
const { version } = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
const run = promisify(execFile)

// No Redis variables: these flags must not need a connection.
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/REDIS|^FLEETCACHE_/.test(k)),
)

async function cli(args) {
  try {
    const r = await run(process.execPath, [CLI, ...args], { env, timeout: 30_000 })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    if (typeof err.code !== 'number') throw err
    return { code: err.code, stdout: err.stdout, stderr: err.stderr }
  }
}

describe('the CLI module', () => {
  test('the CLI loads the tools module and not the server module', async () => {
    // Printed at exit by a preload: which wasm-bindgen glues the process loaded.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-cli-'))
    const hook = path.join(dir, 'glues.cjs')
    fs.writeFileSync(
      hook,
      `process.on('exit', () => process.stderr.write(JSON.stringify(Object.keys(require.cache).filter((f) => f.endsWith('fleetcache_wasm.js')))))`,
    )
    try {
      const r = await run(process.execPath, ['--require', hook, CLI, '--version'], {
        env,
        timeout: 30_000,
      })
      const root = fileURLToPath(new URL('..', import.meta.url))
      const glues = JSON.parse(r.stderr).map((f) =>
        path.relative(root, f).split(path.sep).join('/'),
      )
      assert.deepEqual(glues, ['wasm/tools/node/fleetcache_wasm.js'])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  // The handover is this copy's own (wasm-choice.ts's object): a value on a process-wide symbol,
  // the `true` a CLI of an earlier build set there (Symbol.for('fleetcache.wasm-tools')) or
  // another copy's module, is not taken for the engine by a server process's wasm.ts.
  for (const [what, value] of [
    ['true, as an earlier build set it', 'true'],
    ["another copy's module", '{ Engine: class {} }'],
  ]) {
    test(`a server ignores the process-wide symbol holding ${what}: it loads its server module`, async () => {
      const script = `
        globalThis[Symbol.for('fleetcache.wasm-tools')] = ${value}
        const { wasm } = require(${JSON.stringify(fileURLToPath(new URL('../dist/wasm.js', import.meta.url)))})
        const engine = new wasm.Engine({ prefix: 'p', deployment: 'd' })
        const glues = Object.keys(require.cache).filter((f) => f.endsWith('fleetcache_wasm.js'))
        process.stdout.write(JSON.stringify({ deployment: engine.deployment, glues }))
      `
      const r = await run(process.execPath, ['-e', script], { env, timeout: 30_000 })
      const root = fileURLToPath(new URL('..', import.meta.url))
      const out = JSON.parse(r.stdout)
      assert.equal(out.deployment, 'd')
      assert.deepEqual(
        out.glues.map((f) => path.relative(root, f).split(path.sep).join('/')),
        ['wasm/node/fleetcache_wasm.js'],
      )
    })
  }
})

describe('fleetcache CLI flags', () => {
  for (const flag of ['--version', '-v']) {
    test(`${flag} prints the package version and exits 0`, async () => {
      const r = await cli([flag])
      assert.deepEqual(r, { code: 0, stdout: `${version}\n`, stderr: '' })
    })
  }

  test('--version wins over a command, which then needs no Redis URL', async () => {
    const r = await cli(['stats', '--version'])
    assert.deepEqual(r, { code: 0, stdout: `${version}\n`, stderr: '' })
  })

  // docs/observability.md: a usage error writes its `fleetcache: <error>` line, then the usage,
  // to stderr (stdout carries a command's result only). With no command at all the usage went
  // to stdout, with no error line.
  test('no command is a usage error (exit 2) like the others: its line and the usage on stderr', async () => {
    const r = await cli([])
    assert.equal(r.code, 2)
    assert.equal(r.stdout, '')
    assert.match(r.stderr, /^fleetcache: no command\n\nfleetcache <command> \[options\]\n/)
  })

  test('help lists --version', async () => {
    const r = await cli(['help'])
    assert.equal(r.code, 0)
    assert.match(r.stdout, /--version/)
  })

  // The seed's default deployment, as docs/observability.md states it: with useSkewCookie not
  // NEXT_DEPLOYMENT_ID (its servers empty it), unless runtimeServerDeploymentId is on too (every
  // server of that build reads NEXT_DEPLOYMENT_ID as it is, and so does the seed). The text left
  // the exception out.
  test("help gives the seed's default deployment with both exceptions", async () => {
    const r = await cli(['help'])
    const seed = r.stdout.slice(r.stdout.indexOf('  seed '), r.stdout.indexOf('\nOptions:'))
    assert.match(
      seed.replace(/\s+/g, ' '),
      /\(default: FLEETCACHE_DEPLOYMENT_ID, NEXT_DEPLOYMENT_ID, the build's next\.config deploymentId, BUILD_ID; with useSkewCookie \(Next 16\.1 on\), the same without NEXT_DEPLOYMENT_ID, unless runtimeServerDeploymentId is on too\)/,
    )
  })

  test('a Redis URL without a scheme is refused in the words the server uses, naming where it came from', async () => {
    const r = await cli(['stats', '--redis', 'localhost:6390'])
    assert.equal(r.code, 2)
    assert.match(
      r.stderr,
      /^fleetcache: --redis: must be a redis:\/\/ or rediss:\/\/ URL such as redis:\/\/localhost:6379, got "localhost:6390" \(no scheme\)\n/,
    )
  })

  // A mistyped command is named as such before anything needs Redis: without a URL it was
  // reported as "no Redis URL", and with one the CLI connected first.
  test('an unknown command is a usage error (exit 2) that names it, with or without Redis', async () => {
    for (const args of [['stat'], ['stat', '--redis', 'redis://127.0.0.1:1']]) {
      const r = await cli(args)
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, /^fleetcache: unknown command "stat"\n/)
    }
  })

  // A command's own arguments are checked before anything needs Redis, as a command's name is:
  // `seed` on a directory without a build said "no Redis URL" without one, and with an
  // unreachable one exited 1 on the refused connection instead of 2 naming the directory.
  test("a command's usage errors come before the Redis URL is looked for or a connection opened", async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-cli-'))
    try {
      const cases = [
        [['seed'], 'seed needs the .next directory'],
        [['seed', empty], `seed: no Next.js build in ${empty}: `],
        [['purge'], 'purge needs --deployment <id>'],
        [['inspect'], 'inspect needs a Redis key or --cache-key'],
        [['inspect', '--cache-key', 'k'], 'inspect --cache-key needs --deployment'],
        [['tags', '--limit', '0'], '--limit must be a positive integer'],
        [['purge', '--deployment', 'd', '--batch', 'x'], '--batch must be a positive integer'],
        [['stats', '--max-keys', '0'], '--max-keys must be a positive integer'],
      ]
      for (const [args, message] of cases) {
        for (const redis of [[], ['--redis', 'redis://127.0.0.1:1']]) {
          const r = await cli([...args, ...redis])
          assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
          assert.ok(r.stderr.startsWith(`fleetcache: ${message}`), `${args.join(' ')}: ${r.stderr}`)
        }
      }
    } finally {
      fs.rmSync(empty, { recursive: true, force: true })
    }
  })

  // An empty value is no value: `inspect --cache-key ""` was accepted and read the key of the
  // empty cache key (`no value at fleetcache:<dep>:inc:{e3b0c4...}:e`, exit 1), `--prefix ""`
  // scanned keys under no prefix, `seed ""` looked for a build in the current directory.
  // Every option that takes a value, and every positional, refuses one that is empty (exit 2).
  test('an empty option value or positional is a usage error, before any connection', async () => {
    const cases = [
      [['inspect', '--cache-key', '', '--deployment', 'd'], '--cache-key must not be empty'],
      [['inspect', '--cache-key', 'k', '--deployment', ''], '--deployment must not be empty'],
      [
        ['inspect', '--cache-key', 'k', '--deployment', 'd', '--interface', ''],
        '--interface must not be empty',
      ],
      [['inspect', ''], 'inspect needs a Redis key or --cache-key'],
      [['purge', '--deployment', ''], '--deployment must not be empty'],
      [['seed', ''], 'seed needs the .next directory'],
      [['seed', '.', '--deployment', ''], '--deployment must not be empty'],
      [['stats', '--prefix', ''], '--prefix must not be empty'],
      [['stats', '--redis', ''], '--redis must not be empty'],
      [['stats', '--max-keys', ''], '--max-keys must be a positive integer'],
      [['tags', '--limit', ''], '--limit must be a positive integer'],
      [['purge', '--deployment', 'd', '--batch', ''], '--batch must be a positive integer'],
    ]
    for (const [args, message] of cases) {
      // --redis given twice: the last wins, so the empty one in `cases` is the one parsed.
      const redis = args.includes('--redis') ? [] : ['--redis', 'redis://127.0.0.1:1']
      const r = await cli([...args, ...redis])
      assert.equal(r.code, 2, `${JSON.stringify(args)}: ${r.stderr}`)
      assert.ok(
        r.stderr.startsWith(`fleetcache: ${message}`),
        `${JSON.stringify(args)}: ${r.stderr}`,
      )
    }
  })

  // `positiveInt` read its value with Number(): `--limit ' 5 '`, `0x10`, `1e3`, `5.0`, `+5` were
  // all accepted (as 5, 16, 1000, 5, 5). A count is decimal digits only, for every integer
  // option; anything else is a usage error before any connection. (`--opt=value`: parseArgs
  // takes a separate '-5' for a flag.)
  test('an integer option takes decimal digits only: no spaces, sign, hex, exponent or fraction', async () => {
    const options = [
      [['tags'], '--limit'],
      [['stats'], '--max-keys'],
      [['purge', '--deployment', 'd'], '--batch'],
    ]
    for (const [command, option] of options) {
      for (const value of [
        ' 5 ',
        '0x10',
        '1e3',
        '5.0',
        '+5',
        '-5',
        '0',
        '00',
        '5_000',
        '9007199254740993',
      ]) {
        const r = await cli([...command, `${option}=${value}`, '--redis', 'redis://127.0.0.1:1'])
        assert.equal(r.code, 2, `${option} ${JSON.stringify(value)}: ${r.stderr}`)
        assert.ok(
          r.stderr.startsWith(`fleetcache: ${option} must be a positive integer`),
          `${option} ${JSON.stringify(value)}: ${r.stderr}`,
        )
      }
    }
    // Digits are accepted, a leading zero included: the refused connection is the next failure.
    const r = await cli(['tags', '--limit', '05', '--redis', 'redis://127.0.0.1:1'])
    assert.equal(r.code, 1, r.stderr)
  })

  // `--interface 'Bad Name'` was read only once connected: exit 1 on the refused connection (or,
  // with Redis there, on the engine's refusal) instead of 2 naming the option.
  test('an --interface the handlers cannot have is a usage error, before any connection', async () => {
    const inspect = (value) =>
      cli([
        'inspect',
        '--cache-key',
        'k',
        '--deployment',
        'd',
        '--interface',
        value,
        '--redis',
        'redis://127.0.0.1:1',
      ])
    for (const value of ['Bad Name', 'uc-', 'uc-Bad Name', 'x'.repeat(200)]) {
      const r = await inspect(value)
      assert.equal(r.code, 2, `${JSON.stringify(value)}: ${r.stderr}`)
      assert.ok(
        r.stderr.startsWith('fleetcache: --interface '),
        `${JSON.stringify(value)}: ${r.stderr}`,
      )
    }
    // Valid ones get as far as the connection.
    for (const value of ['inc', 'default', 'uc-default', 'remote']) {
      const r = await inspect(value)
      assert.equal(r.code, 1, `${JSON.stringify(value)}: ${r.stderr}`)
    }
  })

  // Blank is empty too, and a prefix the server refuses is no prefix: `stats --prefix ' '` (or
  // `--prefix 'my app'`) scanned keys no fleetcache process can write, `purge --deployment ' '`
  // looked for the hashed segment of a blank id, `inspect ' '` read the key ' '; each connected
  // first and reported what it (did not) find, exit 0 or 1.
  test('a blank option value or positional, or a prefix the server refuses, is a usage error', async () => {
    const cases = [
      [['stats', '--prefix', ' '], '--prefix must match [A-Za-z0-9._-]{1,64}, got " "'],
      [['stats', '--prefix', 'my app'], '--prefix must match [A-Za-z0-9._-]{1,64}, got "my app"'],
      [['tags', '--prefix', 'x'.repeat(65)], '--prefix must match [A-Za-z0-9._-]{1,64}'],
      [['inspect', '--cache-key', ' ', '--deployment', 'd'], '--cache-key must not be empty'],
      [['purge', '--deployment', ' \t'], '--deployment must not be empty'],
      [
        ['inspect', '--cache-key', 'k', '--deployment', 'd', '--interface', ' '],
        '--interface must not be empty',
      ],
      [['inspect', ' '], 'inspect needs a Redis key or --cache-key'],
      [['seed', ' '], 'seed needs the .next directory'],
    ]
    for (const [args, message] of cases) {
      const r = await cli([...args, '--redis', 'redis://127.0.0.1:1'])
      assert.equal(r.code, 2, `${JSON.stringify(args)}: ${r.stderr}`)
      assert.ok(
        r.stderr.startsWith(`fleetcache: ${message}`),
        `${JSON.stringify(args)}: ${r.stderr}`,
      )
    }
    // FLEETCACHE_PREFIX is read as --prefix is, and named as itself.
    const r = await run(process.execPath, [CLI, 'stats', '--redis', 'redis://127.0.0.1:1'], {
      env: { ...env, FLEETCACHE_PREFIX: 'my app' },
      timeout: 30_000,
    }).catch((err) => err)
    assert.equal(r.code, 2, r.stderr)
    assert.ok(
      r.stderr.startsWith(
        'fleetcache: FLEETCACHE_PREFIX must match [A-Za-z0-9._-]{1,64}, got "my app"',
      ),
      r.stderr,
    )
  })

  // `next start` takes REDIS_URL from the app's .env files (Next loads them into the server's
  // environment), the CLI does not: its message says so, or "set REDIS_URL" reads as wrong to
  // someone whose .env sets it.
  test('without a Redis URL, the usage error says the CLI reads no .env file', async () => {
    const r = await cli(['stats'])
    assert.equal(r.code, 2)
    assert.match(
      r.stderr,
      /^fleetcache: no Redis URL: pass --redis, or set REDIS_URL in the CLI's environment \(it does not read \.env files as next start does\)\n/,
    )
  })

  test('an unknown flag is a usage error (exit 2)', async () => {
    const r = await cli(['--no-such-flag'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /no-such-flag/)
  })
})

test('tags: the record of folded revalidations is named as such, not as a tag', async () => {
  const { FOLDED_TAG, formatTags } = await import('../cli/commands.js')
  const row = { version: 3, updatedAt: 1, stale: 1, expired: 1, pendingAt: 0, pendingExpiry: 0 }
  const out = formatTags([
    { ...row, tag: FOLDED_TAG },
    { ...row, tag: 'products' },
  ])
  assert.match(out, /\(folded revalidations: every tagged entry\)/)
  assert.match(out, /products/)
  assert.ok(!out.includes('\u0001'), out)
})

test('tags: a tag holding control characters is printed escaped, as inspect prints it', async () => {
  // A tag is the application's string (a slug from a request, say): raw, ESC drove the
  // terminal and a newline forged a row of the table.
  const { formatTags } = await import('../cli/commands.js')
  const row = { version: 3, updatedAt: 1, stale: 1, expired: 1, pendingAt: 0, pendingExpiry: 0 }
  const out = formatTags([{ ...row, tag: 'evil\u001b[2J\nforged' }])
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(out, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, JSON.stringify(out))
  assert.equal(out.split('\n').length, 2, JSON.stringify(out))
  assert.match(out, /evil\\x1b\[2J\\nforged$/)
})

test('stats: the scanned count is singular for one key and plural otherwise', async () => {
  const { formatStats } = await import('../cli/commands.js')
  const report = (scannedKeys) =>
    formatStats({
      rows: [],
      tags: 0,
      revalidationLog: 0,
      scannedKeys,
      truncated: false,
      sizeBy: 'MEMORY USAGE',
    })
  assert.match(report(1), /^scanned 1 key; /m)
  assert.match(report(0), /^scanned 0 keys; /m)
  assert.match(report(2), /^scanned 2 keys; /m)
})
