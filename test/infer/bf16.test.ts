/**
 * bf16 weights in the inference engine: the weight matrices stored bf16 (as a bf16 checkpoint loaded
 * as stored), their products on bf16 operands (gemmBf16). The logits track the float32 model's
 * (activations rounded to 8 significant bits per product: about 1e-2 relative here), and the native
 * kernels track the TypeScript reference's bf16 logits closely: their float32 sums differ from the
 * reference's float64 ones by an ulp or so, which now and then moves an activation across a bf16
 * rounding boundary in the next layer (a 2^-8 relative jump of that one value), so the bound is 2e-3
 * rather than float32 accumulation error.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { kernels, referenceKernels, useKernels } from '../../src/backend/index.js';
import { IncrementalModel, type WeightSource } from '../../src/infer/forward.js';
import { KvCachePool } from '../../src/infer/kv-cache.js';
import { storedWeights } from '../../src/model/checkpoint.js';
import type { GlamConfig } from '../../src/model/config.js';
import { Bf16Tensor } from '../../src/tensor/bf16.js';
import { forEachPath, native, nativeMissing } from '../backend/helpers.js';
import { randomTokens, rowRelError, testConfig, testWeights } from './helpers.js';

/** Every position's logits of one sequence fed in chunks of 8. */
function logits(cfg: GlamConfig, weights: WeightSource, tokens: number[]): Float32Array {
  const pool = new KvCachePool(cfg, { budgetBytes: 16 << 20, blockSize: 8 });
  const model = new IncrementalModel(cfg, weights, pool);
  const seq = pool.newSequence();
  const V = cfg.vocab_size;
  const out = new Float32Array(tokens.length * V);
  for (let p = 0; p < tokens.length; p += 8) {
    const chunk = tokens.slice(p, p + 8);
    const x = model.forward(
      [{ seq, tokens: chunk }],
      Int32Array.from(chunk, (_, i) => i),
    );
    model.logits(x, chunk.length, out.subarray(p * V));
  }
  return out;
}

describe('bf16 weights in the inference engine', () => {
  const cfg = testConfig('tiny-moe', { expert_gated: true });
  const params = testWeights(cfg, 5);
  const f32 = new Map(storedWeights(cfg, params, 'f32'));
  const b16 = new Map(storedWeights(cfg, params, 'bf16'));
  const tokens = randomTokens(40, cfg.vocab_size, 9);
  const V = cfg.vocab_size;

  test('the matrices are bf16, the rest float32', () => {
    assert.ok(b16.get('layers.0.attn.wq') instanceof Bf16Tensor);
    assert.ok(b16.get('embed.weight') instanceof Bf16Tensor);
    assert.ok(!(b16.get('layers.1.moe.router') instanceof Bf16Tensor));
    assert.ok(!(b16.get('final_norm.scale') instanceof Bf16Tensor));
  });

  test('reference: logits within 3% (row max) of the float32 model, not equal to them', () => {
    const previous = kernels();
    useKernels(referenceKernels);
    try {
      const want = logits(cfg, f32, tokens);
      const got = logits(cfg, b16, tokens);
      let worst = 0;
      for (let p = 0; p < tokens.length; p++) {
        worst = Math.max(
          worst,
          rowRelError(got.subarray(p * V, (p + 1) * V), want.subarray(p * V, (p + 1) * V)),
        );
      }
      assert.ok(worst > 0 && worst < 0.03, `worst relative error ${worst}`);
    } finally {
      useKernels(previous);
    }
  });

  test('native tracks the reference bf16 logits within 2e-3 (row max), every path and bf16 kernel', {
    skip: nativeMissing,
  }, () => {
    const previous = kernels();
    let want: Float32Array;
    useKernels(referenceKernels);
    try {
      want = logits(cfg, b16, tokens);
    } finally {
      useKernels(previous);
    }
    useKernels(native!);
    try {
      forEachPath((isa) => {
        try {
          for (const widen of [false, true]) {
            native!.setBf16Widening(widen);
            const got = logits(cfg, b16, tokens);
            for (let p = 0; p < tokens.length; p++) {
              const e = rowRelError(got.subarray(p * V, (p + 1) * V), want.subarray(p * V, (p + 1) * V));
              assert.ok(e < 2e-3, `${isa} ${native!.info().bf16}: position ${p}: ${e}`);
            }
          }
        } finally {
          native!.setBf16Widening(false);
        }
      });
    } finally {
      useKernels(previous);
    }
  });
});
