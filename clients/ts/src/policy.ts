// The SDK's decisions as pure functions (the Python SDK's clients/sdk/policy.py):
// when to retry a send or a join, where to resume from, whether to reconnect.

import { ResumeOutcome } from "./gen/barrage/v1/room_service_pb.js";
import { type BarrageError, Code, RETRYABLE_STREAM_CODES } from "./errors.js";

export const MAX_JOIN_ATTEMPTS = 8;
/** The server's limit on one client message; a bigger one ends the whole stream (1009),
 * so the SDK refuses such a send itself instead of losing the stream and resending it forever. */
export const MAX_CLIENT_FRAME_BYTES = 64 * 1024;

function jitter(rng: () => number): number {
  // +0..25 %: retries of many clients refused at the same moment spread out.
  return 1 + rng() / 4;
}

/**
 * Milliseconds before writing a refused send again (same client_msg_id), or undefined
 * to hand the refusal to the application.
 */
export function sendRetryDelay(
  error: BarrageError,
  attempts: number,
  opts: { maxAttempts: number; retryRateLimited: boolean; rejoining: boolean; tokenRefreshing: boolean },
  rng: () => number = Math.random,
): number | undefined {
  if (attempts >= opts.maxAttempts) return undefined;
  if (error.code === Code.UNAVAILABLE) {
    // The log did not confirm the append: it may be there; the retry finds out.
    return (error.retryDelayMs ?? Math.min(200 * 2 ** attempts, 5000)) * jitter(rng);
  }
  if (error.code === Code.RESOURCE_EXHAUSTED && error.reason === "RATE_LIMITED") {
    return opts.retryRateLimited ? (error.retryDelayMs ?? 500) * jitter(rng) : undefined;
  }
  if ((error.reason === "NOT_JOINED" && opts.rejoining) || (error.reason === "TOKEN_EXPIRED" && opts.tokenRefreshing)) {
    return 500 * jitter(rng);
  }
  return undefined;
}

/** Milliseconds before asking again for a refused (re)join, or undefined to give up. */
export function joinRetryDelay(error: BarrageError, attempts: number, rng: () => number = Math.random): number | undefined {
  const transient =
    error.code === Code.UNAVAILABLE || (error.code === Code.RESOURCE_EXHAUSTED && error.reason === "RATE_LIMITED");
  if (!transient || attempts >= MAX_JOIN_ATTEMPTS) return undefined;
  return (error.retryDelayMs ?? 200 * 2 ** attempts) * jitter(rng);
}

export interface ResumePoint {
  /** Resume after this cursor on the next join; empty: join fresh. */
  cursor: string;
  /** history_limit of a fresh join. */
  freshHistory: number;
}

/**
 * Where the next join resumes from, right after a successful join. A resumed join keeps
 * its cursor. Otherwise: asked for history → keep joining fresh until the first event
 * arrives (a rejoin from the head would skip history not yet delivered); no history and
 * a non-empty room → resume from the snapshot's head; an empty room → join fresh asking
 * for as much history as the server allows, which is everything since.
 */
export function afterJoin(
  outcome: ResumeOutcome,
  headCursor: string,
  p: { cursor: string; freshHistory: number; askedHistory: boolean; maxHistory: number },
): ResumePoint {
  if (outcome === ResumeOutcome.RESUMED) return { cursor: p.cursor, freshHistory: p.freshHistory };
  if (!headCursor) return { cursor: "", freshHistory: Math.max(p.freshHistory, p.maxHistory) };
  if (p.askedHistory) return { cursor: "", freshHistory: p.freshHistory };
  return { cursor: headCursor, freshHistory: p.freshHistory };
}

/**
 * Whether a stream that ended with `error` is worth reconnecting (docs/web.md: after
 * go_away, 4014, 4013, 4002, 4004, 4010, 4001 and a cut connection; never after a
 * bad token unless a provider can give a new one, nor after a client bug).
 */
export function reconnectAfter(error: BarrageError, p: { welcomed: boolean; tokenProvider: boolean }): boolean {
  if (error.reason === "CONNECTION_LOST" || error.reason === "PING_TIMEOUT" || error.reason === "CONNECT_TIMEOUT") {
    return true;
  }
  // A token that expired under a live stream (a refresh came too late) is renewed by
  // reconnecting: the provider is asked before every connect. A fixed token is final.
  if (error.reason === "TOKEN_EXPIRED" && p.welcomed && p.tokenProvider) return true;
  return RETRYABLE_STREAM_CODES.has(error.code);
}
