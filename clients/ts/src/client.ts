// The Barrage client: one WebSocket stream (docs/web.md), kept alive across failures,
// with the Python SDK's guarantees (clients/sdk/): sends are acknowledged when durable
// and retried with the same client_msg_id across reconnects; each room's events come
// in order, resumed from the last cursor after a reconnect with no gap and no
// duplicate; reconnects back off exponentially with full jitter; ban and room close
// end a subscription explicitly.
//
// Everything runs on one event loop, so state changes between awaits are atomic: a new
// socket is attached (hello, rejoins, resends written in that order) before any other
// message can be written to it.

import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type Event, type Payload, PayloadSchema } from "./gen/barrage/v1/event_pb.js";
import {
  type ConnectRequest,
  ConnectRequestSchema,
  ConnectResponseSchema,
  type EventBatch,
  type JoinResult,
  type LeaveResult,
  ResumeOutcome,
  type ServerMessage,
  type Welcome,
} from "./gen/barrage/v1/room_service_pb.js";
import { Backoff } from "./backoff.js";
import { type Deferred, deferred } from "./deferred.js";
import { BarrageError, Code, ConnectionFailed, JoinError, SendError, clientClosed } from "./errors.js";
import type { Ack, ClientStats, ConnectionState } from "./items.js";
import { MAX_CLIENT_FRAME_BYTES, afterJoin, joinRetryDelay, reconnectAfter } from "./policy.js";
import { Sends } from "./sends.js";
import { type SendOptions, Subscription } from "./subscription.js";
import {
  OPEN,
  SUBPROTOCOL,
  type WebSocketConstructor,
  type WebSocketLike,
  defaultWebSocket,
  messageBytes,
} from "./transport.js";

/** A token, or a function returning a fresh one (asked before every connect and
 * before the stream's token expires). */
export type TokenSource = string | (() => string | Promise<string>);

export interface ClientOptions {
  /** The node's WebSocket URL: ws://HOST:PORT/ws (wss:// behind TLS). */
  url: string;
  token: TokenSource;
  /** The WebSocket class: default the global one (browsers, Node 22+); in Node 20 pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /** Free-form client name and version, for the server's logs. */
  clientAgent?: string;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** A stream with no welcome this long after it opened is abandoned (and retried). */
  handshakeTimeoutMs?: number;
  sendTimeoutMs?: number;
  joinTimeoutMs?: number;
  /** Writes of one send before its refusal goes to the application. */
  maxSendAttempts?: number;
  /** Retry sends refused RATE_LIMITED after the server's RetryInfo delay (default true). */
  retryRateLimited?: boolean;
  /** Items one subscription queues for an application that iterates it slowly. */
  queueSize?: number;
  dedupeWindow?: number;
  /** Send a ping after this long without any message from the server (0: never)... */
  idlePingMs?: number;
  /** ...and abandon the socket when nothing at all arrives within this long after it:
   * a cut network often gives a browser no close event for minutes. */
  pingTimeoutMs?: number;
  /** Ask a token provider for a new token this long before the stream's token expires. */
  refreshMarginMs?: number;
  /** A stream that lived this long resets the backoff when it ends. */
  stableAfterMs?: number;
  onState?: (state: ConnectionState) => void;
  /** Stream errors (an undecodable message, a refused refresh_token): the stream stays open. */
  onStreamError?: (error: BarrageError) => void;
}

export interface JoinOptions {
  /** Fresh join: also deliver up to this many of the room's recent events first. */
  historyLimit?: number;
  /** Continue after this cursor (an Event.cursor stored from an earlier session). */
  resumeCursor?: string;
}

type Required_ = Required<Omit<ClientOptions, "onState" | "onStreamError" | "WebSocket" | "clientAgent">> & {
  clientAgent: string;
};

