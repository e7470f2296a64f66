// `autobatch batches list | get ID | cancel ID | results ID`: the provider's batches, for the key in use.
// `results --follow` reads a running batch's output and error files as they grow (the partial-results protocol,
// through the same reader the engine uses) until the batch ends, each line once.
import { closeSync, openSync, writeSync } from "node:fs";
import { number, parseCommand, UsageError, httpURL } from "./args.js";
import { readNewLines, type FileCursor, type ReadStats } from "../core/results.js";

/** This command's own position in a file (the engine's cursors belong to its batches). */
type Cursor = { -readonly [K in keyof FileCursor]: FileCursor[K] };
import { APIConnectionError, APIError, NotFoundError } from "../errors.js";
import { realClock, sleep } from "../internal/clock.js";
import { safeURL } from "../internal/safe-url.js";
import { batchListSchema, batchSchema, TERMINAL_STATUSES, type BatchEnvelope } from "../internal/schemas.js";
import { Transport } from "../internal/transport.js";
import { DEFAULTS, InvalidOptionsError } from "../options.js";
import { resolveOptions } from "../options-resolve.js";
import { beside } from "./run/options.js";

const NAME = "autobatch batches";
/** A CLI answers promptly: a few retries, not the library's two minutes. */
const CLI_RETRIES = { maxRetries: 2, retryDeadlineMs: 15_000 };
/** Reads cut short in a row before `results` gives up. */
const MAX_CUTS = 5;

const USAGE = `usage: autobatch batches <list | get ID | cancel ID | results ID --output FILE> [options]

  list                        the most recent batches (--limit N, default 20)
  get ID                      one batch, as the provider returns it (JSON)
  cancel ID                   cancel a batch
  results ID --output FILE    the batch's output file into FILE, its error file into --errors FILE
                              (default: beside FILE, .errors.jsonl); --follow reads them as they grow until the
                              batch ends, each line once

options:
  --base-url URL              provider base URL incl. /v1 (env OPENAI_BASE_URL, default ${DEFAULTS.baseURL})
  --api-key KEY               provider key (prefer env OPENAI_API_KEY)
  --limit N                   list: how many (default 20)
  --output FILE, --errors FILE, --follow
  --poll-interval-ms MS       results --follow: time between reads (default ${DEFAULTS.pollIntervalMs})
  -h, --help                  show this help`;

const nonEmpty = (v: string | undefined): string | undefined => v?.trim() || undefined;

