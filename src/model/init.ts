/**
 * GShard-style initialisation (docs/model.md "Initialisation"): every projection
 * N(0, 1/fan_in), embedding N(0, 1), norm scales 1, rel_bias 0, router
 * N(0, 1/d_model).
 *
 * Each tensor draws from its own generator, seeded from (seed, tensor name), so
 * a tensor's initial values do not depend on which other tensors the config
 * has: adding layers or experts leaves the existing ones as they were.
 */
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import type { GlamConfig } from './config.js';
import type { ParamSpec } from './params.js';
import { type BufferOptions, Weights } from './weights.js';

/** fan_in of a stored [in, out] matrix, or of each [in, out] slice of an expert tensor [E, in, out]. */
export function fanIn(spec: ParamSpec): number {
  if (spec.kind === 'expert') return spec.shape[1]!;
  return spec.shape[0]!;
}

/** Standard deviation of a parameter's initial values (0 for constants). */
export function initStd(cfg: GlamConfig, spec: ParamSpec): number {
  switch (spec.kind) {
    case 'embedding':
      return 1;
    case 'router':
      return 1 / Math.sqrt(cfg.d_model);
    case 'projection':
    case 'expert':
      return 1 / Math.sqrt(fanIn(spec));
    case 'norm':
    case 'rel_bias':
      return 0;
  }
}

/** FNV-1a hash of a string, 32 bits. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** 32-bit seed for one tensor; mixes in the high bits of seeds beyond 2^32. */
export function tensorSeed(seed: number, name: string): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296) >>> 0;
  return (lo ^ Math.imul(hi, 0x9e3779b1) ^ Math.imul(hashName(name), 0x85ebca6b)) >>> 0;
}

/** Initialise one parameter in place. */
export function initParam(cfg: GlamConfig, spec: ParamSpec, t: Tensor, seed: number): void {
  if (spec.kind === 'norm') {
    t.fill(1);
    return;
  }
  if (spec.kind === 'rel_bias') {
    t.fill(0);
    return;
  }
  new Rng(tensorSeed(seed, spec.name)).fillNormal(t.data, initStd(cfg, spec));
}

/** Every parameter of `cfg`, freshly initialised from `seed` (a non-negative safe integer). */
export function initParams(cfg: GlamConfig, seed: number, opts: BufferOptions = {}): Weights {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new Error(`initParams: seed must be a non-negative integer, got ${seed}`);
  }
  const weights = new Weights(cfg, opts);
  for (const spec of weights.layout.specs) initParam(cfg, spec, weights.get(spec.name), seed);
  return weights;
}
