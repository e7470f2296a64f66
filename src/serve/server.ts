// The request handler: auth → route → read body → submit to the engine (deduplicated by Idempotency-Key, released
// when the client goes away) → answer with the provider's body, an SSE re-wrap of it, or a mapped error.
import { createHash } from "node:crypto";
import { bearerCheck } from "../server-kit/bearer.js";
import type { IncomingMessage, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { RawResult } from "../core/call.js";
import type { Engine } from "../core/engine.js";
import type { Endpoint } from "../internal/endpoints.js";
import { AutoBatchError } from "../errors.js";
import { passthroughModels } from "./models.js";
import { readJsonBody } from "./body.js";
import { HttpError, toHttpError } from "./errors.js";
import type { IdempotencyCache, Attached } from "./idempotency.js";
import type { Logger } from "./log.js";
import { route } from "./routes.js";
import { chatCompletionToSSE, responseToSSE } from "./sse.js";

export interface HandlerContext {
  engine: Engine;
  log: Logger;
  authToken: string | undefined;
  maxBodyBytes: number;
  idempotency: IdempotencyCache<RawResult>;
  /** Set once shutdown starts: health turns 503 and answers close their connections. */
  closing: boolean;
  /** Responses not yet finished, so shutdown can let them go out before cutting connections. */
  inflight: Set<ServerResponse>;
}

/** Fields the request log line gathers as the request goes. */
type Trace = Record<string, unknown>;

export function createHandler(ctx: HandlerContext): (req: IncomingMessage, res: ServerResponse) => void {
  const authorized = bearerCheck(ctx.authToken);
  return (req, res) => {
    const started = performance.now();
    const trace: Trace = {};
    ctx.inflight.add(res);
    res.once("close", () => {
      ctx.inflight.delete(res);
      const fields = {
        method: req.method,
        path: req.url?.split("?", 1)[0],
        status: res.statusCode,
        ms: Math.round(performance.now() - started),
        ...trace,
      };
      if (!res.writableFinished) ctx.log("info", "request.aborted", { ...fields, status: undefined });
      else ctx.log(res.statusCode >= 500 ? "error" : "info", "request", fields);
    });
    handle(ctx, authorized, req, res, trace).catch((err: unknown) => sendError(ctx, res, err, trace));
  };
}

async function handle(
  ctx: HandlerContext,
  authorized: (header: string | undefined) => boolean,
  req: IncomingMessage,
  res: ServerResponse,
  trace: Trace,
): Promise<void> {
  const method = req.method ?? "GET";
  const url = req.url ?? "/";
  const r = route(method, url);
  if (!(r instanceof HttpError) && r.kind === "health") return health(ctx, res, method);
  if (!authorized(header(req, "authorization"))) {
    throw new HttpError(
      401,
      {
        message:
          "Missing or invalid bearer token: this proxy requires `Authorization: Bearer <token>` with its --auth-token.",
        code: "invalid_api_key",
      },
      { retry: false, headers: { "www-authenticate": 'Bearer realm="autobatch"' } },
    );
  }
  if (r instanceof HttpError) throw r;
  if (r.kind === "models") {
    const reply = await passthroughModels(ctx.engine.transport, r.path, r.query, closeSignal(res));
    if (res.destroyed) return;
    const headers: Record<string, string> = { "content-type": reply.headers.get("content-type") ?? "application/json" };
    const requestId = reply.headers.get("x-request-id");
    if (requestId !== null) headers["x-request-id"] = requestId;
    res.writeHead(reply.status, withClosing(ctx, headers)).end(reply.body);
    return;
  }
  return batched(ctx, r.endpoint, req, res, trace);
}

async function batched(
  ctx: HandlerContext,
  endpoint: Endpoint,
  req: IncomingMessage,
  res: ServerResponse,
  trace: Trace,
): Promise<void> {
  const body = await readJsonBody(req, ctx.maxBodyBytes);
  if (res.destroyed) return;
  // The Batch API cannot stream: submit without the stream fields, and re-wrap the finished result if asked.
  const { stream, stream_options: streamOptions, ...params } = body;
  const wantsStream = stream === true;
  const includeUsage = wantsStream && isObject(streamOptions) && streamOptions.include_usage === true;
  trace.stream = wantsStream;
  const key = header(req, "idempotency-key");
  // The key also names the call in the store (if any): a retry after a restart finds the original line.
  const start = (signal: AbortSignal) =>
    ctx.engine.submit(endpoint, params, {
      signal,
      raw: true,
      idempotencyKey: key === undefined ? undefined : `${endpoint} ${key}`,
    }) as Promise<RawResult>;
  let call: Attached<RawResult>;
  if (key !== undefined) {
    const fingerprint = createHash("sha256")
      .update(`${endpoint}\n${JSON.stringify(params)}`)
      .digest("base64url");
    call = ctx.idempotency.attach(`${endpoint} ${key}`, fingerprint, start);
    trace.idempotencyKey = true;
    trace.replayed = call.reused;
    // Worth seeing as it happens: each one is a call not paid for twice.
    if (call.reused) ctx.log("info", "request.deduplicated", { endpoint });
  } else {
    const controller = new AbortController();
    call = { result: start(controller.signal), reused: false, leave: () => controller.abort() };
  }
  // A client that goes away before its answer releases the call (if it was the call's last waiter).
  const onClose = () => call.leave();
  res.once("close", onClose);
  let result: RawResult;
  try {
    result = await call.result;
  } finally {
    res.off("close", onClose);
  }
  Object.assign(trace, { customId: result.customId, batchId: result.batchId });
  if (res.destroyed) return;
  const headers: Record<string, string> = { "x-autobatch-custom-id": result.customId };
  if (result.batchId) headers["x-autobatch-batch-id"] = result.batchId;
  if (result.requestId) headers["x-request-id"] = result.requestId;
  if (call.reused) headers["idempotent-replayed"] = "true";
  if (!wantsStream) {
    res
      .writeHead(result.status, withClosing(ctx, { ...headers, "content-type": "application/json" }))
      .end(JSON.stringify(result.body));
    return;
  }
  const sse =
    endpoint === "/v1/responses" ? responseToSSE(result.body) : chatCompletionToSSE(result.body, { includeUsage });
  res
    .writeHead(
      200,
      withClosing(ctx, { ...headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" }),
    )
    .end(sse);
}

function health(ctx: HandlerContext, res: ServerResponse, method: string): void {
  const { buffered, submitting, runningBatches, pending, batchesCreated } = ctx.engine.stats;
  const body = JSON.stringify({
    status: ctx.closing ? "closing" : "ok",
    buffered,
    submitting,
    runningBatches,
    pending,
    batchesCreated,
  });
  res
    .writeHead(ctx.closing ? 503 : 200, withClosing(ctx, { "content-type": "application/json" }))
    .end(method === "HEAD" ? undefined : body);
}

/** Answers `err`; never throws (it runs in the handler's last `.catch`), cutting the connection if it cannot write. */
export function sendError(ctx: Pick<HandlerContext, "closing">, res: ServerResponse, err: unknown, trace: Trace): void {
  try {
    if (res.destroyed || res.headersSent) return void res.destroy();
    const e = toHttpError(err);
    const headers: Record<string, string> = { ...e.headers, "content-type": "application/json" };
    if (err instanceof AutoBatchError) {
      if (err.customId) headers["x-autobatch-custom-id"] = trace.customId = err.customId;
      if (err.batchId) headers["x-autobatch-batch-id"] = trace.batchId = err.batchId;
    }
    trace.error = e.message;
    res.writeHead(e.status, withClosing(ctx, headers)).end(JSON.stringify({ error: e.body }));
  } catch (writeErr) {
    trace.sendFailed = writeErr instanceof Error ? writeErr.message : String(writeErr);
    res.destroy();
  }
}

function withClosing(ctx: Pick<HandlerContext, "closing">, headers: Record<string, string>): Record<string, string> {
  return ctx.closing ? { ...headers, connection: "close" } : headers;
}

/** Aborts when the response's connection closes (client gone, or answer sent). */
function closeSignal(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once("close", () => controller.abort());
  return controller.signal;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Constant-time comparison of the presented bearer token with the configured one. */
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
