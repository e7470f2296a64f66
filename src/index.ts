// Public exports only.
export { AutoBatcher } from "./client.js";
export { APIPromise, type WithRequestID } from "./api-promise.js";
export { createBatchingFetch, type BatchingFetch, type BatchingFetchOptions, type FetchLike } from "./fetch.js";
export type { CallOptions, CloseOptions, EngineStats } from "./engine.js";
export { DEFAULTS, InvalidOptionsError, type AutoBatcherOptions, type OptionIssue } from "./options.js";
export type { Clock } from "./clock.js";
export type { AutoBatchEvent, EventMap, EventName, BatchCounts, FlushReason } from "./events.js";
export type { Endpoint } from "./endpoints.js";
export * from "./errors.js";
export * from "./emulator/index.js";
export { serve, type ServeOptions, type ServeHandle, type ServeCloseOptions, type LogEntry, type LogSink, type LogLevel } from "./serve/index.js";