const DEFAULTS = {
  backoffBaseMs: 200,
  backoffMaxMs: 30_000,
  handshakeTimeoutMs: 10_000,
  sendTimeoutMs: 30_000,
  joinTimeoutMs: 15_000,
  maxSendAttempts: 8,
  retryRateLimited: true,
  queueSize: 10_000,
  dedupeWindow: 4096,
  idlePingMs: 20_000,
  pingTimeoutMs: 10_000,
  refreshMarginMs: 60_000,
  stableAfterMs: 5_000,
  clientAgent: "barrage-ts/0.1",
};

/** One WebSocket, from dial to end. */
class Stream {
  welcome: Welcome | undefined;
  welcomedAt = 0;
  goAwayDelayMs: number | undefined;
  ended = false;
  /** Answers outstanding per room: only the answer to the last join or leave counts. */
  readonly joins = new Map<string, number>();
  readonly leaves = new Map<string, number>();
  readonly timers: ReturnType<typeof setTimeout>[] = [];
  lastHeard = Date.now();
  /** End this stream now, without waiting for a close handshake. */
  abandon: (error: BarrageError) => void = () => undefined;
  constructor(readonly ws: WebSocketLike) {}

  get open(): boolean {
    return !this.ended && this.ws.readyState === OPEN;
  }
}

export class BarrageClient {
  readonly stats: ClientStats = {
    streams: 0,
    welcomes: 0,
    goAways: 0,
    resumesRequired: 0,
    pauses: 0,
    duplicatesDropped: 0,
    sendsRewritten: 0,
    tokenRefreshes: 0,
  };
  private readonly opts: Required_;
  private readonly WS: WebSocketConstructor;
  private token: TokenSource;
  private _state: ConnectionState = "closed";
  private _welcome: Welcome | undefined;
  private stream: Stream | undefined;
  private running: Promise<void> | undefined;
  private closing = false;
  private fatal: BarrageError | undefined;
  private lastError: BarrageError | undefined;
  private connected: Deferred<void> = deferred();
  private wakeup: (() => void) | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private nonce = 0n;
  private readonly pings = new Map<bigint, Deferred<void>>();
  private readonly active = new Map<string, Subscription>();
  private readonly sends: Sends;

  constructor(private readonly options: ClientOptions) {
    const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    this.opts = { ...DEFAULTS, ...given } as Required_;
    this.WS = options.WebSocket ?? defaultWebSocket();
    this.token = options.token;
    this.sends = new Sends(
      {
        write: (request) => this.write(request),
        rejoining: (roomId) => {
          const sub = this.active.get(roomId);
          return sub !== undefined && sub.phase !== "joined";
        },
        tokenExpired: () => {
          if (typeof this.token === "string") return false;
          this.refreshSoon(0);
          return true;
        },
      },
      this.stats,
      { maxAttempts: this.opts.maxSendAttempts, retryRateLimited: this.opts.retryRateLimited },
    );
  }

  // ================================================================ public API

  get state(): ConnectionState {
    return this._state;
  }

  /** The latest Welcome: the user as the server sees it, the limits, the node. */
  get welcome(): Welcome | undefined {
    return this._welcome;
  }

  /** Active subscriptions by room id (a copy). */
  get rooms(): Map<string, Subscription> {
    return new Map(this.active);
  }

