/**
 * The native kernel core (C++ through Node-API, built by node-gyp into build/Release/glam_native.node),
 * wrapped as a `Kernels` object. Arguments are checked here with the same checks as the reference
 * kernels (same messages), and the addon checks them again on its own, so a direct call cannot crash.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { checkGemm, checkGrouped, checkLen, checkStack } from './checks.js';
import type { Kernels } from './kernels.js';

export interface NativeInfo {
  /** Code path in use: 'avx2+fma' or 'portable'. */
  isa: string;
  /** Why that path was chosen, e.g. "forced by GLAM_FORCE_PORTABLE". */
  reason: string;
  threads: number;
  /** Cores this process may run on. */
  cores: number;
  /** Whether the CPU supports the AVX2/FMA path. */
  avx2Fma: boolean;
}

export interface PeakResult {
  /**
   * Aggregate multiply-add throughput of all threads in the fastest ~20 ms trial: the machine's
   * capability (other load only ever slows a trial down).
   */
  gflops: number;
  /** The median trial, for a sense of the current load. */
  median: number;
  trials: number;
  threads: number;
  isa: string;
}

/** The raw addon surface. Kernel signatures match `Kernels`. */
export interface NativeAddon
  extends Pick<
    Kernels,
    | 'sgemm'
    | 'sgemmStridedBatched'
    | 'sgemmGrouped'
    | 'add'
    | 'axpy'
    | 'rmsnorm'
    | 'rmsnormBackward'
    | 'gelu'
    | 'geluBackward'
    | 'gatedGelu'
    | 'gatedGeluBackward'
    | 'softmaxRows'
    | 'softmaxRowsBackward'
    | 'causalSoftmax'
    | 'crossEntropy'
    | 'crossEntropyBackward'
    | 'gatherRows'
    | 'scatterAddRows'
    | 'rowDotScale'
    | 'sumSquares'
    | 'fill'
    | 'adafactorFactoredStats'
    | 'adafactorFactoredApply'
    | 'adafactorFullStats'
    | 'adafactorFullApply'
  > {
  /** Resizes the thread pool; returns the size in effect. */
  setThreads(n: number): number;
  getThreads(): number;
  /** Switches to the portable path (true) or back to AVX2/FMA when the CPU has it; false if it cannot. */
  forcePortable(on: boolean): boolean;
  info(): NativeInfo;
  /** Runs independent FMA chains on `threads` threads in ~20 ms trials for about `seconds`. */
  peak(threads: number, seconds: number): PeakResult;
  /** Address of the buffer's data modulo 64. */
  addressMod64(buffer: ArrayBuffer): number;
}

/** The native kernels plus what only the native core has. */
export interface NativeKernels extends Kernels {
  readonly name: 'native';
  readonly addon: NativeAddon;
  info(): NativeInfo;
  peak(threads: number, seconds: number): PeakResult;
  /** Selects the portable (true) or the AVX2/FMA (false) path; returns false when it cannot. */
  setPortable(on: boolean): boolean;
}

export type NativeLoad =
  | { ok: true; kernels: NativeKernels; path: string }
  | { ok: false; path: string; reason: string };

/** Where node-gyp puts the addon, relative to this module (dist/src/backend/native.js). */
export const ADDON_PATH = fileURLToPath(new URL('../../../build/Release/glam_native.node', import.meta.url));

const NATIVE_EXPORTS = [
  'sgemm',
  'sgemmStridedBatched',
  'sgemmGrouped',
  'add',
  'axpy',
  'rmsnorm',
  'rmsnormBackward',
  'gelu',
  'geluBackward',
  'gatedGelu',
  'gatedGeluBackward',
  'softmaxRows',
  'softmaxRowsBackward',
  'causalSoftmax',
  'crossEntropy',
  'crossEntropyBackward',
  'gatherRows',
  'scatterAddRows',
  'rowDotScale',
  'setThreads',
  'getThreads',
  'forcePortable',
  'info',
  'peak',
  'addressMod64',
  'sumSquares',
  'fill',
  'adafactorFactoredStats',
  'adafactorFactoredApply',
  'adafactorFullStats',
  'adafactorFullApply',
] as const;

