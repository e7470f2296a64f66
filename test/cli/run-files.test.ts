// The run's result files and line shapes, in process: torn-tail repair, ids collected, whole-line writes, and the
// provider's error-line shapes for each kind of failure.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkLine } from "../../src/cli/run/input.js";
import { failureLine, successLine, usageOf } from "../../src/cli/run/lines.js";
import { ResultFile } from "../../src/cli/run/output.js";
import { APIError, BatchFailedError } from "../../src/errors.js";
import { tempDir } from "./run-harness.js";

describe("ResultFile", () => {
  it("cuts a torn last line, keeps whole ones, and lists their custom_ids", async () => {
    const path = join(tempDir(), "out.jsonl");
    writeFileSync(path, '{"custom_id":"a"}\n{"custom_id":"b"}\n{"custom_id":"c","resp');
    const ids = new Set<string>();
    const f = await ResultFile.open(path, ids);
    expect(f.repairedBytes).toBe('{"custom_id":"c","resp'.length);
    expect(f.existing).toBe(2);
    expect([...ids]).toEqual(["a", "b"]);
    f.append('{"custom_id":"c"}');
    f.append('{"custom_id":"d"}');
    f.close();
    expect(readFileSync(path, "utf8")).toBe(
      '{"custom_id":"a"}\n{"custom_id":"b"}\n{"custom_id":"c"}\n{"custom_id":"d"}\n',
    );
  });

  it("empties a file that is one torn line, and leaves a whole file as it is", async () => {
    const dir = tempDir();
    const torn = join(dir, "torn.jsonl");
    writeFileSync(torn, '{"custom_id":"x"');
    const f = await ResultFile.open(torn, new Set());
    f.close();
    expect(readFileSync(torn, "utf8")).toBe("");
    const whole = join(dir, "whole.jsonl");
    writeFileSync(whole, '{"custom_id":"x"}\n');
    const g = await ResultFile.open(whole, new Set());
    g.close();
    expect(g.repairedBytes).toBe(0);
    expect(readFileSync(whole, "utf8")).toBe('{"custom_id":"x"}\n');
  });

  it("refuses a file with a line that is not a result line, naming the line", async () => {
    const path = join(tempDir(), "out.jsonl");
    writeFileSync(path, '{"custom_id":"a"}\nhello\n{"custom_id":"b"}\n');
    await expect(ResultFile.open(path, new Set())).rejects.toThrow(`${path} line 2 is not a result line`);
  });
});

describe("result lines", () => {
  const raw = {
    status: 200,
    body: { usage: { prompt_tokens: 3, completion_tokens: 5 } },
    requestId: "req_1",
    customId: "ab-x-1",
    batchId: "b1",
  };
  it("writes a success under the user's custom_id, and reads usage of either naming", () => {
    expect(JSON.parse(successLine("mine", raw))).toEqual({
      id: "ab-x-1",
      custom_id: "mine",
      response: { status_code: 200, request_id: "req_1", body: raw.body },
      error: null,
    });
    expect(usageOf(raw.body)).toEqual({ input: 3, output: 5 });
    expect(usageOf({ usage: { input_tokens: 7, output_tokens: 2 } })).toEqual({ input: 7, output: 2 });
    expect(usageOf({ usage: { prompt_tokens: 4 } })).toEqual({ input: 4, output: 0 });
  });
  it("writes an HTTP failure with its status and error body, anything else as error {code, message}", () => {
    const http = APIError.generate(
      429,
      { message: "slow down", type: "rate_limit", code: "rate_limited" },
      undefined,
      undefined,
      { customId: "ab-x-2", batchId: "b1", requestID: "req_2" },
    );
    expect(JSON.parse(failureLine("m2", http))).toEqual({
      id: "ab-x-2",
      custom_id: "m2",
      response: {
        status_code: 429,
        request_id: "req_2",
        body: { error: { message: "slow down", type: "rate_limit", code: "rate_limited" } },
      },
      error: null,
    });
    const expired = new BatchFailedError("batch_expired: not run in time", {
      customId: "ab-x-3",
      batchId: "b1",
      batchStatus: "expired",
    });
    expect(JSON.parse(failureLine("m3", expired))).toEqual({
      id: "ab-x-3",
      custom_id: "m3",
      response: null,
      error: { code: "batch_expired", message: "batch_expired: not run in time" },
    });
  });
});

describe("checkLine", () => {
  it("accepts a valid line and drops nothing of its body", () => {
    const line = {
      custom_id: "q",
      method: "POST",
      url: "/v1/responses",
      body: { model: "m", input: "hi", temperature: 0 },
    };
    expect(checkLine(JSON.stringify(line))).toMatchObject({
      customId: "q",
      endpoint: "/v1/responses",
      model: "m",
      body: line.body,
    });
  });
  it("names what is wrong", () => {
    const base = { custom_id: "q", method: "POST", url: "/v1/embeddings", body: { model: "m", input: "x" } };
    expect(checkLine(JSON.stringify({ ...base, custom_id: 7 }))).toBe("custom_id must be a non-empty string");
    expect(checkLine(JSON.stringify({ ...base, body: [] }))).toBe("body must be a JSON object");
    expect(checkLine(JSON.stringify({ ...base, body: { model: "m", input: [] } }))).toBe(
      "body: Invalid params for /v1/embeddings: input: input must not be empty",
    );
  });
});
