import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mat } from '../../src/backend/mat.js';
import type { Kernels } from '../../src/backend/ops.js';
import { referenceKernels } from '../../src/backend/reference.js';
import {
  assertClose,
  forEachPath,
  native,
  nativeMissing,
  randomArray,
  randomInts,
  relBound,
  U,
} from './helpers.js';

/** [rows, cols]: the sizes 1, 7, 33, 257, long rows, and shapes big enough to run on several threads. */
const SHAPES: [number, number][] = [
  [1, 1],
  [7, 33],
  [33, 7],
  [257, 257],
  [3, 5000],
  [600, 300],
];
const LENGTHS = [1, 7, 33, 257, 200_003];

type Outputs = Record<string, Float32Array>;

/** Runs `op` on copies of the inputs with the reference and the native kernels (on every path). */
function compare(
  label: string,
  inputs: Outputs,
  op: (k: Kernels, io: Outputs) => void,
  bounds: (expected: Outputs, io: Outputs) => Record<string, (i: number) => number>,
): void {
  const copy = (): Outputs => Object.fromEntries(Object.entries(inputs).map(([key, v]) => [key, v.slice()]));
  const expected = copy();
  op(referenceKernels, expected);
  const b = bounds(expected, inputs);
  forEachPath((path) => {
    const actual = copy();
    op(native!, actual);
    for (const [key, bound] of Object.entries(b)) {
      assertClose(`${path} ${label} ${key}`, actual[key]!, expected[key]!, bound);
    }
  });
}

