import { wasm, type Outcome } from './wasm'

/**
 * Bytes of a stored value handed to the engine to read the envelope header: enough for nearly
 * every entry, so the payload never crosses into wasm (decision 0002).
 */
const HEADER_WINDOW = 4096

/**
 * Has the engine judge a stored value from its first bytes, and once more with exactly the
 * header length it asks for when the window was too short (a long key or many tags).
 */
export function inspectWindow(
  value: Buffer,
  inspect: (prefix: Buffer) => Outcome,
  needed: () => number,
): Outcome {
  const outcome = inspect(value.subarray(0, HEADER_WINDOW))
  return outcome === wasm.Outcome.NeedMore ? inspect(value.subarray(0, needed())) : outcome
}
