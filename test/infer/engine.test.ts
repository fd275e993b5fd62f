/**
 * The inference engine against independent references: greedy decoding against argmax of a full
 * recompute, logprobs and echo against log-softmax of the training model's logits (what `glam score`
 * computes), beam hypotheses' scores against recomputed sums, and the behaviour of each request option
 * (n, seeds, stop tokens and strings, logit bias, cancellation, cache admission).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CapacityError,
  type GenerationEvent,
  InferenceEngine,
  InvalidRequestError,
} from '../../src/infer/engine.js';
import { scoreTokenRows } from '../../src/infer/score.js';
import type { TextCodec } from '../../src/infer/text.js';
import type { GlamConfig } from '../../src/model/config.js';
import { GlamModel } from '../../src/model/glam.js';
import type { Weights } from '../../src/model/weights.js';
import { fullLogits, randomTokens, testConfig, testWeights } from './helpers.js';

const cfg: GlamConfig = testConfig('tiny-moe');
const params: Weights = testWeights(cfg, 21);
const V = cfg.vocab_size;

/** Each id is one character ('a' + id mod 26, then digits for the rest), so text and tokens map simply. */
const letters: TextCodec = {
  encode: (s) => Array.from(s, (ch) => ch.charCodeAt(0) - 97),
  decode: (ids) => Array.from(ids, (id) => String.fromCharCode(97 + (id % 26))).join(''),
};

function engine(opts: ConstructorParameters<typeof InferenceEngine>[2] = {}): InferenceEngine {
  return new InferenceEngine(cfg, params, { kvCacheBytes: 8 << 20, codec: letters, ...opts });
}

function logSoftmax(row: Float32Array): Float64Array {
  let mx = -Infinity;
  for (const v of row) mx = Math.max(mx, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - mx);
  const lse = mx + Math.log(s);
  return Float64Array.from(row, (v) => v - lse);
}

function argmax(row: ArrayLike<number>): number {
  let b = 0;
  for (let j = 1; j < row.length; j++) if (row[j]! > row[b]!) b = j;
  return b;
}

/** Greedy continuation by full recompute of every prefix. */
function greedyReference(prompt: number[], n: number): number[] {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    const logits = fullLogits(cfg, params, seq);
    seq.push(argmax(logits.subarray((seq.length - 1) * V, seq.length * V)));
  }
  return seq.slice(prompt.length);
}

/** Σ log p(tokens | prompt) by full recompute. */
function sequenceLogprob(prompt: number[], tokens: number[]): number {
  const all = [...prompt, ...tokens];
  const logits = fullLogits(cfg, params, all);
  let s = 0;
  for (let i = 0; i < tokens.length; i++) {
    const p = prompt.length - 1 + i;
    s += logSoftmax(logits.subarray(p * V, (p + 1) * V))[all[p + 1]!]!;
  }
  return s;
}

