/**
 * Matrix-product precision: 'fp32' (float32 products) or 'bf16' (both operands rounded to bf16, sums in
 * float32: GLaM's bf16 mixed-precision training, with float32 master weights and optimiser state kept
 * by the caller). withPrecision returns kernels whose sgemm, sgemmStridedBatched and sgemmGrouped are
 * the bf16-operand ops; every other op is unchanged.
 */
import type { Kernels } from './ops.js';

export type Precision = 'fp32' | 'bf16';
export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16'];

export function withPrecision(k: Kernels, precision: Precision): Kernels {
  if (!PRECISIONS.includes(precision)) {
    throw new Error(`precision must be one of ${PRECISIONS.join(', ')}, got '${precision}'`);
  }
  if (precision === 'fp32') return k;
  return {
    ...k,
    describe: () => `${k.describe()}, bf16 products`,
    setThreads: (n) => k.setThreads(n),
    getThreads: () => k.getThreads(),
    sgemm: k.sgemmBf16,
    sgemmStridedBatched: k.sgemmStridedBatchedBf16,
    sgemmGrouped: k.sgemmGroupedBf16,
  };
}

/** A precision named on a command line (`--precision`), or an error naming the choices. */
export function parsePrecision(v: string, what = '--precision'): Precision {
  if (!(PRECISIONS as readonly string[]).includes(v)) {
    throw new Error(`${what} must be one of ${PRECISIONS.join(', ')}, got '${v}'`);
  }
  return v as Precision;
}
