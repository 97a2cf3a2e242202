// Show a room's events in step with the picture (docs/web.md, "In step with the video";
// the Python SDK's clients/sdk/media_sync.py, docs/sdk.md).
//
// A viewer's video plays seconds behind the camera; Barrage delivers in ~0.1 s. Events
// carry `mediaTime` (where on the stream's timeline they happened, stamped by the node
// from the host's media clock), and a MediaSync holds each one until the app's player
// reaches it:
//
//   const stop = room.listenInStep(() => ({ positionS: video.currentTime }), render);
//   for await (const item of room.inStep(player)) render(item);   // or iterate
//
// - An event is released when the player's position on the event's timeline reaches
//   the event's mediaTime; at once when the player is on a later timeline (the stream
//   restarted); at the latest `maxHoldMs` (15 s) after it arrived, whatever the player
//   does (paused, stalled, a media clock far off), so nothing waits for ever.
// - "As fast as possible" instead of in step: events without mediaTime, the kinds in
//   `immediateKinds` (moderation, room closed, counters by default), and the viewer's
//   own events (`isOwn`): your own comment shows the moment it is sent.
// - Critical events are never dropped. Normal ones are subject to a display budget
//   (`normalBudgetPerS`): when a seek forward makes many due at once, the excess is
//   counted in an "omitted" item; and at most `maxHeldNormal` wait at once (the oldest
//   beyond that are omitted).
// - Every event is released once: a seek back, a rebuffer or a restart never shows an
//   event twice, and never loses one (each is released by the player or by its hold).
// - A messageDeleted removes its target if it is still held (it is never shown).
//
// Time is read from `now` (milliseconds, default performance.now) so tests drive it;
// the player is asked at each check (every `pollMs` while events are held).

import { type Event, Priority } from "./gen/barrage/v1/event_pb.js";
import type { RoomItem } from "./items.js";

/** Where the player is: `positionS` seconds on its stream's timeline. */
export interface PlayerTime {
  positionS: number;
  /**
   * The timeline the player shows (the stream's MediaClock.timelineId, when the app can
   * read it from the stream); absent: compare with events of any timeline.
   */
  timelineId?: string | undefined;
}

/** The app's player: its current media time, or undefined/null when nothing plays (yet). */
export type PlayerClock = () => PlayerTime | undefined | null;

/**
 * Payload kinds (`event.payload.kind.case`) shown as fast as possible by default:
 * moderation must act at once (a deleted message must not linger until the picture
 * catches up), and counters are not moments of the show. The Python SDK's IMMEDIATE_KINDS.
 */
export const IMMEDIATE_KINDS: ReadonlySet<string> = new Set([
  "roomClosed",
  "messageDeleted",
  "userBanned",
  "userMuted",
  "slowMode",
  "viewerCount",
  "viewerJoined",
  "viewerLeft",
  "mediaClock",
  "leaderboard",
  "audience",
]);

export interface MediaSyncOptions {
  /** Given a sender's user id: is it this viewer? (Its own events show at once.) */
  isOwn?: (userId: string) => boolean;
  /** Payload kinds shown at once, not in step. Default IMMEDIATE_KINDS. */
  immediateKinds?: ReadonlySet<string>;
  /** An event shows anyway this long after it arrived. Default 15 000. */
  maxHoldMs?: number;
  /** Normal events shown per second at most when many become due at once. Default 30. */
  normalBudgetPerS?: number;
  /** Normal events waiting at once at most (the oldest beyond are omitted). Default 1000. */
  maxHeldNormal?: number;
  /** The time source, in milliseconds. Default performance.now. */
  now?: () => number;
  /** How often the player is asked while events are held (listen, run). Default 20. */
  pollMs?: number;
}

/** What a MediaSync did (for metrics, tests). */
export interface SyncStats {
  /** Events shown because the player reached them (or moved to a later timeline). */
  releasedInStep: number;
  /** Events shown at once (no mediaTime, an immediate kind, the viewer's own). */
  releasedImmediately: number;
  /** Events shown because they had waited maxHoldMs (or the subscription ended). */
  releasedByHold: number;
  /** Normal events not shown (display budget, or too many held). */
  omitted: number;
  /** Held events removed by a messageDeleted before they were shown. */
  deletedWhileHeld: number;
}

/** Anything that hands its items to one listener (a Subscription). */
export interface Listenable {
  listen(listener: (item: RoomItem) => void): () => void;
}

type EventItem = Extract<RoomItem, { type: "event" }>;

