// Request identity: one fingerprint per endpoint and body, occurrence numbers that keep identical calls distinct.
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
