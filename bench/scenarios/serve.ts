// serve against a bare `node:http` server, in the same run: each server in its own process (bench/lib/server-host.ts),
// this process only the load. Per server:
//   1. warm-up, then `--requests` chat requests over `--connections` keep-alive connections, each connection sending
//      its next request when its answer arrives: req/s, and the server's CPU per 1,000 requests (its own
//      `process.cpuUsage()` over the window);
//   2. `--held` requests held at once (serve: each waiting in a running batch, its line marked to take an hour in the
//      emulator; bare: parsed and kept unanswered): the server's RSS and heap growth per held request, after full GCs.
// serve runs with the CLI's defaults except a short batch window (`--window-ms`) and poll interval (`--poll-ms`), and
// no store unless `--store PREFIX` (each serve process gets the SQLite file PREFIX-<n>.db; `--request-identity MODE`;
// `--peer`: another serve on the same file first, holding one request, as a second live process on the store).
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request } from "undici";
import { startEmulatorProcess } from "../lib/emulator.js";
import { emit, flag, log, percentile } from "../lib/measure.js";
import { chatParams } from "../lib/payload.js";
import type { HostCommand, HostState, HostUsage } from "../lib/server-host.js";

const REQUESTS = flag("requests", 30_000);
const WARMUP = flag("warmup", 10_000);
const CONNECTIONS = flag("connections", 1_000);
const HELD = flag("held", 4_000);
const HELD_WARMUP = flag("held-warmup", 3_000);
const WINDOW_MS = flag("window-ms", 100);
const POLL_MS = flag("poll-ms", 100);
const text = (name: string) => {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : undefined;
};
const STORE = text("store");
const IDENTITY = text("request-identity");
const PEER = process.argv.includes("--peer");
const HOST = fileURLToPath(new URL("../lib/server-host.ts", import.meta.url));
/** In a prompt, makes the emulator take an hour over the line: the request stays held. */
const HOUR_MARKER = "[[latency:3600000]]";

interface Host {
  origin: string;
  call<T>(cmd: HostCommand, extra?: object): Promise<T>;
  stop(): Promise<void>;
}

