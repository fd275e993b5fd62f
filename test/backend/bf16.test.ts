/**
 * bf16 storage and the bf16 products (gemmBf16, gemmGroupedBf16): rounding (nearest even, NaN, overflow)
 * the same on both backends, products against the float64 reference of bf16(A)·W within the float32
 * accumulation bound on every path and both bf16 kernels (vdpbf16ps where the CPU has it, widening
 * everywhere), rows independent of the number of rows and of the thread count, and argument errors.
 *
 * Bound (per element): |native − ref| <= (k + 4)·u·(|alpha|·Σ_p |bf16(a_ip)·w_pj| + |beta|·|c_ij|) + 1e-30,
 * ref = alpha·Σ_p bf16(a_ip)·w_pj + beta·c_ij in float64: the products of bf16 values are exact in float32,
 * so only the float32 sums differ (vdpbf16ps adds a pair's products in another order and flushes
 * subnormals, which the absolute term covers). Against the float32 product A·W the rounding of A adds
 * at most 2^-8·Σ_p |a_ip·w_pj| (bf16 keeps 8 significant bits).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bf16Bits, bf16Value, fromBf16, roundToBf16, toBf16 } from '../../src/backend/bf16.js';
import { type BMat, bmat, type Mat, mat, rowRange, transpose } from '../../src/backend/mat.js';
import type { KernelOps } from '../../src/backend/ops.js';
import { withPrecision } from '../../src/backend/precision.js';
import { referenceKernels } from '../../src/backend/reference.js';
import { assertClose, forEachPath, native, nativeMissing, randomArray, U } from './helpers.js';

/** Runs fn on every path and every bf16 kernel that path has (its own, and the widening one). */
function forEachBf16Path(fn: (label: string) => void): void {
  forEachPath((path) => {
    try {
      native!.setBf16Widening(false);
      const own = native!.info().bf16;
      fn(`${path} ${own}`);
      if (own !== 'widening') {
        native!.setBf16Widening(true);
        fn(`${path} ${native!.info().bf16}`);
      }
    } finally {
      native!.setBf16Widening(false);
    }
  });
}

/** The per-element bound of gemmBf16 against the reference. */
function bf16Bound(alpha: number, a: Mat, w: BMat, beta: number, c0: Mat): (i: number) => number {
  const k = a.cols;
  const at = (m: Mat | BMat, i: number, j: number) =>
    m.trans ? m.data[m.offset + j * m.ld + i]! : m.data[m.offset + i * m.ld + j]!;
  const bounds = new Float64Array(c0.data.length);
  for (let i = 0; i < c0.rows; i++) {
    for (let j = 0; j < c0.cols; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += Math.abs(roundToBf16(at(a, i, p)) * bf16Value(at(w, p, j)));
      const o = c0.offset + i * c0.ld + j;
      bounds[o] =
        (k + 4) * U * (Math.abs(alpha) * s + (beta === 0 ? 0 : Math.abs(beta * c0.data[o]!))) + 1e-30;
    }
  }
  return (i) => bounds[i]!;
}

describe('bf16 storage', () => {
  test('round to nearest even, NaN stays NaN, overflow to infinity; widening is exact', () => {
    assert.equal(bf16Bits(1), 0x3f80);
    assert.equal(bf16Bits(-2), 0xc000);
    // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties go to the even mantissa (1).
    assert.equal(bf16Value(bf16Bits(1 + 2 ** -8)), 1);
    assert.equal(bf16Value(bf16Bits(1 + 3 * 2 ** -8)), 1 + 2 ** -6);
    assert.equal(bf16Value(bf16Bits(1 + 2 ** -8 + 2 ** -20)), 1 + 2 ** -7);
    assert.ok(Number.isNaN(bf16Value(bf16Bits(Number.NaN))));
    assert.equal(bf16Value(bf16Bits(Number.POSITIVE_INFINITY)), Number.POSITIVE_INFINITY);
    assert.equal(bf16Value(bf16Bits(3.4e38)), Number.POSITIVE_INFINITY);
    assert.equal(bf16Value(bf16Bits(-0)), -0);
    const x = randomArray(1000, 1, -1e3, 1e3);
    const h = toBf16(x);
    const back = fromBf16(h);
    for (let i = 0; i < x.length; i++) {
      assert.equal(back[i], roundToBf16(x[i]!));
      assert.ok(Math.abs(back[i]! - x[i]!) <= 2 ** -8 * Math.abs(x[i]!), `element ${i}`);
    }
    assert.deepEqual(toBf16(back), h);
    assert.throws(() => toBf16(x, new Uint16Array(3)), /toBf16: out has 3 elements, needs 1000/);
  });
});

