// A TCP proxy to a local Redis that delivers Redis's replies at a fixed rate, standing in for a
// network link slower than loopback (bench/compression.mjs runs it in a child process, so its
// work slows no measurement of the parent).
//
//   node bench/lib/throttle.mjs <redis-port> <bytes-per-second>
//
// Prints the port it listens on (127.0.0.1) and runs until killed. Requests pass at once. Each
// piece of a reply is released, in order, when a link of that rate would have finished sending
// it (the link busy with the pieces before it): on a timer, and for the last millisecond by
// polling (`setImmediate`), since timers resolve milliseconds at best.
import net from 'node:net'

const [target, rateArg] = process.argv.slice(2).map(Number)
const perMs = rateArg / 1000

const server = net.createServer((client) => {
  const upstream = net.connect(target, '127.0.0.1')
  // Without it, Nagle's algorithm holds a paced piece back until the previous one is
  // acknowledged, and a delayed acknowledgement costs 40 ms.
  client.setNoDelay(true)
  upstream.setNoDelay(true)
  client.pipe(upstream)
  client.on('error', () => upstream.destroy())
  upstream.on('error', () => client.destroy())
  client.on('close', () => upstream.destroy())
  const queue = []
  let busyUntil = 0
  let timer
  const release = () => {
    timer = undefined
    const now = performance.now()
    while (queue.length > 0 && queue[0].at <= now) client.write(queue.shift().piece)
    if (queue.length === 0) return
    // Timers fire to the millisecond at best: the last millisecond is waited out by polling.
    const wait = queue[0].at - now
    timer = wait > 1.5 ? setTimeout(release, wait - 1) : setImmediate(release)
  }
  upstream.on('data', (piece) => {
    busyUntil = Math.max(busyUntil, performance.now()) + piece.length / perMs
    queue.push({ piece, at: busyUntil })
    if (timer === undefined) release()
  })
})
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`)
})