let cached: NativeLoad | undefined;

/** Loads the addon once; never throws (the failure reason is returned instead). */
export function loadNative(): NativeLoad {
  if (cached) return cached;
  try {
    const require = createRequire(import.meta.url);
    const mod = require(ADDON_PATH) as Record<string, unknown>;
    const missing = NATIVE_EXPORTS.filter((name) => typeof mod[name] !== 'function');
    if (missing.length > 0) {
      cached = { ok: false, path: ADDON_PATH, reason: `addon lacks ${missing.join(', ')} (stale build?)` };
    } else {
      cached = { ok: true, path: ADDON_PATH, kernels: wrapAddon(mod as unknown as NativeAddon) };
    }
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    cached = { ok: false, path: ADDON_PATH, reason: msg };
  }
  return cached;
}

/** Wraps the raw addon: the TypeScript checks run first so both backends fail with the same messages. */
export function wrapAddon(addon: NativeAddon): NativeKernels {
  return {
    name: 'native',
    addon,
    describe() {
      const info = addon.info();
      const threads = info.threads === 1 ? '1 thread' : `${info.threads} threads`;
      return `native ${info.isa} (${info.reason}), ${threads}`;
    },
    setThreads(n) {
      if (!Number.isInteger(n) || n < 1)
        throw new Error(`setThreads: n must be a positive integer, got ${n}`);
      addon.setThreads(n);
    },
    getThreads: () => addon.getThreads(),
    info: () => addon.info(),
    peak: (threads, seconds) => addon.peak(threads, seconds),
    setPortable: (on) => addon.forcePortable(on),

    sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) {
      checkGemm('sgemm', transA, transB, m, n, k, a, lda, 0, b, ldb, 0, c, ldc, 0, 1);
      addon.sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    },
    sgemmStridedBatched(transA, transB, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch) {
      checkGemm('sgemmStridedBatched', transA, transB, m, n, k, a, lda, sa, b, ldb, sb, c, ldc, sc, batch);
      addon.sgemmStridedBatched(
        transA,
        transB,
        m,
        n,
        k,
        alpha,
        a,
        lda,
        sa,
        b,
        ldb,
        sb,
        beta,
        c,
        ldc,
        sc,
        batch,
      );
    },
    sgemmGrouped(
      transA,
      transB,
      groups,
      offsets,
      d,
      n,
      alpha,
      a,
      lda,
      b,
      ldb,
      strideB,
      beta,
      c,
      ldc,
      strideC,
    ) {
      checkGrouped(transA, transB, groups, offsets, d, n, a, lda, b, ldb, strideB, c, ldc, strideC);
      addon.sgemmGrouped(
        transA,
        transB,
        groups,
        offsets,
        d,
        n,
        alpha,
        a,
        lda,
        b,
        ldb,
        strideB,
        beta,
        c,
        ldc,
        strideC,
      );
    },
    add(a, b, out) {
      checkLen('add', { a, b, out }, a.length);
      addon.add(a, b, out);
    },
    axpy(alpha, x, y) {
      checkLen('axpy', { x, y }, x.length);
      addon.axpy(alpha, x, y);
    },
    rmsnorm(x, scale, rows, cols, eps, out, invRms) {
      checkLen('rmsnorm', { x, out }, rows * cols);
      checkLen('rmsnorm', { scale }, cols);
      checkLen('rmsnorm', { invRms }, rows);
      addon.rmsnorm(x, scale, rows, cols, eps, out, invRms);
    },
    rmsnormBackward(x, scale, invRms, dy, rows, cols, dx, dscale) {
      checkLen('rmsnormBackward', { x, dy, dx }, rows * cols);
      checkLen('rmsnormBackward', { scale, dscale }, cols);
      checkLen('rmsnormBackward', { invRms }, rows);
      addon.rmsnormBackward(x, scale, invRms, dy, rows, cols, dx, dscale);
    },
    gelu(x, out) {
      checkLen('gelu', { x, out }, x.length);
      addon.gelu(x, out);
    },
    geluBackward(x, dy, dx) {
      checkLen('geluBackward', { x, dy, dx }, x.length);
      addon.geluBackward(x, dy, dx);
    },
    gatedGelu(a, b, out) {
      checkLen('gatedGelu', { a, b, out }, a.length);
      addon.gatedGelu(a, b, out);
    },
    gatedGeluBackward(a, b, dy, da, db) {
      checkLen('gatedGeluBackward', { a, b, dy, da, db }, a.length);
      addon.gatedGeluBackward(a, b, dy, da, db);
    },
    softmaxRows(x, rows, cols, out) {
      checkLen('softmaxRows', { x, out }, rows * cols);
      addon.softmaxRows(x, rows, cols, out);
    },
    softmaxRowsBackward(y, dy, rows, cols, dx) {
      checkLen('softmaxRowsBackward', { y, dy, dx }, rows * cols);
      addon.softmaxRowsBackward(y, dy, rows, cols, dx);
    },
    causalSoftmax(scores, bias, batchHeads, heads, t, scale) {
      checkLen('causalSoftmax', { scores }, batchHeads * t * t);
      checkLen('causalSoftmax', { bias }, heads * t * t);
      addon.causalSoftmax(scores, bias, batchHeads, heads, t, scale);
    },
    crossEntropy(logits, targets, rows, cols, losses, lse) {
      checkLen('crossEntropy', { logits }, rows * cols);
      checkLen('crossEntropy', { targets, losses, lse }, rows);
      addon.crossEntropy(logits, targets, rows, cols, losses, lse);
    },
    crossEntropyBackward(logits, lse, targets, rows, cols, ceScale, zScale, dlogits) {
      checkLen('crossEntropyBackward', { logits, dlogits }, rows * cols);
      checkLen('crossEntropyBackward', { targets, lse }, rows);
      addon.crossEntropyBackward(logits, lse, targets, rows, cols, ceScale, zScale, dlogits);
    },
    gatherRows(src, idx, cols, out) {
      checkLen('gatherRows', { out }, idx.length * cols);
      addon.gatherRows(src, idx, cols, out);
    },
    rowDotScale(a, b, scale, rows, cols, dot) {
      checkLen('rowDotScale', { a, b }, rows * cols);
      checkLen('rowDotScale', { scale, dot }, rows);
      addon.rowDotScale(a, b, scale, rows, cols, dot);
    },
    sumSquares: (x) => addon.sumSquares(x),
    fill: (x, value) => addon.fill(x, value),
    adafactorFactoredStats(g, vRow, vCol, slices, rows, cols, beta2, mix, eps1, sumSq) {
      checkStack('adafactorFactoredStats', slices, rows, cols, { g }, { vRow }, { vCol }, { sumSq });
      addon.adafactorFactoredStats(g, vRow, vCol, slices, rows, cols, beta2, mix, eps1, sumSq);
    },
    adafactorFactoredApply(g, vRow, vCol, p, slices, rows, cols, stepSizes, decay) {
      checkStack('adafactorFactoredApply', slices, rows, cols, { g, p }, { vRow }, { vCol }, { stepSizes });
      addon.adafactorFactoredApply(g, vRow, vCol, p, slices, rows, cols, stepSizes, decay);
    },
    adafactorFullStats(g, v, slices, size, beta2, mix, eps1, sumSq) {
      checkStack('adafactorFullStats', slices, 1, size, { g, v }, {}, {}, { sumSq });
      addon.adafactorFullStats(g, v, slices, size, beta2, mix, eps1, sumSq);
    },
    adafactorFullApply(g, v, p, slices, size, stepSizes, decay) {
      checkStack('adafactorFullApply', slices, 1, size, { g, v, p }, {}, {}, { stepSizes });
      addon.adafactorFullApply(g, v, p, slices, size, stepSizes, decay);
    },
    scatterAddRows(src, idx, weight, cols, out) {
      checkLen('scatterAddRows', { src }, idx.length * cols);
      checkLen('scatterAddRows', { weight }, idx.length);
      addon.scatterAddRows(src, idx, weight, cols, out);
    },
  };
}
