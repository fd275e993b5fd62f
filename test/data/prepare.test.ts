/** End to end on a tiny custom corpus: prepare, open, batches, exact resume, validation. */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { CATEGORIES, type Category } from '../../src/data/categories.js';
import { parseDataConfig } from '../../src/data/config.js';
import { type DataPosition, openDataset, toBatch, validatePosition } from '../../src/data/dataset.js';
import type { Manifest } from '../../src/data/manifest.js';
import { prepareData } from '../../src/data/prepare.js';
import { Rng } from '../../src/util/rng.js';

const zeros = () => Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<Category, number>;
const root = mkdtempSync(path.join(tmpdir(), 'glam-prep-'));
const out = path.join(root, 'data');
let manifest: Manifest;

const curatedWords =
  'the river flowed past the ancient city where scholars wrote long histories of kings and wars'.split(' ');
const webWords =
  'click here now for free cheap deals buy viagra win money fast limited offer unsubscribe'.split(' ');

/** The three files the test corpus writes, one per category. */
const SOURCES = [
  { path: 'books.txt', category: 'books', split: 'paragraph' },
  { path: 'web.jsonl', category: 'webpages', field: 'body' },
  { path: 'news.jsonl', category: 'news' },
];

function doc(rng: Rng, words: string[], n: number, tag: string): string {
  const w: string[] = [];
  for (let i = 0; i < n; i++) w.push(words[rng.int(words.length)]!);
  return `${tag}: ${w.join(' ')}.`;
}

before(async () => {
  const rng = new Rng(1);
  const books = Array.from({ length: 120 }, (_, i) => doc(rng, curatedWords, 80, `Book ${i}`));
  writeFileSync(path.join(root, 'books.txt'), books.join('\n\n'));
  const web = Array.from({ length: 120 }, (_, i) =>
    JSON.stringify({ body: doc(rng, webWords, 60, `Ad ${i}`) }),
  );
  web.push(web[0]!, web[1]!); // exact duplicates
  writeFileSync(path.join(root, 'web.jsonl'), `${web.join('\n')}\n`);
  const news = Array.from({ length: 60 }, (_, i) =>
    JSON.stringify({ text: doc(rng, curatedWords, 50, `News ${i}`) }),
  );
  writeFileSync(path.join(root, 'news.jsonl'), `${news.join('\n')}\n`);
  const config = parseDataConfig(
    {
      sources: SOURCES,
      vocab_size: 400,
      valid_fraction: 0.1,
      min_category_tokens: 0,
      min_doc_chars: 10,
      quality: { hash_bits: 12, epochs: 2 },
    },
    path.join(root, 'data.json'),
    root,
  );
  ({ manifest } = await prepareData({ out, config, seed: 3 }));
});

after(() => rmSync(root, { recursive: true, force: true }));

test('prepare: stats per category, dedup, filter, classifier, tokens, empty categories reported', () => {
  const s = manifest.stats;
  assert.equal(s.categories.books!.read, 120);
  assert.equal(s.categories.webpages!.duplicates, 2);
  assert.equal(s.categories.books!.kept, 120, 'curated text is not filtered');
  assert.ok(s.classifier!.heldout_accuracy > 0.9, `held-out accuracy ${s.classifier!.heldout_accuracy}`);
  assert.equal(s.filter.scored, 120);
  assert.ok(s.filter.kept < 30, `spam mostly filtered, kept ${s.filter.kept}`);
  assert.equal(s.categories.webpages!.filtered + s.categories.webpages!.kept, 120);
  assert.equal(manifest.vocab_size, 400);
  assert.equal(manifest.dtype, 'uint16');
  assert.equal(manifest.splits.train.books!.documents + manifest.splits.valid.books!.documents, 120);
  assert.equal(manifest.splits.valid.books!.documents, 12);
  assert.equal(manifest.weights.forums, 0);
  const sum = CATEGORIES.reduce((a, c) => a + manifest.weights[c], 0);
  assert.ok(Math.abs(sum - 1) < 1e-12);
  assert.ok(manifest.notes.some((n) => n.includes("'conversations' has no data")));
  assert.ok(existsSync(path.join(out, 'tokenizer.json')));
  assert.ok(!existsSync(path.join(out, 'spool.jsonl')), 'temporary files are removed');
});

