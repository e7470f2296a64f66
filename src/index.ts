// The root entry: the client, the batching fetch, errors and types. serve and the emulator have their own subpaths
// (`autobatch/serve`, `autobatch/emulator`), so an AutoBatcher user never loads them.
export { AutoBatcher } from "./client.js";
export { APIPromise, type WithRequestID } from "./api-promise.js";
export { createBatchingFetch, type BatchingFetch, type BatchingFetchOptions, type FetchLike } from "./fetch.js";
export type { CallOptions, CloseOptions, EngineStats } from "./core/engine.js";
export { DEFAULTS, InvalidOptionsError, type AutoBatcherOptions, type OptionIssue } from "./options.js";
export type { Clock } from "./internal/clock.js";
export type { AutoBatchEvent, EventMap, EventName, BatchCounts, FlushReason } from "./events.js";
export type { Endpoint } from "./internal/endpoints.js";
export * from "./errors.js";
export { StoreError } from "./store/errors.js";
