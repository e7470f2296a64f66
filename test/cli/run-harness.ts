// Spawning `autobatch run` / `autobatch batches` as real child processes, and writing request files for them.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

export const KEY = "sk-run-secret-123456789";
const ROOT = new URL("../..", import.meta.url);
export const CLI = join(ROOT.pathname, "src/cli/index.ts");
/** tsx by absolute URL: the children run in temporary folders, where a bare "tsx" does not resolve. */
export const TSX = pathToFileURL(createRequire(import.meta.url).resolve("tsx/esm")).href;

export interface Child {
  child: ChildProcess;
  exited: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
}

export function cli(args: string[], env: Record<string, string>, cwd: string, stdin?: string): Child {
  const child = spawn(process.execPath, ["--import", TSX, CLI, ...args], {
    cwd,
    env: { ...process.env, OPENAI_API_KEY: KEY, ...env, NODE_OPTIONS: "" },
    stdio: [stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
  if (stdin !== undefined) child.stdin!.end(stdin);
  let out = "";
  let err = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, stdout: () => out, stderr: () => err };
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "autobatch-run-test-"));
}

export interface Spec {
  /** Every `failEvery`-th chat line fails for good (HTTP 400). */
  failEvery?: number;
  /** Every `onceEvery`-th chat line fails with 503 on its first run only (a retry in a later batch succeeds). */
  onceEvery?: number;
  /** Text added to every chat line's prompt, e.g. a latency marker. */
  extra?: string;
}

/** `n` request lines: a third embeddings, the rest chat. */
export function requests(n: number, spec: Spec = {}): string[] {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 3 === 0) {
      lines.push(
        JSON.stringify({
          custom_id: `emb-${i}`,
          method: "POST",
          url: "/v1/embeddings",
          body: { model: "e", input: `text ${i}` },
        }),
      );
    } else {
      const fail =
        spec.failEvery && i % spec.failEvery === 1
          ? " [[status:400]]"
          : spec.onceEvery && i % spec.onceEvery === 2
            ? " [[fail-once:503]]"
            : "";
      lines.push(
        JSON.stringify({
          custom_id: `chat-${i}`,
          method: "POST",
          url: "/v1/chat/completions",
          body: { model: "m", messages: [{ role: "user", content: `hello ${i}${fail}${spec.extra ?? ""}` }] },
        }),
      );
    }
  }
  return lines;
}

export function writeInput(dir: string, lines: string[], name = "in.jsonl"): string {
  const path = join(dir, name);
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

export function readLines(path: string): Record<string, any>[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** Complete lines in a file another process may be writing (a line being written is not counted). */
export function countLines(path: string): number {
  if (!existsSync(path)) return 0;
  const text = readFileSync(path, "utf8");
  let n = 0;
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) n++;
  return n;
}

/** Polls `check` every 20 ms, at most `tries` times. */
export async function until(check: () => boolean | Promise<boolean>, tries = 500): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("condition not reached");
}
