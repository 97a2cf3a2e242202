// The room stream over the node's WebSocket (/ws, docs/web.md): one binary message per
// ConnectRequest / ConnectResponse. A page-side client with the Python SDK's promises in
// small: hello with the token (never in the URL), join, resume from the last cursor after
// any drop (backoff with jitter), resend unacknowledged sends with the same client_msg_id,
// and hand each event to the page once (event ids already shown are skipped, so a replay
// that overlaps what was seen cannot show anything twice).

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Event, Payload } from "../gen/barrage/v1/event_pb.js";
import {
  ConnectRequestSchema,
  ConnectResponseSchema,
  ResumeOutcome,
  type ConnectRequest,
  type RoomSnapshot,
  type SendResult,
  type Welcome,
} from "../gen/barrage/v1/room_service_pb.js";

export const SUBPROTOCOL = "barrage.v1";
/** Close codes after which retrying cannot help (docs/web.md): a bad token or a client bug. */
const FINAL_CLOSE_CODES = new Set([4016, 4003, 4007, 4009]);
const SEEN_LIMIT = 5000;

export type LinkState = "connecting" | "live" | "offline" | "stopped";

export interface RoomHandlers {
  welcome?(welcome: Welcome): void;
  /** A join answered: a snapshot of the room (fresh, or after a resume). */
  snapshot?(snapshot: RoomSnapshot, resume: ResumeOutcome): void;
  event(event: Event): void;
  state?(state: LinkState, detail: string): void;
  joinFailed?(message: string): void;
}

interface Pending {
  payload: Payload;
  resolve(result: SendResult): void;
}

export class RoomLink {
  private socket: WebSocket | null = null;
  private cursor = "";
  private readonly seen = new Set<string>();
  private readonly pending = new Map<string, Pending>();
  private attempt = 0;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private sequence = 0;

  constructor(
    private readonly url: string,
    private readonly token: string,
    readonly roomId: string,
    private readonly handlers: RoomHandlers,
    private readonly historyLimit = 50,
  ) {}

  /** The cursor of the last event shown: where a reconnect resumes. */
  get lastCursor(): string {
    return this.cursor;
  }

  start(): void {
    this.stopped = false;
    this.open();
    // A browser that comes back online retries at once rather than at the next backoff.
    window.addEventListener("online", () => this.retryNow());
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket?.close(1000);
    this.setState("stopped", "");
  }

  /** Post into the room; resolves with the server's answer (after any reconnects). */
  send(payload: Payload): Promise<SendResult> {
    const clientMsgId = `${Date.now().toString(36)}-${(this.sequence++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    return new Promise((resolve) => {
      this.pending.set(clientMsgId, { payload, resolve });
      this.write(this.sendRequest(clientMsgId, payload));
    });
  }

  private sendRequest(clientMsgId: string, payload: Payload): ConnectRequest {
    return create(ConnectRequestSchema, {
      kind: { case: "send", value: { roomId: this.roomId, clientMsgId, payload } },
    });
  }

  private open(): void {
    this.setState("connecting", this.attempt ? `retry ${this.attempt}` : "");
    const socket = new WebSocket(this.url, [SUBPROTOCOL]);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.write(create(ConnectRequestSchema, { kind: { case: "hello", value: { token: this.token, clientAgent: "barrage-pages/0.1" } } }));
      this.write(
        create(ConnectRequestSchema, {
          kind: {
            case: "joinRoom",
            value: { roomId: this.roomId, resumeCursor: this.cursor, historyLimit: this.cursor ? 0 : this.historyLimit },
          },
        }),
      );
      for (const [id, item] of this.pending) this.write(this.sendRequest(id, item.payload));
    });
    socket.addEventListener("message", (message: MessageEvent) => {
      if (!(message.data instanceof ArrayBuffer)) return;
      this.receive(fromBinary(ConnectResponseSchema, new Uint8Array(message.data)));
    });
    socket.addEventListener("close", (close: CloseEvent) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.stopped) return;
      if (FINAL_CLOSE_CODES.has(close.code)) {
        this.stopped = true;
        this.setState("stopped", close.reason || `closed ${close.code}`);
        return;
      }
      this.setState("offline", close.reason || `closed ${close.code}`);
      this.schedule();
    });
  }

  private receive(response: ReturnType<typeof fromBinary<typeof ConnectResponseSchema>>): void {
    for (const message of response.messages) {
      const kind = message.kind;
      switch (kind.case) {
        case "welcome":
          this.handlers.welcome?.(kind.value);
          break;
        case "joinResult": {
          const status = kind.value.status;
          if (status && status.code !== 0) {
            this.handlers.joinFailed?.(status.message);
            break;
          }
          this.attempt = 0;
          this.setState("live", "");
          if (kind.value.snapshot) this.handlers.snapshot?.(kind.value.snapshot, kind.value.resume);
          break;
        }
        case "eventBatch":
          for (const event of kind.value.events) this.deliver(event);
          break;
        case "sendResult": {
          const pending = this.pending.get(kind.value.clientMsgId);
          if (pending) {
            this.pending.delete(kind.value.clientMsgId);
            pending.resolve(kind.value);
          }
          break;
        }
        case "resumeRequired":
          // Fell behind (or the node lost the room's live tail): join again from the
          // last event written to this stream and catch up from the log.
          if (kind.value.cursor) this.cursor = kind.value.cursor;
          this.socket?.close(1000);
          this.retryNow();
          break;
        case "goAway":
          this.socket?.close(1000);
          break;
        default:
          break;
      }
    }
  }

  private deliver(event: Event): void {
    if (event.cursor) this.cursor = event.cursor;
    if (event.eventId) {
      if (this.seen.has(event.eventId)) return;
      this.seen.add(event.eventId);
      if (this.seen.size > SEEN_LIMIT) this.seen.delete(this.seen.values().next().value as string);
    }
    this.handlers.event(event);
  }

  private write(request: ConnectRequest): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(toBinary(ConnectRequestSchema, request));
  }

  private schedule(): void {
    clearTimeout(this.timer);
    const ceiling = Math.min(10_000, 250 * 2 ** this.attempt++);
    this.timer = setTimeout(() => this.open(), ceiling / 2 + Math.random() * (ceiling / 2)); // jitter
  }

  private retryNow(): void {
    if (this.stopped || this.socket !== null) return;
    clearTimeout(this.timer);
    this.open();
  }

  private setState(state: LinkState, detail: string): void {
    this.handlers.state?.(state, detail);
  }
}

/** ws:// or wss:// to the node that served this page. */
export function streamUrl(): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}

export { ResumeOutcome };
