import { afterEach, describe, expect, it } from "vitest";
import { AutoBatcher, InvalidOptionsError, DEFAULTS } from "../src/index.js";
import { resolveOptions, windowToMs } from "../src/options-resolve.js";

const saved = { key: process.env.OPENAI_API_KEY, url: process.env.OPENAI_BASE_URL };
afterEach(() => {
  for (const [k, v] of [
    ["OPENAI_API_KEY", saved.key],
    ["OPENAI_BASE_URL", saved.url],
  ] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe("options", () => {
  it("fills every default, with env fallbacks for key and base URL", () => {
    process.env.OPENAI_API_KEY = "sk-env";
    process.env.OPENAI_BASE_URL = "http://127.0.0.1:9/v1/";
    const o = resolveOptions({});
    expect(o).toMatchObject({
      apiKey: "sk-env",
      baseURL: "http://127.0.0.1:9/v1",
      batchSize: DEFAULTS.batchSize,
      maxBatchBytes: DEFAULTS.maxBatchBytes,
      batchWindowMs: 10_000,
      pollIntervalMs: 5_000,
      completionWindow: "24h",
    });
  });

  it("falls back to OpenAI's URL when OPENAI_BASE_URL is unset or empty", () => {
    process.env.OPENAI_BASE_URL = "";
    expect(resolveOptions({ apiKey: "k" }).baseURL).toBe("https://api.openai.com/v1");
  });

  it("rejects a missing key with a message naming the option and the env var", () => {
    delete process.env.OPENAI_API_KEY;
    expect(() => new AutoBatcher({})).toThrow(/apiKey: missing; pass `apiKey` or set OPENAI_API_KEY/);
  });

  it.each([
    [{ batchSize: 0 }, /batchSize: batchSize must be > 0/],
    [{ batchSize: 1.5 }, /batchSize: batchSize must be a whole number/],
    [{ batchSize: 60_000 }, /batchSize must be <= 50000/],
    [{ batchWindowMs: -1 }, /batchWindowMs: batchWindowMs must be >= 0/],
    [{ pollIntervalMs: "5s" }, /pollIntervalMs: pollIntervalMs must be a number/],
    [{ baseURL: "ftp://x" }, /baseURL: baseURL must be an http\(s\) URL/],
    [{ completionWindow: "" }, /completionWindow/],
    [{ metadata: { k: 1 } }, /metadata\.k/],
    [{ batchsize: 10 }, /unknown option\(s\): batchsize/],
    [{ metadata: { autobatch_key: "x" } }, /metadata key "autobatch_key" is reserved/],
    [
      { metadata: { ["k".repeat(65)]: "v" } },
      /metadata\.k{65}: metadata keys are at most 64 characters \(this one has 65\)/,
    ],
  ])("rejects %j", (bad, message) => {
    expect(() => new AutoBatcher({ apiKey: "k", ...(bad as object) })).toThrow(InvalidOptionsError);
    expect(() => new AutoBatcher({ apiKey: "k", ...(bad as object) })).toThrow(message);
  });

  it("keeps the key out of JSON, util.inspect and spreads of the resolved options", async () => {
    const { inspect } = await import("node:util");
    const o = resolveOptions({ apiKey: "sk-very-secret" });
    expect(o.apiKey).toBe("sk-very-secret");
    expect(JSON.stringify(o)).not.toContain("sk-very-secret");
    expect(inspect(o, { depth: 5 })).not.toContain("sk-very-secret");
    expect({ ...o }).not.toHaveProperty("apiKey");
  });

  it("does not echo a malformed base URL, which may hold credentials", () => {
    process.env.OPENAI_BASE_URL = "ftp://user:secret@example.test";
    expect(() => resolveOptions({ apiKey: "k" })).toThrow(/baseURL: must be an http\(s\) URL/);
    expect(() => resolveOptions({ apiKey: "k" })).not.toThrow(/secret/);
  });

  it("reads completion windows as durations", () => {
    expect(windowToMs("24h")).toBe(86_400_000);
    expect(windowToMs("90m")).toBe(5_400_000);
    expect(windowToMs("background")).toBeUndefined();
  });
});
