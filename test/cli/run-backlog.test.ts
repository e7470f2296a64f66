// The read loop of `autobatch run` pauses while two batch files' worth of lines wait to be uploaded; whatever
// empties that backlog must wake it, or the run never ends.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cli, readLines, tempDir, writeInput, type Child } from "./run-harness.js";

let server: http.Server | undefined;
let child: Child | undefined;
afterEach(async () => {
  child?.child.kill("SIGKILL");
  await child?.exited;
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = child = undefined;
});

const chat = (id: string) =>
  JSON.stringify({
    custom_id: id,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "m", messages: [{ role: "user", content: id }] },
  });

/** A provider that refuses every upload (400), answering the first two together once both have arrived. */
async function refusingUploads(): Promise<string> {
  const held: http.ServerResponse[] = [];
  const refuse = (res: http.ServerResponse) =>
    res.writeHead(400, { "content-type": "application/json" }).end('{"error":{"message":"no uploads today"}}');
  server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.method === "GET" && req.url?.startsWith("/v1/batches"))
        return res.writeHead(200, { "content-type": "application/json" }).end('{"data":[],"has_more":false}');
      if (req.method !== "POST" || req.url !== "/v1/files") return res.writeHead(404).end();
      if (held.length >= 2) return refuse(res);
      held.push(res);
      if (held.length === 2) for (const r of held) refuse(r);
    });
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}/v1`;
}

describe("autobatch run backlog", () => {
  it("ends when two files of 500 lines (rejected in slices) fail to upload while reading waits for them", async () => {
    const baseURL = await refusingUploads();
    const lines = Array.from({ length: 1500 }, (_, i) => chat(`c${i}`));
    const dir = tempDir();
    const input = writeInput(dir, lines);
    // A window of an hour: only the size cuts files, and a partial file left behind would hold the run that long.
    const args = ["run", input, "--output", "out.jsonl", "--batch-size", "500", "--batch-window-ms", "3600000"];
    child = cli([...args, "--quiet"], { OPENAI_BASE_URL: baseURL }, dir);
    expect(await child.exited).toBe(1);
    expect(readLines(join(dir, "out.jsonl"))).toHaveLength(0);
  }, 30_000);
});
