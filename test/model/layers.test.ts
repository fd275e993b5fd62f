/**
 * Each layer's hand-written backward against central finite differences of the
 * independent float64 reference forward (src/model/reference64.ts), on small
 * shapes. The objective is L = Σ w ⊙ layer(x) for a fixed random w (plus the
 * weighted aux loss for the MoE layer), so dL/dy = w is fed to backward.
 *
 * Tolerances: analytic gradients are computed in float32 (relative rounding
 * ~1e-6), the differences in float64 with eps 1e-5 (truncation ~1e-10), so
 * |analytic - fd| <= 2e-4·|fd| + 2e-5·max|analytic| leaves a wide margin
 * while a wrong term (typically O(10%) of a gradient) fails.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AttentionLayer } from '../../src/model/layers/attention.js';
import { TiedEmbedding } from '../../src/model/layers/embedding.js';
import { GatedFfnLayer } from '../../src/model/layers/ffn.js';
import { LossLayer } from '../../src/model/layers/loss.js';
import { MoeLayer } from '../../src/model/layers/moe.js';
import { RmsNormLayer } from '../../src/model/layers/rmsnorm.js';
import { Arena } from '../../src/tensor/arena.js';
import { Rng } from '../../src/util/rng.js';
import { centralDiff, checkGradient, randn, sampleIndices, to64 } from './helpers.js';
import { attention64, gatedFfn64, loss64, matmul64, moe64, rmsnorm64 } from './reference64.js';

const EPS = 1e-5;
const TOL = { rtol: 2e-4, atolRel: 2e-5 };

function dot64(w: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += w[i]! * y[i]!;
  return s;
}

/** Checks every named input: analytic grads (float32) vs finite differences of objective(inputs64). */
function checkAll(
  inputs: Record<string, Float32Array>,
  grads: Record<string, Float32Array>,
  objective: (x: Record<string, Float64Array>) => number,
  samples = 40,
  seed = 99,
): void {
  const x64: Record<string, Float64Array> = {};
  for (const [k, v] of Object.entries(inputs)) x64[k] = to64(v);
  const rng = new Rng(seed);
  for (const name of Object.keys(inputs)) {
    const x = x64[name]!;
    const idx = sampleIndices(rng, x.length, samples);
    checkGradient(name, grads[name]!, (i) => centralDiff(() => objective(x64), x, i, EPS), idx, TOL);
  }
}

