// A free TCP port on the loopback interface: bind port 0, read the port the kernel picked, close.
// (Another process could take it before our server binds it; callers that start servers retry.)
import net from 'node:net'

export function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', reject)
    server.listen({ port: 0, host, exclusive: true }, () => {
      const { port } = server.address()
      server.close((err) => (err ? reject(err) : resolve(port)))
    })
  })
}
