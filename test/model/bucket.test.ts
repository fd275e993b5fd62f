/** The T5 relative-position bucket (docs/model.md "Forward pass"): values worked out by hand. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { relativeBucket } from '../../src/model/layers/attention.js';
import { bucket64 } from './reference64.js';

test('relativeBucket, 32 buckets up to distance 128 (the defaults)', () => {
  // n < 16 exact; then 16 + floor(log(n/16)/log(8)·16), capped at 31.
  const expected: [number, number][] = [
    [0, 0],
    [1, 1],
    [15, 15],
    [16, 16],
    [17, 16], // log(17/16)/log 8·16 = 0.47
    [19, 17], // 1.32
    [20, 17], // 1.72
    [32, 21], // 5.33
    [45, 23], // 7.96
    [46, 24], // 8.12
    [64, 26], // 10.67
    [100, 30], // 14.10
    [127, 31], // 15.94
    [128, 31], // 16 -> capped
    [1000, 31],
  ];
  for (const [n, b] of expected) {
    assert.equal(relativeBucket(n, 32, 128), b, `bucket(${n})`);
    assert.equal(bucket64(n, 32, 128), b, `bucket64(${n})`);
  }
});

test('relativeBucket, small settings', () => {
  // 8 buckets up to 16: exact below 4, then 4 + floor(log(n/4)/log 4 · 4).
  const small = [0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7];
  small.forEach((b, n) => {
    assert.equal(relativeBucket(n, 8, 16), b, `bucket(${n}; 8, 16)`);
  });
  // 4 buckets up to 5: 0, 1, then 2 + floor(log(n/2)/log 2.5 · 2) capped at 3.
  [0, 1, 2, 2, 3, 3, 3].forEach((b, n) => {
    assert.equal(relativeBucket(n, 4, 5), b, `bucket(${n}; 4, 5)`);
  });
  // Buckets never decrease with distance and stay in range.
  for (const [B, M] of [
    [32, 128],
    [6, 7],
    [16, 40],
  ] as const) {
    let prev = 0;
    for (let n = 0; n < 600; n++) {
      const b = relativeBucket(n, B, M);
      assert.ok(b >= prev && b < B);
      prev = b;
    }
  }
  assert.throws(() => relativeBucket(-1, 32, 128), /distance/);
});
