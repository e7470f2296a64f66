// The emulator in its own process, so every CPU second and byte of RSS the bench measures belongs to the client.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import type { EmulatorCounters, EmulatorOptions } from "autobatch/emulator";

const HOST = fileURLToPath(new URL("./emulator-host.ts", import.meta.url));

export interface EmulatorProcess {
  /** What clients use as their base URL, with /v1, as on the in-process Emulator. */
  baseURL: string;
  /** GET (or another method) on the emulator, parsed as JSON; `path` is below the origin, e.g. "/_emulator/counters". */
  get<T>(path: string, method?: string): Promise<T>;
  /** Text of a GET, for file contents. */
  text(path: string): Promise<string>;
  counters(): Promise<EmulatorCounters>;
  stop(): Promise<void>;
}

/** Starts the emulator in a child process (see emulator-host.ts) and waits for the line that carries its URL. */
export async function startEmulatorProcess(options: EmulatorOptions = {}): Promise<EmulatorProcess> {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", HOST, JSON.stringify(options)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const baseURL = await new Promise<string>((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`emulator did not print its URL within 15 s: ${seen}`)), 15_000);
    child.once("exit", (code) => reject(new Error(`emulator exited (${code}) before listening: ${seen}`)));
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      seen += chunk;
      const m = /(http:\/\/\S+\/v1)\b/.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  const origin = new URL(baseURL).origin;
  const request = async (path: string, method = "GET"): Promise<Response> => {
    const res = await fetch(origin + path, { method });
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
    return res;
  };
  return {
    baseURL,
    get: async <T>(path: string, method?: string) => (await (await request(path, method)).json()) as T,
    text: async (path) => (await request(path)).text(),
    counters: async () => (await (await request("/_emulator/counters")).json()) as EmulatorCounters,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
    },
  };
}

interface BatchObject {
  output_file_id?: string | null;
  error_file_id?: string | null;
}

/** Final sizes of the batches' output and error files, from the emulator's file objects. */
export async function resultFiles(
  emu: EmulatorProcess,
  batchIds: Iterable<string>,
): Promise<{ ids: string[]; bytes: number }> {
  const ids: string[] = [];
  let bytes = 0;
  for (const batchId of batchIds) {
    const b = await emu.get<BatchObject>(`/v1/batches/${batchId}`);
    for (const fileId of [b.output_file_id, b.error_file_id]) {
      if (!fileId) continue;
      ids.push(fileId);
      bytes += (await emu.get<{ bytes: number }>(`/v1/files/${fileId}`)).bytes;
    }
  }
  return { ids, bytes };
}

/** All requests the client made, from the emulator's per-route counters. */
export function totalRequests(c: EmulatorCounters): number {
  return Object.values(c.requests).reduce((a, b) => a + b, 0);
}
