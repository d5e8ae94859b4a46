/**
 * A numeric form field that refuses what is not a number, visibly: the input keeps the curator's text, `value` is
 * the parsed number (null while invalid) and `error` says what is expected, shown beside the field. Plain text
 * inputs (inputmode decimal) because a type="number" input silently turns "abc" into an empty value.
 */
import { computed, ref, type ComputedRef, type Ref } from 'vue';

export interface NumberField {
  text: Ref<string>;
  value: ComputedRef<number | null>;
  error: ComputedRef<string | null>;
  set(v: number): void;
}

export function parseNumberField(text: string, opts: { min?: number; max?: number; integer?: boolean; label: string }): { value: number | null; error: string | null } {
  const t = text.trim();
  const kind = opts.integer ? 'a whole number' : 'a number';
  const range = opts.min !== undefined && opts.max !== undefined ? ` from ${opts.min} to ${opts.max}` : opts.min !== undefined ? ` ≥ ${opts.min}` : opts.max !== undefined ? ` ≤ ${opts.max}` : '';
  const expected = `${opts.label}: expected ${kind}${range}`;
  // Number('') is 0 and Number('1e') is NaN: require a plain decimal (optionally with an exponent).
  if (!/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(t)) return { value: null, error: `${expected}, got ${t ? JSON.stringify(t) : 'nothing'}` };
  const v = Number(t);
  if (!Number.isFinite(v) || (opts.integer && !Number.isInteger(v)) || (opts.min !== undefined && v < opts.min) || (opts.max !== undefined && v > opts.max)) {
    return { value: null, error: `${expected}, got ${t}` };
  }
  return { value: v, error: null };
}

export function numberField(initial: number, opts: { min?: number; max?: number; integer?: boolean; label: string }): NumberField {
  const text = ref(String(initial));
  const parsed = computed(() => parseNumberField(text.value, opts));
  return {
    text,
    value: computed(() => parsed.value.value),
    error: computed(() => parsed.value.error),
    set: (v: number) => {
      text.value = String(v);
    },
  };
}
