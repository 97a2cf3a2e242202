// Exponential backoff with full jitter (a uniform draw between 0 and the exponential
// cap): a crowd of clients that lost the same node spreads over the whole window
// instead of bunching at the cap. Same rule as clients/sdk/backoff.py.

export class Backoff {
  attempt = 0;
  constructor(
    readonly baseMs = 200,
    readonly capMs = 30_000,
    private readonly rng: () => number = Math.random,
  ) {
    if (!(baseMs > 0) || capMs < baseMs) throw new RangeError("need 0 < baseMs <= capMs");
  }

  /** The current window's upper bound: base * 2**attempt, capped. */
  ceiling(): number {
    return Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.attempt, 60));
  }

  /** A delay drawn uniformly from [0, ceiling), then widen the window. */
  nextDelay(): number {
    const delay = this.rng() * this.ceiling();
    this.attempt += 1;
    return delay;
  }

  /** After a success (a welcome): the next failure starts small again. */
  reset(): void {
    this.attempt = 0;
  }
}
