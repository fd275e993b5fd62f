/**
 * The optimizer kernels (sumSquares, fill, the Adafactor passes): native against the reference on
 * shapes from 1 to several threads' worth (rank-3 stacks included), bitwise the same on 1 and 2 threads,
 * and argument errors naming the shapes on both backends.
 *
 * Bounds (u = 2^-24): the native kernels run the reference's float64 arithmetic, but add long sums in
 * blocks (vectorised, then per fixed unit of work) rather than strictly left to right. So:
 * - the apply passes and the full statistics v are the same operations in the same order: exact;
 * - factored statistics R, C are float64 sums rounded once to float32: at most one float32 ulp apart
 *   (2u·|ref|) where the float64 sums straddle a rounding boundary;
 * - Σ U² (float64; native regroups it as ΣR·Σ_j (1/C_j)·Σ_i g²/R_i to skip a pass over g) inherits
 *   those one-ulp differences of R and C (U² moves by at most ~4u relative): 8u·|ref|;
 * - sumSquares (float64, non-negative terms): 1e-12·|ref|.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Kernels } from '../../src/backend/ops.js';
import { referenceKernels } from '../../src/backend/reference.js';
import { assertClose, forEachPath, native, nativeMissing, randomArray, U } from './helpers.js';

/** [slices, rows, cols] */
const STACKS: [number, number, number][] = [
  [1, 1, 1],
  [2, 0, 5],
  [1, 5, 0],
  [1, 7, 33],
  [1, 33, 7],
  [1, 257, 257],
  [3, 33, 257],
  [2, 3, 20_000],
  [4, 600, 300],
];
/** [slices, size] for the full second moment */
const FULL: [number, number][] = [
  [1, 1],
  [1, 7],
  [2, 33],
  [1, 257],
  [3, 200_003],
];
const LENGTHS = [0, 1, 7, 33, 257, 200_003, 1_000_001];

interface FactoredRun {
  vRow: Float32Array;
  vCol: Float32Array;
  sumSq: Float64Array;
  p: Float32Array;
}

function factoredCase(slices: number, rows: number, cols: number, seed: number) {
  const n = slices * rows * cols;
  const g = randomArray(n, seed, -2, 2);
  // A zero row and column in the first slice: ε1 alone then keeps the statistics positive.
  if (rows > 1 && cols > 1) {
    g.fill(0, 0, cols);
    for (let i = 0; i < rows; i++) g[i * cols] = 0;
  }
  return {
    g,
    vRow: randomArray(slices * rows, seed + 1, 0.5, 4),
    vCol: randomArray(slices * cols, seed + 2, 0.5, 4),
    p: randomArray(n, seed + 3),
    steps: Float64Array.from({ length: slices }, (_, s) => 1e-2 / (s + 1)),
  };
}

/** Stats then apply on copies, with the given kernels. */
function runFactored(k: Kernels, c: ReturnType<typeof factoredCase>, dims: number[]): FactoredRun {
  const [slices, rows, cols] = dims as [number, number, number];
  const out = { vRow: c.vRow.slice(), vCol: c.vCol.slice(), sumSq: new Float64Array(slices), p: c.p.slice() };
  k.adafactorFactoredStats(c.g, out.vRow, out.vCol, slices, rows, cols, 0.6, 0.4, 1e-30, out.sumSq);
  k.adafactorFactoredApply(c.g, out.vRow, out.vCol, out.p, slices, rows, cols, c.steps, 1e-3);
  return out;
}

function assertSame(what: string, a: ArrayLike<number>, b: ArrayLike<number>): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

/** Runs fn with the native pool at 1 and then 2 threads, restoring the size. */
function onThreads<T>(fn: () => T): [T, T] {
  const before = native!.getThreads();
  try {
    native!.setThreads(1);
    const one = fn();
    native!.setThreads(2);
    return [one, fn()];
  } finally {
    native!.setThreads(before);
  }
}

