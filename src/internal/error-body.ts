// One mapping from any error body shape a provider sends to the provider's error object and message.
import type { ProviderError } from "../errors.js";

/** `{"error":{...}}` (OpenAI), `{"error":"code","message":"..."}` (Doubleword 429/503), or plain text (Doubleword). */
export function parseErrorBody(text: string): { error?: ProviderError; message?: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { message: text.trim() || undefined };
  }
  return errorFromBody(parsed) ?? { message: typeof parsed === "string" ? parsed : text };
}

/** The provider's error in an already-parsed body, in whichever of the shapes above; undefined if none. */
export function errorFromBody(body: unknown): { error: ProviderError } | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const p = body as { error?: unknown; message?: unknown };
  if (typeof p.error === "object" && p.error !== null) {
    const e = p.error as ProviderError;
    return { error: { ...e, message: typeof e.message === "string" ? e.message : JSON.stringify(e) } };
  }
  if (typeof p.error === "string") {
    return {
      error: {
        message: typeof p.message === "string" ? p.message : p.error,
        code: p.error,
        type: p.error,
        param: null,
      },
    };
  }
  if (typeof p.message === "string") return { error: { message: p.message } };
  return undefined;
}
