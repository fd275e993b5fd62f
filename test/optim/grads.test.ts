import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  accumulateGrads,
  clipGradsByGlobalNorm,
  globalGradNorm,
  gradsAreFinite,
  scaleGrads,
  zeroGradsLike,
} from '../../src/optim/grads.js';
import { assertClose, params, tensor } from './helpers.js';

const twoTensors = (last: number) =>
  params([
    ['a', tensor([3, 0], [2])],
    ['b', tensor([0, 0, 0, last], [2, 2])],
  ]);

describe('gradient checks', () => {
  it('gradsAreFinite spots NaN and ±Infinity anywhere', () => {
    assert.equal(gradsAreFinite(twoTensors(4)), true);
    assert.equal(gradsAreFinite(twoTensors(Number.NaN)), false);
    assert.equal(gradsAreFinite(twoTensors(Number.POSITIVE_INFINITY)), false);
    assert.equal(gradsAreFinite(twoTensors(Number.NEGATIVE_INFINITY)), false);
    assert.equal(gradsAreFinite(twoTensors(3.4e38)), true);
  });

  it('globalGradNorm is sqrt of the sum of squares over all tensors', () => {
    assert.equal(globalGradNorm(twoTensors(4)), 5);
    assert.equal(globalGradNorm(params([])), 0);
    assert.ok(Number.isNaN(globalGradNorm(twoTensors(Number.NaN))));
    // Float64 accumulation: float32 squares of 3e20 would overflow.
    assertClose([globalGradNorm(twoTensors(3e20))], [3e20], 1e-7);
  });

  it('clipGradsByGlobalNorm rescales only above the threshold and returns the norm', () => {
    const g = twoTensors(4);
    assert.equal(clipGradsByGlobalNorm(g, 10), 5);
    assertClose(g.get('a')!.data, [3, 0], 0);
    assert.equal(clipGradsByGlobalNorm(g, 1), 5);
    assertClose(g.get('a')!.data, [0.6, 0], 1e-7);
    assertClose(g.get('b')!.data, [0, 0, 0, 0.8], 1e-7);
    assertClose([globalGradNorm(g)], [1], 1e-7);
  });
});

describe('gradient accumulation', () => {
  it('sums micro-batch gradients, with weights, then scales', () => {
    const acc = zeroGradsLike(twoTensors(0));
    accumulateGrads(acc, twoTensors(4));
    accumulateGrads(acc, twoTensors(2), 0.5);
    assertClose(acc.get('a')!.data, [4.5, 0], 1e-7);
    assertClose(acc.get('b')!.data, [0, 0, 0, 5], 1e-7);
    scaleGrads(acc, 0.5);
    assertClose(acc.get('b')!.data, [0, 0, 0, 2.5], 1e-7);
  });

  it('refuses a missing or misshapen gradient', () => {
    const acc = zeroGradsLike(twoTensors(0));
    assert.throws(() => accumulateGrads(acc, params([['a', tensor([1, 1], [2])]])), /'b' is missing/);
    assert.throws(
      () =>
        accumulateGrads(
          acc,
          params([
            ['a', tensor([1, 1], [2])],
            ['b', tensor([1, 1, 1, 1], [4])],
          ]),
        ),
      /shape mismatch/,
    );
  });
});
