/**
 * The few browser globals the page.evaluate() callbacks of the e2e test and the UI bench use. The Node tsconfig
 * has no DOM lib (on purpose: the engine must not see `document`), so callbacks cast `globalThis` to this type
 * inline (a helper function would not exist inside the page).
 */
export interface MiniElement {
  scrollTop: number;
  readonly scrollHeight: number;
  readonly textContent: string | null;
  querySelector(sel: string): MiniElement | null;
}
export interface BrowserGlobals {
  document: { querySelector(sel: string): MiniElement | null; querySelectorAll(sel: string): ArrayLike<MiniElement> & Iterable<MiniElement> };
  requestAnimationFrame(cb: (t: number) => void): number;
  performance: { now(): number };
}
