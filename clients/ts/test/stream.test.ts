// The room stream against a real node: acks, order, and resume across a cut socket and
// a killed node, checked against the room's history (ListEvents).

import assert from "node:assert/strict";
import { after, afterEach, test } from "node:test";
import { type Event, Priority, type RoomItem } from "../src/index.js";
import {
  client,
  closeClients,
  collect,
  commentText,
  createRoom,
  cutAll,
  history,
  killNode,
  nodePid,
  sleep,
  token,
  waitFor,
} from "./helpers.js";

afterEach(closeClients);
after(closeClients);

/**
 * Logged events that every subscriber must get: ephemeral ones (viewer joins and counts,
 * tallies) are latest-value-wins and replace each other within one tick of the server
 * (protocol.md, priorities), so two rejoins in one tick show as one.
 */
const logged = (events: Event[]): Event[] =>
  events.filter((e) => e.cursor !== "" && e.priority !== Priority.EPHEMERAL);
const ids = (events: Event[]): string[] => events.map((e) => e.eventId);

/** `got` is exactly history from its first event on: no gap, no duplicate, same order. */
function assertNoGapNoDuplicate(got: Event[], all: Event[], notes: RoomItem[] = []): void {
  assert.ok(got.length > 0, "received nothing");
  assert.equal(new Set(ids(got)).size, got.length, "a duplicate was delivered");
  const start = all.findIndex((e) => e.eventId === got[0]?.eventId);
  assert.ok(start >= 0, "the first event received is not in history");
  const expected = all.slice(start, start + got.length);
  const missing = expected.filter((e) => !got.some((g) => g.eventId === e.eventId));
  const describe = (e: Event): string => `${e.cursor} ${e.payload?.kind.case} by ${e.sender?.userId}`;
  const told = notes.filter((i) => i.type !== "event").map((i) => JSON.stringify(i, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v)));
  assert.deepEqual(ids(got), ids(expected), `missing: ${missing.map(describe).join(", ")}; notices: ${told.join(" ")}`);
}

test("a send resolves with the event's cursor once durable, and a retry with the same id is not appended twice", async () => {
  const roomId = await createRoom("ack");
  const alice = client("alice");
  const welcome = await alice.connect();
  assert.equal(welcome.user?.userId, "alice");
  const room = await alice.join(roomId);
  const ack = await room.send("这个多少钱？", { clientMsgId: "m-1" });
  assert.equal(ack.clientMsgId, "m-1");
  assert.equal(ack.duplicate, false);
  assert.notEqual(ack.cursor, "");
  const again = await room.send("这个多少钱？", { clientMsgId: "m-1" });
  assert.equal(again.duplicate, true);
  assert.equal(again.cursor, ack.cursor);
  const comments = (await history(roomId)).filter((e) => commentText(e) !== undefined);
  assert.deepEqual(comments.map((e) => [e.cursor, e.clientMsgId, commentText(e)]), [[ack.cursor, "m-1", "这个多少钱？"]]);
});

test("two clients see each other's messages, in the same order as history", async () => {
  const roomId = await createRoom("order");
  const alice = client("alice");
  const bob = client("bob");
  const a = collect(await alice.join(roomId));
  const b = collect(await bob.join(roomId));
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < 20; i++) {
    sends.push(alice.send(roomId, `a${i}`), bob.send(roomId, `b${i}`));
  }
  await Promise.all(sends);
  const all = (await history(roomId)).filter((e) => commentText(e) !== undefined);
  assert.equal(all.length, 40);
  for (const seen of [a, b]) {
    await waitFor("every comment", () => seen.events().filter((e) => commentText(e)).length === 40);
    const comments = seen.events().filter((e) => commentText(e) !== undefined);
    assert.deepEqual(ids(comments), ids(all));
  }
  // Each sender's own messages in the order it sent them.
  const texts = all.map(commentText);
  assert.deepEqual(texts.filter((t) => t?.startsWith("a")), Array.from({ length: 20 }, (_, i) => `a${i}`));
});

