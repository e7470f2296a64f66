// What every /v1 handler is given, and the lookups they share (ids are checked in the flavor's words).
import type { IncomingMessage } from "node:http";
import type { ContentContext } from "./content.js";
import { EmulatorHttpError, type Reply } from "../reply.js";
import type { Runner } from "../runner.js";
import { UUID, type BatchRecord, type FileRecord, type Store } from "../store.js";
import type { EmulatorCounters, Flavor } from "../types.js";

export interface RouteContext extends ContentContext {
  flavor: Flavor;
  store: Store;
  runner: Runner;
  counters: EmulatorCounters;
  now: () => number;
  maxFileBytes: number;
  /** Doubleword: enforced at upload only when configured. */
  maxLines: number | undefined;
  completionWindows: readonly string[];
  /** Batches younger than this (ms) are left out of lists. */
  listLagMs: number;
}

export interface RouteRequest {
  req: IncomingMessage;
  id: string;
  query: URLSearchParams;
}

export type Handler = (ctx: RouteContext, r: RouteRequest) => Promise<Reply>;

export const nowSec = (ctx: RouteContext) => Math.floor(ctx.now() / 1000);

export function findFile(ctx: RouteContext, id: string): FileRecord {
  if (ctx.flavor === "doubleword" && !UUID.test(id)) throw new EmulatorHttpError(400, "Invalid file ID format");
  const file = ctx.store.files.get(id);
  if (file && !file.hidden) return file;
  throw ctx.flavor === "openai"
    ? new EmulatorHttpError(404, `No such File object: ${id}`, { param: "id" })
    : new EmulatorHttpError(404, `File with ID ${id} not found`);
}

export function findBatch(ctx: RouteContext, id: string): BatchRecord {
  if (ctx.flavor === "doubleword" && !UUID.test(id)) throw new EmulatorHttpError(400, "Invalid batch ID format");
  const batch = ctx.store.batches.get(id);
  if (batch) {
    ctx.runner.checkExpiry(batch);
    return batch;
  }
  throw ctx.flavor === "openai"
    ? new EmulatorHttpError(404, `No such Batch object: ${id}`, { param: "batch_id" })
    : new EmulatorHttpError(404, `Batch with ID ${id} not found`);
}
