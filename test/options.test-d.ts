// The documented option interfaces are exactly what the schemas accept: a field added, removed or retyped on one side
// only fails the typecheck.
import { describe, expectTypeOf, it } from "vitest";
import type { z } from "zod";
import type { AutoBatcherOptions } from "../src/index.js";
import type { optionsSchema } from "../src/options-schema.js";
import type { ServeOptions } from "../src/serve/index.js";
import type { serveOptionsSchema } from "../src/serve/options.js";

describe("option interfaces", () => {
  it("AutoBatcherOptions is the input type of optionsSchema", () => {
    expectTypeOf<AutoBatcherOptions>().toEqualTypeOf<z.input<typeof optionsSchema>>();
  });
  it("ServeOptions is the input type of serveOptionsSchema", () => {
    expectTypeOf<ServeOptions>().toEqualTypeOf<z.input<typeof serveOptionsSchema>>();
  });
});
