import { afterEach, describe, expect, it } from "vitest";
import { rig, type Rig, chat } from "./helpers/client.js";

let r: Rig | undefined;
afterEach(async () => {
  await r?.stop();
  r = undefined;
});

describe("smoke", () => {
  it("works", async () => {
    r = await rig({ batchSize: 10 });
    const reqs = Array.from({ length: 25 }, (_, i) => ({ id: `q${i}`, params: chat(`hi ${i}`) }));
    const out = [];
    for await (const x of r.client.bulk(reqs)) out.push(x);
    expect(out).toHaveLength(25);
    expect(out.every((x) => x.ok)).toBe(true);
  });
});