describe('reference optimizer kernels', () => {
  test('sumSquares and fill', () => {
    assert.equal(referenceKernels.sumSquares(new Float32Array([3, -4])), 25);
    assert.equal(referenceKernels.sumSquares(new Float32Array(0)), 0);
    const x = new Float32Array([1, 2, 3]);
    referenceKernels.fill(x.subarray(1), 0);
    assert.deepEqual([...x], [1, 0, 0]);
  });

  test('a factored 2x2 step by hand', () => {
    // g = [[1, 2], [3, 4]], first step (β2 = 0): R = [5, 25], C = [10, 20], ΣR = 30,
    // U_ij = g_ij·sqrt(30/R_i)/sqrt(C_j).
    const g = new Float32Array([1, 2, 3, 4]);
    const vRow = new Float32Array(2);
    const vCol = new Float32Array(2);
    const sumSq = new Float64Array(1);
    referenceKernels.adafactorFactoredStats(g, vRow, vCol, 1, 2, 2, 0, 1, 1e-30, sumSq);
    assert.deepEqual([...vRow, ...vCol], [5, 25, 10, 20]);
    const u = [
      1 * Math.sqrt(30 / 5 / 10),
      2 * Math.sqrt(30 / 5 / 20),
      3 * Math.sqrt(30 / 25 / 10),
      4 * Math.sqrt(30 / 25 / 20),
    ];
    assert.ok(Math.abs(sumSq[0]! - u.reduce((a, x) => a + x * x, 0)) < 1e-12);
    const p = new Float32Array(4);
    referenceKernels.adafactorFactoredApply(g, vRow, vCol, p, 1, 2, 2, new Float64Array([0.5]), 0);
    assertClose(
      'p',
      p,
      u.map((x) => -0.5 * x),
      (i) => 2 * U * Math.abs(u[i]!),
    );
  });
});

