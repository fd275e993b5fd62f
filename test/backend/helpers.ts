/**
 * Shared pieces of the backend tests: seeded data, the error bounds the native kernels are held to,
 * and the native backend (tests that need it are skipped, loudly, when the addon is not built).
 *
 * Error bounds (u = 2^-24, the float32 unit roundoff; "ref" is the float64-accumulating reference):
 *
 * | kernel                                   | bound on |native - ref| per element                   |
 * |------------------------------------------|-------------------------------------------------------|
 * | sgemm, sgemmStridedBatched               | (k + 4)·u·(|alpha|·Σ_p |a_ip||b_pj| + |beta|·|c_ij|)   |
 * | add, axpy                                | 2u·(|result| + |alpha·x|) (one or two roundings)      |
 * | gatherRows                               | exact                                                 |
 * | scatterAddRows (n updates, any repeats)  | 2(n+1)·u·(Σ|w·src| + |out|)                           |
 * | gelu, gatedGelu and their backwards      | 2e-6·max(1, |ref|)                                    |
 * | softmaxRows, causalSoftmax               | 1e-6·|ref| + 1e-9 (outputs in [0, 1])                 |
 * | softmaxRowsBackward                      | 4u·|y|·(|dy| + Σ|dy·y|) + 1e-12                       |
 * | rmsnorm (out, invRms)                    | 2e-6·max(1, |ref|)                                    |
 * | rmsnormBackward (dx = inv·dy·s - c·x)    | 2e-6·(|inv·dy·s| + |c·x|)  (the terms may cancel)     |
 * | rmsnormBackward (dscale, summed rows)    | 2e-6·(1 + Σ_r |dy·x·inv|)                              |
 * | crossEntropy (loss, lse)                 | 2e-6·max(1, |ref|)                                    |
 * | crossEntropyBackward                     | 1e-6·(|ref| + |coef| + |ceScale|) + 1e-9              |
 *
 * The sgemm bound is the classical worst case for a length-k float32 dot product (each of the k
 * multiply-adds and the final alpha/beta update rounds once); a wrong element, a dropped k block or a
 * transposed operand breaks it by orders of magnitude. The element-wise bounds sit 2-20x above the
 * largest errors measured on these inputs (the vectorised exp is within 2 ulp; the reference rounds the
 * float64 result once). The same table is in native/README.md.
 */
import assert from 'node:assert/strict';
import { type Mat, mat, transpose } from '../../src/backend/mat.js';
import { loadNative, type NativeKernels } from '../../src/backend/native.js';
import type { Kernels } from '../../src/backend/ops.js';

export const U = 2 ** -24;

/** Deterministic uniform floats in [lo, hi) (mulberry32). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const r = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = lo + (hi - lo) * r;
  }
  return out;
}

export function randomInts(n: number, seed: number, below: number): Int32Array {
  const f = randomArray(n, seed, 0, 1);
  return Int32Array.from(f, (v) => Math.min(below - 1, Math.floor(v * below)));
}

/** Asserts |actual - expected| <= bound(i) for every element, naming the first violation. */
export function assertClose(
  what: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  bound: (i: number) => number,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const err = Math.abs(a - e);
    if (!(err <= bound(i)) && !(Number.isNaN(a) && Number.isNaN(e))) {
      assert.fail(`${what}: element ${i} is ${a}, expected ${e} (|err| ${err} > bound ${bound(i)})`);
    }
  }
}

/** Relative-or-absolute bound: tol·max(1, |expected|). */
export function relBound(expected: ArrayLike<number>, tol: number): (i: number) => number {
  return (i) => tol * Math.max(1, Math.abs(expected[i]!));
}

export interface GemmCase {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  alpha: number;
  beta: number;
  lda: number;
  ldb: number;
  ldc: number;
}

