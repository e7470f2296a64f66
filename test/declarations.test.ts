// The option docs reach a user's editor: the built declarations carry one JSDoc per option field, each with a
// `@default`, and every default quoted there is the value the code applies.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULTS } from "../src/options.js";
import { SERVE_DEFAULTS } from "../src/serve/options.js";
import { EMULATOR_DEFAULTS } from "../src/emulator/defaults.js";

interface Field {
  optional: boolean;
  doc: string;
  defaultTag: string | undefined;
}

let out: string;
beforeAll(() => {
  out = mkdtempSync(join(tmpdir(), "autobatch-dts-"));
  // The real build's settings, declarations only, into a directory of this test's own.
  execFileSync(
    process.execPath,
    [
      "node_modules/typescript/bin/tsc",
      ...["-p", "tsconfig.build.json", "--outDir", out, "--emitDeclarationOnly"],
      ...["--declarationMap", "false", "--sourceMap", "false"],
    ],
    { stdio: "pipe", timeout: 120_000 },
  );
}, 130_000);
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** The fields of `name` as declared in `file` (relative to the build output), with their JSDoc. */
function fields(file: string, name: string): Map<string, Field> {
  const source = ts.createSourceFile(file, readFileSync(join(out, file), "utf8"), ts.ScriptTarget.Latest, true);
  const found = source.statements.find(
    (s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === name,
  );
  if (!found) throw new Error(`${file} declares no interface ${name}`);
  const result = new Map<string, Field>();
  for (const member of found.members) {
    if (!ts.isPropertySignature(member) || !ts.isIdentifier(member.name)) continue;
    const docs = ts.getJSDocCommentsAndTags(member).filter(ts.isJSDoc);
    const tag = ts.getJSDocTags(member).find((t) => t.tagName.text === "default");
    result.set(member.name.text, {
      optional: member.questionToken !== undefined,
      doc: docs.map((d) => ts.getTextOfJSDocComment(d.comment) ?? "").join(" "),
      defaultTag: tag ? (ts.getTextOfJSDocComment(tag.comment) ?? "") : undefined,
    });
  }
  return result;
}

/** Whether a `@default` text quotes `value` (numbers as digits; strings and arrays as JSON; spacing ignored). */
function quotes(tag: string, value: unknown): boolean {
  if (typeof value === "number") return new RegExp(`(^|[^\\w.])${value}($|[^\\w.])`).test(tag);
  return tag.replace(/\s+/g, "").includes(JSON.stringify(value));
}

function expectDocumented(map: Map<string, Field>, where: string) {
  expect(map.size, `${where} has fields`).toBeGreaterThan(0);
  for (const [key, field] of map) {
    expect(field.doc.length, `${where}.${key} has a description`).toBeGreaterThan(10);
    if (field.optional) expect(field.defaultTag, `${where}.${key} has a @default`).toBeTruthy();
  }
}

function expectDefaults(map: Map<string, Field>, defaults: Record<string, unknown>, where: string) {
  for (const [key, value] of Object.entries(defaults)) {
    const tag = map.get(key)?.defaultTag;
    expect(tag, `${where}.${key} has a @default`).toBeDefined();
    expect(quotes(tag!, value), `${where}.${key}: @default ${tag} quotes ${JSON.stringify(value)}`).toBe(true);
  }
}

describe("built declarations", () => {
  it("dist/options.d.ts: every AutoBatcherOptions field has its description and @default", () => {
    const options = fields("options.d.ts", "AutoBatcherOptions");
    expectDocumented(options, "AutoBatcherOptions");
    expect(options.get("batchWindowMs")?.defaultTag).toBe("10000");
    expect(options.get("batchWindowMs")?.doc).toMatch(/^Milliseconds /);
    expect(options.get("apiKey")?.defaultTag).toBe("process.env.OPENAI_API_KEY");
    expectDefaults(options, DEFAULTS, "AutoBatcherOptions");
  });

  it("dist/serve/options.d.ts: ServeOptions' own fields likewise", () => {
    const options = fields("serve/options.d.ts", "ServeOptions");
    expectDocumented(options, "ServeOptions");
    expect(options.get("port")?.defaultTag).toBe("8080");
    expectDefaults(options, SERVE_DEFAULTS, "ServeOptions");
  });

  it("dist/fetch.d.ts: BatchingFetchOptions' own fields likewise", () => {
    const options = fields("fetch.d.ts", "BatchingFetchOptions");
    expectDocumented(options, "BatchingFetchOptions");
    expect(options.get("streaming")?.defaultTag).toBe('"batch"');
  });

  it("dist/emulator/types.d.ts: EmulatorOptions and UpstreamOptions likewise", () => {
    const options = fields("emulator/types.d.ts", "EmulatorOptions");
    expectDocumented(options, "EmulatorOptions");
    const { upstreamConcurrency, ...own } = EMULATOR_DEFAULTS;
    expectDefaults(options, own, "EmulatorOptions");
    const upstream = fields("emulator/types.d.ts", "UpstreamOptions");
    expectDocumented(upstream, "UpstreamOptions");
    expectDefaults(upstream, { concurrency: upstreamConcurrency }, "UpstreamOptions");
  });

  it("the entry points carry an @example", () => {
    const examples: Array<[string, string]> = [
      ["client.d.ts", "AutoBatcher"],
      ["fetch.d.ts", "createBatchingFetch"],
      ["serve/index.d.ts", "serve"],
      ["emulator/index.d.ts", "startEmulator"],
    ];
    for (const [file, name] of examples) {
      const text = readFileSync(join(out, file), "utf8");
      const at = text.search(new RegExp(`export (declare )?(class|function) ${name}\\b`));
      expect(at, `${file} declares ${name}`).toBeGreaterThan(0);
      const doc = text.slice(text.lastIndexOf("/**", at), at);
      expect(doc, `${name}'s JSDoc`).toContain("@example");
    }
  });
});
