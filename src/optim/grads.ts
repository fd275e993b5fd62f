/** Gradient helpers for the training step: accumulation, finite check, global norm, clipping. */
import type { Params } from '../model/params.js';
import { assertSameShape, Tensor } from '../tensor/tensor.js';
import type { ParamShapes } from './optimizer.js';

/** Zeroed gradient buffers with the parameters' names and shapes. */
export function zeroGradsLike(params: ParamShapes): Params {
  const out: Params = new Map();
  for (const [name, p] of params) out.set(name, Tensor.zeros(p.shape));
  return out;
}

export function zeroGrads(grads: Params): void {
  for (const g of grads.values()) g.data.fill(0);
}

/**
 * acc += weight · grads, name by name (every name of `acc` must be in `grads`).
 * For a mean over k equal micro-batches, add each with weight 1/k, or add with
 * weight 1 and `scaleGrads(acc, 1/k)` at the end; with unequal token counts, weight
 * each by its share of the tokens.
 */
export function accumulateGrads(acc: Params, grads: Params, weight = 1): void {
  for (const [name, a] of acc) {
    const g = grads.get(name);
    if (g === undefined) throw new Error(`accumulateGrads: gradient '${name}' is missing`);
    assertSameShape(`accumulateGrads '${name}'`, a, g);
    const ad = a.data;
    const gd = g.data;
    if (weight === 1) {
      for (let k = 0; k < ad.length; k++) ad[k] += gd[k]!;
    } else {
      for (let k = 0; k < ad.length; k++) ad[k] += weight * gd[k]!;
    }
  }
}

export function scaleGrads(grads: Params, factor: number): void {
  for (const g of grads.values()) {
    const d = g.data;
    for (let k = 0; k < d.length; k++) d[k] *= factor;
  }
}

/** False when any gradient element is NaN or ±Infinity (the step must then be skipped). */
export function gradsAreFinite(grads: Params): boolean {
  for (const g of grads.values()) {
    const d = g.data;
    // x·0 is 0 for finite x and NaN for NaN or ±Inf: one branch-free pass per tensor.
    let probe = 0;
    for (let k = 0; k < d.length; k++) probe += d[k]! * 0;
    if (probe !== 0) return false;
  }
  return true;
}

/** sqrt(Σ g²) over every gradient, accumulated in float64; NaN or Infinity when a gradient is not finite. */
export function globalGradNorm(grads: Params): number {
  let acc = 0;
  for (const g of grads.values()) {
    const d = g.data;
    for (let k = 0; k < d.length; k++) acc += d[k]! * d[k]!;
  }
  return Math.sqrt(acc);
}

/** Scale all gradients so their global norm is at most maxNorm; returns the norm before clipping. */
export function clipGradsByGlobalNorm(grads: Params, maxNorm: number): number {
  if (!(maxNorm > 0)) throw new Error(`clipGradsByGlobalNorm: maxNorm must be > 0, got ${maxNorm}`);
  const norm = globalGradNorm(grads);
  if (norm > maxNorm) scaleGrads(grads, maxNorm / norm);
  return norm;
}
