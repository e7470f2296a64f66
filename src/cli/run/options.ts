// `autobatch run` flags (and env) → the run's settings. Paths the user did not give are derived from --output.
import { httpURL, keyValues, number, parseCommand, UsageError } from "../args.js";
import { DEFAULTS } from "../../options.js";

/** The provider's cap on lines per batch file, and run's default batch size: a file needs no time window. */
export const RUN_BATCH_SIZE = 50_000;
/** Lines in a transient failure's later attempts, unless --retry-failed says otherwise. */
export const RETRY_FAILED = 2;
/** Plain progress lines when standard error is not a terminal. */
export const PROGRESS_INTERVAL_MS = 5_000;

export const USAGE = `usage: autobatch run INPUT --output FILE [options]

Sends a JSONL file of Batch API request lines ({"custom_id", "method": "POST", "url", "body"}) through a Batch
API and writes each result as it arrives. INPUT may be - for standard input. Rerunning the same command after an
interruption continues where it stopped.

files:
  --output FILE               successes, one provider output line each (required)
  --errors FILE               final failures, one provider error line each (default: beside --output, .errors.jsonl)
  --state PATH                the run's durable store, a SQLite file (default: beside --output, .state.db);
                              PATH.run.json beside it records which input the results belong to

upstream:
  --base-url URL              provider base URL incl. /v1 (env OPENAI_BASE_URL, default ${DEFAULTS.baseURL})
  --api-key KEY               provider key (prefer env OPENAI_API_KEY: flag values show in ps)
  --completion-window W       batch completion window, e.g. 24h or 1h (default ${DEFAULTS.completionWindow})
  --metadata KEY=VALUE        metadata on every batch; repeatable

batching:
  --batch-size N              lines per batch file, at most 50000 (default ${RUN_BATCH_SIZE})
  --max-batch-bytes N         bytes per batch file (default ${DEFAULTS.maxBatchBytes})
  --batch-window-ms MS        time from a file's first line to its upload (default ${DEFAULTS.batchWindowMs})
  --poll-interval-ms MS       time between progress reads of running batches (default ${DEFAULTS.pollIntervalMs})
  --retry-failed N            later attempts for a line that failed transiently: 408, 409, 429, 5xx, expired
                              (default ${RETRY_FAILED})

run:
  --dry-run                   check the input and print the plan; upload nothing
  --quiet                     no progress and no summary
  --progress-interval-ms MS   time between plain progress lines when stderr is not a terminal (default ${PROGRESS_INTERVAL_MS})
  --cancel-on-interrupt       Ctrl-C cancels the batches (default: detach, leaving them running, to resume later)
  -h, --help                  show this help

Exit codes: 0 every line succeeded, 1 some lines failed, 2 bad usage or input, 130 interrupted.`;

export interface RunSettings {
  input: string;
  output: string;
  errors: string;
  state: string;
  apiKey?: string;
  baseURL?: string;
  completionWindow?: string;
  metadata?: Record<string, string>;
  batchSize: number;
  maxBatchBytes: number;
  batchWindowMs?: number;
  pollIntervalMs?: number;
  retryFailed: number;
  dryRun: boolean;
  quiet: boolean;
  progressIntervalMs: number;
  cancelOnInterrupt: boolean;
}

/** Trimmed, and empty means unset: the rule the library applies to the same environment variables. */
const nonEmpty = (v: string | undefined): string | undefined => v?.trim() || undefined;

/** `out.jsonl` → `out.errors.jsonl`; `out` → `out.errors.jsonl`. */
export function beside(output: string, suffix: string): string {
  return `${output.replace(/\.jsonl$/i, "")}${suffix}`;
}

/** Parses the command line (and env); `undefined` means help was asked for. */
export function parseRunArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): RunSettings | undefined {
  const { values: v, positionals } = parseCommand(argv, {
    output: { type: "string", short: "o" },
    errors: { type: "string" },
    state: { type: "string" },
    "base-url": { type: "string" },
    "api-key": { type: "string" },
    "completion-window": { type: "string" },
    metadata: { type: "string", multiple: true },
    "batch-size": { type: "string" },
    "max-batch-bytes": { type: "string" },
    "batch-window-ms": { type: "string" },
    "poll-interval-ms": { type: "string" },
    "retry-failed": { type: "string" },
    "dry-run": { type: "boolean" },
    quiet: { type: "boolean", short: "q" },
    "progress-interval-ms": { type: "string" },
    "cancel-on-interrupt": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) return undefined;
  if (positionals.length !== 1)
    throw new UsageError(positionals.length ? `expected one INPUT, got ${positionals.length}` : "INPUT is required");
  const output = nonEmpty(v.output);
  if (!output) throw new UsageError("--output is required");
  const dryRun = v["dry-run"] === true;
  const apiKey = nonEmpty(v["api-key"]) ?? nonEmpty(env.OPENAI_API_KEY);
  if (!apiKey && !dryRun) throw new UsageError("--api-key is required (or set OPENAI_API_KEY)");
  const baseURL = nonEmpty(v["base-url"]) ?? nonEmpty(env.OPENAI_BASE_URL);
  const int = (flag: string, raw: string, min: number) => number(flag, raw, { integer: true, min });
  const batchSize = v["batch-size"] === undefined ? RUN_BATCH_SIZE : int("batch-size", v["batch-size"], 1);
  if (batchSize > RUN_BATCH_SIZE) throw new UsageError(`--batch-size: at most ${RUN_BATCH_SIZE}, got ${batchSize}`);
  const settings: RunSettings = {
    input: positionals[0]!,
    output,
    errors: nonEmpty(v.errors) ?? beside(output, ".errors.jsonl"),
    state: nonEmpty(v.state) ?? beside(output, ".state.db"),
    batchSize,
    maxBatchBytes:
      v["max-batch-bytes"] === undefined ? DEFAULTS.maxBatchBytes : int("max-batch-bytes", v["max-batch-bytes"], 1),
    retryFailed: v["retry-failed"] === undefined ? RETRY_FAILED : int("retry-failed", v["retry-failed"], 0),
    dryRun,
    quiet: v.quiet === true,
    progressIntervalMs:
      v["progress-interval-ms"] === undefined
        ? PROGRESS_INTERVAL_MS
        : number("progress-interval-ms", v["progress-interval-ms"], { exclusive: true }),
    cancelOnInterrupt: v["cancel-on-interrupt"] === true,
  };
  if (new Set([settings.output, settings.errors, settings.state]).size < 3)
    throw new UsageError("--output, --errors and --state must be three different files");
  if (apiKey) settings.apiKey = apiKey;
  if (baseURL !== undefined) settings.baseURL = httpURL("base-url", baseURL);
  if (v["completion-window"] !== undefined) settings.completionWindow = v["completion-window"];
  if (v.metadata) settings.metadata = keyValues("metadata", v.metadata);
  if (v["batch-window-ms"] !== undefined) settings.batchWindowMs = number("batch-window-ms", v["batch-window-ms"]);
  if (v["poll-interval-ms"] !== undefined)
    settings.pollIntervalMs = number("poll-interval-ms", v["poll-interval-ms"], { exclusive: true });
  return settings;
}
