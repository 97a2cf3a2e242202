// What every test needs: the node under test (started by tests/test_ts_sdk.py, which
// passes its addresses and token secret by environment), tokens, rooms, history.

import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { WebSocket } from "ws";
import { BarrageClient, type ClientOptions, type Event, type RoomItem, createApi } from "../src/index.js";
import type { Subscription } from "../src/subscription.js";
import type { WebSocketConstructor } from "../src/transport.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through tests/test_ts_sdk.py (pytest)`);
  return value;
}

export const WS_URL = env("BARRAGE_WS_URL");
export const HTTP_URL = env("BARRAGE_HTTP_URL");
const SECRET = env("BARRAGE_JWT_SECRET");

/** An HS256 token as `barrage token` mints it (server/auth.py issue_dev_token). */
export function token(user: string, role = "viewer", ttlS = 3600, secret = SECRET): string {
  const b64 = (value: object): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64({ sub: user, name: user, role, iat: now, exp: now + ttlS });
  const signature = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${signature}`;
}

/** `ws`'s WebSocket, remembering every socket so a test can cut one (no close frame). */
export class TrackedWebSocket extends WebSocket {
  static sockets: TrackedWebSocket[] = [];
  constructor(url: string, protocols: string[]) {
    super(url, protocols);
    TrackedWebSocket.sockets.push(this);
  }
}

/** Cut every socket the tests opened so far, as a network drop would (close code 1006). */
export function cutAll(): number {
  const open = TrackedWebSocket.sockets.filter((s) => s.readyState === WebSocket.OPEN);
  for (const socket of open) socket.terminate();
  TrackedWebSocket.sockets = [];
  return open.length;
}

export const service = createApi({ baseUrl: HTTP_URL, token: () => token("ops", "service") });

const clients: BarrageClient[] = [];

export function client(user: string, options: Partial<ClientOptions> = {}): BarrageClient {
  const made = new BarrageClient({
    url: WS_URL,
    token: token(user),
    WebSocket: TrackedWebSocket as unknown as WebSocketConstructor,
    backoffBaseMs: 50,
    backoffMaxMs: 1000,
    ...options,
  });
  clients.push(made);
  return made;
}

/** Close every client the test made (each test stops what it started). */
export function closeClients(): void {
  for (const made of clients.splice(0)) made.close();
}

let rooms = 0;
export async function createRoom(prefix: string): Promise<string> {
  rooms += 1;
  const roomId = `${prefix}-${process.pid}-${rooms}`;
  await service.admin.createRoom({ roomId, title: prefix });
  return roomId;
}

/** The room's whole logged history, oldest first (ListEvents, paged). */
export async function history(roomId: string): Promise<Event[]> {
  const events: Event[] = [];
  let cursor = "";
  for (;;) {
    const page = await service.admin.listEvents({ roomId, cursor, pageSize: 200 });
    events.push(...page.events);
    if (!page.nextCursor || page.events.length === 0) return events;
    cursor = page.nextCursor;
  }
}

/** Collect a subscription's items (as a page would, with listen) until `done` says so. */
export function collect(sub: Subscription): { items: RoomItem[]; events: () => Event[] } {
  const items: RoomItem[] = [];
  sub.listen((item) => items.push(item));
  return { items, events: () => items.flatMap((i) => (i.type === "event" ? [i.event] : [])) };
}

export async function waitFor(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function commentText(event: Event): string | undefined {
  return event.payload?.kind.case === "comment" ? event.payload.kind.value.text : undefined;
}

/** Kill the node (SIGKILL: no goodbye; SIGTERM: go_away, drain); the pytest side
 * restarts it on the same port and log. */
export function killNode(signal: NodeJS.Signals = "SIGKILL"): void {
  process.kill(nodePid(), signal);
}

/** The node's pid now (changes when the pytest side restarted it). */
export function nodePid(): number {
  return Number(readFileSync(env("BARRAGE_PID_FILE"), "utf8"));
}
