import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StepRouter } from '../../src/infer/routing.js';

test('the step router routes NaN probabilities to two valid, different experts', () => {
  const E = 4;
  const router = new StepRouter(E);
  // Row 0 all NaN, row 1 NaN but for one expert, row 2 ordinary (experts 2 then 1).
  const p = Float32Array.from([NaN, NaN, NaN, NaN, NaN, NaN, 0.9, NaN, 0.1, 0.3, 0.5, 0.1]);
  router.route(p, 3, Int32Array.from([0, 3]), 0);
  for (let t = 0; t < 3; t++) {
    const [a, b] = [router.first[t]!, router.second[t]!];
    assert.ok(a >= 0 && a < E && b >= 0 && b < E && a !== b, `row ${t}: experts ${a} and ${b}`);
  }
  assert.deepEqual([router.first[2], router.second[2]], [2, 1]);
  // Dropless: every assignment lands on a real expert.
  assert.equal(
    router.load.reduce((s, x) => s + x, 0),
    6,
  );
  assert.equal(router.offsets[E], 6);
});
