// Small HTTP helpers for the emulator tests: real requests over undici, bounded polling.
import { FormData, fetch, request } from "undici";
import type { Emulator } from "../../src/emulator/index.js";

export interface Res {
  status: number;
  headers: Record<string, string>;
  text: string;
  json<T = Record<string, any>>(): T;
}

function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}

/** A request to `emu.baseURL + path` (or `emu.origin + path` when path starts with /_emulator). */
export async function call(
  emu: Emulator,
  method: string,
  path: string,
  opts: { json?: unknown; body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<Res> {
  const base = path.startsWith("/_emulator") ? emu.origin : emu.baseURL;
  const headers = { ...opts.headers };
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers["content-type"] ??= "application/json";
  }
  const res = await request(base + path, { method: method as "GET", headers, body });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: flatHeaders(res.headers),
    text,
    json: <T>() => JSON.parse(text) as T,
  };
}

export type Line = { custom_id: string; method: string; url: string; body: Record<string, unknown> };

export function chatLine(customId: string, text: string, model = "m"): Line {
  return {
    custom_id: customId,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model, messages: [{ role: "user", content: text }] },
  };
}

/** `n` chat lines, custom_ids `${prefix}0`… */
export const chatLines = (n: number, prefix = "r") =>
  Array.from({ length: n }, (_, i) => chatLine(`${prefix}${i}`, `hello ${i}`));

export function jsonl(lines: unknown[]): string {
  return lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") + "\n";
}

/** Multipart upload through undici's FormData; `purpose: null` leaves the field out. */
export async function upload(
  emu: Emulator,
  content: string | Buffer,
  opts: { purpose?: string | null; filename?: string; headers?: Record<string, string> } = {},
): Promise<Res> {
  const form = new FormData();
  if (opts.purpose !== null) form.append("purpose", opts.purpose ?? "batch");
  form.append(
    "file",
    new Blob([typeof content === "string" ? content : new Uint8Array(content)]),
    opts.filename ?? "input.jsonl",
  );
  const res = await fetch(`${emu.baseURL}/files`, { method: "POST", body: form, headers: opts.headers ?? {} });
  const text = await res.text();
  return { status: res.status, headers: Object.fromEntries(res.headers), text, json: <T>() => JSON.parse(text) as T };
}

export async function createBatch(emu: Emulator, fileId: string, extra: Record<string, unknown> = {}): Promise<Res> {
  return call(emu, "POST", "/batches", {
    json: { input_file_id: fileId, endpoint: "/v1/chat/completions", completion_window: "24h", ...extra },
  });
}

/** Uploads lines and creates a batch; returns the created batch object. */
export async function startBatch(
  emu: Emulator,
  lines: unknown[],
  extra: Record<string, unknown> = {},
): Promise<Record<string, any>> {
  const up = await upload(emu, jsonl(lines));
  if (up.status >= 300) throw new Error(`upload failed: ${up.status} ${up.text}`);
  const created = await createBatch(emu, up.json().id as string, extra);
  if (created.status >= 300) throw new Error(`create failed: ${created.status} ${created.text}`);
  return created.json();
}

/** Polls `fn` until it returns a value other than undefined; bounded in attempts and time. */
export async function until<T>(
  fn: () => Promise<T | undefined>,
  what = "condition",
  { attempts = 400, intervalMs = 5 } = {},
): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const value = await fn();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function getBatch(emu: Emulator, id: string): Promise<Record<string, any>> {
  return (await call(emu, "GET", `/batches/${id}`)).json();
}

/** Waits until the batch reaches one of `statuses`. */
export async function waitFor(emu: Emulator, id: string, statuses: string[]): Promise<Record<string, any>> {
  return until(
    async () => {
      const b = await getBatch(emu, id);
      return statuses.includes(b.status as string) ? b : undefined;
    },
    `batch ${id} to reach ${statuses.join("|")}`,
  );
}

export function parseLines(text: string): Array<Record<string, any>> {
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, any>);
}
