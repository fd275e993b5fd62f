import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Params } from '../../src/model/params.js';
import { Adafactor, adafactorBeta2 } from '../../src/optim/adafactor.js';
import {
  assertBitEqual,
  assertClose,
  cloneParams,
  params,
  RefAdafactorParam,
  randomParams,
  tensor,
} from './helpers.js';

const LR = 0.01;
const MIX2 = 2 ** -0.8; // 1 − β2 at t = 2
const B2 = 1 - MIX2;

describe('Adafactor β2 schedule', () => {
  it('is 1 − t^-0.8: 0 at the first step, then rising towards 1', () => {
    assert.equal(adafactorBeta2(1), 0);
    assertClose([adafactorBeta2(2)], [0.42565082250148256], 1e-15);
    assertClose([adafactorBeta2(10000)], [1 - 10 ** -3.2], 1e-15);
    assertClose([adafactorBeta2(4, 0.5)], [0.5], 1e-15);
  });

  it('drives the second moment: after two steps v = β2·g1² + (1−β2)·g2²', () => {
    const p = params([['b', tensor([0, 0], [2])]]);
    const opt = new Adafactor(p);
    opt.step(p, params([['b', tensor([3, -4], [2])]]), LR);
    opt.step(p, params([['b', tensor([1, 2], [2])]]), LR);
    const v = opt.stateTensors().get('b.v')!;
    assertClose(v.data, [B2 * 9 + MIX2 * 1, B2 * 16 + MIX2 * 4], 1e-7, 'v');
    assert.equal(opt.stepCount, 2);
  });
});

