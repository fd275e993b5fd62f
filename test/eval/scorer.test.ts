/**
 * The full-recompute scorer against direct computation: each candidate's
 * log-likelihood is that of its own sequence run alone (batching and padding change
 * nothing), truncation keeps the end, greedy flags match argmax; generation agrees
 * with infer/generate; beam search against exhaustive search on a toy model.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { logSoftmaxAt, type ModelCodec, ModelScorer } from '../../src/eval/model-scorer.js';
import { cutAtStop, encodePair } from '../../src/eval/scorer.js';
import { searchAll, topK } from '../../src/eval/search.js';
import { generateIds } from '../../src/infer/generate.js';
import { GlamModel } from '../../src/model/glam.js';
import { initParams } from '../../src/model/init.js';
import type { Weights } from '../../src/model/weights.js';
import { byteCodec, byteModelConfig } from './helpers.js';

interface Tiny {
  model: GlamModel;
  weights: Weights;
}

function tinyModel(overrides: Record<string, unknown> = {}): Tiny {
  const cfg = byteModelConfig({ d_ff_expert: 16, max_seq_len: 24, ...overrides });
  return { model: new GlamModel(cfg), weights: initParams(cfg, 7) };
}

/** Σ log p of the last `n` tokens of seq, running seq alone. */
function direct({ model, weights }: Tiny, seq: number[], n: number): { lp: number; greedy: boolean } {
  const T = seq.length - 1;
  const logits = model.logits(weights, model.workspace(), Int32Array.from(seq.slice(0, T)), 1, T);
  const V = model.config.vocab_size;
  let lp = 0;
  let greedy = true;
  for (let p = T - n; p < T; p++) {
    const r = logSoftmaxAt(logits.subarray(p * V, (p + 1) * V), seq[p + 1]!);
    lp += r.lp;
    greedy &&= r.argmax === seq[p + 1];
  }
  return { lp, greedy };
}

test('encodePair moves trailing whitespace to the continuation and keeps context ids shared', () => {
  const p = encodePair(byteCodec, 'Answer: ', 'yes');
  assert.deepEqual(p.context, byteCodec.encode('Answer:'));
  assert.deepEqual(p.continuation, byteCodec.encode(' yes'));
  assert.equal(cutAtStop('Paris\nQ: next', ['\n']), 'Paris');
  assert.equal(cutAtStop('Paris', ['\n']), undefined);
});

test('log-likelihoods equal each sequence run alone, whatever the batching; truncation keeps the end', async () => {
  for (const overrides of [{}, { num_groups: 3 }, { n_experts: 0 }]) {
    const tiny = tinyModel(overrides);
    const { model, weights } = tiny;
    // The reference runs each sequence alone: one group (dropless, so grouping changes nothing).
    const alone = { model: new GlamModel({ ...model.config, num_groups: 1 }), weights };
    const requests = [
      { context: 'The cat', continuations: [' sat', ' ran away', ' x'] },
      { context: 'A much longer context that overflows', continuations: [' the window'] },
      { context: 'Q', continuations: [' yes', ' no'] },
    ];
    for (const batchTokens of [1, 40, 4096]) {
      const scorer = new ModelScorer(model, weights, byteCodec, 'test', { batchTokens });
      const got = await scorer.loglikelihood(requests);
      requests.forEach((req, r) => {
        req.continuations.forEach((cont, c) => {
          const ctx = byteCodec.encode(req.context);
          const cn = byteCodec.encode(cont);
          const seq = [2, ...ctx, ...cn].slice(-(model.config.max_seq_len + 1));
          const want = direct(alone, seq, cn.length);
          const s = got[r]![c]!;
          assert.equal(s.tokens, cn.length);
          assert.ok(
            Math.abs(s.logprob - want.lp) < 1e-4,
            `${JSON.stringify(overrides)} b${batchTokens} ${r}/${c}: ${s.logprob} vs ${want.lp}`,
          );
          assert.equal(s.greedy, want.greedy);
        });
      });
      const n = requests.reduce((s, r) => s + r.continuations.length, 0);
      assert.equal(scorer.stats.computed, scorer.stats.separate);
      assert.ok(scorer.stats.computed > n);
    }
  }
});

