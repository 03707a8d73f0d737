// Certificates for the TLS tests, made with openssl: valid two days, EC P-256 keys.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

function openssl(dir, ...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 20_000 })
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

/** `<name>.key` and `<name>.crt` for `subject`, signed by the test CA; `ext`: an extension file. */
function issue(dir, name, subject, ext) {
  openssl(dir, 'req', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject)
  openssl(
    dir,
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    `${name}.crt`,
    '-days',
    '2',
    ...(ext === undefined ? [] : ['-extfile', ext]),
  )
}

/**
 * In `dir`: a CA (`ca.crt`, `ca.key`), a server certificate for 127.0.0.1 (`server.crt`,
 * `server.key`) and a client certificate (`client.crt`, `client.key`), both signed by it.
 */
export function makeCertificates(dir) {
  openssl(
    dir,
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=fleetcache test CA',
  )
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n')
  issue(dir, 'server', '/CN=127.0.0.1', 'san.ext')
  issue(dir, 'client', '/CN=fleetcache test client')
}
