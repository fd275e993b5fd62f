import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mat, rowRange, transpose } from '../../src/backend/mat.js';
import { referenceKernels } from '../../src/backend/reference.js';
import {
  assertClose,
  forEachPath,
  type GemmCase,
  gemmBound,
  gemmCase,
  gemmSizes,
  gemmViews,
  native,
  nativeMissing,
  randomArray,
  runBatched,
  runGemm,
} from './helpers.js';

const TRANS: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];
const name = (g: GemmCase) =>
  `${g.transA ? 'T' : 'N'}${g.transB ? 'T' : 'N'} m=${g.m} n=${g.n} k=${g.k} ld=${g.lda},${g.ldb},${g.ldc} ` +
  `alpha=${g.alpha} beta=${g.beta}`;

interface Prepared {
  g: GemmCase;
  a: Float32Array;
  b: Float32Array;
  c0: Float32Array;
  expected: Float32Array;
  bound: (i: number) => number;
}

/** Inputs, the reference result and the per-element bound for one case. */
function prepare(g: GemmCase, seed: number): Prepared {
  const sizes = gemmSizes(g);
  const a = randomArray(sizes.a, seed);
  const b = randomArray(sizes.b, seed + 1);
  // beta = 0 must ignore C entirely, NaN included.
  const c0 = g.beta === 0 ? new Float32Array(sizes.c).fill(Number.NaN) : randomArray(sizes.c, seed + 2);
  const expected = c0.slice();
  runGemm(referenceKernels, g, a, b, expected);
  return { g, a, b, c0, expected, bound: gemmBound(g, a, b, c0) };
}

function runNative(p: Prepared): Float32Array {
  const { g } = p;
  const c = p.c0.slice();
  runGemm(native!, g, p.a, p.b, c);
  return c;
}

/** Elements of C outside the m x n window (padding between rows) must be left alone. */
function assertPaddingUntouched(p: Prepared, c: Float32Array): void {
  for (let i = 0; i < c.length; i++) {
    if (i % p.g.ldc >= p.g.n) assert.ok(Object.is(c[i], p.c0[i]), `padding element ${i} changed`);
  }
}

function check(p: Prepared, label: string): void {
  const c = runNative(p);
  const inWindow = (i: number) => i % p.g.ldc < p.g.n;
  assertClose(`${label} ${name(p.g)}`, c, p.expected, (i) => (inWindow(i) ? p.bound(i) : 0));
  assertPaddingUntouched(p, c);
}

