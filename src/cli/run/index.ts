// `autobatch run`: check the whole input, then send what is not done yet, writing results as they arrive; a rerun
// of the same command continues where the last one stopped.
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { InvalidOptionsError } from "../../options.js";
import { UsageError } from "../args.js";
import { Execution, UnreachableError } from "./execute.js";
import { StoreError } from "../../store/errors.js";
import { scanInput, SHOWN_PROBLEMS } from "./input.js";
import { hasContent, ResultFile } from "./output.js";
import { parseRunArgs, USAGE, type RunSettings } from "./options.js";
import { renderPlan } from "./plan.js";
import { Progress } from "./progress.js";
import { checkRecord, readRecord, recordPath, StateMismatchError, writeRecord } from "./state.js";
import { renderSummary } from "./summary.js";

const NAME = "autobatch run";

/** Standard input copied to a temporary file, so it can be checked in full before anything is sent. */
async function spoolStdin(): Promise<{ path: string; remove: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), "autobatch-run-"));
  const path = join(dir, "stdin.jsonl");
  const remove = () => rmSync(dir, { recursive: true, force: true });
  // An interrupted run leaves by process.exit, past the caller's `finally`: the copy of every request goes too.
  process.once("exit", remove);
  await pipeline(process.stdin, createWriteStream(path));
  return { path, remove };
}

/** The command line to type to resume, without the key (which the shell or env must supply again). */
function resumeCommand(argv: string[]): string {
  const shown: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--api-key") i++;
    else if (!a.startsWith("--api-key=")) shown.push(/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);
  }
  return `autobatch run ${shown.join(" ")}`;
}

async function execute(s: RunSettings, argv: string[], inputName: string): Promise<number> {
  const scan = await scanInput(s.input, s.maxBatchBytes);
  if (scan.problemCount) {
    const more = scan.problemCount - SHOWN_PROBLEMS;
    console.error(
      `${NAME}: ${inputName} has ${scan.problemCount} invalid line${scan.problemCount === 1 ? "" : "s"}; nothing was uploaded\n` +
        scan.problems.map((p) => `  ${p}`).join("\n") +
        (more > 0 ? `\n  … and ${more} more` : ""),
    );
    return 2;
  }
  const recordFile = recordPath(s.state);
  const record = readRecord(recordFile);
  if (record) checkRecord(recordFile, record, scan.sha256, inputName);
  else if (hasContent(s.output) || hasContent(s.errors)) {
    throw new StateMismatchError(
      `${hasContent(s.output) ? s.output : s.errors} already has lines but there is no state at ${s.state}: ` +
        "not adding to results of unknown origin (remove the file, or give --state of the run that wrote it)",
    );
  }
  const done = new Set<string>();
  if (s.dryRun) {
    const files = [];
    for (const path of [s.output, s.errors]) if (hasContent(path)) files.push(await ResultFile.open(path, done));
    for (const f of files) f.close();
    console.log(renderPlan(inputName, scan, s, done.size));
    return 0;
  }
  if (!record) {
    writeRecord(recordFile, {
      version: 1,
      input: { sha256: scan.sha256, lines: scan.lines },
      output: s.output,
      errors: s.errors,
    });
  }
  const output = await ResultFile.open(s.output, done);
  const okBefore = done.size;
  const errors = await ResultFile.open(s.errors, done);
  const before = { succeeded: okBefore, failed: done.size - okBefore };
  for (const f of [output, errors]) {
    if (f.repairedBytes && !s.quiet)
      console.error(`${NAME}: ${f.path}: cut a torn last line (${f.repairedBytes} bytes)`);
  }
  const started = Date.now();
  const ex = new Execution(s, scan.sha256, done, output, errors);
  const progress = s.quiet
    ? undefined
    : new Progress(process.stderr, () => ex.snapshot(scan.lines, before), s.progressIntervalMs);

  // The first Ctrl-C ends the run (detach or cancel, below); a second one exits at once.
  let interrupts = 0;
  let onSigint = () => {};
  const interrupted = new Promise<"interrupted">((resolve) => {
    onSigint = () => {
      if (interrupts++ > 0) process.exit(130);
      resolve("interrupted");
    };
  });
  process.on("SIGINT", onSigint);
  const outcome = await Promise.race([ex.run().then(() => "done" as const), interrupted]);
  if (outcome === "interrupted") {
    progress?.clear();
    const resume = resumeCommand(argv);
    const again = inputName === "standard input" ? " (with the same standard input)" : "";
    if (s.cancelOnInterrupt) {
      console.error(`${NAME}: interrupted; cancelling the running batches…`);
      await ex.interrupt(true);
      console.error(`${NAME}: cancelled. Lines already written are kept; to send the rest: ${resume}${again}`);
    } else {
      await ex.interrupt(false);
      console.error(`${NAME}: detached; the batches go on upstream. Resume with: ${resume}${again}`);
    }
    output.close();
    errors.close();
    // Detached, the engine's polls would keep the process alive: leave now.
    process.exit(130);
  }
  process.off("SIGINT", onSigint);
  progress?.stop();
  output.close();
  errors.close();
  const t = ex.tally;
  if (!s.quiet) {
    console.error(
      renderSummary(
        {
          succeeded: before.succeeded + t.succeeded,
          failed: before.failed + t.failed,
          resumed: before.succeeded + before.failed,
          retried: t.retried,
          unsent: t.unsent,
          total: scan.lines,
          batches: t.batches,
          tokensIn: t.tokensIn,
          tokensOut: t.tokensOut,
          wallMs: Date.now() - started,
        },
        s,
      ),
    );
    if (t.unsentReason) console.error(`  last submit error: ${t.unsentReason}`);
  }
  return before.failed + t.failed + t.unsent > 0 ? 1 : 0;
}

export const command = {
  async run(argv: string[]): Promise<number> {
    let s: RunSettings | undefined;
    try {
      s = parseRunArgs(argv);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      console.error(`${NAME}: ${err.message}\n\nRun \`autobatch run --help\` for the options.`);
      return 2;
    }
    if (!s) {
      console.log(USAGE);
      return 0;
    }
    const stdin = s.input === "-" ? await spoolStdin() : undefined;
    try {
      return await execute(stdin ? { ...s, input: stdin.path } : s, argv, stdin ? "standard input" : s.input);
    } catch (err) {
      // A store that cannot be opened (corrupt, not a store, newer version) is bad input too.
      if (err instanceof StateMismatchError || err instanceof InvalidOptionsError || err instanceof StoreError) {
        console.error(`${NAME}: ${err.message}`);
        return 2;
      }
      if (err instanceof UnreachableError) {
        console.error(`${NAME}: ${err.message}`);
        return 1;
      }
      if ((err as { code?: string }).code === "ENOENT") {
        console.error(`${NAME}: ${(err as Error).message}`);
        return 2;
      }
      throw err;
    } finally {
      stdin?.remove();
    }
  },
};
