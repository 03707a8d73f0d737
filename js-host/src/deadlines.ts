import { now } from './clock'

/**
 * Every Redis command's deadline in one queue with one timer. A timer per command (`setTimeout`,
 * then `clearTimeout` when the reply comes, the usual case) cost 140 ns of CPU per command at 16
 * in flight and 330 ns at 1 (bench of the transport alone, 2026-12-05). Commands register a
 * deadline and a callback and drop it when they settle; the one timer is armed for the earliest
 * deadline and re-armed only when an earlier one comes in (a shorter budget) or when it fires.
 * Dropping the entry the timer is armed for leaves the timer as it is: it fires for nothing and
 * is armed for the earliest deadline left, so under a steady load it is set once per budget, not
 * once per command.
 *
 * Entries wait in one FIFO lane per budget: with one clock, the deadlines of a budget come in
 * the order they are registered, so a lane is sorted by construction and registering is an
 * append. A settled entry is only marked; it leaves when it reaches its lane's head (at once
 * when commands settle in order, as on one connection), so a lane holds the commands
 * registered since its oldest pending one, at most a budget's worth, and nothing they held.
 */

/** What the queue needs of a timer: Node's `Timeout`, or a test's fake. */
export interface TimerHandle {
  /** Keeps the process alive while the timer is armed (Node's default for a timer). */
  ref?(): unknown
  /** Lets the process exit though the timer is armed. */
  unref?(): unknown
}

/** The clock and timers a queue runs on: Node's by default, a fake one in tests. */
export interface TimerHost {
  /** Milliseconds on a clock that never goes back (clock.ts `now()` by default). */
  now(): number
  /** Calls `fire` once, `ms` (whole, ≥ 1) milliseconds from now by the host's timers. */
  start(fire: () => void, ms: number): TimerHandle
  /** Cancels a timer `start` returned that has not fired. */
  stop(timer: TimerHandle): void
  /**
   * Calls `fn` once the I/O that is waiting has been read (Node: `setImmediate`, after the
   * event loop's poll phase). Without it a fired timer is handled at once.
   */
  defer?(fn: () => void): void
}

/** Node's own: clock.ts's clock (monotonic: a fixed origin plus `performance.now()`). */
const NODE_TIMERS: TimerHost = {
  now,
  start: (fire, ms) => setTimeout(fire, ms),
  stop: (timer) => {
    clearTimeout(timer as ReturnType<typeof setTimeout>)
  },
  defer: (fn) => {
    setImmediate(fn)
  },
}

/** Node's limit for a timer's delay; a later deadline is reached through several timers. */
const MAX_DELAY_MS = 0x7fff_ffff

/** A registered deadline; hand it back to {@link DeadlineQueue.settle}. */
export interface Deadline {
  /** Opaque: only the queue reads it. */
  readonly __deadline: never
}

/** The entries of one budget, oldest first (a singly linked list: appends and head pops). */
interface Lane {
  readonly ms: number
  head: Entry | undefined
  tail: Entry | undefined
}

interface Entry {
  at: number
  next: Entry | undefined
  readonly lane: Lane
  /** Dropped once fired or settled, so what it holds (a reject, a command's argv) goes too. */
  onTimeout: (() => void) | undefined
}

/**
 * Pending deadlines, in lanes by budget, with one timer. The timer keeps the process alive
 * while a deadline is pending, as a timer per command did, and not once none is.
 */
export class DeadlineQueue {
  private readonly lanes = new Map<number, Lane>()
  /** The lane of the last registration: most commands share a budget, so no map lookup. */
  private last: Lane | undefined
  /** Registered, neither fired nor settled. */
  private live = 0
  private timer: TimerHandle | undefined
  /** When the armed timer fires (host clock); +Infinity when none is armed. */
  private timerAt = Number.POSITIVE_INFINITY
  /** Whether the armed timer holds the process alive: exactly while `live` > 0. */
  private held = false

  constructor(private readonly host: TimerHost = NODE_TIMERS) {}

  /** Deadlines pending: registered, neither fired nor settled. */
  get pending(): number {
    return this.live
  }

  /** Entries held, settled ones not yet dropped included (for tests of the bound). */
  get retained(): number {
    let n = 0
    for (const lane of this.lanes.values()) for (let e = lane.head; e; e = e.next) n++
    return n
  }

