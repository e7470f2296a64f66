// Poll by listing, against a scripted provider whose `GET /batches` pages newest first with `after` and `limit`:
// how many status requests one tick makes, and what falls back to a read by id.
import { afterEach, describe, expect, it } from "vitest";
import type { Batch } from "../../src/core/batch.js";
import { PAGE, StatusPages } from "../../src/core/status-pages.js";
import { Tracker } from "../../src/core/tracker.js";
import { scriptedServer, type Seen } from "../helpers/server.js";
import { harness } from "./harness.js";
import type http from "node:http";

const POLL_MS = 1_000;

interface Stored {
  id: string;
  status: string;
  created_at: number;
  request_counts: { total: number; completed: number; failed: number };
}

/** Batches newest last; `hidden` ids are left off the list (a lagging list); `list` answers the list itself. */
async function pagingProvider() {
  const batches: Stored[] = [];
  const hidden = new Set<string>();
  const script: { list?: (req: Seen, res: http.ServerResponse) => boolean } = {};
  const send = (res: http.ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  const server = await scriptedServer([
    (req, res) => {
      const url = new URL(req.url, "http://x");
      if (req.method === "POST" && url.pathname === "/v1/files") return send(res, 200, { id: "file-in" });
      if (req.method === "POST" && url.pathname === "/v1/batches") {
        const b: Stored = {
          id: `batch_${batches.length}`,
          status: "in_progress",
          // Several batches share a second, as they do when created together.
          created_at: 1_700_000_000 + Math.floor(batches.length / 10),
          request_counts: { total: 1, completed: 0, failed: 0 },
        };
        batches.push(b);
        return send(res, 200, b);
      }
      if (req.method === "GET" && url.pathname === "/v1/batches") {
        if (script.list?.(req, res)) return;
        const visible = batches.filter((b) => !hidden.has(b.id)).reverse();
        const limit = Number(url.searchParams.get("limit") ?? 20);
        const after = url.searchParams.get("after");
        const start = after === null ? 0 : visible.findIndex((b) => b.id === after) + 1;
        const data = visible.slice(start, start + limit);
        return send(res, 200, { object: "list", data, has_more: start + limit < visible.length });
      }
      const one = /^\/v1\/batches\/([^/]+)$/.exec(url.pathname)?.[1];
      const found = batches.find((b) => b.id === one);
      if (req.method === "GET" && found) return send(res, 200, found);
      send(res, 404, { error: { message: `no route ${req.method} ${url.pathname}` } });
    },
  ]);
  /** Status requests since `from`: list pages and reads by id. */
  const statusRequests = (from: number) => {
    const since = server.seen.slice(from).filter((s) => s.method === "GET");
    const path = (s: Seen) => s.url.split("?")[0]!;
    return {
      list: since.filter((s) => path(s) === "/v1/batches").length,
      byId: since.filter((s) => /^\/v1\/batches\/[^/]+$/.test(path(s))).map((s) => path(s).split("/").pop()),
    };
  };
  return { ...server, batches, hidden, script, statusRequests };
}

let provider: Awaited<ReturnType<typeof pagingProvider>> | undefined;
afterEach(async () => {
  await provider?.close();
  provider = undefined;
});

/** `n` created batches of one call each, tracked by a tracker that polls by listing. */
async function running(n: number) {
  provider = await pagingProvider();
  const h = harness(provider.url);
  const tracked: Batch[] = [];
  for (let i = 0; i < n; i++) {
    const b = h.batch(1);
    expect(await b.submit(h.stop.signal)).toBe(true);
    tracked.push(b);
  }
  const t = new Tracker(h.clock, POLL_MS, h.stop.signal, () => undefined, new StatusPages(h.transport));
  for (const b of tracked) t.add(b);
  const p = provider;
  /** Runs one tick to its end; the status requests it made. */
  const tick = async () => {
    const from = p.seen.length;
    h.clock.tick(POLL_MS);
    // Waits for the polls the tick started (no batch here has every caller settled, so none is polled again).
    await t.finishSettled();
    return p.statusRequests(from);
  };
  return { h, t, tracked, tick, provider: p };
}

describe("poll by listing", () => {
  it.each([200, 1_000])(
    "%i running batches: ⌈n / 100⌉ list pages per tick and no read by id",
    async (n) => {
      const { tick, tracked } = await running(n);
      for (let round = 0; round < 2; round++) {
        const seen = await tick();
        expect(seen).toEqual({ list: Math.ceil(n / PAGE), byId: [] });
      }
      expect(tracked.every((b) => b.status === "in_progress" && !b.done)).toBe(true);
    },
    30_000,
  );

  it("a batch the pages do not show (the list lags) is read by id, and only that one", async () => {
    const { tick, provider: p, tracked, h } = await running(150);
    const late = tracked[149]!;
    p.hidden.add(late.id!);
    p.batches[149]!.status = "failed";
    const seen = await tick();
    expect(seen).toEqual({ list: 2, byId: [late.id] });
    expect(late.done).toBe(true);
    expect(h.outcomes.get("c0")?.ok).toBe(false);
  });

  it("a status change on a page reaches its batch without a read by id", async () => {
    const { tick, provider: p, tracked } = await running(120);
    p.batches[3]!.status = "cancelling";
    const seen = await tick();
    expect(seen).toEqual({ list: 2, byId: [] });
    expect(tracked[3]!.status).toBe("cancelling");
    expect(tracked[4]!.status).toBe("in_progress");
  });

  it("a failed list falls back to reads by id, and the next tick lists again", async () => {
    const { tick, provider: p } = await running(120);
    let failures = 1;
    p.script.list = (_req, res) => {
      if (failures-- <= 0) return false;
      res.writeHead(500, { "content-type": "application/json" }).end('{"error":{"message":"down"}}');
      return true;
    };
    const first = await tick();
    expect(first.list).toBe(1);
    expect(first.byId).toHaveLength(120);
    expect(new Set(first.byId).size).toBe(120);
    expect(await tick()).toEqual({ list: 2, byId: [] });
  });

  it("a provider without the list route (404) is read by id, and not listed again", async () => {
    const { tick, provider: p } = await running(30);
    p.script.list = (_req, res) => {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":{"message":"no such route"}}');
      return true;
    };
    const first = await tick();
    expect(first.list).toBe(1);
    expect(first.byId).toHaveLength(30);
    const second = await tick();
    expect(second.list).toBe(0);
    expect(second.byId).toHaveLength(30);
  });

  it("stops at a page older than the oldest batch asked for, well within its budget", async () => {
    const { h, provider: p } = await running(300);
    const pages = new StatusPages(h.transport);
    const from = p.seen.length;
    // The newest batch and one as new that the list will never show, with a budget of five pages: the first page
    // already reaches past their creation, so nothing further down can be them.
    const newest = p.batches.at(-1)!;
    const wanted = [
      { id: newest.id, listedAt: newest.created_at },
      { id: "batch_gone", listedAt: newest.created_at },
    ];
    const found = await pages.read(wanted, 500, h.stop.signal);
    expect([...found.keys()]).toEqual([newest.id]);
    expect(p.statusRequests(from).list).toBe(1);
    // An old batch among them: pages are read until it shows up (the third page), not to the budget's end.
    const from2 = p.seen.length;
    const old = [wanted[0]!, { id: p.batches[0]!.id, listedAt: p.batches[0]!.created_at }];
    expect((await pages.read(old, 1_000, h.stop.signal)).size).toBe(2);
    expect(p.statusRequests(from2).list).toBe(3);
  });

  it("a single running batch is read by id: one request either way, and the smaller answer", async () => {
    const { tick } = await running(1);
    const seen = await tick();
    expect(seen.list).toBe(0);
    expect(seen.byId).toHaveLength(1);
  });
});