describe('native sgemm vs reference', { skip: nativeMissing }, () => {
  const cases: GemmCase[] = [];
  for (const [ta, tb] of TRANS) {
    for (const s of [1, 7, 33, 257]) cases.push(gemmCase(ta, tb, s, s, s));
    cases.push(gemmCase(ta, tb, 7, 33, 257, 3, 0.5, 0));
    cases.push(gemmCase(ta, tb, 257, 7, 33, 5, 1, 0.75));
    cases.push(gemmCase(ta, tb, 33, 257, 1, 1, -2, 1));
    cases.push(gemmCase(ta, tb, 64, 256, 128, 0, 1, 0));
    cases.push(gemmCase(ta, tb, 19, 45, 300, 17, 1.25, -0.5));
    // Few rows / few columns: B (or A) read in place instead of packed.
    cases.push(gemmCase(ta, tb, 2, 70, 90, 1, 1, 0.5));
    cases.push(gemmCase(ta, tb, 3, 40, 70, 2, 1, 0));
    cases.push(gemmCase(ta, tb, 6, 130, 33, 0, -1, 0));
    cases.push(gemmCase(ta, tb, 50, 3, 90, 1, 1, 0.5));
    cases.push(gemmCase(ta, tb, 90, 4, 45, 0, 2, 0));
  }
  cases.push(gemmCase(false, false, 512, 128, 512, 0, 1, 0));
  cases.push(gemmCase(false, true, 512, 128, 512, 4, 1, 1));
  cases.push(gemmCase(true, false, 130, 530, 270, 2, 0.5, 0.25));

  test('every transpose case, odd and transformer shapes, leading dims, alpha/beta', () => {
    cases.forEach((g, i) => {
      const p = prepare(g, 100 + i);
      forEachPath((path) => check(p, path));
    });
  });

  test('k = 0 and alpha = 0 scale C by beta without reading A or B', () => {
    for (const [alpha, k] of [
      [0, 5],
      [1, 0],
    ] as const) {
      const g = gemmCase(false, false, 4, 6, k, 2, alpha, 0.5);
      const p = prepare(g, 7);
      // NaN in A must not leak when alpha = 0 (BLAS semantics: A and B are not referenced).
      p.a.fill(Number.NaN);
      const c = runNative(p);
      for (let i = 0; i < c.length; i++) {
        const want = i % g.ldc < g.n ? 0.5 * p.c0[i]! : p.c0[i]!;
        assert.ok(Math.abs(c[i]! - want) <= 1e-7, `element ${i}: ${c[i]} vs ${want}`);
      }
    }
  });

  test('sizes with a zero dimension leave C untouched', () => {
    const c = new Float32Array([1, 2, 3]);
    runGemm(native!, gemmCase(false, false, 0, 3, 4), new Float32Array(0), new Float32Array(12), c);
    runGemm(native!, gemmCase(false, false, 1, 0, 4), new Float32Array(4), new Float32Array(0), c);
    assert.deepEqual([...c], [1, 2, 3]);
  });

  test('the bound check rejects a wrong product', () => {
    // Guards against a vacuous comparison: a product missing its last k term must fail it.
    const g = gemmCase(false, false, 9, 9, 40);
    const p = prepare(g, 3);
    const wrong = p.c0.slice();
    const [av, bv, cv] = gemmViews(g, p.a, p.b, wrong);
    native!.sgemm(1, { ...av, cols: g.k - 1 }, { ...bv, rows: g.k - 1 }, 0, cv);
    assert.throws(() => assertClose('wrong', wrong, p.expected, p.bound), /expected/);
  });

  test('strided batched: strides beyond the matrix span, every transpose case', () => {
    for (const [ta, tb] of TRANS) {
      for (const batch of [1, 3, 8]) {
        const g = gemmCase(ta, tb, 13, 21, 37, 2, 1.5, batch === 3 ? 0.5 : 0);
        const sizes = gemmSizes(g);
        const [sa, sb, sc] = [sizes.a + 5, sizes.b + 3, sizes.c + 7];
        const a = randomArray(sa * batch, 11);
        const b = randomArray(sb * batch, 12);
        const c0 = g.beta === 0 ? new Float32Array(sc * batch).fill(Number.NaN) : randomArray(sc * batch, 13);
        const expected = c0.slice();
        runBatched(referenceKernels, g, batch, a, sa, b, sb, expected, sc);
        forEachPath((path) => {
          const c = c0.slice();
          runBatched(native!, g, batch, a, sa, b, sb, c, sc);
          for (let i = 0; i < batch; i++) {
            const view = (x: Float32Array) => x.subarray(i * sc, i * sc + sizes.c);
            const bound = gemmBound(g, a.subarray(i * sa), b.subarray(i * sb), view(c0));
            assertClose(`${path} batch ${i}/${batch} ${name(g)}`, view(c), view(expected), (j) =>
              j % g.ldc < g.n ? bound(j) : 0,
            );
            // The gap between items is not written.
            for (let j = i * sc + sizes.c; j < Math.min((i + 1) * sc, c.length); j++) {
              assert.ok(Object.is(c[j], c0[j]), `gap element ${j} changed`);
            }
          }
        });
      }
    }
  });

  test('small batched attention products (many items, split across threads)', () => {
    const [bh, t, dh] = [16, 24, 16];
    const q = randomArray(bh * t * dh, 21);
    const kk = randomArray(bh * t * dh, 22);
    const expected = new Float32Array(bh * t * t);
    const g = gemmCase(false, true, t, t, dh, 0, 0.25, 0);
    runBatched(referenceKernels, g, bh, q, t * dh, kk, t * dh, expected, t * t);
    forEachPath((path) => {
      const c = new Float32Array(bh * t * t);
      runBatched(native!, g, bh, q, t * dh, kk, t * dh, c, t * t);
      for (let i = 0; i < bh; i++) {
        const bound = gemmBound(g, q.subarray(i * t * dh), kk.subarray(i * t * dh), new Float32Array(t * t));
        const off = i * t * t;
        assertClose(
          `${path} item ${i}`,
          c.subarray(off, off + t * t),
          expected.subarray(off, off + t * t),
          bound,
        );
      }
    });
  });
});

