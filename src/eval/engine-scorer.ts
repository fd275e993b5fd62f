/**
 * A Scorer on the inference engine (src/infer): each example's context is computed
 * once and its KV cache forked per candidate, many examples share every forward
 * step, and generation (greedy or beam search) decodes incrementally from the cache.
 *
 * Scored sequences are those of the full-recompute scorer: the end-of-text token
 * that starts a document, the context, the continuation. When a candidate would
 * overflow max_seq_len + 1 tokens, that candidate is scored on its own sequence,
 * left-truncated the same way, so both scorers see exactly the same tokens.
 */
import { InferenceEngine } from '../infer/engine.js';
import type { GlamConfig } from '../model/config.js';
import type { Weights } from '../model/weights.js';
import type { ModelCodec } from './model-scorer.js';
import {
  type ContinuationScore,
  emptyStats,
  encodePair,
  type GenerateRequest,
  type ScoreRequest,
  type Scorer,
  type ScorerStats,
} from './scorer.js';

export interface EngineScorerOptions {
  /** KV cache bytes (default 256 MiB). */
  kvCacheBytes?: number;
  /** Requests per engine call, between progress updates (default 64). */
  chunk?: number;
  description?: string;
}

interface EngineExample {
  context: number[];
  continuations: number[][];
  /** Where each continuation's score goes: [request, candidate]. */
  owners: Array<[number, number]>;
}

export class EngineScorer implements Scorer {
  readonly stats: ScorerStats = emptyStats();
  readonly description: string;
  readonly engine: InferenceEngine;
  private readonly maxLen: number;
  private readonly chunk: number;

  constructor(
    config: GlamConfig,
    weights: Weights,
    private readonly codec: ModelCodec,
    readonly modelId: string,
    opts: EngineScorerOptions = {},
  ) {
    this.engine = new InferenceEngine(config, weights, {
      kvCacheBytes: opts.kvCacheBytes,
      codec,
    });
    this.maxLen = config.max_seq_len;
    this.chunk = opts.chunk ?? 64;
    this.description = opts.description ?? 'inference engine, shared-prefix scoring';
  }

  /** Engine examples of one request: shared when every candidate fits, else one per overflowing candidate. */
  private examplesOf(req: ScoreRequest, r: number): EngineExample[] {
    const pairs = req.continuations.map((c) => {
      const p = encodePair(this.codec, req.context, c);
      if (p.continuation.length === 0)
        throw new Error(`continuation ${JSON.stringify(c)} encodes to no tokens`);
      return p;
    });
    const context = [this.codec.eosId, ...pairs[0]!.context];
    const shared: EngineExample = { context, continuations: [], owners: [] };
    const out: EngineExample[] = [shared];
    pairs.forEach((p, c) => {
      if (context.length + p.continuation.length <= this.maxLen + 1) {
        shared.continuations.push(p.continuation);
        shared.owners.push([r, c]);
      } else {
        const seq = [...context, ...p.continuation].slice(-(this.maxLen + 1));
        const n = Math.min(p.continuation.length, seq.length - 1);
        out.push({
          context: seq.slice(0, seq.length - n),
          continuations: [seq.slice(seq.length - n)],
          owners: [[r, c]],
        });
      }
    });
    return out.filter((e) => e.continuations.length > 0);
  }

  async loglikelihood(
    requests: ScoreRequest[],
    onProgress?: (done: number) => void,
  ): Promise<ContinuationScore[][]> {
    const out: ContinuationScore[][] = requests.map((req) => new Array(req.continuations.length));
    for (let start = 0; start < requests.length; start += this.chunk) {
      const examples = requests
        .slice(start, start + this.chunk)
        .flatMap((req, k) => this.examplesOf(req, start + k));
      const scores = this.engine.scoreContinuations(examples);
      examples.forEach((ex, e) => {
        const C = ex.context.length;
        let alone = 0;
        ex.continuations.forEach((cont, k) => {
          const [r, c] = ex.owners[k]!;
          const s = scores[e]![k]!;
          out[r]![c] = { logprob: s.logprob, tokens: cont.length, greedy: s.greedy };
          alone += C - 1 + cont.length;
        });
        // Positions fed: the context once (all but its last token), then per candidate its last
        // context token and all but its last token; scoring each alone would feed C - 1 + n each.
        this.stats.computed += C - 1 + ex.continuations.reduce((s, c) => s + c.length, 0);
        this.stats.separate += alone;
      });
      onProgress?.(Math.min(this.chunk, requests.length - start));
      await new Promise((resolve) => setImmediate(resolve));
    }
    return out;
  }

  /** Positions the engine has computed: prompt tokens read plus tokens generated (every beam's). */
  private positions(): number {
    const s = this.engine.stats();
    return s.promptTokens + s.generatedTokens;
  }

  async generate(requests: GenerateRequest[], onProgress?: (done: number) => void): Promise<string[]> {
    const out: string[] = [];
    for (let start = 0; start < requests.length; start += this.chunk) {
      const reqs = requests.slice(start, start + this.chunk);
      const before = this.positions();
      const results = this.engine.generate(
        reqs.map((r) => {
          const ids = [this.codec.eosId, ...this.codec.encode(r.context.replace(/\s+$/, ''))];
          const prompt = ids.slice(-Math.max(1, this.maxLen - r.maxTokens));
          return {
            prompt,
            maxTokens: r.maxTokens,
            temperature: 0,
            stopTokens: [this.codec.eosId],
            stop: r.stop,
            ...(r.beam > 1 ? { beamWidth: r.beam } : {}),
          };
        }),
      );
      // Every beam's tokens count, not only the answer's: the engine's own tally.
      const fed = this.positions() - before;
      this.stats.computed += fed;
      this.stats.separate += fed;
      for (const res of results) out.push(res.choices[0]?.text ?? '');
      onProgress?.(reqs.length);
      await new Promise((resolve) => setImmediate(resolve));
    }
    return out;
  }
}
