/**
 * Sampling options on fixed logits (frequencies against the exact distributions), the incremental
 * text with stop strings and split UTF-8 characters, beam search against exhaustive search, and the KV
 * cache pool's sharing and reservations.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BeamSearch } from '../../src/infer/beam.js';
import { KvCacheFullError, KvCachePool } from '../../src/infer/kv-cache.js';
import { Sampler, type SamplingOptions } from '../../src/infer/sample.js';
import { TextTracker } from '../../src/infer/text.js';
import { Rng } from '../../src/util/rng.js';
import { testConfig } from './helpers.js';

const LOGITS = Float32Array.from([2.0, 1.5, 1.5, 0.3, -1.0, 0.9, -3.0, 1.0]);

/** The exact distribution of a sampling configuration (top-k, then top-p, in descending order). */
function exact(o: SamplingOptions, bias: Map<number, number> = new Map()): number[] {
  const l = Array.from(LOGITS, (v, j) => v + (bias.get(j) ?? 0));
  const order = l.map((_, j) => j).sort((a, b) => l[b]! - l[a]! || a - b);
  const kept = o.topK > 0 ? order.slice(0, o.topK) : order;
  const w = kept.map((j) => Math.exp((l[j]! - l[kept[0]!]!) / o.temperature));
  const total = w.reduce((a, b) => a + b, 0);
  let keep = kept.length;
  let cum = 0;
  for (let i = 0; i < kept.length; i++) {
    cum += w[i]!;
    if (cum >= o.topP * total) {
      keep = i + 1;
      break;
    }
  }
  const z = w.slice(0, keep).reduce((a, b) => a + b, 0);
  const p = new Array<number>(l.length).fill(0);
  for (let i = 0; i < keep; i++) p[kept[i]!] = w[i]! / z;
  return p;
}

/** Draws `n` samples and checks each frequency within 5 standard deviations of its probability. */
function checkFrequencies(o: SamplingOptions, label: string, bias?: Map<number, number>): void {
  const s = new Sampler(LOGITS.length);
  const rng = new Rng(1234);
  const n = 20000;
  const counts = new Array<number>(LOGITS.length).fill(0);
  for (let i = 0; i < n; i++) counts[s.sample(LOGITS, o, rng, bias)]!++;
  const p = exact(o, bias);
  p.forEach((pj, j) => {
    if (pj === 0) assert.equal(counts[j], 0, `${label}: token ${j} is outside the kept set but was drawn`);
    else {
      const sd = Math.sqrt(n * pj * (1 - pj));
      assert.ok(
        Math.abs(counts[j]! - n * pj) <= 5 * sd + 1,
        `${label}: token ${j} drawn ${counts[j]} times, expected ${(n * pj).toFixed(0)} ± ${(5 * sd).toFixed(0)}`,
      );
    }
  });
}

