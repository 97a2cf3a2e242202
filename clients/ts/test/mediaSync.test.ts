// MediaSync alone, on a fake clock with a simulated player: in step, at once, the hold,
// the budget, deletions, and seeks, rebuffers and restarts (issue 19 item 2). The same
// cases as the Python SDK's tests/test_media_time.py.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  type Event,
  EventSchema,
  IMMEDIATE_KINDS,
  type Listenable,
  MediaSync,
  type PlayerTime,
  Priority,
  type RoomItem,
  create,
} from "../src/index.js";

/** Milliseconds, moved by the test. */
class FakeTime {
  constructor(public nowMs = 1_000_000) {}
  readonly now = (): number => this.nowMs;
}

/** A simulated video player on a FakeTime: plays, stalls (rebuffer), seeks, restarts. */
class Player {
  private baseS: number;
  private sinceMs: number;
  playing = true;

  constructor(
    private readonly clock: FakeTime,
    public timeline: string,
    positionS: number,
  ) {
    this.baseS = positionS;
    this.sinceMs = clock.nowMs;
  }

  position(): number {
    return this.baseS + (this.playing ? (this.clock.nowMs - this.sinceMs) / 1000 : 0);
  }

  readonly time = (): PlayerTime => ({ positionS: this.position(), timelineId: this.timeline });

  seek(positionS: number, timeline?: string): void {
    this.baseS = positionS;
    this.sinceMs = this.clock.nowMs;
    this.timeline = timeline ?? this.timeline;
  }

  stall(): void {
    this.baseS = this.position();
    this.playing = false;
  }

  resume(): void {
    this.sinceMs = this.clock.nowMs;
    this.playing = true;
  }
}

type Kind = "flashSaleStarted" | "comment" | "messageDeleted";

function makeEvent(
  eventId: string,
  atS: number | undefined,
  { timeline = "live-1", kind = "flashSaleStarted" as Kind, user = "host" } = {},
): Event {
  const value =
    kind === "flashSaleStarted"
      ? ({ case: kind, value: { saleId: eventId } } as const)
      : kind === "comment"
        ? ({ case: kind, value: { text: eventId } } as const)
        : ({ case: kind, value: { eventId: eventId.replace(/^del-/, "") } } as const);
  const ms = atS === undefined ? 0 : Math.round(atS * 1000);
  return create(EventSchema, {
    roomId: "r",
    eventId,
    priority: kind === "comment" ? Priority.NORMAL : Priority.CRITICAL,
    payload: { kind: value },
    sender: { userId: user },
    mediaTime:
      atS === undefined
        ? undefined
        : { timelineId: timeline, position: { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 } },
  });
}

const item = (event: Event): RoomItem => ({ type: "event", roomId: "r", event });
const eventsOf = (items: RoomItem[]): Event[] => items.flatMap((i) => (i.type === "event" ? [i.event] : []));
const idsOf = (items: RoomItem[]): string[] => eventsOf(items).map((e) => e.eventId);
const atS = (event: Event): number =>
  Number(event.mediaTime?.position?.seconds ?? 0n) + (event.mediaTime?.position?.nanos ?? 0) / 1e9;

test("a flash sale shows when a player 5 s behind reaches it; own and untimed events at once", () => {
  const t = new FakeTime();
  const player = new Player(t, "live-1", 95);
  const sync = new MediaSync(player.time, { now: t.now, isOwn: (user) => user === "me" });
  const sale = makeEvent("sale-1", 100);
  sync.offer(item(sale));
  const own = makeEvent("my-comment", 100.2, { kind: "comment", user: "me" });
  sync.offer(item(own));
  const untimed = makeEvent("no-clock", undefined);
  sync.offer(item(untimed));
  assert.deepEqual(idsOf(sync.take()), ["my-comment", "no-clock"]);
  let shownAt: number | undefined;
  while (shownAt === undefined && t.nowMs < 1_020_000) {
    t.nowMs += 10;
    if (idsOf(sync.take()).includes("sale-1")) shownAt = t.nowMs;
  }
  assert.ok(shownAt !== undefined);
  assert.ok(Math.abs(player.position() - 100) <= 0.1, "shown within 100 ms of the player reaching T");
  assert.ok(Math.abs(shownAt - 1_000_000 - 5000) <= 100, "5 s after it arrived");
  assert.equal(sync.stats.releasedInStep, 1);
  assert.equal(sync.stats.releasedImmediately, 2);
  assert.equal(sync.stats.releasedByHold, 0);
});

