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
