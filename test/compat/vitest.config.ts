// The Node 24 leg's second run: the suite's framework tests, with `openai`, `ai`, `@ai-sdk/openai`, `@langchain/*`
// resolved from this folder's newest majors (Node >= 22) instead of the root's Node-20 majors, everywhere: in the
// tests and in src/ alike, so BatchOpenAI subclasses the same openai the tests import. `undici` is not swapped (it
// is a runtime dependency, kept on 7); test/dispatcher.test.ts imports undici 8 from here by path.
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vitest/config";

const here = fileURLToPath(new URL(".", import.meta.url));
const SWAPPED = /^(openai|ai|@ai-sdk\/openai|@langchain\/openai|@langchain\/core)(\/.*)?$/;

/** Resolves the swapped packages as if imported from this folder, with Node's own rules (exports, conditions). */
function newestMajors(): Plugin {
  return {
    name: "autobatch-newest-majors",
    enforce: "pre",
    resolveId(source, importer, options) {
      if (!SWAPPED.test(source) || importer?.startsWith(here)) return null;
      return this.resolve(source, `${here}vitest.config.ts`, { ...options, skipSelf: true });
    },
  };
}

export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
  plugins: [newestMajors()],
  test: {
    include: [
      "test/fetch.test.ts",
      "test/fetch-frameworks.test.ts",
      "test/openai.test.ts",
      "test/recipes.test.ts",
      "test/recipes-matrix.test.ts",
      "test/dispatcher.test.ts",
      "test/serve/sdk.test.ts",
      "test/serve/long-wait.test.ts",
      "test/compat/majors.test.ts",
    ],
    typecheck: { enabled: true, include: ["test/openai-compat.test-d.ts"], tsconfig: "./test/compat/tsconfig.json" },
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: "forks",
  },
});