test("seek back, seek forward, a rebuffer and a stream restart lose nothing and show nothing twice", () => {
  // A camera stream, events every 0.5 s, a player 5 s behind that stalls, seeks back,
  // seeks forward and follows a stream restart onto a new timeline.
  const t = new FakeTime(0);
  const player = new Player(t, "A", 0);
  player.stall(); // the player starts 5 s after the camera
  const sync = new MediaSync(player.time, { now: t.now, normalBudgetPerS: 1000 });
  const offered: Event[] = [];
  const shown: { timeline: string; position: number; event: Event }[] = [];
  let camera = { timeline: "A", startMs: 0 };
  const script = new Map<number, () => void>([
    [5000, () => player.resume()],
    [12_000, () => player.stall()], // rebuffer for 3 s
    [15_000, () => player.resume()],
    [18_000, () => player.seek(player.position() - 4)], // seek back 4 s
    [22_000, () => player.seek(21)], // seek forward, near the live edge
    [28_000, () => player.seek(0, "B")], // the player follows onto the new timeline
  ]);
  let n = 0;
  for (let step = 0; step < 6500; step++) {
    t.nowMs = step * 10;
    script.get(t.nowMs)?.();
    if (t.nowMs === 26_000) camera = { timeline: "B", startMs: 26_000 }; // the stream restarts
    // The camera makes an event every 0.5 s until 45 s; it arrives 0.1 s later.
    const sinceMs = t.nowMs - 100 - camera.startMs;
    if (t.nowMs <= 45_100 && sinceMs > 0 && sinceMs % 500 === 0) {
      n += 1;
      const kind = n % 2 ? "comment" : "flashSaleStarted";
      const event = makeEvent(`${camera.timeline}-${sinceMs}`, sinceMs / 1000, { timeline: camera.timeline, kind });
      offered.push(event);
      sync.offer(item(event));
    }
    const position = player.position();
    for (const event of eventsOf(sync.take())) shown.push({ timeline: player.timeline, position, event });
  }
  const ids = shown.map((s) => s.event.eventId);
  const timelines = offered.map((e) => e.mediaTime?.timelineId);
  // The camera: events at 0.5 to 25.5 s on A, then at 0.5 to 19 s on B.
  assert.deepEqual([timelines.filter((x) => x === "A").length, timelines.filter((x) => x === "B").length], [51, 38]);
  assert.equal(new Set(ids).size, ids.length, "nothing shown twice");
  assert.deepEqual([...ids].sort(), offered.map((e) => e.eventId).sort(), "nothing lost");
  assert.equal(sync.held, 0);
  assert.equal(sync.stats.omitted, 0);
  assert.equal(sync.stats.releasedByHold, 0);
  for (const { timeline, position, event } of shown) {
    if (timeline === event.mediaTime?.timelineId) {
      // Never before the picture: on its own timeline, the player had reached it.
      assert.ok(position >= atS(event) - 1e-9, event.eventId);
    } else {
      assert.deepEqual([event.mediaTime?.timelineId, timeline], ["A", "B"], "only the old timeline's rest shows early");
    }
  }
});

test("a player that does not play still shows everything after the hold", () => {
  const t = new FakeTime();
  const sync = new MediaSync(() => undefined, { now: t.now });
  sync.offer(item(makeEvent("sale-1", 100)));
  t.nowMs += 14_990;
  assert.deepEqual(sync.take(), []);
  assert.equal(sync.nextCheckMs(), 10);
  t.nowMs += 10;
  assert.deepEqual(idsOf(sync.take()), ["sale-1"]);
  assert.equal(sync.stats.releasedByHold, 1);
  assert.equal(sync.nextCheckMs(), undefined);
});

test("a player on a timeline the room never mentioned is past every event", () => {
  const t = new FakeTime();
  const player = new Player(t, "live-1", 0);
  const sync = new MediaSync(player.time, { now: t.now });
  sync.offer(item(makeEvent("a", 10)));
  sync.offer(item(makeEvent("b", 5, { timeline: "live-2" })));
  assert.deepEqual(sync.take(), []);
  player.seek(0, "live-2"); // live-2 came after live-1: a's timeline is in the past
  assert.deepEqual(idsOf(sync.take()), ["a"]);
  player.seek(0, "live-3"); // a restart nothing is stamped with yet
  assert.deepEqual(idsOf(sync.take()), ["b"]);
});

test("critical events are never dropped, normal ones are budgeted", () => {
  const t = new FakeTime();
  const player = new Player(t, "live-1", 0);
  const sync = new MediaSync(player.time, { now: t.now, normalBudgetPerS: 30, maxHeldNormal: 200 });
  const comments = Array.from({ length: 100 }, (_, i) => makeEvent(`c${i}`, 10 + i / 100, { kind: "comment" }));
  const sales = Array.from({ length: 5 }, (_, i) => makeEvent(`s${i}`, 10 + i));
  for (const event of [...comments, ...sales]) sync.offer(item(event));
  player.seek(60); // a seek forward makes all of them due at once
  const items = sync.take();
  const shown = eventsOf(items);
  assert.deepEqual(
    shown.filter((e) => e.priority === Priority.CRITICAL).map((e) => e.eventId),
    sales.map((e) => e.eventId),
  );
  assert.equal(shown.filter((e) => e.priority === Priority.NORMAL).length, 30);
  const omitted = items.reduce((sum, i) => sum + (i.type === "omitted" ? i.count : 0), 0);
  assert.equal(omitted, 70);
  assert.equal(sync.stats.omitted, 70);
});

