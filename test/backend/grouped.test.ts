import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Kernels } from '../../src/backend/kernels.js';
import { referenceKernels } from '../../src/backend/reference.js';
import { assertClose, forEachPath, native, nativeMissing, randomArray, U } from './helpers.js';

/** One sgemmGrouped call: A [T, d] (lda), groups by offsets; see Kernels.sgemmGrouped. */
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
  k.sgemmGrouped(
    g.transA,
    g.transB,
    g.sizes.length,
    p.offsets,
    g.d,
    g.n,
    g.alpha,
    p.a,
    p.lda,
    p.b,
    p.ldb,
    p.strideB,
    g.beta,
    c,
    p.ldc,
    p.strideC,
  );
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
    referenceKernels.sgemm(
      true,
      false,
      4,
      3,
      2,
      1,
      p.a.subarray(3 * 4),
      4,
      p.b.subarray(3 * 3),
      3,
      0,
      expect,
      3,
    );
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
  const bad: [string, Call, RegExp][] = [
    [
      'short A',
      (k) => k.sgemmGrouped(false, false, 2, off, 4, 3, 1, f(19), 4, f(24), 3, 12, 0, f(15), 3, 0),
      /A has 19 elements, needs 20 \(A=\[5,4\] op\(B_g\)=\[4,3\] C=\[5,3\], 2 groups\)/,
    ],
    [
      'short B',
      (k) => k.sgemmGrouped(false, false, 2, off, 4, 3, 1, f(20), 4, f(23), 3, 12, 0, f(15), 3, 0),
      /B has 23 elements, needs 24/,
    ],
    [
      'short C_g',
      (k) => k.sgemmGrouped(true, false, 2, off, 4, 3, 1, f(20), 4, f(15), 3, 0, 0, f(23), 3, 12),
      /C has 23 elements, needs 24 \(A=\[5,4\] B=\[5,3\] C_g=\[4,3\], 2 groups\)/,
    ],
    [
      'overlapping C_g',
      (k) => k.sgemmGrouped(true, false, 2, off, 4, 3, 1, f(20), 4, f(15), 3, 0, 0, f(24), 3, 11),
      /strideC=11 < 12: the C_g overlap/,
    ],
    [
      'decreasing offsets',
      (k) =>
        k.sgemmGrouped(
          false,
          false,
          2,
          Int32Array.from([0, 3, 2]),
          4,
          3,
          1,
          f(20),
          4,
          f(24),
          3,
          12,
          0,
          f(15),
          3,
          0,
        ),
      /offsets must be non-decreasing: offsets\[1\]=3 > offsets\[2\]=2/,
    ],
    [
      'short offsets',
      (k) => k.sgemmGrouped(false, false, 3, off, 4, 3, 1, f(20), 4, f(36), 3, 12, 0, f(15), 3, 0),
      /offsets has 3 elements, needs groups \+ 1 = 4/,
    ],
    [
      'small lda',
      (k) => k.sgemmGrouped(false, false, 2, off, 4, 3, 1, f(20), 3, f(24), 3, 12, 0, f(15), 3, 0),
      /lda=3 < 4 columns of A/,
    ],
    [
      'transposed B for the weight gradient',
      (k) => k.sgemmGrouped(true, true, 2, off, 4, 3, 1, f(20), 4, f(15), 3, 0, 0, f(24), 3, 12),
      /transB must be false when transA is true/,
    ],
  ];
  for (const [what, call, re] of bad) {
    test(what, () => {
      assert.throws(() => call(referenceKernels), re, 'reference');
      if (native) {
        assert.throws(() => call(native!), re, 'native');
        // The addon checks on its own too (no TypeScript checks in front).
        assert.throws(() => call(native!.addon as unknown as Kernels), re, 'addon');
      }
    });
  }
});
