// The emulator process the bench talks to: `startEmulator` from the built package, as `autobatch emulator` runs it,
// but with a store bound above any bench's data. The CLI has no flag for `maxStoredBytes`; at its 1 GiB default the
// 500k-call run evicts finished batches before the bench can read their final file sizes.
import { startEmulator, type EmulatorOptions } from "autobatch/emulator";

const options = JSON.parse(process.argv[2] ?? "{}") as EmulatorOptions;
const emulator = await startEmulator({ port: 0, host: "127.0.0.1", ...options, maxStoredBytes: 16 * 2 ** 30 });
console.log(`bench emulator listening on ${emulator.baseURL}`);
const stop = () => void emulator.close().then(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