test('dataset: batches are deterministic and resume exactly from a saved position', () => {
  const ds = openDataset(out);
  try {
    const pos = ds.initialPosition(42);
    const first = [ds.nextBatch(pos, 4, 16), ds.nextBatch(pos, 4, 16)];
    const saved = JSON.stringify(pos);
    const rest = [ds.nextBatch(pos, 4, 16), ds.nextBatch(pos, 4, 16), ds.nextBatch(pos, 4, 16)];
    const ds2 = openDataset(out);
    const restored: DataPosition = validatePosition(JSON.parse(saved));
    for (const b of rest) {
      const again = ds2.nextBatch(restored, 4, 16);
      assert.deepEqual(again.tokens, b.tokens);
      assert.deepEqual(again.categories, b.categories);
    }
    assert.deepEqual(restored, JSON.parse(JSON.stringify(pos)));
    const p2 = ds2.initialPosition(42);
    assert.deepEqual(ds2.nextBatch(p2, 4, 16).tokens, first[0]!.tokens, 'same seed, same batches');
    ds2.close();
    for (const b of [...first, ...rest]) {
      assert.equal(b.tokens.length, 4 * 17);
      for (const t of b.tokens) assert.ok(t >= 0 && t < 400);
      for (const c of b.categories) assert.ok(manifest.weights[c] > 0);
    }
    const { inputs, targets } = toBatch(first[0]!);
    assert.equal(inputs.length, 64);
    assert.deepEqual(inputs.subarray(1, 16), targets.subarray(0, 15));
    // rows decode to corpus text, documents separated by EOS
    const text = ds.tokenizer.decode(first[0]!.tokens.subarray(0, 17));
    assert.ok(/[a-z]/.test(text));
    assert.throws(() => validatePosition({ ...pos, rows: -1 }), /rows must be a non-negative integer/);
    const foreign = { ...pos, cursors: { books: { offset: 10 ** 9, epoch: 0 } } };
    const ds3 = openDataset(out, {
      weights: { ...zeros(), books: 1 },
    });
    assert.throws(() => ds3.nextBatch(foreign, 1, 8), /belongs to another dataset/);
    assert.throws(() => ds3.nextBatch(pos, 0, 8), /batch size must be a positive integer/);
    ds3.close();
  } finally {
    ds.close();
  }
});

test('dataset: a category stream wraps around (epochs) and the mixture frequencies hold', () => {
  const ds = openDataset(out);
  const pos = ds.initialPosition(1);
  const counts: Record<string, number> = {};
  for (let i = 0; i < 300; i++)
    for (const c of ds.nextBatch(pos, 8, 32).categories) counts[c] = (counts[c] ?? 0) + 1;
  const total = 2400;
  for (const c of CATEGORIES) {
    const p = ds.weights[c];
    assert.ok(Math.abs((counts[c] ?? 0) / total - p) < 5 * Math.sqrt((p * (1 - p)) / total) + 1e-9, c);
  }
  const news = pos.cursors.news!;
  assert.ok(news.epoch >= 1, 'the small news stream was read more than once');
  assert.ok(news.offset < ds.trainTokens('news'));
  ds.close();
});

test('dataset: validation batches cover the held-out documents in a fixed order; weights can be overridden', () => {
  const ds = openDataset(out, {
    weights: { ...zeros(), books: 1, forums: 1 },
  });
  assert.equal(ds.weights.books, 1);
  assert.ok(ds.notes.some((n) => n.includes("'forums' has no data")));
  const a = [...ds.validationBatches(3, 16)];
  const b = [...ds.validationBatches(3, 16)];
  assert.deepEqual(a, b);
  const rows = a.reduce((s, x) => s + x.rows, 0);
  let expected = 0;
  for (const c of CATEGORIES) expected += Math.floor(ds.validTokens(c) / 17);
  assert.equal(rows, expected);
  assert.equal([...ds.validationBatches(3, 16, { maxBatches: 2 })].length, 2);
  // A single bounded batch already covers every category with validation data (round-robin).
  const withValid = CATEGORIES.filter((c) => ds.validTokens(c) >= 17);
  const first = [...ds.validationBatches(withValid.length, 16, { maxBatches: 1 })][0]!;
  assert.deepEqual([...new Set(first.categories)].sort(), [...withValid].sort());
  ds.close();
});

