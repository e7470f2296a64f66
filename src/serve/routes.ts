// Which handler a request goes to. Matching ignores the query string and trailing slashes, so clients that append
// either (`?api-version=…`, `/v1/models/`) still land where they mean to.
import type { Endpoint } from "../internal/endpoints.js";
import { HttpError } from "./errors.js";

export type Route =
  | { kind: "batch"; endpoint: Endpoint }
  /** `path` is below the upstream base URL, each segment checked and re-encoded; `query` is the client's. */
  | { kind: "models"; path: string; query: Record<string, string> }
  | { kind: "health" };

const BATCHED: Record<string, Endpoint> = {
  "/v1/chat/completions": "/v1/chat/completions",
  "/v1/embeddings": "/v1/embeddings",
  "/v1/responses": "/v1/responses",
};

/** `/a//b/?x=1` → `/a/b`. */
export function normalizePath(url: string): string {
  const path = url.split(/[?#]/, 1)[0] ?? "";
  return `/${path.split("/").filter(Boolean).join("/")}`;
}

/** The route for a request, or the 400/404/405 to answer instead. */
export function route(method: string, url: string): Route | HttpError {
  // The batched paths as clients send them need no normalising (one split and join fewer per request).
  const path = BATCHED[url] ? url : normalizePath(url);
  const endpoint = BATCHED[path];
  if (endpoint) return method === "POST" ? { kind: "batch", endpoint } : notAllowed(method, path, "POST");
  if (path === "/v1/models" || path.startsWith("/v1/models/")) {
    if (method !== "GET") return notAllowed(method, path, "GET");
    const modelPath = modelsPath(path.slice("/v1/models".length));
    if (modelPath instanceof HttpError) return modelPath;
    const q = url.indexOf("?");
    const query = Object.fromEntries(new URLSearchParams(q < 0 ? "" : url.slice(q + 1).split("#", 1)[0]));
    return { kind: "models", path: modelPath, query };
  }
  if (path === "/health")
    return method === "GET" || method === "HEAD" ? { kind: "health" } : notAllowed(method, path, "GET, HEAD");
  const hint =
    BATCHED[`/v1${path}`] || path === "/models" ? ` (did you mean /v1${path}? The base URL must end in /v1)` : "";
  return new HttpError(
    404,
    {
      message: `Unknown route: ${method} ${path}${hint}. This proxy serves POST /v1/chat/completions, POST /v1/embeddings, POST /v1/responses, GET /v1/models and GET /health.`,
      code: "unknown_url",
    },
    { retry: false },
  );
}

/**
 * `/<seg>/<seg>…` below /v1/models → `/models/<seg>/…`, each segment decoded, checked and re-encoded. The upstream
 * (or anything between it and us) would resolve a `..` segment, raw or percent-encoded, to a path outside /models
 * that the proxy's key can read, such as /files or /batches. An encoded `/` (openai-node sends `org/model` ids as
 * `org%2Fmodel`) is forwarded encoded, but the pieces it separates must pass the same checks, in case a server
 * decodes it into a separator.
 */
function modelsPath(rest: string): string | HttpError {
  let out = "/models";
  for (const raw of rest.split("/").filter(Boolean)) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return badModelPath(`malformed percent-encoding in '${raw}'`);
    }
    if (segment.includes("\\")) return badModelPath("backslashes are not allowed");
    if (segment.split("/").some((piece) => piece === "" || piece === "." || piece === "..")) {
      return badModelPath("empty, '.' and '..' segments (raw or percent-encoded) are not allowed");
    }
    out += `/${encodeURIComponent(segment)}`;
  }
  return out;
}

function badModelPath(why: string): HttpError {
  return new HttpError(
    400,
    { message: `Invalid model path under /v1/models: ${why}.`, code: "invalid_path" },
    { retry: false },
  );
}

function notAllowed(method: string, path: string, allow: string): HttpError {
  return new HttpError(
    405,
    { message: `Method ${method} is not allowed on ${path}; use ${allow}.`, code: "method_not_allowed" },
    { retry: false, headers: { allow } },
  );
}
