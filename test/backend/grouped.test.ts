import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mat, transpose } from '../../src/backend/mat.js';
import type { Kernels } from '../../src/backend/ops.js';
import { referenceKernels } from '../../src/backend/reference.js';
import { assertClose, forEachPath, native, nativeMissing, randomArray, U } from './helpers.js';

/** One sgemmGrouped call: A [T, d] (lda), groups by offsets; see OPS.sgemmGrouped. */
interface GroupedCase {
  transA: boolean;
  transB: boolean;
  sizes: number[];
  /** offsets[0] (rows of A before the first group). */
  start: number;
  d: number;
  n: number;
  alpha: number;
  beta: number;
  /** Padding of the leading dimensions and strides. */
  pad: number;
}

const label = (g: GroupedCase) =>
  `${g.transA ? 'T' : 'N'}${g.transB ? 'T' : 'N'} groups=[${g.sizes.join(',')}] start=${g.start} d=${g.d} ` +
  `n=${g.n} alpha=${g.alpha} beta=${g.beta} pad=${g.pad}`;

interface Prepared {
  g: GroupedCase;
  offsets: Int32Array;
  a: Float32Array;
  lda: number;
  b: Float32Array;
  ldb: number;
  strideB: number;
  c0: Float32Array;
  ldc: number;
  strideC: number;
}

function prepare(g: GroupedCase, seed: number): Prepared {
  const G = g.sizes.length;
  const offsets = new Int32Array(G + 1);
  offsets[0] = g.start;
  g.sizes.forEach((s, i) => {
    offsets[i + 1] = offsets[i]! + s;
  });
  const T = offsets[G]!;
  const lda = g.d + g.pad;
  const ldc = g.n + g.pad;
  let ldb: number;
  let strideB: number;
  let strideC: number;
  let bLen: number;
  let cLen: number;
  if (g.transA) {
    ldb = g.n + g.pad;
    strideB = 0;
    bLen = T * ldb;
    strideC = g.d * ldc + g.pad;
    cLen = G * strideC;
  } else {
    ldb = (g.transB ? g.d : g.n) + g.pad;
    strideB = (g.transB ? g.n : g.d) * ldb + g.pad;
    bLen = G * strideB;
    strideC = 0;
    cLen = T * ldc;
  }
  const a = randomArray(T * lda, seed);
  const b = randomArray(bLen, seed + 1);
  // beta = 0 must ignore C entirely, NaN included.
  const c0 = g.beta === 0 ? new Float32Array(cLen).fill(Number.NaN) : randomArray(cLen, seed + 2);
  return { g, offsets, a, lda, b, ldb, strideB, c0, ldc, strideC };
}

function run(k: Kernels, p: Prepared, c = p.c0.slice()): Float32Array {
  const { g } = p;
  const T = p.offsets[g.sizes.length]!;
  const a = mat(p.a, T, g.d, 0, p.lda);
  if (g.transA) {
    k.sgemmGrouped(
      p.offsets,
      g.alpha,
      transpose(a),
      mat(p.b, T, g.n, 0, p.ldb),
      p.strideB,
      g.beta,
      mat(c, g.d, g.n, 0, p.ldc),
      p.strideC,
    );
  } else {
    const b = g.transB ? transpose(mat(p.b, g.n, g.d, 0, p.ldb)) : mat(p.b, g.d, g.n, 0, p.ldb);
    k.sgemmGrouped(p.offsets, g.alpha, a, b, p.strideB, g.beta, mat(c, T, g.n, 0, p.ldc), p.strideC);
  }
  return c;
}

/** (k + 4)·u·(|alpha|·Σ|a||b| + |beta|·|c|) per element: the reference run on absolute values. */
function bound(p: Prepared): (i: number) => number {
  const abs = (x: Float32Array) => x.map((v) => Math.abs(v));
  const q: Prepared = { ...p, a: abs(p.a), b: abs(p.b), c0: p.g.beta === 0 ? p.c0 : abs(p.c0) };
  const mag = run(referenceKernels, {
    ...q,
    g: { ...p.g, alpha: Math.abs(p.g.alpha), beta: Math.abs(p.g.beta) },
  });
  const k = p.g.transA ? Math.max(0, ...p.g.sizes) : p.g.d;
  return (i) => (Number.isNaN(mag[i]!) ? 0 : (k + 4) * U * mag[i]!);
}

const cases: GroupedCase[] = [];
for (const [transA, transB] of [
  [false, false],
  [false, true],
  [true, false],
] as const) {
  for (const [alpha, beta] of [
    [1, 0],
    [-0.5, 1],
    [2, 0.5],
  ] as const) {
    // Ragged groups with empty ones (first, middle, last), a group above MC = 144 rows and, for the weight
    // gradient, one above KC = 256 rows (k spans two slices).
    cases.push({
      transA,
      transB,
      sizes: [0, 5, 13, 0, 1, 40, 7, 0],
      start: 0,
      d: 37,
      n: 29,
      alpha,
      beta,
      pad: 0,
    });
    cases.push({ transA, transB, sizes: [150, 3, 0, 270, 64], start: 3, d: 300, n: 70, alpha, beta, pad: 3 });
  }
  cases.push({ transA, transB, sizes: [0, 0, 0], start: 0, d: 16, n: 16, alpha: 1, beta: 0, pad: 0 });
  cases.push({ transA, transB, sizes: [4, 0, 9], start: 1, d: 0, n: 5, alpha: 1, beta: 0.5, pad: 1 });
  cases.push({ transA, transB, sizes: [4, 0, 9], start: 0, d: 6, n: 5, alpha: 0, beta: 0.5, pad: 0 });
  cases.push({ transA, transB, sizes: [], start: 0, d: 6, n: 5, alpha: 1, beta: 0, pad: 0 });
}

