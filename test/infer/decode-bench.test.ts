/**
 * `glam bench decode`'s accounting: the bytes of weights a generated token reads (every non-expert weight
 * once per step, plus the experts the step was routed to), the timed decode tokens, and bad options.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { benchDecode, randomWeights } from '../../src/bench/decode.js';
import { paramSpecs } from '../../src/model/params.js';
import { testConfig } from './helpers.js';

test('batch 1 reads every non-expert weight and exactly two experts per MoE layer per token', () => {
  const cfg = testConfig('tiny-moe', { n_layers: 4 });
  for (const dtype of ['f32', 'bf16'] as const) {
    const r = benchDecode({
      config: cfg,
      dtype,
      batch: 1,
      promptLen: 5,
      newTokens: 6,
      rounds: 2,
      bandwidthMiB: 8,
      bandwidthSeconds: 0.01,
      betweenRoundsSeconds: 0.01,
    });
    const weights = randomWeights(cfg, dtype);
    let fixed = 0;
    let perExpert = 0;
    for (const s of paramSpecs(cfg)) {
      const bytes = weights.get(s.name)!.data.byteLength;
      if (/\.moe\.(wi|wo)$/.test(s.name)) perExpert += bytes / cfg.n_experts;
      else fixed += bytes;
    }
    const moeLayers = 2;
    assert.equal(r.expertsPerLayer, 2, dtype);
    assert.equal(
      r.weightBytesPerToken,
      fixed + 2 * perExpert,
      `${dtype}: ${moeLayers} MoE layers, two experts each`,
    );
    assert.equal(r.rounds[0]!.steps, 5, 'the first new token comes from the prefill; five decode steps');
    assert.ok(r.tokensPerSecond.median > 0 && r.bandwidthGBs > 0 && r.fractionOfBound > 0);
    // Each round against the probes around it: never a higher bandwidth than the run's best pass.
    assert.equal(r.roundFractions.n, 2);
    for (const round of r.rounds) {
      assert.ok(round.bandwidthGBs > 0 && round.bandwidthGBs <= r.bandwidthGBs, dtype);
      const expected = (round.tokensPerSecond * round.weightBytesPerToken) / (round.bandwidthGBs * 1e9);
      assert.ok(Math.abs(round.fractionOfBound - expected) <= 1e-12 * expected, dtype);
      // The bound of the probes after each step: they read the step's bytes (checked inside the bench),
      // at weightsBandwidthGBs, in fractionOfWeightsBound of the steps' time.
      assert.equal(round.expertBytesPerToken, 2 * perExpert, dtype);
      assert.ok(round.fractionOfWeightsBound > 0 && round.weightsBandwidthGBs > 0, dtype);
      const readRate = round.weightsBandwidthGBs * 1e9 * round.fractionOfWeightsBound;
      const stepRate = round.tokensPerSecond * round.weightBytesPerToken;
      assert.ok(Math.abs(readRate - stepRate) <= 1e-9 * stepRate, dtype);
    }
    assert.equal(r.roundWeightsFractions.n, 2);
  }
});

test('a wider batch reads the non-expert weights once for all its tokens', () => {
  const cfg = testConfig('tiny');
  const one = benchDecode({
    config: cfg,
    dtype: 'f32',
    batch: 1,
    promptLen: 3,
    newTokens: 3,
    rounds: 1,
    bandwidthMiB: 8,
    bandwidthSeconds: 0.01,
    betweenRoundsSeconds: 0.01,
  });
  const four = benchDecode({
    config: cfg,
    dtype: 'f32',
    batch: 4,
    promptLen: 3,
    newTokens: 3,
    rounds: 1,
    bandwidthMiB: 8,
    bandwidthSeconds: 0.01,
    betweenRoundsSeconds: 0.01,
  });
  assert.equal(four.weightBytesPerToken, one.weightBytesPerToken / 4);
});

test('options that cannot run are refused', () => {
  const cfg = testConfig('tiny');
  assert.throws(
    () => benchDecode({ config: cfg, dtype: 'f32', batch: 1, promptLen: 60, newTokens: 10, rounds: 1 }),
    /exceed the model's context of 64/,
  );
  assert.throws(
    () => benchDecode({ config: cfg, dtype: 'f32', batch: 0, promptLen: 1, newTokens: 2, rounds: 1 }),
    /batch must be an integer >= 1/,
  );
  assert.throws(
    () => benchDecode({ config: cfg, dtype: 'f32', batch: 1, promptLen: 1, newTokens: 1, rounds: 1 }),
    /--new must be at least 2/,
  );
});