describe('native bf16 products vs reference', { skip: nativeMissing }, () => {
  test('A is rounded to bf16 exactly as the reference rounds it (ties to even)', () => {
    // 1·w with a = 1 + 2^-8 (a tie: rounds to 1) and a = 1 + 3·2^-8 (rounds up to 1 + 2^-6).
    const w = toBf16(new Float32Array([1]));
    forEachBf16Path((path) => {
      const c = new Float32Array(2);
      native!.gemmBf16(
        1,
        mat(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8]), 2, 1),
        bmat(w, 1, 1),
        0,
        mat(c, 2, 1),
      );
      assert.deepEqual([...c], [1, 1 + 2 ** -6], path);
    });
  });

  test('every transpose case, odd k over several KC blocks, leading dims, alpha/beta', () => {
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [1, 300, 1101],
      [2, 130, 77],
      [5, 200, 515],
      [7, 70, 1025],
      [64, 65, 513],
      [200, 33, 300],
    ];
    shapes.forEach(([m, n, k], s) => {
      for (const [ta, tw] of [
        [false, false],
        [false, true],
        [true, false],
        [true, true],
      ] as const) {
        const lda = (ta ? m : k) + 3;
        const ldw = (tw ? k : n) + 1;
        const af = randomArray((ta ? k : m) * lda, 10 + s);
        const w = toBf16(randomArray((tw ? n : k) * ldw, 20 + s));
        const a: Mat = ta ? transpose(mat(af, k, m, 0, lda)) : mat(af, m, k, 0, lda);
        const wv: BMat = tw ? transpose(bmat(w, n, k, 0, ldw)) : bmat(w, k, n, 0, ldw);
        const [alpha, beta] = s % 2 === 0 ? [1, 0] : [0.5, -0.75];
        const c0 =
          beta === 0 ? new Float32Array(m * (n + 2)).fill(Number.NaN) : randomArray(m * (n + 2), 30 + s);
        const want = c0.slice();
        referenceKernels.gemmBf16(alpha, a, wv, beta, mat(want, m, n, 0, n + 2));
        const bound = bf16Bound(alpha, a, wv, beta, mat(c0, m, n, 0, n + 2));
        forEachBf16Path((path) => {
          const c = c0.slice();
          native!.gemmBf16(alpha, a, wv, beta, mat(c, m, n, 0, n + 2));
          const label = `${path} ${ta ? 'T' : 'N'}${tw ? 'T' : 'N'} m=${m} n=${n} k=${k}`;
          assertClose(label, c, want, (i) => (i % (n + 2) < n ? bound(i) : 0));
          for (let i = 0; i < c.length; i++) {
            if (i % (n + 2) >= n) assert.ok(Object.is(c[i], c0[i]), `${label}: padding ${i} changed`);
          }
        });
      }
    });
  });

  test('rows do not depend on the number of rows nor on the thread count', () => {
    const [full, n, k] = [150, 200, 1101];
    const af = randomArray(full * k, 41);
    const w = toBf16(randomArray(k * n, 42));
    const c0 = randomArray(full * n, 43);
    const before = native!.getThreads();
    try {
      forEachBf16Path((path) => {
        const single = c0.slice();
        for (let i = 0; i < full; i++) {
          native!.gemmBf16(
            1.5,
            rowRange(mat(af, full, k), i, i + 1),
            bmat(w, k, n),
            0.5,
            mat(single, 1, n, i * n),
          );
        }
        for (const threads of [1, 2]) {
          native!.setThreads(threads);
          for (const m of [1, 2, 3, 5, 6, 7, 64, 150]) {
            const c = c0.slice();
            native!.gemmBf16(1.5, mat(af, m, k), bmat(w, k, n), 0.5, mat(c, m, n));
            for (let e = 0; e < m * n; e++) {
              if (!Object.is(c[e], single[e])) {
                assert.fail(
                  `${path} ${threads} threads m=${m}: element ${e} is ${c[e]}, the row alone ${single[e]}`,
                );
              }
            }
          }
        }
      });
    } finally {
      native!.setThreads(before);
    }
  });

  test('wide products: rows of 1-4-row products (the stream route, several column runs) equal a 150-row product', () => {
    // n = 4200 spans more than one run of the stream route's sums; odd k over two KC blocks.
    const [full, n, k] = [150, 4200, 515];
    const af = randomArray(full * k, 44);
    const w = toBf16(randomArray(k * n, 45));
    const c0 = randomArray(full * n, 46);
    forEachBf16Path((path) => {
      const blocked = c0.slice();
      native!.gemmBf16(1.5, mat(af, full, k), bmat(w, k, n), 0.5, mat(blocked, full, n));
      for (const m of [1, 2, 3, 4]) {
        const c = c0.slice(0, m * n);
        native!.gemmBf16(1.5, mat(af, m, k), bmat(w, k, n), 0.5, mat(c, m, n));
        for (let e = 0; e < m * n; e++) {
          if (!Object.is(c[e], blocked[e])) {
            assert.fail(`${path} m=${m}: element ${e} is ${c[e]}, the 150-row product gives ${blocked[e]}`);
          }
        }
      }
      // Groups of 1, 2, 3 and 4 rows against the same weights.
      const offsets = new Int32Array([0, 1, 3, 6, 10]);
      const grouped = c0.slice(0, 10 * n);
      native!.gemmGroupedBf16(offsets, 1.5, mat(af, 10, k), bmat(w, k, n), 0, 0.5, mat(grouped, 10, n), 0);
      for (let e = 0; e < 10 * n; e++) {
        if (!Object.is(grouped[e], blocked[e])) {
          assert.fail(
            `${path} grouped: element ${e} is ${grouped[e]}, the 150-row product gives ${blocked[e]}`,
          );
        }
      }
    });
  });

  test('grouped products: the reference, and each group equal to its own gemmBf16', () => {
    const [E, d, n] = [5, 300, 90];
    const offsets = new Int32Array([0, 1, 1, 40, 42, 44]);
    const T = offsets[E]!;
    const x = randomArray(T * d, 51);
    const w = toBf16(randomArray(E * d * n, 52));
    const c0 = randomArray(T * n, 53);
    const want = c0.slice();
    referenceKernels.gemmGroupedBf16(
      offsets,
      1,
      mat(x, T, d),
      bmat(w, d, n),
      d * n,
      0.25,
      mat(want, T, n),
      0,
    );
    forEachBf16Path((path) => {
      const c = c0.slice();
      native!.gemmGroupedBf16(offsets, 1, mat(x, T, d), bmat(w, d, n), d * n, 0.25, mat(c, T, n), 0);
      for (let g = 0; g < E; g++) {
        const [r0, r1] = [offsets[g]!, offsets[g + 1]!];
        if (r1 === r0) continue;
        const a = rowRange(mat(x, T, d), r0, r1);
        const wg = bmat(w, d, n, g * d * n);
        const one = c0.slice(r0 * n, r1 * n);
        native!.gemmBf16(1, a, wg, 0.25, mat(one, r1 - r0, n));
        const got = c.subarray(r0 * n, r1 * n);
        assert.ok(
          got.every((v, i) => Object.is(v, one[i])),
          `${path} group ${g}: equals its own product`,
        );
        const bound = bf16Bound(1, a, wg, 0.25, mat(c0.slice(r0 * n, r1 * n), r1 - r0, n));
        assertClose(`${path} group ${g}`, got, want.subarray(r0 * n, r1 * n), bound);
      }
    });
  });

  test('bad calls fail alike on both backends, naming the argument', () => {
    const a = mat(new Float32Array(12), 3, 4);
    const w = bmat(new Uint16Array(20), 4, 5);
    const c = mat(new Float32Array(15), 3, 5);
    const cases: [string, () => [Mat, BMat, Mat], RegExp][] = [
      [
        'shapes',
        () => [a, bmat(new Uint16Array(20), 5, 4), mat(new Float32Array(12), 3, 4)],
        /gemmBf16: a.cols=4 must equal w.rows=5/,
      ],
      [
        'buffer',
        () => [a, bmat(new Uint16Array(19), 4, 5), c],
        /gemmBf16: w \[4,5\] \(ld 5, offset 0\) needs 20 elements, its buffer has 19/,
      ],
      [
        'float32 weights',
        () => [a, { ...w, data: new Float32Array(20) } as unknown as BMat, c],
        /gemmBf16: w.data must be a Uint16Array/,
      ],
      [
        'c transposed',
        () => [a, w, transpose(mat(new Float32Array(15), 5, 3))],
        /gemmBf16: c must not be transposed/,
      ],
    ];
    for (const [what, args, message] of cases) {
      for (const k of [referenceKernels, native!]) {
        const [x, y, z] = args();
        assert.throws(() => k.gemmBf16(1, x, y, 0, z), message, `${k.name} ${what}`);
      }
    }
  });
});

