// A real PostgreSQL server for the tests that need one: initdb into a temporary folder, listening on 127.0.0.1 on a
// free port (unix sockets in the folder), stopped and deleted afterwards. initdb refuses root, so as root it runs as
// the `postgres` OS user. Missing binaries fail loudly: PostgreSQL tests are never skipped in silence.
import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

export interface PgServer {
  /** A URL for database `db` (created by `createDatabase`). */
  url(db: string): string;
  /** Creates a fresh empty database and returns its URL. */
  createDatabase(): Promise<string>;
  stop(): void;
}

function binDir(): string {
  const env = process.env.AUTOBATCH_PG_BIN;
  if (env) return env;
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  const found = versions.map((v) => join(root, v, "bin")).find((d) => existsSync(join(d, "initdb")));
  if (!found)
    throw new Error(
      "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (or $AUTOBATCH_PG_BIN): " +
        "run scripts/ci-system-packages.sh (apt-get install postgresql) — the PostgreSQL tests cannot run without them",
    );
  return found;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function startPostgres(): Promise<PgServer> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), "autobatch-pg-"));
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) => {
    const argv = asRoot ? ["-u", "postgres", "--", join(bin, cmd), ...args] : args;
    execFileSync(asRoot ? "runuser" : join(bin, cmd), argv, { stdio: "pipe" });
  };
  if (asRoot) {
    const { uid, gid } = userIds("postgres");
    chownSync(dir, uid, gid);
  }
  const data = join(dir, "data");
  const port = await freePort();
  try {
    run("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
    const opts = `-k ${dir} -h 127.0.0.1 -p ${port} -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
    run("pg_ctl", ["-D", data, "-o", opts, "-l", join(dir, "log"), "-w", "-t", "30", "start"]);
  } catch (err) {
    const out = (err as { stderr?: Buffer }).stderr?.toString() ?? "";
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not start a PostgreSQL server for the tests: ${(err as Error).message}\n${out}`);
  }
  const url = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  let n = 0;
  return {
    url,
    async createDatabase() {
      const name = `t${process.pid}_${n++}`;
      const admin = new pg.Client({ connectionString: url("postgres") });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      return url(name);
    },
    stop() {
      try {
        run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

function userIds(name: string): { uid: number; gid: number } {
  const uid = Number(execFileSync("id", ["-u", name]).toString().trim());
  const gid = Number(execFileSync("id", ["-g", name]).toString().trim());
  return { uid, gid };
}
