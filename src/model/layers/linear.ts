import { kernels } from '../../backend/index.js';

/**
 * Projections with weights stored [in, out] (y = x·W), the layout of every
 * checkpoint matrix. Rows are tokens.
 */

/** y[rows, dOut] = x[rows, dIn]·W[dIn, dOut] + beta·y (beta = 1 adds into y, e.g. the residual stream). */
export function linearForward(
  x: Float32Array,
  w: Float32Array,
  rows: number,
  dIn: number,
  dOut: number,
  y: Float32Array,
  beta = 0,
): void {
  if (rows === 0) return;
  kernels().sgemm(false, false, rows, dOut, dIn, 1, x, dIn, w, dOut, beta, y, dOut);
}

/** dW[dIn, dOut] += xᵀ·dy. */
export function linearWeightGrad(
  x: Float32Array,
  dy: Float32Array,
  rows: number,
  dIn: number,
  dOut: number,
  dW: Float32Array,
): void {
  if (rows === 0) return;
  kernels().sgemm(true, false, dIn, dOut, rows, 1, x, dIn, dy, dOut, 1, dW, dOut);
}

/** dx[rows, dIn] = dy·Wᵀ + beta·dx. */
export function linearInputGrad(
  dy: Float32Array,
  w: Float32Array,
  rows: number,
  dIn: number,
  dOut: number,
  dx: Float32Array,
  beta = 0,
): void {
  if (rows === 0) return;
  kernels().sgemm(false, true, rows, dIn, dOut, 1, dy, dOut, w, dOut, beta, dx, dIn);
}
