// The run's record beside its store (`STATE.run.json`): which input (by hash) the output and errors files belong to,
// so a rerun with another input is refused instead of mixing two runs' results. Written atomically (temp, rename).
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { z } from "zod";

const recordSchema = z.object({
  version: z.literal(1),
  input: z.object({ sha256: z.string(), lines: z.number() }),
  output: z.string(),
  errors: z.string(),
});
export type RunRecord = z.infer<typeof recordSchema>;

/** A rerun that does not match the record, or a record that cannot be read: the command exits 2. */
export class StateMismatchError extends Error {}

/** Where the record of a run with store `state` is kept. */
export const recordPath = (state: string): string => `${state}.run.json`;

export function readRecord(path: string): RunRecord | undefined {
  if (!existsSync(path)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new StateMismatchError(`${path} is not a run state file (${(err as Error).message})`);
  }
  const r = recordSchema.safeParse(parsed);
  if (!r.success) throw new StateMismatchError(`${path} is not a run state file this version can read`);
  return r.data;
}

export function writeRecord(path: string, record: RunRecord): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(tmp, path);
}

/** Refuses a rerun whose input differs from the one the state was made for. */
export function checkRecord(path: string, record: RunRecord, sha256: string, inputName: string): void {
  if (record.input.sha256 !== sha256) {
    throw new StateMismatchError(
      `${inputName} is not the input ${path} was made for (sha256 ${sha256.slice(0, 12)}… here, ` +
        `${record.input.sha256.slice(0, 12)}… recorded, ${record.input.lines} lines): ` +
        "rerun with the original input, or choose another --output (and --state) for this one",
    );
  }
}
