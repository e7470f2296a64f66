// The reference docs agree with the code: option tables quote the defaults the code applies, relative links lead
// to files that exist, and every "docs/protocols.md §N" cited in the code names a section of that file.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { DEFAULTS } from "../src/options.js";
import { SERVE_DEFAULTS } from "../src/serve/options.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const read = (path: string) => readFileSync(join(root, path), "utf8");
const docs = ["README.md", ...readdirSync(join(root, "docs")).map((f) => `docs/${f}`)].filter((f) => f.endsWith(".md"));

/** The cells of the table row whose first cell is `` `key` ``, or undefined. */
function row(markdown: string, key: string): string[] | undefined {
  const line = markdown.split("\n").find((l) => l.startsWith(`| \`${key}\` `));
  return line?.split("|").map((c) => c.trim());
}

function expectTable(path: string, defaults: Record<string, unknown>, column: number) {
  const text = read(path);
  for (const [key, value] of Object.entries(defaults)) {
    const cells = row(text, key);
    expect(cells, `${path} has a row for ${key}`).toBeDefined();
    expect(cells![column], `${path}: default of ${key}`).toContain(String(value));
  }
}

/** Files under src/ and test/, for the citations they hold. */
function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

describe("docs", () => {
  it("docs/options.md quotes every default in DEFAULTS", () => {
    expectTable("docs/options.md", DEFAULTS, 2);
  });

  it("docs/serve.md quotes every default in SERVE_DEFAULTS", () => {
    expectTable("docs/serve.md", SERVE_DEFAULTS, 3);
  });

  it("relative links in README.md and docs/ lead to files that exist", () => {
    let links = 0;
    for (const path of docs) {
      for (const [, target] of read(path).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const resolved = relative(root, join(root, dirname(path), target!));
        links++;
        expect(existsSync(join(root, resolved)), `${path} links to ${target}`).toBe(true);
      }
    }
    expect(links).toBeGreaterThan(10);
  });

  it('every "docs/protocols.md §N" cited in src/ and test/ names a section of docs/protocols.md', () => {
    const headings = new Set(
      [...read("docs/protocols.md").matchAll(/^#{2,3} (\d+(?:\.\d+)?)\.? /gm)].map(([, n]) => n),
    );
    let cited = 0;
    for (const file of [...sources("src"), ...sources("test")]) {
      for (const [citation] of read(file).matchAll(/docs\/protocols\.md §[\d.§, -]+/g)) {
        for (const [, n] of citation.matchAll(/§(\d+(?:\.\d+)?)/g)) {
          cited++;
          expect(headings.has(n!), `${file} cites docs/protocols.md §${n}`).toBe(true);
        }
      }
    }
    expect(cited).toBeGreaterThan(5);
  });
});
