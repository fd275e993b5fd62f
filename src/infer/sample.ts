/**
 * Next-token choice from a row of logits: greedy (temperature 0), temperature, top-k, nucleus
 * (top-p) and per-token logit bias, drawing from a seeded Rng; and the log-probabilities the engine
 * reports (the chosen token's and the top N alternatives').
 *
 * - Logit bias is added to the logits before anything else (values clamped to [-100, 100] as OpenAI
 *   does: -100 bans a token, +100 all but forces it).
 * - Top-k keeps the k highest (ties: lower id first), then top-p keeps the shortest prefix of those, by
 *   descending probability, whose mass reaches p (of the top-k renormalised distribution); the draw
 *   walks that prefix. With neither cut, the draw walks all tokens in id order.
 * - Reported log-probabilities are the model's own: log-softmax of the raw logits (no bias, no
 *   temperature), so they agree with `glam score` and between greedy and sampled requests.
 * Selection runs in native kernels (topkRows, softmaxRows, crossEntropy); a 256k vocabulary costs
 * well under a millisecond per row.
 */
import { kernels, mat } from '../backend/index.js';
import type { Rng } from '../util/rng.js';

export interface SamplingOptions {
  /** 0 = greedy (argmax). */
  temperature: number;
  /** Keep the k most likely tokens (0 = all). */
  topK: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 = all). */
  topP: number;
}

export const DEFAULT_SAMPLING: SamplingOptions = { temperature: 1, topK: 0, topP: 1 };

/** Logit bias by token id. */
export type LogitBias = ReadonlyMap<number, number>;

export const LOGIT_BIAS_LIMIT = 100;

export function validateSampling(o: SamplingOptions): void {
  if (!(Number.isFinite(o.temperature) && o.temperature >= 0)) {
    throw new Error(`temperature must be a number >= 0, got ${o.temperature}`);
  }
  if (!(Number.isInteger(o.topK) && o.topK >= 0))
    throw new Error(`top-k must be an integer >= 0, got ${o.topK}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new Error(`top-p must be in (0, 1], got ${o.topP}`);
}

/** A token and its log-probability under the model. */
export interface TokenLogprob {
  token: number;
  logprob: number;
}

/** Reusable scratch buffers for one vocabulary size. */
export class Sampler {
  private readonly biased: Float32Array;
  private readonly probs: Float32Array;
  private readonly idx: Int32Array;
  private readonly val: Float32Array;
  private readonly one = new Int32Array(1);
  private readonly loss = new Float32Array(1);
  private readonly lseOut = new Float32Array(1);

  constructor(readonly vocab: number) {
    this.biased = new Float32Array(vocab);
    this.probs = new Float32Array(vocab);
    this.idx = new Int32Array(vocab);
    this.val = new Float32Array(vocab);
  }

  /** The next token from one row of logits (length vocab). */
  sample(logits: Float32Array, o: SamplingOptions, rng: Rng, bias?: LogitBias): number {
    const V = this.vocab;
    const K = kernels();
    let row = logits;
    if (bias !== undefined && bias.size > 0) {
      row = this.biased;
      row.set(logits);
      for (const [id, b] of bias)
        row[id] = row[id]! + Math.max(-LOGIT_BIAS_LIMIT, Math.min(LOGIT_BIAS_LIMIT, b));
    }
    if (o.temperature === 0) {
      K.topkRows(mat(row, 1, V), 1, this.idx, this.val);
      return this.idx[0]!;
    }
    const invT = 1 / o.temperature;
    if (o.topK > 0 && o.topK < V) {
      K.topkRows(mat(row, 1, V), o.topK, this.idx, this.val);
      // Probabilities of the kept k, relative to the best (float64).
      const k = o.topK;
      const v0 = this.val[0]!;
      const w = new Float64Array(k);
      let total = 0;
      for (let j = 0; j < k; j++) {
        w[j] = Math.exp((this.val[j]! - v0) * invT);
        total += w[j]!;
      }
      return this.drawPrefix(w, total, o.topP, rng, (j) => this.idx[j]!);
    }
    const scaled = this.probs;
    for (let j = 0; j < V; j++) scaled[j] = row[j]! * invT;
    K.softmaxRows(mat(scaled, 1, V), mat(scaled, 1, V));
    if (o.topP >= 1) {
      // No cut: walk the whole distribution in id order.
      let u = rng.uniform();
      for (let j = 0; j < V; j++) {
        u -= scaled[j]!;
        if (u < 0) return j;
      }
      for (let j = V - 1; j >= 0; j--) if (scaled[j]! > 0) return j;
      return V - 1;
    }
    // Top-p over the full distribution: find a sorted prefix holding mass >= p, growing it as needed.
    let k = Math.min(V, 64);
    for (;;) {
      K.topkRows(mat(scaled, 1, V), k, this.idx, this.val);
      let mass = 0;
      for (let j = 0; j < k; j++) mass += this.val[j]!;
      if (mass >= o.topP || k === V) break;
      k = Math.min(V, k * 8);
    }
    const w = Float64Array.from(this.val.subarray(0, k));
    return this.drawPrefix(w, 1, o.topP, rng, (j) => this.idx[j]!);
  }

  /**
   * Keeps the shortest prefix of the sorted weights w (summing to `total` over the whole distribution)
   * whose mass reaches topP·total, and draws from it.
   */
  private drawPrefix(
    w: Float64Array,
    total: number,
    topP: number,
    rng: Rng,
    id: (j: number) => number,
  ): number {
    let keep = w.length;
    if (topP < 1) {
      let cum = 0;
      for (let j = 0; j < w.length; j++) {
        cum += w[j]!;
        if (cum >= topP * total) {
          keep = j + 1;
          break;
        }
      }
    }
    let kept = 0;
    for (let j = 0; j < keep; j++) kept += w[j]!;
    let u = rng.uniform() * kept;
    for (let j = 0; j < keep; j++) {
      u -= w[j]!;
      if (u < 0) return id(j);
    }
    return id(keep - 1);
  }

  /** The log-sum-exp of a row of logits (float32), from which every token's logprob follows. */
  lse(logits: Float32Array): number {
    this.one[0] = 0;
    kernels().crossEntropy(mat(logits, 1, this.vocab), this.one, this.loss, this.lseOut);
    return this.lseOut[0]!;
  }

  /** The n most likely tokens of a row with their log-probabilities (lse from `lse`). */
  top(logits: Float32Array, n: number, lse: number): TokenLogprob[] {
    if (n === 0) return [];
    const k = Math.min(n, this.vocab);
    kernels().topkRows(mat(logits, 1, this.vocab), k, this.idx, this.val);
    const out: TokenLogprob[] = [];
    for (let j = 0; j < k; j++) out.push({ token: this.idx[j]!, logprob: logprobOf(this.val[j]!, lse) });
    return out;
  }
}

/**
 * log-softmax of one logit given the row's log-sum-exp, rounded to float32. Every reported logprob
 * goes through here, so a token's logprob and its entry among the top alternatives are the same number
 * (clients compare them for equality to tell whether a continuation is the greedy one).
 */
export function logprobOf(logit: number, lse: number): number {
  return -Math.fround(lse - logit);
}
