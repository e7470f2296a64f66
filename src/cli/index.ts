#!/usr/bin/env node
// The `autobatch` command: one subcommand per surface, each owning its own flags.
import { pathToFileURL } from "node:url";
import { realpathSync } from "node:fs";
import { createRequire } from "node:module";

type Command = { run(argv: string[]): Promise<number | void> };

const commands: Record<string, () => Promise<Command>> = {
  batches: async () => (await import("./batches.js")).command,
  emulator: async () => (await import("./emulator.js")).command,
  run: async () => (await import("./run/index.js")).command,
  serve: async () => (await import("./serve.js")).command,
};

function usage(): string {
  return [
    "usage: autobatch <command> [options]",
    "",
    "commands:",
    "  batches    list, inspect, cancel a batch, or download its results (--follow while it runs)",
    "  emulator   run a local Batch API server (no network, no key)",
    "  run        send a JSONL file of requests through a Batch API, resumable, with progress",
    "  serve      run an OpenAI-compatible proxy that batches every call it receives",
    "",
    "Run `autobatch <command> --help` for a command's options; `autobatch --version` prints the version.",
  ].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "-v" || name === "--version") {
    // The same package.json from src/cli (tsx) and dist/cli (the published bin).
    console.log((createRequire(import.meta.url)("../../package.json") as { version: string }).version);
    return 0;
  }
  if (!name || name === "-h" || name === "--help") {
    console.log(usage());
    return name ? 0 : 1;
  }
  const load = commands[name];
  if (!load) {
    console.error(`autobatch: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  const code = await (await load()).run(rest);
  return typeof code === "number" ? code : 0;
}

// Run only when executed directly (also through the npm bin symlink), not when imported by tests.
const entry = process.argv[1] ? pathToFileURL(realpathSync(process.argv[1])).href : "";
if (import.meta.url === entry) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (code !== 0) process.exitCode = code;
    },
    (err: unknown) => {
      console.error(`autobatch: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
