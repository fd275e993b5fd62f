/** Top-2 routing: choices and ties, capacity and drop order, groups, the random policy, statistics, sparsity. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Kernels, kernels, referenceKernels, useKernels } from '../../src/backend/index.js';
import { MoeLayer } from '../../src/model/layers/moe.js';
import { Top2Routing } from '../../src/model/layers/routing.js';
import { Arena } from '../../src/tensor/arena.js';
import { Rng } from '../../src/util/rng.js';
import { randn, to64 } from './helpers.js';
import { moe64 } from './reference64.js';

/** Router probabilities whose first/second choices are exactly the given experts. */
function probsFor(choices: [number, number][], E: number): Float32Array {
  const p = new Float32Array(choices.length * E).fill(0.1 / E);
  choices.forEach(([a, b], t) => {
    p[t * E + a] = 0.6;
    p[t * E + b] = 0.3;
  });
  return p;
}

const ALL = { capacityFactor: 0, numGroups: 1, policy: 'all' as const };

/** Logits whose softmax is p (log p): what the router hands the routing kernel beside p, for the entropy. */
function logOf(p: Float32Array): Float32Array {
  return Float32Array.from(p, (v) => Math.log(v));
}

describe('top-2 routing', () => {
  test('ties go to the lowest index, for the first and the second choice', () => {
    const E = 4;
    const p = new Float32Array([
      0.25, 0.25, 0.25, 0.25, 0.1, 0.4, 0.4, 0.1, 0.3, 0.1, 0.3, 0.3, 0.2, 0.5, 0.15, 0.15,
    ]);
    const r = new Top2Routing(E).route(p, 4, ALL, logOf(p));
    assert.deepEqual(Array.from(r.first), [0, 1, 0, 1]);
    assert.deepEqual(Array.from(r.second), [1, 2, 2, 0]);
    assert.ok(Math.abs(r.gate1[1]! - 0.5) < 1e-7 && Math.abs(r.gate2[1]! - 0.5) < 1e-7);
    assert.ok(Math.abs(r.gate1[3]! - 0.5 / 0.7) < 1e-7 && Math.abs(r.gate2[3]! - 0.2 / 0.7) < 1e-7);
  });

  test('all first choices take slots before any second choice, each in token order', () => {
    // S = 6, E = 4, factor 1: C = ceil(6/4) = 2.
    const choices: [number, number][] = [
      [0, 1],
      [0, 1],
      [0, 2],
      [1, 0],
      [1, 0],
      [2, 3],
    ];
    const probs = probsFor(choices, 4);
    const r = new Top2Routing(4).route(probs, 6, { ...ALL, capacityFactor: 1 }, logOf(probs));
    assert.equal(r.capacity, 2);
    const kept1 = Array.from(r.slot1, (s) => s >= 0);
    const kept2 = Array.from(r.slot2, (s) => s >= 0);
    // Token 2's first choice finds expert 0 full; token 3's first choice (expert 1) still
    // beats tokens 0 and 1's second choices, which arrive later and are dropped.
    assert.deepEqual(kept1, [true, true, false, true, true, true]);
    assert.deepEqual(kept2, [false, false, true, false, false, true]);
    assert.equal(r.dropped, 5);
    assert.deepEqual(Array.from(r.load), [2, 2, 2, 1]);
    // Counting sort: expert blocks in order, tokens ascending within each.
    assert.deepEqual(Array.from(r.offsets), [0, 2, 4, 6, 7]);
    assert.deepEqual(Array.from(r.token.subarray(0, r.assignments)), [0, 1, 3, 4, 2, 5, 5]);
    const gates = [2 / 3, 2 / 3, 2 / 3, 2 / 3, 1 / 3, 2 / 3, 1 / 3];
    for (let a = 0; a < r.assignments; a++) assert.ok(Math.abs(r.gate[a]! - gates[a]!) < 1e-6, `gate ${a}`);
  });

  test('capacity counts per group; dropless keeps everything; aux and stats per group', () => {
    const choices: [number, number][] = [
      [0, 1],
      [0, 1],
      [0, 3],
      [2, 3],
      [2, 3],
      [2, 1],
    ];
    const p = probsFor(choices, 4);
    // Two groups of 3: C = ceil(1.5·3/4) = 2 per group.
    const r = new Top2Routing(4).route(p, 6, { capacityFactor: 1.5, numGroups: 2, policy: 'all' }, logOf(p));
    assert.equal(r.capacity, 2);
    assert.deepEqual(
      Array.from(r.slot1, (s) => s >= 0),
      [true, true, false, true, true, false],
    );
    assert.deepEqual(
      Array.from(r.slot2, (s) => s >= 0),
      [true, true, true, true, true, true],
    );
    assert.equal(r.dropped, 2);
    // aux per group = E·Σ_e mean p_e · frac_e; group 1: frac = [1,0,0,0], mean p_0 = 0.6.
    assert.ok(Math.abs(r.aux - 4 * 0.6) < 1e-6, `aux ${r.aux}`);
    const free = new Top2Routing(4).route(p, 6, { capacityFactor: 0, numGroups: 2, policy: 'all' }, logOf(p));
    assert.equal(free.dropped, 0);
    assert.equal(free.assignments, 12);
    assert.throws(
      () => new Top2Routing(4).route(p, 6, { ...ALL, numGroups: 4 }, logOf(p)),
      /num_groups \(4\) must divide/,
    );
  });

  test("policy 'random' keeps a second choice only when u < 2·g2, one u per token, group by group", () => {
    const E = 3;
    const rows = 40;
    const rng = new Rng(11);
    const p = new Float32Array(rows * E);
    for (let t = 0; t < rows; t++) {
      const a = 0.5 + 0.5 * rng.uniform();
      const b = (1 - a) * (0.3 + 0.7 * rng.uniform());
      p.set([a, b, 1 - a - b], t * E);
    }
    const opts = { capacityFactor: 0, numGroups: 2, policy: 'random' as const };
    const r1 = new Top2Routing(E).route(p, rows, { ...opts, rng: new Rng(5) }, logOf(p));
    const u = new Rng(5);
    let keptSecond = 0;
    for (let t = 0; t < rows; t++) {
      const expect = u.uniform() < 2 * r1.gate2[t]!;
      assert.equal(r1.slot2[t]! >= 0, expect, `token ${t}`);
      if (expect) keptSecond++;
    }
    assert.ok(keptSecond > 0 && keptSecond < rows, 'the policy must both keep and refuse some');
    assert.equal(r1.dropped, 0, 'policy refusals are not capacity drops');
    const again = new Top2Routing(E).route(p, rows, { ...opts, rng: new Rng(5) }, logOf(p));
    assert.deepEqual(Array.from(again.slot2), Array.from(r1.slot2), 'same seed, same routing');
    const other = new Top2Routing(E).route(p, rows, { ...opts, rng: new Rng(6) }, logOf(p));
    assert.notDeepEqual(Array.from(other.slot2), Array.from(r1.slot2), 'another seed routes differently');
  });

  test('router entropy: the one-log-per-token path (with logits) equals -Σ p log p', () => {
    const E = 6;
    const rows = 10;
    const rng = new Rng(14);
    const logits = randn(rng, rows * E, 3);
    const p = new Float32Array(rows * E);
    let direct = 0;
    for (let t = 0; t < rows; t++) {
      const row = Array.from(logits.subarray(t * E, (t + 1) * E), (l) => Math.exp(l));
      const z = row.reduce((a, b) => a + b, 0);
      row.forEach((v, e) => {
        p[t * E + e] = v / z;
        direct -= (v / z) * Math.log(v / z);
      });
    }
    direct /= rows;
    const plain = new Top2Routing(E).route(p, rows, ALL, logOf(p)).entropy;
    const fast = new Top2Routing(E).route(p, rows, ALL, logits).entropy;
    assert.ok(Math.abs(plain - direct) < 1e-6 * direct, `${plain} vs ${direct}`);
    assert.ok(Math.abs(fast - direct) < 1e-6 * direct, `${fast} vs ${direct}`);
  });

  test('routing matches the float64 reference on random inputs with drops', () => {
    const rng = new Rng(12);
    const E = 5;
    const D = 4;
    const rows = 30;
    const f = randn(rng, rows * D);
    const router = randn(rng, D * E, 1.5);
    const layer = new MoeLayer({ dModel: D, dFf: 3, experts: E, gated: false });
    const wi = randn(rng, E * D * 3);
    const wo = randn(rng, E * 3 * D);
    const opts = { capacityFactor: 1.2, numGroups: 3, policy: 'all' as const };
    const stats = layer.forward(
      new Arena(),
      f,
      { router, wi, wi1: null, wo },
      rows,
      opts,
      new Float32Array(rows * D),
    );
    const ref = moe64(to64(f), { router: to64(router), wi: to64(wi), wi1: null, wo: to64(wo) }, rows, {
      experts: E,
      dModel: D,
      dFf: 3,
      ...opts,
    });
    const r = layer.routing;
    assert.deepEqual(Array.from(r.first), ref.e1);
    assert.deepEqual(Array.from(r.second), ref.e2);
    assert.deepEqual(
      Array.from(r.slot1, (s) => s >= 0),
      ref.kept1,
    );
    assert.deepEqual(
      Array.from(r.slot2, (s) => s >= 0),
      ref.kept2,
    );
    assert.deepEqual(stats.load, ref.load);
    assert.equal(stats.dropped, ref.dropped);
    assert.ok(stats.dropped > 0);
    assert.equal(stats.droppedFraction, ref.dropped / (2 * rows));
    assert.ok(Math.abs(stats.routerEntropy - ref.entropy) < 1e-5);
    assert.ok(Math.abs(stats.aux - ref.aux) < 1e-5);
  });
});

