/** Shared helpers for the model tests: random tensors, float64 copies, finite differences. */
import assert from 'node:assert/strict';
import { type GlamConfig, parseConfig } from '../../src/model/config.js';
import type { Params } from '../../src/model/params.js';
import { Weights } from '../../src/model/weights.js';
import { Rng } from '../../src/util/rng.js';
import type { Params64 } from './reference64.js';

/** n normal values with standard deviation std, rounded to float32. */
export function randn(rng: Rng, n: number, std = 1): Float32Array {
  const a = new Float32Array(n);
  rng.fillNormal(a, std);
  return a;
}

export function to64(a: Float32Array): Float64Array {
  return Float64Array.from(a);
}

/** A tiny config with test-friendly defaults (large loss weights so every gradient path is visible). */
export function tinyConfig(overrides: Record<string, unknown> = {}): GlamConfig {
  return parseConfig({
    vocab_size: 11,
    d_model: 8,
    n_layers: 2,
    n_heads: 2,
    d_head: 4,
    d_ff: 12,
    n_experts: 4,
    d_ff_expert: 6,
    rel_buckets: 4,
    rel_max_distance: 5,
    max_seq_len: 8,
    z_loss_weight: 0.05,
    aux_loss_weight: 0.3,
    ...overrides,
  });
}

/**
 * Random parameters for tests: projections N(0, 1/fan_in), embedding N(0, 1),
 * and, unlike the real initialisation, non-trivial norm scales, relative biases
 * and a sharper router so that every parameter has a gradient worth checking.
 */
export function randomParams(cfg: GlamConfig, seed: number): Weights {
  const rng = new Rng(seed);
  const params = new Weights(cfg);
  for (const s of params.layout.specs) {
    const t = params.get(s.name);
    const fanIn = s.shape[s.shape.length - 2] ?? 1;
    switch (s.kind) {
      case 'embedding':
        rng.fillNormal(t.data, 1);
        break;
      case 'norm':
        for (let i = 0; i < t.size; i++) t.data[i] = 1 + 0.2 * rng.normal();
        break;
      case 'rel_bias':
        rng.fillNormal(t.data, 0.5);
        break;
      case 'router':
        rng.fillNormal(t.data, 1);
        break;
      default:
        rng.fillNormal(t.data, 1 / Math.sqrt(fanIn));
    }
  }
  return params;
}

export function params64(params: Params): Params64 {
  const out: Params64 = new Map();
  for (const [k, v] of params) out.set(k, to64(v.data));
  return out;
}

export function randomTokens(rng: Rng, n: number, vocab: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.int(vocab);
  return a;
}

/** Central difference of f at x[i] (x is perturbed in place and restored). */
export function centralDiff(f: () => number, x: Float64Array, i: number, eps: number): number {
  const x0 = x[i]!;
  x[i] = x0 + eps;
  const fp = f();
  x[i] = x0 - eps;
  const fm = f();
  x[i] = x0;
  return (fp - fm) / (2 * eps);
}

/** `count` distinct indices of [0, n) (all of them when n <= count), from rng. */
export function sampleIndices(rng: Rng, n: number, count: number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  return n <= count ? all : rng.shuffle(all).slice(0, count);
}

export interface GradCheckOptions {
  /** Relative tolerance on each coordinate. */
  rtol: number;
  /** Absolute floor, relative to max |analytic| over the whole tensor. */
  atolRel: number;
}

/**
 * Compares analytic gradient coordinates with central differences and fails
 * naming the tensor, the index and both values. Returns the worst error ratio
 * (error / allowed) so callers can report the margin.
 */
export function checkGradient(
  name: string,
  analytic: ArrayLike<number>,
  numeric: (i: number) => number,
  indices: number[],
  o: GradCheckOptions,
): number {
  let scale = 0;
  for (let i = 0; i < analytic.length; i++) scale = Math.max(scale, Math.abs(analytic[i]!));
  let worst = 0;
  let nonzero = 0;
  for (const i of indices) {
    const a = analytic[i]!;
    const n = numeric(i);
    const allowed = o.rtol * Math.abs(n) + o.atolRel * scale + 1e-12;
    const err = Math.abs(a - n);
    assert.ok(
      err <= allowed,
      `${name}[${i}]: analytic ${a.toExponential(6)} vs finite difference ${n.toExponential(6)} ` +
        `(|diff| ${err.toExponential(2)} > ${allowed.toExponential(2)})`,
    );
    if (Math.abs(n) > 1e-9) nonzero++;
    worst = Math.max(worst, err / allowed);
  }
  assert.ok(
    nonzero > 0 || scale === 0,
    `${name}: every checked coordinate has a zero gradient; the check is vacuous`,
  );
  return worst;
}
