/**
 * Argument checks of the TypeScript reference kernels: the same rules, in the same order and with the
 * same messages, as the C++ core's (native/core/ops.cc, and the Node-API binding's for the JavaScript
 * types of sizes), so both backends fail a bad call alike. The native backend does not run these: its
 * core checks every call itself.
 */
import { type AnyMat, type Mat, matShape } from './mat.js';
import { type OpName, opArgs } from './ops.js';

function fail(op: string, message: string): never {
  throw new Error(`${op}: ${message}`);
}

function isSize(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 2 ** 53;
}

/** What the binding checks of every argument: sizes and the fields of matrix views are non-negative integers. */
export function checkArgKinds(op: OpName, args: readonly unknown[]): void {
  opArgs(op).forEach((a, i) => {
    const v = args[i];
    if (a.kind === 'size' && !isSize(v as number))
      fail(op, `${a.name} must be a non-negative integer, got ${v}`);
    if (a.kind === 'bmat' && !((v as AnyMat)?.data instanceof Uint16Array)) {
      fail(op, `${a.name}.data must be a Uint16Array`);
    }
    if (a.kind === 'mat' || a.kind === 'bmat') {
      const m = v as AnyMat;
      for (const field of ['offset', 'rows', 'cols', 'ld'] as const) {
        if (!isSize(m[field])) fail(op, `${a.name}.${field} must be a non-negative integer, got ${m[field]}`);
      }
    }
  });
}

/** A well-formed view (float32 or bf16), `count` of them `stride` elements apart, all inside its buffer. */
export function checkMat(op: string, name: string, m: AnyMat, stride = 0, count = 1): void {
  const storedRows = m.trans ? m.cols : m.rows;
  const storedCols = m.trans ? m.rows : m.cols;
  if (m.ld < storedCols) fail(op, `${name} ${matShape(m)} has ld ${m.ld} < ${storedCols} stored columns`);
  const need =
    storedRows > 0 && storedCols > 0 && count > 0
      ? m.offset + (storedRows - 1) * m.ld + storedCols + (count - 1) * stride
      : 0;
  if (need > m.data.length) {
    const stack = count > 1 ? `, ${count} of them ${stride} apart` : '';
    fail(
      op,
      `${name} ${matShape(m)} (ld ${m.ld}, offset ${m.offset}${stack}) needs ${need} elements, its buffer has ${m.data.length}`,
    );
  }
}

/**
 * Outputs of a batch must not all be the same view (stride 0): each product would overwrite the last, and
 * nothing would bound the batch. With a stride of 1 or more, checkMat bounds the count by the output
 * buffer, so the work is bounded by the buffers the call touches.
 */
export function checkOutputsApart(op: string, m: Mat, stride: number, count: number): void {
  if (count <= 1 || m.rows === 0 || m.cols === 0 || stride > 0) return;
  fail(op, `strideC is 0 with batch ${count}: every product would write the same c ${matShape(m)}`);
}

/** A view with contiguous rows (not transposed, ld = cols): what the row kernels read. */
export function checkRowMajor(op: string, name: string, m: Mat): void {
  checkMat(op, name, m);
  if (m.trans) fail(op, `${name} must not be transposed`);
  if (m.ld !== m.cols) {
    fail(op, `${name} ${matShape(m)} must have contiguous rows (ld = cols = ${m.cols}), got ld ${m.ld}`);
  }
}

export function checkNotTransposed(op: string, name: string, m: AnyMat): void {
  if (m.trans) fail(op, `${name} must not be transposed`);
}

/** "x.rows=3 must equal out.rows=4". */
export function checkEqual(op: string, what: string, x: number, other: string, y: number): void {
  if (x !== y) fail(op, `${what}=${x} must equal ${other}=${y}`);
}

export function checkSameShape(op: string, a: string, x: Mat, b: string, y: Mat): void {
  if (x.rows !== y.rows || x.cols !== y.cols) {
    fail(op, `${a} ${matShape(x)} and ${b} ${matShape(y)} must have the same shape`);
  }
}

/** A buffer that must hold at least `need` elements. */
export function checkHolds(op: string, name: string, size: number, need: number, where = ''): void {
  if (size < need)
    fail(op, `${name} has ${size} elements, needs ${need}${where === '' ? '' : ` (${where})`}`);
}

/**
 * Every idx[i] (i < count) in [0, limit), or negative when `negativeOk` (an ignored row); `what` is
 * "index" or "target", `at` names the position.
 */
export function checkIndices(
  op: string,
  idx: Int32Array,
  count: number,
  limit: number,
  what: string,
  at: string,
  negativeOk = false,
): void {
  for (let i = 0; i < count; i++) {
    const v = idx[i]!;
    if ((v < 0 && !negativeOk) || v >= limit) fail(op, `${what} ${v} ${at} ${i} outside [0, ${limit})`);
  }
}

/** groups >= 1 dividing `rows` (top2Route, routerGrad). */
export function checkGroups(op: string, groups: number, rows: number): void {
  if (!(groups >= 1 && rows % groups === 0))
    fail(op, `groups=${groups} must be >= 1 and divide the ${rows} rows`);
}

