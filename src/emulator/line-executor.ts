// One line's execution: its markers, its latency, then the built-in model or the real-time upstream.
import { setTimeout as sleep } from "node:timers/promises";
import { createHash } from "node:crypto";
import { builtinModel, errorBody, readMarkers, type Markers, type Outcome } from "./model.js";
import type { Upstream } from "./upstream.js";

export interface LineRequest {
  custom_id: string;
  url: string;
  body: Record<string, unknown>;
}

export interface LineContext {
  /** The key clients must send, quoted back by `[[echo-key]]` lines. */
  apiKey?: string;
  now: () => number;
  latency: () => number;
  upstream?: Upstream;
}

export class LineExecutor {
  readonly #ctx: LineContext;
  /** Digests of `[[fail-once]]` bodies that already failed once: their next run succeeds. */
  #failedOnce = new Set<string>();

  constructor(ctx: LineContext) {
    this.#ctx = ctx;
  }

  /** The line's outcome, or undefined when `signal` aborted meanwhile (the line then writes nothing). */
  async run(req: LineRequest, signal: AbortSignal): Promise<{ outcome: Outcome; markers: Markers } | undefined> {
    const bodyText = JSON.stringify(req.body);
    const markers = readMarkers(bodyText);
    const delay = markers.latencyMs ?? this.#ctx.latency();
    if (delay > 0) await sleep(delay, undefined, { signal });
    if (signal.aborted) return undefined;
    let outcome: Outcome;
    const failNow = markers.failOnce !== undefined && this.#firstRun(bodyText);
    if (failNow) {
      outcome = {
        kind: "http",
        status: markers.failOnce!,
        body: errorBody(markers.failOnce!, `Emulated first-attempt failure (HTTP ${markers.failOnce})`),
      };
    } else if (markers.echoKey) {
      outcome = {
        kind: "http",
        status: 401,
        body: errorBody(
          401,
          `Incorrect API key provided: ${this.#ctx.apiKey ?? "(none)"}. You can find your API key at https://platform.openai.com/account/api-keys.`,
        ),
      };
    } else if (markers.status !== undefined && (markers.status < 200 || markers.status >= 300)) {
      outcome = {
        kind: "http",
        status: markers.status,
        body: errorBody(markers.status, `Emulated failure (HTTP ${markers.status})`),
      };
    } else if (this.#ctx.upstream) {
      outcome = await this.#ctx.upstream.execute(req.url, bodyText, signal);
    } else {
      outcome = builtinModel(req.url, req.body, bodyText, Math.floor(this.#ctx.now() / 1000));
    }
    if (outcome.kind === "ok" && markers.oversize !== undefined && typeof outcome.body === "object")
      outcome = { ...outcome, body: { ...outcome.body, emulator_padding: "x".repeat(markers.oversize) } };
    // Cancelled (Doubleword) or expired (OpenAI) meanwhile: the line counts elsewhere and writes nothing.
    if (signal.aborted) return undefined;
    return { outcome, markers };
  }

  /** True the first time this exact body runs (it is remembered until the emulator closes). */
  #firstRun(bodyText: string): boolean {
    const digest = createHash("sha256").update(bodyText).digest("base64url");
    if (this.#failedOnce.has(digest)) return false;
    this.#failedOnce.add(digest);
    return true;
  }
}
