// Shared set-up for client tests: an emulator (or a fake provider) on 127.0.0.1:0 and an AutoBatcher with small
// thresholds.
import { request } from "undici";
import { afterEach } from "vitest";
import { startEmulator } from "../../src/emulator/index.js";
import type { Emulator, EmulatorOptions, FaultSpec } from "../../src/emulator/types.js";
import { AutoBatcher, type AutoBatcherOptions, type AutoBatchEvent } from "../../src/index.js";
import { fakeProvider, type LineFate, type LineSeen, type Provider } from "./provider.js";

export const KEY = "sk-emulator-test-key-0123456789";

export interface Rig {
  emu: Emulator;
  client: AutoBatcher;
  events: AutoBatchEvent[];
  stop(): Promise<void>;
}

export async function rig(clientOptions: AutoBatcherOptions = {}, emulatorOptions: EmulatorOptions = {}): Promise<Rig> {
  const emu = await startEmulator({ port: 0, apiKey: KEY, ...emulatorOptions });
  const events: AutoBatchEvent[] = [];
  const client = new AutoBatcher({
    apiKey: KEY,
    baseURL: emu.baseURL,
    batchWindowMs: 10,
    pollIntervalMs: 10,
    onEvent: (e) => events.push(e),
    ...clientOptions,
  });
  return {
    emu,
    client,
    events,
    async stop() {
      await client.close({ cancel: true }).catch(() => undefined);
      await emu.close();
    },
  };
}

/**
 * For a test file whose tests each run one AutoBatcher on a fake provider (`fate` as `fakeProvider` takes it):
 * registers the afterEach that closes both, and returns `start(options)`, which opens them, `options` over `defaults`.
 */
export function onFakeProvider(fate?: (line: LineSeen) => LineFate, defaults: AutoBatcherOptions = {}) {
  let p: Provider | undefined;
  let client: AutoBatcher | undefined;
  afterEach(async () => {
    await client?.close({ cancel: true });
    await p?.close();
    p = client = undefined;
  });
  return async (options: AutoBatcherOptions = {}) => {
    p = await fakeProvider(fate);
    const events: AutoBatchEvent[] = [];
    client = new AutoBatcher({
      apiKey: KEY,
      baseURL: p.url,
      onEvent: (e) => events.push(e),
      ...defaults,
      ...options,
    });
    return { client, events, p };
  };
}

type FaultKind = FaultSpec extends infer F ? (F extends unknown ? Omit<F, "route" | "after" | "times"> : never) : never;

/** One fault spec per entry of `afters`, each firing once after letting that many matching requests through. */
export function spread(route: string, fault: FaultKind, afters: number[]): FaultSpec[] {
  return afters.map((after) => ({ route, after, times: 1, ...fault }) as FaultSpec);
}

/** Polls `check` (real time, 5 ms apart) until it returns true; bounded in time. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** GET a JSON document from the emulator with the test key. */
export async function emuGet<T = any>(emu: Emulator, path: string): Promise<T> {
  const res = await request(`${emu.baseURL}${path}`, { headers: { authorization: `Bearer ${KEY}` } });
  return (await res.body.json()) as T;
}

export async function emuText(emu: Emulator, path: string): Promise<string> {
  const res = await request(`${emu.baseURL}${path}`, { headers: { authorization: `Bearer ${KEY}` } });
  return res.body.text();
}

export async function emuPost(emu: Emulator, path: string): Promise<unknown> {
  const res = await request(`${emu.baseURL}${path}`, { method: "POST", headers: { authorization: `Bearer ${KEY}` } });
  return res.body.json();
}

export const chat = (content: string, model = "test-model") => ({
  model,
  messages: [{ role: "user" as const, content }],
});

/** Rejection value of a promise that must reject. */
export async function rejection(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}
