// What handlers return: a value the server writes, so faults can replace or cut it after the fact.
import type { Flavor } from "./types.js";

export interface BodyWriter {
  /** Resolves when the chunk may be followed by another (backpressure); false once the socket is gone. */
  write(chunk: Buffer): Promise<boolean>;
}

export interface Reply {
  status: number;
  headers: Record<string, string>;
  /** A Buffer when the handler already encoded it (to count its bytes). */
  body?: string | Buffer;
  /** Streamed (chunked) body; used instead of `body` when present. */
  stream?: (out: BodyWriter) => Promise<void>;
}

export function json(status: number, value: unknown, headers: Record<string, string> = {}): Reply {
  return { status, headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(value) };
}

export function text(status: number, message: string, headers: Record<string, string> = {}): Reply {
  return { status, headers: { "content-type": "text/plain; charset=utf-8", ...headers }, body: message };
}

/** An HTTP failure the emulator answers with, rendered per flavor by `errorReply` (not the client's APIError). */
export class EmulatorHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly detail: { param?: string | null; code?: string | null; type?: string } = {},
  ) {
    super(message);
  }
}

function openaiType(status: number): string {
  if (status === 429) return "rate_limit_exceeded";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

/** OpenAI's `error` object for a status: what the API answers, and what a failed line's body carries. */
export function openaiError(
  status: number,
  message: string,
  detail: EmulatorHttpError["detail"] = {},
): Record<string, unknown> {
  return {
    message,
    type: detail.type ?? openaiType(status),
    param: detail.param ?? null,
    code: detail.code ?? (status === 429 ? "rate_limit_exceeded" : null),
  };
}

/**
 * Doubleword: plain text except 429/503, which are JSON with `error` as a string and a Retry-After
 * header that disagrees with the body (docs/protocols.md §2.4). OpenAI: always `{"error":{message,type,param,code}}`.
 */
export function errorReply(flavor: Flavor, err: EmulatorHttpError): Reply {
  if (flavor === "openai") return json(err.status, { error: openaiError(err.status, err.message, err.detail) });
  if (err.status === 429) {
    return json(
      429,
      { error: "too_many_requests", message: err.message, retry_after_seconds: 30 },
      { "retry-after": "60" },
    );
  }
  if (err.status === 503) {
    return json(
      503,
      { error: "service_unavailable", message: err.message, retry_after_seconds: 30 },
      { "retry-after": "30" },
    );
  }
  return text(err.status, err.message);
}
