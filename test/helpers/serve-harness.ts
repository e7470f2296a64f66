// An emulator plus a `serve` proxy in front of it, both on loopback port 0, with tiny thresholds; logs captured.
import { startEmulator, type Emulator, type EmulatorOptions } from "../../src/emulator/index.js";
import { serve, type ServeHandle, type ServeOptions } from "../../src/serve/index.js";
import type { LogEntry } from "../../src/serve/log.js";

export interface Harness {
  emulator: Emulator;
  proxy: ServeHandle;
  logs: LogEntry[];
  close(): Promise<void>;
}

export const UPSTREAM_KEY = "sk-upstream-secret-0123456789";

export async function startHarness(
  options: Partial<ServeOptions> = {},
  emulatorOptions: EmulatorOptions = {},
): Promise<Harness> {
  const emulator = await startEmulator({ port: 0, ...emulatorOptions });
  const logs: LogEntry[] = [];
  const proxy = await serve({
    port: 0,
    apiKey: UPSTREAM_KEY,
    baseURL: emulator.baseURL,
    batchWindowMs: 10,
    pollIntervalMs: 10,
    log: (e) => logs.push(e),
    ...options,
  });
  return {
    emulator,
    proxy,
    logs,
    async close() {
      await proxy.close({ timeoutMs: 0 });
      await emulator.close();
    },
  };
}
