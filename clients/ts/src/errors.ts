// Typed errors of the SDK, as in the Python SDK (clients/sdk/errors.py): every failure
// carries a gRPC code, and Barrage's own ones a google.rpc.ErrorInfo reason (the
// ErrorReason names without the prefix) and sometimes a RetryInfo delay, so callers
// switch on `reason` and fall back to `code`.

import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import type { Status } from "./gen/google/rpc/status_pb.js";
import { ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "./gen/google/rpc/status_pb.js";

/** gRPC status codes (the numbers are the wire's). */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

const CODE_NAMES = new Map<number, string>(Object.entries(Code).map(([name, value]) => [value, name]));

export function codeName(code: number): string {
  return CODE_NAMES.get(code) ?? `CODE_${code}`;
}

/** Stream end codes after which the client reconnects (room_service.proto). */
export const RETRYABLE_STREAM_CODES: ReadonlySet<number> = new Set([
  Code.UNAVAILABLE,
  Code.INTERNAL,
  Code.UNKNOWN,
  Code.DEADLINE_EXCEEDED,
  Code.ABORTED,
  Code.CANCELLED,
]);

/**
 * A failure reported by the server, or by the SDK on its behalf. Reasons the SDK sets
 * itself: CLIENT_CLOSED, SEND_TIMEOUT, JOIN_TIMEOUT, CONNECT_TIMEOUT, CONNECTION_LOST,
 * PING_TIMEOUT, FRAME_TOO_LARGE.
 */
export class BarrageError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** Milliseconds the server asked to wait before retrying (RetryInfo), if any. */
  readonly retryDelayMs: number | undefined;

  constructor(
    code: number,
    message: string,
    options: { reason?: string; metadata?: Record<string, string>; retryDelayMs?: number } = {},
  ) {
    super(`${codeName(code)} ${options.reason || "-"}: ${message}`);
    this.name = "BarrageError";
    this.code = code;
    this.reason = options.reason ?? "";
    this.metadata = { ...(options.metadata ?? {}) };
    this.retryDelayMs = options.retryDelayMs;
  }

  /** The status message without the code and reason prefix. */
  get detail(): string {
    return this.message.slice(this.message.indexOf(": ") + 2);
  }

  /** From a google.rpc.Status inside a message (SendResult, JoinResult, StreamError). */
  static fromStatus(status: Status | undefined): BarrageError {
    if (status === undefined) return new BarrageError(Code.UNKNOWN, "no status");
    return new BarrageError(status.code, status.message, details(status));
  }

  /**
   * From a WebSocket close frame (docs/web.md, "How a stream ends"): 4000 + gRPC code,
   * reason text "<ErrorReason>: <message>"; other codes are the network's or RFC 6455's.
   */
  static fromClose(code: number, text: string): BarrageError {
    if (code >= 4000 && code <= 4016) {
      const colon = text.indexOf(": ");
      const reason = colon > 0 && /^[A-Z_]+$/.test(text.slice(0, colon)) ? text.slice(0, colon) : "";
      return new BarrageError(code - 4000, reason ? text.slice(colon + 2) : text, { reason });
    }
    if (code === 1009) {
      return new BarrageError(Code.RESOURCE_EXHAUSTED, text || "message too big", { reason: "FRAME_TOO_LARGE" });
    }
    // 1006 (cut), 1001/1012 (going away, restarting), 1000 (nothing more to say), 1011 ...
    return new BarrageError(Code.UNAVAILABLE, `connection closed (${code}${text ? ` ${text}` : ""})`, {
      reason: "CONNECTION_LOST",
    });
  }
}

function details(status: Status): { reason?: string; metadata?: Record<string, string>; retryDelayMs?: number } {
  const found: { reason?: string; metadata?: Record<string, string>; retryDelayMs?: number } = {};
  for (const detail of status.details) {
    const info = anyUnpack(detail, ErrorInfoSchema);
    if (info !== undefined) {
      found.reason = info.reason;
      found.metadata = { ...info.metadata };
      continue;
    }
    const retry = anyUnpack(detail, RetryInfoSchema);
    if (retry?.retryDelay !== undefined) {
      found.retryDelayMs = Number(retry.retryDelay.seconds) * 1000 + retry.retryDelay.nanos / 1e6;
    }
  }
  return found;
}

/** Decode a google.rpc.Status from bytes (for Connect error details and tests). */
export function decodeStatus(bytes: Uint8Array): Status {
  return fromBinary(StatusSchema, bytes);
}

/** A send was refused, timed out, or could not be made; retry with `clientMsgId`. */
export class SendError extends BarrageError {
  readonly roomId: string;
  readonly clientMsgId: string;
  constructor(base: BarrageError, roomId: string, clientMsgId: string) {
    super(base.code, base.detail, { reason: base.reason, metadata: { ...base.metadata }, retryDelayMs: base.retryDelayMs });
    this.name = "SendError";
    this.roomId = roomId;
    this.clientMsgId = clientMsgId;
  }
}

/** A join (or a rejoin after a reconnect) was refused: the room is not subscribed. */
export class JoinError extends BarrageError {
  constructor(base: BarrageError) {
    super(base.code, base.detail, { reason: base.reason, metadata: { ...base.metadata }, retryDelayMs: base.retryDelayMs });
    this.name = "JoinError";
  }
}

/**
 * The stream ended in a way reconnecting cannot fix (a bad token, PERMISSION_DENIED,
 * a client bug), or the first connection timed out. The client is closed.
 */
export class ConnectionFailed extends BarrageError {
  constructor(base: BarrageError) {
    super(base.code, base.detail, { reason: base.reason, metadata: { ...base.metadata }, retryDelayMs: base.retryDelayMs });
    this.name = "ConnectionFailed";
  }
}

export function clientClosed(): BarrageError {
  return new BarrageError(Code.CANCELLED, "client closed", { reason: "CLIENT_CLOSED" });
}