describe('sparse compute', () => {
  test('expert matmuls cost exactly the kept assignments, independent of the number of experts', () => {
    const flops = { total: 0, emptyCalls: 0 };
    const counting: Kernels = {
      ...referenceKernels,
      sgemm(alpha, a, b, beta, c) {
        flops.total += a.rows * a.cols * b.cols;
        if (a.rows === 0 || b.cols === 0 || a.cols === 0) flops.emptyCalls++;
        referenceKernels.sgemm(alpha, a, b, beta, c);
      },
      // The grouped product costs the rows of its groups (empty experts cost nothing).
      sgemmGrouped(offsets, alpha, a, b, strideB, beta, c, strideC) {
        const groups = offsets.length - 1;
        const d = a.trans ? a.rows : a.cols;
        flops.total += (offsets[groups]! - offsets[0]!) * d * c.cols;
        referenceKernels.sgemmGrouped(offsets, alpha, a, b, strideB, beta, c, strideC);
      },
    };
    const prev = kernels();
    useKernels(counting);
    try {
      for (const E of [4, 16]) {
        for (const gated of [false, true]) {
          const rng = new Rng(13);
          const D = 6;
          const F = 5;
          const rows = 24;
          const f = randn(rng, rows * D);
          const w = {
            router: randn(rng, D * E),
            wi: randn(rng, E * D * F),
            wi1: gated ? randn(rng, E * D * F) : null,
            wo: randn(rng, E * F * D),
          };
          const layer = new MoeLayer({ dModel: D, dFf: F, experts: E, gated });
          flops.total = 0;
          const arena = new Arena();
          layer.forward(
            arena,
            f,
            w,
            rows,
            { capacityFactor: 1, numGroups: 1, policy: 'all' },
            new Float32Array(rows * D),
          );
          const A = layer.routing.assignments;
          const mats = gated ? 3 : 2;
          assert.equal(flops.total, rows * D * E + A * D * F * mats, `forward, E=${E}`);
          flops.total = 0;
          const g = {
            router: new Float32Array(D * E),
            wi: new Float32Array(E * D * F),
            wi1: gated ? new Float32Array(E * D * F) : null,
            wo: new Float32Array(E * F * D),
          };
          layer.backward(arena, w, g, randn(rng, rows * D), new Float32Array(rows * D), 0.1);
          assert.equal(flops.total, 2 * rows * D * E + 2 * A * D * F * mats, `backward, E=${E}`);
          assert.equal(flops.emptyCalls, 0, 'no empty matrix products');
        }
      }
    } finally {
      useKernels(prev);
    }
  });
});
