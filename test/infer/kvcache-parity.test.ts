/**
 * KV-cache decoding against a full recompute: every position's logits from the incremental forward
 * (prefill chunks of any size, decode rows, several sequences of different lengths in one step) equal
 * the training model's `logits` over the whole prefix within 1e-5 relative (row max), on dense, MoE,
 * gated-expert and grouped configs; and the MoE counters match what routing did.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { IncrementalModel, type StepSegment } from '../../src/infer/forward.js';
import { KvCachePool, type KvSequence } from '../../src/infer/kv-cache.js';
import type { GlamConfig } from '../../src/model/config.js';
import type { Weights } from '../../src/model/weights.js';
import { fullLogits, randomTokens, rowRelError, testConfig, testWeights } from './helpers.js';

const CONFIGS: [string, GlamConfig][] = [
  ['dense', testConfig('tiny')],
  ['MoE', testConfig('tiny-moe')],
  ['gated experts', testConfig('tiny-moe', { expert_gated: true })],
  [
    'grouped (num_groups 2), MoE every layer',
    testConfig('tiny-moe', { num_groups: 2, moe_layer_interval: 1 }),
  ],
];

/**
 * Feeds each sequence's tokens in chunks of the given sizes, all sequences in the same steps (a
 * sequence with nothing left sits a step out), asking for every row's logits; returns them per sequence.
 */
function incrementalLogits(
  cfg: GlamConfig,
  params: Weights,
  seqs: number[][],
  chunks: number[][],
  blockSize: number,
): Float32Array[] {
  const pool = new KvCachePool(cfg, { budgetBytes: 64 << 20, blockSize });
  const model = new IncrementalModel(cfg, params, pool);
  const V = cfg.vocab_size;
  const caches: KvSequence[] = seqs.map(() => pool.newSequence());
  const out = seqs.map((s) => new Float32Array(s.length * V));
  const fed = seqs.map(() => 0);
  const step = seqs.map(() => 0);
  while (fed.some((f, i) => f < seqs[i]!.length)) {
    const segments: StepSegment[] = [];
    const owners: number[] = [];
    for (let i = 0; i < seqs.length; i++) {
      if (fed[i]! >= seqs[i]!.length) continue;
      const plan = chunks[i]!;
      const n = Math.min(plan[step[i]! % plan.length]!, seqs[i]!.length - fed[i]!);
      segments.push({ seq: caches[i]!, tokens: seqs[i]!.slice(fed[i]!, fed[i]! + n) });
      owners.push(i);
      step[i]!++;
    }
    const rows = segments.reduce((a, s) => a + s.tokens.length, 0);
    const x = model.forward(
      segments,
      Int32Array.from({ length: rows }, (_, r) => r),
    );
    const logits = model.logits(x, rows, new Float32Array(rows * V));
    let r = 0;
    segments.forEach((s, k) => {
      const i = owners[k]!;
      out[i]!.set(logits.subarray(r * V, (r + s.tokens.length) * V), fed[i]! * V);
      r += s.tokens.length;
      fed[i]! += s.tokens.length;
    });
  }
  for (const c of caches) pool.release(c);
  assert.equal(pool.usage().blocksUsed, 0, 'every block returns to the pool');
  return out;
}

describe('KV-cache logits equal a full recompute', () => {
  for (const [name, cfg] of CONFIGS) {
    test(name, () => {
      const params = testWeights(cfg, 7);
      // Lengths cross block boundaries (block size 8) and the log-bucket range (distance >= 16);
      // even lengths so the grouped config's full recompute divides into its groups.
      const lengths = [38, 6, 64, 20];
      const seqs = lengths.map((n, i) => randomTokens(n, cfg.vocab_size, 100 + i));
      // Chunk plans: a long prompt then decode; one token at a time; big uneven chunks; mixed.
      const chunks = [[16, 1, 1, 5, 1], [1], [30, 13, 21], [3, 1, 8]];
      const got = incrementalLogits(cfg, params, seqs, chunks, 8);
      const V = cfg.vocab_size;
      let worst = 0;
      seqs.forEach((tokens, i) => {
        const want = fullLogits(cfg, params, tokens);
        for (let p = 0; p < tokens.length; p++) {
          const e = rowRelError(got[i]!.subarray(p * V, (p + 1) * V), want.subarray(p * V, (p + 1) * V));
          assert.ok(
            e <= 1e-5,
            `${name}: sequence ${i} position ${p}: relative error ${e.toExponential(2)} > 1e-5`,
          );
          worst = Math.max(worst, e);
        }
      });
      assert.ok(worst > 0 || name === 'dense', 'the comparison is not vacuous (different code paths)');
    });
  }
});

describe('eval_capacity_factor > 0 at inference', () => {
  const cfg = testConfig('tiny-moe', { eval_capacity_factor: 1.0 });
  const params = testWeights(cfg, 9);

  test('a prompt prefilled as one chunk drops as the full forward with that capacity does', () => {
    const tokens = randomTokens(40, cfg.vocab_size, 5);
    const pool = new KvCachePool(cfg, { budgetBytes: 16 << 20 });
    const model = new IncrementalModel(cfg, params, pool);
    const seq = pool.newSequence();
    const x = model.forward([{ seq, tokens }], Int32Array.from(tokens.keys()));
    const V = cfg.vocab_size;
    const got = model.logits(x, tokens.length, new Float32Array(tokens.length * V));
    const want = fullLogits(cfg, params, tokens, 1.0);
    const dropless = fullLogits(cfg, params, tokens, 0);
    assert.ok(model.counters[0]!.dropped > 0, 'capacity 1.0 over 40 tokens and 8 experts drops some');
    let differs = false;
    for (let p = 0; p < tokens.length; p++) {
      const row = got.subarray(p * V, (p + 1) * V);
      assert.ok(rowRelError(row, want.subarray(p * V, (p + 1) * V)) <= 1e-5, `position ${p}`);
      if (rowRelError(row, dropless.subarray(p * V, (p + 1) * V)) > 1e-3) differs = true;
    }
    assert.ok(differs, 'the drops change some logits (the test sees the capacity)');
  });

  test('decode steps never drop: one token per sequence has capacity >= 1', () => {
    const pool = new KvCachePool(cfg, { budgetBytes: 16 << 20 });
    const model = new IncrementalModel(cfg, params, pool);
    const seqs = [pool.newSequence(), pool.newSequence(), pool.newSequence()];
    for (let t = 0; t < 12; t++) {
      model.forward(
        seqs.map((seq, i) => ({ seq, tokens: [(t * 31 + i * 7) % cfg.vocab_size] })),
        Int32Array.of(0, 1, 2),
      );
    }
    const c = model.counters[0]!;
    assert.equal(c.dropped, 0);
    assert.equal(c.tokens, 36);
    assert.equal(
      c.load.reduce((a, b) => a + b, 0),
      72,
      'two kept assignments per token',
    );
  });
});
