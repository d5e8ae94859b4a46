export function fmt(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  return (x > 0 ? '+' : '') + x.toFixed(digits);
}
export function pct(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined) return '—';
  return (x * 100).toFixed(digits) + ' %';
}
/** "(n = 120, 95 % CI 61.2–77.9, 3 ties)": what an accuracy rests on, shown beside it everywhere. */
export function nci(a: { n: number | null; ci95: [number, number] | null; ties?: number | null } | null | undefined): string {
  if (!a || a.n === null) return '(n unknown)';
  const ci = a.ci95 ? `, 95 % CI ${(a.ci95[0] * 100).toFixed(1)}–${(a.ci95[1] * 100).toFixed(1)}` : '';
  const ties = a.ties ? `, ${a.ties} tie${a.ties === 1 ? '' : 's'}` : '';
  return `(n = ${a.n.toLocaleString('en')}${ci}${ties})`;
}
export function when(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
