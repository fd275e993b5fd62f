/**
 * The pure TypeScript kernels: straightforward loops with float64 accumulation. They define the semantics
 * the native core is tested against, and run wherever the addon does not.
 */

import { bf16Bits, bf16Value, roundToBf16 } from './bf16.js';
import {
  checkArgKinds,
  checkEqual,
  checkGroupOffsets,
  checkGroups,
  checkHolds,
  checkIndices,
  checkMat,
  checkNotTransposed,
  checkOutputsApart,
  checkPagedAttention,
  checkProduct,
  checkRowMajor,
  checkSameShape,
  checkStack,
  checkTopk,
} from './checks.js';
import type { BMat, Mat } from './mat.js';
import { type KernelOps, type Kernels, OP_NAMES } from './ops.js';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** gelu (tanh approximation) and its derivative, shared by every TypeScript path. */
/** A token's two routed experts and their probabilities, as topTwo writes them. */
export interface TopTwo {
  e1: number;
  p1: number;
  e2: number;
  p2: number;
}

/**
 * The top-2 experts of the router probabilities p[o, o + E) in one scan (GLaM/GShard: e1 = argmax, e2 =
 * argmax over the rest; strict > keeps the lowest index on ties), into `out`. NaN probabilities take
 * any other expert as second choice, so both indices stay valid. The training kernel and the inference
 * router both route with it.
 */
export function topTwo(p: Float32Array, o: number, E: number, out: TopTwo): TopTwo {
  let b1 = 0;
  let v1 = p[o]!;
  let b2 = -1;
  let v2 = -Infinity;
  for (let e = 1; e < E; e++) {
    const v = p[o + e]!;
    if (v > v1) {
      b2 = b1;
      v2 = v1;
      b1 = e;
      v1 = v;
    } else if (v > v2) {
      b2 = e;
      v2 = v;
    }
  }
  if (b2 < 0) {
    b2 = b1 === 0 ? 1 : 0;
    v2 = p[o + b2]!;
  }
  out.e1 = b1;
  out.p1 = v1;
  out.e2 = b2;
  out.p2 = v2;
  return out;
}

export function geluScalar(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}
export function geluGradScalar(x: number): number {
  const u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
  const th = Math.tanh(u);
  return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
}

/**
 * C = alpha·A·B + beta·C on views, each starting `shift*` floats after the view's own offset; with `round`,
 * both operands rounded to bf16 (the bf16-operand products).
 */
function gemm(
  alpha: number,
  a: Mat,
  b: Mat,
  beta: number,
  c: Mat,
  shiftA = 0,
  shiftB = 0,
  shiftC = 0,
  round = false,
): void {
  const [ars, acs] = a.trans ? [1, a.ld] : [a.ld, 1];
  const [brs, bcs] = b.trans ? [1, b.ld] : [b.ld, 1];
  const ao = a.offset + shiftA;
  const bo = b.offset + shiftB;
  const co = c.offset + shiftC;
  const ad = a.data;
  const bd = b.data;
  const cd = c.data;
  for (let i = 0; i < c.rows; i++) {
    for (let j = 0; j < c.cols; j++) {
      let s = 0;
      if (round) {
        for (let p = 0; p < a.cols; p++)
          s += roundToBf16(ad[ao + i * ars + p * acs]!) * roundToBf16(bd[bo + p * brs + j * bcs]!);
      } else {
        for (let p = 0; p < a.cols; p++) s += ad[ao + i * ars + p * acs]! * bd[bo + p * brs + j * bcs]!;
      }
      const o = co + i * c.ld + j;
      cd[o] = beta === 0 ? alpha * s : alpha * s + beta * cd[o]!;
    }
  }
}

/** C = alpha·bf16(A)·W + beta·C (float64 sums of the exact products of bf16 values), shifted like gemm. */
function gemmBf16Ref(alpha: number, a: Mat, w: BMat, beta: number, c: Mat, shiftW = 0, shiftC = 0): void {
  const [ars, acs] = a.trans ? [1, a.ld] : [a.ld, 1];
  const [wrs, wcs] = w.trans ? [1, w.ld] : [w.ld, 1];
  const k = a.cols;
  const ab = new Float64Array(k);
  for (let i = 0; i < c.rows; i++) {
    for (let p = 0; p < k; p++) ab[p] = bf16Value(bf16Bits(a.data[a.offset + i * ars + p * acs]!));
    for (let j = 0; j < c.cols; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += ab[p]! * bf16Value(w.data[w.offset + shiftW + p * wrs + j * wcs]!);
      const o = c.offset + shiftC + i * c.ld + j;
      c.data[o] = beta === 0 ? alpha * s : alpha * s + beta * c.data[o]!;
    }
  }
}

/** A view moved to rows [r0, r1) of its logical matrix (transposed views move along their stored columns). */
function rowsOf<M extends Mat | BMat>(m: M, r0: number, r1: number): M {
  return { ...m, offset: m.offset + r0 * (m.trans ? 1 : m.ld), rows: r1 - r0 };
}

