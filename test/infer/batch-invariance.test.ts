/**
 * Batch invariance, bitwise: a sequence's logits are identical whether it runs alone or in a step
 * with other sequences (of other lengths, prefilling or decoding), at any position in the step, on
 * one or two threads. The engine's own operations are row-wise; the matrix products must keep a row
 * of C independent of the number of rows (the kernel contract). Checked on the TypeScript reference
 * kernels (which sum each element on its own) and on the native kernels.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { kernels, referenceKernels, useKernels } from '../../src/backend/index.js';
import type { Kernels } from '../../src/backend/ops.js';
import { IncrementalModel, type StepSegment, type WeightSource } from '../../src/infer/forward.js';
import { KvCachePool, type KvSequence } from '../../src/infer/kv-cache.js';
import { storedWeights } from '../../src/model/checkpoint.js';
import type { GlamConfig } from '../../src/model/config.js';
import { forEachPath, native, nativeMissing } from '../backend/helpers.js';
import { randomTokens, testConfig, testWeights } from './helpers.js';

interface Companion {
  tokens: number[];
  /** Step at which it joins. */
  joins: number;
  /** Tokens it feeds per step. */
  chunk: number;
}

/**
 * Runs the subject sequence (prompt fed in chunks of 16, then one token per step) with companions
 * placed before or after it in each step; returns the subject's last-row logits of every step.
 */
function subjectLogits(
  cfg: GlamConfig,
  params: WeightSource,
  subject: number[],
  companions: Companion[],
  subjectSlot: 'first' | 'middle' | 'last',
): Float32Array[] {
  const pool = new KvCachePool(cfg, { budgetBytes: 32 << 20, blockSize: 8 });
  const model = new IncrementalModel(cfg, params, pool);
  const V = cfg.vocab_size;
  const seq = pool.newSequence();
  const others: { c: Companion; seq: KvSequence; fed: number }[] = companions.map((c) => ({
    c,
    seq: pool.newSequence(),
    fed: 0,
  }));
  const out: Float32Array[] = [];
  let fed = 0;
  for (let step = 0; fed < subject.length; step++) {
    const n = fed < 32 ? Math.min(16, 32 - fed) : 1;
    const mine: StepSegment = { seq, tokens: subject.slice(fed, fed + n) };
    const theirs: StepSegment[] = [];
    for (const o of others) {
      if (step < o.c.joins || o.fed >= o.c.tokens.length) continue;
      theirs.push({ seq: o.seq, tokens: o.c.tokens.slice(o.fed, o.fed + o.c.chunk) });
      o.fed += o.c.chunk;
    }
    const at = subjectSlot === 'first' ? 0 : subjectSlot === 'last' ? theirs.length : theirs.length >> 1;
    const segments = [...theirs.slice(0, at), mine, ...theirs.slice(at)];
    // Logits for every segment's last row (as decoding asks), the subject's among them.
    const lastRows: number[] = [];
    let r = 0;
    for (const s of segments) {
      r += s.tokens.length;
      lastRows.push(r - 1);
    }
    const x = model.forward(segments, Int32Array.from(lastRows));
    const logits = model.logits(x, lastRows.length, new Float32Array(lastRows.length * V));
    out.push(logits.slice(at * V, (at + 1) * V));
    fed += n;
  }
  return out;
}

function checkInvariance(k: Kernels, label: string, dtype: 'f32' | 'bf16' = 'f32'): void {
  const previous = kernels();
  useKernels(k);
  try {
    for (const [name, cfg] of [
      // Widths past the sgemm's k blocking (256) and row counts on both sides of its few-row paths.
      ['MoE', testConfig('tiny-moe', { d_ff: 320, d_ff_expert: 288 })],
      [
        'gated experts',
        testConfig('tiny-moe', { expert_gated: true, moe_layer_interval: 1, d_ff_expert: 264 }),
      ],
    ] as const) {
      // bf16: the weight matrices in bf16, their products on bf16 operands (gemmBf16).
      const params: WeightSource = new Map(storedWeights(cfg, testWeights(cfg, 3), dtype));
      const subject = randomTokens(44, cfg.vocab_size, 1);
      const alone = subjectLogits(cfg, params, subject, [], 'first');
      const crowd: Companion[] = [
        { tokens: randomTokens(30, cfg.vocab_size, 2), joins: 0, chunk: 7 },
        { tokens: randomTokens(50, cfg.vocab_size, 3), joins: 1, chunk: 1 },
        { tokens: randomTokens(60, cfg.vocab_size, 4), joins: 2, chunk: 13 },
        { tokens: randomTokens(9, cfg.vocab_size, 5), joins: 3, chunk: 2 },
        // Enough decoding companions that a step's logits product has more than 8 rows.
        ...[6, 7, 8, 9, 10, 11].map((seed, i) => ({
          tokens: randomTokens(40, cfg.vocab_size, seed),
          joins: i % 3,
          chunk: 1,
        })),
      ];
      const threadCounts = k.name === 'native' ? [1, 2] : [1];
      const saved = k.getThreads();
      try {
        for (const threads of threadCounts) {
          if (k.name === 'native') k.setThreads(threads);
          for (const slot of ['first', 'middle', 'last'] as const) {
            const got = subjectLogits(cfg, params, subject, crowd, slot);
            got.forEach((row, step) => {
              const want = alone[step]!;
              for (let j = 0; j < row.length; j++) {
                if (!Object.is(row[j], want[j])) {
                  assert.fail(
                    `${label} ${name}: step ${step}, subject ${slot} in the batch, ${threads} thread(s): logit ${j} is ` +
                      `${row[j]} in the batch and ${want[j]} alone (difference ${row[j]! - want[j]!})`,
                  );
                }
              }
            });
          }
        }
      } finally {
        if (k.name === 'native') k.setThreads(saved);
      }
    }
  } finally {
    useKernels(previous);
  }
}

describe('a sequence gets bitwise the same logits alone and in any batch', () => {
  test('TypeScript reference kernels', () => checkInvariance(referenceKernels, 'reference'));
  test('native kernels, on every instruction-set path the CPU has', { skip: nativeMissing }, () => {
    forEachPath((isa) => checkInvariance(native!, `native ${isa}`));
  });
  test('bf16 weights: reference kernels, and native on every path and bf16 kernel', () => {
    checkInvariance(referenceKernels, 'reference bf16', 'bf16');
    if (!native) return;
    forEachPath((isa) => {
      try {
        native!.setBf16Widening(false);
        const own = native!.info().bf16;
        checkInvariance(native!, `native ${isa} ${own} bf16`, 'bf16');
        if (own !== 'widening') {
          native!.setBf16Widening(true);
          checkInvariance(native!, `native ${isa} widening bf16`, 'bf16');
        }
      } finally {
        native!.setBf16Widening(false);
      }
    });
  });
});
