// Whether a bind address is reachable from this machine only: the servers open up (admin routes, no auth) only there.

/** True for `localhost`, 127.0.0.0/8, `::1` and their IPv4-mapped forms. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^(::ffff:)?127\./.test(h);
}
