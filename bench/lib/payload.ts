// The request every scenario sends: a ~1 KB chat body, distinct per call (the index is in the prompt, so a result can
// be traced back to its caller through the emulator's echo).
export const MODEL = "bench-model";

const SYSTEM = "You are a careful assistant. Answer in one short paragraph, cite nothing, and keep the tone neutral.";
const WORDS =
  "batch queue window poll settle upload cursor line file result model token latency buffer flush scheduler";
// Enough words that the whole body, serialised, is about 1,000 bytes.
const FILLER = Array.from({ length: 200 }, (_, i) => WORDS.split(" ")[(i * 7) % 16]).join(" ");
const TEXT = FILLER.slice(0, 760);

export function userText(i: number): string {
  return `Request ${i}. ${TEXT}`;
}

export function chatParams(i: number, model = MODEL) {
  return {
    model,
    messages: [
      { role: "system" as const, content: SYSTEM },
      { role: "user" as const, content: userText(i) },
    ],
    max_tokens: 64,
    temperature: 0,
  };
}

/** The call index a prompt (or the emulator's "echo: " of it) was made for. */
export function indexOf(text: string): number {
  const m = /Request (\d+)\./.exec(text);
  if (!m) throw new Error(`no call index in ${JSON.stringify(text.slice(0, 60))}`);
  return Number(m[1]);
}
