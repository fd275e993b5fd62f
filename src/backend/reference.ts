import { checkGemm, checkGrouped, checkLen, checkStack } from './checks.js';
import type { Kernels } from './kernels.js';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** gelu (tanh approximation) and its derivative, shared by every TypeScript path. */
export function geluScalar(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}
export function geluGradScalar(x: number): number {
  const u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
  const th = Math.tanh(u);
  return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
}

function gemm(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  beta: number,
  c: Float32Array,
  ldc: number,
): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        const av = transA ? a[p * lda + i]! : a[i * lda + p]!;
        const bv = transB ? b[j * ldb + p]! : b[p * ldb + j]!;
        s += av * bv;
      }
      const o = i * ldc + j;
      c[o] = beta === 0 ? alpha * s : alpha * s + beta * c[o]!;
    }
  }
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

/**
 * The pure TypeScript kernels: straightforward loops with float64 accumulation.
 * They define the semantics the native core is tested against.
 */
export const referenceKernels: Kernels = {
  name: 'reference',
  describe: () => 'reference TypeScript kernels, 1 thread',
  setThreads: () => {},
  getThreads: () => 1,

  sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) {
    checkGemm('sgemm', transA, transB, m, n, k, a, lda, 0, b, ldb, 0, c, ldc, 0, 1);
    gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  },

  sgemmStridedBatched(transA, transB, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch) {
    checkGemm('sgemmStridedBatched', transA, transB, m, n, k, a, lda, sa, b, ldb, sb, c, ldc, sc, batch);
    for (let i = 0; i < batch; i++) {
      gemm(
        transA,
        transB,
        m,
        n,
        k,
        alpha,
        a.subarray(i * sa),
        lda,
        b.subarray(i * sb),
        ldb,
        beta,
        c.subarray(i * sc),
        ldc,
      );
    }
  },

  sgemmGrouped(transA, transB, groups, offsets, d, n, alpha, a, lda, b, ldb, strideB, beta, c, ldc, strideC) {
    checkGrouped(transA, transB, groups, offsets, d, n, a, lda, b, ldb, strideB, c, ldc, strideC);
    for (let g = 0; g < groups; g++) {
      const r0 = offsets[g]!;
      const rows = offsets[g + 1]! - r0;
      const ag = a.subarray(r0 * lda);
      if (transA) {
        // C_g [d, n] = alpha·A_gᵀ·B_g + beta·C_g; k = rows (an empty group scales C_g by beta).
        const bg = b.subarray(g * strideB + r0 * ldb);
        gemm(true, false, d, n, rows, alpha, ag, lda, bg, ldb, beta, c.subarray(g * strideC), ldc);
      } else if (rows > 0) {
        const cg = c.subarray(g * strideC + r0 * ldc);
        gemm(false, transB, rows, n, d, alpha, ag, lda, b.subarray(g * strideB), ldb, beta, cg, ldc);
      }
    }
  },

  add(a, b, out) {
    checkLen('add', { a, b, out }, a.length);
    for (let i = 0; i < a.length; i++) out[i] = a[i]! + b[i]!;
  },

  axpy(alpha, x, y) {
    checkLen('axpy', { x, y }, x.length);
    for (let i = 0; i < x.length; i++) y[i] = y[i]! + alpha * x[i]!;
  },

  rmsnorm(x, scale, rows, cols, eps, out, invRms) {
    checkLen('rmsnorm', { x, out }, rows * cols);
    checkLen('rmsnorm', { scale }, cols);
    checkLen('rmsnorm', { invRms }, rows);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let ss = 0;
      for (let j = 0; j < cols; j++) ss += x[o + j]! * x[o + j]!;
      const inv = 1 / Math.sqrt(ss / cols + eps);
      invRms[r] = inv;
      for (let j = 0; j < cols; j++) out[o + j] = x[o + j]! * inv * scale[j]!;
    }
  },

  rmsnormBackward(x, scale, invRms, dy, rows, cols, dx, dscale) {
    checkLen('rmsnormBackward', { x, dy, dx }, rows * cols);
    checkLen('rmsnormBackward', { scale, dscale }, cols);
    checkLen('rmsnormBackward', { invRms }, rows);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      const inv = invRms[r]!;
      // y = x·inv·s; dx = inv·(dy·s) - x·inv³·mean(dy·s·x)
      let dot = 0;
      for (let j = 0; j < cols; j++) {
        const g = dy[o + j]!;
        dscale[j] = dscale[j]! + g * x[o + j]! * inv;
        dot += g * scale[j]! * x[o + j]!;
      }
      const c = (inv * inv * inv * dot) / cols;
      for (let j = 0; j < cols; j++) dx[o + j] = inv * dy[o + j]! * scale[j]! - c * x[o + j]!;
    }
  },

  gelu(x, out) {
    checkLen('gelu', { x, out }, x.length);
    for (let i = 0; i < x.length; i++) out[i] = geluScalar(x[i]!);
  },

  geluBackward(x, dy, dx) {
    checkLen('geluBackward', { x, dy, dx }, x.length);
    for (let i = 0; i < x.length; i++) dx[i] = dy[i]! * geluGradScalar(x[i]!);
  },

  gatedGelu(a, b, out) {
    checkLen('gatedGelu', { a, b, out }, a.length);
    for (let i = 0; i < a.length; i++) out[i] = geluScalar(a[i]!) * b[i]!;
  },

  gatedGeluBackward(a, b, dy, da, db) {
    checkLen('gatedGeluBackward', { a, b, dy, da, db }, a.length);
    for (let i = 0; i < a.length; i++) {
      const g = dy[i]!;
      const av = a[i]!;
      const bv = b[i]!;
      da[i] = g * bv * geluGradScalar(av);
      db[i] = g * geluScalar(av);
    }
  },

  softmaxRows(x, rows, cols, out) {
    checkLen('softmaxRows', { x, out }, rows * cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let mx = -Infinity;
      for (let j = 0; j < cols; j++) mx = Math.max(mx, x[o + j]!);
      let s = 0;
      for (let j = 0; j < cols; j++) {
        const e = Math.exp(x[o + j]! - mx);
        out[o + j] = e;
        s += e;
      }
      for (let j = 0; j < cols; j++) out[o + j] = out[o + j]! / s;
    }
  },

  softmaxRowsBackward(y, dy, rows, cols, dx) {
    checkLen('softmaxRowsBackward', { y, dy, dx }, rows * cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let dot = 0;
      for (let j = 0; j < cols; j++) dot += dy[o + j]! * y[o + j]!;
      for (let j = 0; j < cols; j++) dx[o + j] = y[o + j]! * (dy[o + j]! - dot);
    }
  },

  causalSoftmax(scores, bias, batchHeads, heads, t, scale) {
    checkLen('causalSoftmax', { scores }, batchHeads * t * t);
    checkLen('causalSoftmax', { bias }, heads * t * t);
    for (let bh = 0; bh < batchHeads; bh++) {
      const h = bh % heads;
      for (let i = 0; i < t; i++) {
        const o = (bh * t + i) * t;
        const ob = (h * t + i) * t;
        let mx = -Infinity;
        for (let j = 0; j <= i; j++) mx = Math.max(mx, scale * scores[o + j]! + bias[ob + j]!);
        let s = 0;
        for (let j = 0; j <= i; j++) {
          const e = Math.exp(scale * scores[o + j]! + bias[ob + j]! - mx);
          scores[o + j] = e;
          s += e;
        }
        for (let j = 0; j <= i; j++) scores[o + j] = scores[o + j]! / s;
        for (let j = i + 1; j < t; j++) scores[o + j] = 0;
      }
    }
  },

  crossEntropy(logits, targets, rows, cols, losses, lse) {
    checkLen('crossEntropy', { logits }, rows * cols);
    checkLen('crossEntropy', { targets, losses, lse }, rows);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      const tgt = targets[r]!;
      if (!(tgt >= 0 && tgt < cols))
        throw new Error(`crossEntropy: target ${tgt} at row ${r} outside [0, ${cols})`);
      let mx = -Infinity;
      for (let j = 0; j < cols; j++) mx = Math.max(mx, logits[o + j]!);
      let s = 0;
      for (let j = 0; j < cols; j++) s += Math.exp(logits[o + j]! - mx);
      const l = mx + Math.log(s);
      lse[r] = l;
      losses[r] = l - logits[o + tgt]!;
    }
  },

  crossEntropyBackward(logits, lse, targets, rows, cols, ceScale, zScale, dlogits) {
    checkLen('crossEntropyBackward', { logits, dlogits }, rows * cols);
    checkLen('crossEntropyBackward', { targets, lse }, rows);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      const l = lse[r]!;
      const coef = ceScale + 2 * zScale * l;
      for (let j = 0; j < cols; j++) dlogits[o + j] = coef * Math.exp(logits[o + j]! - l);
      const tgt = targets[r]!;
      if (!(tgt >= 0 && tgt < cols))
        throw new Error(`crossEntropyBackward: target ${tgt} at row ${r} outside [0, ${cols})`);
      dlogits[o + tgt] = dlogits[o + tgt]! - ceScale;
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

  gatherRows(src, idx, cols, out) {
    checkLen('gatherRows', { out }, idx.length * cols);
    const srcRows = cols === 0 ? 0 : Math.floor(src.length / cols);
    for (let i = 0; i < idx.length; i++) {
      const r = idx[i]!;
      if (!(r >= 0 && r < srcRows)) throw new Error(`gatherRows: index ${r} at ${i} outside [0, ${srcRows})`);
      out.set(src.subarray(r * cols, (r + 1) * cols), i * cols);
    }
  },

  rowDotScale(a, b, scale, rows, cols, dot) {
    checkLen('rowDotScale', { a, b }, rows * cols);
    checkLen('rowDotScale', { scale, dot }, rows);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      const end = o + cols;
      const s = scale[r]!;
      let sum = 0;
      for (let j = o; j < end; j++) {
        const v = a[j]!;
        sum += v * b[j]!;
        a[j] = v * s;
      }
      dot[r] = sum;
    }
  },

  scatterAddRows(src, idx, weight, cols, out) {
    checkLen('scatterAddRows', { src }, idx.length * cols);
    checkLen('scatterAddRows', { weight }, idx.length);
    const outRows = cols === 0 ? 0 : Math.floor(out.length / cols);
    for (let i = 0; i < idx.length; i++) {
      const r = idx[i]!;
      if (!(r >= 0 && r < outRows))
        throw new Error(`scatterAddRows: index ${r} at ${i} outside [0, ${outRows})`);
      const w = weight[i]!;
      for (let j = 0; j < cols; j++) out[r * cols + j] = out[r * cols + j]! + w * src[i * cols + j]!;
    }
  },
};
