// @barrage/sdk: Barrage's TypeScript SDK (docs/web.md, "The TypeScript SDK").

export { BarrageClient, type ClientOptions, type JoinOptions, type TokenSource } from "./client.js";
export { Subscription, type SendOptions } from "./subscription.js";
export type { Ack, ClientStats, ConnectionState, EndReason, RoomItem } from "./items.js";
export {
  IMMEDIATE_KINDS,
  type Listenable,
  MediaSync,
  type MediaSyncOptions,
  type PlayerClock,
  type PlayerTime,
  type SyncStats,
} from "./mediaSync.js";
export {
  BarrageError,
  Code,
  ConnectionFailed,
  JoinError,
  SendError,
  codeName,
  RETRYABLE_STREAM_CODES,
} from "./errors.js";
export { Backoff } from "./backoff.js";
export { afterJoin, joinRetryDelay, reconnectAfter, sendRetryDelay, MAX_CLIENT_FRAME_BYTES } from "./policy.js";
export { type Api, type ApiOptions, createApi, reasonOf } from "./unary.js";
export { SUBPROTOCOL, type WebSocketConstructor, type WebSocketLike } from "./transport.js";
// The generated messages and schemas, for building payloads and reading events.
export * from "./gen/barrage/v1/event_pb.js";
export * from "./gen/barrage/v1/room_service_pb.js";
export * from "./gen/barrage/v1/admin_service_pb.js";
export * from "./gen/barrage/v1/insights_service_pb.js";
export * from "./gen/barrage/v1/errors_pb.js";
export { ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
export { create, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
