/**
 * The step's bookkeeping kernels (top2Route, routerGrad, lossSums, relBiasGrad, and crossEntropy's
 * padding rows): the native core against the TypeScript reference. They are serial float64 loops in the
 * same order on both sides, so every output is bitwise equal, the router entropy aside (its log may differ
 * in the last place); argument errors carry the same messages.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mat } from '../../src/backend/mat.js';
import type { Kernels } from '../../src/backend/ops.js';
import { referenceKernels } from '../../src/backend/reference.js';
import { native, nativeMissing, randomArray, randomInts } from './helpers.js';

/** Softmax rows of random logits: what the router hands the routing kernel. */
function router(rows: number, E: number, seed: number): { p: Float32Array; logits: Float32Array } {
  const logits = randomArray(rows * E, seed, -3, 3);
  const p = new Float32Array(rows * E);
  referenceKernels.softmaxRows(mat(logits, rows, E), mat(p, rows, E));
  return { p, logits };
}

interface Routed {
  first: Int32Array;
  second: Int32Array;
  gate1: Float32Array;
  gate2: Float32Array;
  slot1: Int32Array;
  slot2: Int32Array;
  offsets: Int32Array;
  token: Int32Array;
  gate: Float32Array;
  load: Int32Array;
  routed: Int32Array;
  firstCounts: Int32Array;
  stats: Float64Array;
}

function route(
  k: Kernels,
  rows: number,
  E: number,
  groups: number,
  capacity: number,
  coins: Float64Array,
  seed: number,
): Routed {
  const { p, logits } = router(rows, E, seed);
  const r: Routed = {
    first: new Int32Array(rows),
    second: new Int32Array(rows),
    gate1: new Float32Array(rows),
    gate2: new Float32Array(rows),
    slot1: new Int32Array(rows),
    slot2: new Int32Array(rows),
    offsets: new Int32Array(E + 1),
    token: new Int32Array(2 * rows),
    gate: new Float32Array(2 * rows),
    load: new Int32Array(E),
    routed: new Int32Array(E),
    firstCounts: new Int32Array(groups * E),
    stats: new Float64Array(4),
  };
  k.top2Route(
    mat(p, rows, E),
    mat(logits, rows, E),
    groups,
    capacity,
    coins,
    r.first,
    r.second,
    r.gate1,
    r.gate2,
    r.slot1,
    r.slot2,
    r.offsets,
    r.token,
    r.gate,
    r.load,
    r.routed,
    r.firstCounts,
    r.stats,
  );
  return r;
}

const same = (a: ArrayLike<number>, b: ArrayLike<number>): boolean =>
  a.length === b.length && Array.from(a).every((v, i) => Object.is(v, b[i]));

