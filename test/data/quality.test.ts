import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  accuracy,
  featurize,
  keepProbability,
  paretoKeep,
  paretoSample,
  QualityClassifier,
  trainLogistic,
} from '../../src/data/quality.js';
import { Rng } from '../../src/util/rng.js';

/** Documents drawn from two vocabularies with some shared words: separable but not trivially. */
function toyDocs(rng: Rng, vocab: string[], shared: string[], n: number): string[] {
  const docs: string[] = [];
  for (let i = 0; i < n; i++) {
    const words: string[] = [];
    for (let j = 0; j < 30; j++)
      words.push(rng.uniform() < 0.7 ? shared[rng.int(shared.length)]! : vocab[rng.int(vocab.length)]!);
    docs.push(words.join(' '));
  }
  return docs;
}

const shared = ['the', 'a', 'of', 'and', 'to', 'in', 'is', 'it', 'that', 'was'];
const curated = ['river', 'history', 'century', 'literature', 'ancient', 'treaty', 'novel', 'chapter'];
const web = ['click', 'free', 'offer', 'buy', 'now', 'cheap', 'deal', 'unsubscribe'];

test('featurize: hashed uni+bigrams, L2-normalised, bounded indices', () => {
  const x = featurize('Free offer! Free offer now', 10);
  let norm = 0;
  for (let i = 0; i < x.val.length; i++) {
    assert.ok(x.idx[i]! >= 0 && x.idx[i]! < 1024);
    norm += x.val[i]! ** 2;
  }
  assert.ok(Math.abs(norm - 1) < 1e-5);
  assert.equal(new Set(x.idx).size, x.idx.length);
  assert.deepEqual(featurize('free offer', 10), featurize('FREE   offer', 10));
});

test('the classifier learns a separable toy problem and reports held-out accuracy; training is seeded', () => {
  const rng = new Rng(1);
  const pos = toyDocs(rng, curated, shared, 300);
  const neg = toyDocs(rng, web, shared, 300);
  const opts = { bits: 14, epochs: 3, learningRate: 0.2, heldoutFraction: 0.25 };
  const a = QualityClassifier.train(pos, neg, { ...opts, rng: new Rng(7) });
  assert.equal(a.report.heldoutDocs, 150);
  assert.equal(a.report.trainDocs, 450);
  assert.ok(a.report.heldoutAccuracy >= 0.97, `held-out accuracy ${a.report.heldoutAccuracy}`);
  assert.ok(a.classifier.score('the ancient treaty of the river') > 0.8);
  assert.ok(a.classifier.score('click now for a free cheap deal') < 0.2);
  const b = QualityClassifier.train(pos, neg, { ...opts, rng: new Rng(7) });
  assert.deepEqual(a.classifier.model.weights, b.classifier.model.weights);
  assert.equal(a.report.heldoutAccuracy, b.report.heldoutAccuracy);
});

test('an untrained or label-noise model scores at chance', () => {
  const rng = new Rng(3);
  const docs = toyDocs(rng, curated, shared, 200);
  const ex = docs.map((t, i) => ({ x: featurize(t, 12), y: i % 2 }));
  const m = trainLogistic(ex.slice(0, 100), { dim: 1 << 12, epochs: 2, learningRate: 0.1, rng });
  const acc = accuracy(m, ex.slice(100));
  assert.ok(acc > 0.3 && acc < 0.7, `accuracy on random labels ${acc}`);
});

test('Pareto keep rule: keep rate matches (2 - score)^-alpha, so low scores still pass sometimes', () => {
  const rng = new Rng(42);
  const alpha = 9;
  const n = 200_000;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += paretoSample(alpha, rng);
  mean /= n;
  assert.ok(Math.abs(mean - 1 / (alpha - 1)) < 0.005, `Lomax mean ${mean}`); // 1/(alpha-1)
  for (const score of [1, 0.95, 0.8, 0.5, 0.2]) {
    let kept = 0;
    for (let i = 0; i < n; i++) if (paretoKeep(score, alpha, rng)) kept++;
    const p = keepProbability(score, alpha);
    const sd = Math.sqrt((p * (1 - p)) / n);
    assert.ok(Math.abs(kept / n - p) < 5 * sd + 1e-9, `score ${score}: kept ${kept / n}, expected ${p}`);
  }
  assert.equal(keepProbability(1, alpha), 1);
  assert.ok(keepProbability(0, alpha) > 0); // 2^-9: some web text always survives
});
