// Reading request bodies for the servers (serve, the emulator); each caller words its own refusals.
import type { IncomingMessage } from "node:http";

/** Feeds the body to `onChunk`; rejects if the client goes away before the end (else the read would never end). */
export function consumeBody(req: IncomingMessage, onChunk: (chunk: Buffer) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    // 'close' follows every request, whole ones too (once answered): the error, stack and all, only for a cut one.
    let ended = false;
    req.on("data", onChunk);
    req.once("end", () => {
      ended = true;
      resolve();
    });
    req.once("error", reject);
    req.once("close", () => {
      if (!ended) reject(new Error("the client closed the connection before sending the whole body"));
    });
  });
}

/** What `readJson` refused: a body over the cap, or one that does not parse (its `detail` is then the parser's message). */
export type JsonBodyProblem = "too_large" | "invalid_json";

/**
 * The body parsed as JSON, of any JSON type; otherwise rejects with `refuse(problem)`. A declared Content-Length over
 * `maxBytes` is refused before any byte is read (the caller answers and closes the connection); a body that turns
 * out larger than declared, or has no length, is read and dropped past the cap before refusing: a client still
 * sending when the connection closes may never see the answer.
 */
export async function readJson(
  req: IncomingMessage,
  maxBytes: number,
  refuse: (problem: JsonBodyProblem, detail: string) => Error,
): Promise<unknown> {
  return (await readJsonText(req, maxBytes, refuse)).value;
}

/** As `readJson`, with the text the value was parsed from. */
export async function readJsonText(
  req: IncomingMessage,
  maxBytes: number,
  refuse: (problem: JsonBodyProblem, detail: string) => Error,
): Promise<{ value: unknown; text: string }> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) throw refuse("too_large", `declared ${declared} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  await consumeBody(req, (chunk) => {
    size += chunk.length;
    if (size <= maxBytes) chunks.push(chunk);
  });
  if (size > maxBytes) throw refuse("too_large", `larger than ${maxBytes} bytes`);
  // A body of one chunk (most are) is decoded where it lies.
  const text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString("utf8");
  try {
    return { value: JSON.parse(text), text };
  } catch (err) {
    throw refuse("invalid_json", (err as Error).message);
  }
}
