/** Shared pieces of the inference tests: tiny models with non-trivial weights, full-recompute logits. */
import { type GlamConfig, parseConfig } from '../../src/model/config.js';
import { GlamModel } from '../../src/model/glam.js';
import { getPreset } from '../../src/model/presets.js';
import type { Weights } from '../../src/model/weights.js';
import { randomParams } from '../model/helpers.js';

/** A CPU-sized preset with overrides; max_seq_len 64 reaches the logarithmic relative-position buckets. */
export function testConfig(preset: 'tiny' | 'tiny-moe', overrides: Record<string, unknown> = {}): GlamConfig {
  return parseConfig({ ...getPreset(preset), ...overrides });
}

/** Weights with random norm scales, relative biases and a sharp router, so every path matters. */
export function testWeights(cfg: GlamConfig, seed: number): Weights {
  return randomParams(cfg, seed);
}

/** Logits [T, V] of each prefix position of `tokens`, by the training model's full forward. */
export function fullLogits(
  cfg: GlamConfig,
  weights: Weights,
  tokens: number[],
  capacityFactor?: number,
): Float32Array {
  const model = new GlamModel(cfg);
  const opts = capacityFactor === undefined ? {} : { capacityFactor };
  return model.logits(weights, model.workspace(), Int32Array.from(tokens), 1, tokens.length, opts);
}

/** max_j |a_j − b_j| / max_j |b_j| over one row. */
export function rowRelError(a: Float32Array, b: Float32Array): number {
  let err = 0;
  let scale = 0;
  for (let j = 0; j < b.length; j++) {
    err = Math.max(err, Math.abs(a[j]! - b[j]!));
    scale = Math.max(scale, Math.abs(b[j]!));
  }
  return err / scale;
}

/** Deterministic token ids in [0, vocab). */
export function randomTokens(n: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(s % vocab);
  }
  return out;
}
