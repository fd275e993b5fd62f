import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NativeAddon } from '../../src/backend/native.js';
import { referenceKernels } from '../../src/backend/reference.js';
import { native, nativeMissing } from './helpers.js';

const f32 = (n: number) => new Float32Array(n);

/** A Float32Array whose ArrayBuffer has been transferred away (detached). */
function detached(n: number): Float32Array {
  const a = f32(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  assert.equal(a.length, 0);
  return a;
}

/** Calls the raw addon with arguments TypeScript would reject, as plain JavaScript could. */
function raw(fn: keyof NativeAddon, ...args: unknown[]): void {
  const f = native!.addon[fn] as unknown as (...a: unknown[]) => unknown;
  f(...args);
}

describe('bad calls throw Errors naming the argument and shapes; the process survives', {
  skip: nativeMissing,
}, () => {
  test('wrapper and reference fail alike on short arrays and bad sizes', () => {
    const cases: [string, (k: typeof referenceKernels) => void, RegExp][] = [
      [
        'short A',
        (k) => k.sgemm(false, false, 4, 4, 4, 1, f32(15), 4, f32(16), 4, 0, f32(16), 4),
        /sgemm: A has 15 elements, needs 16 \(op\(A\)=\[4,4\] op\(B\)=\[4,4\] C=\[4,4\]/,
      ],
      [
        'short C',
        (k) => k.sgemm(false, true, 2, 3, 4, 1, f32(8), 4, f32(12), 4, 0, f32(5), 3),
        /sgemm: C has 5 elements, needs 6 \(op\(A\)=\[2,4\] op\(B\)=\[4,3\] C=\[2,3\]/,
      ],
      [
        'small lda',
        (k) => k.sgemm(true, false, 3, 2, 5, 1, f32(100), 2, f32(100), 2, 0, f32(100), 2),
        /lda=2 < 3/,
      ],
      [
        'negative m',
        (k) => k.sgemm(false, false, -1, 2, 2, 1, f32(4), 2, f32(4), 2, 0, f32(4), 2),
        /m must be/,
      ],
      [
        'NaN k',
        (k) => k.sgemm(false, false, 1, 2, Number.NaN, 1, f32(4), 2, f32(4), 2, 0, f32(4), 2),
        /k must be/,
      ],
      [
        'batched short B',
        (k) =>
          k.sgemmStridedBatched(false, false, 2, 2, 2, 1, f32(12), 2, 4, f32(9), 2, 4, 0, f32(12), 2, 4, 3),
        /sgemmStridedBatched: B has 9 elements, needs 12 .*batch 3/,
      ],
      ['add', (k) => k.add(f32(4), f32(3), f32(4)), /add: b has 3 elements, needs 4/],
      [
        'rmsnorm',
        (k) => k.rmsnorm(f32(6), f32(2), 2, 3, 1e-6, f32(6), f32(2)),
        /rmsnorm: scale has 2 elements, needs 3/,
      ],
      ['softmax', (k) => k.softmaxRows(f32(5), 2, 3, f32(6)), /softmaxRows: x has 5 elements, needs 6/],
      [
        'causal',
        (k) => k.causalSoftmax(f32(8), f32(3), 2, 1, 2, 1),
        /causalSoftmax: bias has 3 elements, needs 4/,
      ],
      [
        'target',
        (k) => k.crossEntropy(f32(6), new Int32Array([0, 3]), 2, 3, f32(2), f32(2)),
        /crossEntropy: target 3 at row 1 outside \[0, 3\)/,
      ],
      [
        'gather',
        (k) => k.gatherRows(f32(6), new Int32Array([2]), 3, f32(3)),
        /gatherRows: index 2 at 0 outside \[0, 2\)/,
      ],
      [
        'scatter',
        (k) => k.scatterAddRows(f32(3), new Int32Array([-1]), f32(1), 3, f32(6)),
        /scatterAddRows: index -1 at 0 outside \[0, 2\)/,
      ],
    ];
    for (const [label, call, pattern] of cases) {
      assert.throws(() => call(referenceKernels), pattern, `reference: ${label}`);
      assert.throws(() => call(native!), pattern, `native: ${label}`);
    }
  });

  test('the addon validates on its own (direct calls bypassing the TypeScript checks)', () => {
    const cases: [string, () => void, RegExp][] = [
      [
        'short A',
        () =>
          raw('sgemm', false, false, 64, 64, 64, 1, f32(64 * 64 - 1), 64, f32(4096), 64, 0, f32(4096), 64),
        /^sgemm: A has 4095 elements, needs 4096 \(op\(A\)=\[64,64\] op\(B\)=\[64,64\] C=\[64,64\], batch 1\)$/,
      ],
      [
        'huge sizes',
        () =>
          raw('sgemm', false, false, 2 ** 40, 2 ** 40, 2, 1, f32(4), 2, f32(4), 2 ** 40, 0, f32(4), 2 ** 40),
        /^sgemm: sizes overflow \(op\(A\)=\[1099511627776,2\]/,
      ],
      [
        'string for a matrix',
        () => raw('sgemm', false, false, 1, 1, 1, 1, 'a', 1, f32(1), 1, 0, f32(1), 1),
        /a must be a Float32Array/,
      ],
      [
        'Float64Array',
        () => raw('sgemm', false, false, 1, 1, 1, 1, new Float64Array(1), 1, f32(1), 1, 0, f32(1), 1),
        /sgemm: a must be a Float32Array/,
      ],
      [
        'number for a flag',
        () => raw('sgemm', 0, false, 1, 1, 1, 1, f32(1), 1, f32(1), 1, 0, f32(1), 1),
        /transA must be a boolean/,
      ],
      [
        'fractional size',
        () => raw('sgemm', false, false, 1.5, 1, 1, 1, f32(2), 1, f32(1), 1, 0, f32(2), 1),
        /m must be a non-negative integer, got 1.5/,
      ],
      [
        'infinite size',
        () => raw('softmaxRows', f32(4), Number.POSITIVE_INFINITY, 2, f32(4)),
        /rows must be a non-negative integer/,
      ],
      [
        'negative size',
        () => raw('rmsnorm', f32(4), f32(2), -2, 2, 1e-6, f32(4), f32(2)),
        /rmsnorm: rows must be a non-negative integer, got -2/,
      ],
      ['string scalar', () => raw('axpy', '2', f32(2), f32(2)), /axpy: alpha must be a number/],
      ['missing arguments', () => raw('add', f32(2)), /add: expected 3 arguments, got 1/],
      ['detached', () => raw('gelu', detached(8), f32(8)), /gelu: x is backed by a detached ArrayBuffer/],
      [
        'detached output',
        () => raw('add', f32(4), f32(4), detached(4)),
        /add: out is backed by a detached ArrayBuffer/,
      ],
      [
        'rows*cols overflow',
        () => raw('softmaxRows', f32(4), 2 ** 40, 2 ** 40, f32(4)),
        /softmaxRows: rows \* cols overflows/,
      ],
      ['short out', () => raw('gelu', f32(8), f32(7)), /gelu: out has 7 elements, needs 8/],
      [
        'Int32Array expected',
        () => raw('gatherRows', f32(4), f32(1), 2, f32(2)),
        /gatherRows: idx must be an Int32Array/,
      ],
      [
        'index range',
        () => raw('scatterAddRows', f32(2), new Int32Array([5]), f32(1), 2, f32(4)),
        /index 5 at 0 outside \[0, 2\)/,
      ],
      [
        'targets short',
        () => raw('crossEntropyBackward', f32(6), f32(2), new Int32Array(1), 2, 3, 1, 0, f32(6)),
        /crossEntropyBackward: targets has 1 elements, needs 2 \(rows=2 cols=3\)/,
      ],
      [
        'heads zero',
        () => raw('causalSoftmax', f32(4), f32(4), 1, 0, 2, 1),
        /causalSoftmax: heads must be positive/,
      ],
      ['setThreads 0', () => raw('setThreads', 0), /setThreads: n must be in \[1, 1024\]/],
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
    native!.sgemm(false, false, 1, 1, 1, 1, new Float32Array([3]), 1, new Float32Array([4]), 1, 0, c, 1);
    assert.equal(c[0], 12);
  });

  test('the wrapper rejects a detached buffer too', () => {
    assert.throws(
      () => native!.softmaxRows(detached(4), 2, 2, f32(4)),
      /softmaxRows: x has 0 elements, needs 4/,
    );
  });
});