describe('sgemmGrouped reference', () => {
  test('is a loop of per-group sgemm; empty groups of the weight gradient give beta·C_g', () => {
    const p = prepare(
      { transA: true, transB: false, sizes: [3, 0, 2], start: 0, d: 4, n: 3, alpha: 1, beta: 0, pad: 0 },
      7,
    );
    const c = run(referenceKernels, p);
    // Group 1 is empty: beta = 0 writes zeros over the NaN.
    assert.ok(c.subarray(p.strideC, p.strideC + 4 * 3).every((v) => v === 0));
    const expect = new Float32Array(4 * 3);
    referenceKernels.sgemm(1, transpose(mat(p.a, 2, 4, 3 * 4)), mat(p.b, 2, 3, 3 * 3), 0, mat(expect, 4, 3));
    assert.deepEqual(c.subarray(2 * p.strideC, 2 * p.strideC + 12), expect);
  });
});

describe('native sgemmGrouped vs reference', { skip: nativeMissing }, () => {
  test('every mode, ragged and empty groups, strides, alpha/beta, both ISA paths', () => {
    cases.forEach((g, ci) => {
      const p = prepare(g, 100 + ci);
      const expected = run(referenceKernels, p);
      const bnd = bound(p);
      forEachPath((path) => {
        const got = run(native!, p);
        assertClose(`${path} ${label(g)}`, got, expected, (i) => (Number.isNaN(expected[i]!) ? 0 : bnd(i)));
        // Padding (between rows, between C_g) is never written.
        got.forEach((v, i) => {
          if (Number.isNaN(expected[i]!))
            assert.ok(Number.isNaN(v), `${path} ${label(g)}: wrote padding at ${i}`);
        });
      });
    });
  });

  test('1 and 2 threads give bitwise the same result', () => {
    const before = native!.getThreads();
    try {
      for (const transA of [false, true]) {
        for (const transB of transA ? [false] : [false, true]) {
          const sizes = [0, 130, 97, 160, 3, 0, 128, 400, 1, 64, 140];
          const p = prepare(
            { transA, transB, sizes, start: 0, d: 256, n: 200, alpha: 1, beta: 0.5, pad: 0 },
            9,
          );
          native!.setThreads(1);
          const one = run(native!, p);
          native!.setThreads(2);
          const two = run(native!, p);
          assert.ok(
            two.every((v, i) => Object.is(v, one[i])),
            `1 vs 2 threads not bitwise equal ${label(p.g)}`,
          );
        }
      }
    } finally {
      native!.setThreads(before);
    }
  });
});

describe('sgemmGrouped argument errors name the shapes', () => {
  const f = (n: number) => new Float32Array(n);
  const off = Int32Array.from([0, 2, 5]);
  type Call = (k: Kernels) => void;
  // Rows mode: a [5, 4], B_g [4, 3] 12 apart, C [5, 3]; weight gradients: a [4, 5] (transposed), b [5, 3], C_g [4, 3].
  const rows = (k: Kernels, a: Float32Array, b: Float32Array, c: Float32Array, lda = 4, o = off) =>
    k.sgemmGrouped(o, 1, mat(a, 5, 4, 0, lda), mat(b, 4, 3), 12, 0, mat(c, 5, 3), 0);
  const grads = (k: Kernels, c: Float32Array, strideC: number, transB = false) =>
    k.sgemmGrouped(
      off,
      1,
      transpose(mat(f(20), 5, 4)),
      transB ? transpose(mat(f(15), 3, 5)) : mat(f(15), 5, 3),
      0,
      0,
      mat(c, 4, 3),
      strideC,
    );
  const bad: [string, Call, RegExp][] = [
    [
      'short A',
      (k) => rows(k, f(19), f(24), f(15)),
      /sgemmGrouped: a \[5,4\] \(ld 4, offset 0\) needs 20 elements, its buffer has 19$/,
    ],
    [
      'short B',
      (k) => rows(k, f(20), f(23), f(15)),
      /b \[4,3\] \(ld 3, offset 0, 2 of them 12 apart\) needs 24 elements, its buffer has 23/,
    ],
    [
      'short C_g',
      (k) => grads(k, f(23), 12),
      /c \[4,3\] \(ld 3, offset 0, 2 of them 12 apart\) needs 24 elements, its buffer has 23/,
    ],
    ['overlapping C_g', (k) => grads(k, f(24), 11), /strideC=11 < 12: the C_g overlap/],
    [
      'decreasing offsets',
      (k) => rows(k, f(20), f(24), f(15), 4, Int32Array.from([0, 3, 2])),
      /offsets must be non-decreasing: offsets\[1\]=3 > offsets\[2\]=2/,
    ],
    [
      'no offsets',
      (k) => rows(k, f(20), f(24), f(15), 4, new Int32Array(0)),
      /offsets needs at least 1 element/,
    ],
    [
      'rows of A against the offsets',
      (k) => rows(k, f(20), f(24), f(15), 4, Int32Array.from([0, 2, 4])),
      /a.rows=5 must equal offsets\[groups\]=4/,
    ],
    ['small lda', (k) => rows(k, f(20), f(24), f(15), 3), /a \[5,4\] has ld 3 < 4 stored columns/],
    ['transposed B for the weight gradient', (k) => grads(k, f(24), 12, true), /b must not be transposed/],
  ];
  for (const [what, call, re] of bad) {
    test(what, () => {
      assert.throws(() => call(referenceKernels), re, 'reference');
      // The native wrapper has no checks of its own: these messages come from the C++ core.
      if (native) assert.throws(() => call(native!), re, 'native');
    });
  }
});
