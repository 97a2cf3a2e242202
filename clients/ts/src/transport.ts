// The WebSocket seam. Browsers have a global WebSocket; Node 20 does not (it arrives
// unflagged in Node 22), so Node callers pass the `ws` package's class. Both are used
// through this small subset of the WHATWG interface.

export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly protocol: string;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open", listener: () => void): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  addEventListener(type: "close", listener: (event: { code: number; reason: string }) => void): void;
  addEventListener(type: "error", listener: (event: unknown) => void): void;
}

export type WebSocketConstructor = new (url: string, protocols: string[]) => WebSocketLike;

/** The WebSocket subprotocol of docs/web.md; the server selects it. */
export const SUBPROTOCOL = "barrage.v1";

export const OPEN = 1;

export function defaultWebSocket(): WebSocketConstructor {
  const found = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (found === undefined) {
    throw new TypeError(
      "no global WebSocket (Node before 22): pass one, e.g. new BarrageClient({ WebSocket: (await import('ws')).WebSocket, ... })",
    );
  }
  return found;
}

/** Bytes of a binary message, whatever the implementation hands over. */
export function messageBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined; // A text message (or a Blob: binaryType is set to "arraybuffer").
}