describe('native element-wise kernels vs reference', { skip: nativeMissing }, () => {
  test('add and axpy (also in place)', () => {
    for (const n of LENGTHS) {
      const inputs = { a: randomArray(n, 1), b: randomArray(n, 2), out: new Float32Array(n) };
      compare(
        `add n=${n}`,
        inputs,
        (k, io) => k.add(io.a!, io.b!, io.out!),
        (e) => ({ out: (i) => U * Math.abs(e.out![i]!) }),
      );
      compare(
        `add in place n=${n}`,
        inputs,
        (k, io) => k.add(io.a!, io.b!, io.a!),
        (e) => ({ a: (i) => U * Math.abs(e.a![i]!) }),
      );
      compare(
        `axpy n=${n}`,
        inputs,
        (k, io) => k.axpy(-0.75, io.a!, io.b!),
        (e, x) => ({ b: (i) => 2 * U * (Math.abs(e.b![i]!) + 0.75 * Math.abs(x.a![i]!)) }),
      );
    }
  });

  test('gelu, gatedGelu and their backwards (also in place)', () => {
    for (const n of LENGTHS) {
      const inputs = {
        x: randomArray(n, 3, -8, 8),
        b: randomArray(n, 4, -2, 2),
        dy: randomArray(n, 5),
        out: new Float32Array(n),
        d2: new Float32Array(n),
      };
      const tol = 2e-6;
      compare(
        `gelu n=${n}`,
        inputs,
        (k, io) => k.gelu(io.x!, io.out!),
        (e) => ({ out: relBound(e.out!, tol) }),
      );
      compare(
        `gelu in place n=${n}`,
        inputs,
        (k, io) => k.gelu(io.x!, io.x!),
        (e) => ({ x: relBound(e.x!, tol) }),
      );
      compare(
        `geluBackward n=${n}`,
        inputs,
        (k, io) => k.geluBackward(io.x!, io.dy!, io.dy!),
        (e) => ({ dy: relBound(e.dy!, tol) }),
      );
      compare(
        `gatedGelu n=${n}`,
        inputs,
        (k, io) => k.gatedGelu(io.x!, io.b!, io.out!),
        (e) => ({ out: relBound(e.out!, tol) }),
      );
      compare(
        `gatedGeluBackward n=${n}`,
        inputs,
        (k, io) => k.gatedGeluBackward(io.x!, io.b!, io.dy!, io.out!, io.d2!),
        (e) => ({ out: relBound(e.out!, tol), d2: relBound(e.d2!, tol) }),
      );
    }
  });

  test('gelu at the extremes: no NaN from overflow, exact zeros and identity far out', () => {
    const x = new Float32Array([-1e4, -100, -20, -10, 0, 10, 20, 100, 1e4]);
    const out = new Float32Array(x.length);
    const dx = new Float32Array(x.length);
    forEachPath((path) => {
      native!.gelu(x, out);
      native!.geluBackward(x, new Float32Array(x.length).fill(1), dx);
      const ref = new Float32Array(x.length);
      referenceKernels.gelu(x, ref);
      assertClose(`${path} gelu extremes`, out, ref, relBound(ref, 2e-6));
      for (const v of dx) assert.ok(Number.isFinite(v), `${path}: gelu' not finite: ${dx}`);
      assert.equal(dx[8], 1);
      assert.ok(Math.abs(dx[0]!) < 1e-30);
    });
  });

  test('softmaxRows and its backward', () => {
    for (const [rows, cols] of SHAPES) {
      const inputs = {
        x: randomArray(rows * cols, 6, -10, 10),
        dy: randomArray(rows * cols, 7),
        out: new Float32Array(rows * cols),
      };
      compare(
        `softmaxRows ${rows}x${cols}`,
        inputs,
        (k, io) => k.softmaxRows(mat(io.x!, rows, cols), mat(io.x!, rows, cols)),
        (e) => ({ x: (i) => 1e-6 * Math.abs(e.x![i]!) + 1e-9 }),
      );
      // y must be a softmax output for the bound to mean anything.
      const y = new Float32Array(rows * cols);
      referenceKernels.softmaxRows(mat(inputs.x, rows, cols), mat(y, rows, cols));
      const dots = new Float64Array(rows);
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < cols; j++) dots[r]! += Math.abs(y[r * cols + j]! * inputs.dy[r * cols + j]!);
      }
      compare(
        `softmaxRowsBackward ${rows}x${cols}`,
        { y, dy: inputs.dy, dx: new Float32Array(rows * cols) },
        (k, io) =>
          k.softmaxRowsBackward(mat(io.y!, rows, cols), mat(io.dy!, rows, cols), mat(io.dx!, rows, cols)),
        (_, x) => ({
          dx: (i) => 4 * U * Math.abs(x.y![i]!) * (Math.abs(x.dy![i]!) + dots[Math.floor(i / cols)]!) + 1e-12,
        }),
      );
    }
  });

  test('causalSoftmax with scale and per-head bias', () => {
    for (const [batchHeads, heads, t] of [
      [1, 1, 1],
      [6, 3, 7],
      [4, 2, 33],
      [8, 4, 100],
    ] as const) {
      const inputs = {
        s: randomArray(batchHeads * t * t, 8, -5, 5),
        bias: randomArray(heads * t * t, 9, -2, 2),
      };
      compare(
        `causalSoftmax bh=${batchHeads} h=${heads} t=${t}`,
        inputs,
        (k, io) => k.causalSoftmax(mat(io.s!, batchHeads * t, t), mat(io.bias!, heads * t, t), heads, 0.37),
        (e) => ({ s: (i) => 1e-6 * Math.abs(e.s![i]!) + 1e-9 }),
      );
    }
  });

  test('rmsnorm and its backward (dscale accumulates)', () => {
    for (const [rows, cols] of SHAPES) {
      const x = randomArray(rows * cols, 10, -3, 3);
      const scale = randomArray(cols, 11, 0.5, 1.5);
      const dy = randomArray(rows * cols, 12);
      compare(
        `rmsnorm ${rows}x${cols}`,
        { x, scale, out: new Float32Array(rows * cols), inv: new Float32Array(rows) },
        (k, io) => k.rmsnorm(mat(io.x!, rows, cols), io.scale!, 1e-6, mat(io.out!, rows, cols), io.inv!),
        (e) => ({ out: relBound(e.out!, 2e-6), inv: relBound(e.inv!, 2e-6) }),
      );
      const inv = new Float32Array(rows);
      referenceKernels.rmsnorm(
        mat(x, rows, cols),
        scale,
        1e-6,
        mat(new Float32Array(rows * cols), rows, cols),
        inv,
      );
      // dx = inv·dy·s - c·x with c = inv³·Σ(dy·s·x)/cols: the two terms may cancel, so the bound is
      // relative to their magnitudes, not to the result.
      const colSums = new Float64Array(cols);
      const termSums = new Float64Array(rows * cols);
      for (let r = 0; r < rows; r++) {
        let dot = 0;
        for (let j = 0; j < cols; j++) dot += dy[r * cols + j]! * scale[j]! * x[r * cols + j]!;
        const c = (inv[r]! ** 3 * dot) / cols;
        for (let j = 0; j < cols; j++) {
          const o = r * cols + j;
          colSums[j]! += Math.abs(dy[o]! * x[o]! * inv[r]!);
          termSums[o] = Math.abs(inv[r]! * dy[o]! * scale[j]!) + Math.abs(c * x[o]!);
        }
      }
      compare(
        `rmsnormBackward ${rows}x${cols}`,
        { x, scale, inv, dy, dscale: randomArray(cols, 13) },
        (k, io) => {
          const dyv = mat(io.dy!, rows, cols);
          k.rmsnormBackward(mat(io.x!, rows, cols), io.scale!, io.inv!, dyv, dyv, io.dscale!);
        },
        () => ({ dy: (i) => 2e-6 * termSums[i]! + 1e-12, dscale: (j) => 2e-6 * (1 + colSums[j]!) }),
      );
    }
  });

  test('crossEntropy and its backward with the z-loss term', () => {
    for (const [rows, cols] of SHAPES) {
      const logits = randomArray(rows * cols, 14, -8, 8);
      const targets = randomInts(rows, 15, cols);
      compare(
        `crossEntropy ${rows}x${cols}`,
        { logits, losses: new Float32Array(rows), lse: new Float32Array(rows) },
        (k, io) => {
          k.crossEntropy(mat(io.logits!, rows, cols), targets, io.losses!, io.lse!);
        },
        (e) => ({ losses: relBound(e.losses!, 2e-6), lse: relBound(e.lse!, 2e-6) }),
      );
      const lse = new Float32Array(rows);
      referenceKernels.crossEntropy(mat(logits, rows, cols), targets, new Float32Array(rows), lse);
      const [ceScale, zScale] = [1 / rows, 1e-4 / rows];
      compare(
        `crossEntropyBackward ${rows}x${cols}`,
        { logits, lse },
        (k, io) => {
          const lv = mat(io.logits!, rows, cols);
          k.crossEntropyBackward(lv, io.lse!, targets, ceScale, zScale, lv);
        },
        (e) => ({
          logits: (i) => {
            const coef = Math.abs(ceScale + 2 * zScale * lse[Math.floor(i / cols)]!);
            return 1e-6 * (Math.abs(e.logits![i]!) + coef + ceScale) + 1e-9;
          },
        }),
      );
    }
  });

  test('gatherRows and scatterAddRows with repeated indices', () => {
    for (const [rows, cols] of SHAPES) {
      const count = rows * 2 + 1;
      const idx = randomInts(count, 16, rows);
      const src = randomArray(rows * cols, 17);
      compare(
        `gatherRows ${count} of ${rows}x${cols}`,
        { src, out: new Float32Array(count * cols) },
        (k, io) => k.gatherRows(mat(io.src!, rows, cols), idx, mat(io.out!, count, cols)),
        () => ({ out: () => 0 }),
      );
      const updates = randomArray(count * cols, 18);
      const weight = randomArray(count, 19);
      const sums = new Float64Array(rows * cols);
      for (let i = 0; i < count; i++) {
        for (let j = 0; j < cols; j++)
          sums[idx[i]! * cols + j]! += Math.abs(weight[i]! * updates[i * cols + j]!);
      }
      compare(
        `scatterAddRows ${count} into ${rows}x${cols}`,
        { updates, weight, out: randomArray(rows * cols, 20) },
        (k, io) => k.scatterAddRows(mat(io.updates!, count, cols), idx, io.weight!, mat(io.out!, rows, cols)),
        (_, x) => ({ out: (i) => 2 * (count + 1) * U * (sums[i]! + Math.abs(x.out![i]!)) }),
      );
    }
  });

  test('rowDotScale', () => {
    for (const [rows, cols] of SHAPES) {
      const b = randomArray(rows * cols, 22);
      const scale = randomArray(rows, 23);
      const a0 = randomArray(rows * cols, 24);
      const sums = new Float64Array(rows);
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < cols; j++) sums[r]! += Math.abs(a0[r * cols + j]! * b[r * cols + j]!);
      }
      compare(
        `rowDotScale ${rows}x${cols}`,
        { a: a0, b, scale, dot: new Float32Array(rows) },
        (k, io) => k.rowDotScale(mat(io.a!, rows, cols), mat(io.b!, rows, cols), io.scale!, io.dot!),
        (e) => ({
          a: (i) => U * Math.abs(e.a![i]!),
          dot: (i) => 2 * (cols + 1) * U * sums[i]! + 1e-30,
        }),
      );
    }
  });

  test('NaN in a row makes that row NaN, as in the reference', () => {
    const x = randomArray(12, 21);
    x[5] = Number.NaN;
    const out = new Float32Array(12);
    native!.softmaxRows(mat(x, 3, 4), mat(out, 3, 4));
    assert.ok(out.subarray(4, 8).every(Number.isNaN));
    assert.ok(out.subarray(0, 4).every(Number.isFinite) && out.subarray(8).every(Number.isFinite));
  });
});