describe('sampler', () => {
  test('greedy takes the argmax (the lower id on ties)', () => {
    const s = new Sampler(LOGITS.length);
    const rng = new Rng(0);
    assert.equal(s.sample(LOGITS, { temperature: 0, topK: 0, topP: 1 }, rng), 0);
    assert.equal(s.sample(LOGITS, { temperature: 0, topK: 0, topP: 1 }, rng, new Map([[0, -1]])), 1);
  });
  test('temperature: frequencies follow softmax(logits / T)', () => {
    checkFrequencies({ temperature: 1, topK: 0, topP: 1 }, 'T=1');
    checkFrequencies({ temperature: 0.5, topK: 0, topP: 1 }, 'T=0.5');
    checkFrequencies({ temperature: 3, topK: 0, topP: 1 }, 'T=3');
  });
  test('top-k keeps the k most likely, renormalised', () => {
    checkFrequencies({ temperature: 1, topK: 3, topP: 1 }, 'k=3');
    checkFrequencies({ temperature: 0.7, topK: 1, topP: 1 }, 'k=1');
  });
  test('top-p keeps the shortest prefix reaching p', () => {
    checkFrequencies({ temperature: 1, topK: 0, topP: 0.5 }, 'p=0.5');
    checkFrequencies({ temperature: 1, topK: 0, topP: 0.9 }, 'p=0.9');
    checkFrequencies({ temperature: 2, topK: 4, topP: 0.6 }, 'k=4 p=0.6');
  });
  test('logit bias shifts the distribution before sampling', () => {
    checkFrequencies(
      { temperature: 1, topK: 0, topP: 1 },
      'bias',
      new Map([
        [6, 4],
        [0, -100],
      ]),
    );
  });
  test('the same seed draws the same tokens', () => {
    const s = new Sampler(LOGITS.length);
    const o = { temperature: 1, topK: 0, topP: 0.95 };
    const draw = (seed: number) => {
      const rng = new Rng(seed);
      return Array.from({ length: 50 }, () => s.sample(LOGITS, o, rng));
    };
    assert.deepEqual(draw(5), draw(5));
    assert.notDeepEqual(draw(5), draw(6));
  });
  test('top alternatives are log-softmax values in descending order', () => {
    const s = new Sampler(LOGITS.length);
    const lse = s.lse(LOGITS);
    const want = Math.log(Array.from(LOGITS).reduce((a, v) => a + Math.exp(v), 0));
    assert.ok(Math.abs(lse - want) < 1e-6);
    const top = s.top(LOGITS, 3, lse);
    assert.deepEqual(
      top.map((t) => t.token),
      [0, 1, 2],
    );
    assert.ok(Math.abs(top[1]!.logprob - (1.5 - want)) < 1e-6);
  });
});

describe('incremental text', () => {
  /** A byte-level codec: ids are bytes, decoded as UTF-8. */
  const bytes = {
    encode: (s: string) => Array.from(new TextEncoder().encode(s)),
    decode: (ids: ArrayLike<number>) => new TextDecoder().decode(Uint8Array.from(Array.from(ids))),
  };

  test('a character split over tokens is released whole', () => {
    const t = new TextTracker(bytes);
    const ids = bytes.encode('aé€');
    const deltas = ids.map((id) => t.push(id).delta);
    assert.deepEqual(deltas, ['a', '', 'é', '', '', '€']);
    assert.equal(t.flush(), '');
  });

  test('text that may begin a stop string is held back; the stop and the rest are removed', () => {
    const t = new TextTracker(bytes, ['END', 'xyz']);
    const out: string[] = [];
    for (const id of bytes.encode('abEND more')) {
      const r = t.push(id);
      out.push(r.delta);
      if (r.stopped) break;
    }
    assert.deepEqual(out, ['a', 'b', '', '', '']);
    assert.equal(t.current, 'ab');
    assert.equal(t.flush(), '');
  });

  test('a false start of a stop string is released once it cannot match', () => {
    const t = new TextTracker(bytes, ['END']);
    const out = bytes.encode('xENx').map((id) => t.push(id).delta);
    assert.deepEqual(out, ['x', '', '', 'ENx']);
  });
});

