// Reads the body of a call sent to the proxy (the JSON object that becomes a batch line), refusing what is not one
// with the status a client can act on: 415 (not JSON), 413 (over the limit, by Content-Length or by bytes read),
// 400 (unparseable, or not an object). The reading itself is server-kit's `readJsonText`.
import type { IncomingMessage } from "node:http";
import { readJsonText } from "../server-kit/request-body.js";
import { isObject } from "../internal/schemas.js";
import { HttpError } from "./errors.js";

export type JsonObject = Record<string, unknown>;

/** The body parsed, and the text it was parsed from (the batch line may carry it as it is). */
export interface CallBody {
  body: JsonObject;
  text: string;
}

export async function readCallBody(req: IncomingMessage, maxBytes: number): Promise<CallBody> {
  const type = req.headers["content-type"];
  // No Content-Type at all is taken as JSON (some minimal clients omit it); any other type is refused.
  if (type !== undefined) {
    const media = type.split(";", 1)[0]!.trim().toLowerCase();
    if (media !== "application/json" && !media.endsWith("+json")) {
      throw new HttpError(
        415,
        {
          message: `Content-Type must be application/json (got ${JSON.stringify(type.slice(0, 100))}).`,
          code: "unsupported_media_type",
        },
        { retry: false },
      );
    }
  }
  const encoding = req.headers["content-encoding"];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity") {
    throw new HttpError(
      415,
      {
        message: `Content-Encoding ${JSON.stringify(encoding.slice(0, 50))} is not supported; send the body uncompressed.`,
        code: "unsupported_media_type",
      },
      { retry: false },
    );
  }
  const { value, text } = await readJsonText(req, maxBytes, (problem, detail) =>
    problem === "too_large"
      ? new HttpError(
          413,
          { message: `The request body is larger than the limit of ${maxBytes} bytes.`, code: "request_too_large" },
          // The unread rest of the body would be taken for the next request: the connection ends with the answer.
          { retry: false, headers: { connection: "close" } },
        )
      : new HttpError(
          400,
          { message: `We could not parse the JSON body of your request: ${detail}`, code: "invalid_json" },
          { retry: false },
        ),
  );
  if (!isObject(value)) {
    throw new HttpError(
      400,
      { message: "The request body must be a JSON object.", code: "invalid_json" },
      { retry: false },
    );
  }
  return { body: value, text };
}
