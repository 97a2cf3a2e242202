// A bounded memory of recently delivered event ids. Cursors are opaque, so duplicates
// are recognised by event id; the window only has to cover what a resume can replay
// twice (a few frames around a reconnect).

export class RecentIds {
  private readonly order: string[] = [];
  private readonly set = new Set<string>();
  constructor(readonly capacity = 4096) {
    if (capacity < 1) throw new RangeError("capacity must be positive");
  }

  has(id: string): boolean {
    return this.set.has(id);
  }

  /** Remember `id`; false if it was already remembered (a duplicate). */
  add(id: string): boolean {
    if (this.set.has(id)) return false;
    this.set.add(id);
    this.order.push(id);
    if (this.order.length > this.capacity) this.set.delete(this.order.shift() as string);
    return true;
  }
}
