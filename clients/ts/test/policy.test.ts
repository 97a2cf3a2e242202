// The SDK's pure rules, without a node: backoff, retries, resume points, close codes.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff, BarrageError, Code, ResumeOutcome, afterJoin, joinRetryDelay, reconnectAfter } from "../src/index.js";

test("backoff draws uniformly below a window that doubles up to the cap, and resets", () => {
  const backoff = new Backoff(200, 1000, () => 0.999);
  const delays = Array.from({ length: 5 }, () => backoff.nextDelay());
  assert.deepEqual(delays.map((d) => Math.round(d)), [200, 400, 799, 999, 999]);
  backoff.reset();
  assert.equal(new Backoff(200, 1000, () => 0).nextDelay(), 0, "full jitter reaches zero");
  assert.equal(Math.round(backoff.nextDelay()), 200);
});

test("close codes: 4000 + the gRPC code with the reason, a cut is CONNECTION_LOST", () => {
  const expired = BarrageError.fromClose(4016, "TOKEN_EXPIRED: the token expired");
  assert.equal(expired.code, Code.UNAUTHENTICATED);
  assert.equal(expired.reason, "TOKEN_EXPIRED");
  assert.equal(expired.detail, "the token expired");
  const cut = BarrageError.fromClose(1006, "");
  assert.equal(cut.reason, "CONNECTION_LOST");
  assert.equal(reconnectAfter(cut, { welcomed: true, tokenProvider: false }), true);
  assert.equal(reconnectAfter(BarrageError.fromClose(4014, "SHUTTING_DOWN: bye"), { welcomed: true, tokenProvider: false }), true);
  assert.equal(reconnectAfter(expired, { welcomed: true, tokenProvider: false }), false, "a fixed token is final");
  assert.equal(reconnectAfter(expired, { welcomed: true, tokenProvider: true }), true, "a provider gives a new one");
  assert.equal(reconnectAfter(BarrageError.fromClose(4003, "MALFORMED_FRAME: x"), { welcomed: true, tokenProvider: true }), false);
});

test("resume points: a resumed join keeps its cursor, a fresh one resumes from the head", () => {
  const p = { cursor: "c7", freshHistory: 20, askedHistory: false, maxHistory: 500 };
  assert.deepEqual(afterJoin(ResumeOutcome.RESUMED, "c9", p), { cursor: "c7", freshHistory: 20 });
  assert.deepEqual(afterJoin(ResumeOutcome.FRESH, "c9", p), { cursor: "c9", freshHistory: 20 });
  assert.deepEqual(afterJoin(ResumeOutcome.FRESH, "c9", { ...p, askedHistory: true }), { cursor: "", freshHistory: 20 });
  assert.deepEqual(afterJoin(ResumeOutcome.FRESH, "", p), { cursor: "", freshHistory: 500 });
});

test("joins are retried only when the refusal is transient", () => {
  const unavailable = new BarrageError(Code.UNAVAILABLE, "log", { reason: "LOG_UNAVAILABLE" });
  assert.ok((joinRetryDelay(unavailable, 1, () => 0) ?? 0) > 0);
  assert.equal(joinRetryDelay(new BarrageError(Code.NOT_FOUND, "x", { reason: "ROOM_NOT_FOUND" }), 1), undefined);
  assert.equal(joinRetryDelay(unavailable, 8), undefined);
});
