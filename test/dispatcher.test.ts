// The `dispatcher` option with a user's own undici: 7 (ours) and 8 (test/compat, Node >= 22.19, run on CI's Node 24
// leg), as an Agent and as a ProxyAgent through a proxy on 127.0.0.1 that records what it carried (undici 7 tunnels
// with CONNECT; undici 8 forwards plain-http requests in absolute form).
import { existsSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import * as undici7 from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../src/emulator/index.js";
import { AutoBatcher, type DispatcherLike } from "../src/index.js";

type Undici = { Agent: new () => DispatcherLike; ProxyAgent: new (uri: string) => DispatcherLike };

const undici8Path = new URL("./compat/node_modules/undici/index.js", import.meta.url);
const [major, minor] = process.versions.node.split(".").map(Number) as [number, number];
const hasUndici8 = existsSync(undici8Path) && (major > 22 || (major === 22 && minor >= 19));

let emu: Emulator;
let proxy: http.Server;
let proxyURL: string;
/** host:port of each tunnel or forwarded request. */
const tunnels: string[] = [];
beforeAll(async () => {
  emu = await startEmulator({ flavor: "openai" });
  proxy = http.createServer((req, res) => {
    const target = new URL(req.url ?? "");
    tunnels.push(target.host);
    const forwarded = http.request(target, { method: req.method, headers: req.headers }, (upstream) => {
      res.writeHead(upstream.statusCode ?? 502, upstream.headers);
      upstream.pipe(res);
    });
    forwarded.on("error", () => res.destroy());
    req.pipe(forwarded);
  });
  proxy.on("connect", (req, client: net.Socket, head: Buffer) => {
    tunnels.push(req.url ?? "");
    const [host, port] = (req.url ?? "").split(":");
    const upstream = net.connect(Number(port), host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(client).pipe(upstream);
    });
    const drop = () => {
      upstream.destroy();
      client.destroy();
    };
    upstream.on("error", drop);
    client.on("error", drop);
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  proxyURL = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});
afterAll(async () => {
  proxy.closeAllConnections();
  await new Promise((r) => proxy.close(r));
  await emu.close();
});

async function oneCall(dispatcher: DispatcherLike): Promise<string | null> {
  const client = new AutoBatcher({
    apiKey: "k",
    baseURL: emu.baseURL,
    batchWindowMs: 1,
    pollIntervalMs: 10,
    dispatcher,
  });
  try {
    const c = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "hi" }] });
    return c.choices[0]!.message.content;
  } finally {
    await client.close();
  }
}

const cases: [string, () => Promise<Undici>, boolean][] = [
  ["undici 7", async () => undici7 as unknown as Undici, true],
  ["undici 8", async () => (await import(undici8Path.href)) as Undici, hasUndici8],
];

describe.each(cases)("dispatcher from %s", (_name, load, available) => {
  it.runIf(available)("an Agent carries every Batch API request", async () => {
    const { Agent } = await load();
    const agent = new Agent() as DispatcherLike & { on(e: string, f: () => void): void; close(): Promise<void> };
    let connections = 0;
    agent.on("connect", () => connections++);
    expect(await oneCall(agent)).toBe("echo: hi");
    expect(connections).toBeGreaterThan(0);
    await agent.close();
  });

  it.runIf(available)("a ProxyAgent tunnels them through the proxy", async () => {
    const { ProxyAgent } = await load();
    const agent = new ProxyAgent(proxyURL) as DispatcherLike & { close(): Promise<void> };
    const before = tunnels.length;
    expect(await oneCall(agent)).toBe("echo: hi");
    expect(tunnels.slice(before)).toContain(new URL(emu.baseURL).host);
    await agent.close();
  });
});

it("rejects a dispatcher without request(), naming the option", () => {
  expect(() => new AutoBatcher({ apiKey: "k", dispatcher: {} as DispatcherLike })).toThrow(
    /dispatcher: dispatcher must be/,
  );
});
