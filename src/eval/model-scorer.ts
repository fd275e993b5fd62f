/**
 * A Scorer on GlamModel.logits: every candidate is scored as its own sequence
 * (document-start token, context, continuation) with a full forward pass. Correct
 * and simple; slower than shared-prefix scoring on the KV-cache engine.
 *
 * Sequences are left-truncated to max_seq_len + 1 tokens (lm-evaluation-harness's
 * rule: keep the end, where the continuation is). They are sorted by length and
 * batched, padded at the end: causal attention keeps padding out of real
 * positions, and at eval_capacity_factor <= 0 (dropless, the default) MoE
 * routing of a token does not depend on its batch. With a capacity limit a
 * token's result would depend on its neighbours, so each sequence then runs alone.
 */
import type { GlamModel } from '../model/glam.js';
import type { Weights } from '../model/weights.js';
import type { Workspace } from '../model/workspace.js';
import {
  type Codec,
  type ContinuationScore,
  emptyStats,
  encodePair,
  type GenerateRequest,
  type ScoreRequest,
  type Scorer,
  type ScorerStats,
} from './scorer.js';
import { searchAll } from './search.js';

export interface ModelScorerOptions {
  /** Upper bound on batch rows × padded length per forward pass (default 4096). */
  batchTokens?: number;
  description?: string;
}

/** A tokenizer with the token that starts a document in training (the end-of-text separator). */
export interface ModelCodec extends Codec {
  readonly eosId: number;
}

interface Row {
  seq: number[];
  /** Continuation tokens at the end of seq that are scored. */
  scored: number;
}

export class ModelScorer implements Scorer {
  readonly stats: ScorerStats = emptyStats();
  readonly description: string;
  private readonly batchTokens: number;
  private readonly ws: Workspace;

  constructor(
    private readonly model: GlamModel,
    private readonly weights: Weights,
    private readonly codec: ModelCodec,
    readonly modelId: string,
    opts: ModelScorerOptions = {},
  ) {
    this.batchTokens = opts.batchTokens ?? 4096;
    this.description = opts.description ?? 'GlamModel, full recompute per candidate';
    this.ws = model.workspace();
  }

  /** A sequence as scored: [eos] + context + continuation, its last max_seq_len + 1 tokens. */
  row(context: number[], continuation: number[]): Row {
    const maxLen = this.model.config.max_seq_len;
    const seq = [this.codec.eosId, ...context, ...continuation].slice(-(maxLen + 1));
    return { seq, scored: Math.min(continuation.length, seq.length - 1) };
  }