/** The product checks shared by sgemm and sgemmStridedBatched. */
export function checkProduct(op: string, a: Mat, b: Mat, c: Mat): void {
  checkNotTransposed(op, 'c', c);
  checkEqual(op, 'a.rows', a.rows, 'c.rows', c.rows);
  checkEqual(op, 'b.cols', b.cols, 'c.cols', c.cols);
  checkEqual(op, 'a.cols', a.cols, 'b.rows', b.rows);
}

/** The buffers of an Adafactor pass over a stack of `slices` matrices [rows, cols]. */
export function checkStack(
  op: string,
  slices: number,
  rows: number,
  cols: number,
  mats: Record<string, { length: number }>,
  perRow: Record<string, { length: number }>,
  perCol: Record<string, { length: number }>,
  perSlice: Record<string, { length: number }>,
): void {
  const shape = `slices=${slices} rows=${rows} cols=${cols}`;
  const need = (bufs: Record<string, { length: number }>, n: number): void => {
    for (const [name, b] of Object.entries(bufs)) checkHolds(op, name, b.length, n, shape);
  };
  need(mats, slices * rows * cols);
  need(perRow, slices * rows);
  need(perCol, slices * cols);
  need(perSlice, slices);
}

/** The checks of pagedAttention, in the core's order (native/core/ops.cc); returns the head count. */
export function checkPagedAttention(
  q: Mat,
  kCache: Mat,
  vCache: Mat,
  blockTable: Int32Array,
  maxBlocks: number,
  blockSize: number,
  rowSeq: Int32Array,
  rowPos: Int32Array,
  relBias: Mat,
  bucketOf: Int32Array,
  out: Mat,
): number {
  const op = 'pagedAttention';
  checkRowMajor(op, 'q', q);
  checkRowMajor(op, 'kCache', kCache);
  checkRowMajor(op, 'vCache', vCache);
  checkRowMajor(op, 'relBias', relBias);
  checkRowMajor(op, 'out', out);
  checkSameShape(op, 'q', q, 'out', out);
  checkEqual(op, 'kCache.cols', kCache.cols, 'q.cols', q.cols);
  checkSameShape(op, 'kCache', kCache, 'vCache', vCache);
  const heads = relBias.cols;
  if (heads < 1 || q.cols % heads !== 0) {
    fail(op, `q.cols=${q.cols} must be a positive multiple of relBias.cols=${heads} (the heads)`);
  }
  if (maxBlocks < 1 || blockSize < 1) fail(op, 'maxBlocks and blockSize must be positive');
  checkEqual(op, 'rowSeq.size', rowSeq.length, 'q.rows', q.rows);
  checkHolds(op, 'rowPos', rowPos.length, q.rows);
  if (blockTable.length % maxBlocks !== 0) {
    fail(op, `blockTable has ${blockTable.length} entries, not a multiple of maxBlocks=${maxBlocks}`);
  }
  checkIndices(op, bucketOf, bucketOf.length, relBias.rows, 'bucket', 'at');
  const sequences = blockTable.length / maxBlocks;
  const cacheBlocks = Math.floor(kCache.rows / blockSize);
  for (let r = 0; r < q.rows; r++) {
    const s = rowSeq[r]!;
    const pos = rowPos[r]!;
    if (!(s >= 0 && s < sequences)) fail(op, `rowSeq[${r}]=${s} outside [0, ${sequences})`);
    if (!(pos >= 0 && pos < bucketOf.length)) {
      fail(op, `rowPos[${r}]=${pos} outside [0, ${bucketOf.length}) (the distances bucketOf covers)`);
    }
    const blocks = Math.floor(pos / blockSize) + 1;
    if (blocks > maxBlocks)
      fail(op, `rowPos[${r}]=${pos} needs ${blocks} blocks, over maxBlocks=${maxBlocks}`);
    for (let b = 0; b < blocks; b++) {
      const id = blockTable[s * maxBlocks + b]!;
      if (!(id >= 0 && id < cacheBlocks)) {
        fail(op, `blockTable[${s * maxBlocks + b}]=${id} outside the cache's [0, ${cacheBlocks}) blocks`);
      }
    }
  }
  return heads;
}

/** The checks of topkRows, in the core's order. */
export function checkTopk(x: Mat, k: number, idx: Int32Array, val: Float32Array): void {
  const op = 'topkRows';
  checkRowMajor(op, 'x', x);
  if (k > x.cols) fail(op, `k=${k} exceeds x.cols=${x.cols}`);
  checkHolds(op, 'idx', idx.length, x.rows * k);
  checkHolds(op, 'val', val.length, x.rows * k);
}

/** The group boundaries of a grouped product: groups + 1 offsets, the first >= 0, non-decreasing. */
export function checkGroupOffsets(op: string, offsets: Int32Array): void {
  if (offsets.length < 1) fail(op, 'offsets needs at least 1 element (groups + 1)');
  if (offsets[0]! < 0) fail(op, `offsets[0]=${offsets[0]} is negative`);
  for (let i = 0; i + 1 < offsets.length; i++) {
    if (offsets[i + 1]! < offsets[i]!) {
      fail(
        op,
        `offsets must be non-decreasing: offsets[${i}]=${offsets[i]} > offsets[${i + 1}]=${offsets[i + 1]}`,
      );
    }
  }
}
