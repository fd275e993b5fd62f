/**
 * The engine-backed scorer against the full-recompute one: the same log-likelihoods
 * (shared-prefix scoring with forked KV caches changes no number beyond float
 * rounding), the same greedy flags and token counts, also where a candidate
 * overflows the window; fewer positions computed; the same greedy answers, and beam
 * search through the engine, whose positions count every beam.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tokenizer } from '../../src/data/tokenizer.js';
import { EngineScorer } from '../../src/eval/engine-scorer.js';
import { ModelScorer } from '../../src/eval/model-scorer.js';
import { loadCheckpoint } from '../../src/model/checkpoint.js';
import { GlamModel } from '../../src/model/glam.js';
import { evalFixture } from './helpers.js';

const ck = loadCheckpoint(evalFixture('tiny-moe'));
const tokenizer = Tokenizer.load(ck.tokenizerPath!);
const model = new GlamModel(ck.config);
const weights = ck.weights;

const long =
  'The old sailor told the children a long story about the sea, the storms and the ships he had known. '.repeat(
    3,
  );
const requests = [
  {
    context: 'Question: What colour is snow?\nAnswer:',
    continuations: [' white', ' green', ' red', ' blue'],
  },
  { context: 'The cat sat on the', continuations: [' mat', ' roof of the old house by the river'] },
  // Overflows max_seq_len (64): truncated per candidate.
  {
    context: long,
    continuations: [' He smiled.', ' The end of the story was sad and everyone cried for a long time.'],
  },
  { context: 'A', continuations: [' b'] },
];

test('shared-prefix scores equal full recompute, with fewer positions computed', async () => {
  const engine = new EngineScorer(ck.config, weights, tokenizer, 'm', { chunk: 3 });
  const full = new ModelScorer(model, weights, tokenizer, 'm');
  const a = await engine.loglikelihood(requests);
  const b = await full.loglikelihood(requests);
  a.forEach((row, r) => {
    row.forEach((s, c) => {
      const t = b[r]![c]!;
      assert.equal(s.tokens, t.tokens, `${r}/${c}`);
      assert.equal(s.greedy, t.greedy, `${r}/${c}`);
      assert.ok(Math.abs(s.logprob - t.logprob) < 1e-4, `${r}/${c}: ${s.logprob} vs ${t.logprob}`);
    });
  });
  assert.equal(
    engine.stats.separate,
    full.stats.computed,
    'separate scoring counts what full recompute computes',
  );
  assert.ok(engine.stats.computed < engine.stats.separate);
});

test('generation through the engine: greedy equals the full-recompute search; beam search runs', async () => {
  const engine = new EngineScorer(ck.config, weights, tokenizer, 'm');
  const full = new ModelScorer(model, weights, tokenizer, 'm');
  const reqs = [
    { context: 'Question: Who wrote the book?\nAnswer:', stop: ['\n'], maxTokens: 6, beam: 1 },
    { context: 'The ship', stop: ['\n'], maxTokens: 5, beam: 1 },
  ];
  assert.deepEqual(await engine.generate(reqs), await full.generate(reqs));
  const beams = await engine.generate(reqs.map((r) => ({ ...r, beam: 4 })));
  const beamsFull = await full.generate(reqs.map((r) => ({ ...r, beam: 4 })));
  assert.equal(beams.length, 2);
  for (const t of beams) assert.ok(!t.includes('\n'));
  // Both rank finished hypotheses by total log-probability: the same answers.
  assert.deepEqual(beams, beamsFull);
});

test('generation counts every position the engine computes, the tokens of every beam included', async () => {
  // Without stop strings the tiny model's answers here run to maxTokens (no end-of-text among the
  // best), so greedy feeds each prompt then maxTokens tokens, and beam 4 four times as many.
  const reqs = [
    { context: 'Question: Who wrote the book?\nAnswer:', stop: [], maxTokens: 6 },
    { context: 'The ship', stop: [], maxTokens: 5 },
  ];
  const prompts = reqs.reduce((n, r) => n + 1 + tokenizer.encode(r.context).length, 0);
  const answers = reqs.reduce((n, r) => n + r.maxTokens, 0);
  for (const beam of [1, 4]) {
    const engine = new EngineScorer(ck.config, weights, tokenizer, 'm');
    await engine.generate(reqs.map((r) => ({ ...r, beam })));
    assert.equal(engine.stats.computed, prompts + beam * answers, `beam ${beam}`);
    assert.equal(engine.stats.separate, engine.stats.computed, `beam ${beam}`);
  }
});
