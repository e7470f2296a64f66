// One server of the serve scenario, in its own process so its `process.cpuUsage()` and memory are the server's alone.
// `serve`: `serve()` from the built package, as `autobatch serve` runs it (JSON request log on stdout, which the
// scenario points at /dev/null). `bare`: a `node:http` server doing the JSON work any such server must: read and
// parse the body, answer a chat completion of the same shape and size as the emulator's. Driven over IPC:
// `usage` (CPU and memory now), `memory` (the same after full GCs), `state` (requests held), `hold` (bare: keep
// answering or hold every request until `release`), `exit`. Needs --expose-gc.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { serve, type ServeOptions } from "autobatch/serve";
import { settleHeap } from "./measure.js";

export type HostCommand = "usage" | "memory" | "state" | "hold" | "release" | "exit";
export interface HostState {
  /** Requests waiting for their answer. */
  held: number;
  /** serve only: nothing left in a buffer or being uploaded (every held call waits in a running batch). */
  settled: boolean;
}
export interface HostUsage {
  cpu: NodeJS.CpuUsage;
  memory: NodeJS.MemoryUsage;
}

const [kind, json] = process.argv.slice(2);
let state: () => HostState;
let hold = (_on: boolean) => undefined as void;
let release = () => undefined as void;
let origin: string;

if (kind === "serve") {
  const proxy = await serve({ ...(JSON.parse(json ?? "{}") as ServeOptions), port: 0 });
  origin = proxy.origin;
  state = () => {
    const s = proxy.stats;
    return { held: s.pending, settled: s.buffered === 0 && s.submitting === 0 };
  };
} else if (kind === "bare") {
  let holding = false;
  const held: { res: http.ServerResponse; prompt: string; model: unknown }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      const messages = body.messages as { content: string }[];
      // What it needs to answer later, as any server holding a request keeps: the response and the prompt.
      const waiting = { res, prompt: messages[messages.length - 1]!.content, model: body.model };
      if (holding) held.push(waiting);
      else answer(waiting);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state = () => ({ held: held.length, settled: true });
  hold = (on) => void (holding = on);
  release = () => {
    for (const w of held.splice(0)) answer(w);
  };
} else {
  throw new Error(`server-host: kind must be serve or bare, got ${kind}`);
}

let seq = 0;
/** The emulator's chat.completion for an echo, field for field, so both servers send answers of the same size. */
function answer(w: { res: http.ServerResponse; prompt: string; model: unknown }): void {
  const content = `echo: ${w.prompt}`;
  const id = (seq++).toString(16).padStart(29, "0");
  const tokens = Math.ceil(content.length / 4);
  w.res.writeHead(200, { "content-type": "application/json" }).end(
    JSON.stringify({
      id: `chatcmpl-${id}`,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: w.model,
      choices: [
        { index: 0, message: { role: "assistant", content, refusal: null }, logprobs: null, finish_reason: "stop" },
      ],
      usage: { prompt_tokens: tokens + 60, completion_tokens: tokens, total_tokens: 2 * tokens + 60 },
      system_fingerprint: "autobatch-emulator",
    }),
  );
}

process.on("message", async (m: { id: number; cmd: HostCommand; on?: boolean }) => {
  let value: unknown;
  if (m.cmd === "usage") value = { cpu: process.cpuUsage(), memory: process.memoryUsage() } satisfies HostUsage;
  else if (m.cmd === "memory") {
    await settleHeap();
    value = { cpu: process.cpuUsage(), memory: process.memoryUsage() } satisfies HostUsage;
  } else if (m.cmd === "state") value = state();
  else if (m.cmd === "hold") hold(m.on === true);
  else if (m.cmd === "release") release();
  else if (m.cmd === "exit") process.exit(0);
  process.send!({ id: m.id, value });
});
// The scenario gone (even crashed) closes the channel: this server goes with it.
process.once("disconnect", () => process.exit(0));
process.send!({ id: 0, value: origin });
