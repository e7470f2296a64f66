// `autobatch emulator`: flag parsing, usage errors, and a real child process that serves and
// shuts down on SIGTERM.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { afterEach, describe, expect, it, vi } from "vitest";
import { command, parseEmulatorArgs } from "../../src/cli/emulator.js";

afterEach(() => vi.restoreAllMocks());

describe("parseEmulatorArgs", () => {
  it("applies the CLI defaults", () => {
    expect(parseEmulatorArgs([], {})).toEqual({ port: 8787, host: "127.0.0.1", flavor: "doubleword" });
  });

  it("rejects an --upstream that is not an http(s) URL without echoing its credentials", () => {
    for (const bad of ["ftp://user:hunter2@x/v1", "http://[bad", "http:/user:hunter2@x"]) {
      expect(() => parseEmulatorArgs(["--upstream", bad], {}), bad).toThrow(/^--upstream: expected an http\(s\) URL/);
      expect(() => parseEmulatorArgs(["--upstream", bad], {}), bad).not.toThrow(/hunter2/);
    }
  });

  it("parses every flag", () => {
    const opts = parseEmulatorArgs(
      [
        "--port",
        "0",
        "--flavor",
        "openai",
        "--api-key",
        "k",
        "--latency-ms",
        "5,20",
        "--seed",
        "7",
        "--concurrency",
        "3",
        "--validation-ms",
        "10",
        "--cursor-param",
        "offset",
        "--upstream",
        "http://127.0.0.1:8000/v1",
        "--upstream-concurrency",
        "4",
        "--max-stored-bytes",
        "2048",
      ],
      { AUTOBATCH_UPSTREAM_API_KEY: "from-env" },
    );
    expect(opts).toEqual({
      port: 0,
      host: "127.0.0.1",
      flavor: "openai",
      apiKey: "k",
      latencyMs: [5, 20],
      seed: 7,
      concurrency: 3,
      validationMs: 10,
      maxStoredBytes: 2048,
      contentCursorParam: "offset",
      upstream: { baseURL: "http://127.0.0.1:8000/v1", apiKey: "from-env", concurrency: 4 },
    });
    expect(parseEmulatorArgs(["--latency-ms", "12"], {})?.latencyMs).toBe(12);
    expect(parseEmulatorArgs(["-h"], {})).toBeUndefined();
  });

  it.each([
    [["--bogus"], /bogus/],
    [["--port", "x"], /--port/],
    [["--port", "70000"], /--port/],
    [["--flavor", "azure"], /--flavor: expected one of doubleword, openai/],
    [["--latency-ms", "9,2"], /--latency-ms/],
    [["--latency-ms", "1,2,3"], /--latency-ms/],
    [["--concurrency", "0"], /--concurrency/],
    [["--cursor-param", "page"], /--cursor-param/],
    [["--upstream", "ftp://x"], /--upstream/],
    [["--upstream-concurrency", "2"], /need --upstream/],
    [["stray"], /stray/],
  ])("rejects %j naming the problem", (argv, message) => {
    expect(() => parseEmulatorArgs(argv, {})).toThrow(message);
  });
});

describe("command", () => {
  it("exits 2 with a message on a bad flag and 0 on --help", async () => {
    const err = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    expect(await command.run(["--nope"])).toBe(2);
    expect(String(err.mock.calls[0][0])).toMatch(/--nope/);
    expect(await command.run(["--help"])).toBe(0);
    expect(String(log.mock.calls[0][0])).toMatch(/usage: autobatch emulator/);
  });

  it("serves in a child process, never prints the key, and exits 0 on SIGTERM", async () => {
    const cli = fileURLToPath(new URL("../../src/cli/index.ts", import.meta.url));
    const child = spawn(
      process.execPath,
      ["--import", "tsx", cli, "emulator", "--port", "0", "--flavor", "openai", "--api-key", "sk-hidden"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    try {
      let out = "";
      child.stdout.setEncoding("utf8");
      const line = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no banner; got ${out}`)), 15_000);
        child.stdout.on("data", (d: string) => {
          out += d;
          if (out.includes("\n")) {
            clearTimeout(timer);
            resolve(out.split("\n")[0]);
          }
        });
      });
      const m = /^autobatch emulator listening on (http:\/\/127\.0\.0\.1:\d+\/v1) \(flavor openai\)$/.exec(line);
      expect(m).not.toBeNull();
      expect(out).not.toContain("sk-hidden");
      const res = await request(`${m![1]}/batches`, { headers: { authorization: "Bearer sk-hidden" } });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toMatchObject({ object: "list" });
      child.kill("SIGTERM");
      const [code] = await once(child, "exit");
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
