// Checking `Authorization: Bearer <token>` for the servers (serve, the emulator). Digests are compared, so the check
// takes the same time whatever the attempt and reveals neither the token nor its length.
import { createHash, timingSafeEqual } from "node:crypto";

const digest = (text: string): Buffer => createHash("sha256").update(text).digest();

/** A predicate over an Authorization header that accepts `Bearer <token>` only; accepts everything when no token. */
export function bearerCheck(token: string | undefined): (authorization: string | undefined) => boolean {
  if (token === undefined) return () => true;
  const expected = digest(token);
  return (authorization) => {
    const m = /^Bearer\s+(.+)$/i.exec(authorization ?? "");
    return m !== null && timingSafeEqual(digest(m[1]!.trim()), expected);
  };
}
