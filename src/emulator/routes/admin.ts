// Cross-process test hooks under /_emulator/ (benchmarks run the emulator in a child process).
import type { IncomingMessage } from "node:http";
import { readJson } from "../../server-kit/request-body.js";
import { FaultError, type Faults } from "../faults.js";
import { json, type Reply } from "../reply.js";
import type { Runner } from "../runner.js";
import type { Store } from "../store.js";
import type { EmulatorCounters, FaultSpec, Flavor } from "../types.js";

export interface AdminContext {
  flavor: Flavor;
  cursorParam: string;
  counters: EmulatorCounters;
  resetCounters(): void;
  faults: Faults;
  store: Store;
  runner: Runner;
}

const MAX_BODY = 1024 * 1024;

const notFound = () => json(404, { error: "unknown admin route" });

export async function adminReply(
  ctx: AdminContext,
  req: IncomingMessage,
  path: string,
  query: URLSearchParams,
): Promise<Reply> {
  const parts = path.split("/").filter(Boolean).slice(1);
  const route = `${req.method} ${parts.map((p, i) => (i === 1 && parts[0] !== "counters" ? ":id" : p)).join("/")}`;
  try {
    switch (route) {
      case "GET info":
        return json(200, { flavor: ctx.flavor, contentCursorParam: ctx.cursorParam });
      case "GET counters":
        return json(200, ctx.counters);
      case "DELETE counters":
        ctx.resetCounters();
        return json(200, ctx.counters);
      case "GET faults":
        return json(200, { data: ctx.faults.list() });
      case "POST faults": {
        const body = await readJson(
          req,
          MAX_BODY,
          (problem) => new FaultError(problem === "too_large" ? "body too large" : "body is not JSON"),
        );
        const specs = (Array.isArray(body) ? body : [body]) as FaultSpec[];
        // Validate all before adding any, so a bad list changes nothing.
        const ids: string[] = [];
        try {
          for (const spec of specs) ids.push(ctx.faults.add(spec));
        } catch (err) {
          for (const id of ids) ctx.faults.remove(id);
          throw err;
        }
        return json(201, { ids });
      }
      case "DELETE faults":
        ctx.faults.clear();
        return json(200, { cleared: true });
      case "DELETE faults/:id":
        return ctx.faults.remove(decodeURIComponent(parts[1])) ? json(200, { removed: true }) : notFound();
      case "GET lines": {
        const ids = query.get("ids");
        const pick = ids === null ? [...ctx.store.availableAt.keys()] : ids.split(",").filter(Boolean);
        return json(200, Object.fromEntries(pick.map((id) => [id, ctx.store.availableAt.get(id) ?? null])));
      }
      case "POST batches/:id/expire": {
        const batch = ctx.store.batches.get(decodeURIComponent(parts[1]));
        if (!batch) return notFound();
        ctx.runner.expire(batch);
        return json(200, { expired: true });
      }
      default:
        return notFound();
    }
  } catch (err) {
    if (err instanceof FaultError) return json(400, { error: err.message });
    throw err;
  }
}
