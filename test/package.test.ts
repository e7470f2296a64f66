// The package as users get it: `npm pack` of the built tree (run `npm run build` first; CI's typecheck does), installed
// into a fresh project with openai (7 from test/compat on Node >= 22, else the root's 6.49), then used from outside:
// require and import of every entry, the bin, BatchOpenAI batching 20 calls against the emulator, and a file typed
// against openai compiled with skipLibCheck: false. Installs prefer npm's cache (filled by `npm ci`).
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { name: string; version: string };
const ENTRIES = ["autobatch", "autobatch/openai", "autobatch/serve", "autobatch/emulator"];

const compatOpenAI = join(root, "test/compat/node_modules/openai/package.json");
const openaiVersion = (
  JSON.parse(
    readFileSync(
      Number(process.versions.node.split(".")[0]) >= 22 && existsSync(compatOpenAI)
        ? compatOpenAI
        : join(root, "node_modules/openai/package.json"),
      "utf8",
    ),
  ) as { version: string }
).version;
const typesNodeVersion = (
  JSON.parse(readFileSync(join(root, "node_modules/@types/node/package.json"), "utf8")) as { version: string }
).version;

let project: string;
let packed: { path: string }[];
let installLog: string;
beforeAll(async () => {
  if (!existsSync(join(root, "dist/cjs/index.js")) || !existsSync(join(root, "dist/index.js")))
    throw new Error("dist/ is missing: run `npm run build` before this test");
  project = mkdtempSync(join(tmpdir(), "autobatch-pack-"));
  const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", project], {
    cwd: root,
  });
  const [info] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
  packed = info.files;
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "commonjs" }));
  const install = await run(
    "npm",
    [
      "install",
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
      `./${info.filename}`,
      `openai@${openaiVersion}`,
      `@types/node@${typesNodeVersion}`,
    ],
    { cwd: project },
  );
  installLog = install.stdout + install.stderr;
}, 120_000);
afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

const node = (args: string[]) => run(process.execPath, args, { cwd: project });

describe(`the packed tarball with openai ${openaiVersion} on Node ${process.versions.node}`, () => {
  it("ships dist/ and the sources its source maps name, nothing else, and installs without script warnings", () => {
    const files = packed.map((f) => f.path);
    const extra = files.filter(
      (f) => !/^(dist|src)\//.test(f) && !["package.json", "README.md", "LICENSE", "CHANGELOG.md"].includes(f),
    );
    expect(extra).toEqual([]);
    const named = new Set<string>();
    for (const map of files.filter((f) => f.endsWith(".map"))) {
      const { sources } = JSON.parse(readFileSync(join(root, map), "utf8")) as { sources: string[] };
      for (const s of sources) named.add(posix.normalize(posix.join(dirname(map), s)));
    }
    expect([...named].filter((s) => !files.includes(s))).toEqual([]);
    expect(files.filter((f) => f.startsWith("src/") && !named.has(f))).toEqual([]);
    expect(installLog).not.toMatch(/install-scripts[^\n]*autobatch/);
  });

  it("loads every entry with require() and with import, with the same exports", async () => {
    const script = `
      const entries = ${JSON.stringify(ENTRIES)};
      const keys = (m) => Object.keys(m).filter((k) => k !== "default" && k !== "__esModule").sort();
      (async () => {
        const out = {};
        for (const e of entries) out[e] = { cjs: keys(require(e)), esm: keys(await import(e)) };
        console.log(JSON.stringify(out));
      })();`;
    const { stdout } = await node(["-e", script]);
    const loaded = JSON.parse(stdout) as Record<string, { cjs: string[]; esm: string[] }>;
    for (const e of ENTRIES) {
      expect(loaded[e]!.cjs.length, e).toBeGreaterThan(0);
      expect(loaded[e]!.cjs, e).toEqual(loaded[e]!.esm);
    }
    expect(loaded.autobatch!.cjs).toEqual(expect.arrayContaining(["AutoBatcher", "createBatchingFetch", "APIError"]));
    expect(loaded["autobatch/openai"]!.cjs).toEqual(["BatchOpenAI"]);
  });

  it("runs the bin: autobatch --version", async () => {
    const { stdout } = await node([join(project, "node_modules/autobatch/dist/cli/index.js"), "--version"]);
    expect(stdout.trim()).toBe(pkg.version);
  });

  it("BatchOpenAI (required as CommonJS) batches 20 concurrent chat calls into one batch on the emulator", async () => {
    const script = `
      const { OpenAI } = require("openai");
      const { BatchOpenAI } = require("autobatch/openai");
      const { startEmulator } = require("autobatch/emulator");
      (async () => {
        const emu = await startEmulator({ flavor: "openai" });
        const client = new BatchOpenAI({ apiKey: "k", baseURL: emu.baseURL, batchSize: 20, batchWindowMs: 60000, pollIntervalMs: 10 });
        const ask = (c, i) => c.chat.completions.create({ model: "m", messages: [{ role: "user", content: "q" + i }] });
        const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(client, i)));
        await client.close();
        await emu.close();
        console.log(JSON.stringify({
          isOpenAI: client instanceof OpenAI,
          batches: emu.counters.batchesCreated,
          answers: answers.map((a) => a.choices[0].message.content),
        }));
      })();`;
    const { stdout } = await node(["-e", script]);
    expect(JSON.parse(stdout)).toEqual({
      isOpenAI: true,
      batches: 1,
      answers: Array.from({ length: 20 }, (_, i) => `echo: q${i}`),
    });
  });

  it("compiles code typed against openai, as CommonJS and as ESM, with skipLibCheck: false", async () => {
    const source = `
      import OpenAI from "openai";
      import type { ChatCompletion } from "openai/resources/chat/completions";
      import { AutoBatcher, type CallOptions } from "autobatch";
      import { BatchOpenAI } from "autobatch/openai";
      import { startEmulator } from "autobatch/emulator";
      import { serve } from "autobatch/serve";

      async function ask(client: OpenAI, prompt: string): Promise<ChatCompletion> {
        return client.chat.completions.create(
          { model: "m", messages: [{ role: "user", content: prompt }] },
          { timeout: 60_000, maxRetries: 1 },
        );
      }
      const completions = (c: OpenAI["chat"]["completions"]) => c;
      export async function main(): Promise<string | null> {
        const client = new BatchOpenAI({ apiKey: "k", batchWindowMs: 1000, timeout: 30_000 });
        completions(client.chat.completions);
        const batcher = new AutoBatcher({ apiKey: "k" });
        const options: CallOptions = { timeout: 1_000, maxRetries: 0 };
        const viaBatcher: ChatCompletion = await batcher.chat.completions.create({ model: "m", messages: [] }, options);
        void startEmulator;
        void serve;
        return (await ask(client, "hi")).choices[0]!.message.content ?? viaBatcher.id;
      }`;
    writeFileSync(join(project, "cjs.ts"), source);
    writeFileSync(join(project, "esm.mts"), source);
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "nodenext",
          moduleResolution: "nodenext",
          target: "es2022",
          strict: true,
          skipLibCheck: false,
          noEmit: true,
          types: ["node"],
        },
        files: ["cjs.ts", "esm.mts"],
      }),
    );
    const tsc = join(root, "node_modules/typescript/bin/tsc");
    const result = await run(process.execPath, [tsc, "-p", project], { cwd: project }).then(
      () => "",
      (err: { stdout?: string }) => err.stdout ?? String(err),
    );
    expect(result).toBe("");
    // Checking every declaration file (openai's are large) is most of this test's time.
  }, 120_000);
});
