/**
 * Matrix operands of the kernel contract: views on Float32Array storage. The logical [rows, cols]
 * matrix's element (i, j) is data[offset + i·ld + j], or data[offset + j·ld + i] when `trans` (stored
 * [cols, rows], read transposed). A view never copies: sub-matrices, row blocks and transposes are
 * new views on the same storage, so every backend (the C++ core, the TypeScript reference, later a
 * device) sees the same addressing.
 */
export interface Mat {
  readonly data: Float32Array;
  readonly offset: number;
  readonly rows: number;
  readonly cols: number;
  readonly ld: number;
  readonly trans: boolean;
}

/** A view on bf16 storage (./bf16.ts): the same addressing, each element the upper half of a float32. */
export interface BMat {
  readonly data: Uint16Array;
  readonly offset: number;
  readonly rows: number;
  readonly cols: number;
  readonly ld: number;
  readonly trans: boolean;
}

/** Either kind of view: what the shape helpers below work on. */
export type AnyMat = Mat | BMat;

/** A row-major [rows, cols] view of `data` from `offset` (leading dimension `ld`, default cols). */
export function mat(data: Float32Array, rows: number, cols: number, offset = 0, ld = cols): Mat {
  return { data, offset, rows, cols, ld, trans: false };
}

/** A row-major [rows, cols] view of bf16 storage. */
export function bmat(data: Uint16Array, rows: number, cols: number, offset = 0, ld = cols): BMat {
  return { data, offset, rows, cols, ld, trans: false };
}

/** The transpose of a view (same storage). */
export function transpose<M extends AnyMat>(m: M): M {
  return { ...m, rows: m.cols, cols: m.rows, trans: !m.trans };
}

/** Rows [r0, r1) of a view (same storage). */
export function rowRange<M extends AnyMat>(m: M, r0: number, r1: number): M {
  if (!(Number.isInteger(r0) && Number.isInteger(r1) && 0 <= r0 && r0 <= r1 && r1 <= m.rows)) {
    throw new Error(`rowRange(${r0}, ${r1}) out of range for ${m.rows} rows`);
  }
  const step = m.trans ? 1 : m.ld;
  return { ...m, offset: m.offset + r0 * step, rows: r1 - r0 };
}

/** Columns [c0, c1) of a view (same storage). */
export function colRange<M extends AnyMat>(m: M, c0: number, c1: number): M {
  if (!(Number.isInteger(c0) && Number.isInteger(c1) && 0 <= c0 && c0 <= c1 && c1 <= m.cols)) {
    throw new Error(`colRange(${c0}, ${c1}) out of range for ${m.cols} columns`);
  }
  const step = m.trans ? m.ld : 1;
  return { ...m, offset: m.offset + c0 * step, cols: c1 - c0 };
}

/** Index of element (i, j) in m.data. */
export function matIndex(m: AnyMat, i: number, j: number): number {
  return m.trans ? m.offset + j * m.ld + i : m.offset + i * m.ld + j;
}

/** "[rows,cols]" (with " transposed"), as error messages print a view. */
export function matShape(m: AnyMat): string {
  return `[${m.rows},${m.cols}]${m.trans ? ' transposed' : ''}`;
}
