/** Robust summaries of repeated timings: medians and spreads, for every benchmark to share. */

/** The q-quantile (0..1) of a sample, linearly interpolated; NaN for an empty sample. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = Math.min(Math.max(q, 0), 1) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  /** First and third quartiles. */
  q1: number;
  q3: number;
  /** (q3 - q1) / median: the spread of the middle half, robust to a few disturbed runs. */
  iqrRel: number;
  /** (max - min) / median. */
  rangeRel: number;
}

export function summarize(values: readonly number[]): Summary {
  const med = median(values);
  const q1 = quantile(values, 0.25);
  const q3 = quantile(values, 0.75);
  const min = values.length ? Math.min(...values) : Number.NaN;
  const max = values.length ? Math.max(...values) : Number.NaN;
  return {
    n: values.length,
    median: med,
    min,
    max,
    q1,
    q3,
    iqrRel: med > 0 ? (q3 - q1) / med : 0,
    rangeRel: med > 0 ? (max - min) / med : 0,
  };
}

/** "12.3%" */
export function percent(x: number, digits = 1): string {
  return `${(100 * x).toFixed(digits)}%`;
}

/** Seconds of `fn`, measured with the monotonic high-resolution clock. */
export function timeSeconds(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}
