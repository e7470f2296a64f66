// `limit` / `after` paging of the list routes.
import { EmulatorHttpError } from "../reply.js";
import { UUID } from "../store.js";
import type { RouteContext } from "./context.js";

export function pageParams(
  ctx: RouteContext,
  query: URLSearchParams,
  max: number,
  dflt: number,
): { limit: number; after?: string } {
  const raw = query.get("limit");
  let limit = dflt;
  if (raw !== null) {
    if (!/^[+-]?\d+$/.test(raw.trim())) {
      throw new EmulatorHttpError(
        400,
        ctx.flavor === "openai"
          ? `Invalid 'limit': '${raw}'.`
          : "Failed to deserialize query string: limit: invalid digit found in string",
        { param: "limit" },
      );
    }
    limit = Math.min(max, Math.max(1, Number(raw)));
  }
  const after = query.get("after") ?? undefined;
  return after ? { limit, after } : { limit };
}

/** One page after the cursor; a malformed Doubleword cursor is ignored, an unknown one ends the list. */
export function page<T extends { id: string }>(
  ctx: RouteContext,
  items: T[],
  limit: number,
  after?: string,
): { data: T[]; hasMore: boolean } {
  let start = 0;
  if (after !== undefined && !(ctx.flavor === "doubleword" && !UUID.test(after))) {
    const i = items.findIndex((x) => x.id === after);
    if (i < 0) return { data: [], hasMore: false };
    start = i + 1;
  }
  const data = items.slice(start, start + limit);
  return { data, hasMore: start + limit < items.length };
}