describe('step kernels: native against the reference', { skip: nativeMissing }, () => {
  for (const [rows, E, groups, capacity, withCoins] of [
    [64, 8, 2, 6, false],
    [60, 5, 3, 3, true],
    [33, 4, 1, 33, false],
  ] as const) {
    test(`top2Route and routerGrad: ${rows} tokens, ${E} experts, ${groups} groups, capacity ${capacity}${withCoins ? ', random policy' : ''}`, () => {
      const coins = withCoins ? Float64Array.from(randomArray(rows, 7, 0, 1)) : new Float64Array(0);
      const want = route(referenceKernels, rows, E, groups, capacity, coins, 11);
      const got = route(native!, rows, E, groups, capacity, coins, 11);
      for (const key of Object.keys(want) as (keyof Routed)[]) {
        if (key === 'stats') continue;
        assert.ok(same(got[key], want[key]), `${key} differs`);
      }
      assert.ok(same(got.stats.subarray(1), want.stats.subarray(1)), 'aux, dropped, assignments');
      assert.ok(Math.abs(got.stats[0]! - want.stats[0]!) <= 1e-12 * want.stats[0]!, 'entropy');
      if (capacity < rows / groups) assert.ok(want.stats[2]! > 0, 'the case drops assignments');
      const sum = (a: Int32Array) => a.reduce((s, v) => s + v, 0);
      assert.equal(sum(want.routed) - sum(want.load), want.stats[2]);

      const { p } = router(rows, E, 11);
      const A = want.stats[3]!;
      const dGate = randomArray(A, 12);
      const dp = (k: Kernels): Float32Array => {
        const out = new Float32Array(rows * E);
        k.routerGrad(
          mat(p, rows, E),
          want.first,
          want.second,
          want.slot1,
          want.slot2,
          dGate,
          want.firstCounts,
          groups,
          0.37,
          mat(out, rows, E),
        );
        return out;
      };
      assert.ok(same(dp(native!), dp(referenceKernels)), 'routerGrad differs');
    });
  }

  test('lossSums and crossEntropy with padding rows (target < 0: no loss, no gradient)', () => {
    const [rows, cols] = [40, 17];
    const logits = randomArray(rows * cols, 21, -4, 4);
    const targets = randomInts(rows, 22, cols);
    for (const r of [0, 5, 39]) targets[r] = -1;
    const run = (k: Kernels) => {
      const losses = new Float32Array(rows);
      const lse = new Float32Array(rows);
      const sums = new Float64Array(3);
      const lm = mat(logits.slice(), rows, cols);
      k.crossEntropy(lm, targets, losses, lse);
      k.lossSums(losses, lse, targets, sums);
      k.crossEntropyBackward(lm, lse, targets, 1 / 37, 1e-4 / 37, lm);
      return { losses, lse, sums, grad: lm.data };
    };
    const want = run(referenceKernels);
    const got = run(native!);
    assert.equal(want.sums[2], 37);
    for (const r of [0, 5, 39]) {
      assert.equal(got.losses[r], 0);
      assert.equal(got.lse[r], 0);
      assert.ok(got.grad.subarray(r * cols, (r + 1) * cols).every((v) => v === 0));
    }
    // The row kernels (exp, log) agree within their bounds; the sums of the same inputs are bitwise equal.
    const again = new Float64Array(3);
    referenceKernels.lossSums(got.losses, got.lse, targets, again);
    assert.ok(same(got.sums, again), 'lossSums differs');
    assert.ok(Math.abs(got.sums[0]! - want.sums[0]!) <= 1e-5 * want.sums[0]!);
  });

  test('relBiasGrad: the bucket scatter, j <= i only, accumulating', () => {
    const [heads, t, buckets] = [3, 9, 5];
    const dBias = randomArray(heads * t * t, 31);
    const bucketOf = new Int32Array(t * t);
    for (let i = 0; i < t; i++)
      for (let j = 0; j < t; j++) bucketOf[i * t + j] = j <= i ? Math.min(buckets - 1, i - j) : 99;
    const run = (k: Kernels) => {
      const out = randomArray(buckets * heads, 32);
      k.relBiasGrad(mat(dBias, heads * t, t), bucketOf, out);
      return out;
    };
    const want = run(referenceKernels);
    assert.ok(same(run(native!), want));
    // Bucket 0 of head 1 collects the diagonal of head 1 (plus its initial value).
    const start = randomArray(buckets * heads, 32)[1]!;
    let diag = start;
    for (let i = 0; i < t; i++) diag = Math.fround(diag + dBias[(t + i) * t + i]!);
    assert.equal(want[1], diag);
  });
});

describe('step kernels: argument errors, the same on both backends', () => {
  const f32 = (n: number) => new Float32Array(n);
  const i32 = (n: number) => new Int32Array(n);
  const cases: [string, (k: Kernels) => void, RegExp][] = [
    [
      'groups that do not divide the rows',
      (k) =>
        k.routerGrad(
          mat(f32(12), 6, 2),
          i32(6),
          i32(6),
          i32(6),
          i32(6),
          f32(0),
          i32(8),
          4,
          1,
          mat(f32(12), 6, 2),
        ),
      /routerGrad: groups=4 must be >= 1 and divide the 6 rows/,
    ],
    [
      'a slot past the gate gradients',
      (k) => {
        const slots = Int32Array.from([0, 1, 2, -1]);
        k.routerGrad(
          mat(f32(8), 4, 2),
          i32(4),
          Int32Array.from([1, 1, 1, 1]),
          slots,
          i32(4).fill(-1),
          f32(2),
          i32(2),
          1,
          1,
          mat(f32(8), 4, 2),
        );
      },
      /routerGrad: slot 2 in slot1 at 2 outside \[0, 2\)/,
    ],
    [
      'short sums',
      (k) => k.lossSums(f32(3), f32(3), i32(3), new Float64Array(2)),
      /lossSums: sums has 2 elements, needs 3/,
    ],
    [
      'a bucket out of range',
      (k) => k.relBiasGrad(mat(f32(8), 2, 2), Int32Array.from([0, 0, 3, 0]), f32(2)),
      /relBiasGrad: bucket 3 at 2 outside \[0, 2\)/,
    ],
    [
      'one expert',
      (k) =>
        k.top2Route(
          mat(f32(4), 4, 1),
          mat(f32(4), 4, 1),
          1,
          4,
          new Float64Array(0),
          i32(4),
          i32(4),
          f32(4),
          f32(4),
          i32(4),
          i32(4),
          i32(2),
          i32(8),
          f32(8),
          i32(1),
          i32(1),
          i32(1),
          new Float64Array(4),
        ),
      /top2Route: p has 1 columns: top-2 routing needs at least 2 experts/,
    ],
    [
      'a target past the vocabulary',
      (k) => k.crossEntropy(mat(f32(6), 2, 3), Int32Array.from([-1, 3]), f32(2), f32(2)),
      /crossEntropy: target 3 at row 1 outside \[0, 3\)/,
    ],
  ];
  for (const [what, call, re] of cases) {
    test(what, () => {
      assert.throws(() => call(referenceKernels), re, 'reference');
      if (native) assert.throws(() => call(native!), re, 'native');
    });
  }
});
