// Flag parsing shared by the subcommands: strict parseArgs, and values checked with messages that name the flag.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { echoable } from "../internal/safe-url.js";

/** A wrong flag or value: the command prints the message and exits 2. */
export class UsageError extends Error {}

type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

type Flags<O extends FlagSpec> = ReturnType<
  typeof parseArgs<{ args: string[]; strict: true; allowPositionals: false; options: O }>
>["values"];

export function parseFlags<const O extends FlagSpec>(argv: string[], options: O): Flags<O> {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Like parseFlags, for commands that also take positional arguments (files, ids). */
export function parseCommand<const O extends FlagSpec>(
  argv: string[],
  options: O,
): { values: Flags<O>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, strict: true, allowPositionals: true, options });
    return { values: values as Flags<O>, positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Repeated `--flag KEY=VALUE` pairs as a record. */
export function keyValues(flag: string, pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--${flag}: expected KEY=VALUE, got '${pair}'`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

export function number(flag: string, raw: string, { integer = false, min = 0, exclusive = false } = {}): number {
  const v = raw.trim() === "" ? NaN : Number(raw);
  if (!Number.isFinite(v)) throw new UsageError(`--${flag}: expected a number, got '${raw}'`);
  if (integer && !Number.isInteger(v)) throw new UsageError(`--${flag}: expected a whole number, got '${raw}'`);
  if (exclusive ? v <= min : v < min)
    throw new UsageError(`--${flag}: expected a number ${exclusive ? ">" : ">="} ${min}, got '${raw}'`);
  return v;
}

export function port(flag: string, raw: string): number {
  const v = number(flag, raw, { integer: true });
  if (v > 65535) throw new UsageError(`--${flag}: expected a port number up to 65535, got '${raw}'`);
  return v;
}

export function oneOf<T extends string>(flag: string, raw: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(raw))
    throw new UsageError(`--${flag}: expected one of ${allowed.join(", ")}, got '${raw}'`);
  return raw as T;
}

/** An http(s) URL that really parses (checked here, not after the server is up); echoed without credentials. */
export function httpURL(flag: string, raw: string): string {
  let ok = /^https?:\/\/[^/]/i.test(raw);
  try {
    new URL(raw);
  } catch {
    // WHATWG parsing repairs `https:/host`, so the prefix is checked above as written.
    ok = false;
  }
  if (!ok) throw new UsageError(`--${flag}: expected an http(s) URL, got '${echoable(raw)}'`);
  return raw;
}