describe('layer gradients vs finite differences of the float64 reference', () => {
  test('rmsnorm', () => {
    const rng = new Rng(1);
    const rows = 4;
    const cols = 7;
    const x = randn(rng, rows * cols);
    const scale = randn(rng, cols);
    const w = randn(rng, rows * cols);
    const layer = new RmsNormLayer(cols, 1e-6);
    layer.forward(new Arena(), x, scale, rows);
    const dx = w.slice();
    const dScale = new Float32Array(cols);
    layer.backward(scale, dx, dScale);
    checkAll({ x, scale }, { x: dx, scale: dScale }, (v) =>
      dot64(to64(w), rmsnorm64(v.x!, v.scale!, rows, cols, 1e-6)),
    );
  });

  test('tied output projection (logits = x/sqrt(D)·Eᵀ) and embedding lookup', () => {
    const rng = new Rng(2);
    const V = 9;
    const D = 6;
    const rows = 5;
    const table = randn(rng, V * D);
    const x = randn(rng, rows * D);
    const w = randn(rng, rows * V);
    const emb = new TiedEmbedding(V, D);
    const arena = new Arena();
    emb.project(arena, table, x, rows);
    const dTable = new Float32Array(V * D);
    const dx = emb.projectBackward(arena, table, w, dTable);
    const objective = (v: Record<string, Float64Array>) => {
      const eT = new Float64Array(D * V);
      for (let r = 0; r < V; r++) for (let c = 0; c < D; c++) eT[c * V + r] = v.table![r * D + c]!;
      const logits = matmul64(v.x!, eT, rows, D, V).map((y) => y / Math.sqrt(D));
      return dot64(to64(w), logits);
    };
    checkAll({ x, table }, { x: dx, table: dTable }, objective);

    // Lookup: dE[id] accumulates every row that used it (ids repeat).
    const ids = new Int32Array([3, 1, 3, 0]);
    const h = emb.lookup(arena, table, ids);
    assert.deepEqual(Array.from(h.subarray(0, D)), Array.from(table.subarray(3 * D, 4 * D)));
    const dh = randn(rng, ids.length * D);
    const dT = new Float32Array(V * D);
    emb.lookupBackward(arena, dh, dT);
    for (let c = 0; c < D; c++) {
      assert.ok(Math.abs(dT[3 * D + c]! - (dh[c]! + dh[2 * D + c]!)) < 1e-6);
      assert.ok(Math.abs(dT[1 * D + c]! - dh[D + c]!) < 1e-6);
      assert.equal(dT[2 * D + c], 0);
    }
  });

  test('cross-entropy + z-loss', () => {
    const rng = new Rng(3);
    const rows = 6;
    const V = 7;
    const logits = randn(rng, rows * V, 2);
    const targets = new Int32Array([0, 6, 3, 3, 1, 5]);
    const zw = 0.3;
    const loss = new LossLayer(V);
    const arena = new Arena();
    const work = logits.slice();
    const sums = loss.forward(arena, work, targets, rows);
    const ref = loss64(to64(logits), targets, V);
    assert.ok(Math.abs(sums.ce / rows - ref.lm) < 1e-5 * ref.lm);
    assert.ok(Math.abs(sums.lse2 / rows - ref.z) < 1e-5 * ref.z);
    const d = loss.backward(1 / rows, zw / rows).slice();
    checkAll({ logits }, { logits: d }, (v) => {
      const r = loss64(v.logits!, targets, V);
      return r.lm + zw * r.z;
    });
  });

  test('attention with the relative-position bias (clamped buckets included)', () => {
    const rng = new Rng(4);
    const dims = { dModel: 6, heads: 2, dHead: 3, relBuckets: 6, relMaxDistance: 7 };
    const B = 2;
    const T = 10; // distances up to 9 > relMaxDistance: the last bucket is clamped
    const N = B * T;
    const HD = dims.heads * dims.dHead;
    const a = randn(rng, N * dims.dModel);
    const wts = {
      wq: randn(rng, dims.dModel * HD, 0.6),
      wk: randn(rng, dims.dModel * HD, 0.6),
      wv: randn(rng, dims.dModel * HD, 0.5),
      wo: randn(rng, HD * dims.dModel, 0.5),
      relBias: randn(rng, dims.relBuckets * dims.heads, 0.7),
    };
    const w = randn(rng, N * dims.dModel);
    const layer = new AttentionLayer(dims);
    const out = new Float32Array(N * dims.dModel);
    layer.forward(new Arena(), new Arena(), a, wts, B, T, out);
    const ref = attention64(to64(a), mapValues(wts, to64), { batch: B, seqLen: T, ...dims });
    for (let i = 0; i < out.length; i++) assert.ok(Math.abs(out[i]! - ref[i]!) < 1e-5, `attention out[${i}]`);
    const g = mapValues(wts, (v) => new Float32Array(v.length));
    const da = new Float32Array(N * dims.dModel);
    layer.backward(new Arena(), wts, g, w, da);
    const objective = (v: Record<string, Float64Array>) =>
      dot64(
        to64(w),
        attention64(
          v.a!,
          { wq: v.wq!, wk: v.wk!, wv: v.wv!, wo: v.wo!, relBias: v.relBias! },
          { batch: B, seqLen: T, ...dims },
        ),
      );
    checkAll({ a, ...wts }, { a: da, ...g }, objective, 40);
    // Every bucket is hit, so every relBias coordinate has a real gradient.
    for (let i = 0; i < g.relBias.length; i++) assert.notEqual(g.relBias[i], 0, `relBias grad ${i}`);
  });

  test('dense gated-GELU feed-forward', () => {
    const rng = new Rng(5);
    const D = 6;
    const F = 10;
    const rows = 5;
    const f = randn(rng, rows * D);
    const wts = { wi0: randn(rng, D * F, 0.5), wi1: randn(rng, D * F, 0.5), wo: randn(rng, F * D, 0.4) };
    const w = randn(rng, rows * D);
    const layer = new GatedFfnLayer(D, F);
    const out = new Float32Array(rows * D);
    layer.forward(new Arena(), f, wts, rows, out);
    const g = mapValues(wts, (v) => new Float32Array(v.length));
    const df = new Float32Array(rows * D);
    layer.backward(new Arena(), wts, g, w, df);
    checkAll({ f, ...wts }, { f: df, ...g }, (v) =>
      dot64(to64(w), gatedFfn64(v.f!, v.wi0!, v.wi1!, v.wo!, rows, D, F)),
    );
  });
});