describe('native optimizer kernels vs reference', { skip: nativeMissing }, () => {
  test('sumSquares: float64 sums, NaN and Infinity propagate, thread count does not matter', () => {
    for (const n of LENGTHS) {
      const x = randomArray(n, 11 + n, -3, 3);
      const ref = referenceKernels.sumSquares(x);
      forEachPath((path) => {
        const got = native!.sumSquares(x);
        assert.ok(Math.abs(got - ref) <= 1e-12 * ref, `${path} n=${n}: ${got} vs ${ref}`);
      });
      const [one, two] = onThreads(() => native!.sumSquares(x));
      assert.ok(Object.is(one, two), `n=${n}: 1 thread ${one}, 2 threads ${two}`);
      if (n > 0) {
        for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
          const y = x.slice();
          y[n - 1] = bad;
          const s = native!.sumSquares(y);
          assert.ok(!Number.isFinite(s), `n=${n} with ${bad}: ${s}`);
        }
        const big = x.slice();
        big[0] = 3.4e38;
        assert.ok(Number.isFinite(native!.sumSquares(big)), 'float32 squares do not overflow float64');
      }
    }
  });

  test('fill', () => {
    for (const n of LENGTHS) {
      const x = randomArray(n + 2, 5);
      const edge = [x[0], x[n + 1]];
      native!.fill(x.subarray(1, n + 1), 0);
      assert.ok(x.subarray(1, n + 1).every((v) => v === 0));
      assert.deepEqual([x[0], x[n + 1]], edge, 'fill stays inside the view');
    }
  });

  test('factored Adafactor passes on matrices and stacks', () => {
    for (const [slices, rows, cols] of STACKS) {
      const dims = [slices, rows, cols];
      const label = `[${dims.join(',')}]`;
      const c = factoredCase(slices, rows, cols, rows + cols);
      const ref = runFactored(referenceKernels, c, dims);
      forEachPath((path) => {
        const got = runFactored(native!, c, dims);
        assertClose(`${path} ${label} vRow`, got.vRow, ref.vRow, (i) => 2 * U * Math.abs(ref.vRow[i]!));
        assertClose(`${path} ${label} vCol`, got.vCol, ref.vCol, (i) => 2 * U * Math.abs(ref.vCol[i]!));
        assertClose(`${path} ${label} sumSq`, got.sumSq, ref.sumSq, (i) => 8 * U * ref.sumSq[i]!);
        // Apply alone, from the same statistics: the same operations in the same order.
        const p = c.p.slice();
        const p2 = c.p.slice();
        referenceKernels.adafactorFactoredApply(
          c.g,
          ref.vRow,
          ref.vCol,
          p,
          slices,
          rows,
          cols,
          c.steps,
          1e-3,
        );
        native!.adafactorFactoredApply(c.g, ref.vRow, ref.vCol, p2, slices, rows, cols, c.steps, 1e-3);
        assertSame(`${path} ${label} apply`, p2, p);
      });
      const [one, two] = onThreads(() => runFactored(native!, c, dims));
      for (const key of ['vRow', 'vCol', 'sumSq', 'p'] as const)
        assertSame(`${label} ${key} 1 vs 2 threads`, one[key], two[key]);
    }
  });

  test('a stack of E matrices equals E single-matrix calls, bitwise', () => {
    const [slices, rows, cols] = [4, 600, 300];
    const c = factoredCase(slices, rows, cols, 99);
    const whole = runFactored(native!, c, [slices, rows, cols]);
    for (let s = 0; s < slices; s++) {
      const m = rows * cols;
      const one = runFactored(
        native!,
        {
          g: c.g.subarray(s * m, (s + 1) * m),
          vRow: c.vRow.subarray(s * rows, (s + 1) * rows),
          vCol: c.vCol.subarray(s * cols, (s + 1) * cols),
          p: c.p.subarray(s * m, (s + 1) * m),
          steps: c.steps.subarray(s, s + 1),
        },
        [1, rows, cols],
      );
      assertSame(`slice ${s} p`, one.p, whole.p.subarray(s * m, (s + 1) * m));
      assertSame(`slice ${s} vCol`, one.vCol, whole.vCol.subarray(s * cols, (s + 1) * cols));
      assertSame(`slice ${s} sumSq`, one.sumSq, whole.sumSq.subarray(s, s + 1));
    }
  });

  test('full second-moment Adafactor passes', () => {
    for (const [slices, size] of FULL) {
      const n = slices * size;
      const g = randomArray(n, size, -2, 2);
      g[0] = 0;
      const v0 = randomArray(n, size + 1, 0.5, 4);
      const p0 = randomArray(n, size + 2);
      const steps = Float64Array.from({ length: slices }, (_, s) => 1e-2 * (s + 1));
      const run = (k: Kernels) => {
        const out = { v: v0.slice(), sumSq: new Float64Array(slices), p: p0.slice() };
        k.adafactorFullStats(g, out.v, slices, size, 0.6, 0.4, 1e-30, out.sumSq);
        k.adafactorFullApply(g, out.v, out.p, slices, size, steps, 1e-3);
        return out;
      };
      const ref = run(referenceKernels);
      forEachPath((path) => {
        const got = run(native!);
        assertSame(`${path} [${slices},${size}] v`, got.v, ref.v);
        assertClose(`${path} [${slices},${size}] sumSq`, got.sumSq, ref.sumSq, (i) => 1e-12 * ref.sumSq[i]!);
        assertSame(`${path} [${slices},${size}] p`, got.p, ref.p);
      });
      const [one, two] = onThreads(() => run(native!));
      for (const key of ['v', 'sumSq', 'p'] as const)
        assertSame(`[${slices},${size}] ${key} 1 vs 2 threads`, one[key], two[key]);
    }
  });
});