/** A gemm case with leading dimensions padded by `pad` (0 = tight). */
export function gemmCase(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  pad = 0,
  alpha = 1,
  beta = 0,
): GemmCase {
  return {
    transA,
    transB,
    m,
    n,
    k,
    alpha,
    beta,
    lda: (transA ? m : k) + pad,
    ldb: (transB ? k : n) + pad,
    ldc: n + pad,
  };
}

/** The operands of a gemm case as views on a, b and c. */
export function gemmViews(g: GemmCase, a: Float32Array, b: Float32Array, c: Float32Array): [Mat, Mat, Mat] {
  const av = g.transA ? transpose(mat(a, g.k, g.m, 0, g.lda)) : mat(a, g.m, g.k, 0, g.lda);
  const bv = g.transB ? transpose(mat(b, g.n, g.k, 0, g.ldb)) : mat(b, g.k, g.n, 0, g.ldb);
  return [av, bv, mat(c, g.m, g.n, 0, g.ldc)];
}

/** C = alpha·op(A)·op(B) + beta·C for a gemm case. */
export function runGemm(k: Kernels, g: GemmCase, a: Float32Array, b: Float32Array, c: Float32Array): void {
  const [av, bv, cv] = gemmViews(g, a, b, c);
  k.sgemm(g.alpha, av, bv, g.beta, cv);
}

/** `batch` products of a gemm case, items sa, sb, sc floats apart. */
export function runBatched(
  k: Kernels,
  g: GemmCase,
  batch: number,
  a: Float32Array,
  sa: number,
  b: Float32Array,
  sb: number,
  c: Float32Array,
  sc: number,
): void {
  const [av, bv, cv] = gemmViews(g, a, b, c);
  k.sgemmStridedBatched(batch, g.alpha, av, sa, bv, sb, g.beta, cv, sc);
}

export function gemmSizes(g: GemmCase): { a: number; b: number; c: number } {
  const span = (rows: number, cols: number, ld: number) =>
    rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols;
  return {
    a: span(g.transA ? g.k : g.m, g.transA ? g.m : g.k, g.lda),
    b: span(g.transB ? g.n : g.k, g.transB ? g.k : g.n, g.ldb),
    c: span(g.m, g.n, g.ldc),
  };
}

/** Per-element sgemm bound (k+4)·u·(|alpha|·Σ|a||b| + |beta|·|c0|), indexed like C (with ldc). */
export function gemmBound(
  g: GemmCase,
  a: Float32Array,
  b: Float32Array,
  c0: Float32Array,
): (i: number) => number {
  const bounds = new Float64Array(c0.length);
  for (let i = 0; i < g.m; i++) {
    for (let j = 0; j < g.n; j++) {
      let s = 0;
      for (let p = 0; p < g.k; p++) {
        const av = g.transA ? a[p * g.lda + i]! : a[i * g.lda + p]!;
        const bv = g.transB ? b[j * g.ldb + p]! : b[p * g.ldb + j]!;
        s += Math.abs(av * bv);
      }
      const o = i * g.ldc + j;
      const old = g.beta === 0 ? 0 : Math.abs(g.beta * c0[o]!);
      bounds[o] = (g.k + 4) * U * (Math.abs(g.alpha) * s + old);
    }
  }
  return (i) => bounds[i]!;
}

const load = loadNative();

/** The native kernels, or undefined (with the reason) when the addon is not built. */
export const native: NativeKernels | undefined = load.ok ? load.kernels : undefined;
export const nativeMissing: string | false = load.ok ? false : `native addon not loaded: ${load.reason}`;

/** Runs fn on every code path the CPU supports (AVX-512, AVX2/FMA, portable), restoring the default. */
export function forEachPath(fn: (path: string) => void): void {
  if (!native) return;
  try {
    for (const isa of native.info().isas) {
      assert.ok(native.setIsa(isa), `setIsa(${isa}) failed for a path the CPU reports`);
      fn(native.info().isa);
    }
  } finally {
    native.setIsa(undefined);
  }
}