describe('MoE layer gradients (experts, gates, router, aux loss) vs finite differences', () => {
  const cases = [
    { name: 'dropless, plain GELU experts', gated: false, cf: 0, groups: 1 },
    { name: 'capacity drops, plain experts', gated: false, cf: 1, groups: 1 },
    { name: 'capacity drops, gated experts, 2 groups', gated: true, cf: 1.5, groups: 2 },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const rng = new Rng(6);
      const D = 5;
      const F = 6;
      const E = 4;
      const rows = 12;
      const auxW = 0.7;
      const f = randn(rng, rows * D);
      const wts = {
        router: randn(rng, D * E, 1),
        wi: randn(rng, E * D * F, 0.5),
        wo: randn(rng, E * F * D, 0.4),
        ...(c.gated ? { wi1: randn(rng, E * D * F, 0.5) } : {}),
      };
      const w = randn(rng, rows * D);
      const layer = new MoeLayer({ dModel: D, dFf: F, experts: E, gated: c.gated });
      const out = new Float32Array(rows * D);
      const opts = { capacityFactor: c.cf, numGroups: c.groups, policy: 'all' as const };
      const stats = layer.forward(new Arena(), f, { ...wts, wi1: wts.wi1 ?? null }, rows, opts, out);
      const mo = { experts: E, dModel: D, dFf: F, ...opts };
      const ref = moe64(to64(f), { ...mapValues(wts, to64), wi1: wts.wi1 ? to64(wts.wi1) : null }, rows, mo);
      assert.equal(stats.dropped, ref.dropped, 'dropped');
      if (c.cf > 0) assert.ok(stats.dropped > 0, 'this case must drop assignments');
      assert.ok(Math.abs(stats.aux - ref.aux) < 1e-5, 'aux');
      for (let i = 0; i < out.length; i++) assert.ok(Math.abs(out[i]! - ref.out[i]!) < 1e-5, `moe out[${i}]`);

      const g = mapValues(wts, (v) => new Float32Array(v.length));
      const df = new Float32Array(rows * D);
      layer.backward(
        new Arena(),
        { ...wts, wi1: wts.wi1 ?? null },
        { ...g, wi1: g.wi1 ?? null },
        w,
        df,
        auxW,
      );
      const objective = (v: Record<string, Float64Array>) => {
        const r = moe64(v.f!, { router: v.router!, wi: v.wi!, wi1: v.wi1 ?? null, wo: v.wo! }, rows, mo);
        return dot64(to64(w), r.out) + auxW * r.aux;
      };
      checkAll({ f, ...wts }, { f: df, ...g }, objective, 40);
    });
  }

  test('the aux loss alone reaches the router through p only', () => {
    const rng = new Rng(7);
    const D = 4;
    const E = 3;
    const rows = 8;
    const f = randn(rng, rows * D);
    const wts = { router: randn(rng, D * E), wi: randn(rng, E * D * 2), wo: randn(rng, E * 2 * D) };
    const layer = new MoeLayer({ dModel: D, dFf: 2, experts: E, gated: false });
    const opts = { capacityFactor: 0, numGroups: 2, policy: 'all' as const };
    layer.forward(new Arena(), f, { ...wts, wi1: null }, rows, opts, new Float32Array(rows * D));
    const g = {
      router: new Float32Array(D * E),
      wi: new Float32Array(E * D * 2),
      wo: new Float32Array(E * 2 * D),
      wi1: null,
    };
    const df = new Float32Array(rows * D);
    layer.backward(new Arena(), { ...wts, wi1: null }, g, new Float32Array(rows * D), df, 1);
    assert.ok(g.wi.every((v) => v === 0) && g.wo.every((v) => v === 0), 'experts get no aux gradient');
    const mo = { experts: E, dModel: D, dFf: 2, ...opts };
    checkAll(
      { f, router: wts.router },
      { f: df, router: g.router },
      (v) => moe64(v.f!, { router: v.router!, wi: to64(wts.wi), wi1: null, wo: to64(wts.wo) }, rows, mo).aux,
    );
  });
});

function mapValues<T extends Record<string, Float32Array>, U>(
  o: T,
  fn: (v: Float32Array) => U,
): { [K in keyof T]: U } {
  const out = {} as { [K in keyof T]: U };
  for (const k of Object.keys(o) as (keyof T)[]) out[k] = fn(o[k]);
  return out;
}
