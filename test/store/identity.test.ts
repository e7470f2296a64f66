// Request identity: one fingerprint per endpoint and body, occurrence numbers that keep identical calls distinct.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { fingerprint, keyIdentity, Occurrences } from "../../src/store/identity.js";

describe("request identity", () => {
  it("fingerprints the endpoint and the body: either differing gives another fingerprint", () => {
    const body = JSON.stringify({ model: "m", input: "x" });
    expect(fingerprint("/v1/embeddings", body)).toBe(fingerprint("/v1/embeddings", body));
    expect(fingerprint("/v1/embeddings", body)).toMatch(/^[\w-]{22}$/);
    expect(fingerprint("/v1/responses", body)).not.toBe(fingerprint("/v1/embeddings", body));
    expect(fingerprint("/v1/embeddings", JSON.stringify({ model: "m", input: "y" }))).not.toBe(
      fingerprint("/v1/embeddings", body),
    );
  });

  it("is SHA-256 of the endpoint, a newline and the body's UTF-8, whatever the body's size or characters", () => {
    // Stores written by earlier versions hold these: a rerun after an upgrade must find its lines by them.
    const expected = (endpoint: string, body: string) =>
      createHash("sha256").update(`${endpoint}\n${body}`).digest("base64url").slice(0, 22);
    const bodies = [
      JSON.stringify({ model: "m", input: "plain" }),
      JSON.stringify({ model: "m", input: "ünïcödé 😀 \u2028 \ud800" }),
      JSON.stringify({ model: "m", input: "é".repeat(30_000) }),
      JSON.stringify({ model: "m", input: "x".repeat(100_000) }),
      "a lone surrogate outside JSON escaping: \ud800 and \udc00",
    ];
    for (const body of bodies) expect(fingerprint("/v1/embeddings", body)).toBe(expected("/v1/embeddings", body));
    expect(fingerprint("/v1/responses", bodies[1]!)).toBe(expected("/v1/responses", bodies[1]!));
  });

  it("numbers identical calls by occurrence, per fingerprint, the same way in every run", () => {
    const run = () => {
      const o = new Occurrences();
      return [o.identity("A"), o.identity("B"), o.identity("A"), o.identity("A")];
    };
    expect(run()).toEqual(["f:A:0", "f:B:0", "f:A:1", "f:A:2"]);
    expect(run()).toEqual(run());
  });

  it("keeps keys apart from fingerprints", () => {
    expect(keyIdentity("f:A:0")).toBe("k:f:A:0");
  });
});
