// What the main thread did during each long stall of a profiled throughput run: the share of the stall's samples
// spent in the garbage collector, and the functions with the most self time. Reads the result line the scenario
// printed (its `longStalls` and `profileClockUs`) and the CPU profile it wrote:
//   BENCH_PROFILE=/tmp/prof node --import tsx --expose-gc bench/scenarios/throughput.ts --calls 1000000 \
//     --batch-size 50000 > /tmp/run.json
//   node --import tsx bench/stall-profile.ts /tmp/run.json /tmp/prof/throughput-1000000.cpuprofile
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [resultPath, profilePath] = process.argv.slice(2);
if (!resultPath || !profilePath) throw new Error("usage: stall-profile.ts RESULT.json PROFILE.cpuprofile");
const result = JSON.parse(readFileSync(resultPath, "utf8").trim().split("\n").at(-1)!) as {
  longStalls: { ms: number; at: number; after: string }[];
  profileClockUs?: number;
};
if (result.profileClockUs === undefined) throw new Error(`${resultPath}: no profileClockUs (run with BENCH_PROFILE)`);
const profile = JSON.parse(readFileSync(profilePath, "utf8")) as Profile;
const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
const times: number[] = [];
let t = profile.startTime;
for (const d of profile.timeDeltas) times.push((t += d));

for (const stall of result.longStalls) {
  const end = stall.at * 1000 + result.profileClockUs;
  const start = end - (stall.ms + 10) * 1000;
  const self = new Map<string, number>();
  let total = 0;
  for (let k = 1; k < times.length; k++) {
    if (times[k]! < start || times[k]! > end) continue;
    const f = frames.get(profile.samples[k]!)!;
    const name = `${f.functionName || "(anonymous)"} ${f.url.split("/").at(-1)}:${f.lineNumber + 1}`;
    const ms = (times[k]! - times[k - 1]!) / 1000;
    self.set(name, (self.get(name) ?? 0) + ms);
    total += ms;
  }
  const gc = [...self].find(([name]) => name.startsWith("(garbage collector)"))?.[1] ?? 0;
  const top = [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([name, ms]) => `${name} ${ms.toFixed(0)} ms`);
  console.log(
    `${stall.ms} ms stall after ${stall.after}: GC ${((100 * gc) / (total || 1)).toFixed(0)} % of ${total.toFixed(0)} ms sampled; ${top.join(", ")}`,
  );
}