test("held normal events are bounded and the excess reported before the next one shown", () => {
  const t = new FakeTime();
  const player = new Player(t, "live-1", 0);
  const sync = new MediaSync(player.time, { now: t.now, maxHeldNormal: 10 });
  for (let i = 0; i < 15; i++) sync.offer(item(makeEvent(`c${i}`, 50, { kind: "comment" })));
  assert.equal(sync.held, 10);
  assert.equal(sync.stats.omitted, 5);
  player.seek(50);
  const items = sync.take();
  assert.deepEqual(items[0], { type: "omitted", roomId: "r", count: 5 });
  assert.deepEqual(
    idsOf(items),
    Array.from({ length: 10 }, (_, i) => `c${i + 5}`),
  );
});

test("a deleted message that is still held is never shown; the deletion acts at once", () => {
  const t = new FakeTime();
  const player = new Player(t, "live-1", 0);
  const sync = new MediaSync(player.time, { now: t.now });
  sync.offer(item(makeEvent("c1", 10, { kind: "comment" })));
  sync.offer(item(makeEvent("c2", 10, { kind: "comment" })));
  sync.offer(item(makeEvent("del-c1", 10.5, { kind: "messageDeleted" })));
  assert.deepEqual(idsOf(sync.take()), ["del-c1"], "moderation acts at once");
  player.seek(11);
  assert.deepEqual(idsOf(sync.take()), ["c2"]);
  assert.equal(sync.stats.deletedWhileHeld, 1);
});

test("the end of the subscription shows what is left, in order, then the end", () => {
  const t = new FakeTime();
  const sync = new MediaSync(() => null, { now: t.now });
  sync.offer(item(makeEvent("a", 10)));
  sync.offer(item(makeEvent("b", 11)));
  const end: RoomItem = { type: "ended", roomId: "r", why: "left", text: "", error: undefined };
  sync.offer(end);
  const items = sync.take();
  assert.deepEqual(idsOf(items), ["a", "b"]);
  assert.equal(items.at(-1), end);
  assert.equal(sync.held, 0);
});

test("the immediate kinds are the Python SDK's", () => {
  const python = readFileSync(new URL("../../../sdk/media_sync.py", import.meta.url), "utf8");
  const block = /IMMEDIATE_KINDS = frozenset\(\{([^}]*)\}\)/.exec(python)?.[1];
  assert.ok(block, "IMMEDIATE_KINDS not found in clients/sdk/media_sync.py");
  const kinds = [...block.matchAll(/"(\w+)"/g)].map((m) => (m[1] ?? "").replace(/_(\w)/g, (_, c: string) => c.toUpperCase()));
  assert.deepEqual([...IMMEDIATE_KINDS].sort(), kinds.sort());
});

test("listen(): a timer releases held events as the player moves; stop() stops", async () => {
  const t = new FakeTime();
  const player = new Player(t, "live-1", 0);
  let push: ((item: RoomItem) => void) | undefined;
  const source: Listenable = {
    listen: (listener) => {
      push = listener;
      return () => {
        push = undefined;
      };
    },
  };
  const got: string[] = [];
  const sync = new MediaSync(player.time, { now: t.now, pollMs: 5 });
  const stop = sync.listen(source, (i) => got.push(...idsOf([i])));
  push?.(item(makeEvent("a", 1)));
  push?.(item(makeEvent("b", 2)));
  push?.(item(makeEvent("now", undefined)));
  assert.deepEqual(got, ["now"]);
  t.nowMs += 1000; // the player reaches a; the next check (a timer) shows it
  await sleep(30);
  assert.deepEqual(got, ["now", "a"]);
  stop();
  assert.equal(push, undefined, "stopped listening to the source");
  t.nowMs += 1000;
  await sleep(30);
  assert.deepEqual(got, ["now", "a"], "nothing after stop()");
});

test("run(): an async source's items each when due; its end releases the rest, then ends", async () => {
  const t = new FakeTime();
  const player = new Player(t, "live-1", 0);
  let aShown: () => void = () => undefined;
  const shownA = new Promise<void>((resolve) => {
    aShown = resolve;
  });
  async function* source(): AsyncGenerator<RoomItem> {
    yield item(makeEvent("a", 0.5));
    yield item(makeEvent("b", 100));
    yield item(makeEvent("now", undefined));
    await shownA;
    yield { type: "ended", roomId: "r", why: "left", text: "", error: undefined };
  }
  const sync = new MediaSync(player.time, { now: t.now, pollMs: 5 });
  const got: string[] = [];
  const ticking = setInterval(() => {
    t.nowMs += 100; // the player plays 100 ms per tick
  }, 5);
  try {
    for await (const i of sync.run(source())) {
      const id = i.type === "event" ? i.event.eventId : i.type;
      got.push(id);
      if (id === "a") aShown();
    }
  } finally {
    clearInterval(ticking);
  }
  assert.deepEqual(got, ["now", "a", "b", "ended"]);
  assert.deepEqual(
    [sync.stats.releasedImmediately, sync.stats.releasedInStep, sync.stats.releasedByHold],
    [1, 1, 1],
  );
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