  /**
   * Open the stream and wait for the server's Welcome. Transient failures are retried
   * with backoff until `timeoutMs`; a bad token or PERMISSION_DENIED rejects at once
   * with ConnectionFailed. On failure the client is closed.
   */
  async connect(timeoutMs = 30_000): Promise<Welcome> {
    this.checkOpen();
    this.start();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const last = this.lastError;
        reject(
          new ConnectionFailed(
            new BarrageError(
              last?.code ?? Code.UNAVAILABLE,
              `could not connect to ${this.options.url} within ${timeoutMs} ms${last ? `: ${last.detail}` : ""}`,
              { reason: "CONNECT_TIMEOUT" },
            ),
          ),
        );
      }, timeoutMs);
    });
    try {
      await Promise.race([this.connected.promise, timeout]);
    } catch (error) {
      this.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return this._welcome as Welcome;
  }

  /**
   * Join a room; resolves with its subscription once the server accepted the join.
   * Rejects with JoinError (NOT_FOUND ROOM_NOT_FOUND, FAILED_PRECONDITION ROOM_CLOSED,
   * PERMISSION_DENIED BANNED, ...).
   */
  async join(roomId: string, options: JoinOptions = {}): Promise<Subscription> {
    this.checkOpen();
    this.start();
    const existing = this.active.get(roomId);
    if (existing !== undefined) {
      await this.awaitJoin(existing);
      return existing;
    }
    const sub = new Subscription(
      {
        leave: (id) => this.leave(id),
        sendText: (id, text, o) => this.send(id, text, o),
        drained: (s) => this.drained(s),
        userId: () => this._welcome?.user?.userId,
      },
      roomId,
      {
        historyLimit: options.historyLimit ?? 0,
        resumeCursor: options.resumeCursor ?? "",
        queueSize: this.opts.queueSize,
        dedupeWindow: this.opts.dedupeWindow,
      },
    );
    this.active.set(roomId, sub);
    this.writeJoin(sub);
    await this.awaitJoin(sub);
    return sub;
  }

  /** Leave a room; its subscription ends with {type: "ended", why: "left"}. */
  async leave(roomId: string): Promise<void> {
    const sub = this.active.get(roomId);
    if (sub === undefined) return;
    const stream = this.stream;
    if (stream === undefined || !stream.open || sub.phase === "detached") {
      this.endSub(sub, "left");
      return;
    }
    if (sub.phase !== "leaving") {
      sub.phase = "leaving";
      this.writeLeave(stream, sub);
    }
    await withTimeout(sub.left.promise, this.opts.joinTimeoutMs).catch(() => undefined);
    this.endSub(sub, "left");
  }

  /** Post a comment and wait until it is durable; see sendPayload. */
  send(roomId: string, text: string, options: SendOptions = {}): Promise<Ack> {
    const payload = create(PayloadSchema, {
      kind: {
        case: "comment",
        value: { text, replyToEventId: options.replyToEventId ?? "", mentionUserIds: options.mentionUserIds ?? [] },
      },
    });
    return this.sendPayload(roomId, payload, options);
  }

  /**
   * Post into a joined room and wait for the ack (the event is in the room log). The
   * send survives reconnects: it is written again with the same client_msg_id until
   * the server answers, and the server appends it at most once. Rejects with SendError
   * (the server's code and reason, or SEND_TIMEOUT: a timed-out send may still have
   * been appended; retry it with the same clientMsgId to find out).
   */
  sendPayload(roomId: string, payload: Payload, options: SendOptions = {}): Promise<Ack> {
    try {
      this.checkOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    this.start();
    const clientMsgId = options.clientMsgId ?? randomId();
    const size = toBinary(
      ConnectRequestSchema,
      create(ConnectRequestSchema, { kind: { case: "send", value: { roomId, clientMsgId, payload } } }),
    ).byteLength;
    if (size > MAX_CLIENT_FRAME_BYTES) {
      const error = new BarrageError(
        Code.INVALID_ARGUMENT,
        `the send is larger than the server's ${MAX_CLIENT_FRAME_BYTES} byte message limit`,
        { reason: "FRAME_TOO_LARGE" },
      );
      return Promise.reject(new SendError(error, roomId, clientMsgId));
    }
    return this.sends.send(
      roomId,
      clientMsgId,
      payload,
      options.traceparent ?? "",
      options.timeoutMs ?? this.opts.sendTimeoutMs,
    );
  }

  /** Round trip to the server over the stream, in milliseconds. */
  async ping(timeoutMs = 10_000): Promise<number> {
    this.checkOpen();
    const stream = this.stream;
    if (stream?.welcome === undefined) {
      throw new BarrageError(Code.UNAVAILABLE, "not connected", { reason: "CONNECTION_LOST" });
    }
    this.nonce += 1n;
    const nonce = this.nonce;
    const pong = deferred<void>();
    this.pings.set(nonce, pong);
    const started = Date.now();
    this.write(create(ConnectRequestSchema, { kind: { case: "ping", value: { nonce } } }));
    try {
      await withTimeout(pong.promise, timeoutMs, () =>
        new BarrageError(Code.DEADLINE_EXCEEDED, "no pong", { reason: "PING_TIMEOUT" }),
      );
    } finally {
      this.pings.delete(nonce);
    }
    return Date.now() - started;
  }

  /**
   * Use a new token: sent on the open stream now (a string) and on every reconnect.
   * The server answers only a refusal, as a stream error (onStreamError).
   */
  refreshToken(token: TokenSource): void {
    this.token = token;
    if (typeof token === "string") this.writeRefresh(token);
  }

  /** Stop: the socket is closed, pending sends and joins reject with CLIENT_CLOSED,
   * subscriptions end with why "closed" after their queued items. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.wakeup?.();
    const closed = clientClosed();
    this.stream?.abandon(closed);
    this.settleAll(closed);
    for (const sub of [...this.active.values()]) this.endSub(sub, "closed");
    this.connected.reject(closed);
    this.setState("closed");
  }

  // ============================================================ connection loop

  private start(): void {
    if (this.running === undefined) {
      this.running = this.run();
    }
  }

  private checkOpen(): void {
    if (this.fatal !== undefined) throw this.fatal;
    if (this.closing) throw clientClosed();
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(this.opts.backoffBaseMs, this.opts.backoffMaxMs);
    try {
      while (!this.closing) {
        const delay = await this.runStream(backoff);
        if (this.closing) return;
        this.setState("waiting");
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.wakeup = () => (clearTimeout(timer), resolve());
        });
        this.wakeup = undefined;
      }
    } catch (error) {
      const failure =
        error instanceof ConnectionFailed
          ? error
          : new ConnectionFailed(new BarrageError(Code.INTERNAL, `client bug: ${String(error)}`));
      this.fail(failure);
    }
  }

  private async tokenValue(): Promise<string> {
    const token = this.token;
    return typeof token === "string" ? token : await token();
  }

  /** One socket from dial to end; resolves with the delay before the next attempt. */
  private async runStream(backoff: Backoff): Promise<number> {
    this.setState("connecting");
    let token: string;
    try {
      token = await this.tokenValue();
    } catch (error) {
      // An identity provider hiccup is transient; a wrong token is the server's call.
      this.lastError = new BarrageError(Code.UNAVAILABLE, `token provider failed: ${String(error)}`);
      return backoff.nextDelay();
    }
    if (this.closing) return 0;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(this.options.url, [SUBPROTOCOL]);
    } catch (error) {
      // A malformed URL: nothing a retry fixes.
      throw new ConnectionFailed(new BarrageError(Code.INVALID_ARGUMENT, String(error)));
    }
    ws.binaryType = "arraybuffer";
    const stream = new Stream(ws);
    this.stream = stream;
    this.stats.streams += 1;
    const ended = deferred<BarrageError>();
    const abandon = (error: BarrageError): void => {
      // Ours to end: do not wait for a close handshake a dead network never completes.
      if (!ended.settled) ended.resolve(error);
      this.detach(stream);
      try {
        ws.close(1000, error.reason);
      } catch {
        /* already closing */
      }
    };
    stream.abandon = abandon;
    stream.timers.push(
      setTimeout(() => {
        if (stream.welcome === undefined) {
          abandon(new BarrageError(Code.DEADLINE_EXCEEDED, "no welcome from the server in time", { reason: "CONNECT_TIMEOUT" }));
        }
      }, this.opts.handshakeTimeoutMs),
    );
    ws.addEventListener("open", () => {
      if (ended.settled) return;
      // A client is one user: after the first Welcome the server must see the same user
      // on every reconnect (a mixed-up token ends it with IDENTITY_MISMATCH).
      const userId = this._welcome?.user?.userId ?? "";
      this.write(
        create(ConnectRequestSchema, {
          kind: { case: "hello", value: { token, userId, clientAgent: this.opts.clientAgent } },
        }),
        stream,
      );
      this.attach();
      if (this.opts.idlePingMs > 0) this.watchLiveness(stream, abandon);
    });
    ws.addEventListener("message", (event) => {
      if (ended.settled) return;
      stream.lastHeard = Date.now();
      const bytes = messageBytes(event.data);
      if (bytes === undefined) return; // The protocol has no text messages; ignore one.
      let messages: ServerMessage[];
      try {
        messages = fromBinary(ConnectResponseSchema, bytes).messages;
      } catch (error) {
        abandon(new BarrageError(Code.INTERNAL, `undecodable server message: ${String(error)}`));
        return;
      }
      for (const message of messages) {
        if (ended.settled) return;
        this.handle(stream, message);
      }
    });
    ws.addEventListener("close", (event) => {
      if (!ended.settled) ended.resolve(BarrageError.fromClose(event.code, event.reason));
    });
    ws.addEventListener("error", () => undefined); // A close event follows.

    const error = await ended.promise;
    this.detach(stream);
    this.lastError = error;
    if (this.closing) return 0;
    if (stream.goAwayDelayMs === undefined && !reconnectAfter(error, {
      welcomed: stream.welcome !== undefined,
      tokenProvider: typeof this.token !== "string",
    })) {
      throw new ConnectionFailed(error);
    }
    if (stream.welcome !== undefined && stream.goAwayDelayMs === undefined) {
      if (Date.now() - stream.welcomedAt >= this.opts.stableAfterMs) backoff.reset();
    }
    if (stream.goAwayDelayMs !== undefined) {
      backoff.reset();
      return stream.goAwayDelayMs + backoff.nextDelay();
    }
    return backoff.nextDelay();
  }

  /** Ping after a quiet spell; abandon the socket if even that gets no answer. */
  private watchLiveness(stream: Stream, abandon: (error: BarrageError) => void): void {
    const check = (): void => {
      if (stream.ended) return;
      const quiet = Date.now() - stream.lastHeard;
      if (quiet >= this.opts.idlePingMs + this.opts.pingTimeoutMs) {
        abandon(new BarrageError(Code.UNAVAILABLE, "the server stopped answering", { reason: "PING_TIMEOUT" }));
        return;
      }
      if (quiet >= this.opts.idlePingMs && stream.welcome !== undefined) {
        this.nonce += 1n;
        this.write(create(ConnectRequestSchema, { kind: { case: "ping", value: { nonce: this.nonce } } }), stream);
      }
      stream.timers.push(setTimeout(check, Math.min(this.opts.idlePingMs, this.opts.pingTimeoutMs) / 2));
    };
    stream.timers.push(setTimeout(check, this.opts.idlePingMs));
  }

  /** A new stream: rejoin every room from its cursor, resend every pending send. */
  private attach(): void {
    for (const sub of [...this.active.values()]) {
      if (sub.joinRetry !== undefined) {
        clearTimeout(sub.joinRetry);
        sub.joinRetry = undefined;
      }
      this.writeJoin(sub);
    }
    this.sends.attach();
  }

  private detach(stream: Stream): void {
    if (stream.ended) return;
    stream.ended = true;
    for (const timer of stream.timers) clearTimeout(timer);
    if (this.stream === stream) this.stream = undefined;
    if (this.refreshTimer !== undefined) {
      clearTimeout(this.refreshTimer); // Each stream's Welcome schedules its own.
      this.refreshTimer = undefined;
    }
    if (this.connected.settled && !this.closing) this.connected = deferred();
    const lost = new BarrageError(Code.UNAVAILABLE, "connection lost", { reason: "CONNECTION_LOST" });
    for (const pong of this.pings.values()) pong.reject(lost);
    for (const sub of [...this.active.values()]) {
      if (sub.phase === "leaving") this.endSub(sub, "left"); // Not joined on any new stream.
      else if (sub.phase !== "ended") sub.phase = "detached";
    }
  }

  private fail(error: ConnectionFailed): void {
    this.fatal = error;
    this.closing = true;
    this.settleAll(error);
    for (const sub of [...this.active.values()]) {
      this.active.delete(sub.roomId);
      sub.fail(error);
    }
    this.connected.reject(error);
    this.setState("closed");
  }

  private settleAll(error: BarrageError): void {
    this.sends.failAll(error);
    for (const pong of this.pings.values()) pong.reject(error);
  }

  private setState(state: ConnectionState): void {
    if (state === this._state) return;
    this._state = state;
    try {
      this.options.onState?.(state);
    } catch (error) {
      console.error("barrage: onState failed", error);
    }
  }

  /** Write on `stream` (default: the current one) if it is open; false otherwise. */
  private write(request: ConnectRequest, stream: Stream | undefined = this.stream): boolean {
    if (stream === undefined || !stream.open) return false;
    stream.ws.send(toBinary(ConnectRequestSchema, request));
    return true;
  }

  // ================================================================= messages

  private handle(stream: Stream, message: ServerMessage): void {
    const kind = message.kind;
    switch (kind.case) {
      case "eventBatch":
        this.onEvents(kind.value);
        break;
      case "sendResult":
        this.sends.onResult(kind.value);
        break;
      case "joinResult":
        this.onJoinResult(stream, kind.value);
        break;
      case "leaveResult":
        this.onLeaveResult(stream, kind.value);
        break;
      case "welcome":
        this.onWelcome(stream, kind.value);
        break;
      case "pong":
        this.pings.get(kind.value.nonce)?.resolve();
        break;
      case "resumeRequired": {
        const sub = this.active.get(kind.value.roomId);
        if (sub === undefined || (sub.phase !== "joined" && sub.phase !== "paused")) break;
        // Our cursor is the last event the application got, so prefer it; the server's is
        // the last it wrote, which can only be the same or later.
        if (!sub.cursor) sub.cursor = kind.value.cursor;
        this.stats.resumesRequired += 1;
        this.writeJoin(sub);
        break;
      }
      case "streamError": {
        const error = BarrageError.fromStatus(kind.value.status);
        try {
          this.options.onStreamError?.(error);
        } catch (e) {
          console.error("barrage: onStreamError failed", e);
        }
        break;
      }
      case "goAway": {
        this.stats.goAways += 1;
        const d = kind.value.reconnectDelay;
        stream.goAwayDelayMs = d === undefined ? 0 : Number(d.seconds) * 1000 + d.nanos / 1e6;
        break;
      }
      default:
        break; // A newer server's message: ignore.
    }
  }

  private onWelcome(stream: Stream, welcome: Welcome): void {
    stream.welcome = welcome;
    stream.welcomedAt = Date.now();
    this._welcome = welcome;
    this.lastError = undefined;
    this.stats.welcomes += 1;
    this.connected.resolve();
    this.setState("connected");
    if (welcome.tokenExpireTime !== undefined && typeof this.token !== "string") {
      const expiresIn = timestampMs(welcome.tokenExpireTime) - Date.now();
      this.refreshSoon(Math.max(expiresIn - this.opts.refreshMarginMs, 0));
    }
  }

  private onEvents(batch: EventBatch): void {
    const sub = this.active.get(batch.roomId);
    if (sub === undefined || sub.phase !== "joined") return;
    if (batch.omittedCount) sub.pushNotice({ type: "omitted", roomId: batch.roomId, count: batch.omittedCount });
    for (const event of batch.events) {
      const outcome = sub.offerEvent(event);
      if (outcome === "duplicate") {
        this.stats.duplicatesDropped += 1;
      } else if (outcome === "full") {
        // The application is behind: stop here, catch up from the log later.
        this.stats.pauses += 1;
        sub.phase = "paused";
        return;
      } else if (this.endsSubscription(sub, event)) {
        return;
      }
    }
  }

  /** A room_closed, or a ban of this user, ends the subscription explicitly. */
  private endsSubscription(sub: Subscription, event: Event): boolean {
    const payload = event.payload?.kind;
    if (payload?.case === "roomClosed") {
      this.endSub(sub, "room_closed", payload.value.reason);
      return true;
    }
    if (payload?.case === "userBanned" && payload.value.userId === this._welcome?.user?.userId) {
      // The server removes a banned user's streams from the room right after this event.
      const reason = payload.value.reason;
      const error = new BarrageError(
        Code.PERMISSION_DENIED,
        `you were removed from the room${reason ? `: ${reason}` : ""}`,
        { reason: "BANNED" },
      );
      this.endSub(sub, "banned", reason, error);
      return true;
    }
    return false;
  }

  private onJoinResult(stream: Stream, result: JoinResult): void {
    const roomId = result.roomId;
    const outstanding = (stream.joins.get(roomId) ?? 0) - 1;
    stream.joins.set(roomId, Math.max(outstanding, 0));
    const sub = this.active.get(roomId);
    if (outstanding > 0 || sub === undefined || sub.phase !== "joining") return; // Superseded.
    if ((result.status?.code ?? 0) !== 0) {
      this.joinRefused(sub, new JoinError(BarrageError.fromStatus(result.status)));
      return;
    }
    sub.joinAttempts = 0;
    sub.snapshot = result.snapshot;
    sub.resumeOutcome = result.resume;
    if (result.resume === ResumeOutcome.CURSOR_TOO_OLD || result.resume === ResumeOutcome.CURSOR_UNKNOWN) {
      sub.pushNotice({ type: "gap", roomId, outcome: result.resume, cursor: sub.cursor, snapshot: result.snapshot });
    }
    const next = afterJoin(result.resume, result.snapshot?.headCursor ?? "", {
      cursor: sub.cursor,
      freshHistory: sub.freshHistory,
      askedHistory: sub.sentJoinWithHistory,
      maxHistory: this._welcome?.limits?.maxHistoryLimit ?? 0,
    });
    sub.cursor = next.cursor;
    sub.freshHistory = next.freshHistory;
    sub.phase = sub.hasRoom() ? "joined" : "paused";
    sub.joined.resolve();
  }

  private onLeaveResult(stream: Stream, result: LeaveResult): void {
    const outstanding = (stream.leaves.get(result.roomId) ?? 0) - 1;
    stream.leaves.set(result.roomId, Math.max(outstanding, 0));
    const sub = this.active.get(result.roomId);
    if (outstanding > 0 || sub === undefined || sub.phase !== "leaving") return;
    // NOT_JOINED also means we are out of the room; either way the leave is done.
    this.endSub(sub, "left");
  }

  private joinRefused(sub: Subscription, error: JoinError): void {
    sub.joinAttempts += 1;
    const delay = joinRetryDelay(error, sub.joinAttempts);
    if (delay !== undefined) {
      sub.phase = "detached";
      sub.joinRetry = setTimeout(() => {
        sub.joinRetry = undefined;
        if (this.active.get(sub.roomId) === sub && sub.phase === "detached") this.writeJoin(sub);
      }, delay);
      return;
    }
    this.endSub(sub, "refused", error.detail, error);
  }

  // ================================================================== rooms

  private endSub(sub: Subscription, why: Parameters<Subscription["end"]>[0], text = "", error?: BarrageError): void {
    if (this.active.get(sub.roomId) === sub) this.active.delete(sub.roomId);
    sub.end(why, text, error);
  }

  /** The application caught up with a paused room: leave and rejoin from its cursor
   * (the server replays what was skipped from the log). */
  private drained(sub: Subscription): void {
    const stream = this.stream;
    if (this.active.get(sub.roomId) !== sub || sub.phase !== "paused") return;
    if (stream === undefined || !stream.open) {
      sub.phase = "detached";
      return;
    }
    this.writeLeave(stream, sub);
    this.writeJoin(sub);
  }

  private writeJoin(sub: Subscription): void {
    const stream = this.stream;
    if (stream === undefined || !stream.open) {
      sub.phase = "detached"; // Joined by attach() on the next stream.
      return;
    }
    sub.phase = "joining";
    const historyLimit = sub.cursor ? 0 : sub.freshHistory;
    this.write(
      create(ConnectRequestSchema, {
        kind: { case: "joinRoom", value: { roomId: sub.roomId, resumeCursor: sub.cursor, historyLimit } },
      }),
      stream,
    );
    stream.joins.set(sub.roomId, (stream.joins.get(sub.roomId) ?? 0) + 1);
    sub.sentJoinWithHistory = !sub.cursor && sub.freshHistory > 0;
  }

  private writeLeave(stream: Stream, sub: Subscription): void {
    this.write(create(ConnectRequestSchema, { kind: { case: "leaveRoom", value: { roomId: sub.roomId } } }), stream);
    stream.leaves.set(sub.roomId, (stream.leaves.get(sub.roomId) ?? 0) + 1);
  }

  private async awaitJoin(sub: Subscription): Promise<void> {
    try {
      await withTimeout(sub.joined.promise, this.opts.joinTimeoutMs, () =>
        new JoinError(new BarrageError(Code.DEADLINE_EXCEEDED, `no answer to join ${sub.roomId}`, { reason: "JOIN_TIMEOUT" })),
      );
    } catch (error) {
      if (error instanceof JoinError && error.reason === "JOIN_TIMEOUT" && this.active.get(sub.roomId) === sub) {
        const stream = this.stream;
        if (stream !== undefined && stream.open && sub.phase !== "detached") this.writeLeave(stream, sub);
        this.endSub(sub, "refused", error.detail, error);
      }
      if (error instanceof BarrageError) throw error;
      throw this.fatal ?? clientClosed();
    }
  }

  // ================================================================== tokens

  private refreshSoon(delayMs: number): void {
    if (typeof this.token === "string" || this.refreshTimer !== undefined) return;
    this.refreshTimer = setTimeout(() => {
      void this.tokenValue()
        .then((token) => {
          this.refreshTimer = undefined;
          if (!this.writeRefresh(token)) return; // No stream: the next Welcome schedules one.
          // The server accepts a refresh silently, so the next one is timed by the new
          // token's own expiry (read, not verified: only the server verifies).
          const expires = jwtExpiryMs(token);
          if (expires !== undefined) this.refreshSoon(Math.max(expires - Date.now() - this.opts.refreshMarginMs, 1000));
        })
        .catch(() => {
          this.refreshTimer = undefined; // The next reconnect asks again.
        });
    }, delayMs);
  }

  private writeRefresh(token: string): boolean {
    if (!this.write(create(ConnectRequestSchema, { kind: { case: "refreshToken", value: { token } } }))) return false;
    this.stats.tokenRefreshes += 1;
    return true;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, error?: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(error?.() ?? new Error("timeout")), ms);
    promise.then(
      (value) => (clearTimeout(timer), resolve(value)),
      (e: unknown) => (clearTimeout(timer), reject(e)),
    );
  });
}

/** A JWT's `exp` in milliseconds, if the token is a JWT with one. */
function jwtExpiryMs(token: string): number | undefined {
  try {
    const body = token.split(".")[1];
    if (body === undefined) return undefined;
    const json = atob(body.replaceAll("-", "+").replaceAll("_", "/")) as string;
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === "number" ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

function randomId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID !== undefined) return c.randomUUID().replaceAll("-", "");
  return Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join("");
}
