/**
 * Next-token sampling from a row of logits: greedy (temperature 0), temperature,
 * top-k and nucleus (top-p) filtering, drawing from a seeded Rng.
 */
import type { Rng } from '../util/rng.js';

export interface SamplingOptions {
  /** 0 = greedy (argmax). */
  temperature: number;
  /** Keep the k most likely tokens (0 = all). */
  topK: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 = all). */
  topP: number;
}

export const DEFAULT_SAMPLING: SamplingOptions = { temperature: 1, topK: 0, topP: 1 };

export function validateSampling(o: SamplingOptions): void {
  if (!(Number.isFinite(o.temperature) && o.temperature >= 0)) {
    throw new Error(`temperature must be a number >= 0, got ${o.temperature}`);
  }
  if (!(Number.isInteger(o.topK) && o.topK >= 0))
    throw new Error(`top-k must be an integer >= 0, got ${o.topK}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new Error(`top-p must be in (0, 1], got ${o.topP}`);
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** Sample a token id from `logits` (one row of length vocab). */
export function sampleToken(logits: Float32Array, o: SamplingOptions, rng: Rng): number {
  if (o.temperature === 0) return argmax(logits);
  const n = logits.length;
  // Candidates sorted by logit, descending; top-k cuts the list before softmax.
  let order = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (o.topK > 0 && o.topK < n) order = order.slice(0, o.topK);
  const maxLogit = logits[order[0]!]!;
  const probs = order.map((i) => Math.exp((logits[i]! - maxLogit) / o.temperature));
  const total = probs.reduce((s, p) => s + p, 0);
  let keep = probs.length;
  if (o.topP < 1) {
    let cum = 0;
    for (let j = 0; j < probs.length; j++) {
      cum += probs[j]! / total;
      if (cum >= o.topP) {
        keep = j + 1;
        break;
      }
    }
  }
  const kept = probs.slice(0, keep);
  const keptTotal = kept.reduce((s, p) => s + p, 0);
  let u = rng.uniform() * keptTotal;
  for (let j = 0; j < keep; j++) {
    u -= kept[j]!;
    if (u < 0) return order[j]!;
  }
  return order[keep - 1]!;
}
