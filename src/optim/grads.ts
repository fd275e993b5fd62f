/** Gradient helpers for the training step: accumulation, finite check, global norm, clipping. */
import { kernels } from '../backend/index.js';
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
  const k = kernels();
  for (const g of grads.values()) k.fill(g.data, 0);
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

/**
 * Σ g² over every gradient, accumulated in float64 (kernels().sumSquares per tensor, added in order).
 * Float32 squares cannot overflow float64, so the sum is finite exactly when every gradient element is:
 * one pass gives both the trainer's finite check and the global norm.
 */
export function gradSumSquares(grads: Params): number {
  const k = kernels();
  let acc = 0;
  for (const g of grads.values()) acc += k.sumSquares(g.data);
  return acc;
}

/** False when any gradient element is NaN or ±Infinity (the step must then be skipped). */
export function gradsAreFinite(grads: Params): boolean {
  return Number.isFinite(gradSumSquares(grads));
}

/** sqrt(Σ g²) over every gradient, accumulated in float64; NaN or Infinity when a gradient is not finite. */
export function globalGradNorm(grads: Params): number {
  return Math.sqrt(gradSumSquares(grads));
}

/** Scale all gradients so their global norm is at most maxNorm; returns the norm before clipping. */
export function clipGradsByGlobalNorm(grads: Params, maxNorm: number): number {
  if (!(maxNorm > 0)) throw new Error(`clipGradsByGlobalNorm: maxNorm must be > 0, got ${maxNorm}`);
  const norm = globalGradNorm(grads);
  if (norm > maxNorm) scaleGrads(grads, maxNorm / norm);
  return norm;
}
