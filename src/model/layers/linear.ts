import { kernels, mat, transpose } from '../../backend/index.js';

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
  kernels().sgemm(1, mat(x, rows, dIn), mat(w, dIn, dOut), beta, mat(y, rows, dOut));
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
  kernels().sgemm(1, transpose(mat(x, rows, dIn)), mat(dy, rows, dOut), 1, mat(dW, dIn, dOut));
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
  kernels().sgemm(1, mat(dy, rows, dOut), transpose(mat(w, dIn, dOut)), beta, mat(dx, rows, dIn));
}
