/**
 * Requests that overlap (a dataset switch mid-load, one progress tick after another) can answer out of order; a slow
 * earlier answer landing last would show stale data. Wrap each load: only the newest call's answer is current.
 */
export function newestOnly() {
  let newest = 0;
  return async <T>(request: () => Promise<T>): Promise<{ value: T; stale: boolean }> => {
    const mine = ++newest;
    const value = await request();
    return { value, stale: mine !== newest };
  };
}
