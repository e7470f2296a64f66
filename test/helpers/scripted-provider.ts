// A scripted Batch API provider on 127.0.0.1:0 for misbehaviour tests: one file, one batch, completed at the first
// look; its result files (and, optionally, any route) are written by the test.
import type http from "node:http";
import { json, scriptedServer, type Seen } from "./server.js";

export interface ProviderScript {
  /** The output file's body for the uploaded custom_ids (input order). */
  output?: (ids: string[]) => string;
  /** The error file's body, if the batch has one. */
  errors?: (ids: string[]) => string;
  /** Extra fields of the batch object (e.g. a `failed` status with `errors`). */
  batch?: (ids: string[]) => Record<string, unknown>;
  /** Answers a request itself when it returns true (e.g. to trickle or to send an oversized body). */
  override?: (req: Seen, res: http.ServerResponse, ids: string[]) => boolean;
  /** Result files go out in writes of this many bytes (default: one write). */
  chunkBytes?: number;
}

export async function scriptedProvider(script: ProviderScript) {
  let ids: string[] = [];
  const server = await scriptedServer([
    (req, res) => {
      if (script.override?.(req, res, ids)) return;
      if (req.method === "POST" && req.url === "/v1/files") {
        ids = [...req.body.matchAll(/"custom_id":"([^"]+)"/g)].map((m) => m[1]!);
        return json(200, { id: "file-in", object: "file" })(req, res);
      }
      if (req.method === "POST" && req.url === "/v1/batches")
        return json(200, { id: "batch_1", status: "validating" })(req, res);
      if (req.url === "/v1/batches/batch_1") {
        return json(200, {
          id: "batch_1",
          status: "completed",
          output_file_id: script.output ? "file-out" : null,
          error_file_id: script.errors ? "file-err" : null,
          request_counts: { total: ids.length, completed: ids.length, failed: 0 },
          ...script.batch?.(ids),
        })(req, res);
      }
      const file = /^\/v1\/files\/(file-out|file-err)\/content/.exec(req.url)?.[1];
      if (file) {
        const body = Buffer.from(file === "file-out" ? script.output!(ids) : script.errors!(ids));
        const step = script.chunkBytes ?? Math.max(body.length, 1);
        res.writeHead(200, { "content-type": "application/jsonl" });
        for (let i = 0; i < body.length; i += step) res.write(body.subarray(i, i + step));
        return res.end();
      }
      return json(404, { error: { message: `no route ${req.method} ${req.url}` } })(req, res);
    },
  ]);
  return { ...server, ids: () => ids };
}
