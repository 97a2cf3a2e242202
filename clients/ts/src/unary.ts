// The unary and server-streaming APIs (admin, history, insights) over the Connect
// protocol (docs/web.md, "Unary calls"), with Connect-ES's own client: the generated
// service descriptors (protoc-gen-es v2 emits them; no separate connect plugin is
// needed) and @connectrpc/connect-web's fetch transport, which works in browsers and
// in Node 18+. The token goes in `Authorization: Bearer`, asked of the same token
// source as the stream before every call.

import { type Client, ConnectError, type Interceptor, createClient } from "@connectrpc/connect";
import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { createConnectTransport } from "@connectrpc/connect-web";
import { RoomAdminService } from "./gen/barrage/v1/admin_service_pb.js";
import { RoomInsightsService } from "./gen/barrage/v1/insights_service_pb.js";
import type { TokenSource } from "./client.js";

export interface ApiOptions {
  /** The node's web address: http://HOST:PORT (https:// behind TLS); same port as /ws. */
  baseUrl: string;
  token: TokenSource;
  /** Default true: protobuf bodies (application/proto); false: JSON, easier to inspect. */
  binary?: boolean;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof globalThis.fetch;
}

export interface Api {
  admin: Client<typeof RoomAdminService>;
  insights: Client<typeof RoomInsightsService>;
}

/**
 * Clients for RoomAdminService (CreateRoom, GetRoom, CloseRoom, PublishEvent,
 * ListEvents, ...) and RoomInsightsService. Errors are ConnectError with `code` and
 * `findDetails(ErrorInfoSchema)` for the reason; see `reasonOf`.
 */
export function createApi(options: ApiOptions): Api {
  const auth: Interceptor = (next) => async (request) => {
    const token = typeof options.token === "string" ? options.token : await options.token();
    request.header.set("Authorization", `Bearer ${token}`);
    return next(request);
  };
  const transport = createConnectTransport({
    baseUrl: options.baseUrl,
    useBinaryFormat: options.binary ?? true,
    interceptors: [auth],
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  return { admin: createClient(RoomAdminService, transport), insights: createClient(RoomInsightsService, transport) };
}

/** The google.rpc.ErrorInfo reason of a failed Connect call ("" if none). */
export function reasonOf(error: unknown): string {
  const connect = error instanceof ConnectError ? error : undefined;
  return connect?.findDetails(ErrorInfoSchema)[0]?.reason ?? "";
}
