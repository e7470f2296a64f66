// Printing URLs without the credentials they may carry (userinfo, key-like query parameters), for logs and messages.

/** A parseable URL, with userinfo masked and key-like query parameters replaced. */
export function safeURL(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = "***";
      u.password = "";
    }
    for (const k of [...u.searchParams.keys()]) if (/key|token|secret|sig/i.test(k)) u.searchParams.set(k, "***");
    return u.toString().replace(/\/$/, "");
  } catch {
    return "(unparseable)";
  }
}

/**
 * Text that was meant to be a URL, fit to echo in an error: query and fragment dropped, anything before the last
 * `@` masked, even when the text is not a URL at all (where `safeURL` cannot find the userinfo).
 */
export function echoable(text: string): string {
  const url = text.split(/[?#]/, 1)[0]!;
  const at = url.lastIndexOf("@");
  if (at < 0) return url;
  return `${/^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0] ?? ""}***@${url.slice(at + 1)}`;
}
