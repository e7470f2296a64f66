// serve's `/v1/models` passthrough: one GET below `/models` to the provider (no retries), its answer handed back
// whatever the status, its body read and redacted by the transport (capped at maxResponseBytes), so clients that
// probe models see the provider's list.
import type { RequestSpec, Transport } from "../internal/transport.js";

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
  return { status: res.status, headers: res.headers, body: await transport.text(spec, res) };
}