function colsOf(m: Mat, c0: number, c1: number): Mat {
  return { ...m, offset: m.offset + c0 * (m.trans ? m.ld : 1), cols: c1 - c0 };
}

/** rowTotal = Σ_i R[s,i] and colFactor[j] = 1/sqrt(C[s,j]) for slice s of a factored stack. */
function adafactorFactors(
  vRow: Float32Array,
  vCol: Float32Array,
  s: number,
  rows: number,
  cols: number,
  colFactor: Float64Array,
): number {
  for (let j = 0; j < cols; j++) colFactor[j] = 1 / Math.sqrt(vCol[s * cols + j]!);
  let rowTotal = 0;
  for (let i = 0; i < rows; i++) rowTotal += vRow[s * rows + i]!;
  return rowTotal;
}

/** sgemm, or with `round` sgemmBf16: the same checks, operands rounded to bf16. */
function productOp(op: 'sgemm' | 'sgemmBf16', round: boolean): KernelOps['sgemm'] {
  return (alpha, a, b, beta, c) => {
    checkMat(op, 'a', a);
    checkMat(op, 'b', b);
    checkMat(op, 'c', c);
    checkProduct(op, a, b, c);
    gemm(alpha, a, b, beta, c, 0, 0, 0, round);
  };
}

function batchedOp(
  op: 'sgemmStridedBatched' | 'sgemmStridedBatchedBf16',
  round: boolean,
): KernelOps['sgemmStridedBatched'] {
  return (batch, alpha, a, strideA, b, strideB, beta, c, strideC) => {
    checkMat(op, 'a', a, strideA, batch);
    checkMat(op, 'b', b, strideB, batch);
    checkMat(op, 'c', c, strideC, batch);
    checkProduct(op, a, b, c);
    checkOutputsApart(op, c, strideC, batch);
    if (c.rows === 0 || c.cols === 0) return;
    for (let i = 0; i < batch; i++) gemm(alpha, a, b, beta, c, i * strideA, i * strideB, i * strideC, round);
  };
}

/** The operand checks every grouped product starts with; returns the group count and T = offsets[groups]. */
function checkGroupedOperands(
  op: string,
  offsets: Int32Array,
  a: Mat,
  bName: string,
  b: Mat | BMat,
  strideB: number,
  c: Mat,
  strideC: number,
): [groups: number, T: number] {
  checkGroupOffsets(op, offsets);
  const groups = offsets.length - 1;
  checkMat(op, 'a', a);
  checkMat(op, bName, b, strideB, groups);
  checkMat(op, 'c', c, strideC, groups);
  return [groups, offsets[groups]!];
}

/**
 * The shape checks of a product over row groups (a and c not transposed, rows offsets[g]..offsets[g+1]
 * of each times operand `bName` of group g), after the operands' own checks.
 */
function checkRowGroups(op: string, T: number, a: Mat, bName: string, b: Mat | BMat, c: Mat): void {
  checkNotTransposed(op, 'c', c);
  checkEqual(op, 'a.rows', a.rows, 'offsets[groups]', T);
  checkEqual(op, 'c.rows', c.rows, 'offsets[groups]', T);
  checkEqual(op, 'a.cols', a.cols, `${bName}.rows`, b.rows);
  checkEqual(op, `${bName}.cols`, b.cols, 'c.cols', c.cols);
}

/** Calls `fn` for each non-empty group g with its rows [r0, r1). */
function forEachRowGroup(offsets: Int32Array, fn: (g: number, r0: number, r1: number) => void): void {
  for (let g = 0; g + 1 < offsets.length; g++) {
    const r0 = offsets[g]!;
    const r1 = offsets[g + 1]!;
    if (r1 > r0) fn(g, r0, r1);
  }
}

function groupedOp(op: 'sgemmGrouped' | 'sgemmGroupedBf16', round: boolean): KernelOps['sgemmGrouped'] {
  return (offsets, alpha, a, b, strideB, beta, c, strideC) => {
    const [groups, T] = checkGroupedOperands(op, offsets, a, 'b', b, strideB, c, strideC);
    if (!a.trans) {
      checkRowGroups(op, T, a, 'b', b, c);
      forEachRowGroup(offsets, (g, r0, r1) =>
        gemm(alpha, rowsOf(a, r0, r1), b, beta, rowsOf(c, r0, r1), 0, g * strideB, g * strideC, round),
      );
      return;
    }
    checkNotTransposed(op, 'b', b);
    checkNotTransposed(op, 'c', c);
    checkEqual(op, 'a.cols', a.cols, 'offsets[groups]', T);
    checkEqual(op, 'b.rows', b.rows, 'offsets[groups]', T);
    checkEqual(op, 'a.rows', a.rows, 'c.rows', c.rows);
    checkEqual(op, 'b.cols', b.cols, 'c.cols', c.cols);
    const oneC = c.rows === 0 || c.cols === 0 ? 0 : (c.rows - 1) * c.ld + c.cols;
    if (groups > 1 && oneC > 0 && strideC < oneC) {
      throw new Error(`${op}: strideC=${strideC} < ${oneC}: the C_g overlap`);
    }
    for (let g = 0; g < groups; g++) {
      // C_g = A[:, group g]·B_g[group g rows, :]; an empty group gives beta·C_g.
      const r0 = offsets[g]!;
      const r1 = offsets[g + 1]!;
      gemm(alpha, colsOf(a, r0, r1), rowsOf(b, r0, r1), beta, c, 0, g * strideB, g * strideC, round);
    }
  };
}