describe('native sgemm threading', { skip: nativeMissing }, () => {
  test('1 and 2 threads give the same result (bitwise: the k order never depends on the split)', () => {
    const shapes: [number, number, number][] = [
      [300, 200, 300],
      [4, 2000, 300],
      [2000, 5, 300],
      [257, 263, 600],
    ];
    const before = native!.getThreads();
    try {
      for (const [ta, tb] of TRANS) {
        for (const [m, n, k] of shapes) {
          const p = prepare(gemmCase(ta, tb, m, n, k, 1, 1, 0.5), m + n + k);
          native!.setThreads(1);
          const one = runNative(p);
          native!.setThreads(2);
          const two = runNative(p);
          assertClose(`1 vs 2 threads ${name(p.g)}`, two, one, (i) => (i % p.g.ldc < p.g.n ? p.bound(i) : 0));
          assert.ok(
            two.every((v, i) => Object.is(v, one[i])),
            `1 vs 2 threads not bitwise equal ${name(p.g)}`,
          );
        }
      }
      const batchCase = gemmCase(false, false, 48, 40, 64);
      const sizes = gemmSizes(batchCase);
      const a = randomArray(sizes.a * 6, 1);
      const b = randomArray(sizes.b * 6, 2);
      const results = [1, 2].map((threads) => {
        native!.setThreads(threads);
        const c = new Float32Array(sizes.c * 6);
        runBatched(native!, batchCase, 6, a, sizes.a, b, sizes.b, c, sizes.c);
        return c;
      });
      assert.deepEqual(results[1], results[0]);
    } finally {
      native!.setThreads(before);
    }
  });
});

