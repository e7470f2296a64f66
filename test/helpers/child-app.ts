// Runs test/fixtures/store-app.ts as a real child process and SIGKILLs it when a condition holds (checked on every
// line it prints and every 5 ms), bounded in time.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { join } from "node:path";

export interface AppRun {
  lines: string[];
  killed: boolean;
  code: number | null;
  /** Results by call index: content, ms from the app's start to its settlement, result-file reads made by then. */
  ok: Map<number, { ms: number; reads: number; content: string }>;
  errors: Map<number, string>;
}

export interface AppOptions {
  baseURL: string;
  store: string;
  calls: number;
  pollIntervalMs: number;
  mode?: "run" | "hold";
  latency?: number[];
  /** Put before every prompt (several apps with calls of their own). */
  prefix?: string;
  /** SIGKILL the app as soon as this returns (or resolves to) true, given what it printed so far. */
  killWhen?: (lines: string[]) => boolean | Promise<boolean>;
  timeoutMs?: number;
}

const APP = join(import.meta.dirname, "../fixtures/store-app.ts");

export function runApp(o: AppOptions): Promise<AppRun> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", APP, o.baseURL, o.store, String(o.calls), String(o.pollIntervalMs), o.mode ?? "run"],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, LATENCY: JSON.stringify(o.latency ?? []), PREFIX: o.prefix ?? "" },
    },
  );
  const lines: string[] = [];
  let stderr = "";
  let killed = false;
  let checking = false;
  const check = async () => {
    if (killed || checking || !o.killWhen) return;
    checking = true;
    try {
      if ((await o.killWhen(lines)) && !killed) {
        killed = true;
        child.kill("SIGKILL");
      }
    } finally {
      checking = false;
    }
  };
  createInterface({ input: child.stdout! }).on("line", (l) => {
    lines.push(l);
    void check();
  });
  child.stderr!.on("data", (d: Buffer) => (stderr += d));
  const timer = setInterval(() => void check(), 5);
  const limit = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 30_000);
  return new Promise((resolve, reject) => {
    child.on("exit", (code) => {
      clearInterval(timer);
      clearTimeout(limit);
      if (!killed && code !== 0) return reject(new Error(`app exited with ${code}:\n${stderr}\n${lines.join("\n")}`));
      const ok: AppRun["ok"] = new Map();
      const errors = new Map<number, string>();
      for (const l of lines) {
        const m = /^ok (\d+) (\d+) (\d+) (.*)$/.exec(l);
        if (m) ok.set(Number(m[1]), { ms: Number(m[2]), reads: Number(m[3]), content: m[4]! });
        const e = /^err (\d+) (.*)$/.exec(l);
        if (e) errors.set(Number(e[1]), e[2]!);
      }
      resolve({ lines, killed, code, ok, errors });
    });
  });
}
