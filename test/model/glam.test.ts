/**
 * The whole GLaM stack: loss parts against the float64 reference forward, and
 * every parameter's gradient against central finite differences of the
 * reference total loss, on tiny configs covering dense layers, dropless and
 * dropping MoE, gated experts, two groups, the random policy and padding.
 *
 * Tolerances: loss parts agree to 1e-5 relative (float32 vs float64). For the
 * gradients, eps = 1e-5 in float64 (truncation ~1e-10), and each checked
 * coordinate must satisfy |analytic - fd| <= 1e-3·|fd| + 1e-4·max|analytic| of
 * its tensor, far above float32 rounding (~1e-6) and far below any missing or
 * mis-scaled term. Routing decisions of float32 and float64 agree for these
 * seeds (checked: equal drop counts and loads).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { GlamConfig } from '../../src/model/config.js';
import { GlamModel } from '../../src/model/glam.js';
import { glamForward64 } from '../../src/model/reference64.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/util/rng.js';
import {
  centralDiff,
  checkGradient,
  params64,
  randomParams,
  randomTokens,
  sampleIndices,
  tinyConfig,
} from './helpers.js';

interface Case {
  name: string;
  cfg: GlamConfig;
  capacityFactor?: number;
  /** Seed of the policy-'random' coins (a fresh Rng per evaluation). */
  coinSeed?: number;
  /** Target positions set to -1 (padding). */
  padding?: number[];
  expectDrops?: boolean;
}

const B = 2;
const T = 6;

const CASES: Case[] = [
  { name: 'dense, with padding targets', cfg: tinyConfig({ n_experts: 0 }), padding: [0, 7, 11] },
  { name: 'MoE dropless', cfg: tinyConfig({ capacity_factor: 0 }) },
  { name: 'MoE with capacity drops', cfg: tinyConfig({ capacity_factor: 1 }), expectDrops: true },
  {
    name: 'MoE gated experts, 3 layers',
    cfg: tinyConfig({ expert_gated: true, n_layers: 3, capacity_factor: 1.5 }),
  },
  {
    name: 'MoE num_groups 2 with drops',
    cfg: tinyConfig({ num_groups: 2, capacity_factor: 1 }),
    expectDrops: true,
  },
  {
    name: "MoE policy 'random'",
    cfg: tinyConfig({ second_expert_policy: 'random', capacity_factor: 1.5, moe_layer_interval: 1 }),
    coinSeed: 21,
  },
];