describe('native row kernels: 1 and 2 threads agree bitwise', { skip: nativeMissing }, () => {
  test('softmax, rmsnorm backward (column-split dscale), scatterAddRows (repeated indices)', () => {
    const [rows, cols] = [512, 384];
    const x = randomArray(rows * cols, 30, -4, 4);
    const dy = randomArray(rows * cols, 31);
    const scale = randomArray(cols, 32);
    const idx = randomInts(rows, 33, 16);
    const weight = randomArray(rows, 34);
    const before = native!.getThreads();
    try {
      const run = (threads: number): Float32Array[] => {
        native!.setThreads(threads);
        const sm = new Float32Array(rows * cols);
        native!.softmaxRows(mat(x, rows, cols), mat(sm, rows, cols));
        const out = new Float32Array(rows * cols);
        const inv = new Float32Array(rows);
        native!.rmsnorm(mat(x, rows, cols), scale, 1e-6, mat(out, rows, cols), inv);
        const dx = new Float32Array(rows * cols);
        const dscale = new Float32Array(cols);
        native!.rmsnormBackward(
          mat(x, rows, cols),
          scale,
          inv,
          mat(dy, rows, cols),
          mat(dx, rows, cols),
          dscale,
        );
        const acc = new Float32Array(16 * cols);
        native!.scatterAddRows(mat(x, rows, cols), idx, weight, mat(acc, 16, cols));
        const g = new Float32Array(rows * cols);
        native!.gatedGeluBackward(x, dy, dy, g, new Float32Array(rows * cols));
        return [sm, out, inv, dx, dscale, acc, g];
      };
      const one = run(1);
      const two = run(2);
      one.forEach((o, i) => {
        assert.ok(
          o.every((v, j) => Object.is(v, two[i]![j])),
          `output ${i} differs between 1 and 2 threads`,
        );
      });
    } finally {
      native!.setThreads(before);
    }
  });
});
