/**
 * What the engine needs from a Redis connection: raw commands with binary replies. node-redis
 * implements it for Node; any other runtime can supply its own (a fetch-based proxy, say).
 */
export interface Transport {
  /** Runs one command; bulk-string replies come back as Buffers. Rejects on error or deadline. */
  send(argv: readonly (string | Buffer)[]): Promise<unknown>
  /** Closes the connection; pending commands fail. */
  close(): Promise<void>
}

/**
 * Runs an `EVALSHA` argv planned by the engine, loading the script on `NOSCRIPT` (a Redis
 * restart or failover empties the script cache).
 */
export async function runScript(
  transport: Transport,
  argv: string[],
  source: (sha: string) => string | undefined,
): Promise<unknown> {
  try {
    return await transport.send(argv)
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
    const sha = argv[1] ?? ''
    const lua = source(sha)
    if (lua === undefined) throw err
    return transport.send(['EVAL', lua, ...argv.slice(2)])
  }
}
