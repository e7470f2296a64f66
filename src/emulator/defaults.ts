// The defaults of EmulatorOptions, applied by startEmulator() and quoted by `autobatch emulator --help`.

const MiB = 1024 * 1024;

export const EMULATOR_DEFAULTS = {
  port: 0,
  host: "127.0.0.1",
  flavor: "doubleword",
  contentCursorParam: "skip",
  concurrency: 64,
  upstreamConcurrency: 8,
  latencyMs: 0,
  validationMs: 0,
  completionWindows: ["24h", "1h"],
  maxFileBytes: 100 * MiB,
  maxLines: 50_000,
  maxStoredBytes: 1024 * MiB,
  listLagMs: 0,
} as const;