describe('generation', () => {
  test('greedy decoding equals argmax of a full recompute, for prompts batched together', () => {
    const e = engine({ prefillChunk: 8 });
    const prompts = [randomTokens(3, V, 1), randomTokens(19, V, 2), randomTokens(1, V, 3)];
    const results = e.generate(prompts.map((prompt) => ({ prompt, maxTokens: 9, temperature: 0 })));
    results.forEach((r, i) => {
      assert.deepEqual(r.choices[0]!.tokens, greedyReference(prompts[i]!, 9), `prompt ${i}`);
      assert.equal(r.choices[0]!.finishReason, 'length');
      assert.equal(r.promptTokens, prompts[i]!.length);
      assert.equal(r.completionTokens, 9);
    });
    assert.equal(e.pool.usage().blocksUsed, 0, 'caches freed');
    assert.equal(e.pool.usage().blocksReserved, 0, 'reservations returned');
  });

  test('seeded sampling: reproducible, independent of batch companions, n choices differ', () => {
    const prompt = randomTokens(6, V, 4);
    const req = { prompt, maxTokens: 12, temperature: 1.2, topP: 0.9, seed: 77, n: 3 };
    const alone = engine().generate([req])[0]!;
    const again = engine().generate([req])[0]!;
    const crowd = engine().generate([
      { prompt: randomTokens(20, V, 5), maxTokens: 5, temperature: 0.7, seed: 1 },
      req,
      { prompt: randomTokens(2, V, 6), maxTokens: 15, temperature: 0 },
    ])[1]!;
    assert.deepEqual(again, alone);
    assert.deepEqual(
      crowd.choices.map((c) => c.tokens),
      alone.choices.map((c) => c.tokens),
    );
    const distinct = new Set(alone.choices.map((c) => c.tokens.join(',')));
    assert.equal(distinct.size, 3, 'three choices from one prompt draw differently');
    const other = engine().generate([{ ...req, seed: 78 }])[0]!;
    assert.notDeepEqual(other.choices[0]!.tokens, alone.choices[0]!.tokens);
  });

  test('stop tokens end a choice without the token; max_tokens ends with length', () => {
    const prompt = randomTokens(5, V, 7);
    const greedy = greedyReference(prompt, 6);
    const r = engine().generate([{ prompt, maxTokens: 6, temperature: 0, stopTokens: [greedy[3]!] }])[0]!;
    const expect = greedy.slice(0, greedy.indexOf(greedy[3]!));
    assert.deepEqual(r.choices[0]!.tokens, expect);
    assert.equal(r.choices[0]!.finishReason, 'stop');
  });

  test('stop strings are removed from the text; streamed text equals the final text', () => {
    const prompt = randomTokens(5, V, 8);
    const greedy = greedyReference(prompt, 10);
    const full = letters.decode(greedy);
    const stop = full.slice(4, 6);
    const first = full.indexOf(stop);
    const events: GenerationEvent[] = [];
    const e = engine();
    e.submit({ prompt, maxTokens: 10, temperature: 0, stop: [stop, 'zzzzzzzz'] }, (ev) => events.push(ev));
    e.runUntilIdle();
    const end = events.find((ev) => ev.type === 'end')!;
    assert.ok(end.type === 'end');
    const choice = end.result.choices[0]!;
    assert.equal(choice.text, full.slice(0, first));
    assert.equal(choice.finishReason, 'stop');
    const streamed = events
      .map((ev) => (ev.type === 'token' || ev.type === 'finish' ? ev.text : ''))
      .join('');
    assert.equal(streamed, choice.text);
  });

  test('logit bias: +100 forces a token, -100 bans the argmax', () => {
    const prompt = randomTokens(4, V, 9);
    const greedy = greedyReference(prompt, 1)[0]!;
    const forced = (greedy + 5) % V;
    const [a, b] = engine().generate([
      { prompt, maxTokens: 4, temperature: 0, logitBias: new Map([[forced, 100]]) },
      { prompt, maxTokens: 1, temperature: 0, logitBias: new Map([[greedy, -100]]) },
    ]);
    assert.deepEqual(a!.choices[0]!.tokens, [forced, forced, forced, forced]);
    assert.notEqual(b!.choices[0]!.tokens[0], greedy);
    const logits = fullLogits(cfg, params, prompt).subarray((prompt.length - 1) * V);
    const second = argmax(logits.map((v, j) => (j === greedy ? -Infinity : v)));
    assert.equal(b!.choices[0]!.tokens[0], second, 'the banned argmax gives way to the runner-up');
  });

  test('logprobs: the token and top-N equal log-softmax of the full recompute', () => {
    const prompt = randomTokens(7, V, 10);
    const r = engine().generate([{ prompt, maxTokens: 4, temperature: 0.9, seed: 3, logprobs: 5 }])[0]!;
    const c = r.choices[0]!;
    const all = [...prompt, ...c.tokens];
    const logits = fullLogits(cfg, params, all);
    c.info!.forEach((info, i) => {
      const p = prompt.length - 1 + i;
      const ls = logSoftmax(logits.subarray(p * V, (p + 1) * V));
      assert.ok(Math.abs(info.logprob! - ls[info.token]!) < 1e-4, `token ${i} logprob`);
      const order = Array.from(ls.keys()).sort((x, y) => ls[y]! - ls[x]! || x - y);
      assert.deepEqual(
        info.top!.map((t) => t.token),
        order.slice(0, 5),
      );
      info.top!.forEach((t) => {
        assert.ok(Math.abs(t.logprob - ls[t.token]!) < 1e-4);
      });
      const inTop = info.top!.find((t) => t.token === info.token);
      if (inTop) assert.equal(inTop.logprob, info.logprob, 'one number for one token (exact)');
    });
  });

  test('echo: prompt logprobs sum to -lm_loss·tokens of `glam score` (the training forward)', () => {
    const prompt = randomTokens(30, V, 11);
    const e = engine({ prefillChunk: 8, logitsChunk: 5 });
    const r = e.generate([{ prompt, maxTokens: 0, echo: true, logprobs: 1 }])[0]!;
    assert.equal(r.prompt!.length, 30);
    assert.equal(r.prompt![0]!.logprob, null);
    assert.equal(r.completionTokens, 0);
    assert.equal(r.choices[0]!.finishReason, 'length');
    const sum = r.prompt!.slice(1).reduce((a, t) => a + t.logprob!, 0);
    const score = scoreTokenRows(new GlamModel(cfg), params, [prompt], { capacityFactor: 0 });
    assert.ok(
      Math.abs(sum + score.lm_loss * score.tokens) < 1e-3,
      `${sum} vs ${-score.lm_loss * score.tokens}`,
    );
    for (const t of r.prompt!.slice(1)) assert.equal(t.top!.length, 1);
  });

  test('routing trace: each generated token carries two experts and normalised gates per MoE layer', () => {
    const r = engine().generate([
      { prompt: randomTokens(4, V, 12), maxTokens: 3, temperature: 0, trace: true },
    ])[0]!;
    for (const info of r.choices[0]!.info!) {
      assert.equal(info.routing!.length, 1, 'tiny-moe has one MoE layer');
      const rt = info.routing![0]!;
      assert.equal(rt.layer, 0);
      assert.notEqual(rt.experts[0], rt.experts[1]);
      assert.ok(Math.abs(rt.gates[0] + rt.gates[1] - 1) < 1e-6 && rt.gates[0] >= rt.gates[1]);
      assert.deepEqual(rt.kept, [true, true]);
    }
  });
});