const ops: KernelOps = {
  sgemm: productOp('sgemm', false),
  sgemmStridedBatched: batchedOp('sgemmStridedBatched', false),
  sgemmGrouped: groupedOp('sgemmGrouped', false),
  sgemmBf16: productOp('sgemmBf16', true),
  sgemmStridedBatchedBf16: batchedOp('sgemmStridedBatchedBf16', true),
  sgemmGroupedBf16: groupedOp('sgemmGroupedBf16', true),

  gemmBf16(alpha, a, w, beta, c) {
    const op = 'gemmBf16';
    checkMat(op, 'a', a);
    checkMat(op, 'w', w);
    checkMat(op, 'c', c);
    checkNotTransposed(op, 'c', c);
    checkEqual(op, 'a.rows', a.rows, 'c.rows', c.rows);
    checkEqual(op, 'w.cols', w.cols, 'c.cols', c.cols);
    checkEqual(op, 'a.cols', a.cols, 'w.rows', w.rows);
    gemmBf16Ref(alpha, a, w, beta, c);
  },

  gemmGroupedBf16(offsets, alpha, a, w, strideW, beta, c, strideC) {
    const op = 'gemmGroupedBf16';
    const [, T] = checkGroupedOperands(op, offsets, a, 'w', w, strideW, c, strideC);
    checkNotTransposed(op, 'a', a);
    checkRowGroups(op, T, a, 'w', w, c);
    forEachRowGroup(offsets, (g, r0, r1) =>
      gemmBf16Ref(alpha, rowsOf(a, r0, r1), w, beta, rowsOf(c, r0, r1), g * strideW, g * strideC),
    );
  },

  add(a, b, out) {
    checkHolds('add', 'b', b.length, a.length);
    checkHolds('add', 'out', out.length, a.length);
    for (let i = 0; i < a.length; i++) out[i] = a[i]! + b[i]!;
  },

  axpy(alpha, x, y) {
    checkHolds('axpy', 'y', y.length, x.length);
    for (let i = 0; i < x.length; i++) y[i] = y[i]! + alpha * x[i]!;
  },

  gelu(x, out) {
    checkHolds('gelu', 'out', out.length, x.length);
    for (let i = 0; i < x.length; i++) out[i] = geluScalar(x[i]!);
  },

  geluBackward(x, dy, dx) {
    checkHolds('geluBackward', 'dy', dy.length, x.length);
    checkHolds('geluBackward', 'dx', dx.length, x.length);
    for (let i = 0; i < x.length; i++) dx[i] = dy[i]! * geluGradScalar(x[i]!);
  },

  gatedGelu(a, b, out) {
    checkHolds('gatedGelu', 'b', b.length, a.length);
    checkHolds('gatedGelu', 'out', out.length, a.length);
    for (let i = 0; i < a.length; i++) out[i] = geluScalar(a[i]!) * b[i]!;
  },

  gatedGeluBackward(a, b, dy, da, db) {
    for (const [name, v] of [
      ['b', b],
      ['dy', dy],
      ['da', da],
      ['db', db],
    ] as const) {
      checkHolds('gatedGeluBackward', name, v.length, a.length);
    }
    for (let i = 0; i < a.length; i++) {
      const g = dy[i]!;
      const av = a[i]!;
      da[i] = g * b[i]! * geluGradScalar(av);
      db[i] = g * geluScalar(av);
    }
  },

  rmsnorm(x, scale, eps, out, invRms) {
    const op = 'rmsnorm';
    checkRowMajor(op, 'x', x);
    checkRowMajor(op, 'out', out);
    checkSameShape(op, 'x', x, 'out', out);
    checkHolds(op, 'scale', scale.length, x.cols);
    checkHolds(op, 'invRms', invRms.length, x.rows);
    const { rows, cols } = x;
    for (let r = 0; r < rows; r++) {
      const o = x.offset + r * cols;
      const oo = out.offset + r * cols;
      let ss = 0;
      for (let j = 0; j < cols; j++) ss += x.data[o + j]! * x.data[o + j]!;
      const inv = 1 / Math.sqrt(ss / cols + eps);
      invRms[r] = inv;
      for (let j = 0; j < cols; j++) out.data[oo + j] = x.data[o + j]! * inv * scale[j]!;
    }
  },

  rmsnormBackward(x, scale, invRms, dy, dx, dscale) {
    const op = 'rmsnormBackward';
    checkRowMajor(op, 'x', x);
    checkRowMajor(op, 'dy', dy);
    checkRowMajor(op, 'dx', dx);
    checkSameShape(op, 'x', x, 'dy', dy);
    checkSameShape(op, 'x', x, 'dx', dx);
    checkHolds(op, 'scale', scale.length, x.cols);
    checkHolds(op, 'dscale', dscale.length, x.cols);
    checkHolds(op, 'invRms', invRms.length, x.rows);
    const { rows, cols } = x;
    for (let r = 0; r < rows; r++) {
      const ox = x.offset + r * cols;
      const oy = dy.offset + r * cols;
      const od = dx.offset + r * cols;
      const inv = invRms[r]!;
      // y = x·inv·s; dx = inv·(dy·s) - x·inv³·mean(dy·s·x)
      let dot = 0;
      for (let j = 0; j < cols; j++) {
        const g = dy.data[oy + j]!;
        dscale[j] = dscale[j]! + g * x.data[ox + j]! * inv;
        dot += g * scale[j]! * x.data[ox + j]!;
      }
      const c = (inv * inv * inv * dot) / cols;
      for (let j = 0; j < cols; j++) {
        dx.data[od + j] = inv * dy.data[oy + j]! * scale[j]! - c * x.data[ox + j]!;
      }
    }
  },

  softmaxRows(x, out) {
    checkRowMajor('softmaxRows', 'x', x);
    checkRowMajor('softmaxRows', 'out', out);
    checkSameShape('softmaxRows', 'x', x, 'out', out);
    const { rows, cols } = x;
    for (let r = 0; r < rows; r++) {
      const o = x.offset + r * cols;
      const oo = out.offset + r * cols;
      let mx = -Infinity;
      for (let j = 0; j < cols; j++) mx = Math.max(mx, x.data[o + j]!);
      let s = 0;
      for (let j = 0; j < cols; j++) {
        const e = Math.exp(x.data[o + j]! - mx);
        out.data[oo + j] = e;
        s += e;
      }
      for (let j = 0; j < cols; j++) out.data[oo + j] = out.data[oo + j]! / s;
    }
  },

  softmaxRowsBackward(y, dy, dx) {
    const op = 'softmaxRowsBackward';
    checkRowMajor(op, 'y', y);
    checkRowMajor(op, 'dy', dy);
    checkRowMajor(op, 'dx', dx);
    checkSameShape(op, 'y', y, 'dy', dy);
    checkSameShape(op, 'y', y, 'dx', dx);
    const { rows, cols } = y;
    for (let r = 0; r < rows; r++) {
      const oy = y.offset + r * cols;
      const og = dy.offset + r * cols;
      const od = dx.offset + r * cols;
      let dot = 0;
      for (let j = 0; j < cols; j++) dot += dy.data[og + j]! * y.data[oy + j]!;
      for (let j = 0; j < cols; j++) dx.data[od + j] = y.data[oy + j]! * (dy.data[og + j]! - dot);
    }
  },

  causalSoftmax(scores, bias, heads, scale) {
    const op = 'causalSoftmax';
    checkRowMajor(op, 'scores', scores);
    checkRowMajor(op, 'bias', bias);
    const t = scores.cols;
    if (t === 0 ? scores.rows !== 0 : scores.rows % t !== 0) {
      throw new Error(`${op}: scores.rows=${scores.rows} must be a multiple of scores.cols=${t}`);
    }
    if (scores.rows > 0 && heads === 0) throw new Error(`${op}: heads must be positive`);
    checkEqual(op, 'bias.cols', bias.cols, 'scores.cols', t);
    checkEqual(op, 'bias.rows', bias.rows, 'heads·t', heads * t);
    const s = scores.data;
    const bd = bias.data;
    const batchHeads = t === 0 ? 0 : scores.rows / t;
    for (let bh = 0; bh < batchHeads; bh++) {
      const h = bh % heads;
      for (let i = 0; i < t; i++) {
        const o = scores.offset + (bh * t + i) * t;
        const ob = bias.offset + (h * t + i) * t;
        let mx = -Infinity;
        for (let j = 0; j <= i; j++) mx = Math.max(mx, scale * s[o + j]! + bd[ob + j]!);
        let sum = 0;
        for (let j = 0; j <= i; j++) {
          const e = Math.exp(scale * s[o + j]! + bd[ob + j]! - mx);
          s[o + j] = e;
          sum += e;
        }
        for (let j = 0; j <= i; j++) s[o + j] = s[o + j]! / sum;
        for (let j = i + 1; j < t; j++) s[o + j] = 0;
      }
    }
  },

  crossEntropy(logits, targets, losses, lse) {
    const op = 'crossEntropy';
    checkRowMajor(op, 'logits', logits);
    const { rows, cols } = logits;
    checkHolds(op, 'targets', targets.length, rows);
    checkHolds(op, 'losses', losses.length, rows);
    checkHolds(op, 'lse', lse.length, rows);
    checkIndices(op, targets, rows, cols, 'target', 'at row', true);
    const d = logits.data;
    for (let r = 0; r < rows; r++) {
      if (targets[r]! < 0) {
        lse[r] = 0;
        losses[r] = 0;
        continue;
      }
      const o = logits.offset + r * cols;
      let mx = -Infinity;
      for (let j = 0; j < cols; j++) mx = Math.max(mx, d[o + j]!);
      let s = 0;
      for (let j = 0; j < cols; j++) s += Math.exp(d[o + j]! - mx);
      const l = mx + Math.log(s);
      lse[r] = l;
      losses[r] = l - d[o + targets[r]!]!;
    }
  },

  crossEntropyBackward(logits, lse, targets, ceScale, zScale, dlogits) {
    const op = 'crossEntropyBackward';
    checkRowMajor(op, 'logits', logits);
    checkRowMajor(op, 'dlogits', dlogits);
    checkSameShape(op, 'logits', logits, 'dlogits', dlogits);
    const { rows, cols } = logits;
    checkHolds(op, 'targets', targets.length, rows);
    checkHolds(op, 'lse', lse.length, rows);
    checkIndices(op, targets, rows, cols, 'target', 'at row', true);
    for (let r = 0; r < rows; r++) {
      const o = logits.offset + r * cols;
      const od = dlogits.offset + r * cols;
      if (targets[r]! < 0) {
        dlogits.data.fill(0, od, od + cols);
        continue;
      }
      const l = lse[r]!;
      const coef = ceScale + 2 * zScale * l;
      for (let j = 0; j < cols; j++) dlogits.data[od + j] = coef * Math.exp(logits.data[o + j]! - l);
      const t = od + targets[r]!;
      dlogits.data[t] = dlogits.data[t]! - ceScale;
    }
  },

  gatherRows(src, idx, out) {
    const op = 'gatherRows';
    checkRowMajor(op, 'src', src);
    checkRowMajor(op, 'out', out);
    checkEqual(op, 'out.rows', out.rows, 'idx.size', idx.length);
    checkEqual(op, 'out.cols', out.cols, 'src.cols', src.cols);
    checkIndices(op, idx, idx.length, src.rows, 'index', 'at');
    const cols = src.cols;
    for (let i = 0; i < idx.length; i++) {
      const from = src.offset + idx[i]! * cols;
      out.data.set(src.data.subarray(from, from + cols), out.offset + i * cols);
    }
  },

  scatterAddRows(src, idx, weight, out) {
    const op = 'scatterAddRows';
    checkRowMajor(op, 'src', src);
    checkRowMajor(op, 'out', out);
    checkEqual(op, 'src.rows', src.rows, 'idx.size', idx.length);
    checkEqual(op, 'src.cols', src.cols, 'out.cols', out.cols);
    checkHolds(op, 'weight', weight.length, idx.length);
    checkIndices(op, idx, idx.length, out.rows, 'index', 'at');
    const cols = src.cols;
    for (let i = 0; i < idx.length; i++) {
      const w = weight[i]!;
      const o = out.offset + idx[i]! * cols;
      const s = src.offset + i * cols;
      for (let j = 0; j < cols; j++) out.data[o + j] = out.data[o + j]! + w * src.data[s + j]!;
    }
  },

  pagedAttention(
    q,
    kCache,
    vCache,
    blockTable,
    maxBlocks,
    blockSize,
    rowSeq,
    rowPos,
    relBias,
    bucketOf,
    scale,
    out,
  ) {
    const heads = checkPagedAttention(
      q,
      kCache,
      vCache,
      blockTable,
      maxBlocks,
      blockSize,
      rowSeq,
      rowPos,
      relBias,
      bucketOf,
      out,
    );
    const width = q.cols;
    const dHead = width / heads;
    const s = new Float64Array(maxBlocks * blockSize);
    const acc = new Float64Array(dHead);
    const slotOf = (seq: number, j: number) =>
      blockTable[seq * maxBlocks + Math.floor(j / blockSize)]! * blockSize + (j % blockSize);
    for (let r = 0; r < q.rows; r++) {
      const i = rowPos[r]!;
      for (let h = 0; h < heads; h++) {
        const qo = q.offset + r * width + h * dHead;
        let mx = -Infinity;
        for (let j = 0; j <= i; j++) {
          const ko = kCache.offset + slotOf(rowSeq[r]!, j) * width + h * dHead;
          let d = 0;
          for (let t = 0; t < dHead; t++) d += q.data[qo + t]! * kCache.data[ko + t]!;
          s[j] = scale * d + relBias.data[relBias.offset + bucketOf[i - j]! * heads + h]!;
          mx = Math.max(mx, s[j]!);
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) {
          s[j] = Math.exp(s[j]! - mx);
          sum += s[j]!;
        }
        acc.fill(0);
        for (let j = 0; j <= i; j++) {
          const vo = vCache.offset + slotOf(rowSeq[r]!, j) * width + h * dHead;
          for (let t = 0; t < dHead; t++) acc[t] += s[j]! * vCache.data[vo + t]!;
        }
        const oo = out.offset + r * width + h * dHead;
        for (let t = 0; t < dHead; t++) out.data[oo + t] = acc[t]! / sum;
      }
    }
  },

  topkRows(x, k, idx, val) {
    checkTopk(x, k, idx, val);
    const { rows, cols } = x;
    const order = Array.from({ length: cols }, (_, j) => j);
    for (let r = 0; r < rows; r++) {
      const o = x.offset + r * cols;
      const v = (j: number) => x.data[o + j]!;
      order.sort((a, b) => {
        const na = Number.isNaN(v(a));
        const nb = Number.isNaN(v(b));
        if (na || nb) return na === nb ? a - b : na ? 1 : -1;
        return v(a) === v(b) ? a - b : v(b) > v(a) ? 1 : -1;
      });
      for (let t = 0; t < k; t++) {
        idx[r * k + t] = order[t]!;
        val[r * k + t] = v(order[t]!);
      }
      order.sort((a, b) => a - b);
    }
  },

  rowDotScale(a, b, scale, dot) {
    const op = 'rowDotScale';
    checkRowMajor(op, 'a', a);
    checkRowMajor(op, 'b', b);
    checkSameShape(op, 'a', a, 'b', b);
    checkHolds(op, 'scale', scale.length, a.rows);
    checkHolds(op, 'dot', dot.length, a.rows);
    const { rows, cols } = a;
    for (let r = 0; r < rows; r++) {
      const oa = a.offset + r * cols;
      const ob = b.offset + r * cols;
      const s = scale[r]!;
      let sum = 0;
      for (let j = 0; j < cols; j++) {
        const v = a.data[oa + j]!;
        sum += v * b.data[ob + j]!;
        a.data[oa + j] = v * s;
      }
      dot[r] = sum;
    }
  },

  top2Route(
    p,
    logits,
    groups,
    capacity,
    coins,
    first,
    second,
    gate1,
    gate2,
    slot1,
    slot2,
    offsets,
    token,
    gate,
    load,
    routed,
    firstCounts,
    stats,
  ) {
    const op = 'top2Route';
    checkRowMajor(op, 'p', p);
    checkRowMajor(op, 'logits', logits);
    checkSameShape(op, 'p', p, 'logits', logits);
    const { rows: N, cols: E } = p;
    if (E < 2) throw new Error(`${op}: p has ${E} columns: top-2 routing needs at least 2 experts`);
    checkGroups(op, groups, N);
    if (coins.length !== 0 && coins.length < N) {
      throw new Error(`${op}: coins has ${coins.length} elements, needs 0 or ${N}`);
    }
    for (const [name, b, n] of [
      ['first', first, N],
      ['second', second, N],
      ['gate1', gate1, N],
      ['gate2', gate2, N],
      ['slot1', slot1, N],
      ['slot2', slot2, N],
      ['offsets', offsets, E + 1],
      ['token', token, 2 * N],
      ['gate', gate, 2 * N],
      ['load', load, E],
      ['routed', routed, E],
      ['firstCounts', firstCounts, groups * E],
      ['stats', stats, 4],
    ] as const) {
      checkHolds(op, name, b.length, n);
    }
    const PENDING = -2;
    const S = N / groups;
    const pd = p.data;
    const ld = logits.data;
    const meanP = new Float64Array(E);
    const pick: TopTwo = { e1: 0, p1: 0, e2: 0, p2: 0 };
    const used = new Int32Array(E);
    load.fill(0, 0, E);
    routed.fill(0, 0, E);
    firstCounts.fill(0, 0, groups * E);
    let entropy = 0;
    let aux = 0;
    let dropped = 0;
    for (let g = 0; g < groups; g++) {
      const t0 = g * S;
      const t1 = t0 + S;
      // Top-2 (topTwo), the group's mean probabilities and the entropy: log p_e = (l_e − l_e1) + log p_e1,
      // one log per token.
      meanP.fill(0);
      for (let t = t0; t < t1; t++) {
        const o = p.offset + t * E;
        for (let e = 0; e < E; e++) meanP[e] += pd[o + e]!;
        const { e1: b1, p1: v1, e2: b2, p2: v2 } = topTwo(pd, o, E, pick);
        const ol = logits.offset + t * E;
        const l1 = ld[ol + b1]!;
        const log1 = Math.log(v1);
        for (let e = 0; e < E; e++) entropy -= pd[o + e]! * (ld[ol + e]! - l1 + log1);
        first[t] = b1;
        second[t] = b2;
        gate1[t] = v1 / (v1 + v2);
        gate2[t] = v2 / (v1 + v2);
        firstCounts[g * E + b1]!++;
      }
      // aux_g = E · Σ_e mean_t(p_t[e]) · (fraction of first choices on e).
      let s = 0;
      for (let e = 0; e < E; e++) s += (meanP[e]! / S) * (firstCounts[g * E + e]! / S);
      aux += E * s;
      // Capacity: all first choices in token order, then the second choices.
      used.fill(0);
      for (let t = t0; t < t1; t++) {
        const e = first[t]!;
        routed[e]!++;
        if (used[e]! < capacity) {
          used[e]!++;
          slot1[t] = PENDING;
        } else {
          slot1[t] = -1;
          dropped++;
        }
      }
      for (let t = t0; t < t1; t++) {
        if (coins.length !== 0 && !(coins[t]! < 2 * gate2[t]!)) {
          slot2[t] = -1;
          continue;
        }
        const e = second[t]!;
        routed[e]!++;
        if (used[e]! < capacity) {
          used[e]!++;
          slot2[t] = PENDING;
        } else {
          slot2[t] = -1;
          dropped++;
        }
      }
      for (let e = 0; e < E; e++) load[e]! += used[e]!;
    }
    // Counting sort of the kept assignments by expert (tokens ascending within each).
    offsets[0] = 0;
    for (let e = 0; e < E; e++) offsets[e + 1] = offsets[e]! + load[e]!;
    const cursor = used;
    cursor.set(offsets.subarray(0, E));
    for (let t = 0; t < N; t++) {
      if (slot1[t] === PENDING) {
        const a = cursor[first[t]!]!++;
        token[a] = t;
        gate[a] = gate1[t]!;
        slot1[t] = a;
      }
      if (slot2[t] === PENDING) {
        const a = cursor[second[t]!]!++;
        token[a] = t;
        gate[a] = gate2[t]!;
        slot2[t] = a;
      }
    }
    stats[0] = N > 0 ? entropy / N : 0;
    stats[1] = aux / groups;
    stats[2] = dropped;
    stats[3] = offsets[E]!;
  },

  routerGrad(p, first, second, slot1, slot2, dGate, firstCounts, groups, auxGrad, dp) {
    const op = 'routerGrad';
    checkRowMajor(op, 'p', p);
    checkRowMajor(op, 'dp', dp);
    checkSameShape(op, 'p', p, 'dp', dp);
    const { rows: N, cols: E } = p;
    checkGroups(op, groups, N);
    checkHolds(op, 'first', first.length, N);
    checkHolds(op, 'second', second.length, N);
    checkHolds(op, 'slot1', slot1.length, N);
    checkHolds(op, 'slot2', slot2.length, N);
    checkHolds(op, 'firstCounts', firstCounts.length, groups * E);
    checkIndices(op, first, N, E, 'expert', 'in first at');
    checkIndices(op, second, N, E, 'expert', 'in second at');
    checkIndices(op, slot1, N, dGate.length, 'slot', 'in slot1 at', true);
    checkIndices(op, slot2, N, dGate.length, 'slot', 'in slot2 at', true);
    const S = N / groups;
    const auxCoef = new Float64Array(E);
    const pd = p.data;
    const d = dp.data;
    for (let g = 0; g < groups; g++) {
      for (let e = 0; e < E; e++) auxCoef[e] = (auxGrad * E * firstCounts[g * E + e]!) / (groups * S * S);
      for (let t = g * S; t < (g + 1) * S; t++) {
        const o = dp.offset + t * E;
        const op_ = p.offset + t * E;
        for (let e = 0; e < E; e++) d[o + e] = auxCoef[e]!;
        const e1 = first[t]!;
        const e2 = second[t]!;
        const dg1 = slot1[t]! >= 0 ? dGate[slot1[t]!]! : 0;
        const dg2 = slot2[t]! >= 0 ? dGate[slot2[t]!]! : 0;
        const p1 = pd[op_ + e1]!;
        const p2 = pd[op_ + e2]!;
        const s2 = (p1 + p2) * (p1 + p2);
        d[o + e1] = d[o + e1]! + (p2 * (dg1 - dg2)) / s2;
        d[o + e2] = d[o + e2]! + (p1 * (dg2 - dg1)) / s2;
      }
    }
  },

  lossSums(losses, lse, targets, sums) {
    const op = 'lossSums';
    const n = losses.length;
    checkHolds(op, 'lse', lse.length, n);
    checkHolds(op, 'targets', targets.length, n);
    checkHolds(op, 'sums', sums.length, 3);
    let ce = 0;
    let lse2 = 0;
    let count = 0;
    for (let r = 0; r < n; r++) {
      if (targets[r]! < 0) continue;
      ce += losses[r]!;
      lse2 += lse[r]! * lse[r]!;
      count++;
    }
    sums[0] = ce;
    sums[1] = lse2;
    sums[2] = count;
  },

  relBiasGrad(dBias, bucketOf, dRelBias) {
    const op = 'relBiasGrad';
    checkRowMajor(op, 'dBias', dBias);
    const t = dBias.cols;
    if (t === 0 ? dBias.rows !== 0 : dBias.rows % t !== 0) {
      throw new Error(`${op}: dBias.rows=${dBias.rows} must be a multiple of dBias.cols=${t}`);
    }
    const heads = t === 0 ? 0 : dBias.rows / t;
    if (heads > 0 && dRelBias.length % heads !== 0) {
      throw new Error(
        `${op}: dRelBias has ${dRelBias.length} elements, not a multiple of the ${heads} heads`,
      );
    }
    const buckets = heads === 0 ? 0 : dRelBias.length / heads;
    checkHolds(op, 'bucketOf', bucketOf.length, t * t);
    for (let i = 0; i < t; i++) {
      for (let j = 0; j <= i; j++) {
        const b = bucketOf[i * t + j]!;
        if (!(b >= 0 && b < buckets))
          throw new Error(`${op}: bucket ${b} at ${i * t + j} outside [0, ${buckets})`);
      }
    }
    const d = dBias.data;
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < t; i++) {
        const o = dBias.offset + (h * t + i) * t;
        for (let j = 0; j <= i; j++) {
          const k = bucketOf[i * t + j]! * heads + h;
          dRelBias[k] = dRelBias[k]! + d[o + j]!;
        }
      }
    }
  },

  sumSquares(x) {
    let acc = 0;
    for (let k = 0; k < x.length; k++) acc += x[k]! * x[k]!;
    return acc;
  },

  fill(x, value) {
    x.fill(value);
  },

  adafactorFactoredStats(g, vRow, vCol, slices, rows, cols, beta2, mix, eps1, sumSq) {
    checkStack('adafactorFactoredStats', slices, rows, cols, { g }, { vRow }, { vCol }, { sumSq });
    const colAcc = new Float64Array(cols);
    for (let s = 0; s < slices; s++) {
      const base = s * rows * cols;
      colAcc.fill(0);
      for (let i = 0; i < rows; i++) {
        const off = base + i * cols;
        let rowSum = 0;
        for (let j = 0; j < cols; j++) {
          const gk = g[off + j]!;
          const q = gk * gk + eps1;
          rowSum += q;
          colAcc[j] += q;
        }
        const r = s * rows + i;
        vRow[r] = beta2 * vRow[r]! + mix * rowSum;
      }
      for (let j = 0; j < cols; j++) {
        const c = s * cols + j;
        vCol[c] = beta2 * vCol[c]! + mix * colAcc[j]!;
      }
    }
    const cf = colAcc;
    for (let s = 0; s < slices; s++) {
      const base = s * rows * cols;
      const rowTotal = adafactorFactors(vRow, vCol, s, rows, cols, cf);
      let acc = 0;
      for (let i = 0; i < rows; i++) {
        const rf = Math.sqrt(rowTotal / vRow[s * rows + i]!);
        const off = base + i * cols;
        for (let j = 0; j < cols; j++) {
          const u = g[off + j]! * rf * cf[j]!;
          acc += u * u;
        }
      }
      sumSq[s] = acc;
    }
  },

  adafactorFactoredApply(g, vRow, vCol, p, slices, rows, cols, stepSizes, decay) {
    checkStack('adafactorFactoredApply', slices, rows, cols, { g, p }, { vRow }, { vCol }, { stepSizes });
    const cf = new Float64Array(cols);
    for (let s = 0; s < slices; s++) {
      const base = s * rows * cols;
      const rowTotal = adafactorFactors(vRow, vCol, s, rows, cols, cf);
      const step = stepSizes[s]!;
      for (let i = 0; i < rows; i++) {
        const rf = Math.sqrt(rowTotal / vRow[s * rows + i]!);
        const off = base + i * cols;
        for (let j = 0; j < cols; j++) {
          const u = g[off + j]! * rf * cf[j]!;
          const pk = p[off + j]!;
          p[off + j] = pk - decay * pk - step * u;
        }
      }
    }
  },

  adafactorFullStats(g, v, slices, size, beta2, mix, eps1, sumSq) {
    checkStack('adafactorFullStats', slices, 1, size, { g, v }, {}, {}, { sumSq });
    for (let s = 0; s < slices; s++) {
      let acc = 0;
      for (let k = s * size, end = k + size; k < end; k++) {
        const gk = g[k]!;
        v[k] = beta2 * v[k]! + mix * (gk * gk + eps1);
        const u = gk / Math.sqrt(v[k]!);
        acc += u * u;
      }
      sumSq[s] = acc;
    }
  },

  adafactorFullApply(g, v, p, slices, size, stepSizes, decay) {
    checkStack('adafactorFullApply', slices, 1, size, { g, v, p }, {}, {}, { stepSizes });
    for (let s = 0; s < slices; s++) {
      const step = stepSizes[s]!;
      for (let k = s * size, end = k + size; k < end; k++) {
        const u = g[k]! / Math.sqrt(v[k]!);
        const pk = p[k]!;
        p[k] = pk - decay * pk - step * u;
      }
    }
  },
};

/** Every op behind the argument-kind checks the binding makes on the native side. */
function withKindChecks(impl: KernelOps): KernelOps {
  const out: Record<string, unknown> = {};
  for (const name of OP_NAMES) {
    const fn = impl[name] as (...args: unknown[]) => unknown;
    out[name] = (...args: unknown[]) => {
      checkArgKinds(name, args);
      return fn(...args);
    };
  }
  return out as unknown as KernelOps;
}

export const referenceKernels: Kernels = {
  name: 'reference',
  describe: () => 'reference TypeScript kernels, 1 thread',
  setThreads: () => {},
  getThreads: () => 1,
  ...withKindChecks(ops),
};