describe('beam search bookkeeping', () => {
  /** A synthetic model: log-probabilities of 3 tokens depending on the prefix. Token 2 is a stop. */
  function next(prefix: number[]): number[] {
    const h = prefix.reduce((a, t, i) => (a * 31 + t * 7 + i) % 97, 11);
    const l = [Math.sin(h), Math.cos(h * 1.3), Math.sin(h * 0.7) - 0.8];
    const lse = Math.log(l.reduce((a, v) => a + Math.exp(v), 0));
    return l.map((v) => v - lse);
  }

  function run(width: number, maxTokens: number, penalty: number) {
    const bs = new BeamSearch(width, maxTokens, penalty);
    while (!bs.done) {
      const offers = bs.live.map((b) => next(b.tokens).map((logprob, token) => ({ token, logprob })));
      bs.advance(offers, (_b, token) => (token === 2 ? 'stop-token' : 'none'));
    }
    return bs.best(1)[0]!;
  }

  /** The best hypothesis by exhaustive enumeration (stop token 2 or length maxTokens). */
  function exhaustive(maxTokens: number, penalty: number) {
    let best = { tokens: [] as number[], score: -Infinity };
    const visit = (prefix: number[], lp: number) => {
      const lps = next(prefix);
      for (let t = 0; t < 3; t++) {
        const total = lp + lps[t]!;
        if (t === 2 || prefix.length + 1 === maxTokens) {
          const tokens = t === 2 ? prefix : [...prefix, t];
          const score = penalty === 0 ? total : total / Math.max(1, tokens.length) ** penalty;
          if (score > best.score) best = { tokens, score };
        }
        if (t !== 2 && prefix.length + 1 < maxTokens) visit([...prefix, t], total);
      }
    };
    visit([], 0);
    return best;
  }

  for (const penalty of [0, 1]) {
    test(`a beam as wide as the search space finds the exhaustive optimum (length penalty ${penalty})`, () => {
      const got = run(81, 4, penalty);
      const want = exhaustive(4, penalty);
      assert.deepEqual(got.tokens, want.tokens);
      assert.ok(Math.abs(got.score - want.score) < 1e-12);
    });
  }

  test('a narrow beam ends early once no live beam can beat the finished ones', () => {
    const bs = new BeamSearch(2, 50, 0);
    let steps = 0;
    while (!bs.done) {
      steps++;
      const offers = bs.live.map((b) => next(b.tokens).map((logprob, token) => ({ token, logprob })));
      bs.advance(offers, (_b, token) => (token === 2 ? 'stop-token' : 'none'));
    }
    assert.ok(steps < 50, `ended after ${steps} steps`);
    assert.ok(bs.best(2).length === 2);
  });
});

describe('KV cache pool', () => {
  const cfg = testConfig('tiny');

  test('fork shares blocks; the first write into a shared partial block copies it', () => {
    const pool = new KvCachePool(cfg, { budgetBytes: 1 << 20, blockSize: 4 });
    const a = pool.newSequence();
    const slots = new Int32Array(8);
    pool.append(a, 6, slots, 0);
    pool.k[0]!.fill(7, slots[4]! * pool.width, (slots[5]! + 1) * pool.width);
    const b = pool.fork(a);
    assert.deepEqual(b.blocks, a.blocks);
    assert.equal(pool.usage().blocksUsed, 2);
    pool.append(b, 1, slots, 0);
    assert.equal(b.blocks[0], a.blocks[0], 'the full block stays shared');
    assert.notEqual(b.blocks[1], a.blocks[1], 'the partial block was copied');
    assert.equal(pool.k[0]![b.blocks[1]! * 4 * pool.width + pool.width], 7, 'with its rows');
    assert.equal(pool.usage().blocksUsed, 3);
    pool.release(a);
    pool.release(b);
    assert.equal(pool.usage().blocksUsed, 0);
  });

  test('reservations: promised blocks are not given to others; a used-up pool says so', () => {
    const pool = new KvCachePool(cfg, { budgetBytes: 4 * 2 * 2 * 4 * 64 * 4, blockSize: 4 });
    assert.equal(pool.numBlocks, 4);
    const r = pool.reserve(3)!;
    assert.equal(pool.available, 1);
    assert.equal(pool.reserve(2), undefined);
    const s = pool.newSequence(r);
    pool.append(s, 12, new Int32Array(12), 0);
    assert.equal(pool.available, 1, 'using promised blocks does not change what is available');
    const t = pool.newSequence();
    pool.append(t, 4, new Int32Array(4), 0);
    assert.throws(() => pool.append(t, 1, new Int32Array(1), 0), KvCacheFullError);
    assert.throws(() => pool.unreserve(r), /still holds 3 block/);
    pool.release(s);
    pool.unreserve(r);
    assert.equal(pool.available, 3);
  });

  test('a budget below one block is refused with the sizes', () => {
    assert.throws(
      () => new KvCachePool(cfg, { budgetBytes: 1000 }),
      /holds no block: one block of 16 tokens needs 16.0 KiB/,
    );
  });
});
