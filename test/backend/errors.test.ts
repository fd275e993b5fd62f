import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Mat, mat, transpose } from '../../src/backend/mat.js';
import type { NativeAddon } from '../../src/backend/native.js';
import { opTableDifferences } from '../../src/backend/native.js';
import { OP_NAMES, OPS } from '../../src/backend/ops.js';
import { referenceKernels } from '../../src/backend/reference.js';
import { native, nativeMissing } from './helpers.js';

const f32 = (n: number) => new Float32Array(n);
const m = (n: number, rows: number, cols: number, ld = cols, offset = 0): Mat =>
  mat(f32(n), rows, cols, offset, ld);

/** A Float32Array whose ArrayBuffer has been transferred away (detached). */
function detached(n: number): Float32Array {
  const a = f32(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  assert.equal(a.length, 0);
  return a;
}

/** A matrix view as the six arguments the addon reads. */
const flat = (v: Mat): unknown[] => [v.data, v.offset, v.rows, v.cols, v.ld, v.trans];

/** Calls the raw addon with arguments TypeScript would reject, as plain JavaScript could. */
function raw(fn: string, ...args: unknown[]): void {
  const f = (native!.addon as NativeAddon)[fn] as (...a: unknown[]) => unknown;
  f(...args);
}

describe('the op table is declared once and the addon implements exactly it', () => {
  test('OPS lists every op with named, typed arguments', () => {
    assert.ok(OP_NAMES.length >= 25);
    for (const name of OP_NAMES) {
      for (const a of OPS[name].args)
        assert.match(a, /^[a-zA-Z0-9]+:(num|size|f32|i32|f64|mat|bmat)$/, `${name}: ${a}`);
    }
  });

  test('the addon exports the same table', { skip: nativeMissing }, () => {
    assert.deepEqual(opTableDifferences(native!.addon.ops), []);
  });

  test('a difference is reported by name', () => {
    const table: Record<string, string> = Object.fromEntries(OP_NAMES.map((n) => [n, OPS[n].args.join(' ')]));
    table.gelu = 'x:f32';
    delete table.fill;
    table.extra = 'x:f32';
    assert.deepEqual(opTableDifferences(table), [
      'gelu(x:f32) instead of gelu(x:f32 out:f32)',
      'lacks fill',
      'has extra, which the contract does not',
    ]);
  });
});

describe('bad calls throw Errors naming the argument and shapes; the process survives', () => {
  test('the reference and the native core fail alike', () => {
    const cases: [string, (k: typeof referenceKernels) => void, RegExp][] = [
      [
        'short A',
        (k) => k.sgemm(1, m(15, 4, 4), m(16, 4, 4), 0, m(16, 4, 4)),
        /sgemm: a \[4,4\] \(ld 4, offset 0\) needs 16 elements, its buffer has 15$/,
      ],
      [
        'short C after an offset',
        (k) => k.sgemm(1, m(8, 2, 4), transpose(m(12, 3, 4)), 0, m(8, 2, 3, 3, 3)),
        /sgemm: c \[2,3\] \(ld 3, offset 3\) needs 9 elements, its buffer has 8$/,
      ],
      [
        'small ld of a transposed view',
        (k) => k.sgemm(1, transpose(m(100, 5, 3, 2)), m(100, 5, 2), 0, m(100, 3, 2)),
        /sgemm: a \[3,5\] transposed has ld 2 < 3 stored columns$/,
      ],
      [
        'shapes that do not chain',
        (k) => k.sgemm(1, m(6, 2, 3), m(8, 4, 2), 0, m(4, 2, 2)),
        /sgemm: a.cols=3 must equal b.rows=4$/,
      ],
      [
        'transposed output',
        (k) => k.sgemm(1, m(4, 2, 2), m(4, 2, 2), 0, transpose(m(4, 2, 2))),
        /sgemm: c must not be transposed$/,
      ],
      [
        'negative rows',
        (k) => k.sgemm(1, m(4, -1, 2), m(4, 2, 2), 0, m(4, 2, 2)),
        /sgemm: a.rows must be a non-negative integer, got -1$/,
      ],
      [
        'NaN ld',
        (k) => k.sgemm(1, m(4, 2, 2, Number.NaN), m(4, 2, 2), 0, m(4, 2, 2)),
        /sgemm: a.ld must be a non-negative integer/,
      ],
      [
        'batched short B',
        (k) => k.sgemmStridedBatched(3, 1, m(12, 2, 2), 4, m(9, 2, 2), 4, 0, m(12, 2, 2), 4),
        /sgemmStridedBatched: b \[2,2\] \(ld 2, offset 0, 3 of them 4 apart\) needs 12 elements, its buffer has 9$/,
      ],
      [
        'fractional batch',
        (k) => k.sgemmStridedBatched(1.5, 1, m(4, 2, 2), 4, m(4, 2, 2), 4, 0, m(4, 2, 2), 4),
        /batch must be a non-negative integer, got 1.5/,
      ],
      ['add', (k) => k.add(f32(4), f32(3), f32(4)), /add: b has 3 elements, needs 4$/],
      [
        'rmsnorm',
        (k) => k.rmsnorm(m(6, 2, 3), f32(2), 1e-6, m(6, 2, 3), f32(2)),
        /rmsnorm: scale has 2 elements, needs 3$/,
      ],
      [
        'rmsnorm shapes',
        (k) => k.rmsnorm(m(6, 2, 3), f32(3), 1e-6, m(6, 3, 2), f32(2)),
        /rmsnorm: x \[2,3\] and out \[3,2\] must have the same shape$/,
      ],
      [
        'softmax',
        (k) => k.softmaxRows(m(5, 2, 3), m(6, 2, 3)),
        /softmaxRows: x \[2,3\] \(ld 3, offset 0\) needs 6 elements, its buffer has 5$/,
      ],
      [
        'row kernel on strided rows',
        (k) => k.softmaxRows(m(8, 2, 3, 4), m(6, 2, 3)),
        /softmaxRows: x \[2,3\] must have contiguous rows \(ld = cols = 3\), got ld 4$/,
      ],
      [
        'causal bias',
        (k) => k.causalSoftmax(m(8, 4, 2), m(3, 1, 2), 1, 1),
        /causalSoftmax: bias.rows=1 must equal heads·t=2$/,
      ],
      [
        'causal rows',
        (k) => k.causalSoftmax(m(6, 3, 2), m(4, 2, 2), 1, 1),
        /causalSoftmax: scores.rows=3 must be a multiple of scores.cols=2$/,
      ],
      [
        'target',
        (k) => k.crossEntropy(m(6, 2, 3), new Int32Array([0, 3]), f32(2), f32(2)),
        /crossEntropy: target 3 at row 1 outside \[0, 3\)$/,
      ],
      [
        'gather',
        (k) => k.gatherRows(m(6, 2, 3), new Int32Array([2]), m(3, 1, 3)),
        /gatherRows: index 2 at 0 outside \[0, 2\)$/,
      ],
      [
        'gather rows',
        (k) => k.gatherRows(m(6, 2, 3), new Int32Array([1]), m(6, 2, 3)),
        /gatherRows: out.rows=2 must equal idx.size=1$/,
      ],
      [
        'scatter',
        (k) => k.scatterAddRows(m(3, 1, 3), new Int32Array([-1]), f32(1), m(6, 2, 3)),
        /scatterAddRows: index -1 at 0 outside \[0, 2\)$/,
      ],
    ];
    for (const [label, call, pattern] of cases) {
      assert.throws(() => call(referenceKernels), pattern, `reference: ${label}`);
      if (native) assert.throws(() => call(native!), pattern, `native: ${label}`);
    }
  });

  test('the addon validates JavaScript values on its own (direct calls)', { skip: nativeMissing }, () => {
    const A = mat(f32(4096), 64, 64);
    const cases: [string, () => void, RegExp][] = [
      [
        'short A',
        () => raw('sgemm', 1, ...flat(mat(f32(4095), 64, 64)), ...flat(A), 0, ...flat(A)),
        /^sgemm: a \[64,64\] \(ld 64, offset 0\) needs 4096 elements, its buffer has 4095$/,
      ],
      [
        'huge sizes',
        () =>
          raw(
            'sgemm',
            1,
            ...flat(mat(f32(4), 2 ** 40, 2)),
            ...flat(mat(f32(4), 2, 2 ** 40)),
            0,
            ...flat(mat(f32(4), 2 ** 40, 2 ** 40)),
          ),
        /^sgemm: a \[1099511627776,2\]: sizes overflow$|needs/,
      ],
      [
        'string for a matrix',
        () => raw('sgemm', 1, 'a', 0, 1, 1, 1, false, ...flat(A), 0, ...flat(A)),
        /^sgemm: a.data must be a Float32Array$/,
      ],
      [
        'Float64Array',
        () => raw('sgemm', 1, new Float64Array(1), 0, 1, 1, 1, false, ...flat(A), 0, ...flat(A)),
        /sgemm: a.data must be a Float32Array/,
      ],
      [
        'number for a flag',
        () => raw('sgemm', 1, f32(1), 0, 1, 1, 1, 0, ...flat(A), 0, ...flat(A)),
        /^sgemm: a.trans must be a boolean$/,
      ],
      [
        'fractional size',
        () => raw('sgemm', 1, f32(2), 0, 1.5, 1, 1, false, ...flat(A), 0, ...flat(A)),
        /a.rows must be a non-negative integer, got 1.5/,
      ],
      [
        'infinite size',
        () =>
          raw('softmaxRows', f32(4), 0, Number.POSITIVE_INFINITY, 2, 2, false, ...flat(mat(f32(4), 2, 2))),
        /x.rows must be a non-negative integer/,
      ],
      ['string scalar', () => raw('axpy', '2', f32(2), f32(2)), /^axpy: alpha must be a number$/],
      ['missing arguments', () => raw('add', f32(2)), /^add: expected 3 arguments, got 1$/],
      ['detached', () => raw('gelu', detached(8), f32(8)), /^gelu: x is backed by a detached ArrayBuffer$/],
      [
        'detached output',
        () => raw('add', f32(4), f32(4), detached(4)),
        /^add: out is backed by a detached ArrayBuffer$/,
      ],
      ['short out', () => raw('gelu', f32(8), f32(7)), /^gelu: out has 7 elements, needs 8$/],
      [
        'Int32Array expected',
        () => raw('gatherRows', ...flat(mat(f32(4), 2, 2)), f32(1), ...flat(mat(f32(2), 1, 2))),
        /^gatherRows: idx must be an Int32Array$/,
      ],
      [
        'index range',
        () =>
          raw(
            'scatterAddRows',
            ...flat(mat(f32(2), 1, 2)),
            new Int32Array([5]),
            f32(1),
            ...flat(mat(f32(4), 2, 2)),
          ),
        /index 5 at 0 outside \[0, 2\)/,
      ],
      [
        'heads zero',
        () => raw('causalSoftmax', ...flat(mat(f32(4), 2, 2)), ...flat(mat(f32(4), 2, 2)), 0, 1),
        /^causalSoftmax: heads must be positive$/,
      ],
      ['setThreads 0', () => raw('setThreads', 0), /^setThreads: n must be in \[1, 1024\]/],
    ];
    for (const [label, call, pattern] of cases) {
      assert.throws(call, (err: unknown) => {
        assert.ok(err instanceof Error, `${label}: not an Error`);
        assert.match(err.message, pattern, label);
        return true;
      });
    }
    // Still alive and computing.
    const c = f32(1);
    native!.sgemm(1, mat(new Float32Array([3]), 1, 1), mat(new Float32Array([4]), 1, 1), 0, mat(c, 1, 1));
    assert.equal(c[0], 12);
  });

  test('a view on a detached buffer is caught too', { skip: nativeMissing }, () => {
    assert.throws(
      () => native!.softmaxRows(mat(detached(4), 2, 2), m(4, 2, 2)),
      /softmaxRows: x.data is backed by a detached ArrayBuffer$/,
    );
    assert.throws(
      () => referenceKernels.softmaxRows(mat(detached(4), 2, 2), m(4, 2, 2)),
      /softmaxRows: x \[2,2\] \(ld 2, offset 0\) needs 4 elements, its buffer has 0$/,
    );
  });
});