  async loglikelihood(
    requests: ScoreRequest[],
    onProgress?: (done: number) => void,
  ): Promise<ContinuationScore[][]> {
    const rows: Row[] = [];
    const owner: Array<[number, number]> = [];
    requests.forEach((req, r) => {
      req.continuations.forEach((cont, c) => {
        const pair = encodePair(this.codec, req.context, cont);
        if (pair.continuation.length === 0) {
          throw new Error(`continuation ${JSON.stringify(cont)} encodes to no tokens`);
        }
        rows.push(this.row(pair.context, pair.continuation));
        owner.push([r, c]);
      });
    });
    const out: ContinuationScore[][] = requests.map((req) => new Array(req.continuations.length));
    const remaining = requests.map((req) => req.continuations.length);
    for (const batch of this.batches(rows.map((row, i) => ({ len: row.seq.length - 1, i })))) {
      const scores = this.scoreRows(batch.map((i) => rows[i]!));
      batch.forEach((i, k) => {
        const [r, c] = owner[i]!;
        out[r]![c] = scores[k]!;
        if (--remaining[r]! === 0) onProgress?.(1);
      });
      // Let a progress bar or a signal handler run between batches.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return out;
  }

  /** Index groups of rows (longest first), each within the batch token budget. */
  private batches(items: Array<{ len: number; i: number }>): number[][] {
    const dropless = this.model.config.eval_capacity_factor <= 0;
    const sorted = [...items].sort((a, b) => b.len - a.len || a.i - b.i);
    const out: number[][] = [];
    let cur: number[] = [];
    let width = 0;
    for (const it of sorted) {
      if (cur.length > 0 && (!dropless || (cur.length + 1) * width > this.batchTokens)) {
        out.push(cur);
        cur = [];
      }
      if (cur.length === 0) width = it.len;
      cur.push(it.i);
    }
    if (cur.length > 0) out.push(cur);
    return out;
  }

  /** One forward pass over rows padded to the longest; their continuation scores. */
  private scoreRows(rows: Row[]): ContinuationScore[] {
    const cfg = this.model.config;
    const V = cfg.vocab_size;
    const T = Math.max(...rows.map((r) => r.seq.length - 1));
    // MoE needs batch·T divisible by num_groups: add padding rows if it is not.
    let B = rows.length;
    while (cfg.n_experts > 0 && (B * T) % cfg.num_groups !== 0) B++;
    const inputs = new Int32Array(B * T);
    rows.forEach((r, b) => {
      for (let t = 0; t < r.seq.length - 1; t++) inputs[b * T + t] = r.seq[t]!;
    });
    for (const r of rows) {
      this.stats.computed += r.seq.length - 1;
      this.stats.separate += r.seq.length - 1;
    }
    this.stats.padding += B * T - rows.reduce((s, r) => s + r.seq.length - 1, 0);
    const logits = this.model.logits(this.weights, this.ws, inputs, B, T);
    return rows.map((r, b) => {
      let logprob = 0;
      let greedy = true;
      const L = r.seq.length;
      for (let p = L - 1 - r.scored; p < L - 1; p++) {
        const row = logits.subarray((b * T + p) * V, (b * T + p + 1) * V);
        const target = r.seq[p + 1]!;
        const { lp, argmax } = logSoftmaxAt(row, target);
        logprob += lp;
        if (argmax !== target) greedy = false;
      }
      return { logprob, tokens: r.scored, greedy };
    });
  }

  async generate(requests: GenerateRequest[], onProgress?: (done: number) => void): Promise<string[]> {
    const maxLen = this.model.config.max_seq_len;
    const out: string[] = [];
    // A few requests at a time: all of a chunk's hypotheses share each forward pass.
    const chunk = Math.max(1, Math.floor(16 / Math.max(1, ...requests.map((r) => r.beam))));
    for (let i = 0; i < requests.length; i += chunk) {
      const reqs = requests.slice(i, i + chunk);
      const prompts = reqs.map((r) => {
        const ids = [this.codec.eosId, ...this.codec.encode(r.context.replace(/\s+$/, ''))];
        // Leave room for the answer: the prompt keeps its last max_seq_len - maxTokens tokens.
        return ids.slice(-Math.max(1, maxLen - r.maxTokens));
      });
      const texts = searchAll(reqs, prompts, this.codec, this.codec.eosId, (seqs) => this.nextLogprobs(seqs));
      out.push(...texts);
      onProgress?.(reqs.length);
      await new Promise((resolve) => setImmediate(resolve));
    }
    return out;
  }

  /** Log-softmax of the next token after each sequence (its last max_seq_len tokens). */
  private nextLogprobs(seqs: number[][]): Float64Array[] {
    const cfg = this.model.config;
    const V = cfg.vocab_size;
    const windows = seqs.map((s) => s.slice(-cfg.max_seq_len));
    const out = new Array<Float64Array>(seqs.length);
    for (const batch of this.batches(windows.map((w, i) => ({ len: w.length, i })))) {
      const T = Math.max(...batch.map((i) => windows[i]!.length));
      let B = batch.length;
      while (cfg.n_experts > 0 && (B * T) % cfg.num_groups !== 0) B++;
      const inputs = new Int32Array(B * T);
      batch.forEach((i, b) => {
        inputs.set(windows[i]!, b * T);
        this.stats.computed += windows[i]!.length;
        this.stats.separate += windows[i]!.length;
      });
      const logits = this.model.logits(this.weights, this.ws, inputs, B, T);
      batch.forEach((i, b) => {
        const p = windows[i]!.length - 1;
        out[i] = logSoftmax(logits.subarray((b * T + p) * V, (b * T + p + 1) * V));
      });
    }
    return out;
  }
}

/** log softmax(row)[target] in float64, and the row's argmax (lowest index on ties). */
export function logSoftmaxAt(row: Float32Array, target: number): { lp: number; argmax: number } {
  let max = Number.NEGATIVE_INFINITY;
  let argmax = 0;
  for (let v = 0; v < row.length; v++) {
    if (row[v]! > max) {
      max = row[v]!;
      argmax = v;
    }
  }
  let sum = 0;
  for (let v = 0; v < row.length; v++) sum += Math.exp(row[v]! - max);
  return { lp: row[target]! - max - Math.log(sum), argmax };
}

export function logSoftmax(row: Float32Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let v = 0; v < row.length; v++) if (row[v]! > max) max = row[v]!;
  let sum = 0;
  for (let v = 0; v < row.length; v++) sum += Math.exp(row[v]! - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(row.length);
  for (let v = 0; v < row.length; v++) out[v] = row[v]! - lse;
  return out;
}
