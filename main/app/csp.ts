/**
 * The Content-Security-Policy of the renderer, shared by Electron (session header + meta tag) and `sparserm serve`
 * (HTTP header). Scripts only from our own origin: no inline scripts, no eval. Styles: our own stylesheet plus
 * inline style attributes, which Vue bindings and the virtual list need for positioning (styles cannot run code).
 */
export const cspDirectives: Record<string, string[]> = {
  'default-src': ["'self'"],
  'script-src': ["'self'"],
  'style-src': ["'self'", "'unsafe-inline'"],
  'img-src': ["'self'", 'data:'],
  'font-src': ["'self'"],
  'connect-src': ["'self'"],
  'object-src': ["'none'"],
  'base-uri': ["'none'"],
  'form-action': ["'none'"],
  'frame-ancestors': ["'none'"],
  'frame-src': ["'none'"],
  'worker-src': ["'self'"],
};

export function contentSecurityPolicy(): string {
  return Object.entries(cspDirectives)
    .map(([k, v]) => `${k} ${v.join(' ')}`)
    .join('; ');
}
