// Where two arms of a bench/page-cpu.mjs run (PAGECPU_PROFILE=<n>) differ in CPU, by function:
// V8's samples of every instance of each arm, as ms per request (the arm's instances pooled),
// self time (the function on top of the stack) and total time (the function anywhere on it,
// counted once per sample), and the functions whose time differs most between the arms.
//
//   node bench/profile-diff.mjs <log dir> <requests per instance> <arm A> <arm B> [top]
//
// An arm is a variant name without its last `+aa`, `+ab`, ... (`push`, `push+uc-floor-get`);
// its instances' profiles are <log dir>/<variant with + as _>.cpuprofile. Sampling at 200 µs
// over a few hundred requests: a difference under about 0.02 ms per request is noise.
import fs from 'node:fs'
import path from 'node:path'

const [dir, perInstance, armA, armB, topArg] = process.argv.slice(2)
if (!dir || !perInstance || !armA || !armB) {
  console.error(
    'usage: node bench/profile-diff.mjs <log dir> <requests per instance> <arm A> <arm B> [top]',
  )
  process.exit(2)
}
const TOP = Number(topArg ?? 25)
// PROFILE_UNDER=<text>: only the samples with a function whose key contains it on their stack
// (what a function's total time is made of).
const UNDER = process.env.PROFILE_UNDER

const armOf = (variant) => variant.replace(/\+a[a-z]$/, '')

// Per function (name, file, line): self and total ms over one profile.
function times(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const keyOf = (n) => {
    const { functionName, url, lineNumber } = n.callFrame
    // The floor's build is the same app in .next-floor: its functions are the same ones.
    const file = url
      ? url
          .replace(/^.*\/node_modules\//, '')
          .replace(/^file:\/\//, '')
          .replace(/^.*\/examples\/next-app\/\.next(-floor)?\//, '.next/')
      : ''
    return `${functionName || '(anonymous)'} ${file}:${String(lineNumber + 1)}`
  }
  const self = new Map()
  const total = new Map()
  const { samples, timeDeltas } = profile
  for (let i = 0; i < samples.length; i++) {
    // A sample's time is the gap to the next one (the last sample's is its own delta).
    const ms = (i + 1 < timeDeltas.length ? timeDeltas[i + 1] : timeDeltas[i]) / 1000
    let n = byId.get(samples[i])
    if (UNDER !== undefined) {
      let m = n
      while (m && !keyOf(m).includes(UNDER)) m = byId.get(parent.get(m.id))
      if (!m) continue
    }
    self.set(keyOf(n), (self.get(keyOf(n)) ?? 0) + ms)
    const seen = new Set()
    while (n) {
      const k = keyOf(n)
      if (!seen.has(k)) {
        seen.add(k)
        total.set(k, (total.get(k) ?? 0) + ms)
      }
      n = byId.get(parent.get(n.id))
    }
  }
  return { self, total }
}

const arms = new Map()
for (const f of fs.readdirSync(dir)) {
  if (!f.endsWith('.cpuprofile')) continue
  const variant = f.slice(0, -'.cpuprofile'.length).replace(/_/g, '+')
  const arm = armOf(variant)
  if (arm !== armA && arm !== armB) continue
  const t = times(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')))
  const a = arms.get(arm) ?? { n: 0, self: new Map(), total: new Map() }
  a.n++
  for (const kind of ['self', 'total']) {
    for (const [k, v] of t[kind]) a[kind].set(k, (a[kind].get(k) ?? 0) + v)
  }
  arms.set(arm, a)
}
for (const arm of [armA, armB]) {
  if (!arms.has(arm)) throw new Error(`no profile of arm ${arm} in ${dir}`)
}

const per = (arm, kind, k) => {
  const a = arms.get(arm)
  return (a[kind].get(k) ?? 0) / (a.n * Number(perInstance))
}
const sum = (arm) => [...arms.get(arm).self.values()].reduce((x, y) => x + y, 0)
for (const arm of [armA, armB]) {
  const a = arms.get(arm)
  console.log(
    `${arm}: ${String(a.n)} instance(s), ${(sum(arm) / (a.n * Number(perInstance))).toFixed(3)} ms sampled per request (idle included)`,
  )
}
for (const kind of ['self', 'total']) {
  const keys = new Set([...arms.get(armA)[kind].keys(), ...arms.get(armB)[kind].keys()])
  const rows = [...keys]
    .filter((k) => !k.startsWith('(idle)') && !k.startsWith('(root)'))
    .map((k) => [k, per(armA, kind, k), per(armB, kind, k)])
    .sort((x, y) => Math.abs(y[1] - y[2]) - Math.abs(x[1] - x[2]))
    .slice(0, TOP)
  console.log(`\n${kind} time, ms per request: ${armA} | ${armB} | difference`)
  for (const [k, a, b] of rows) {
    console.log(`${a.toFixed(4)}  ${b.toFixed(4)}  ${(a - b).toFixed(4)}  ${k}`)
  }
}
