import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CATEGORIES, type Category, PAPER_WEIGHTS } from '../../src/data/categories.js';
import { pickCategory, resolveMixture } from '../../src/data/mixture.js';
import { Rng } from '../../src/util/rng.js';

const all = (n: number) => Object.fromEntries(CATEGORIES.map((c) => [c, n])) as Record<Category, number>;
const sum = (w: Record<Category, number>) => CATEGORIES.reduce((s, c) => s + w[c], 0);

test('paper weights are used as they are when every category has data', () => {
  assert.ok(Math.abs(sum(PAPER_WEIGHTS) - 1) < 1e-12);
  const m = resolveMixture(PAPER_WEIGHTS, all(1000));
  for (const c of CATEGORIES) assert.ok(Math.abs(m.weights[c] - PAPER_WEIGHTS[c]) < 1e-12);
  assert.deepEqual(m.notes, []);
});

test('an empty category spreads its weight over the rest in proportion, and says so', () => {
  const tokens = { ...all(1000), forums: 0, news: 0 };
  const m = resolveMixture(PAPER_WEIGHTS, tokens);
  assert.equal(m.weights.forums, 0);
  assert.equal(m.weights.news, 0);
  assert.ok(Math.abs(sum(m.weights) - 1) < 1e-12);
  assert.ok(Math.abs(m.weights.webpages - 0.42 / 0.96) < 1e-12);
  assert.ok(Math.abs(m.weights.books / m.weights.wikipedia - 0.2 / 0.06) < 1e-9);
  assert.equal(m.notes.length, 2);
  assert.match(m.notes[0]!, /'forums' has no data; its weight 0.02 is spread over/);
});

test('a category below min_category_tokens is dropped unless nothing is big enough', () => {
  const tokens = { ...all(100_000), webpages: 500 };
  const m = resolveMixture(PAPER_WEIGHTS, tokens, 50_000);
  assert.equal(m.weights.webpages, 0);
  assert.match(m.notes[0]!, /'webpages' has only 500 tokens/);
  const tiny = resolveMixture(PAPER_WEIGHTS, { books: 10, news: 20 }, 50_000);
  assert.ok(Math.abs(tiny.weights.books - 0.2 / 0.22) < 1e-12);
});

test('zero weights, weights only on empty categories, and no data at all', () => {
  const w = { ...all(0), books: 1 };
  const m = resolveMixture(w, { books: 5, news: 5 });
  assert.equal(m.weights.books, 1);
  assert.match(m.notes.join('\n'), /'news' has data but weight 0/);
  const eq = resolveMixture({ ...all(0), forums: 1 }, { books: 5, news: 5 });
  assert.equal(eq.weights.books, 0.5);
  assert.match(eq.notes[0]!, /sampling equally/);
  assert.throws(() => resolveMixture(PAPER_WEIGHTS, {}), /no category has any training data/);
});

test('pickCategory draws categories with the mixture frequencies', () => {
  const rng = new Rng(5);
  const n = 100_000;
  const counts = all(0);
  for (let i = 0; i < n; i++) counts[pickCategory(PAPER_WEIGHTS, rng.uniform())]++;
  for (const c of CATEGORIES) {
    const p = PAPER_WEIGHTS[c];
    assert.ok(
      Math.abs(counts[c] / n - p) < 5 * Math.sqrt((p * (1 - p)) / n),
      `${c}: ${counts[c] / n} vs ${p}`,
    );
  }
  assert.equal(pickCategory({ ...all(0), news: 1 }, 0.9999999), 'news');
});
