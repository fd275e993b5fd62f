/** The MoE benchmark runs and compares like with like (no timing assertions: timings belong to `glam bench`). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { benchMoe, formatMoeBench } from '../../src/bench/moe.js';

test('benchMoe matches the dense layer to the MoE activated FLOPs and reports medians', () => {
  const r = benchMoe({ tokens: 64, dModel: 8, dFfExpert: 12, experts: 8, repeats: 2 });
  assert.equal(r.moeFlopsPerToken, 2 * 8 * 8 + 8 * 8 * 12);
  // d_ff is rounded to an integer: the FLOPs agree to within one column of the dense layer.
  assert.ok(Math.abs(r.denseFlopsPerToken - r.moeFlopsPerToken) <= 3 * 8, JSON.stringify(r));
  assert.ok(r.moeMs > 0 && r.denseMs > 0);
  assert.equal(r.ratio, r.moeMs / r.denseMs);
  assert.equal(r.dropped, 0, 'dropless by default');
  assert.match(formatMoeBench(r), /ratio/);
});
