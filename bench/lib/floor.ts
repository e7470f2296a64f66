// The JSON floor: the least CPU any client must spend per call — serialise the request body once, parse the result
// line once. The same bodies as the client sent and result lines shaped exactly like the emulator's.
import { chatParams, userText } from "./payload.js";

const CHUNK = 10_000;

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with node --expose-gc");
  gc();
}

export interface Floor {
  /** CPU ms to JSON.stringify every request body. */
  stringifyMs: number;
  /** CPU ms to JSON.parse every result line. */
  parseMs: number;
  totalMs: number;
}

interface ResultLine {
  custom_id: string;
  response: { body: { choices: { message: Record<string, unknown> }[] } & Record<string, unknown> } & Record<
    string,
    unknown
  >;
}

/** Result line `i`, built from a real line of the emulator's output with this call's custom_id and echo. */
function resultLine(template: ResultLine, i: number): string {
  const body = template.response.body;
  const choice = body.choices[0];
  return JSON.stringify({
    ...template,
    custom_id: template.custom_id.replace(/[^-]+$/, i.toString(36)),
    response: {
      ...template.response,
      body: { ...body, choices: [{ ...choice, message: { ...choice.message, content: `echo: ${userText(i)}` } }] },
    },
  });
}

function once(n: number, template: ResultLine): Floor {
  let stringifyMs = 0;
  let parseMs = 0;
  let sink = 0;
  // Inputs are built untimed, a chunk at a time, so the floor needs little memory and times only JSON work.
  for (let start = 0; start < n; start += CHUNK) {
    const end = Math.min(n, start + CHUNK);
    const params = [];
    const lines = [];
    for (let i = start; i < end; i++) {
      params.push(chatParams(i));
      lines.push(resultLine(template, i));
    }
    // Promote the inputs to the old generation first, so the timed loops' scavenges copy nothing of the bench's.
    collect();
    let t = process.cpuUsage();
    for (const p of params) sink += JSON.stringify(p).length;
    let u = process.cpuUsage(t);
    stringifyMs += (u.user + u.system) / 1000;
    t = process.cpuUsage();
    for (const l of lines) sink += (JSON.parse(l) as ResultLine).custom_id.length;
    u = process.cpuUsage(t);
    parseMs += (u.user + u.system) / 1000;
  }
  if (sink === 0) throw new Error("unreachable: keeps the loops from being optimised away");
  return { stringifyMs, parseMs, totalMs: stringifyMs + parseMs };
}

/** Best of `runs`: the floor is a lower bound, so noise should not raise it. */
export function measureFloor(n: number, templateLine: string, runs = 3): Floor {
  const template = JSON.parse(templateLine) as ResultLine;
  let best: Floor | undefined;
  for (let r = 0; r < runs; r++) {
    const f = once(n, template);
    if (!best || f.totalMs < best.totalMs) best = f;
  }
  return best!;
}
