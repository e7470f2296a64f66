// serve under load and slow or oversized clients: a cap on waiting requests (503 + Retry-After beyond it, /health
// answering throughout), an over-limit Content-Length refused unread, slow headers cut, and no unauthenticated
// listener reachable from other machines unless asked for.
import { createClock } from "@sinonjs/fake-timers";
import net from "node:net";
import { Agent, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { InvalidOptionsError } from "../../src/options.js";
import { serve, type ServeHandle } from "../../src/serve/index.js";
import type { LogEntry } from "../../src/serve/log.js";
import { isLoopbackHost } from "../../src/server-kit/loopback.js";
import { chat } from "../helpers/client.js";

const KEY = "sk-load-secret-0123456789";
let emulator: Emulator | undefined;
let proxy: ServeHandle | undefined;
afterEach(async () => {
  await proxy?.close({ timeoutMs: 0 });
  await emulator?.close();
  proxy = emulator = undefined;
});

async function start(options: Parameters<typeof serve>[0] = {}) {
  emulator = await startEmulator({ port: 0 });
  const logs: LogEntry[] = [];
  proxy = await serve({ port: 0, apiKey: KEY, baseURL: emulator.baseURL, log: (e) => logs.push(e), ...options });
  return { proxy, logs };
}

/** Sends `text` on a raw connection and resolves with everything the server sent until it closed the connection. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(text));
    let got = "";
    socket.on("data", (c: Buffer) => (got += c.toString()));
    socket.on("end", () => resolve(got));
    socket.on("close", () => resolve(got));
    socket.on("error", reject);
  });
}

describe("serve under load", () => {
  it("holds up to maxWaitingRequests, answers the rest 503 with Retry-After, and /health answers throughout", async () => {
    const HELD = 40;
    const SENT = 160;
    const clock = createClock();
    const { proxy } = await start({ maxWaitingRequests: HELD, batchSize: 1_000, batchWindowMs: 60_000, clock });
    const agent = new Agent({ connections: SENT + 10 });
    try {
      const answers = Array.from({ length: SENT }, (_, i) =>
        request(`${proxy.baseURL}/chat/completions`, {
          method: "POST",
          dispatcher: agent,
          headers: { "content-type": "application/json" },
          body: JSON.stringify(chat(`held ${i}`)),
        }).then(async (res) => ({
          status: res.statusCode,
          headers: res.headers,
          body: (await res.body.json()) as any,
        })),
      );
      const refused = answers.map((a) => a.then((x) => x.status === 503));
      // The first SENT - HELD answers to arrive are the refusals; the held requests wait for the flush.
      let refusals = 0;
      for (const r of refused) r.then((yes) => yes && refusals++);
      for (let i = 0; i < 400 && refusals < SENT - HELD; i++) await new Promise((r) => setTimeout(r, 5));
      expect(refusals).toBe(SENT - HELD);
      const health = await request(`${proxy.origin}/health`, { dispatcher: agent });
      expect(health.statusCode).toBe(200);
      expect(await health.body.json()).toMatchObject({ status: "ok", waitingRequests: HELD, buffered: HELD });
      await clock.tickAsync(60_000);
      let done = false;
      const settled = Promise.all(answers).finally(() => (done = true));
      // Each poll of the batch waits for the fake clock; real HTTP runs in between.
      for (let i = 0; i < 200 && !done; i++) {
        await clock.tickAsync(5_000);
        await new Promise((r) => setTimeout(r, 5));
      }
      const all = await settled;
      expect(all.filter((a) => a.status === 200)).toHaveLength(HELD);
      const over = all.filter((a) => a.status === 503);
      expect(over).toHaveLength(SENT - HELD);
      expect(over[0]!.headers["retry-after"]).toBe("5");
      expect(over[0]!.headers.connection).toBe("close");
      expect(over[0]!.body.error.code).toBe("too_many_waiting_requests");
    } finally {
      await agent.close();
    }
  });

  it("refuses a declared over-limit Content-Length without reading the body, and closes the connection", async () => {
    const { proxy } = await start({ maxBodyBytes: 1_000 });
    // 10 bytes sent of a declared gigabyte: an answer can only come from the headers.
    const got = await raw(
      proxy.port,
      'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000000000\r\n\r\n{"model":',
    );
    expect(got).toMatch(/^HTTP\/1\.1 413 /);
    expect(got).toMatch(/connection: close/i);
    expect(got).toContain("request_too_large");
  });

  it("cuts a client that never finishes its headers with 408", async () => {
    const { proxy } = await start({ clientHeadersTimeoutMs: 100, clientRequestTimeoutMs: 100 });
    const got = await raw(proxy.port, "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n");
    expect(got).toMatch(/^HTTP\/1\.1 408 /);
  });
});

describe("serve's exposure", () => {
  it("refuses a non-loopback host without authToken unless allowUnauthenticated says so", async () => {
    const err = await serve({ apiKey: KEY, host: "0.0.0.0", port: 0, log: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect((err as Error).message).toMatch(/host: 0\.0\.0\.0 is reachable from other machines and no authToken is set/);
    expect((err as InvalidOptionsError).issues[0]!.path).toEqual(["host"]);
  });

  it("tells loopback hosts from others", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"])
      expect(isLoopbackHost(h)).toBe(true);
    for (const h of ["0.0.0.0", "::", "192.168.1.10", "example.com", "128.0.0.1"])
      expect(isLoopbackHost(h)).toBe(false);
  });

  it("says on the listening line whether clients must authenticate", async () => {
    const { logs } = await start({ authToken: "proxy-token", maxWaitingRequests: 7 });
    const line = logs.find((l) => l.event === "serve.listening")!;
    expect(line).toMatchObject({ level: "info", auth: true, maxWaitingRequests: 7 });
    expect(line.warning).toBeUndefined();
  });
});