test("a cut WebSocket is resumed from the last cursor: no gap, no duplicate, pending sends acked once", async () => {
  const roomId = await createRoom("cut");
  const viewer = client("viewer-cut");
  const host = client("shop-cut", { token: token("shop-cut", "service") }); // A service: no send rate limit in the way.
  const seen = collect(await viewer.join(roomId));
  await host.join(roomId);
  const acks: Promise<unknown>[] = [];
  for (let i = 0; i < 60; i++) {
    acks.push(host.send(roomId, `m${i}`));
    if (i % 20 === 10) {
      // Mid-stream, sends in flight; both clients back on their feet since the last cut.
      await waitFor("both connected", () => viewer.state === "connected" && host.state === "connected");
      assert.equal(cutAll(), 2, "both sockets cut");
    }
    await sleep(10);
  }
  await Promise.all(acks);
  await waitFor("all 60 comments", () => seen.events().filter((e) => commentText(e)).length >= 60);
  await sleep(300); // Anything duplicated after the last one would show up now.
  const all = logged(await history(roomId));
  assertNoGapNoDuplicate(logged(seen.events()), all, seen.items);
  // Each send appended exactly once. (Not necessarily in send order: a send the server
  // was still appending when its socket was cut may land after one written on the next.)
  const comments = all.map(commentText).filter((t) => t !== undefined);
  assert.deepEqual([...comments].sort(), Array.from({ length: 60 }, (_, i) => `m${i}`).sort());
  assert.ok(viewer.stats.streams >= 4 && viewer.stats.welcomes >= 4, "the viewer reconnected after each cut");
  assert.ok(!seen.items.some((i) => i.type === "omitted" || i.type === "gap" || i.type === "ended"));
});

test("the node killed and restarted mid-stream: the client resumes with no gap and no duplicate", async () => {
  const roomId = await createRoom("restart");
  const viewer = client("viewer-restart");
  const host = client("shop-restart", { token: token("shop-restart", "service") });
  const seen = collect(await viewer.join(roomId));
  await host.join(roomId);
  for (let i = 0; i < 10; i++) await host.send(roomId, `before${i}`);
  const pid = nodePid();
  killNode();
  // Sent while the node is down: held, then written on the next stream with the same id.
  const pending = Array.from({ length: 10 }, (_, i) => host.send(roomId, `during${i}`));
  await waitFor("the node restarted", () => nodePid() !== pid, 30_000);
  await Promise.all(pending);
  for (let i = 0; i < 10; i++) await host.send(roomId, `after${i}`);
  await waitFor("all 30 comments", () => seen.events().filter((e) => commentText(e)).length >= 30, 30_000);
  await sleep(300);
  const all = logged(await history(roomId));
  assertNoGapNoDuplicate(logged(seen.events()), all, seen.items);
  assert.equal(all.filter((e) => commentText(e)).length, 30);
  assert.ok(viewer.stats.welcomes >= 2);
});

test("a node shutting down says go_away: the client reconnects after its delay and resumes", async () => {
  const roomId = await createRoom("goaway");
  const viewer = client("viewer-goaway");
  const host = client("shop-goaway", { token: token("shop-goaway", "service") });
  const seen = collect(await viewer.join(roomId));
  await host.join(roomId);
  for (let i = 0; i < 5; i++) await host.send(roomId, `before${i}`);
  const pid = nodePid();
  killNode("SIGTERM");
  await waitFor("the node restarted", () => nodePid() !== pid, 30_000);
  for (let i = 0; i < 5; i++) await host.send(roomId, `after${i}`);
  await waitFor("all 10 comments", () => seen.events().filter((e) => commentText(e)).length >= 10, 30_000);
  await sleep(300);
  assertNoGapNoDuplicate(logged(seen.events()), logged(await history(roomId)), seen.items);
  assert.ok(viewer.stats.goAways >= 1, "the viewer was told go_away");
  assert.ok(viewer.stats.welcomes >= 2);
});

test("an application that stops reading is paused and caught up from the log, in order", async () => {
  const roomId = await createRoom("slow");
  const reader = client("reader-slow", { queueSize: 10 });
  const host = client("shop-slow", { token: token("shop-slow", "service") });
  const sub = await reader.join(roomId);
  await host.join(roomId);
  for (let i = 0; i < 40; i++) await host.send(roomId, `m${i}`);
  await sleep(300); // Everything has reached the reader; its queue holds 10.
  assert.ok(reader.stats.pauses >= 1, "the room was paused at the queue's bound");
  const got: string[] = [];
  for await (const item of sub) {
    assert.equal(item.type, "event");
    if (item.type !== "event") break;
    const text = commentText(item.event);
    if (text !== undefined) got.push(text);
    if (got.length === 40) break;
  }
  assert.deepEqual(got, Array.from({ length: 40 }, (_, i) => `m${i}`));
});
