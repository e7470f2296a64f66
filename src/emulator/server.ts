// The HTTP layer: routing, auth, fault application and reply writing (with backpressure).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { adminReply, type AdminContext } from "./routes/admin.js";
import type { Faults } from "./faults.js";
import { EmulatorHttpError, errorReply, json, text, type BodyWriter, type Reply } from "./reply.js";
import type { RouteContext } from "./routes/context.js";
import { matchRoute } from "./routes/index.js";
import type { StatusFault } from "./types.js";

export interface ServerContext {
  routes: RouteContext;
  admin: AdminContext;
  faults: Faults;
  /** `Authorization` header check: `Bearer <apiKey>` when the emulator has a key, anything otherwise. */
  authorized: (authorization: string | undefined) => boolean;
  /** Admin routes answer only on loopback unless an apiKey protects them. */
  adminOpen: boolean;
  /** Aborted by close(): cuts injected delays short. */
  closing: AbortSignal;
}

function faultReply(ctx: ServerContext, fault: StatusFault): Reply {
  const headers = Object.fromEntries(Object.entries(fault.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  if (fault.body !== undefined) {
    return typeof fault.body === "string"
      ? text(fault.status, fault.body, headers)
      : json(fault.status, fault.body, headers);
  }
  const base = errorReply(
    ctx.routes.flavor,
    new EmulatorHttpError(fault.status, `Injected fault: HTTP ${fault.status}`),
  );
  return { ...base, headers: { ...base.headers, ...headers } };
}

/** How a reply's body goes out: cut after some bytes, or trickled a byte at a time. */
interface Pace {
  cutAfter?: number;
  trickleMs?: number;
  closing: AbortSignal;
}

/** Writes `buf` one byte every `ms`, until done, the client leaves or the emulator closes. */
async function trickle(res: ServerResponse, buf: Buffer, ms: number, closing: AbortSignal): Promise<boolean> {
  for (let i = 0; i < buf.length; i++) {
    if (res.destroyed || closing.aborted) return false;
    res.write(buf.subarray(i, i + 1));
    await sleep(ms, undefined, { signal: closing }).catch(() => undefined);
  }
  return !res.destroyed;
}

function writer(res: ServerResponse, pace: Pace): BodyWriter & { cut: boolean } {
  let budget = pace.cutAfter;
  return {
    cut: false,
    async write(buf) {
      if (res.destroyed || this.cut) return false;
      if (pace.trickleMs !== undefined) return trickle(res, buf, pace.trickleMs, pace.closing);
      if (budget !== undefined) {
        if (buf.length >= budget) {
          const part = buf.subarray(0, budget);
          this.cut = true;
          res.write(part, () => res.destroy());
          return false;
        }
        budget -= buf.length;
      }
      if (res.write(buf)) return true;
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off("drain", done);
          res.off("close", done);
          resolve();
        };
        res.on("drain", done);
        res.on("close", done);
      });
      return !res.destroyed;
    },
  };
}

async function send(res: ServerResponse, reply: Reply, pace?: Pace): Promise<void> {
  if (res.destroyed) return;
  const cutAfter = pace?.cutAfter;
  if (reply.stream) {
    res.writeHead(reply.status, reply.headers);
    if (cutAfter === 0) {
      res.flushHeaders();
      res.destroy();
      return;
    }
    const out = writer(res, pace ?? { closing: new AbortController().signal });
    await reply.stream(out);
    // A cut stream must not get its terminating chunk.
    if (!out.cut && !res.destroyed && !res.writableEnded) res.end();
    return;
  }
  const body = typeof reply.body === "string" ? Buffer.from(reply.body) : (reply.body ?? Buffer.alloc(0));
  res.writeHead(reply.status, { ...reply.headers, "content-length": String(body.length) });
  if (pace?.trickleMs !== undefined) {
    res.flushHeaders();
    if (await trickle(res, body, pace.trickleMs, pace.closing)) res.end();
    return;
  }
  if (cutAfter !== undefined && cutAfter < body.length) {
    res.write(body.subarray(0, cutAfter), () => res.destroy());
    return;
  }
  res.end(body);
}

/** Consumes an unread request body so the connection stays usable after an early answer. */
function drain(req: IncomingMessage): void {
  if (!req.complete) req.resume();
}

async function handle(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const flavor = ctx.routes.flavor;
  const url = new URL(req.url ?? "/", "http://emulator");
  const path = url.pathname;
  const method = req.method ?? "GET";

  if (path === "/_emulator" || path.startsWith("/_emulator/")) {
    if (!ctx.adminOpen) return send(res, json(403, { error: "admin routes need an apiKey on a non-loopback host" }));
    if (!ctx.authorized(req.headers.authorization)) return send(res, json(401, { error: "unauthorized" }));
    return send(res, await adminReply(ctx.admin, req, path, url.searchParams));
  }

  const match = matchRoute(method, path);
  const key = match ? match.route.key : "unmatched";
  const counters = ctx.routes.counters;
  counters.requests[key] = (counters.requests[key] ?? 0) + 1;

  if (!ctx.authorized(req.headers.authorization)) {
    drain(req);
    const message = flavor === "openai" ? "Incorrect API key provided." : "Unauthorized";
    return send(res, errorReply(flavor, new EmulatorHttpError(401, message, { code: "invalid_api_key" })), undefined);
  }
  if (!match) {
    drain(req);
    return send(res, errorReply(flavor, new EmulatorHttpError(404, `Unknown route: ${method} ${path}`)), undefined);
  }

  const fault = ctx.faults.take(key, match.id);
  if (fault) counters.faultsInjected++;
  if (fault && "delayMs" in fault)
    await sleep(fault.delayMs, undefined, { signal: ctx.closing }).catch(() => undefined);
  if (fault && !("afterHandler" in fault && fault.afterHandler)) {
    if ("reset" in fault) {
      req.socket.destroy();
      return;
    }
    if ("status" in fault) {
      drain(req);
      return send(res, faultReply(ctx, fault));
    }
  }

  let reply: Reply;
  try {
    reply = await match.route.handler(ctx.routes, { req, id: match.id, query: url.searchParams });
  } catch (err) {
    drain(req);
    reply =
      err instanceof EmulatorHttpError
        ? errorReply(flavor, err)
        : errorReply(
            flavor,
            new EmulatorHttpError(500, `Internal emulator error: ${err instanceof Error ? err.message : String(err)}`),
          );
  }

  if (fault && "afterHandler" in fault && fault.afterHandler) {
    // The operation happened; the client only sees a failure (an ambiguous outcome).
    if ("reset" in fault) {
      req.socket.destroy();
      return;
    }
    if ("status" in fault) return send(res, faultReply(ctx, fault));
  }
  return send(res, reply, {
    closing: ctx.closing,
    ...(fault && "cutAfterBytes" in fault && { cutAfter: fault.cutAfterBytes }),
    ...(fault && "trickleMs" in fault && { trickleMs: fault.trickleMs }),
  });
}

export function createEmulatorServer(ctx: ServerContext): Server {
  return createServer((req, res) => {
    handle(ctx, req, res).catch(() => {
      // The socket went away mid-answer; nothing is left to tell the client.
      if (!res.headersSent && !res.destroyed) res.writeHead(500).end();
      else res.destroy();
    });
  });
}