test('the greedy flag is true exactly when the continuation is the argmax path', async () => {
  const { model, weights } = tinyModel();
  // One character per token id, so any id sequence is a text.
  const charCodec: ModelCodec = {
    eosId: 2,
    encode: (s) => [...s].map((c) => c.charCodeAt(0) - 0x100),
    decode: (ids) => ids.map((i) => String.fromCharCode(0x100 + i)).join(''),
  };
  const scorer = new ModelScorer(model, weights, charCodec, 'test');
  const prompt = charCodec.encode(charCodec.decode([40, 41, 42]));
  const ids = generateIds(model, weights, [2, ...prompt], {
    maxTokens: 3,
    seed: 0,
    temperature: 0,
    topK: 0,
    topP: 1,
  });
  const ctx = charCodec.decode(prompt);
  const wrong = [...ids.slice(0, 2), (ids[2]! + 1) % 260];
  const scores = await scorer.loglikelihood([
    { context: ctx, continuations: [charCodec.decode(ids), charCodec.decode(wrong)] },
  ]);
  assert.equal(scores[0]![0]!.greedy, true);
  assert.equal(scores[0]![1]!.greedy, false);
  assert.ok(scores[0]![0]!.logprob > scores[0]![1]!.logprob);
});

test('greedy generation equals infer/generate at temperature 0, cut at the stop string', async () => {
  const { model, weights } = tinyModel();
  const scorer = new ModelScorer(model, weights, byteCodec, 'test');
  const [text] = await scorer.generate([{ context: 'Q: what?\nA:', stop: ['\n'], maxTokens: 8, beam: 1 }]);
  const ids = generateIds(model, weights, [2, ...byteCodec.encode('Q: what?\nA:')], {
    maxTokens: 8,
    seed: 0,
    temperature: 0,
    topK: 0,
    topP: 1,
    stopToken: 2,
  });
  const want = byteCodec.decode(ids);
  assert.equal(text, cutAtStop(want, ['\n']) ?? want);
});

test('beam search finds the most likely finished answer (exhaustive search on a toy Markov model)', () => {
  // Vocabulary: 0 end, 1..4 letters a..d; 5 is "\n" (a stop string).
  const V = 6;
  const codec = {
    encode: (s: string) => [...s].map((c) => (c === '\n' ? 5 : c.charCodeAt(0) - 96)),
    decode: (ids: number[]) =>
      ids.map((i) => (i === 5 ? '\n' : i === 0 ? '' : String.fromCharCode(96 + i))).join(''),
  };
  let seed = 11;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const table = Array.from({ length: V }, () => {
    const w = Array.from({ length: V }, () => rand() ** 3 + 1e-3);
    const z = w.reduce((a, b) => a + b, 0);
    return Float64Array.from(w.map((x) => Math.log(x / z)));
  });
  const next = (seqs: number[][]) => seqs.map((s) => table[s[s.length - 1]!]!);
  const maxTokens = 4;
  // Exhaustive: every sequence that ends in 0 or 5 within maxTokens, or runs to maxTokens.
  let best = { text: '', score: Number.NEGATIVE_INFINITY };
  const walk = (ids: number[], score: number) => {
    const last = ids[ids.length - 1];
    if (last === 0 || last === 5 || ids.length === maxTokens) {
      const text = last === 0 || last === 5 ? codec.decode(ids.slice(0, -1)) : codec.decode(ids);
      if (score > best.score) best = { text, score };
      return;
    }
    const row = table[ids.length === 0 ? 1 : last!]!;
    for (let t = 0; t < V; t++) walk([...ids, t], score + row[t]!);
  };
  walk([], 0);
  const [beamText] = searchAll(
    [{ context: 'a', stop: ['\n'], maxTokens, beam: V * V * V }],
    [[1]],
    codec,
    0,
    next,
  );
  assert.equal(beamText, best.text, 'a beam as wide as the tree is exhaustive');
  const [greedy] = searchAll([{ context: 'a', stop: ['\n'], maxTokens, beam: 1 }], [[1]], codec, 0, next);
  let ids = [1];
  let g = '';
  for (let i = 0; i < maxTokens; i++) {
    const t = topK(table[ids[ids.length - 1]!]!, 1)[0]!.id;
    if (t === 0 || t === 5) break;
    g += codec.decode([t]);
    ids = [...ids, t];
  }
  assert.equal(greedy, g);
  assert.deepEqual(
    topK(Float64Array.from([0.1, 0.5, 0.5, 0.2]), 3).map((x) => x.id),
    [1, 2, 3],
  );
});
