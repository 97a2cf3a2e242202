// Tokens, bans, room close and the Connect-protocol API against a real node.

import assert from "node:assert/strict";
import { after, afterEach, test } from "node:test";
import { ConnectError, Code as ConnectCode } from "@connectrpc/connect";
import { BarrageError, Code, ConnectionFailed, JoinError, createApi, reasonOf } from "../src/index.js";
import type { WebSocketConstructor } from "../src/transport.js";
import {
  HTTP_URL,
  TrackedWebSocket,
  WS_URL,
  client,
  closeClients,
  collect,
  createRoom,
  service,
  sleep,
  token,
  waitFor,
} from "./helpers.js";

afterEach(closeClients);
after(closeClients);

test("a bad token fails connect at once with UNAUTHENTICATED and the reason, and is not retried", async () => {
  const bad = client("mallory", { token: token("mallory", "viewer", 3600, "not-the-secret") });
  const started = Date.now();
  const error = await bad.connect().then(
    () => assert.fail("connected with a forged token"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ConnectionFailed, String(error));
  assert.equal(error.code, Code.UNAUTHENTICATED);
  assert.equal(error.reason, "TOKEN_INVALID");
  assert.ok(Date.now() - started < 5000);
  assert.equal(bad.stats.streams, 1);
  assert.equal(bad.state, "closed");
});

test("a token provider refreshes the token before it expires: the stream outlives it", async () => {
  let minted = 0;
  const provider = (): string => {
    minted += 1;
    return token("carol", "viewer", 3);
  };
  const roomId = await createRoom("refresh");
  const carol = client("carol", { token: provider, refreshMarginMs: 2000 });
  await carol.connect();
  const room = await carol.join(roomId);
  await sleep(4500); // Past the first token's expiry.
  const ack = await room.send("still here");
  assert.notEqual(ack.cursor, "");
  assert.equal(carol.stats.streams, 1, "the same stream, never reconnected");
  assert.ok(carol.stats.tokenRefreshes >= 1 && minted >= 2);
});

test("a fixed token that expires ends the client with TOKEN_EXPIRED, explicitly", async () => {
  const roomId = await createRoom("expiry");
  const dave = client("dave", { token: token("dave", "viewer", 2) });
  const seen = collect(await dave.join(roomId));
  await waitFor("the subscription's end", () => seen.items.some((i) => i.type === "ended"), 10_000);
  const ended = seen.items.at(-1);
  assert.equal(ended?.type, "ended");
  if (ended?.type !== "ended") return;
  assert.equal(ended.why, "failed");
  assert.equal(ended.error?.code, Code.UNAUTHENTICATED);
  assert.equal(ended.error?.reason, "TOKEN_EXPIRED");
  assert.equal(dave.state, "closed");
  await assert.rejects(dave.send(roomId, "too late"), (e: unknown) => e instanceof BarrageError);
});

test("a ban ends the subscription with its reason, and the room refuses the user after", async () => {
  const roomId = await createRoom("ban");
  const erin = client("erin");
  const seen = collect(await erin.join(roomId));
  await erin.send(roomId, "buy my stuff elsewhere");
  await service.admin.publishEvent({
    roomId,
    requestId: "ban-erin",
    payload: { kind: { case: "userBanned", value: { userId: "erin", reason: "spam" } } },
  });
  await waitFor("the subscription's end", () => seen.items.some((i) => i.type === "ended"));
  const ended = seen.items.at(-1);
  assert.ok(ended?.type === "ended");
  assert.equal(ended.why, "banned");
  assert.equal(ended.text, "spam");
  assert.equal(ended.error?.reason, "BANNED");
  assert.equal(erin.rooms.size, 0);
  const refused = await erin.join(roomId).then(
    () => assert.fail("joined while banned"),
    (e: unknown) => e,
  );
  assert.ok(refused instanceof JoinError);
  assert.equal(refused.code, Code.PERMISSION_DENIED);
  assert.equal(refused.reason, "BANNED");
  assert.equal(erin.state, "connected", "a ban ends the room, not the client");
});

test("closing the room ends the subscription with why room_closed", async () => {
  const roomId = await createRoom("close");
  const frank = client("frank");
  const seen = collect(await frank.join(roomId));
  await service.admin.closeRoom({ roomId });
  await waitFor("the subscription's end", () => seen.items.some((i) => i.type === "ended"));
  const ended = seen.items.at(-1);
  assert.ok(ended?.type === "ended");
  assert.equal(ended.why, "room_closed");
  assert.equal(ended.error, undefined);
  const before = seen.items.at(-2);
  assert.ok(before?.type === "event" && before.event.payload?.kind.case === "roomClosed");
});

test("a missing room is a JoinError NOT_FOUND with reason ROOM_NOT_FOUND", async () => {
  const gina = client("gina");
  await assert.rejects(
    gina.join("no-such-room"),
    (e: unknown) => e instanceof JoinError && e.code === Code.NOT_FOUND && e.reason === "ROOM_NOT_FOUND",
  );
});

test("the Connect API: history pages, and errors carry the code and the ErrorInfo reason", async () => {
  const roomId = await createRoom("api");
  const published = await service.admin.publishEvent({
    roomId,
    requestId: "hello-1",
    payload: { kind: { case: "announcement", value: { text: "Flash sale in 5 minutes!" } } },
  });
  const page = await service.admin.listEvents({ roomId, pageSize: 50 });
  assert.ok(page.events.some((e) => e.cursor === published.cursor));
  const viewerApi = createApi({ baseUrl: HTTP_URL, token: token("henry"), binary: false });
  const denied = await viewerApi.admin.listEvents({ roomId }).then(
    () => assert.fail("a viewer read the history"),
    (e: unknown) => e,
  );
  assert.ok(denied instanceof ConnectError);
  assert.equal(denied.code, ConnectCode.PermissionDenied);
  assert.equal(reasonOf(denied), "ROLE_FORBIDDEN");
  const forged = createApi({ baseUrl: HTTP_URL, token: "not-a-jwt" });
  const unauthenticated = await forged.admin.getRoom({ roomId }).then(
    () => assert.fail("accepted a garbage token"),
    (e: unknown) => e,
  );
  assert.ok(unauthenticated instanceof ConnectError);
  assert.equal(unauthenticated.code, ConnectCode.Unauthenticated);
  assert.equal(reasonOf(unauthenticated), "TOKEN_INVALID");
});

test("insights over the Connect protocol: GetInsights counts the comments, WatchInsights streams updates", async () => {
  const roomId = await createRoom("insights");
  const ivy = client("ivy");
  const room = await ivy.join(roomId);
  await room.send("这个多少钱？");
  await room.send("Is there a red one?");
  let comments = 0n;
  for (let attempt = 0; attempt < 50 && comments < 2n; attempt++) {
    comments = (await service.insights.getInsights({ roomId })).insights?.totals?.comments ?? 0n;
    if (comments < 2n) await sleep(100); // Insights fold the log a moment after the append.
  }
  assert.equal(comments, 2n);
  const abort = new AbortController();
  let updates = 0;
  try {
    for await (const update of service.insights.watchInsights(
      { roomId, interval: { seconds: 0n, nanos: 200_000_000 } },
      { signal: abort.signal },
    )) {
      assert.equal(update.insights?.roomId, roomId);
      updates += 1;
      if (updates === 2) break;
    }
  } finally {
    abort.abort();
  }
  assert.equal(updates, 2);
});

test("the page bundle (dist/barrage-sdk.js) works on its own: join, send, ack, own event", async () => {
  // Loaded by URL, as a page's <script type="module"> would: no node_modules behind it.
  const bundle = new URL("../../dist/barrage-sdk.js", import.meta.url).href;
  const sdk = (await import(bundle)) as typeof import("../src/index.js");
  const roomId = await createRoom("bundle");
  const made = new sdk.BarrageClient({
    url: WS_URL,
    token: token("jane"),
    WebSocket: TrackedWebSocket as unknown as WebSocketConstructor,
  });
  try {
    const room = await made.join(roomId);
    const seen = collect(room);
    const ack = await room.send("from the bundle");
    await waitFor("the own event", () => seen.events().some((e) => e.eventId === ack.eventId));
    const payload = sdk.create(sdk.PayloadSchema, { kind: { case: "like", value: { count: 3 } } });
    const like = await made.sendPayload(roomId, payload);
    assert.equal(like.cursor, "", "likes are counted, not stored one by one");
  } finally {
    made.close();
  }
});