async function startHost(kind: "serve" | "bare", options: object = {}): Promise<Host> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "--expose-gc",
      // BENCH_PROFILE=<dir>: a V8 CPU profile of each server's whole life, written when it exits.
      ...(process.env.BENCH_PROFILE
        ? ["--cpu-prof", "--cpu-prof-interval=200", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`]
        : []),
      HOST,
      kind,
      JSON.stringify(options),
    ],
    // The request log goes to /dev/null: written, as by `autobatch serve`, but not read by anyone here.
    { stdio: ["ignore", "ignore", "inherit", "ipc"] },
  );
  const waiters = new Map<number, (value: unknown) => void>();
  child.on("message", (m: { id: number; value: unknown }) => {
    waiters.get(m.id)?.(m.value);
    waiters.delete(m.id);
  });
  let seq = 0;
  const call = <T>(cmd: HostCommand, extra: object = {}) =>
    new Promise<T>((resolve) => {
      const id = ++seq;
      waiters.set(id, resolve as (v: unknown) => void);
      child.send({ id, cmd, ...extra });
    });
  const origin = await new Promise<string>((resolve, reject) => {
    waiters.set(0, resolve as (v: unknown) => void);
    child.once("exit", (code) => reject(new Error(`${kind} host exited (${code}) before listening`)));
  });
  return {
    origin,
    call,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, "exit");
      // Asked first, so a profile gets written; killed if it does not go.
      child.send({ id: -1, cmd: "exit" });
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

interface Load {
  ok: number;
  failed: number;
  firstError?: string;
  wallMs: number;
  answerBytes: number;
  latencyMs: number[];
}

/** `total` requests over `connections` connections, each sending its next request once its answer is read. */
async function load(origin: string, total: number, connections: number, first: number): Promise<Load> {
  const agent = new Agent({ connections, headersTimeout: 120_000, bodyTimeout: 120_000 });
  const out: Load = { ok: 0, failed: 0, wallMs: 0, answerBytes: 0, latencyMs: [] };
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (next < total) {
        const i = first + next++;
        const t = performance.now();
        try {
          const res = await request(`${origin}/v1/chat/completions`, {
            method: "POST",
            dispatcher: agent,
            headers: { "content-type": "application/json" },
            body: JSON.stringify(chatParams(i)),
          });
          const text = await res.body.text();
          // The answer is this request's own: the emulator (and the bare server) echo the prompt.
          if (res.statusCode === 200 && text.includes(`echo: Request ${i}.`)) {
            out.ok++;
            out.answerBytes += Buffer.byteLength(text);
          } else {
            out.failed++;
            out.firstError ??= `HTTP ${res.statusCode}: ${text.slice(0, 200)}`;
          }
        } catch (err) {
          out.failed++;
          out.firstError ??= String(err);
        }
        out.latencyMs.push(performance.now() - t);
      }
    }),
  );
  out.wallMs = performance.now() - t0;
  await agent.close();
  return out;
}

const cpuMs = (a: HostUsage, b: HostUsage) => (b.cpu.user - a.cpu.user + b.cpu.system - a.cpu.system) / 1000;

async function throughput(host: Host, first: number) {
  await load(host.origin, WARMUP, CONNECTIONS, first);
  const before = await host.call<HostUsage>("usage");
  const l = await load(host.origin, REQUESTS, CONNECTIONS, first + WARMUP);
  const after = await host.call<HostUsage>("usage");
  const cpu = cpuMs(before, after);
  const sorted = l.latencyMs.sort((a, b) => a - b);
  return {
    ok: l.ok,
    failed: l.failed,
    firstError: l.firstError,
    requestsPerSecond: l.ok / (l.wallMs / 1000),
    cpuMs: cpu,
    cpuPer1kMs: cpu / (REQUESTS / 1000),
    cpuUserPer1kMs: (after.cpu.user - before.cpu.user) / 1000 / (REQUESTS / 1000),
    /** Share of one core the server used over the window: under 1, the server was not what limited req/s. */
    coreShare: cpu / l.wallMs,
    latencyMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99) },
    answerBytesPerRequest: l.answerBytes / Math.max(1, l.ok),
  };
}

/** `HELD` requests left waiting; the server's growth per request over its own idle, collected baseline. */
async function held(host: Host, ready: (s: HostState) => boolean, first: number) {
  const base = await host.call<HostUsage>("memory");
  const agent = new Agent({ connections: HELD, headersTimeout: 0, bodyTimeout: 0 });
  const answered = Array.from({ length: HELD }, async (_, k) => {
    const params = chatParams(first + k);
    params.messages[1]!.content += ` ${HOUR_MARKER}`;
    const res = await request(`${host.origin}/v1/chat/completions`, {
      method: "POST",
      dispatcher: agent,
      headers: { "content-type": "application/json" },
      body: JSON.stringify(params),
    });
    await res.body.text();
    return res.statusCode;
  }).map((p) => p.catch(() => 0));
  const deadline = performance.now() + 120_000;
  let state = await host.call<HostState>("state");
  while (!ready(state)) {
    if (performance.now() > deadline) throw new Error(`held: ${state.held} of ${HELD} held after 120 s`);
    await sleep(100);
    state = await host.call<HostState>("state");
  }
  const after = await host.call<HostUsage>("memory");
  const heap = (u: HostUsage) => u.memory.heapUsed + u.memory.external;
  return {
    held: state.held,
    rssPerRequestBytes: (after.memory.rss - base.memory.rss) / HELD,
    heapPerRequestBytes: (heap(after) - heap(base)) / HELD,
    rssBaseBytes: base.memory.rss,
    finish: async () => {
      await agent.destroy();
      await Promise.all(answered);
    },
    answered,
  };
}

const emu = await startEmulatorProcess({ concurrency: 100_000 });
const serveOptions = {
  apiKey: "bench",
  baseURL: emu.baseURL,
  batchWindowMs: WINDOW_MS,
  pollIntervalMs: POLL_MS,
  maxWaitingRequests: Math.max(CONNECTIONS, HELD) + 1_000,
};
const hosts: Host[] = [];
/** A serve on the same store holding one request (its line takes an hour): a batch leased to a live process. */
async function peer(options: object): Promise<void> {
  const p = await startHost("serve", options);
  hosts.push(p);
  const params = chatParams(-1);
  params.messages[1]!.content += ` ${HOUR_MARKER}`;
  const body = JSON.stringify(params);
  request(`${p.origin}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body })
    .then((res) => res.body.text())
    .catch(() => undefined);
  const deadline = performance.now() + 60_000;
  let state = await p.call<HostState>("state");
  while (!(state.settled && state.held === 1)) {
    if (performance.now() > deadline) throw new Error("peer: its request was not held in a batch after 60 s");
    await sleep(50);
    state = await p.call<HostState>("state");
  }
}
const start = async (kind: "serve" | "bare") => {
  const store = STORE && { store: `${STORE}-${hosts.length}.db`, requestIdentity: IDENTITY };
  if (kind === "serve" && store && PEER) await peer({ ...serveOptions, ...store });
  const h = await startHost(kind, kind === "serve" ? { ...serveOptions, ...store } : {});
  hosts.push(h);
  return h;
};
try {
  log(`serve: ${REQUESTS} requests at ${CONNECTIONS} connections (window ${WINDOW_MS} ms, poll ${POLL_MS} ms)`);
  const serveRun = await throughput(await start("serve"), 0);
  log(`bare: ${REQUESTS} requests at ${CONNECTIONS} connections`);
  const bareRun = await throughput(await start("bare"), 0);

  // Held requests in fresh processes, after a short warm-up: RSS freed by a long run is not handed back at once, and
  // a baseline taken after one would hide the held requests' growth.
  log(`serve: ${HELD} requests held`);
  const serveHost = await start("serve");
  await load(serveHost.origin, HELD_WARMUP, CONNECTIONS, 0);
  const serveHeld = await held(serveHost, (s) => s.held === HELD && s.settled, 1_000_000);
  await serveHeld.finish();
  log(`bare: ${HELD} requests held`);
  const bareHost = await start("bare");
  await load(bareHost.origin, HELD_WARMUP, CONNECTIONS, 0);
  await bareHost.call("hold", { on: true });
  const bareHeld = await held(bareHost, (s) => s.held === HELD, 1_000_000);
  await bareHost.call("release");
  const bareAnswers = await Promise.all(bareHeld.answered);
  const { finish: _sf, answered: _sa, ...serveMem } = serveHeld;
  const { finish: _bf, answered: _ba, ...bareMem } = bareHeld;
  emit({
    scenario: "serve",
    requests: REQUESTS,
    connections: CONNECTIONS,
    windowMs: WINDOW_MS,
    pollMs: POLL_MS,
    serve: { ...serveRun, ...serveMem },
    bare: { ...bareRun, ...bareMem, heldAnswered: bareAnswers.filter((s) => s === 200).length },
    failed: serveRun.failed + bareRun.failed,
    firstError: serveRun.firstError ?? bareRun.firstError,
    cpuRatio: serveRun.cpuPer1kMs / bareRun.cpuPer1kMs,
    rssRatio: serveMem.rssPerRequestBytes / bareMem.rssPerRequestBytes,
    heapRatio: serveMem.heapPerRequestBytes / bareMem.heapPerRequestBytes,
  });
} finally {
  await Promise.all([...hosts.map((h) => h.stop()), emu.stop()]);
}