test('prepare is deterministic: the same config and seed give identical files', async () => {
  const again = path.join(root, 'again');
  await prepareData({ out: again, config: manifest.config, seed: 3 });
  const files = (dir: string) =>
    ['tokenizer.json', ...Object.values(manifest.splits.train).map((s) => s!.shards[0]!.file)].map((f) =>
      readFileSync(path.join(dir, f)),
    );
  assert.deepEqual(files(again), files(out));
  const m2 = JSON.parse(readFileSync(path.join(again, 'manifest.json'), 'utf8')) as Manifest;
  assert.deepEqual(m2.splits, manifest.splits);
  assert.deepEqual(m2.stats.categories, manifest.stats.categories);
});

test('prepare replaces a previous dataset but refuses to clobber other directories', async () => {
  const other = path.join(root, 'mine');
  writeFileSync(path.join(root, 'keep.txt'), 'x');
  const config = parseDataConfig(
    {
      sources: [{ path: 'books.txt', category: 'books', split: 'paragraph' }],
      vocab_size: 384,
      min_category_tokens: 0,
    },
    'cfg',
    root,
  );
  await prepareData({ out: other, config });
  const m1 = readFileSync(path.join(other, 'manifest.json'), 'utf8');
  await prepareData({ out: other, config: { ...config, seed: 9 } });
  assert.notEqual(readFileSync(path.join(other, 'manifest.json'), 'utf8'), m1);
  await assert.rejects(prepareData({ out: root, config }), /is not a prepared dataset/);
  assert.ok(existsSync(path.join(root, 'keep.txt')));
});

test('openDataset on a missing or damaged directory gives a clear error', () => {
  assert.throws(
    () => openDataset(path.join(root, 'nothing')),
    /cannot read dataset manifest .*run glam prepare/,
  );
  const m = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  m.splits.train.books.tokens += 1;
  const bad = path.join(root, 'bad');
  rmSync(bad, { recursive: true, force: true });
  cpSync(out, bad, { recursive: true });
  writeFileSync(path.join(bad, 'manifest.json'), JSON.stringify(m));
  assert.throws(() => openDataset(bad), /shard token counts add up to/);
});

test('prepare: tokenizer.file reuses a tokenizer; curated splits do not depend on the web filter', async () => {
  const raw = {
    sources: SOURCES,
    valid_fraction: 0.1,
    min_category_tokens: 0,
    min_doc_chars: 10,
    quality: { enabled: false },
    tokenizer: { file: path.join(out, 'tokenizer.json') },
  };
  const cfg = parseDataConfig(raw, path.join(root, 'unfiltered.json'), root);
  const out2 = path.join(root, 'unfiltered');
  const { manifest: m2 } = await prepareData({ out: out2, config: cfg, seed: 3 });
  assert.equal(m2.stats.filter.scored, 0, 'no filter');
  assert.equal(m2.stats.categories.webpages!.kept, 120);
  assert.equal(m2.vocab_size, 400, 'the vocabulary comes from the given tokenizer');
  assert.equal(
    readFileSync(path.join(out2, 'tokenizer.json'), 'utf8'),
    readFileSync(path.join(out, 'tokenizer.json'), 'utf8'),
  );
  // Same seed, same curated documents: the books validation tokens are identical although the
  // web category kept a different number of documents.
  const a = openDataset(out);
  const b = openDataset(out2);
  const first = (ds: typeof a) => [...ds.validationBatches(1, 16)].find((x) => x.categories[0] === 'books')!;
  assert.deepEqual(first(b).tokens, first(a).tokens);
  a.close();
  b.close();
  await assert.rejects(
    prepareData({ out: path.join(root, 'bad'), config: cfg, vocabSize: 512 }),
    /--vocab-size 512 disagrees with tokenizer.file \(400 ids\)/,
  );
});
