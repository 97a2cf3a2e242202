// The pages speak to the node through the TypeScript SDK (clients/ts, @barrage/sdk),
// bundled from its source: the room stream (BarrageClient: reconnect with backoff and
// jitter, liveness pings, resume from the last cursor, resend of unacknowledged sends,
// no gap or duplicate) and the Connect-protocol APIs (createApi).

import { BarrageClient, type ConnectionState } from "../../ts/src/index.js";

export * from "../../ts/src/index.js";

/** ws:// or wss:// to the node that served this page. */
export function streamUrl(): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}

/** What a page shows of the connection (the dot in its header, data-state in tests). */
export function linkState(state: ConnectionState): string {
  return { connecting: "connecting", connected: "live", waiting: "offline", closed: "stopped" }[state];
}

/** A client tuned for a page: a cut network is noticed within seconds, and retried often. */
export function pageClient(token: string, onState: (state: ConnectionState) => void): BarrageClient {
  return new BarrageClient({
    url: streamUrl(),
    token,
    clientAgent: "barrage-pages/0.1",
    backoffMaxMs: 5_000,
    idlePingMs: 5_000,
    pingTimeoutMs: 5_000,
    onState,
  });
}

export function millisOf(value: { seconds: bigint; nanos: number } | undefined): number {
  return value ? Number(value.seconds) * 1000 + Math.floor(value.nanos / 1e6) : 0;
}

/** A google.protobuf.Timestamp init for a time in milliseconds. */
export function timestamp(ms: number): { seconds: bigint; nanos: number } {
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}