describe('Adafactor by hand', () => {
  it('2x2 matrix, two steps, factored statistics (no clipping)', () => {
    const p = params([['w', tensor([0.5, -0.5, 1, 2], [2, 2])]]);
    const opt = new Adafactor(p);
    // Step 1 (β2 = 0): g = [[1,2],[3,4]], g² = [[1,4],[9,16]].
    // R = row sums = [5, 25], C = column sums = [10, 20], ΣR = 30,
    // V̂ = R Cᵀ / 30 = [[5/3, 10/3], [25/3, 50/3]], U = g / sqrt(V̂):
    const U1 = [Math.sqrt(3 / 5), 2 * Math.sqrt(3 / 10), 3 * Math.sqrt(3 / 25), 4 * Math.sqrt(3 / 50)];
    // RMS(U1) = sqrt((3/5 + 6/5 + 27/25 + 24/25) / 4) = sqrt(0.96) < 1: no clipping.
    opt.step(p, params([['w', tensor([1, 2, 3, 4], [2, 2])]]), LR);
    const expected1 = [0.5, -0.5, 1, 2].map((th, k) => th - LR * U1[k]!);
    assertClose(p.get('w')!.data, expected1, 1e-7, 'θ after step 1');
    assertClose(opt.stateTensors().get('w.v_row')!.data, [5, 25], 1e-7, 'R1');
    assertClose(opt.stateTensors().get('w.v_col')!.data, [10, 20], 1e-7, 'C1');

    // Step 2: g = [[-1,1],[2,0]], g² row sums [2, 4], column sums [5, 1].
    const R = [B2 * 5 + MIX2 * 2, B2 * 25 + MIX2 * 4];
    const C = [B2 * 10 + MIX2 * 5, B2 * 20 + MIX2 * 1];
    const total = R[0]! + R[1]!;
    const g2 = [-1, 1, 2, 0];
    const U2 = g2.map((g, k) => g / Math.sqrt((R[k >> 1]! * C[k & 1]!) / total));
    assertClose(U2, [-0.8331824589175444, 0.7379258151707818, 0.8386107251139866, 0], 1e-12, 'U2 check');
    opt.step(p, params([['w', tensor(g2, [2, 2])]]), LR);
    assertClose(
      p.get('w')!.data,
      expected1.map((th, k) => th - LR * U2[k]!),
      1e-7,
      'θ after step 2',
    );
    assertClose(opt.stateTensors().get('w.v_row')!.data, R, 1e-7, 'R2');
    assertClose(opt.stateTensors().get('w.v_col')!.data, C, 1e-7, 'C2');
  });

  it('length-2 vector, two steps, full second moment', () => {
    const p = params([['b', tensor([2, -1], [2])]]);
    const opt = new Adafactor(p);
    // Step 1: v = g² + ε1, U = g/|g| = [1, -1], RMS 1: no clipping.
    opt.step(p, params([['b', tensor([3, -4], [2])]]), LR);
    assertClose(p.get('b')!.data, [2 - LR, -1 + LR], 1e-7, 'θ after step 1');
    // Step 2: v = β2·[9, 16] + (1−β2)·[1, 4], U = g / sqrt(v), RMS ≈ 0.577: no clipping.
    const v = [B2 * 9 + MIX2 * 1, B2 * 16 + MIX2 * 4];
    const U = [1 / Math.sqrt(v[0]!), 2 / Math.sqrt(v[1]!)];
    assertClose(U, [0.47644948337991694, 0.6627092274874906], 1e-12, 'U check');
    opt.step(p, params([['b', tensor([1, 2], [2])]]), LR);
    assertClose(p.get('b')!.data, [2 - LR - LR * U[0]!, -1 + LR - LR * U[1]!], 1e-7, 'θ after step 2');
  });

  it('clips the update when RMS(U) > 1', () => {
    // g = [[1,0],[0,2]]: R = [1, 4], C = [1, 4], ΣR = 5, U = [[√5, 0], [0, √5/2]],
    // RMS(U) = sqrt((5 + 5/4) / 4) = 1.25, so U is divided by 1.25.
    const g = params([['w', tensor([1, 0, 0, 2], [2, 2])]]);
    const p = params([['w', tensor([0, 0, 0, 0], [2, 2])]]);
    new Adafactor(p).step(p, g, LR);
    assertClose(p.get('w')!.data, [(-LR * Math.sqrt(5)) / 1.25, 0, 0, (-LR * Math.sqrt(5)) / 2 / 1.25], 1e-7);

    const unclipped = params([['w', tensor([0, 0, 0, 0], [2, 2])]]);
    new Adafactor(unclipped, { clipThreshold: Infinity }).step(unclipped, g, LR);
    assertClose(unclipped.get('w')!.data, [-LR * Math.sqrt(5), 0, 0, (-LR * Math.sqrt(5)) / 2], 1e-7);

    // Threshold d = 0.5: denominator RMS/d = 2.5.
    const tight = params([['w', tensor([0, 0, 0, 0], [2, 2])]]);
    new Adafactor(tight, { clipThreshold: 0.5 }).step(tight, g, LR);
    assertClose(
      tight.get('w')!.data,
      [(-LR * Math.sqrt(5)) / 2.5, 0, 0, (-LR * Math.sqrt(5)) / 2 / 2.5],
      1e-7,
    );
  });

  it('clips a vector update too', () => {
    // Step 2 with v = β2·[1e-6, 1] + (1−β2)·[1, 1]: U = [1/sqrt(v0), 1/sqrt(v1)], RMS > 1.
    const p = params([['b', tensor([0, 0], [2])]]);
    const opt = new Adafactor(p);
    opt.step(p, params([['b', tensor([0.001, 1], [2])]]), LR);
    const after1 = Float64Array.from(p.get('b')!.data);
    opt.step(p, params([['b', tensor([1, 1], [2])]]), LR);
    const v = [B2 * 1e-6 + MIX2, B2 * 1 + MIX2];
    const U = [1 / Math.sqrt(v[0]!), 1 / Math.sqrt(v[1]!)];
    const rms = Math.sqrt((U[0]! ** 2 + U[1]! ** 2) / 2);
    assert.ok(rms > 1.1, `test premise: RMS ${rms} engages clipping`);
    assertClose(p.get('b')!.data, [after1[0]! - (LR * U[0]!) / rms, after1[1]! - (LR * U[1]!) / rms], 1e-7);
  });
});

