import { describe, expect, it } from "vitest";
import { readResultLine } from "../../src/internal/schemas.js";

describe("readResultLine", () => {
  it("accepts OpenAI's and Doubleword's line shapes, bodies untouched", () => {
    const openai = {
      id: "batch_req_1",
      custom_id: "a",
      response: { status_code: 200, request_id: "req_1", body: { x: [1] } },
      error: null,
    };
    expect(readResultLine(openai)).toBe(openai);
    const doubleword = { custom_id: "b", error: { code: null, message: '{"type":"NetworkError"}' } };
    expect(readResultLine(doubleword)).toBe(doubleword);
    expect(readResultLine({ custom_id: "c", response: { status_code: 404 } })).toMatchObject({ custom_id: "c" });
  });

  it.each([
    [null, "not an object"],
    [[{ custom_id: "a" }], "not an object"],
    [{ response: { status_code: 200 } }, "custom_id is not a string"],
    [{ custom_id: 7 }, "custom_id is not a string"],
    [{ custom_id: "a", response: "ok" }, "response is not an object"],
    [{ custom_id: "a", response: { status_code: "200" } }, "response.status_code is not an integer"],
    [{ custom_id: "a", response: { status_code: 200.5 } }, "response.status_code is not an integer"],
    [{ custom_id: "a", response: { status_code: 200, request_id: 5 } }, "response.request_id is not a string"],
    [{ custom_id: "a", error: "boom" }, "error is not an object"],
    [{ custom_id: "a", error: { code: 1 } }, "error.code is not a string"],
    [{ custom_id: "a", error: { message: {} } }, "error.message is not a string"],
  ])("names what is wrong with %j", (line, why) => {
    expect(readResultLine(line)).toBe(why);
  });
});