describe('beam search', () => {
  test('a beam finds a hypothesis at least as likely as greedy; wider beams at least as likely', () => {
    const prompt = randomTokens(5, V, 13);
    const [one, four] = engine().generate([
      { prompt, maxTokens: 6, beamWidth: 2, n: 1, lengthPenalty: 0 },
      { prompt, maxTokens: 6, beamWidth: 4, n: 4 },
    ]);
    const greedy = greedyReference(prompt, 6);
    const g = sequenceLogprob(prompt, greedy);
    assert.ok(one!.choices[0]!.logprob! >= g - 1e-4);
    assert.equal(four!.choices.length, 4);
    for (const c of four!.choices) {
      assert.ok(
        Math.abs(c.logprob! - sequenceLogprob(prompt, c.tokens)) < 1e-3,
        'scores are the sequence logprobs',
      );
    }
    for (let i = 1; i < 4; i++) assert.ok(four!.choices[i - 1]!.score! >= four!.choices[i]!.score!);
    assert.ok(four!.choices[0]!.logprob! >= one!.choices[0]!.logprob! - 1e-4);
    const distinct = new Set(four!.choices.map((c) => c.tokens.join(',')));
    assert.equal(distinct.size, 4);
  });
});

describe('cache admission and cancellation', () => {
  test('a request bigger than the whole cache is refused with its size', () => {
    const e = engine({ kvCacheBytes: 64 * 1024 });
    assert.throws(
      () => e.submit({ prompt: randomTokens(10, V, 1), maxTokens: 50, n: 4 }),
      (err: Error) =>
        err instanceof CapacityError &&
        /needs \d+ KV cache blocks .* more than the whole cache/.test(err.message),
    );
  });

  test('requests that do not fit now wait, then run; usage returns to zero', () => {
    // Room for about one request at a time.
    const e = engine({ kvCacheBytes: 2 * 2 * 16 * 64 * 4 * 5, blockSize: 16 });
    const prompts = [randomTokens(20, V, 1), randomTokens(20, V, 2), randomTokens(20, V, 3)];
    const results = e.generate(prompts.map((prompt) => ({ prompt, maxTokens: 30, temperature: 0 })));
    results.forEach((r, i) => {
      assert.deepEqual(r.choices[0]!.tokens, greedyReference(prompts[i]!, 30));
    });
    assert.equal(e.pool.usage().blocksUsed, 0);
  });

  test('cancel: a running request ends as cancelled and frees its cache; a queued one never runs', async () => {
    const e = engine();
    const events: string[] = [];
    const a = e.submit({ prompt: randomTokens(5, V, 1), maxTokens: 40, temperature: 0 }, (ev) => {
      if (ev.type === 'finish') events.push(`a ${ev.finishReason}`);
    });
    e.step();
    e.step();
    const b = e.submit({ prompt: randomTokens(5, V, 2), maxTokens: 40 });
    b.cancel();
    a.cancel();
    e.step();
    assert.equal(e.pending, 0);
    const ra = await a.done;
    const rb = await b.done;
    assert.equal(ra.choices[0]!.finishReason, 'cancelled');
    assert.ok(ra.choices[0]!.tokens.length >= 1 && ra.choices[0]!.tokens.length < 40);
    assert.deepEqual(events, ['a cancelled']);
    assert.equal(rb.choices[0]!.finishReason, 'cancelled');
    assert.equal(rb.completionTokens, 0);
    assert.equal(e.pool.usage().blocksUsed, 0);
    assert.equal(e.pool.usage().blocksReserved, 0);
  });

  test('bad requests name the field', () => {
    const e = engine();
    const bad: [Record<string, unknown>, string][] = [
      [{ prompt: [], maxTokens: 1 }, 'prompt'],
      [{ prompt: [V], maxTokens: 1 }, 'prompt'],
      [{ prompt: [1.5], maxTokens: 1 }, 'prompt'],
      [{ prompt: [1], maxTokens: -1 }, 'max_tokens'],
      [{ prompt: [1], maxTokens: cfg.max_seq_len }, 'max_tokens'],
      [{ prompt: [1], maxTokens: 1, temperature: -1 }, 'temperature'],
      [{ prompt: [1], maxTokens: 1, topP: 0 }, 'top_p'],
      [{ prompt: [1], maxTokens: 1, n: 0 }, 'n'],
      [{ prompt: [1], maxTokens: 1, logprobs: 21 }, 'logprobs'],
      [{ prompt: [1], maxTokens: 1, logitBias: new Map([[V, 1]]) }, 'logit_bias'],
      [{ prompt: [1], maxTokens: 1, stop: [''] }, 'stop'],
      [{ prompt: [1], maxTokens: 1, stopTokens: [-1] }, 'stop_token_ids'],
    ];
    for (const [req, param] of bad) {
      assert.throws(
        () => e.submit(req as never),
        (err: Error) => err instanceof InvalidRequestError && err.param === param,
        JSON.stringify(req, (_k, v) => (v instanceof Map ? [...v] : v)),
      );
    }
  });
});

