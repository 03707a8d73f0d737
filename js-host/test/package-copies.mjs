// Copies of the built package in one process, as two versions in node_modules put them there (a
// dependency that brings its own): package-versions.test.mjs, telemetry-versions.test.mjs.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** This checkout's package version. */
export const OURS = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')).version

/**
 * A copy of the built package at `<tmp>/<name>/node_modules/fleetcache`, its package.json's
 * version set to `version`; each package of `links` (its dependency, the Redis client, by
 * default) is this checkout's, linked beside it, so the copy finds it and no other.
 */
export function installCopy(tmp, name, version, links = ['redis']) {
  const modules = path.join(tmp, name, 'node_modules')
  const dir = path.join(modules, 'fleetcache')
  fs.mkdirSync(dir, { recursive: true })
  for (const d of ['dist', 'esm', 'wasm']) {
    fs.cpSync(path.join(pkg, d), path.join(dir, d), { recursive: true })
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8'))
  manifest.version = version
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2))
  for (const link of links) {
    const to = path.join(modules, link)
    fs.mkdirSync(path.dirname(to), { recursive: true })
    fs.symlinkSync(path.join(pkg, 'node_modules', link), to, 'dir')
  }
  return dir
}