  /**
   * Calls `onTimeout` once `ms` have passed since `start` on the host's clock (never earlier;
   * later by the timers' granularity or a busy event loop), unless {@link settle} is called
   * first. `start` is a reading of the host's clock the caller has just taken (it saves a
   * read, about 0.1 µs on a virtualized host); without it the queue reads the clock. Should
   * `onTimeout` throw, the others due with it are still called and the first error is thrown
   * from the timer after them.
   */
  add(ms: number, onTimeout: () => void, start?: number): Deadline {
    // A NaN or negative budget is due at once, as `setTimeout` takes it.
    const budget = ms > 0 ? ms : 0
    let lane = this.last
    if (lane?.ms !== budget) {
      lane = this.lanes.get(budget)
      if (lane === undefined) {
        lane = { ms: budget, head: undefined, tail: undefined }
        this.lanes.set(budget, lane)
      }
      this.last = lane
    }
    let at = (start ?? this.host.now()) + budget
    const tail = lane.tail
    // A caller's `start` older than the previous one's would break the lane's order: the
    // later deadline of the two is kept (never earlier than asked).
    if (tail !== undefined && tail.at > at) at = tail.at
    const e: Entry = { at, next: undefined, lane, onTimeout }
    if (tail === undefined) lane.head = e
    else tail.next = e
    lane.tail = e
    this.live++
    if (at < this.timerAt) this.arm(at)
    else if (!this.held) {
      this.held = true
      this.timer?.ref?.()
    }
    return e as unknown as Deadline
  }

  /**
   * Drops a deadline before it fires; a second call, or one after it fired, does nothing.
   * True when it dropped it (it had neither fired nor been dropped).
   */
  settle(deadline: Deadline): boolean {
    const e = deadline as unknown as Entry
    if (e.onTimeout === undefined) return false
    e.onTimeout = undefined
    const lane = e.lane
    if (lane.head === e) trim(lane)
    if (--this.live === 0 && this.held) {
      this.held = false
      this.timer?.unref?.()
    }
    return true
  }

  /** Arms the one timer for `at` (host clock), replacing any armed one. */
  private arm(at: number): void {
    if (this.timer !== undefined) this.host.stop(this.timer)
    const delay = Math.min(Math.max(1, Math.ceil(at - this.host.now())), MAX_DELAY_MS)
    this.timer = this.host.start(() => {
      this.timer = undefined
      this.timerAt = Number.POSITIVE_INFINITY
      // Replies that came in while the event loop was blocked (a long synchronous render, a
      // garbage collection) are read in the poll phase after this timer's: the deadlines are
      // called back only then, so a stall of this process is not taken for a Redis that did
      // not answer (no read missed, nothing counted by the breaker). A deadline is met at most
      // one turn of the event loop later for it.
      if (this.host.defer === undefined) this.fire()
      else
        this.host.defer(() => {
          this.fire()
        })
    }, delay)
    this.timerAt = at
    this.held = true
  }

  /** The timer fired: calls back every entry due, in deadline order, and arms for the next. */
  private fire(): void {
    // A registration since the timer fired may have armed another: `arm` below replaces it.
    this.held = false
    // Node's timers count whole milliseconds of the event loop's clock: one fires up to 1 ms
    // early by this clock (setTimeout(10) after 9.2 ms, measured). What is not due by this
    // clock waits for the next arming, so no deadline is called back early.
    const t = this.host.now()
    const due: Entry[] = []
    let lanesDue = 0
    let next = Number.POSITIVE_INFINITY
    for (const lane of this.lanes.values()) {
      const before = due.length
      for (let e = lane.head; e !== undefined && e.at <= t; e = lane.head) {
        if (e.onTimeout !== undefined) due.push(e)
        lane.head = e.next
        e.next = undefined
      }
      if (due.length > before) lanesDue++
      trim(lane)
      const head = lane.head
      if (head === undefined) {
        this.lanes.delete(lane.ms)
        if (this.last === lane) this.last = undefined
      } else if (head.at < next) next = head.at
    }
    // Each lane's share is in order already; only several lanes' need merging.
    if (lanesDue > 1) due.sort((a, b) => a.at - b.at)
    const calls: (() => void)[] = []
    for (const e of due) {
      if (e.onTimeout !== undefined) calls.push(e.onTimeout)
      e.onTimeout = undefined
    }
    this.live -= calls.length
    if (next !== Number.POSITIVE_INFINITY) this.arm(next)
    else if (this.timer !== undefined) {
      // Armed since the timer fired, for deadlines settled since: none is pending.
      this.host.stop(this.timer)
      this.timer = undefined
      this.timerAt = Number.POSITIVE_INFINITY
    }
    let failed = false
    let error: unknown
    for (const f of calls) {
      try {
        f()
      } catch (err) {
        if (!failed) error = err
        failed = true
      }
    }
    if (failed) throw error
  }
}

/** Drops the settled entries at the head of `lane`. */
function trim(lane: Lane): void {
  let e = lane.head
  while (e !== undefined && e.onTimeout === undefined) {
    const n = e.next
    e.next = undefined
    e = n
  }
  lane.head = e
  if (e === undefined) lane.tail = undefined
}

/** The process's queue: every transport's commands share its one timer. */
export const deadlines = new DeadlineQueue()
