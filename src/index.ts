// The root entry: the client, the batching fetch, errors and types. serve and the emulator have their own subpaths
// (`autobatch/serve`, `autobatch/emulator`), so an AutoBatcher user never loads them.
export {
  AutoBatcher,
  type BulkRequest,
  type BulkResult,
  type BulkResultOf,
  type CallOptions,
} from "./client.js";
export type { BulkOptions } from "./core/bulk-types.js";
export { APIPromise, type WithRequestID } from "./api-promise.js";
export { createBatchingFetch, type BatchingFetch, type BatchingFetchOptions, type FetchLike } from "./fetch.js";
export { createLongWaitFetch, type LongWaitFetch, type LongWaitFetchOptions } from "./long-wait-fetch.js";
export type { CloseOptions, EngineStats } from "./core/engine-types.js";
export {
  DEFAULTS,
  InvalidOptionsError,
  type AutoBatcherOptions,
  type DispatcherLike,
  type OptionIssue,
} from "./options.js";
export type { Clock } from "./internal/clock.js";
export type { AutoBatchEvent, EventMap, EventName, BatchCounts, FlushReason } from "./events.js";
export type { Endpoint } from "./internal/endpoints.js";
export * from "./errors.js";
export { StoreError } from "./store/errors.js";