describe('optimizer kernel argument errors', () => {
  const f = (n: number) => new Float32Array(n);
  const d = (n: number) => new Float64Array(n);
  const cases = (k: Kernels): [string, () => void, RegExp][] => [
    [
      'factored stats, short g',
      () => k.adafactorFactoredStats(f(5), f(2), f(3), 1, 2, 3, 0, 1, 1e-30, d(1)),
      /adafactorFactoredStats: g has 5 elements, needs 6 \(slices=1 rows=2 cols=3\)/,
    ],
    [
      'factored stats, short vCol',
      () => k.adafactorFactoredStats(f(12), f(4), f(5), 2, 2, 3, 0, 1, 1e-30, d(2)),
      /adafactorFactoredStats: vCol has 5 elements, needs 6 \(slices=2 rows=2 cols=3\)/,
    ],
    [
      'factored stats, short sumSq',
      () => k.adafactorFactoredStats(f(12), f(4), f(6), 2, 2, 3, 0, 1, 1e-30, d(1)),
      /adafactorFactoredStats: sumSq has 1 elements, needs 2 \(slices=2 rows=2 cols=3\)/,
    ],
    [
      'factored apply, short p',
      () => k.adafactorFactoredApply(f(6), f(2), f(3), f(4), 1, 2, 3, d(1), 0),
      /adafactorFactoredApply: p has 4 elements, needs 6 \(slices=1 rows=2 cols=3\)/,
    ],
    [
      'factored apply, short vRow',
      () => k.adafactorFactoredApply(f(6), f(1), f(3), f(6), 1, 2, 3, d(1), 0),
      /adafactorFactoredApply: vRow has 1 elements, needs 2 \(slices=1 rows=2 cols=3\)/,
    ],
    [
      'factored stats, fractional rows',
      () => k.adafactorFactoredStats(f(6), f(2), f(3), 1, 1.5, 3, 0, 1, 1e-30, d(1)),
      /adafactorFactoredStats: rows must be a non-negative integer, got 1.5/,
    ],
    [
      'full stats, short v',
      () => k.adafactorFullStats(f(10), f(9), 2, 5, 0, 1, 1e-30, d(2)),
      /adafactorFullStats: v has 9 elements, needs 10 \(slices=2 rows=1 cols=5\)/,
    ],
    [
      'full apply, short stepSizes',
      () => k.adafactorFullApply(f(10), f(10), f(10), 2, 5, d(1), 0),
      /adafactorFullApply: stepSizes has 1 elements, needs 2 \(slices=2 rows=1 cols=5\)/,
    ],
  ];

  test('reference', () => {
    for (const [what, fn, re] of cases(referenceKernels)) assert.throws(fn, re, what);
  });

  test('native wrapper and the raw addon', { skip: nativeMissing }, () => {
    for (const [what, fn, re] of cases(native!)) assert.throws(fn, re, what);
    // The addon checks on its own (a direct call must not crash).
    const raw = native!.addon as unknown as Record<string, (...a: unknown[]) => unknown>;
    const addonCases: [string, unknown[], RegExp][] = [
      [
        'adafactorFactoredStats',
        [f(5), f(2), f(3), 1, 2, 3, 0, 1, 1e-30, d(1)],
        /adafactorFactoredStats: g has 5 elements, needs 6 \(slices=1 rows=2 cols=3\)/,
      ],
      [
        'adafactorFactoredApply',
        [f(6), f(2), f(3), f(6), 1, 2, 3, f(1), 0],
        /adafactorFactoredApply: stepSizes must be a Float64Array/,
      ],
      [
        'adafactorFullStats',
        [f(10), f(9), 2, 5, 0, 1, 1e-30, d(2)],
        /adafactorFullStats: v has 9 elements, needs 10 \(slices=2 rows=1 cols=5\)/,
      ],
      [
        'adafactorFullApply',
        [f(10), f(10), f(10), 2, 5, d(2)],
        /adafactorFullApply: expected 7 arguments, got 6/,
      ],
      ['sumSquares', [[1, 2]], /sumSquares: x must be a Float32Array/],
      ['fill', [f(2), 'zero'], /fill: value must be a number/],
    ];
    for (const [name, args, re] of addonCases) assert.throws(() => raw[name]!(...args), re, name);
  });
});