interface Held {
  readonly item: EventItem;
  readonly event: Event;
  readonly arrivedMs: number;
  readonly timelineId: string;
  readonly positionS: number;
  /** Released by its hold rather than by the player. */
  expired: boolean;
}

export class MediaSync {
  readonly stats: SyncStats = {
    releasedInStep: 0,
    releasedImmediately: 0,
    releasedByHold: 0,
    omitted: 0,
    deletedWhileHeld: 0,
  };
  private readonly isOwn: ((userId: string) => boolean) | undefined;
  private readonly immediateKinds: ReadonlySet<string>;
  private readonly maxHoldMs: number;
  private readonly normalBudgetPerS: number;
  private readonly maxHeldNormal: number;
  private readonly now: () => number;
  private readonly pollMs: number;
  /** Waiting for the player, in arrival (room) order. */
  private heldEvents: Held[] = [];
  private heldNormal = 0;
  private ready: RoomItem[] = [];
  /** Normal events omitted and not yet reported (an "omitted" item precedes the next one shown). */
  private pendingOmitted = 0;
  /** Timeline ids in the order the room first mentioned them: which one is later. */
  private readonly timelines = new Map<string, number>();
  private allowance: number;
  private refilledMs: number;

  constructor(
    private readonly player: PlayerClock,
    options: MediaSyncOptions = {},
  ) {
    this.isOwn = options.isOwn;
    this.immediateKinds = options.immediateKinds ?? IMMEDIATE_KINDS;
    this.maxHoldMs = options.maxHoldMs ?? 15_000;
    this.normalBudgetPerS = options.normalBudgetPerS ?? 30;
    this.maxHeldNormal = options.maxHeldNormal ?? 1000;
    this.now = options.now ?? (() => performance.now());
    this.pollMs = options.pollMs ?? 20;
    this.allowance = this.normalBudgetPerS;
    this.refilledMs = this.now();
  }

  /** Events waiting for the player. */
  get held(): number {
    return this.heldEvents.length;
  }

  /** Take an item of the subscription: held until due, or ready at once. */
  offer(item: RoomItem): void {
    if (item.type !== "event") {
      if (item.type === "ended") {
        // Nothing more will come: show what is left, in order, then the end.
        const held = this.heldEvents;
        this.heldEvents = [];
        for (const h of held) h.expired = true;
        this.release(held);
        this.flushOmitted(item.roomId);
      }
      this.ready.push(item);
      return;
    }
    const event = item.event;
    const kind = event.payload?.kind;
    if (kind?.case === "mediaClock") this.timelineOrder(kind.value.timelineId);
    else if (kind?.case === "messageDeleted") this.dropHeld(kind.value.eventId);
    const mediaTime = event.mediaTime;
    if (
      mediaTime === undefined ||
      (kind?.case !== undefined && this.immediateKinds.has(kind.case)) ||
      (this.isOwn !== undefined && this.isOwn(event.sender?.userId ?? ""))
    ) {
      this.stats.releasedImmediately += 1;
      this.emit(item);
      return;
    }
    this.timelineOrder(mediaTime.timelineId);
    const position = mediaTime.position;
    this.heldEvents.push({
      item,
      event,
      arrivedMs: this.now(),
      timelineId: mediaTime.timelineId,
      positionS: position === undefined ? 0 : Number(position.seconds) + position.nanos / 1e9,
      expired: false,
    });
    if (event.priority === Priority.NORMAL) {
      this.heldNormal += 1;
      if (this.heldNormal > this.maxHeldNormal) this.dropOldestNormal();
    }
  }

  /** Everything due now, in the order it arrived (call after offer, and as time passes). */
  take(): RoomItem[] {
    if (this.heldEvents.length > 0) {
      const now = this.now();
      const player = this.player() ?? undefined;
      const released: Held[] = [];
      const waiting: Held[] = [];
      for (const held of this.heldEvents) {
        if (this.reached(held, player)) {
          released.push(held);
        } else if (now - held.arrivedMs >= this.maxHoldMs) {
          held.expired = true;
          released.push(held);
        } else {
          waiting.push(held);
        }
      }
      if (released.length > 0) {
        this.heldEvents = waiting;
        this.release(released);
      }
    }
    const ready = this.ready;
    this.ready = [];
    return ready;
  }

  /** How long until take() may have something new (undefined: nothing is held). */
  nextCheckMs(): number | undefined {
    const oldest = this.heldEvents[0];
    if (oldest === undefined) return undefined;
    return Math.max(0, Math.min(this.pollMs, oldest.arrivedMs + this.maxHoldMs - this.now()));
  }

