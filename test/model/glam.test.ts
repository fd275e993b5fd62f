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
import { loadNative } from '../../src/backend/native.js';
import type { GlamConfig } from '../../src/model/config.js';
import { GlamModel } from '../../src/model/glam.js';
import { Grads, Weights } from '../../src/model/weights.js';
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
import { glamForward64 } from './reference64.js';

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
  const model = new GlamModel(c.cfg);
  const ws = model.workspace();
  const grads = Grads.like(params);
  const batch = { inputs, targets, batch: B, seqLen: T };
  return { params, inputs, targets, opts, model, ws, grads, batch };
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

describe('GlamModel forward vs the float64 reference', () => {
  for (const c of CASES) {
    test(c.name, () => {
      const { params, inputs, targets, opts, model, ws, batch } = setup(c);
      const got = model.forward(params, ws, batch, opts());
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
      const logits = model.logits(params, ws, inputs, B, T, {
        capacityFactor: c.capacityFactor ?? c.cfg.capacity_factor,
        rng: opts().rng,
      });
      assert.equal(logits.length, B * T * c.cfg.vocab_size);
      for (let i = 0; i < logits.length; i++) {
        assert.ok(Math.abs(logits[i]! - ref.logits[i]!) < 1e-4, `logits[${i}]`);
      }
      // By default logits() runs at eval_capacity_factor (0: dropless).
      const evalLogits = model.logits(params, ws, inputs, B, T, { rng: opts().rng });
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
      const { params, inputs, targets, opts, model, ws, grads, batch } = setup(c);
      model.forward(params, ws, batch, opts());
      model.backward(params, grads, ws);
      const p64 = params64(params);
      const total = () => glamForward64(c.cfg, p64, inputs, targets, B, T, opts()).total;
      const pick = new Rng(7);
      for (const [name, g] of grads) {
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

  test('backward(scale) scales and accumulates; zero() clears', () => {
    const c = CASES[2]!;
    const { params, opts, model, ws, grads, batch } = setup(c);
    model.forward(params, ws, batch, opts());
    model.backward(params, grads, ws);
    const once = grads.data.slice();
    model.forward(params, ws, batch, opts());
    model.backward(params, grads, ws, 0.5);
    for (let i = 0; i < once.length; i++) {
      assert.ok(Math.abs(grads.data[i]! - 1.5 * once[i]!) <= 1e-6 * (1 + Math.abs(once[i]!)), `grad ${i}`);
    }
    grads.zero();
    assert.ok(grads.data.every((x) => x === 0));
    assert.throws(() => model.backward(params, grads, ws), /needs a forward/);
  });
});

describe('GlamModel input checks and memory', () => {
  const cfg = tinyConfig({ num_groups: 3 });
  const params = randomParams(cfg, 2);
  const model = new GlamModel(cfg);
  const ws = model.workspace();
  const ids = (n: number) => new Int32Array(n).fill(1);
  const fwd = (inputs: Int32Array, targets: Int32Array, batch: number, seqLen: number) =>
    model.forward(params, ws, { inputs, targets, batch, seqLen });

  test('clear errors for bad tokens, lengths and shapes', () => {
    assert.throws(() => fwd(ids(5), ids(6), 2, 3), /inputs has 5 ids, expected batch·seqLen = 2·3/);
    assert.throws(() => fwd(ids(6), ids(5), 2, 3), /targets has 5 ids/);
    assert.throws(() => fwd(ids(18), ids(18), 2, 9), /seqLen 9 exceeds max_seq_len 8/);
    const bad = ids(6);
    bad[4] = 11;
    assert.throws(
      () => fwd(bad, ids(6), 2, 3),
      /token id 11 at position 4 is outside the vocabulary \[0, 11\)/,
    );
    assert.throws(() => fwd(ids(6), bad, 2, 3), /target id 11 at position 4/);
    assert.throws(
      () => fwd(ids(8), ids(8), 2, 4),
      /num_groups \(3\) must divide the number of tokens batch·seqLen = 8/,
    );
    assert.throws(() => model.logits(params, ws, ids(6), 0, 6), /batch must be an integer >= 1/);
    const random = tinyConfig({ second_expert_policy: 'random' });
    const rm = new GlamModel(random);
    assert.throws(
      () =>
        rm.forward(randomParams(random, 1), rm.workspace(), {
          inputs: ids(6),
          targets: ids(6),
          batch: 1,
          seqLen: 6,
        }),
      /'random' needs opts.rng/,
    );
  });

  test('weights and gradients of another config are refused', () => {
    const other = tinyConfig({ num_groups: 3, d_ff: 16 });
    const batch = { inputs: ids(6), targets: ids(6), batch: 2, seqLen: 3 };
    assert.throws(() => model.forward(randomParams(other, 1), ws, batch), /layout differs/);
    model.forward(params, ws, batch);
    assert.throws(() => model.backward(params, new Grads(new Weights(other).layout), ws), /layout differs/);
    assert.throws(
      () => model.forward(params, new GlamModel(other).workspace(), batch),
      /workspace was made for another config/,
    );
  });

  test('after warm-up a training step allocates no new activation storage', () => {
    const rng = new Rng(3);
    const grads = Grads.like(params);
    const step = () => {
      fwd(randomTokens(rng, 24, 11), randomTokens(rng, 24, 11), 3, 8);
      model.backward(params, grads, ws);
    };
    step();
    const held = ws.activationFloats;
    for (let i = 0; i < 3; i++) step();
    assert.equal(ws.activationFloats, held);
  });
});

describe('one Weights, many workspaces', () => {
  const c = CASES[4]!; // MoE, two groups, drops: routing state matters
  test('interleaved passes on two workspaces equal each pass run alone (bitwise)', () => {
    const a = setup(c, 1);
    const other = setup(c, 2); // other tokens, same config
    const alone = a.model.forward(a.params, a.ws, a.batch, a.opts());
    a.model.backward(a.params, a.grads, a.ws);
    const gradsAlone = a.grads.data.slice();

    const ws1 = a.model.workspace();
    const ws2 = a.model.workspace();
    const g1 = Grads.like(a.params);
    const g2 = Grads.like(a.params);
    const first = a.model.forward(a.params, ws1, a.batch, a.opts());
    a.model.forward(a.params, ws2, other.batch, a.opts()); // another request in between
    a.model.backward(a.params, g1, ws1);
    a.model.backward(a.params, g2, ws2);
    assert.deepEqual(first, alone);
    assert.ok(
      g1.data.every((v, i) => Object.is(v, gradsAlone[i])),
      'gradients differ',
    );
    assert.ok(
      g2.data.some((v, i) => v !== gradsAlone[i]),
      'the other workspace computed its own batch',
    );
  });

  test('weights are one 64-byte-aligned buffer with named views; get() throws on unknown names', () => {
    const { params } = setup(c);
    assert.equal(params.data.length, params.layout.size);
    for (const s of params.layout.slots) {
      const t = params.get(s.spec.name);
      assert.deepEqual(t.shape, s.spec.shape);
      assert.equal(t.data.buffer, params.data.buffer);
      assert.equal((t.data.byteOffset - params.data.byteOffset) % 64, 0, s.spec.name);
    }
    const native = loadNative();
    if (native.ok) {
      assert.equal((native.kernels.addon.addressMod64(params.data.buffer) + params.data.byteOffset) % 64, 0);
    }
    assert.throws(() => params.get('layers.9.attn.wq'), /no parameter 'layers.9.attn.wq'/);
    assert.equal(params.size, params.layout.specs.length);
  });

  test('weights over a SharedArrayBuffer give the same results', () => {
    const { params, model, ws, batch, opts } = setup(c);
    const shared = Weights.from(c.cfg, params, { shared: true });
    assert.ok(shared.data.buffer instanceof SharedArrayBuffer);
    assert.deepEqual(model.forward(shared, ws, batch, opts()), model.forward(params, ws, batch, opts()));
  });

  test('Weights.from checks names and shapes', () => {
    const { params } = setup(c);
    const missing = new Map(params);
    missing.delete('layers.1.ffn.wo');
    assert.throws(() => Weights.from(c.cfg, missing), /missing tensor 'layers.1.ffn.wo' \[12, 8\]/);
    const wrong = new Map(params);
    wrong.set('layers.0.moe.router', Tensor.zeros([8, 5]));
    assert.throws(
      () => Weights.from(c.cfg, wrong),
      /'layers.0.moe.router' has shape \[8, 5\], expected \[8, 4\]/,
    );
    const extra = new Map(params);
    extra.set('layers.0.moe.wi_1', Tensor.zeros([4, 8, 6]));
    assert.throws(() => Weights.from(c.cfg, extra), /unexpected tensor 'layers.0.moe.wi_1'/);
  });

  test('gradients: one buffer for zero, the sum of squares and clipping', () => {
    const { params } = setup(c);
    const g = Grads.like(params);
    g.get('final_norm.scale').data.set([3, 4]);
    g.get('embed.weight').data[5] = 12;
    assert.equal(g.sumSquares(), 9 + 16 + 144);
    assert.equal(g.clipByGlobalNorm(6.5), 13);
    assert.ok(Math.abs(Math.sqrt(g.sumSquares()) - 6.5) < 1e-6);
    assert.equal(g.clipByGlobalNorm(100), 6.5);
    g.get('layers.0.attn.wq').data[0] = Number.NaN;
    assert.ok(Number.isNaN(g.sumSquares()));
    g.zero();
    assert.equal(g.sumSquares(), 0);
  });
});
