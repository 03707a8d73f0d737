/**
 * The deadlines of Redis commands in flight, without a timer per command.
 *
 * A command's deadline is when it was sent plus its budget, and the budgets are few (one per
 * command kind, fixed at start), so within one budget the deadlines come in the order the
 * commands were sent: one queue per budget, in that order, and one timer per queue, armed for
 * its oldest command still waiting, serve them all. A `setTimeout` and `clearTimeout` per
 * command cost about 0.25 µs of a cache hit's CPU (a `Timeout` object, an async resource, a
 * timer list insertion and removal); a command here costs an object pushed and a flag set.
 * The timer is re-armed only when it fires, so while commands keep coming it fires about once
 * per budget. A queue's timer keeps the process alive exactly while a command of it waits, as
 * a timer per command did.
 */

/** One command's deadline: `settle` when its reply (or error) came first. */
export interface Deadline {
  settle(): void
}

/** A command waiting in a queue. */
class Waiting implements Deadline {
  settled = false

  constructor(
    private readonly queue: Queue,
    /** `performance.now()` at the deadline. */
    readonly at: number,
    readonly expire: () => void,
  ) {}

  settle(): void {
    if (this.settled) return
    this.settled = true
    this.queue.settled()
  }
}

/** The commands of one budget, in the order sent, and the timer for the oldest waiting. */
class Queue {
  private items: Waiting[] = []
  /** Index of the first item not yet done with (items before it are dropped lazily). */
  private head = 0
  /** Items neither settled nor expired. */
  private waiting = 0
  private timer: NodeJS.Timeout | undefined = undefined

  constructor(private readonly budgetMs: number) {}

  add(expire: () => void): Deadline {
    const w = new Waiting(this, performance.now() + this.budgetMs, expire)
    this.items.push(w)
    if (this.waiting++ === 0) {
      if (this.timer === undefined) this.arm(this.budgetMs)
      else this.timer.ref()
    }
    return w
  }

  /** A command settled: drop what is done at the head; let the process go if none waits. */
  settled(): void {
    if (--this.waiting === 0) this.timer?.unref()
    this.dropDone()
  }

  /** The timer's end: expire what is due, in order, and arm for the next one waiting. */
  private fire(): void {
    this.timer = undefined
    const now = performance.now()
    for (;;) {
      this.dropDone()
      const first = this.items[this.head]
      if (first === undefined) return
      if (first.at > now) {
        this.arm(first.at - now)
        return
      }
      first.settled = true
      this.head++
      this.waiting--
      // A throw from one expiry must not keep the others from theirs.
      try {
        first.expire()
      } catch {
        // The expiry rejects a promise; nothing it does is expected to throw.
      }
    }
  }

  private dropDone(): void {
    const items = this.items
    while (this.head < items.length && items[this.head]?.settled === true) this.head++
    if (this.head === items.length) {
      this.items = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= items.length) {
      this.items = items.slice(this.head)
      this.head = 0
    }
  }

  private arm(ms: number): void {
    // Node's timers count whole milliseconds: never early, at most about one late.
    this.timer = setTimeout(() => {
      this.fire()
    }, Math.ceil(ms))
    if (this.waiting === 0) this.timer.unref()
  }

  /** Items held (waiting, or settled behind one that waits): for tests. */
  get held(): number {
    return this.items.length - this.head
  }
}

/** Budgets with a queue of their own; a command of any other gets a queue (and timer) alone. */
const MAX_QUEUES = 16

/** The deadlines of one transport's commands, a queue per budget. */
export class Deadlines {
  private readonly queues = new Map<number, Queue>()

  /** Calls `expire` once `budgetMs` has passed, unless the returned deadline is settled first. */
  add(budgetMs: number, expire: () => void): Deadline {
    let q = this.queues.get(budgetMs)
    if (q === undefined) {
      q = new Queue(budgetMs)
      // The budgets are the engine's few; a caller's own beyond them is not kept.
      if (this.queues.size < MAX_QUEUES) this.queues.set(budgetMs, q)
    }
    return q.add(expire)
  }

  /** Commands held across the queues (waiting, or settled behind one that waits): for tests. */
  get held(): number {
    let n = 0
    for (const q of this.queues.values()) n += q.held
    return n
  }
}
