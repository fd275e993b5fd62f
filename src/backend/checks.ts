/** Argument checks shared by both backends, so both fail the same way with the same message. */

type Buf = Float32Array | Int32Array;

/** Every named buffer must hold at least `n` elements (views may be longer). */
export function checkLen(op: string, bufs: Record<string, Buf>, n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new Error(`${op}: invalid size ${n}`);
  for (const [name, b] of Object.entries(bufs)) {
    if (b.length < n) throw new Error(`${op}: ${name} has ${b.length} elements, needs ${n}`);
  }
}

function checkDim(op: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0)
    throw new Error(`${op}: ${name} must be a non-negative integer, got ${v}`);
}

/** Elements a [rows, cols] matrix with leading dimension ld spans. */
function span(rows: number, cols: number, ld: number): number {
  return rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols;
}

export function checkGemm(
  op: string,
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  lda: number,
  sa: number,
  b: Float32Array,
  ldb: number,
  sb: number,
  c: Float32Array,
  ldc: number,
  sc: number,
  batch: number,
): void {
  for (const [name, v] of Object.entries({
    m,
    n,
    k,
    lda,
    ldb,
    ldc,
    strideA: sa,
    strideB: sb,
    strideC: sc,
    batch,
  })) {
    checkDim(op, name, v);
  }
  const [ar, ac] = transA ? [k, m] : [m, k];
  const [br, bc] = transB ? [n, k] : [k, n];
  const shapes = `op(A)=[${m},${k}] op(B)=[${k},${n}] C=[${m},${n}]`;
  if (lda < ac) throw new Error(`${op}: lda=${lda} < ${ac} columns of A (${shapes})`);
  if (ldb < bc) throw new Error(`${op}: ldb=${ldb} < ${bc} columns of B (${shapes})`);
  if (ldc < n) throw new Error(`${op}: ldc=${ldc} < ${n} columns of C (${shapes})`);
  if (batch === 0) return;
  const need = (one: number, stride: number): number => (one === 0 ? 0 : (batch - 1) * stride + one);
  const na = need(span(ar, ac, lda), sa);
  const nb = need(span(br, bc, ldb), sb);
  const nc = need(span(m, n, ldc), sc);
  if (a.length < na)
    throw new Error(`${op}: A has ${a.length} elements, needs ${na} (${shapes}, batch ${batch})`);
  if (b.length < nb)
    throw new Error(`${op}: B has ${b.length} elements, needs ${nb} (${shapes}, batch ${batch})`);
  if (c.length < nc)
    throw new Error(`${op}: C has ${c.length} elements, needs ${nc} (${shapes}, batch ${batch})`);
}

/** Sizes of a stack of `slices` matrices [rows, cols] and the buffers an optimizer kernel reads. */
export function checkStack(
  op: string,
  slices: number,
  rows: number,
  cols: number,
  mats: Record<string, Float32Array>,
  perRow: Record<string, Float32Array>,
  perCol: Record<string, Float32Array>,
  perSlice: Record<string, Float64Array>,
): void {
  for (const [name, v] of Object.entries({ slices, rows, cols })) checkDim(op, name, v);
  const shape = `slices=${slices} rows=${rows} cols=${cols}`;
  const need = (bufs: Record<string, { length: number }>, n: number): void => {
    for (const [name, b] of Object.entries(bufs)) {
      if (b.length < n) throw new Error(`${op}: ${name} has ${b.length} elements, needs ${n} (${shape})`);
    }
  };
  need(mats, slices * rows * cols);
  need(perRow, slices * rows);
  need(perCol, slices * cols);
  need(perSlice, slices);
}

/** The checks of sgemmGrouped (the native addon repeats them); see Kernels.sgemmGrouped. */
export function checkGrouped(
  transA: boolean,
  transB: boolean,
  groups: number,
  offsets: Int32Array,
  d: number,
  n: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  strideB: number,
  c: Float32Array,
  ldc: number,
  strideC: number,
): void {
  const op = 'sgemmGrouped';
  for (const [name, v] of Object.entries({ groups, d, n, lda, ldb, strideB, ldc, strideC })) {
    checkDim(op, name, v);
  }
  if (offsets.length < groups + 1)
    throw new Error(`${op}: offsets has ${offsets.length} elements, needs groups + 1 = ${groups + 1}`);
  if (offsets[0]! < 0) throw new Error(`${op}: offsets[0]=${offsets[0]} is negative`);
  for (let i = 0; i < groups; i++) {
    if (offsets[i + 1]! < offsets[i]!)
      throw new Error(
        `${op}: offsets must be non-decreasing: offsets[${i}]=${offsets[i]} > offsets[${i + 1}]=${offsets[i + 1]}`,
      );
  }
  const T = offsets[groups]!;
  const shapes = transA
    ? `A=[${T},${d}] B=[${T},${n}] C_g=[${d},${n}], ${groups} groups`
    : `A=[${T},${d}] op(B_g)=[${d},${n}] C=[${T},${n}], ${groups} groups`;
  if (transA && transB) throw new Error(`${op}: transB must be false when transA is true (${shapes})`);
  const bCols = transA ? n : transB ? d : n;
  const bRows = transA ? T : transB ? n : d;
  if (lda < d) throw new Error(`${op}: lda=${lda} < ${d} columns of A (${shapes})`);
  if (ldb < bCols) throw new Error(`${op}: ldb=${ldb} < ${bCols} columns of B (${shapes})`);
  if (ldc < n) throw new Error(`${op}: ldc=${ldc} < ${n} columns of C (${shapes})`);
  const batch = (one: number, stride: number): number =>
    one === 0 || groups === 0 ? 0 : (groups - 1) * stride + one;
  const na = span(T, d, lda);
  const nb = batch(span(bRows, bCols, ldb), strideB);
  const oneC = span(transA ? d : T, n, ldc);
  const nc = batch(oneC, strideC);
  if (transA && groups > 1 && oneC > 0 && strideC < oneC)
    throw new Error(`${op}: strideC=${strideC} < ${oneC}: the C_g overlap (${shapes})`);
  if (a.length < na) throw new Error(`${op}: A has ${a.length} elements, needs ${na} (${shapes})`);
  if (b.length < nb) throw new Error(`${op}: B has ${b.length} elements, needs ${nb} (${shapes})`);
  if (c.length < nc) throw new Error(`${op}: C has ${c.length} elements, needs ${nc} (${shapes})`);
}