describe('bf16-operand products (bf16 mixed-precision training)', { skip: nativeMissing }, () => {
  /** Bound of a product of rounded operands: the float32 accumulation bound on Σ |bf16(a)·bf16(b)|. */
  function bound(alpha: number, a: Mat, b: Mat, beta: number, c0: Mat): (i: number) => number {
    const at = (m: Mat, i: number, j: number) =>
      m.trans ? m.data[m.offset + j * m.ld + i]! : m.data[m.offset + i * m.ld + j]!;
    const out = new Float64Array(c0.data.length);
    for (let i = 0; i < c0.rows; i++) {
      for (let j = 0; j < c0.cols; j++) {
        let s = 0;
        for (let p = 0; p < a.cols; p++) s += Math.abs(roundToBf16(at(a, i, p)) * roundToBf16(at(b, p, j)));
        const o = c0.offset + i * c0.ld + j;
        out[o] = (a.cols + 4) * U * (Math.abs(alpha) * s + Math.abs(beta * c0.data[o]!)) + 1e-30;
      }
    }
    return (i) => out[i]!;
  }

  test('sgemmBf16: every transpose case against the reference; rows independent of m', () => {
    const [m, n, k] = [70, 90, 600];
    for (const [ta, tb] of [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ] as const) {
      const af = randomArray(m * k, 61);
      const bf = randomArray(k * n, 62);
      const a = ta ? transpose(mat(af, k, m)) : mat(af, m, k);
      const b = tb ? transpose(mat(bf, n, k)) : mat(bf, k, n);
      const c0 = randomArray(m * n, 63);
      const want = c0.slice();
      referenceKernels.sgemmBf16(0.5, a, b, 1, mat(want, m, n));
      const bnd = bound(0.5, a, b, 1, mat(c0, m, n));
      forEachBf16Path((path) => {
        const c = c0.slice();
        native!.sgemmBf16(0.5, a, b, 1, mat(c, m, n));
        assertClose(`${path} ${ta ? 'T' : 'N'}${tb ? 'T' : 'N'}`, c, want, bnd);
        const one = c0.slice(5 * n, 6 * n);
        native!.sgemmBf16(0.5, rowRange(a, 5, 6), b, 1, mat(one, 1, n));
        assert.ok(
          one.every((v, j) => Object.is(v, c[5 * n + j])),
          `${path}: row 5 alone`,
        );
      });
    }
  });

  test('strided-batched and grouped (both directions) against the reference', () => {
    const [bh, t, dh] = [6, 40, 24];
    const q = randomArray(bh * t * dh, 71);
    const kk = randomArray(bh * t * dh, 72);
    const [E, d, f] = [4, 48, 40];
    const offsets = new Int32Array([0, 10, 10, 41, 60]);
    const T = 60;
    const x = randomArray(T * d, 73);
    const w = randomArray(E * d * f, 74);
    const dy = randomArray(T * f, 75);
    // The batched product and both grouped ones, by kernels k into fresh outputs.
    const products = (k: KernelOps) => {
      const c = new Float32Array(bh * t * t);
      k.sgemmStridedBatchedBf16(
        bh,
        0.25,
        mat(q, t, dh),
        t * dh,
        transpose(mat(kk, t, dh)),
        t * dh,
        0,
        mat(c, t, t),
        t * t,
      );
      const y = new Float32Array(T * f);
      k.sgemmGroupedBf16(offsets, 1, mat(x, T, d), mat(w, d, f), d * f, 0, mat(y, T, f), 0);
      const g = new Float32Array(E * d * f).fill(1);
      k.sgemmGroupedBf16(offsets, 1, transpose(mat(x, T, d)), mat(dy, T, f), 0, 1, mat(g, d, f), d * f);
      return { c, y, g };
    };
    const want = products(referenceKernels);
    forEachBf16Path((path) => {
      const { c, y, g } = products(native!);
      for (let i = 0; i < bh; i++) {
        const o = i * t * t;
        const bnd = bound(
          0.25,
          mat(q, t, dh, i * t * dh),
          transpose(mat(kk, t, dh, i * t * dh)),
          0,
          mat(new Float32Array(t * t), t, t),
        );
        assertClose(
          `${path} batched item ${i}`,
          c.subarray(o, o + t * t),
          want.c.subarray(o, o + t * t),
          bnd,
        );
      }
      assertClose(`${path} grouped forward`, y, want.y, (i) => 2 ** -16 * (1 + Math.abs(want.y[i]!)) * d);
      assertClose(
        `${path} grouped weight gradient`,
        g,
        want.g,
        (i) => 2 ** -16 * (1 + Math.abs(want.g[i]!)) * T,
      );
    });
  });

  test('withPrecision routes the three products and nothing else; bad calls name the bf16 op', () => {
    const k16 = withPrecision(referenceKernels, 'bf16');
    assert.equal(withPrecision(referenceKernels, 'fp32'), referenceKernels);
    assert.equal(k16.sgemm, referenceKernels.sgemmBf16);
    assert.equal(k16.sgemmStridedBatched, referenceKernels.sgemmStridedBatchedBf16);
    assert.equal(k16.sgemmGrouped, referenceKernels.sgemmGroupedBf16);
    assert.equal(k16.gelu, referenceKernels.gelu);
    assert.match(k16.describe(), /bf16 products$/);
    assert.throws(
      () => withPrecision(referenceKernels, 'fp16' as 'bf16'),
      /precision must be one of fp32, bf16/,
    );
    // 1 + 2^-8 rounds to 1 in bf16: the product shows the operands were rounded.
    const c = new Float32Array(1);
    for (const k of [referenceKernels, native!]) {
      k.sgemmBf16(
        1,
        mat(new Float32Array([1 + 2 ** -8]), 1, 1),
        mat(new Float32Array([3]), 1, 1),
        0,
        mat(c, 1, 1),
      );
      assert.equal(c[0], 3, k.name);
      assert.throws(
        () =>
          k.sgemmBf16(
            1,
            mat(new Float32Array(6), 2, 3),
            mat(new Float32Array(8), 4, 2),
            0,
            mat(new Float32Array(4), 2, 2),
          ),
        /sgemmBf16: a.cols=3 must equal b.rows=4/,
        k.name,
      );
    }
  });
});