/** Appends lines to a file opened once (truncated: the file holds exactly the lines read this time). */
class LineFile {
  readonly #fd: number;
  lines = 0;
  constructor(path: string) {
    this.#fd = openSync(path, "w");
  }
  write(lines: string[]): void {
    if (!lines.length) return;
    const bytes = Buffer.from(`${lines.join("\n")}\n`);
    let done = 0;
    while (done < bytes.length) done += writeSync(this.#fd, bytes, done);
    this.lines += lines.length;
  }
  close(): void {
    closeSync(this.#fd);
  }
}

function describe(b: BatchEnvelope): string {
  const c = b.request_counts;
  const counts = c ? `${c.completed}/${c.total} completed, ${c.failed} failed` : "";
  const created = typeof b.created_at === "number" ? new Date(b.created_at * 1000).toISOString() : "";
  return [b.id, b.status, String(b.endpoint ?? ""), counts, created].join("  ");
}

async function results(
  t: Transport,
  id: string,
  paths: { output: string; errors: string },
  follow: boolean,
  pollMs: number,
): Promise<number> {
  const cursors: { output?: Cursor; error?: Cursor } = {};
  const out = new LineFile(paths.output);
  const err = new LineFile(paths.errors);
  const stats: ReadStats = { requests: 0, bytes: 0, lines: 0 };
  let b: BatchEnvelope;
  let cuts = 0;
  try {
    for (;;) {
      b = await getBatch(t, id);
      if (b.output_file_id && cursors.output?.fileId !== b.output_file_id)
        cursors.output = { fileId: b.output_file_id, next: 0 };
      if (b.error_file_id && cursors.error?.fileId !== b.error_file_id)
        cursors.error = { fileId: b.error_file_id, next: 0 };
      const ended = TERMINAL_STATUSES.has(b.status);
      let cut = false;
      for (const [cursor, file] of [
        [cursors.output, out],
        [cursors.error, err],
      ] as const) {
        if (!cursor) continue;
        const got: string[] = [];
        const read = await readNewLines(t, cursor, (line) => got.push(line), stats);
        file.write(got);
        cursor.next = read.next;
        // A response cut short: the cursor stops at the last whole line, the next read goes on from there.
        if (read.cut) {
          if (++cuts > MAX_CUTS) throw read.cut;
          cut = true;
        }
      }
      // The status was read before the files: once it is terminal, one whole read of each has everything.
      if (!cut) cuts = 0;
      if ((ended || !follow) && !cut) break;
      await sleep(realClock, pollMs);
    }
  } finally {
    out.close();
    err.close();
  }
  const status = TERMINAL_STATUSES.has(b.status) ? `ended ${b.status}` : `is ${b.status} (use --follow to wait)`;
  console.error(
    `batch ${id} ${status}: ${out.lines} output lines → ${paths.output}, ${err.lines} error lines → ${paths.errors}`,
  );
  return 0;
}

function getBatch(t: Transport, id: string): Promise<BatchEnvelope> {
  return t.json({ method: "GET", path: `/batches/${encodeURIComponent(id)}` }, batchSchema);
}

async function main(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseCommand(argv, {
    "base-url": { type: "string" },
    "api-key": { type: "string" },
    limit: { type: "string" },
    output: { type: "string", short: "o" },
    errors: { type: "string" },
    follow: { type: "boolean", short: "f" },
    "poll-interval-ms": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  const [sub, id, ...extra] = positionals;
  if (v.help || !sub) {
    console.log(USAGE);
    return v.help ? 0 : 2;
  }
  if (extra.length) throw new UsageError(`unexpected argument '${extra[0]}'`);
  const needsId = sub === "get" || sub === "cancel" || sub === "results";
  if (sub !== "list" && !needsId) throw new UsageError(`unknown subcommand '${sub}' (list, get, cancel, results)`);
  if (needsId && !id) throw new UsageError(`${sub} needs a batch ID`);
  if (!needsId && id) throw new UsageError(`list takes no ID (got '${id}')`);
  const baseURL = nonEmpty(v["base-url"]);
  const options = resolveOptions({
    ...CLI_RETRIES,
    ...(nonEmpty(v["api-key"]) && { apiKey: nonEmpty(v["api-key"]) }),
    ...(baseURL && { baseURL: httpURL("base-url", baseURL) }),
  });
  const t = new Transport(options, realClock);
  try {
    switch (sub) {
      case "list": {
        const limit = v.limit === undefined ? 20 : number("limit", v.limit, { integer: true, min: 1 });
        const list = await t.json({ method: "GET", path: "/batches", query: { limit } }, batchListSchema);
        for (const b of list.data) console.log(describe(b));
        if (!list.data.length) console.error("no batches");
        return 0;
      }
      case "get":
        console.log(JSON.stringify(await getBatch(t, id!), null, 2));
        return 0;
      case "cancel": {
        const b = await t.json({ method: "POST", path: `/batches/${encodeURIComponent(id!)}/cancel` }, batchSchema);
        console.log(describe(b));
        return 0;
      }
      default: {
        const output = nonEmpty(v.output);
        if (!output) throw new UsageError("results needs --output FILE");
        const errors = nonEmpty(v.errors) ?? beside(output, ".errors.jsonl");
        const pollMs =
          v["poll-interval-ms"] === undefined
            ? DEFAULTS.pollIntervalMs
            : number("poll-interval-ms", v["poll-interval-ms"], { exclusive: true });
        return await results(t, id!, { output, errors }, v.follow === true, pollMs);
      }
    }
  } catch (err) {
    if (err instanceof NotFoundError) {
      console.error(`${NAME}: no batch '${id}' for this key at ${safeURL(options.baseURL)} (${err.message})`);
      return 1;
    }
    if (err instanceof APIConnectionError) {
      console.error(`${NAME}: cannot reach ${safeURL(options.baseURL)}: ${err.message}`);
      return 1;
    }
    if (err instanceof APIError) {
      console.error(`${NAME}: ${sub}${id ? ` ${id}` : ""}: ${err.message}`);
      return 1;
    }
    throw err;
  } finally {
    await t.close();
  }
}

export const command = {
  async run(argv: string[]): Promise<number> {
    try {
      return await main(argv);
    } catch (err) {
      if (err instanceof UsageError || err instanceof InvalidOptionsError) {
        console.error(`${NAME}: ${err.message}\n\nRun \`autobatch batches --help\` for the options.`);
        return 2;
      }
      throw err;
    }
  },
};
