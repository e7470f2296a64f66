import { describe, expect, it } from "vitest";
import { canonicalJson, fingerprint } from "../../src/internal/canonical.js";

describe("canonicalJson", () => {
  it("sorts keys at every depth, keeps array order, drops undefined members", () => {
    expect(canonicalJson({ b: [3, { z: 1, a: null }], a: "x", u: undefined })).toBe(
      '{"a":"x","b":[3,{"a":null,"z":1}]}',
    );
    expect(canonicalJson([undefined, 1e21, -0, "é\n"])).toBe('[null,1e+21,0,"é\\n"]');
  });

  it("orders keys by UTF-16 code units, as RFC 8785 does", () => {
    expect(canonicalJson({ "\u00e9": 1, z: 2, "\ud83d\ude00": 3, A: 4 })).toBe('{"A":4,"z":2,"é":1,"😀":3}');
  });

  it("fingerprints equal values equally whatever their key order, and different values differently", () => {
    const a = fingerprint("/v1/chat/completions", { model: "m", messages: [{ role: "user", content: "x" }] });
    const b = fingerprint(
      "/v1/chat/completions",
      JSON.parse('{"messages":[{"content":"x","role":"user"}],"model":"m"}'),
    );
    expect(a).toBe(b);
    expect(fingerprint("/v1/embeddings", { model: "m" })).not.toBe(fingerprint("/v1/embeddings", { model: "n" }));
    expect(fingerprint("/v1/embeddings", { model: "m" })).not.toBe(fingerprint("/v1/responses", { model: "m" }));
    expect(fingerprint("a\nb")).not.toBe(fingerprint("a", "b"));
  });
});