describe('native sgemm batch invariance', { skip: nativeMissing }, () => {
  // The serving contract: a row of C is the same bits whatever else is in the product. Every route
  // (few rows with B read in place, blocked) cuts k at the same points and sums and stores every element
  // the same way; k = 1100 spans several KC blocks on every path.
  const [full, n, k] = [300, 70, 1100];
  const ROWS = [1, 3, 7, 64, 300];

  test('each row of an m-row product equals its single-row product, m = 1, 3, 7, 64, 300', () => {
    for (const [ta, tb] of TRANS) {
      const a = randomArray(full * k, 31);
      const b = randomArray(k * n, 32);
      const c0 = randomArray(full * n, 33);
      // op(A) [full, k] (stored [k, full] when transposed), op(B) [k, n].
      const opA = ta ? transpose(mat(a, k, full)) : mat(a, full, k);
      const opB = tb ? transpose(mat(b, n, k)) : mat(b, k, n);
      forEachPath((path) => {
        const single = c0.slice();
        for (let i = 0; i < full; i++) {
          native!.sgemm(1.25, rowRange(opA, i, i + 1), opB, 0.5, mat(single, 1, n, i * n));
        }
        for (const m of ROWS) {
          const c = c0.slice();
          native!.sgemm(1.25, rowRange(opA, 0, m), opB, 0.5, mat(c, m, n));
          for (let e = 0; e < m * n; e++) {
            if (!Object.is(c[e], single[e])) {
              assert.fail(
                `${path} ${ta ? 'T' : 'N'}${tb ? 'T' : 'N'} m=${m}: row ${Math.floor(e / n)} col ${e % n} is ` +
                  `${c[e]}, the single-row product gives ${single[e]}`,
              );
            }
          }
        }
      });
    }
  });

  test('wide products: rows of 1-5-row products (the stream route, several column runs) equal a 200-row product', () => {
    // n = 4200 columns span more than one run of the stream route's sums (4096 floats per row of C), and
    // groups of 1-4 rows take the same route inside sgemmGrouped. 200 rows take the blocked route on every
    // path, whose last column block is narrower than the others here (a block once read another block's
    // packing state and computed with stale B).
    const [wn, wk] = [4200, 1100];
    const a = randomArray(200 * wk, 51);
    const b = randomArray(wk * wn, 52);
    const c0 = randomArray(200 * wn, 53);
    forEachPath((path) => {
      const blocked = c0.slice();
      native!.sgemm(0.75, mat(a, 200, wk), mat(b, wk, wn), 0.5, mat(blocked, 200, wn));
      const same = (got: Float32Array, row: number, what: string) => {
        for (let j = 0; j < wn; j++) {
          if (!Object.is(got[j], blocked[row * wn + j])) {
            assert.fail(
              `${path} ${what}: row ${row} col ${j} is ${got[j]}, the 200-row product gives ${blocked[row * wn + j]}`,
            );
          }
        }
      };
      for (const m of [1, 2, 3, 4, 5]) {
        const c = c0.slice(0, m * wn);
        native!.sgemm(0.75, mat(a, m, wk), mat(b, wk, wn), 0.5, mat(c, m, wn));
        for (let r = 0; r < m; r++) same(c.subarray(r * wn, (r + 1) * wn), r, `m=${m}`);
      }
      // Groups of 1, 2, 3 and 4 rows (rows 0-9 of A), all against b.
      const offsets = new Int32Array([0, 1, 3, 6, 10]);
      const grouped = c0.slice(0, 10 * wn);
      native!.sgemmGrouped(offsets, 0.75, mat(a, 10, wk), mat(b, wk, wn), 0, 0.5, mat(grouped, 10, wn), 0);
      for (let r = 0; r < 10; r++) same(grouped.subarray(r * wn, (r + 1) * wn), r, 'grouped');
      // Two groups of one row (a batch-1 decode step's two experts): no more groups than threads, each
      // taken whole by one thread.
      const pair = c0.slice(0, 2 * wn);
      native!.sgemmGrouped(
        new Int32Array([0, 1, 2]),
        0.75,
        mat(a, 2, wk),
        mat(b, wk, wn),
        0,
        0.5,
        mat(pair, 2, wn),
        0,
      );
      for (let r = 0; r < 2; r++) same(pair.subarray(r * wn, (r + 1) * wn), r, 'two groups of one row');
    });
  });

  test('so do the rows of strided-batched items and of grouped (per-expert) products', () => {
    const a = randomArray(full * k, 41);
    const b = randomArray(3 * k * n, 42);
    forEachPath((path) => {
      const single = (row: number, item: number) => {
        const c = new Float32Array(n);
        native!.sgemm(1, mat(a, 1, k, row * k), mat(b, k, n, item * k * n), 0, mat(c, 1, n));
        return c;
      };
      // Three items of 40 rows: item i uses rows 40i.. of A and weight i.
      const batched = new Float32Array(3 * 40 * n);
      native!.sgemmStridedBatched(
        3,
        1,
        mat(a, 40, k),
        40 * k,
        mat(b, k, n),
        k * n,
        0,
        mat(batched, 40, n),
        40 * n,
      );
      // Groups of 1, 0, 130 and 37 rows against weights 0, 1, 2, 0.
      const offsets = new Int32Array([0, 1, 1, 131, 168]);
      const grouped = new Float32Array(168 * n);
      const weights = new Float32Array(4 * k * n);
      for (const [g, w] of [0, 1, 2, 0].entries())
        weights.set(b.subarray(w * k * n, (w + 1) * k * n), g * k * n);
      native!.sgemmGrouped(offsets, 1, mat(a, 168, k), mat(weights, k, n), k * n, 0, mat(grouped, 168, n), 0);
      for (let item = 0; item < 3; item++) {
        for (const r of [0, 17, 39]) {
          const want = single(40 * item + r, item);
          const got = batched.subarray((40 * item + r) * n, (40 * item + r + 1) * n);
          assert.ok(
            got.every((v, j) => Object.is(v, want[j])),
            `${path} batched item ${item} row ${r}`,
          );
        }
      }
      for (const [row, w] of [
        [0, 0],
        [1, 2],
        [77, 2],
        [130, 2],
        [131, 0],
        [167, 0],
      ] as const) {
        const want = single(row, w);
        const got = grouped.subarray(row * n, (row + 1) * n);
        assert.ok(
          got.every((v, j) => Object.is(v, want[j])),
          `${path} grouped row ${row}`,
        );
      }
    });
  });
});
