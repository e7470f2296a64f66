// Which handler a request goes to. Matching ignores the query string and trailing slashes, so clients that append
// either (`?api-version=…`, `/v1/models/`) still land where they mean to.
import type { Endpoint } from "../endpoints.js";
import { HttpError } from "./errors.js";

export type Route =
  | { kind: "batch"; endpoint: Endpoint }
  | { kind: "models"; path: string }
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

/** The route for a request, or the 404/405 to answer instead. */
export function route(method: string, url: string): Route | HttpError {
  const path = normalizePath(url);
  const endpoint = BATCHED[path];
  if (endpoint) return method === "POST" ? { kind: "batch", endpoint } : notAllowed(method, path, "POST");
  if (path === "/v1/models" || /^\/v1\/models\/.+$/.test(path)) {
    return method === "GET" ? { kind: "models", path: path.slice("/v1".length) } : notAllowed(method, path, "GET");
  }
  if (path === "/health") return method === "GET" || method === "HEAD" ? { kind: "health" } : notAllowed(method, path, "GET, HEAD");
  const hint = BATCHED[`/v1${path}`] || path === "/models" ? ` (did you mean /v1${path}? The base URL must end in /v1)` : "";
  return new HttpError(404, {
    message: `Unknown route: ${method} ${path}${hint}. This proxy serves POST /v1/chat/completions, POST /v1/embeddings, POST /v1/responses, GET /v1/models and GET /health.`,
    code: "unknown_url",
  }, { retry: false });
}

function notAllowed(method: string, path: string, allow: string): HttpError {
  return new HttpError(405, { message: `Method ${method} is not allowed on ${path}; use ${allow}.`, code: "method_not_allowed" }, { retry: false, headers: { allow } });
}
