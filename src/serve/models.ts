// serve's `/v1/models` passthrough: one GET below `/models` to the provider (no retries), its answer handed back
// whatever the status, with the key redacted from the body, so clients that probe models see the provider's list.
import { APIError } from "../errors.js";
import { toHeaders, type RequestSpec, type Transport } from "../internal/transport.js";

/** Largest body read (model lists are far smaller). */
const MAX_MODELS_BODY = 10_000_000;

export interface PassthroughReply {
  status: number;
  headers: Headers;
  body: string;
}

export async function passthroughModels(
  transport: Transport,
  path: string,
  query?: Record<string, string>,
  signal?: AbortSignal,
): Promise<PassthroughReply> {
  const spec: RequestSpec = { method: "GET", path, query, signal };
  // Checked on the resolved URL too, so no `..` or encoded form of it can reach another route on this key.
  const models = `${transport.basePath}/models`;
  const resolved = path === "/models" || path.startsWith("/models/") ? transport.url(spec).pathname : undefined;
  if (resolved !== models && !resolved?.startsWith(`${models}/`))
    throw new TypeError(`not a path below /models: ${path}`);
  const res = await transport.send(spec, true);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_MODELS_BODY) {
        res.body.destroy();
        throw new APIError(
          undefined,
          undefined,
          `GET ${path}: the provider's answer is larger than ${MAX_MODELS_BODY} bytes`,
        );
      }
      chunks.push(chunk);
    }
  } catch (err) {
    throw err instanceof APIError ? err : transport.connectionError(spec, err);
  }
  return {
    status: res.statusCode,
    headers: toHeaders(res.headers),
    body: transport.redact(Buffer.concat(chunks, size).toString("utf8")),
  };
}