describe('Adafactor factoring', () => {
  it('factors matrices (both dims >= 2), keeps full moments for vectors and thin matrices', () => {
    const p = params([
      ['embed', tensor(new Array(12).fill(0), [4, 3])],
      ['experts', tensor(new Array(24).fill(0), [2, 3, 4])],
      ['scale', tensor([1, 1, 1], [3])],
      ['thin', tensor([0, 0, 0], [3, 1])],
    ]);
    const opt = new Adafactor(p);
    const state = opt.stateTensors();
    assert.deepEqual(
      [...state].map(([n, t]) => `${n} [${t.shape.join(',')}]`),
      [
        'embed.v_row [4]',
        'embed.v_col [3]',
        'experts.v_row [2,3]',
        'experts.v_col [2,4]',
        'scale.v [3]',
        'thin.v [3,1]',
      ],
    );
    assert.equal(opt.isFactored('embed'), true);
    assert.equal(opt.isFactored('thin'), false);
    const unfactored = new Adafactor(p, { minDimToFactor: 5 });
    assert.equal(unfactored.isFactored('embed'), false);
    assert.deepEqual(unfactored.stateTensors().get('embed.v')!.shape, [4, 3]);
  });

  it('matches the full second moment for a rank-1 gradient, differs otherwise', () => {
    // For g = a bᵀ, R_i C_j / ΣR = a_i² b_j² exactly, so the factored step equals the full one.
    const a = [1, -2, 0.5];
    const b = [0.3, 1, -4, 2];
    const rank1 = a.flatMap((ai) => b.map((bj) => ai * bj));
    const start = randomParams([['w', [3, 4]]], 7);
    const run = (minDimToFactor: number, g: number[]) => {
      const p = cloneParams(start);
      new Adafactor(p, { minDimToFactor, clipThreshold: Infinity }).step(
        p,
        params([['w', tensor(g, [3, 4])]]),
        LR,
      );
      return p.get('w')!.data;
    };
    assertClose(run(2, rank1), run(99, rank1), 1e-7, 'rank-1');

    const notRank1 = [...rank1];
    notRank1[0] = 5;
    const f = run(2, notRank1);
    const u = run(99, notRank1);
    assert.ok(
      f.some((x, k) => Math.abs(x - u[k]!) > 1e-4),
      'factored and full moments should differ for a general gradient',
    );
  });

  it('agrees with an independent float64 implementation over several steps', () => {
    const shapes: [string, number[]][] = [
      ['m', [5, 3]],
      ['v', [4]],
      ['e', [3, 2, 4]],
    ];
    const p = randomParams(shapes, 11);
    const opt = new Adafactor(p);
    const refs = new Map(
      shapes.map(([name, shape]) => [
        name,
        new RefAdafactorParam(p.get(name)!.data, shape, {
          factored: shape.length >= 2,
          clipThreshold: 1,
          rmsScope: 'matrix',
        }),
      ]),
    );
    for (let step = 0; step < 6; step++) {
      // Alternate dense and sparse-ish gradients so clipping engages on some steps and not others.
      const g = randomParams(shapes, 100 + step, step % 2 === 0 ? 1 : 0.01);
      if (step % 3 === 1) g.get('e')!.data.set([0, 0, 0, 5, 0, 0, 0, 0], 8);
      const lr = 0.01 / (step + 1);
      opt.step(p, g, lr);
      for (const [name, ref] of refs) ref.step(g.get(name)!.data, lr);
    }
    for (const [name, ref] of refs) {
      assertClose(p.get(name)!.data, ref.flatTheta(), 2e-6, `θ ${name}`);
      if (name !== 'v') {
        const [R, C] = ref.factors();
        assertClose(opt.stateTensors().get(`${name}.v_row`)!.data, R, 1e-5, `R ${name}`);
        assertClose(opt.stateTensors().get(`${name}.v_col`)!.data, C, 1e-5, `C ${name}`);
      }
    }
  });
});

