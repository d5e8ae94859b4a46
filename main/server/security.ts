/**
 * The guards of `sparserm serve`: a per-launch random token compared in constant time, and a Host/Origin check so a
 * web page on another origin cannot reach the API through DNS rebinding or cross-site requests.
 */
import crypto from 'node:crypto';

export function newToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/** Constant-time comparison; hashing first makes the inputs equal-length so their length leaks nothing either. */
export function tokenMatches(expected: string, given: string | undefined | null): boolean {
  if (typeof given !== 'string' || given.length === 0) return false;
  const a = crypto.createHash('sha256').update(expected).digest();
  const b = crypto.createHash('sha256').update(given).digest();
  return crypto.timingSafeEqual(a, b);
}

/** The token from `Authorization: Bearer <token>` (the only place the API accepts it: never a query string). */
export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : null;
}

/** Host names under which the loopback server may be addressed. */
export function allowedHosts(port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]);
}

export function hostAllowed(host: string | undefined, port: number): boolean {
  if (!host) return false;
  return allowedHosts(port).has(host.toLowerCase());
}

/** Browsers send Origin on cross-origin and POST requests; when present it must be our own origin. */
export function originAllowed(origin: string | undefined, port: number): boolean {
  if (origin === undefined) return true;
  try {
    const u = new URL(origin);
    return u.protocol === 'http:' && allowedHosts(port).has(u.host.toLowerCase());
  } catch {
    return false;
  }
}
