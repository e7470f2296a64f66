// Which store a `store` option names: a postgres:// or postgresql:// URL → PostgreSQL, anything else → a SQLite file.
// Each implementation (and its driver) is imported only when a store of its kind is opened.
import { resolve } from "node:path";
import { echoable } from "../internal/safe-url.js";
import { StoreError } from "./errors.js";
import type { Store, StoreOptions } from "./types.js";

export function isPostgresURL(spec: string): boolean {
  return /^postgres(ql)?:\/\//i.test(spec);
}

export async function openStore(spec: string, options: StoreOptions = {}): Promise<Store> {
  if (typeof spec !== "string" || spec.trim() === "")
    throw new StoreError(String(spec), "store must be a file path or a postgres:// URL");
  if (isPostgresURL(spec)) return (await import("./postgres.js")).openPostgresStore(spec, options);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec))
    throw new StoreError(echoable(spec), "is a URL of a kind no store speaks: use a file path or a postgres:// URL");
  return (await import("./sqlite.js")).openSqliteStore(resolve(spec), options);
}