describe('Adafactor expert tensors', () => {
  const E = 3;
  const D = 2;
  const F = 4;
  const stacked = (seed: number) => randomParams([['moe.wi', [E, D, F]]], seed);
  // Expert 1 gets a spiky gradient: its own RMS(U) > 1, so clipping engages for it alone.
  const grads = (step: number) => {
    const g = stacked(50 + step);
    g.get('moe.wi')!.data.set([1, 0, 0, 0, 0, 0, 0, 3], D * F);
    return g;
  };
  const split = (stack: Params): Params =>
    new Map(Array.from({ length: E }, (_, e) => [`expert${e}`, stack.get('moe.wi')!.row(e).clone()]));

  it('updates an [E,D,F] tensor exactly as E separate [D,F] matrices', () => {
    const p = stacked(3);
    const sep = split(p);
    const optStacked = new Adafactor(p);
    const optSep = new Adafactor(sep);
    for (let step = 0; step < 4; step++) {
      const g = grads(step);
      optStacked.step(p, g, LR);
      optSep.step(sep, split(g), LR);
    }
    assertBitEqual(split(p), sep, 'θ');
    const st = optStacked.stateTensors();
    const ss = optSep.stateTensors();
    for (let e = 0; e < E; e++) {
      assert.deepEqual(st.get('moe.wi.v_row')!.row(e).data, ss.get(`expert${e}.v_row`)!.data);
      assert.deepEqual(st.get('moe.wi.v_col')!.row(e).data, ss.get(`expert${e}.v_col`)!.data);
    }
  });

  it('leaves an expert with a zero gradient unchanged', () => {
    const p = stacked(4);
    const before = p.get('moe.wi')!.row(2).clone();
    const g = grads(0);
    g.get('moe.wi')!.row(2).fill(0);
    new Adafactor(p).step(p, g, LR);
    assert.deepEqual(p.get('moe.wi')!.row(2).data, before.data);
  });

  it("with rmsScope 'tensor' clips by the RMS of the whole tensor", () => {
    const p = stacked(5);
    const ref = new RefAdafactorParam(p.get('moe.wi')!.data, [E, D, F], {
      factored: true,
      clipThreshold: 1,
      rmsScope: 'tensor',
    });
    const perMatrix = new RefAdafactorParam(p.get('moe.wi')!.data, [E, D, F], {
      factored: true,
      clipThreshold: 1,
      rmsScope: 'matrix',
    });
    const opt = new Adafactor(p, { rmsScope: 'tensor' });
    const g = grads(0);
    opt.step(p, g, LR);
    ref.step(g.get('moe.wi')!.data, LR);
    const denoms = perMatrix.step(g.get('moe.wi')!.data, LR);
    assert.ok(denoms[1]! > 1.05, `test premise: expert 1 is clipped per matrix (denominator ${denoms[1]})`);
    assertClose(p.get('moe.wi')!.data, ref.flatTheta(), 1e-7, 'θ');
    const differs = p.get('moe.wi')!.data.some((x, k) => Math.abs(x - perMatrix.flatTheta()[k]!) > 1e-5);
    assert.ok(differs, 'whole-tensor and per-matrix clipping should differ here');
  });
});

describe('Adafactor options', () => {
  it('multiplies the step by max(ε2, RMS(θ)) when asked', () => {
    // Vector step 1: U = sign(g) = [1, -1]; RMS(θ) = sqrt((4 + 1) / 2).
    const p = params([['b', tensor([2, -1], [2])]]);
    new Adafactor(p, { multiplyByParameterScale: true }).step(p, params([['b', tensor([3, -4], [2])]]), LR);
    const scale = Math.sqrt(2.5);
    assertClose(p.get('b')!.data, [2 - LR * scale, -1 + LR * scale], 1e-7);

    const zero = params([['b', tensor([0, 0], [2])]]);
    new Adafactor(zero, { multiplyByParameterScale: true }).step(
      zero,
      params([['b', tensor([3, -4], [2])]]),
      LR,
    );
    assertClose(zero.get('b')!.data, [-LR * 1e-3, LR * 1e-3], 1e-7, 'ε2 floor');
  });

  it('applies decoupled weight decay to matrices only, by default', () => {
    // g = [3, -4] gives U = [1, -1] for both: the 1x2 matrix is too thin to factor, so it has a full moment too.
    const p = params([
      ['w', tensor([2, -1], [1, 2])],
      ['b', tensor([2, -1], [2])],
    ]);
    const g = params([
      ['w', tensor([3, -4], [1, 2])],
      ['b', tensor([3, -4], [2])],
    ]);
    new Adafactor(p, { weightDecay: 0.5 }).step(p, g, LR);
    assertClose(p.get('w')!.data, [2 - LR - LR * 0.5 * 2, -1 + LR - LR * 0.5 * -1], 1e-7, 'decayed matrix');
    assertClose(p.get('b')!.data, [2 - LR, -1 + LR], 1e-7, 'vector not decayed');
  });

  it('refuses bad options and mismatched arguments', () => {
    const p = params([['w', tensor([0, 0, 0, 0], [2, 2])]]);
    assert.throws(() => new Adafactor(p, { clipThreshold: 0 }), /clipThreshold/);
    assert.throws(() => new Adafactor(p, { epsilon1: 0 }), /epsilon1/);
    assert.throws(() => new Adafactor(p, { minDimToFactor: 0.5 }), /minDimToFactor/);
    const opt = new Adafactor(p);
    assert.throws(() => opt.step(p, params([['w', tensor([0, 0], [2])]]), LR), /'w' expected \[2, 2\]/);
    assert.throws(
      () => opt.step(p, params([['x', tensor([0, 0, 0, 0], [2, 2])]]), LR),
      /gradient 'w' is missing/,
    );
    assert.throws(() => opt.step(p, p, Number.NaN), /learning rate/);
    assert.equal(opt.stepCount, 0, 'a refused step does not count');
  });
});