describe('scoreContinuations', () => {
  test('log-likelihoods and greedy flags equal a full recompute; the cache is forked per candidate', () => {
    const e = engine({ prefillChunk: 8 });
    const ctxA = randomTokens(13, V, 30);
    const ctxB = [5];
    const greedyA = greedyReference(ctxA, 3);
    const examples = [
      { context: ctxA, continuations: [greedyA, randomTokens(4, V, 31), [greedyA[0]!]] },
      { context: ctxB, continuations: [randomTokens(2, V, 32)] },
    ];
    const scores = e.scoreContinuations(examples);
    examples.forEach((ex, i) => {
      ex.continuations.forEach((cont, k) => {
        const s = scores[i]![k]!;
        const want = sequenceLogprob(ex.context, cont);
        assert.ok(Math.abs(s.logprob - want) < 1e-3, `example ${i} candidate ${k}: ${s.logprob} vs ${want}`);
        assert.equal(s.tokenLogprobs.length, cont.length);
      });
    });
    assert.equal(scores[0]![0]!.greedy, true);
    assert.equal(scores[0]![2]!.greedy, true);
    assert.equal(scores[0]![1]!.greedy, false);
    assert.equal(e.pool.usage().blocksUsed, 0);
    assert.throws(() => e.scoreContinuations([{ context: [], continuations: [[1]] }]), /context is empty/);
  });
});
