export function fmt(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  return (x > 0 ? '+' : '') + x.toFixed(digits);
}
export function pct(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined) return '—';
  return (x * 100).toFixed(digits) + ' %';
}
export function when(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
