// The SQLite driver: the runtime's `node:sqlite` where it exists (Node >= 22.13), else the optional peer
// `better-sqlite3`. Both are synchronous and share the few calls used here; either is loaded only when a SQLite
// store is opened.
import { StoreError } from "./errors.js";

export interface SqliteStatement {
  run(...params: SqlValue[]): unknown;
  get(...params: SqlValue[]): unknown;
  all(...params: SqlValue[]): unknown[];
}

export interface SqliteDatabase {
  exec(sql: string): void;
  prepare(sql: string): SqliteStatement;
  close(): void;
}

export type SqlValue = string | number | null;

type Open = (file: string) => SqliteDatabase;

export async function loadSqlite(file: string): Promise<Open> {
  const builtin = nodeSqlite();
  if (builtin) return (f) => new builtin.DatabaseSync(f) as SqliteDatabase;
  try {
    const mod = (await import("better-sqlite3")) as { default: new (f: string) => SqliteDatabase };
    return (f) => new mod.default(f);
  } catch (err) {
    throw new StoreError(
      file,
      `a SQLite store needs Node.js >= 22.13 (node:sqlite) or the better-sqlite3 package (npm install better-sqlite3): ${(err as Error).message}`,
      { cause: err },
    );
  }
}

interface NodeSqlite {
  DatabaseSync: new (file: string) => unknown;
}

/** `node:sqlite` without the ExperimentalWarning its first load prints (it is the documented, supported path here). */
function nodeSqlite(): NodeSqlite | undefined {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  if (major < 22 || (major === 22 && minor < 13)) return undefined;
  const emit = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === "string" ? warning : warning.message;
    if (/sqlite/i.test(text)) return;
    (emit as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    return process.getBuiltinModule?.("node:sqlite") as NodeSqlite | undefined;
  } finally {
    process.emitWarning = emit;
  }
}
