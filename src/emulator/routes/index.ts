// The /v1 route table (docs/protocols.md §1-§3, §7), for both flavors, and its matcher.
import { cancelBatch, createBatch, getBatch, listBatches } from "./batches.js";
import type { Handler } from "./context.js";
import { deleteFile, getContent, getFile, listFiles, uploadFile } from "./files.js";
import { getModel, listModels } from "./models.js";

export interface Route {
  method: string;
  /** Path segments after /v1; ":id" matches one segment. */
  segments: string[];
  key: string;
  handler: Handler;
}

function route(method: string, path: string, handler: Handler): Route {
  return { method, segments: path.split("/").filter(Boolean).slice(1), key: `${method} ${path}`, handler };
}

export const ROUTES: Route[] = [
  route("POST", "/v1/files", uploadFile),
  route("GET", "/v1/files", listFiles),
  route("GET", "/v1/files/:id", getFile),
  route("DELETE", "/v1/files/:id", deleteFile),
  route("GET", "/v1/files/:id/content", getContent),
  route("POST", "/v1/batches", createBatch),
  route("GET", "/v1/batches", listBatches),
  route("GET", "/v1/batches/:id", getBatch),
  route("POST", "/v1/batches/:id/cancel", cancelBatch),
  route("GET", "/v1/models", listModels),
  route("GET", "/v1/models/:id", getModel),
];

/** Matches a method and /v1 path (query stripped, trailing slashes ignored). */
export function matchRoute(method: string, path: string): { route: Route; id: string } | undefined {
  const parts = path.split("/").filter(Boolean);
  if (parts[0] !== "v1") return undefined;
  const rest = parts.slice(1);
  for (const r of ROUTES) {
    if (r.method !== method || r.segments.length !== rest.length) continue;
    let id = "";
    const ok = r.segments.every((seg, i) => {
      if (seg === ":id") {
        try {
          id = decodeURIComponent(rest[i]);
        } catch {
          id = rest[i];
        }
        return true;
      }
      return seg === rest[i];
    });
    if (ok) return { route: r, id };
  }
  return undefined;
}
