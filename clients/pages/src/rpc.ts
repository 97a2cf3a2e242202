// Unary and server-streaming calls over the Connect protocol (docs/web.md), binary
// protobuf bodies, the token in the Authorization header. Small enough not to need
// @connectrpc/connect-web.

import { fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape, create } from "@bufbuild/protobuf";

export class CallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

export class Rpc {
  constructor(private readonly token: string) {}

  async unary<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    request: MessageInitShape<I>,
  ): Promise<MessageShape<O>> {
    const response = await fetch(path, {
      method: "POST",
      headers: {
        "Content-Type": "application/proto",
        "Connect-Protocol-Version": "1",
        Authorization: `Bearer ${this.token}`,
      },
      body: toBinary(input, create(input, request)),
    });
    if (!response.ok) throw await errorOf(response);
    return fromBinary(output, new Uint8Array(await response.arrayBuffer()));
  }

  /** A server stream: calls `each` per message until the stream ends or `signal` aborts. */
  async stream<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    request: MessageInitShape<I>,
    each: (message: MessageShape<O>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const body = toBinary(input, create(input, request));
    const framed = new Uint8Array(5 + body.length);
    new DataView(framed.buffer).setUint32(1, body.length);
    framed.set(body, 5);
    const response = await fetch(path, {
      method: "POST",
      headers: {
        "Content-Type": "application/connect+proto",
        "Connect-Protocol-Version": "1",
        Authorization: `Bearer ${this.token}`,
      },
      body: framed,
      signal,
    });
    if (!response.ok || response.body === null) throw await errorOf(response);
    const reader = response.body.getReader();
    let buffer = new Uint8Array(0);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      const joined = new Uint8Array(buffer.length + value.length);
      joined.set(buffer);
      joined.set(value, buffer.length);
      buffer = joined;
      while (buffer.length >= 5) {
        const flags = buffer[0];
        const length = new DataView(buffer.buffer, buffer.byteOffset).getUint32(1);
        if (buffer.length < 5 + length) break;
        const payload = buffer.slice(5, 5 + length);
        buffer = buffer.slice(5 + length);
        if (flags & 0x02) {
          const end = JSON.parse(new TextDecoder().decode(payload)) as { error?: { code: string; message?: string } };
          if (end.error) throw new CallError(end.error.code, end.error.message ?? "");
          return;
        }
        each(fromBinary(output, payload));
      }
    }
  }
}

async function errorOf(response: Response): Promise<CallError> {
  try {
    const body = (await response.json()) as { code?: string; message?: string };
    return new CallError(body.code ?? String(response.status), body.message ?? response.statusText);
  } catch {
    return new CallError(String(response.status), response.statusText);
  }
}
