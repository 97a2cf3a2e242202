// One joined room: its resume state, its dedupe window and its delivery queue.
//
// The client's reader never blocks on the application: when a subscription's queue is
// full the room is paused (its events are ignored, its cursor stays at the last event
// the application was given) and, once the application has drained half the queue, the
// client leaves and rejoins the room from that cursor; the server replays the rest from
// the log. A slow consumer costs a replay, never memory. With a listener (listen()),
// items are handed over as they arrive and the queue stays empty.

import type { Event } from "./gen/barrage/v1/event_pb.js";
import { ResumeOutcome, type RoomSnapshot } from "./gen/barrage/v1/room_service_pb.js";
import { RecentIds } from "./dedupe.js";
import { type Deferred, deferred } from "./deferred.js";
import type { BarrageError } from "./errors.js";
import type { Ack, EndReason, RoomItem } from "./items.js";
import { MediaSync, type MediaSyncOptions, type PlayerClock } from "./mediaSync.js";

export type Phase = "joining" | "joined" | "paused" | "detached" | "leaving" | "ended";

/** What a Subscription needs of its client. */
export interface SubscriptionHost {
  leave(roomId: string): Promise<void>;
  sendText(roomId: string, text: string, options?: SendOptions): Promise<Ack>;
  drained(sub: Subscription): void;
  /** This client's user id (from its Welcome), if welcomed yet. */
  userId(): string | undefined;
}

export interface SendOptions {
  /** Choose the id (to retry a send from an earlier session); default: a random UUID. */
  clientMsgId?: string;
  replyToEventId?: string;
  mentionUserIds?: string[];
  traceparent?: string;
  /** Default: the client's sendTimeoutMs. */
  timeoutMs?: number;
}

export class Subscription implements AsyncIterable<RoomItem> {
  phase: Phase = "detached";
  /** Where to resume: the cursor of the last event given to the application, or the
   * snapshot head of a join that had nothing to replay. Empty: join fresh. */
  cursor: string;
  /** history_limit to ask for when joining without a cursor. */
  freshHistory: number;
  /** The room as of the last successful (re)join. */
  snapshot: RoomSnapshot | undefined;
  resumeOutcome: ResumeOutcome = ResumeOutcome.UNSPECIFIED;
  sentJoinWithHistory = false;
  joinAttempts = 0;
  joinRetry: ReturnType<typeof setTimeout> | undefined;
  readonly joined: Deferred<void> = deferred();
  readonly left: Deferred<void> = deferred();
  private readonly seen: RecentIds;
  private readonly items: RoomItem[] = [];
  private wake: (() => void) | undefined;
  private listener: ((item: RoomItem) => void) | undefined;
  private finished = false;

  constructor(
    private readonly host: SubscriptionHost,
    readonly roomId: string,
    p: { historyLimit: number; resumeCursor: string; queueSize: number; dedupeWindow: number },
  ) {
    this.cursor = p.resumeCursor;
    this.freshHistory = p.historyLimit;
    this.queueSize = p.queueSize;
    this.seen = new RecentIds(p.dedupeWindow);
  }

  private readonly queueSize: number;

  // ------------------------------------------------------------- application

  get active(): boolean {
    return this.phase !== "ended";
  }

  /** Leave the room; the items end with {type: "ended", why: "left"}. */
  leave(): Promise<void> {
    return this.host.leave(this.roomId);
  }

  /** Post a comment into this room and wait until it is durable (see BarrageClient.send). */
  send(text: string, options?: SendOptions): Promise<Ack> {
    return this.host.sendText(this.roomId, text, options);
  }

  /**
   * Hand every item (queued ones first) to `listener` as it arrives, instead of
   * iterating. For pages: no queue builds up. Returns a function that stops listening.
   */
  listen(listener: (item: RoomItem) => void): () => void {
    this.listener = listener;
    for (let item = this.take(); item !== undefined; item = this.take()) listener(item);
    return () => {
      if (this.listener === listener) this.listener = undefined;
    };
  }

  /**
   * This room's items, each when the app's player reaches its mediaTime (the viewer's
   * own events, events without mediaTime and IMMEDIATE_KINDS at once): iterate this
   * instead of the subscription. `options`: MediaSync's (src/mediaSync.ts).
   */
  inStep(player: PlayerClock, options: MediaSyncOptions = {}): AsyncGenerator<RoomItem, void, undefined> {
    return this.mediaSync(player, options).run(this);
  }

  /**
   * listen(), in step with the player: `listener` gets each item when it is due (see
   * inStep). Returns a function that stops listening.
   */
  listenInStep(player: PlayerClock, listener: (item: RoomItem) => void, options: MediaSyncOptions = {}): () => void {
    return this.mediaSync(player, options).listen(this, listener);
  }

  private mediaSync(player: PlayerClock, options: MediaSyncOptions): MediaSync {
    const isOwn = (userId: string): boolean => userId !== "" && userId === this.host.userId();
    return new MediaSync(player, { isOwn, ...options });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<RoomItem> {
    for (;;) {
      const item = this.take();
      if (item !== undefined) {
        yield item;
        if (item.type === "ended") return;
        continue;
      }
      if (this.finished) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private take(): RoomItem | undefined {
    const item = this.items.shift();
    if (item === undefined) return undefined;
    if (item.type === "ended") this.finished = true;
    if (this.phase === "paused" && this.hasRoom()) this.host.drained(this);
    return item;
  }

  // ------------------------------------------------------------------ client

  /** The queue can take events (paused or detached rooms wait for half of it). */
  hasRoom(): boolean {
    return this.items.length <= Math.floor(this.queueSize / 2);
  }

  /** Deliver an event unless it is a duplicate. "full": the queue is full. */
  offerEvent(event: Event): "delivered" | "duplicate" | "full" {
    if (event.eventId && this.seen.has(event.eventId)) return "duplicate";
    if (this.items.length >= this.queueSize) return "full";
    if (event.eventId) this.seen.add(event.eventId);
    // Events without a position (aggregates the server never logs) cannot be resumed
    // from, so they never move the resume point.
    if (event.cursor) this.cursor = event.cursor;
    this.push({ type: "event", roomId: this.roomId, event });
    return "delivered";
  }

  /** Queue a notice regardless of the queue bound (they are rare and tiny). */
  pushNotice(item: RoomItem): void {
    this.push(item);
  }

  end(why: EndReason, text = "", error?: BarrageError): void {
    if (this.phase === "ended") return;
    this.phase = "ended";
    if (this.joinRetry !== undefined) clearTimeout(this.joinRetry);
    if (error !== undefined) this.joined.reject(error);
    else this.joined.reject(new Error(`subscription ended (${why})`));
    this.left.resolve();
    this.push({ type: "ended", roomId: this.roomId, why, text, error });
  }

  /** The whole client failed: the last item is {type: "ended", why: "failed", error}. */
  fail(error: BarrageError): void {
    this.end("failed", error.detail, error);
  }

  private push(item: RoomItem): void {
    if (this.listener !== undefined && this.items.length === 0) {
      if (item.type === "ended") this.finished = true;
      try {
        this.listener(item);
      } catch (error) {
        console.error("barrage: subscription listener failed", error);
      }
      return;
    }
    this.items.push(item);
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