function setup(c: Case, seed = 1) {
  const params = randomParams(c.cfg, seed);
  const rng = new Rng(seed + 100);
  const inputs = randomTokens(rng, B * T, c.cfg.vocab_size);
  const targets = randomTokens(rng, B * T, c.cfg.vocab_size);
  for (const i of c.padding ?? []) targets[i] = -1;
  const opts = (): { capacityFactor?: number; rng?: Rng } => ({
    capacityFactor: c.capacityFactor,
    rng: c.coinSeed === undefined ? undefined : new Rng(c.coinSeed),
  });
  return { params, inputs, targets, opts };
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

describe('GlamModel forward vs the float64 reference', () => {
  for (const c of CASES) {
    test(c.name, () => {
      const { params, inputs, targets, opts } = setup(c);
      const model = new GlamModel(c.cfg, params);
      const got = model.forward(inputs, targets, B, T, opts());
      const ref = glamForward64(c.cfg, params64(params), inputs, targets, B, T, opts());
      assert.equal(got.tokens, ref.tokens);
      assert.equal(got.tokens, B * T - (c.padding?.length ?? 0));
      for (const k of ['lm', 'z', 'total'] as const)
        assert.ok(rel(got[k], ref[k]) < 1e-5, `${k}: ${got[k]} vs ${ref[k]}`);
      assert.ok(Math.abs(got.aux - ref.aux) <= 1e-5 * Math.abs(ref.aux), `aux: ${got.aux} vs ${ref.aux}`);
      assert.equal(got.dropped, ref.dropped);
      if (c.expectDrops) assert.ok(got.dropped > 0, 'this case must drop assignments');
      assert.equal(got.moe.length, ref.moe.length);
      got.moe.forEach((s, i) => {
        const r = ref.moe[i]!;
        assert.equal(s.layer, r.layer);
        assert.deepEqual(s.load, r.load);
        assert.equal(s.dropped, r.dropped);
        assert.equal(s.droppedFraction, r.dropped / (2 * B * T));
        assert.ok(rel(s.routerEntropy, r.entropy) < 1e-5);
        assert.ok(rel(s.aux, r.aux) < 1e-5);
      });
      assert.ok(
        Math.abs(got.total - (got.lm + c.cfg.z_loss_weight * got.z + c.cfg.aux_loss_weight * got.aux)) <
          1e-12,
      );

      // logits() without targets matches the reference logits at the same capacity.
      const logits = model.logits(inputs, B, T, {
        capacityFactor: c.capacityFactor ?? c.cfg.capacity_factor,
        rng: opts().rng,
      });
      assert.equal(logits.length, B * T * c.cfg.vocab_size);
      for (let i = 0; i < logits.length; i++) {
        assert.ok(Math.abs(logits[i]! - ref.logits[i]!) < 1e-4, `logits[${i}]`);
      }
      // By default logits() runs at eval_capacity_factor (0: dropless).
      const evalLogits = model.logits(inputs, B, T, { rng: opts().rng });
      const evalRef = glamForward64(c.cfg, params64(params), inputs, targets, B, T, {
        capacityFactor: c.cfg.eval_capacity_factor,
        rng: opts().rng,
      });
      assert.equal(evalRef.dropped, 0);
      for (let i = 0; i < evalLogits.length; i++) {
        assert.ok(Math.abs(evalLogits[i]! - evalRef.logits[i]!) < 1e-4, `eval logits[${i}]`);
      }
    });
  }
});

describe('GlamModel gradients vs finite differences of the float64 reference total loss', () => {
  for (const c of CASES) {
    test(c.name, () => {
      const { params, inputs, targets, opts } = setup(c);
      const model = new GlamModel(c.cfg, params);
      model.zeroGrads();
      model.forward(inputs, targets, B, T, opts());
      model.backward();
      const p64 = params64(params);
      const total = () => glamForward64(c.cfg, p64, inputs, targets, B, T, opts()).total;
      const pick = new Rng(7);
      for (const [name, g] of model.grads) {
        const x = p64.get(name)!;
        const idx = sampleIndices(pick, x.length, 12);
        // Embedding rows of unused tokens have zero gradient; always include a used row too.
        if (name === 'embed.weight')
          idx.push(inputs[0]! * c.cfg.d_model + 1, targets[1]! * c.cfg.d_model + 2);
        checkGradient(name, g.data, (i) => centralDiff(total, x, i, 1e-5), idx, {
          rtol: 1e-3,
          atolRel: 1e-4,
        });
      }
    });
  }

  test('backward(scale) scales and accumulates; zeroGrads clears', () => {
    const c = CASES[2]!;
    const { params, inputs, targets, opts } = setup(c);
    const model = new GlamModel(c.cfg, params);
    model.forward(inputs, targets, B, T, opts());
    model.backward();
    const once = new Map([...model.grads].map(([k, v]) => [k, v.data.slice()]));
    model.forward(inputs, targets, B, T, opts());
    model.backward(0.5);
    for (const [k, v] of model.grads) {
      const a = once.get(k)!;
      for (let i = 0; i < a.length; i++) {
        assert.ok(Math.abs(v.data[i]! - 1.5 * a[i]!) <= 1e-6 * (1 + Math.abs(a[i]!)), k);
      }
    }
    model.zeroGrads();
    for (const v of model.grads.values()) assert.ok(v.data.every((x) => x === 0));
    assert.throws(() => model.backward(), /needs a forward/);
  });
});

describe('GlamModel input checks and memory', () => {
  const cfg = tinyConfig({ num_groups: 3 });
  const params = randomParams(cfg, 2);
  const model = new GlamModel(cfg, params);
  const ids = (n: number) => new Int32Array(n).fill(1);

  test('clear errors for bad tokens, lengths and shapes', () => {
    assert.throws(() => model.forward(ids(5), ids(6), 2, 3), /inputs has 5 ids, expected batch·seqLen = 2·3/);
    assert.throws(() => model.forward(ids(6), ids(5), 2, 3), /targets has 5 ids/);
    assert.throws(() => model.forward(ids(18), ids(18), 2, 9), /seqLen 9 exceeds max_seq_len 8/);
    const bad = ids(6);
    bad[4] = 11;
    assert.throws(
      () => model.forward(bad, ids(6), 2, 3),
      /token id 11 at position 4 is outside the vocabulary \[0, 11\)/,
    );
    assert.throws(() => model.forward(ids(6), bad, 2, 3), /target id 11 at position 4/);
    assert.throws(
      () => model.forward(ids(8), ids(8), 2, 4),
      /num_groups \(3\) must divide the number of tokens batch·seqLen = 8/,
    );
    assert.throws(() => model.logits(ids(6), 0, 6), /batch must be an integer >= 1/);
    const random = tinyConfig({ second_expert_policy: 'random' });
    assert.throws(
      () => new GlamModel(random, randomParams(random, 1)).forward(ids(6), ids(6), 1, 6),
      /'random' needs opts.rng/,
    );
  });

  test('parameters are checked by name and shape', () => {
    const missing = new Map(params);
    missing.delete('layers.1.ffn.wo');
    assert.throws(() => new GlamModel(cfg, missing), /missing parameter 'layers.1.ffn.wo' \[12, 8\]/);
    const wrong = new Map(params);
    wrong.set('layers.0.moe.router', Tensor.zeros([8, 5]));
    assert.throws(
      () => new GlamModel(cfg, wrong),
      /'layers.0.moe.router' has shape \[8, 5\], expected \[8, 4\]/,
    );
    const extra = new Map(params);
    extra.set('layers.0.moe.wi_1', Tensor.zeros([4, 8, 6]));
    assert.throws(() => new GlamModel(cfg, extra), /unexpected parameter 'layers.0.moe.wi_1'/);
  });

  test('after warm-up a training step allocates no new activation storage', () => {
    const rng = new Rng(3);
    const step = () => {
      model.forward(randomTokens(rng, 24, 11), randomTokens(rng, 24, 11), 3, 8);
      model.backward();
    };
    step();
    const held = model.activationFloats;
    for (let i = 0; i < 3; i++) step();
    assert.equal(model.activationFloats, held);
  });
});
