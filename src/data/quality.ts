/**
 * GLaM's quality filter: a linear classifier on hashed word uni- and bigram features,
 * trained by logistic regression (Adagrad, seeded) to tell curated text (books,
 * encyclopedic, news) from general web text; then the keep rule of GPT-3 and GLaM:
 * keep a document when a Pareto(alpha) sample exceeds 1 - score, so some lower-scored
 * text survives for diversity.
 */
import type { Rng } from '../util/rng.js';

export interface SparseVector {
  idx: Int32Array;
  val: Float32Array;
}

/** FNV-1a over UTF-16 code units, finished with a murmur3 mix so low bits are well spread. */
export function hashString(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const WORD = /[\p{L}\p{N}']+|[^\s\p{L}\p{N}]/gu;

/**
 * Hashed bag of word unigrams and bigrams (lower-cased; punctuation marks count as words),
 * log-scaled counts, L2-normalised. Only the first `maxWords` words are read.
 */
export function featurize(text: string, bits: number, maxWords = 3000): SparseVector {
  const mask = (1 << bits) - 1;
  const counts = new Map<number, number>();
  let prev = -1;
  let n = 0;
  for (const m of text.toLowerCase().matchAll(WORD)) {
    const h = hashString(m[0]);
    const uni = h & mask;
    counts.set(uni, (counts.get(uni) ?? 0) + 1);
    if (prev >= 0) {
      const bi = (Math.imul(prev, 0x9e3779b1) ^ h ^ 0x5bd1e995) & mask;
      counts.set(bi, (counts.get(bi) ?? 0) + 1);
    }
    prev = h;
    if (++n >= maxWords) break;
  }
  const idx = new Int32Array(counts.size);
  const val = new Float32Array(counts.size);
  let i = 0;
  let norm = 0;
  for (const [k, c] of counts) {
    idx[i] = k;
    const v = Math.log1p(c);
    val[i++] = v;
    norm += v * v;
  }
  const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let j = 0; j < val.length; j++) val[j]! *= inv;
  return { idx, val };
}

export class LogisticRegression {
  constructor(
    readonly weights: Float32Array,
    public bias = 0,
  ) {}

  logit(x: SparseVector): number {
    let z = this.bias;
    for (let i = 0; i < x.idx.length; i++) z += this.weights[x.idx[i]!]! * x.val[i]!;
    return z;
  }

  /** P(positive | x). */
  predict(x: SparseVector): number {
    return sigmoid(this.logit(x));
  }
}

function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

export interface Example {
  x: SparseVector;
  /** 1 positive (curated), 0 negative (web). */
  y: number;
}

export interface TrainOptions {
  dim: number;
  epochs: number;
  learningRate: number;
  rng: Rng;
}

/**
 * Logistic regression by Adagrad over shuffled examples (the order comes from the seeded
 * rng, so training is reproducible). Classes are weighted to count equally.
 */
export function trainLogistic(examples: readonly Example[], opts: TrainOptions): LogisticRegression {
  const model = new LogisticRegression(new Float32Array(opts.dim));
  const g2 = new Float32Array(opts.dim);
  let g2b = 0;
  const nPos = examples.filter((e) => e.y === 1).length;
  const nNeg = examples.length - nPos;
  const wPos = nPos > 0 ? examples.length / (2 * nPos) : 0;
  const wNeg = nNeg > 0 ? examples.length / (2 * nNeg) : 0;
  const order = examples.map((_, i) => i);
  const eps = 1e-8;
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    opts.rng.shuffle(order);
    for (const k of order) {
      const { x, y } = examples[k]!;
      const err = (model.predict(x) - y) * (y === 1 ? wPos : wNeg);
      for (let i = 0; i < x.idx.length; i++) {
        const j = x.idx[i]!;
        const g = err * x.val[i]!;
        g2[j]! += g * g;
        model.weights[j]! -= (opts.learningRate * g) / (Math.sqrt(g2[j]!) + eps);
      }
      g2b += err * err;
      model.bias -= (opts.learningRate * err) / (Math.sqrt(g2b) + eps);
    }
  }
  return model;
}

export function accuracy(model: LogisticRegression, examples: readonly Example[]): number {
  if (examples.length === 0) return Number.NaN;
  let right = 0;
  for (const e of examples) if (model.predict(e.x) >= 0.5 === (e.y === 1)) right++;
  return right / examples.length;
}

/** numpy's `pareto(a)`: a Lomax (Pareto II) sample, (1 - u)^(-1/a) - 1 >= 0. */
export function paretoSample(alpha: number, rng: Rng): number {
  return (1 - rng.uniform()) ** (-1 / alpha) - 1;
}

/** The keep rule of GPT-3 and GLaM. */
export function paretoKeep(score: number, alpha: number, rng: Rng): boolean {
  return paretoSample(alpha, rng) > 1 - score;
}

/** The probability that paretoKeep keeps a document of this score: (2 - score)^-alpha. */
export function keepProbability(score: number, alpha: number): number {
  return (2 - score) ** -alpha;
}

export interface QualityReport {
  trainDocs: number;
  heldoutDocs: number;
  trainAccuracy: number;
  heldoutAccuracy: number;
}

/** A trained document scorer: P(curated | text). */
export class QualityClassifier {
  constructor(
    readonly model: LogisticRegression,
    readonly bits: number,
  ) {}

  score(text: string): number {
    return this.model.predict(featurize(text, this.bits));
  }

  /**
   * Train on positive (curated) and negative (web) texts; `heldoutFraction` of each class
   * (after a seeded shuffle) is kept out and reported.
   */
  static train(
    positive: readonly string[],
    negative: readonly string[],
    opts: { bits: number; epochs: number; learningRate: number; heldoutFraction: number; rng: Rng },
  ): { classifier: QualityClassifier; report: QualityReport } {
    const split = (texts: readonly string[], y: number) => {
      const ex = opts.rng.shuffle(texts.map((t) => ({ x: featurize(t, opts.bits), y })));
      const nHeld = texts.length >= 2 ? Math.max(1, Math.round(texts.length * opts.heldoutFraction)) : 0;
      return {
        held: opts.heldoutFraction > 0 ? ex.slice(0, nHeld) : [],
        train: ex.slice(opts.heldoutFraction > 0 ? nHeld : 0),
      };
    };
    const p = split(positive, 1);
    const n = split(negative, 0);
    const train = [...p.train, ...n.train];
    const held = [...p.held, ...n.held];
    const model = trainLogistic(train, {
      dim: 1 << opts.bits,
      epochs: opts.epochs,
      learningRate: opts.learningRate,
      rng: opts.rng,
    });
    return {
      classifier: new QualityClassifier(model, opts.bits),
      report: {
        trainDocs: train.length,
        heldoutDocs: held.length,
        trainAccuracy: accuracy(model, train),
        heldoutAccuracy: accuracy(model, held),
      },
    };
  }
}
