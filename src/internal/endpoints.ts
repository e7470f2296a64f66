// What differs per endpoint: the cheap params check, how the request body is prepared for a batch line, and how a
// result body is shaped for the caller (as openai-node shapes it).
import { InvalidParamsError } from "../errors.js";

export const ENDPOINTS = ["/v1/chat/completions", "/v1/embeddings", "/v1/responses"] as const;
export type Endpoint = (typeof ENDPOINTS)[number];

export function isEndpoint(path: unknown): path is Endpoint {
  return (ENDPOINTS as readonly unknown[]).includes(path);
}

/** The first problem with a params envelope, as [param, message]; undefined when it is fine. */
type EnvelopeCheck = (p: Record<string, unknown>) => [string, string] | undefined;

// Envelopes only: the provider validates the rest, and per-line errors come back on the one call concerned. Checked
// by hand rather than with zod because this runs once per call: zod cost ~0.3 ms per 1,000 calls here (bench/).
const checkModel: EnvelopeCheck = (p) => {
  if (typeof p.model !== "string") return ["model", "model is required and must be a string"];
  if (!p.model) return ["model", "model must not be empty"];
  return undefined;
};
const envelopes: Record<Endpoint, EnvelopeCheck> = {
  "/v1/chat/completions": (p) => {
    if (!Array.isArray(p.messages)) return ["messages", "messages is required and must be an array"];
    if (!p.messages.length) return ["messages", "messages must not be empty"];
    return undefined;
  },
  "/v1/embeddings": (p) => {
    if (typeof p.input !== "string" && !Array.isArray(p.input))
      return ["input", "input is required (a string or an array)"];
    if (Array.isArray(p.input) && !p.input.length) return ["input", "input must not be empty"];
    if (p.encoding_format !== undefined && p.encoding_format !== "float" && p.encoding_format !== "base64") {
      return ["encoding_format", 'encoding_format must be "float" or "base64"'];
    }
    return undefined;
  },
  "/v1/responses": () => undefined,
};

const STREAM_MESSAGE =
  "stream: true is not supported: a Batch API returns each result whole, once its line is done. " +
  "Omit `stream` (or use `autobatch serve`, which re-wraps finished results as an SSE stream).";

export interface PreparedBody {
  /** The JSON text of the body as it goes into the batch line. */
  json: string;
  /** We asked for base64 embeddings on the caller's behalf and must decode them back to numbers. */
  decodeBase64: boolean;
}

/**
 * Validates params and serialises the upstream body (never with `stream`). Throws InvalidParamsError.
 * `asIs`: the caller shapes results itself (an SDK behind the batching fetch), so no base64 substitution.
 * `text`: the JSON text `params` was parsed from (serve). It becomes the line's body as it is, with no
 * stringify, when nothing is changed and it is safe in a line (see `verbatim`).
 */
export function prepareBody(endpoint: Endpoint, params: unknown, asIs = false, text?: string): PreparedBody {
  if (typeof params !== "object" || params === null || Array.isArray(params)) {
    throw new InvalidParamsError(
      `params must be an object (got ${params === null ? "null" : Array.isArray(params) ? "an array" : typeof params})`,
    );
  }
  const p = params as Record<string, unknown>;
  if (p.stream === true) throw new InvalidParamsError(STREAM_MESSAGE, "stream");
  const problem = checkModel(p) ?? envelopes[endpoint](p);
  if (problem) throw new InvalidParamsError(`Invalid params for ${endpoint}: ${problem[0]}: ${problem[1]}`, problem[0]);
  let body = p;
  let decodeBase64 = false;
  // As openai-node does: ask for base64 (4x smaller, far cheaper to parse) and hand back floats.
  if (!asIs && endpoint === "/v1/embeddings" && p.encoding_format === undefined) {
    body = { ...p, encoding_format: "base64" };
    decodeBase64 = true;
  }
  if ("stream" in body || "stream_options" in body) {
    body = { ...body };
    delete body.stream;
    delete body.stream_options;
  }
  if (text !== undefined && body === p && verbatim(text)) return { json: text, decodeBase64 };
  let json: string;
  try {
    json = JSON.stringify(body);
  } catch (err) {
    throw new InvalidParamsError(`params cannot be serialised to JSON: ${(err as Error).message}`);
  }
  return { json, decodeBase64 };
}

/**
 * Whether JSON text that parsed can go into a JSONL line unchanged: on one line (JSON allows CR and LF between
 * tokens), and with one `"model"` only, so the provider's parser cannot read another model than the one the line
 * was filed under (with duplicate keys JSON.parse keeps the last; some parsers keep the first or refuse the line).
 */
function verbatim(text: string): boolean {
  const model = text.indexOf('"model"');
  return model >= 0 && text.indexOf('"model"', model + 1) < 0 && text.indexOf("\n") < 0 && text.indexOf("\r") < 0;
}

/** Shapes a successful result body as openai-node would return it. */
export function shapeResult(
  endpoint: Endpoint,
  body: unknown,
  decodeBase64: boolean,
  requestId: string | null | undefined,
): unknown {
  if (typeof body !== "object" || body === null) return body;
  if (endpoint === "/v1/embeddings" && decodeBase64) decodeEmbeddings(body as { data?: unknown });
  if (endpoint === "/v1/responses") addOutputText(body as ResponseLike);
  if (requestId)
    Object.defineProperty(body, "_request_id", {
      value: requestId,
      enumerable: false,
      writable: true,
      configurable: true,
    });
  return body;
}

function decodeEmbeddings(body: { data?: unknown }): void {
  if (!Array.isArray(body.data)) return;
  for (const item of body.data as { embedding?: unknown }[]) {
    if (typeof item?.embedding !== "string") continue;
    const bytes = Buffer.from(item.embedding, "base64");
    // Buffer.from may return a pooled view at an offset a Float32Array cannot start at: copy it aligned then.
    const aligned = bytes.byteOffset % 4 === 0 ? bytes : Uint8Array.from(bytes);
    item.embedding = Array.from(new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >> 2));
  }
}

interface ResponseLike {
  output?: { type?: string; content?: { type?: string; text?: string }[] }[];
  output_text?: string;
}

/** openai-node's `addOutputText`: the concatenated text of every message's output_text parts. */
function addOutputText(body: ResponseLike): void {
  const texts: string[] = [];
  for (const item of Array.isArray(body.output) ? body.output : []) {
    if (item?.type !== "message" || !Array.isArray(item.content)) continue;
    for (const part of item.content)
      if (part?.type === "output_text" && typeof part.text === "string") texts.push(part.text);
  }
  body.output_text = texts.join("");
}