  /**
   * Hand `source`'s items (a Subscription's) to `listener`, each when it is due; a timer
   * asks the player every pollMs while events are held. Returns a function that stops.
   */
  listen(source: Listenable, listener: (item: RoomItem) => void): () => void {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const deliver = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      for (const item of this.take()) {
        if (stopped) return;
        try {
          listener(item);
        } catch (error) {
          console.error("barrage: in-step listener failed", error);
        }
      }
      const waitMs = this.nextCheckMs();
      if (!stopped && waitMs !== undefined) timer = setTimeout(deliver, waitMs);
    };
    const unlisten = source.listen((item) => {
      if (stopped) return;
      this.offer(item);
      deliver();
    });
    return () => {
      stopped = true;
      unlisten();
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    };
  }

  /** The source's items, each when it is due. Ends after the source ends and nothing is held. */
  async *run(source: AsyncIterable<RoomItem>): AsyncGenerator<RoomItem, void, undefined> {
    const iterator = source[Symbol.asyncIterator]();
    let wake: (() => void) | undefined;
    let dirty = false;
    let done = false;
    let stopped = false;
    let failure: { error: unknown } | undefined;
    const signal = (): void => {
      dirty = true;
      const resolve = wake;
      wake = undefined;
      resolve?.();
    };
    void (async () => {
      try {
        for (;;) {
          const next = await iterator.next();
          if (next.done === true || stopped) return;
          this.offer(next.value);
          signal();
        }
      } catch (error) {
        failure = { error };
      } finally {
        done = true;
        signal();
      }
    })();
    try {
      for (;;) {
        dirty = false;
        for (const item of this.take()) yield item;
        if (failure !== undefined) throw failure.error;
        if (done && this.heldEvents.length === 0 && this.ready.length === 0) return;
        if (dirty) continue;
        const waitMs = this.nextCheckMs();
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (waitMs !== undefined) timer = setTimeout(resolve, waitMs);
        });
        wake = undefined;
        if (timer !== undefined) clearTimeout(timer);
      }
    } finally {
      stopped = true;
      if (!done) void iterator.return?.()?.catch(() => undefined);
    }
  }

  // ------------------------------------------------------------------ inside

  private timelineOrder(timelineId: string): number {
    let order = this.timelines.get(timelineId);
    if (order === undefined) {
      order = this.timelines.size;
      this.timelines.set(timelineId, order);
    }
    return order;
  }

  private reached(held: Held, player: PlayerTime | undefined): boolean {
    if (player === undefined) return false;
    if (player.timelineId === undefined || player.timelineId === held.timelineId) {
      return player.positionS >= held.positionS;
    }
    const playing = this.timelines.get(player.timelineId);
    // A timeline the room never mentioned is newer than every event (a restart not yet
    // stamped on anything); an event of an earlier timeline is in the player's past.
    return playing === undefined || this.timelineOrder(held.timelineId) < playing;
  }

  /** Show held events (already out of heldEvents): critical always, normal within the budget. */
  private release(items: Held[]): void {
    const now = this.now();
    const budget = this.normalBudgetPerS;
    this.allowance = Math.min(budget, this.allowance + ((now - this.refilledMs) / 1000) * budget);
    this.refilledMs = now;
    for (const held of items) {
      if (held.event.priority === Priority.NORMAL) {
        this.heldNormal -= 1;
        if (this.allowance < 1) {
          this.omit();
          continue;
        }
        this.allowance -= 1;
      }
      if (held.expired) this.stats.releasedByHold += 1;
      else this.stats.releasedInStep += 1;
      this.emit(held.item);
    }
  }

  private emit(item: EventItem): void {
    this.flushOmitted(item.roomId);
    this.ready.push(item);
  }

  private flushOmitted(roomId: string): void {
    if (this.pendingOmitted === 0) return;
    this.ready.push({ type: "omitted", roomId, count: this.pendingOmitted });
    this.pendingOmitted = 0;
  }

  private omit(): void {
    this.pendingOmitted += 1;
    this.stats.omitted += 1;
  }

  private dropOldestNormal(): void {
    const i = this.heldEvents.findIndex((h) => h.event.priority === Priority.NORMAL);
    if (i < 0) return;
    this.heldEvents.splice(i, 1);
    this.heldNormal -= 1;
    this.omit();
  }

  private dropHeld(eventId: string): void {
    const i = this.heldEvents.findIndex((h) => h.event.eventId === eventId);
    const held = this.heldEvents[i];
    if (held === undefined) return;
    this.heldEvents.splice(i, 1);
    if (held.event.priority === Priority.NORMAL) this.heldNormal -= 1;
    this.stats.deletedWhileHeld += 1;
  }
}
