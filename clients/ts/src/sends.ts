// Sends awaiting their SendResult (clients/sdk/sends.py). A send stays here, keyed by
// (room, client_msg_id), until a SendResult settles it or its caller stops waiting. It
// is written on the current stream and again, with the same id, on every new one (the
// server appends an id at most once and answers a retry with the first copy's cursor),
// and after refusals a retry can fix (policy.sendRetryDelay).

import { create } from "@bufbuild/protobuf";
import type { Payload } from "./gen/barrage/v1/event_pb.js";
import { type ConnectRequest, ConnectRequestSchema, type SendResult } from "./gen/barrage/v1/room_service_pb.js";
import { BarrageError, Code, SendError } from "./errors.js";
import type { Ack, ClientStats } from "./items.js";
import { sendRetryDelay } from "./policy.js";

interface Pending {
  request: ConnectRequest;
  resolve(ack: Ack): void;
  reject(error: SendError): void;
  done: boolean;
  /** Writes so far. */
  attempts: number;
  retry: ReturnType<typeof setTimeout> | undefined;
}

export interface SendsHost {
  /** Write on the current stream once it is open; false when there is none. */
  write(request: ConnectRequest): boolean;
  /** The client is itself (re)joining the room, so NOT_JOINED is its own doing. */
  rejoining(roomId: string): boolean;
  /** A send was refused TOKEN_EXPIRED: fetch a new token; true if one is coming. */
  tokenExpired(): boolean;
}

export class Sends {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly host: SendsHost,
    private readonly stats: ClientStats,
    private readonly opts: { maxAttempts: number; retryRateLimited: boolean },
  ) {}

  send(roomId: string, clientMsgId: string, payload: Payload, traceparent: string, timeoutMs: number): Promise<Ack> {
    const key = `${roomId}\u0000${clientMsgId}`;
    const existing = this.pending.get(key);
    if (existing !== undefined) {
      // The application retried a send that is still in flight: share its outcome.
      return new Promise<Ack>((resolve, reject) => {
        const { resolve: r0, reject: j0 } = existing;
        existing.resolve = (ack) => (r0(ack), resolve(ack));
        existing.reject = (error) => (j0(error), reject(error));
      });
    }
    const request = create(ConnectRequestSchema, {
      kind: { case: "send", value: { roomId, clientMsgId, traceparent, payload } },
    });
    return new Promise<Ack>((resolve, reject) => {
      const timer = setTimeout(() => {
        settle();
        reject(
          new SendError(
            new BarrageError(Code.DEADLINE_EXCEEDED, `no ack within ${timeoutMs} ms`, { reason: "SEND_TIMEOUT" }),
            roomId,
            clientMsgId,
          ),
        );
      }, timeoutMs);
      // An abandoned send (timed out, settled) is never written again.
      const settle = (): void => {
        clearTimeout(timer);
        entry.done = true;
        if (entry.retry !== undefined) clearTimeout(entry.retry);
        if (this.pending.get(key) === entry) this.pending.delete(key);
      };
      const entry: Pending = {
        request,
        done: false,
        attempts: 0,
        retry: undefined,
        resolve: (ack) => (settle(), resolve(ack)),
        reject: (error) => (settle(), reject(error)),
      };
      this.pending.set(key, entry);
      this.write(entry);
    });
  }

  /** A new stream: write every pending send again, in the order they were made. */
  attach(): void {
    for (const entry of this.pending.values()) {
      if (entry.retry !== undefined) {
        clearTimeout(entry.retry);
        entry.retry = undefined;
      }
      this.write(entry);
    }
  }

  onResult(result: SendResult): void {
    const entry = this.pending.get(`${result.roomId}\u0000${result.clientMsgId}`);
    if (entry === undefined || entry.done) return;
    if ((result.status?.code ?? 0) === 0) {
      entry.resolve({
        roomId: result.roomId,
        clientMsgId: result.clientMsgId,
        cursor: result.cursor,
        eventId: result.eventId,
        duplicate: result.duplicate,
      });
      return;
    }
    const error = new SendError(BarrageError.fromStatus(result.status), result.roomId, result.clientMsgId);
    const delay = sendRetryDelay(error, entry.attempts, {
      maxAttempts: this.opts.maxAttempts,
      retryRateLimited: this.opts.retryRateLimited,
      rejoining: this.host.rejoining(result.roomId),
      tokenRefreshing: error.reason === "TOKEN_EXPIRED" && this.host.tokenExpired(),
    });
    if (delay === undefined) {
      entry.reject(error);
      return;
    }
    entry.retry = setTimeout(() => {
      entry.retry = undefined;
      this.write(entry);
    }, delay);
  }

  failAll(error: BarrageError): void {
    for (const entry of [...this.pending.values()]) {
      const send = entry.request.kind.case === "send" ? entry.request.kind.value : undefined;
      entry.reject(new SendError(error, send?.roomId ?? "", send?.clientMsgId ?? ""));
    }
  }

  private write(entry: Pending): void {
    if (entry.done || entry.retry !== undefined) return;
    if (this.host.write(entry.request)) {
      entry.attempts += 1;
      if (entry.attempts > 1) this.stats.sendsRewritten += 1;
    }
  }
}
