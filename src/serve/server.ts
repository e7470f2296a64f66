// The request handler: auth → route → read body → submit to the engine (deduplicated by Idempotency-Key, released
// when the client goes away) → answer with the provider's body, an SSE re-wrap of it, or a mapped error.
import { bearerCheck } from "../server-kit/bearer.js";
import type { IncomingMessage, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { RawResult } from "../core/call.js";
import type { Engine } from "../core/engine.js";
import type { Endpoint } from "../internal/endpoints.js";
import { fingerprint } from "../internal/canonical.js";
import { passthroughModels } from "./models.js";
import { type JsonObject, readCallBody } from "./call-body.js";
import { HttpError, overloaded, sendError, withClosing } from "./errors.js";
import type { IdempotencyCache, Attached } from "./idempotency.js";
import type { Logger } from "./log.js";
import { route } from "./routes.js";
import { resultToSSE, splitStream } from "../internal/sse.js";

export interface HandlerContext {
  engine: Engine;
  log: Logger;
  authToken: string | undefined;
  maxBodyBytes: number;
  /** Beyond this many requests waiting for an answer, new ones get 503 (see `overloaded`). */
  maxWaitingRequests: number;
  /** Requests waiting for an answer now (everything but /health). */
  waiting: number;
  idempotency: IdempotencyCache<RawResult>;
  /** Set once shutdown starts: health turns 503 and answers close their connections. */
  closing: boolean;
  /** Responses not yet finished, so shutdown can let them go out before cutting connections. */
  inflight: Set<ServerResponse>;
}

/** Fields the request log line gathers as the request goes. */
type Trace = Record<string, unknown>;

/** One request, as its single close listener sees it: what to log, and what to release when the client goes. */
interface Exchange {
  readonly ctx: HandlerContext;
  readonly req: IncomingMessage;
  readonly started: number;
  readonly trace: Trace;
  /** Counted in `ctx.waiting`. */
  waiting: boolean;
  /** The call while its answer is awaited: released if the client goes away first. */
  call: Attached<RawResult> | undefined;
}

export function createHandler(ctx: HandlerContext): (req: IncomingMessage, res: ServerResponse) => void {
  const authorized = bearerCheck(ctx.authToken);
  return (req, res) => {
    const x: Exchange = { ctx, req, started: performance.now(), trace: {}, waiting: false, call: undefined };
    ctx.inflight.add(res);
    (res as Tracked)[EXCHANGE] = x;
    // One shared listener, not a closure per request; 'close' comes once per response.
    res.on("close", closed);
    void handle(ctx, authorized, req, res, x);
  };
}

/** Where a response keeps its exchange, for the shared close listener. */
const EXCHANGE = Symbol("exchange");
type Tracked = ServerResponse & { [EXCHANGE]: Exchange };

function closed(this: Tracked): void {
  const x = this[EXCHANGE];
  const { ctx, req } = x;
  ctx.inflight.delete(this);
  if (x.waiting) ctx.waiting--;
  x.call?.leave();
  const fields = {
    method: req.method,
    path: req.url?.split("?", 1)[0],
    status: this.statusCode,
    ms: Math.round(performance.now() - x.started),
    ...x.trace,
  };
  if (!this.writableFinished) ctx.log("info", "request.aborted", { ...fields, status: undefined });
  else ctx.log(this.statusCode >= 500 ? "error" : "info", "request", fields);
}

/**
 * Routes the request and answers it; whatever fails is answered as an error. A batched call goes on in `batched`
 * (which answers its own errors), so a waiting request holds one suspended frame, not a chain of them.
 */
async function handle(
  ctx: HandlerContext,
  authorized: (header: string | undefined) => boolean,
  req: IncomingMessage,
  res: ServerResponse,
  x: Exchange,
): Promise<void> {
  try {
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
    if (ctx.waiting >= ctx.maxWaitingRequests) {
      // Dropped unread and the connection closed with the answer: a refused client must not hold a file descriptor.
      req.resume();
      throw overloaded(ctx.maxWaitingRequests);
    }
    ctx.waiting++;
    x.waiting = true;
    if (r.kind === "models") {
      const reply = await passthroughModels(ctx.engine.transport, r.path, r.query, closeSignal(res));
      if (res.destroyed) return;
      const headers: Record<string, string> = {
        "content-type": reply.headers.get("content-type") ?? "application/json",
      };
      const requestId = reply.headers.get("x-request-id");
      if (requestId !== null) headers["x-request-id"] = requestId;
      res.writeHead(reply.status, withClosing(ctx, headers)).end(reply.body);
      return;
    }
    void batched(ctx, r.endpoint, req, res, x);
  } catch (err) {
    sendError(ctx, res, err, x.trace);
  }
}

async function batched(
  ctx: HandlerContext,
  endpoint: Endpoint,
  req: IncomingMessage,
  res: ServerResponse,
  x: Exchange,
): Promise<void> {
  try {
    const started = await startCall(ctx, endpoint, req, res, x);
    if (!started) return;
    const { call, wantsStream, includeUsage } = started;
    let result: RawResult;
    try {
      result = await call.result;
    } finally {
      x.call = undefined;
    }
    const trace = x.trace;
    trace.customId = result.customId;
    trace.batchId = result.batchId;
    if (res.destroyed) return;
    const headers: Record<string, string> = { "x-autobatch-custom-id": result.customId };
    if (result.batchId) headers["x-autobatch-batch-id"] = result.batchId;
    if (result.requestId) headers["x-request-id"] = result.requestId;
    if (call.reused) headers["idempotent-replayed"] = "true";
    if (!wantsStream) {
      headers["content-type"] = "application/json";
      res.writeHead(result.status, withClosing(ctx, headers)).end(JSON.stringify(result.body));
      return;
    }
    const sse = resultToSSE(endpoint, result.body, includeUsage);
    res
      .writeHead(
        200,
        withClosing(ctx, {
          ...headers,
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache",
        }),
      )
      .end(sse);
  } catch (err) {
    sendError(ctx, res, err, x.trace);
  }
}

/**
 * Reads the body and submits it (deduplicated by Idempotency-Key), unless the client has gone; from then on the
 * client going away releases the call. Its own frame, so that neither the parsed body
 * nor its params stay reachable from the request while it waits: the engine keeps only the encoded line.
 */
async function startCall(
  ctx: HandlerContext,
  endpoint: Endpoint,
  req: IncomingMessage,
  res: ServerResponse,
  x: Exchange,
): Promise<{ call: Attached<RawResult>; wantsStream: boolean; includeUsage: boolean } | undefined> {
  const { body, text } = await readCallBody(req, ctx.maxBodyBytes);
  if (res.destroyed) return undefined;
  const trace = x.trace;
  // The Batch API cannot stream: submit without the stream fields, and re-wrap the finished result if asked.
  const { params, stream: wantsStream, includeUsage } = splitStream(body);
  trace.stream = wantsStream;
  // The client's own text is the line's body when the engine would send `params` unchanged (no stringify).
  const bodyText = params === body ? text : undefined;
  const key = header(req, "idempotency-key");
  if (key === undefined) {
    const call = submitOnce(ctx, endpoint, params, bodyText);
    x.call = call;
    return { call, wantsStream, includeUsage };
  }
  const named = `${endpoint} ${key}`;
  // The key also names the call in the store (if any): a retry after a restart finds the original line.
  const start = (signal: AbortSignal) =>
    ctx.engine.submit(endpoint, params, { signal, raw: true, idempotencyKey: named, bodyText }) as Promise<RawResult>;
  const call = ctx.idempotency.attach(named, fingerprint(endpoint, params), start);
  x.call = call;
  trace.idempotencyKey = true;
  trace.replayed = call.reused;
  // Worth seeing as it happens: each one is a call not paid for twice.
  if (call.reused) ctx.log("info", "request.deduplicated", { endpoint });
  return { call, wantsStream, includeUsage };
}

/** A call without a key: released through a `Leave`, not a per-request AbortController (~7 % of serve's CPU). */
function submitOnce(
  ctx: HandlerContext,
  endpoint: Endpoint,
  params: JsonObject,
  bodyText: string | undefined,
): Attached<RawResult> {
  const call = new Leave();
  call.result = ctx.engine.submit(endpoint, params, { signal: call, raw: true, bodyText }) as Promise<RawResult>;
  return call;
}

/**
 * A call without a key, and the part of an AbortSignal the engine reads of it (`aborted`, one "abort" listener):
 * one object per request, with no closure of its own.
 */
class Leave implements Attached<RawResult> {
  result!: Promise<RawResult>;
  readonly reused = false;
  aborted = false;
  #listener: (() => void) | undefined;

  addEventListener(_type: string, listener: () => void): void {
    this.#listener = listener;
  }

  removeEventListener(): void {
    this.#listener = undefined;
  }

  leave(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listener = this.#listener;
    this.#listener = undefined;
    listener?.();
  }
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
    waitingRequests: ctx.waiting,
  });
  res
    .writeHead(ctx.closing ? 503 : 200, withClosing(ctx, { "content-type": "application/json" }))
    .end(method === "HEAD" ? undefined : body);
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
