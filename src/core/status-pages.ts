// Statuses of running batches read by listing: `GET /batches` pages, newest first, `after` paging, so one request
// answers for up to a page of batches instead of one each. It reads at most ⌈running / PAGE⌉ pages and stops early
// once every batch asked for was seen, the list ends, or a page reaches past the oldest of them (nothing older is
// ours). A batch not on the pages read (too old, past the page budget, not on the list yet: lists lag) is left to
// its own by-id read, as is everything when the list fails. A provider without the list route is not asked again.
import { APIError } from "../errors.js";
import type { BatchHttp } from "./slots.js";
import { batchListSchema, type BatchEnvelope } from "../internal/schemas.js";

/** Batches per list page: OpenAI's maximum (Doubleword's is 101). */
export const PAGE = 100;

/** What the list needs of a running batch. */
export interface Listed {
  readonly id: string | undefined;
  /** The provider's `created_at` (s), if it said. */
  readonly listedAt: number | undefined;
}

/** Statuses that mean the provider has no usable list route: asking again would fail the same way. */
const NO_LIST = new Set([400, 404, 405, 501]);

export class StatusPages {
  readonly #http: BatchHttp;
  #usable = true;

  constructor(http: BatchHttp) {
    this.#http = http;
  }

  /**
   * The batch objects of `wanted` found on the list, by id. `running` (all batches tracked, including those not
   * asked for now) sets the page budget. An empty map when listing is off, not worth it, or failed.
   */
  async read(wanted: readonly Listed[], running: number, signal: AbortSignal): Promise<Map<string, BatchEnvelope>> {
    const found = new Map<string, BatchEnvelope>();
    const missing = new Set<string>();
    let oldest = Number.POSITIVE_INFINITY;
    for (const b of wanted) {
      if (b.id === undefined) continue;
      missing.add(b.id);
      oldest = Math.min(oldest, b.listedAt ?? Number.NEGATIVE_INFINITY);
    }
    // One batch costs one request either way; its own read is the smaller answer.
    if (!this.#usable || missing.size < 2) return found;
    const budget = Math.ceil(running / PAGE);
    let after: string | undefined;
    try {
      for (let page = 0; page < budget && missing.size > 0; page++) {
        const query: Record<string, string | number> = after === undefined ? { limit: PAGE } : { limit: PAGE, after };
        const list = await this.#http.json({ method: "GET", path: "/batches", query, signal }, batchListSchema);
        for (const b of list.data) {
          if (!missing.delete(b.id)) continue;
          found.set(b.id, b);
        }
        const last = list.data.at(-1);
        if (!last || list.has_more === false) break;
        if (typeof last.created_at === "number" && last.created_at < oldest) break;
        after = last.id;
      }
    } catch (err) {
      if (err instanceof APIError && err.status !== undefined && NO_LIST.has(err.status)) this.#usable = false;
    }
    return found;
  }
}
