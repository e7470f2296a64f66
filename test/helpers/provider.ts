// A small stateful Batch API on 127.0.0.1:0 for core tests: batches and result files the test sets by hand, every
// request recorded, and one-shot overrides to misbehave on a chosen request.
import type http from "node:http";
import { scriptedServer, type Handler, type Seen } from "./server.js";

export interface FakeBatch {
  id: string;
  status: string;
  output_file_id?: string | null;
  error_file_id?: string | null;
  request_counts?: { total: number; completed: number; failed: number };
  metadata?: Record<string, string>;
  errors?: { data: { code?: string; message?: string; line?: number }[] };
  input_file_id?: string;
}

export interface Upload {
  filename: string;
  customIds: string[];
  lines: string[];
}

interface Override {
  match: (req: Seen) => boolean;
  handler: Handler;
}

export type Provider = Awaited<ReturnType<typeof fakeProvider>>;

/** How one line ends in an auto-completed batch: a status (200: success), or an error-file code with no response. */
export type LineFate = { status: number } | { code: string };
export interface LineSeen {
  customId: string;
  /** The user message's content. */
  content: string;
  /** 1 for the first batch this custom_id is in, then 2, … */
  attempt: number;
}

/**
 * Result files as their lines; `incomplete` lists files still growing (X-Incomplete: true). With `complete`, each
 * batch is `completed` as soon as it is created, every line's fate decided by it.
 */
export async function fakeProvider(complete?: (line: LineSeen) => LineFate) {
  const batches = new Map<string, FakeBatch>();
  const files = new Map<string, string[]>();
  const incomplete = new Set<string>();
  const uploads: Upload[] = [];
  const overrides: Override[] = [];
  const attempts = new Map<string, number>();
  let seq = 0;

  /** Fills the batch's files from the upload it was created from, and completes it. */
  const finishNow = (b: FakeBatch, upload: Upload) => {
    const out = files.get(b.output_file_id!)!;
    const err = files.get(b.error_file_id!)!;
    upload.lines.forEach((raw, i) => {
      const customId = upload.customIds[i]!;
      const attempt = (attempts.get(customId) ?? 0) + 1;
      attempts.set(customId, attempt);
      const content = (JSON.parse(raw) as { body: { messages: { content: string }[] } }).body.messages[0]!.content;
      const fate = complete!({ customId, content, attempt });
      if ("code" in fate)
        err.push(
          JSON.stringify({ custom_id: customId, response: null, error: { code: fate.code, message: fate.code } }),
        );
      else if (fate.status === 200) out.push(okLine(customId, `echo: ${content}`));
      else err.push(errorLine(customId, fate.status));
    });
    b.status = "completed";
    b.request_counts = { total: upload.lines.length, completed: out.length, failed: err.length };
  };

  const route: Handler = (req, res) => {
    const i = overrides.findIndex((o) => o.match(req));
    if (i !== -1) return overrides.splice(i, 1)[0]!.handler(req, res);
    const url = new URL(req.url, "http://x");
    const path = url.pathname;
    if (req.method === "POST" && path === "/v1/files") {
      const lines = req.body.split(/\r?\n/).filter((l) => l.startsWith('{"custom_id"'));
      const filename = /filename="([^"]+)"/.exec(req.body)?.[1] ?? "";
      uploads.push({ filename, lines, customIds: lines.map((l) => JSON.parse(l).custom_id as string) });
      return send(res, 200, { id: `file-in-${uploads.length}`, filename, bytes: null });
    }
    if (req.method === "POST" && path === "/v1/batches") {
      const body = JSON.parse(req.body) as { input_file_id: string; metadata: Record<string, string> };
      const id = `batch_${++seq}`;
      const b: FakeBatch = {
        id,
        status: "in_progress",
        output_file_id: `out_${seq}`,
        error_file_id: `err_${seq}`,
        request_counts: { total: 0, completed: 0, failed: 0 },
        metadata: body.metadata,
        input_file_id: body.input_file_id,
      };
      batches.set(id, b);
      files.set(`out_${seq}`, []);
      files.set(`err_${seq}`, []);
      const upload = uploads[Number(body.input_file_id.replace("file-in-", "")) - 1];
      if (complete && upload) finishNow(b, upload);
      return send(res, 200, b);
    }
    if (req.method === "GET" && path === "/v1/batches")
      return send(res, 200, { object: "list", data: [...batches.values()].reverse(), has_more: false });
    const cancel = /^\/v1\/batches\/([^/]+)\/cancel$/.exec(path);
    if (req.method === "POST" && cancel && batches.has(cancel[1]!)) {
      const b = batches.get(cancel[1]!)!;
      b.status = "cancelled";
      return send(res, 200, b);
    }
    const batch = /^\/v1\/batches\/([^/]+)$/.exec(path);
    if (req.method === "GET" && batch && batches.has(batch[1]!)) return send(res, 200, batches.get(batch[1]!));
    const content = /^\/v1\/files\/([^/]+)\/content$/.exec(path);
    if (req.method === "GET" && content && files.has(content[1]!)) {
      const all = files.get(content[1]!)!;
      const skip = Number(url.searchParams.get("skip") ?? 0);
      const served = all.slice(skip);
      res.writeHead(200, {
        "content-type": "application/x-ndjson",
        "x-last-line": String(Math.max(skip, all.length)),
        "x-incomplete": String(incomplete.has(content[1]!)),
      });
      return res.end(served.map((l) => `${l}\n`).join(""));
    }
    send(res, 404, { error: { message: `no route for ${req.method} ${path}`, type: "invalid_request_error" } });
  };

  const server = await scriptedServer([route]);
  return {
    url: server.url,
    seen: server.seen,
    batches,
    files,
    incomplete,
    uploads,
    /** Batches each custom_id was sent in so far (auto-complete only). */
    attempts,
    /** The next request `match` accepts is answered by `handler` instead. */
    once(match: (req: Seen) => boolean, handler: Handler) {
      overrides.push({ match, handler });
    },
    /** Requests whose method and path (query excluded) are these. */
    requests(method: string, path: string | RegExp): Seen[] {
      return server.seen.filter((s) => {
        const p = s.url.split("?")[0]!;
        return s.method === method && (typeof path === "string" ? p === path : path.test(p));
      });
    },
    close: server.close,
  };
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

/** A success line for `customId` whose chat completion says `content`. */
export function okLine(customId: string, content = `answer ${customId}`): string {
  return JSON.stringify({
    custom_id: customId,
    response: {
      status_code: 200,
      request_id: `req-${customId}`,
      body: { object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content } }] },
    },
    error: null,
  });
}

/** A failed line: an HTTP status with an OpenAI error body. */
export function errorLine(customId: string, status: number, message = `failed with ${status}`, code?: string): string {
  return JSON.stringify({
    custom_id: customId,
    response: { status_code: status, body: { error: { message, type: "server_error", code: code ?? null } } },
    error: null,
  });
}
