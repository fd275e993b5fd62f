/**
 * The category mixture: the paper's weights (or a config's) restricted to the categories
 * that have data. A category without data gives its weight to the rest in proportion to
 * their weights, i.e. the remaining weights are renormalised, and the run says so.
 *
 * A category with fewer than `minTokens` training tokens counts as having no data, as
 * long as some category has at least that many: GLaM sets its weights "to prevent small
 * sources from being over-sampled", and a category holding a few documents at a weight
 * of 0.42 would be repeated thousands of times.
 */
import { CATEGORIES, type Category } from './categories.js';
import { DataError } from './errors.js';

export interface Mixture {
  /** Normalised weights, summing to 1; 0 for categories that are not sampled. */
  weights: Record<Category, number>;
  /** Human-readable notes on what was redistributed or dropped. */
  notes: string[];
}

const fmt = (w: number) => Number(w.toFixed(4)).toString();

export function resolveMixture(
  requested: Readonly<Record<Category, number>>,
  tokens: Readonly<Partial<Record<Category, number>>>,
  minTokens = 0,
): Mixture {
  const count = (c: Category) => tokens[c] ?? 0;
  const present = CATEGORIES.filter((c) => count(c) > 0);
  if (present.length === 0) throw new DataError('no category has any training data');
  const bigEnough = present.filter((c) => count(c) >= minTokens);
  const active = new Set(bigEnough.length > 0 ? bigEnough : present);
  const notes: string[] = [];
  const sumAll = CATEGORIES.reduce((s, c) => s + requested[c], 0);
  const missing = CATEGORIES.filter((c) => !active.has(c) && requested[c] > 0);
  let total = [...active].reduce((s, c) => s + requested[c], 0);
  const base = { ...requested };
  if (total === 0) {
    for (const c of active) base[c] = 1;
    total = active.size;
    notes.push(`none of the weighted categories has data; sampling equally from ${[...active].join(', ')}`);
  } else if (missing.length > 0) {
    const why = (c: Category) =>
      count(c) === 0
        ? 'no data'
        : `only ${count(c).toLocaleString('en-US')} tokens (< min_category_tokens ${minTokens.toLocaleString('en-US')})`;
    const receivers = CATEGORIES.filter((c) => active.has(c) && base[c] > 0);
    for (const c of missing) {
      notes.push(
        `'${c}' has ${why(c)}; its weight ${fmt(requested[c] / sumAll)} is spread over ${receivers.join(', ')} in proportion to their weights`,
      );
    }
  }
  for (const c of active) if (base[c] === 0) notes.push(`'${c}' has data but weight 0; it is not sampled`);
  const weights = Object.fromEntries(
    CATEGORIES.map((c) => [c, active.has(c) ? base[c] / total : 0]),
  ) as Record<Category, number>;
  return { weights, notes };
}

/** Map a uniform u in [0, 1) to a category by the cumulative weights (in CATEGORIES order). */
export function pickCategory(weights: Readonly<Record<Category, number>>, u: number): Category {
  let acc = 0;
  let last: Category | undefined;
  for (const c of CATEGORIES) {
    const w = weights[c];
    if (w <= 0) continue;
    acc += w;
    last = c;
    if (u < acc) return c;
  }
  if (last === undefined) throw new DataError('mixture has no positive weight');
  return last; // u within rounding of 1
}
