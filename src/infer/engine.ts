/**
 * The inference engine: continuous batching of generation requests over one model and one KV cache,
 * and the batched scoring that evaluation needs.
 *
 * Each `step()` advances every running request at once: sequences that are decoding feed their last
 * token, requests still reading their prompt feed their next prefill chunk (chunks are cut at fixed
 * multiples of `prefillChunk` positions, so how a prompt is cut never depends on what else runs), all
 * in one forward pass of at most `maxStepTokens` rows. Requests join between steps as the cache and
 * the sequence slots allow (first come, first served) and leave when they finish or are cancelled.
 *
 * A request reserves, when admitted, every cache block it can ever need (prompt once, each of its n
 * samples or beams its own continuation); one that could never fit is refused at `submit` with the
 * sizes, one that cannot fit now waits. Nothing is ever evicted half-way.
 *
 * Sampling: n independent choices from one prefill (the prompt's cache is shared, copy on write),
 * each with its own Rng seeded from (seed, choice), so a choice's tokens depend only on the request;
 * greedy, temperature, top-k, top-p, logit bias, stop tokens and stop strings, top-N logprobs, prompt
 * (echo) logprobs. Beam search with `beamWidth` >= 2 ranks by the model's log-probabilities (sampling
 * options do not apply) and returns the n best hypotheses.
 */
import type { GlamConfig } from '../model/config.js';
import { Rng } from '../util/rng.js';
import { BeamSearch, type Ending } from './beam.js';
import { IncrementalModel, type RoutingTrace, type StepSegment, type WeightSource } from './forward.js';
import { formatBytes, KvCachePool, type KvReservation, type KvSequence } from './kv-cache.js';
import { type LogitBias, logprobOf, Sampler, type TokenLogprob } from './sample.js';
import { type TextCodec, TextTracker } from './text.js';

export interface EngineOptions {
  /** Bytes of KV cache (default 256 MiB). */
  kvCacheBytes?: number;
  /** Token slots per cache block (default 16). */
  blockSize?: number;
  /** Rows of one forward step: decode tokens plus prefill chunks (default 512). */
  maxStepTokens?: number;
  /** Prompts are read in chunks ending at multiples of this many positions (default 256). */
  prefillChunk?: number;
  /** Sequences decoding at once, over all requests (default 64). */
  maxSequences?: number;
  /** Overrides the config's eval_capacity_factor (<= 0: dropless). */
  capacityFactor?: number;
  /** Rows of logits materialised at once (default 32; a row is 4·vocab bytes). */
  logitsChunk?: number;
  /** Tokenizer, for text output and stop strings. */
  codec?: TextCodec;
}

export const DEFAULT_ENGINE_OPTIONS = {
  kvCacheBytes: 256 * 2 ** 20,
  blockSize: 16,
  maxStepTokens: 512,
  prefillChunk: 256,
  maxSequences: 64,
  logitsChunk: 32,
} as const;

export interface GenerationRequest {
  /** Prompt token ids (at least one). */
  prompt: readonly number[];
  /** Tokens to generate at most (0: only score the prompt, with echo). */
  maxTokens: number;
  /** Independent samples (default 1); with beam search, the best n hypotheses (n <= beamWidth). */
  n?: number;
  /** 0 = greedy (default 1). */
  temperature?: number;
  /** 0 = off (default). */
  topK?: number;
  /** 1 = off (default). */
  topP?: number;
  /** Sampling seed (default: random). */
  seed?: number;
  logitBias?: LogitBias;
  /** Token ids that end a choice (not included in its output). */
  stopTokens?: readonly number[];
  /** Strings that end a choice (removed from its text, with everything after). Needs a codec. */
  stop?: readonly string[];
  /** Report each generated token's logprob and this many top alternatives (0: the token's only). */
  logprobs?: number;
  /** Report the prompt's token logprobs (and top alternatives, with `logprobs`). */
  echo?: boolean;
  /** >= 2: beam search of this width. */
  beamWidth?: number;
  /** Beam search: score = logprob / length^lengthPenalty (default 0). */
  lengthPenalty?: number;
  /** Record the experts each generated token was computed with (see TokenInfo.routing). */
  trace?: boolean;
}

/** The routing of one MoE layer for one position: the two experts, their gates, whether kept. */
export interface LayerRouting {
  layer: number;
  experts: [number, number];
  gates: [number, number];
  kept: [boolean, boolean];
}

export interface TokenInfo {
  token: number;
  /** log p(token) under the model (with `logprobs` or `echo`); null for the first prompt token. */
  logprob?: number | null;
  /** The most likely alternatives at this position (with `logprobs` N > 0). */
  top?: TokenLogprob[];
  /**
   * With `trace`: how the position that produced this token was routed in each MoE layer (for a
   * generated token, the previous position, whose output distribution it was drawn from).
   */
  routing?: LayerRouting[];
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface GenerationChoice {
  index: number;
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  /** Per generated token (with `logprobs` or `trace`). */
  info?: TokenInfo[];
  /** Beam search: the hypothesis's cumulative logprob and score. */
  logprob?: number;
  score?: number;
}

export interface GenerationResult {
  promptTokens: number;
  completionTokens: number;
  /** With `echo`: one entry per prompt token (the first has logprob null). */
  prompt?: TokenInfo[];
  choices: GenerationChoice[];
}

export type GenerationEvent =
  /** The prompt is read (with `echo`: its tokens and logprobs, the first with logprob null). */
  | { type: 'prompt'; info: TokenInfo[] }
  /** A choice's next token, with the newly released text (empty while text is held back). */
  | { type: 'token'; choice: number; info: TokenInfo; text: string }
  /** A choice finished; `text` is what was still held back. */
  | { type: 'finish'; choice: number; finishReason: FinishReason; text: string }
  /** The request is complete (after every choice finished, or cancelled). */
  | { type: 'end'; result: GenerationResult };

export type GenerationListener = (event: GenerationEvent) => void;

/** A request that cannot be served as given; `param` names the field. */
export class InvalidRequestError extends Error {
  constructor(
    message: string,
    readonly param: string,
  ) {
    super(message);
    this.name = 'InvalidRequestError';
  }
}

/** A request that needs more of the KV cache (or sequence slots) than the engine has at all. */
export class CapacityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CapacityError';
  }
}

export interface GenerationHandle {
  readonly id: number;
  /** Stops the request (queued or running) at the next step boundary and frees its cache. */
  cancel(): void;
  /** Resolves with the result when the request ends (also when cancelled). */
  readonly done: Promise<GenerationResult>;
}

/** The scores of one continuation given its context. */
export interface ContinuationLogprobs {
  /** Σ log p(token) over the continuation. */
  logprob: number;
  /** Whether every continuation token is the argmax at its position (ties: lowest id). */
  greedy: boolean;
  tokenLogprobs: number[];
}

export interface EngineStats {
  queued: number;
  running: number;
  /** Sequences in the cache (prefill and decode). */
  sequences: number;
  promptTokens: number;
  generatedTokens: number;
  steps: number;
  kv: ReturnType<KvCachePool['usage']>;
}

interface Choice {
  index: number;
  seq: KvSequence;
  rng: Rng;
  tokens: number[];
  info: TokenInfo[];
  text: TextTracker | undefined;
  /** The sampled token the next step feeds. */
  pending: number;
  finish: FinishReason | undefined;
}

interface BeamState {
  search: BeamSearch;
  /** Per live beam: its cache. */
  seqs: KvSequence[];
  /** Offers gathered this step, per live beam. */
  offers: TokenLogprob[][];
}

interface Job {
  id: number;
  req: Required<Omit<GenerationRequest, 'logitBias' | 'seed' | 'logprobs'>> & {
    logitBias: LogitBias | undefined;
    seed: number;
    logprobs: number | undefined;
  };
  listener: GenerationListener | undefined;
  resolve: (r: GenerationResult) => void;
  reservation: KvReservation | undefined;
  state: 'queued' | 'prefill' | 'decode' | 'done';
  prefillSeq: KvSequence | undefined;
  prefilled: number;
  promptInfo: TokenInfo[];
  choices: Choice[];
  beam: BeamState | undefined;
  cancelled: boolean;
  blocks: number;
  sequences: number;
}

/** What one output row of a step is for. */
type RowUse =
  | { kind: 'prompt'; job: Job; pos: number }
  | { kind: 'last'; job: Job; pos: number }
  | { kind: 'decode'; job: Job; choice: Choice }
  | { kind: 'beam'; job: Job; beam: number };

export class InferenceEngine {
  readonly model: IncrementalModel;
  readonly pool: KvCachePool;
  readonly options: Required<Omit<EngineOptions, 'capacityFactor' | 'codec'>>;
  private readonly codec: TextCodec | undefined;
  private readonly sampler: Sampler;
  private readonly queue: Job[] = [];
  private readonly running: Job[] = [];
  private nextId = 1;
  private logitsBuf: Float32Array;
  private counters = { promptTokens: 0, generatedTokens: 0, steps: 0 };

  constructor(
    readonly config: GlamConfig,
    weights: WeightSource,
    opts: EngineOptions = {},
  ) {
    const o = { ...DEFAULT_ENGINE_OPTIONS, ...stripUndefined(opts) };
    for (const key of [
      'maxStepTokens',
      'prefillChunk',
      'maxSequences',
      'logitsChunk',
      'blockSize',
    ] as const) {
      const v = o[key];
      if (!(Number.isInteger(v) && v >= 1))
        throw new Error(`engine option ${key} must be an integer >= 1, got ${v}`);
    }
    if (o.maxSequences > o.maxStepTokens) {
      throw new Error(
        `engine option maxSequences (${o.maxSequences}) must not exceed maxStepTokens (${o.maxStepTokens})`,
      );
    }
    this.options = {
      kvCacheBytes: o.kvCacheBytes,
      blockSize: o.blockSize,
      maxStepTokens: o.maxStepTokens,
      prefillChunk: Math.min(o.prefillChunk, o.maxStepTokens),
      maxSequences: o.maxSequences,
      logitsChunk: o.logitsChunk,
    };
    this.codec = opts.codec;
    this.pool = new KvCachePool(config, { budgetBytes: o.kvCacheBytes, blockSize: o.blockSize });
    this.model = new IncrementalModel(config, weights, this.pool, opts.capacityFactor);
    this.sampler = new Sampler(config.vocab_size);
    this.logitsBuf = new Float32Array(this.options.logitsChunk * config.vocab_size);
  }

  /** Requests waiting or running. */
  get pending(): number {
    return this.queue.length + this.running.length;
  }

  stats(): EngineStats {
    let sequences = 0;
    for (const j of this.running) sequences += liveSequences(j);
    return {
      queued: this.queue.length,
      running: this.running.length,
      sequences,
      ...this.counters,
      kv: this.pool.usage(),
    };
  }

  /**
   * Queues a request; throws InvalidRequestError for bad fields and CapacityError when it could never
   * fit. Events go to `listener` as steps produce them.
   */
  submit(request: GenerationRequest, listener?: GenerationListener): GenerationHandle {
    const req = this.normalise(request);
    const P = req.prompt.length;
    const width = req.beamWidth >= 2 ? req.beamWidth : req.n;
    const blocks = this.blocksNeeded(P, req.maxTokens, width);
    if (blocks > this.pool.numBlocks) {
      throw new CapacityError(
        `the request needs ${blocks} KV cache blocks (${formatBytes(blocks * this.pool.bytesPerBlock)}: ${P} prompt tokens, ` +
          `${req.maxTokens} new tokens × ${width} sequence(s)), more than the whole cache of ${this.pool.numBlocks} blocks ` +
          `(${formatBytes(this.pool.numBlocks * this.pool.bytesPerBlock)}); lower max_tokens, n or the beam width, or give the cache more memory`,
      );
    }
    if (width > this.options.maxSequences) {
      throw new CapacityError(
        `the request runs ${width} sequences at once, more than the engine's ${this.options.maxSequences}`,
      );
    }
    let resolve!: (r: GenerationResult) => void;
    const done = new Promise<GenerationResult>((r) => {
      resolve = r;
    });
    const job: Job = {
      id: this.nextId++,
      req,
      listener,
      resolve,
      reservation: undefined,
      state: 'queued',
      prefillSeq: undefined,
      prefilled: 0,
      promptInfo: [],
      choices: [],
      beam: undefined,
      cancelled: false,
      blocks,
      sequences: width,
    };
    this.queue.push(job);
    return {
      id: job.id,
      done,
      cancel: () => {
        job.cancelled = true;
      },
    };
  }

  /**
   * Cache blocks a request can ever hold: one sequence needs blocksFor(P + M); w sequences share the
   * prompt's full blocks and each owns the rest of its blocks (the partly filled last prompt block is
   * copied on its first write).
   */
  private blocksNeeded(P: number, M: number, w: number): number {
    const pool = this.pool;
    if (M === 0) return pool.blocksFor(P);
    if (w === 1) return pool.blocksFor(P + M);
    const shared = Math.floor(P / pool.blockSize);
    return shared + w * (pool.blocksFor(P + M) - shared);
  }

  /** Runs one step; returns false when there was nothing to do. */
  step(): boolean {
    this.reapCancelled();
    this.admit();
    const segments: StepSegment[] = [];
    const uses: RowUse[] = [];
    const outputRows: number[] = [];
    let rows = 0;
    let traced = false;
    const add = (seq: KvSequence, tokens: number[], out: [number, RowUse][]) => {
      segments.push({ seq, tokens });
      for (const [offset, use] of out) {
        outputRows.push(rows + offset);
        uses.push(use);
      }
      rows += tokens.length;
    };
    for (const job of this.running) {
      if (job.state !== 'decode') continue;
      traced ||= job.req.trace;
      if (job.beam !== undefined) {
        job.beam.search.live.forEach((b, i) => {
          add(job.beam!.seqs[i]!, [b.tokens[b.tokens.length - 1]!], [[0, { kind: 'beam', job, beam: i }]]);
        });
      } else {
        for (const c of job.choices) {
          if (c.finish === undefined) add(c.seq, [c.pending], [[0, { kind: 'decode', job, choice: c }]]);
        }
      }
    }
    for (const job of this.running) {
      if (job.state !== 'prefill') continue;
      const P = job.req.prompt.length;
      const start = job.prefilled;
      const end = Math.min(
        P,
        (Math.floor(start / this.options.prefillChunk) + 1) * this.options.prefillChunk,
      );
      if (rows > 0 && rows + (end - start) > this.options.maxStepTokens) continue;
      traced ||= job.req.trace;
      const out: [number, RowUse][] = [];
      for (let p = start; p < end; p++) {
        if (p === P - 1) out.push([p - start, { kind: 'last', job, pos: p }]);
        else if (job.req.echo) out.push([p - start, { kind: 'prompt', job, pos: p }]);
      }
      add(job.prefillSeq!, job.req.prompt.slice(start, end), out);
      job.prefilled = end;
      this.counters.promptTokens += end - start;
    }
    if (segments.length === 0) return this.finishIdle();
    this.counters.steps++;
    const trace = traced ? this.model.newTrace(rows) : undefined;
    const x = this.model.forward(segments, Int32Array.from(outputRows), trace);
    const V = this.config.vocab_size;
    const D = this.config.d_model;
    const chunk = this.options.logitsChunk;
    for (let r0 = 0; r0 < uses.length; r0 += chunk) {
      const n = Math.min(chunk, uses.length - r0);
      const logits = this.model.logits(x.subarray(r0 * D, (r0 + n) * D), n, this.logitsBuf);
      for (let i = 0; i < n; i++) {
        const use = uses[r0 + i]!;
        const routing =
          trace !== undefined && use.job.req.trace ? routingOf(trace, outputRows[r0 + i]!) : undefined;
        this.handleRow(use, logits.subarray(i * V, (i + 1) * V), routing);
      }
    }
    for (const use of uses) {
      if (use.kind === 'beam' && use.beam === 0) this.advanceBeams(use.job);
    }
    this.retire();
    return true;
  }

  /** Steps until every submitted request has ended. */
  runUntilIdle(): void {
    while (this.pending > 0) {
      if (!this.step() && this.pending > 0) {
        throw new Error('inference engine: requests are queued but none can be admitted (internal error)');
      }
    }
  }

  /** Runs the requests to completion, batched together; results in request order. */
  generate(requests: readonly GenerationRequest[]): GenerationResult[] {
    const results: (GenerationResult | undefined)[] = requests.map(() => undefined);
    requests.forEach((r, i) => {
      this.submit(r, (e) => {
        if (e.type === 'end') results[i] = e.result;
      });
    });
    this.runUntilIdle();
    return results.map((r) => r!);
  }

  /**
   * Log-likelihood of each continuation given its example's context: the context is run once and its
   * cache forked for every continuation; many examples share each forward step. Results per example,
   * per continuation, in order. Contexts must be non-empty (give a document-start token, e.g. EOS).
   */
  scoreContinuations(
    examples: readonly { context: readonly number[]; continuations: readonly (readonly number[])[] }[],
  ): ContinuationLogprobs[][] {
    const c = this.config;
    examples.forEach((ex, i) => {
      if (ex.context.length === 0) {
        throw new InvalidRequestError(
          `example ${i}: the context is empty; start it with a token (e.g. EOS)`,
          'context',
        );
      }
      checkIds(ex.context, c.vocab_size, `example ${i} context`);
      ex.continuations.forEach((cont, k) => {
        if (cont.length === 0)
          throw new InvalidRequestError(`example ${i}, continuation ${k} is empty`, 'continuations');
        checkIds(cont, c.vocab_size, `example ${i}, continuation ${k}`);
        const total = ex.context.length + cont.length - 1;
        if (total > c.max_seq_len) {
          throw new InvalidRequestError(
            `example ${i}, continuation ${k}: ${ex.context.length} context + ${cont.length} continuation tokens exceed max_seq_len ${c.max_seq_len} (+1)`,
            'continuations',
          );
        }
      });
    });
    if (this.running.length > 0 || this.queue.length > 0) {
      throw new Error(
        'scoreContinuations: the engine is serving generation requests; score on an idle engine',
      );
    }
    const results: ContinuationLogprobs[][] = examples.map((ex) => ex.continuations.map(() => emptyScore()));
    const bs = this.pool.blockSize;
    let next = 0;
    while (next < examples.length) {
      // As many examples as the cache holds at once (each: its context, then one fork per continuation).
      const batch: number[] = [];
      let blocks = 0;
      while (next < examples.length) {
        const ex = examples[next]!;
        const ctx = ex.context.length;
        let need = this.pool.blocksFor(ctx);
        for (const cont of ex.continuations)
          need += this.pool.blocksFor(ctx + cont.length - 1) - Math.floor(ctx / bs);
        if (need > this.pool.numBlocks) {
          throw new CapacityError(
            `example ${next} needs ${need} KV cache blocks, more than the cache's ${this.pool.numBlocks}`,
          );
        }
        if (batch.length > 0 && blocks + need > this.pool.available) break;
        batch.push(next++);
        blocks += need;
      }
      const reservation = this.pool.reserve(blocks)!;
      this.scoreBatch(examples, batch, results, reservation);
      this.pool.unreserve(reservation);
    }
    return results;
  }

  private scoreBatch(
    examples: readonly { context: readonly number[]; continuations: readonly (readonly number[])[] }[],
    batch: number[],
    results: ContinuationLogprobs[][],
    reservation: KvReservation,
  ): void {
    const contexts = batch.map(() => this.pool.newSequence(reservation));
    // 1. Contexts, all but their last token (which every continuation feeds itself, with logits).
    const work: { seq: KvSequence; tokens: readonly number[]; score?: { ex: number; k: number } }[] = [];
    batch.forEach((e, i) => {
      const ctx = examples[e]!.context;
      if (ctx.length > 1) work.push({ seq: contexts[i]!, tokens: ctx.slice(0, -1) });
    });
    this.runChunks(work, () => undefined);
    // 2. Per continuation: fork the context and feed its last context token plus all but the last
    //    continuation token; each fed row's logits score the next token.
    const forks: KvSequence[] = [];
    const scoring: typeof work = [];
    batch.forEach((e, i) => {
      const ex = examples[e]!;
      ex.continuations.forEach((cont, k) => {
        const seq = this.pool.fork(contexts[i]!);
        forks.push(seq);
        scoring.push({
          seq,
          tokens: [ex.context[ex.context.length - 1]!, ...cont.slice(0, -1)],
          score: { ex: e, k },
        });
      });
    });
    this.runChunks(scoring, (item, offset, logits) => {
      const { ex, k } = item.score!;
      const cont = examples[ex]!.continuations[k]!;
      const target = cont[offset]!;
      const lse = this.sampler.lse(logits);
      const lp = logprobOf(logits[target]!, lse);
      const r = results[ex]![k]!;
      r.tokenLogprobs.push(lp);
      r.logprob += lp;
      if (this.sampler.top(logits, 1, lse)[0]!.token !== target) r.greedy = false;
    });
    for (const s of [...forks, ...contexts]) this.pool.release(s);
  }

  /**
   * Feeds the items' tokens in steps of at most maxStepTokens rows (an item longer than that is cut at
   * fixed prefill-chunk positions) and hands each row's logits to `onRow` when the item has a score.
   */
  private runChunks(
    items: { seq: KvSequence; tokens: readonly number[]; score?: { ex: number; k: number } }[],
    onRow: (item: (typeof items)[number], offset: number, logits: Float32Array) => void,
  ): void {
    const V = this.config.vocab_size;
    const D = this.config.d_model;
    const fed = items.map(() => 0);
    let i = 0;
    while (i < items.length) {
      const segments: StepSegment[] = [];
      const owners: { item: number; from: number; count: number; row: number }[] = [];
      let rows = 0;
      for (let j = i; j < items.length; j++) {
        const it = items[j]!;
        const start = fed[j]!;
        if (start >= it.tokens.length) continue;
        // Chunks end at fixed positions of the sequence, as in generation.
        const pos = it.seq.length;
        const chunk = this.options.prefillChunk;
        const end = Math.min(it.tokens.length, start + (Math.floor(pos / chunk) + 1) * chunk - pos);
        if (rows > 0 && rows + end - start > this.options.maxStepTokens) break;
        segments.push({ seq: it.seq, tokens: it.tokens.slice(start, end) });
        owners.push({ item: j, from: start, count: end - start, row: rows });
        rows += end - start;
        fed[j] = end;
      }
      while (i < items.length && fed[i]! >= items[i]!.tokens.length) i++;
      if (segments.length === 0) continue;
      const wanted: number[] = [];
      for (const o of owners)
        if (items[o.item]!.score !== undefined) for (let t = 0; t < o.count; t++) wanted.push(o.row + t);
      const x = this.model.forward(segments, Int32Array.from(wanted));
      this.counters.promptTokens += rows;
      let w = 0;
      for (let r0 = 0; r0 < wanted.length; r0 += this.options.logitsChunk) {
        const n = Math.min(this.options.logitsChunk, wanted.length - r0);
        const logits = this.model.logits(x.subarray(r0 * D, (r0 + n) * D), n, this.logitsBuf);
        for (let t = 0; t < n; t++, w++) {
          const row = wanted[w]!;
          const o = owners.find((q) => row >= q.row && row < q.row + q.count)!;
          onRow(items[o.item]!, o.from + row - o.row, logits.subarray(t * V, (t + 1) * V));
        }
      }
    }
  }

  private normalise(r: GenerationRequest): Job['req'] {
    const V = this.config.vocab_size;
    const maxLen = this.config.max_seq_len;
    if (!Array.isArray(r.prompt) && !ArrayBuffer.isView(r.prompt)) {
      throw new InvalidRequestError('prompt must be an array of token ids', 'prompt');
    }
    if (r.prompt.length === 0) throw new InvalidRequestError('the prompt is empty', 'prompt');
    checkIds(r.prompt, V, 'prompt');
    const int = (
      v: unknown,
      name: string,
      min: number,
      dflt: number,
      max = Number.MAX_SAFE_INTEGER,
    ): number => {
      const x = v ?? dflt;
      if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) {
        throw new InvalidRequestError(
          `${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`,
          name,
        );
      }
      return x;
    };
    const num = (
      v: unknown,
      name: string,
      ok: (x: number) => boolean,
      dflt: number,
      what: string,
    ): number => {
      const x = v ?? dflt;
      if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x)) {
        throw new InvalidRequestError(`${name} must be ${what}, got ${JSON.stringify(v)}`, name);
      }
      return x;
    };
    const maxTokens = int(r.maxTokens, 'max_tokens', 0, 0, maxLen);
    if (r.prompt.length + maxTokens > maxLen) {
      throw new InvalidRequestError(
        `the prompt (${r.prompt.length} tokens) plus max_tokens (${maxTokens}) exceeds the model's context of ${maxLen} tokens`,
        'max_tokens',
      );
    }
    const beamWidth = int(r.beamWidth, 'beam_width', 1, 1, 64);
    const n = int(r.n, 'n', 1, 1, beamWidth >= 2 ? beamWidth : 128);
    const logprobs = r.logprobs === undefined ? undefined : int(r.logprobs, 'logprobs', 0, 0, 20);
    const stopTokens = r.stopTokens ?? [];
    checkIds(stopTokens, V, 'stop_token_ids');
    const stop = r.stop ?? [];
    for (const s of stop) {
      if (typeof s !== 'string' || s.length === 0)
        throw new InvalidRequestError('stop strings must be non-empty strings', 'stop');
    }
    if (stop.length > 0 && this.codec === undefined) {
      throw new InvalidRequestError('stop strings need the engine to have a tokenizer (codec)', 'stop');
    }
    if (r.logitBias !== undefined) {
      for (const [id, b] of r.logitBias) {
        if (!(Number.isInteger(id) && id >= 0 && id < V)) {
          throw new InvalidRequestError(
            `logit_bias: token id ${id} is outside the vocabulary [0, ${V})`,
            'logit_bias',
          );
        }
        if (!Number.isFinite(b))
          throw new InvalidRequestError(
            `logit_bias: the bias of token ${id} is not a finite number`,
            'logit_bias',
          );
      }
    }
    if (beamWidth >= 2 && maxTokens === 0) {
      throw new InvalidRequestError('beam search needs max_tokens >= 1', 'max_tokens');
    }
    return {
      prompt: Array.from(r.prompt),
      maxTokens,
      n,
      temperature: num(r.temperature, 'temperature', (x) => x >= 0, 1, 'a number >= 0'),
      topK: int(r.topK, 'top_k', 0, 0),
      topP: num(r.topP, 'top_p', (x) => x > 0 && x <= 1, 1, 'a number in (0, 1]'),
      seed:
        r.seed === undefined
          ? Math.floor(Math.random() * 2 ** 32)
          : num(r.seed, 'seed', () => true, 0, 'a number'),
      logitBias: r.logitBias,
      stopTokens,
      stop,
      logprobs,
      echo: r.echo ?? false,
      beamWidth,
      lengthPenalty: num(r.lengthPenalty, 'length_penalty', () => true, 0, 'a finite number'),
      trace: r.trace ?? false,
    };
  }

  private admit(): void {
    let seqs = 0;
    for (const j of this.running) seqs += j.sequences;
    while (this.queue.length > 0) {
      const job = this.queue[0]!;
      if (seqs + job.sequences > this.options.maxSequences) return;
      const reservation = this.pool.reserve(job.blocks);
      if (reservation === undefined) return;
      this.queue.shift();
      job.reservation = reservation;
      job.prefillSeq = this.pool.newSequence(reservation);
      job.state = 'prefill';
      if (job.req.echo) job.promptInfo.push({ token: job.req.prompt[0]!, logprob: null });
      this.running.push(job);
      seqs += job.sequences;
    }
  }

  private handleRow(use: RowUse, logits: Float32Array, routing: LayerRouting[] | undefined): void {
    const job = use.job;
    const req = job.req;
    if (use.kind === 'prompt' || use.kind === 'last') {
      if (req.echo && use.pos + 1 < req.prompt.length) {
        const token = req.prompt[use.pos + 1]!;
        const lse = this.sampler.lse(logits);
        const info: TokenInfo = { token, logprob: logprobOf(logits[token]!, lse) };
        if (req.logprobs !== undefined && req.logprobs > 0)
          info.top = this.sampler.top(logits, req.logprobs, lse);
        if (routing !== undefined) info.routing = routing;
        job.promptInfo.push(info);
      }
      if (use.kind === 'last') this.startGeneration(job, logits, routing);
      return;
    }
    if (use.kind === 'beam') {
      const b = job.beam!;
      const lse = this.sampler.lse(logits);
      b.offers[use.beam] = this.sampler.top(logits, b.search.candidatesPerBeam, lse);
      return;
    }
    this.chooseNext(job, use.choice, logits, routing);
  }

  /** The prompt is read: fork the n choices (or start the beams) from its last row. */
  private startGeneration(job: Job, logits: Float32Array, routing: LayerRouting[] | undefined): void {
    const req = job.req;
    const seq = job.prefillSeq!;
    job.state = 'decode';
    job.listener?.({ type: 'prompt', info: req.echo ? job.promptInfo : [] });
    if (req.maxTokens === 0) {
      job.state = 'done';
      return;
    }
    if (req.beamWidth >= 2) {
      const search = new BeamSearch(req.beamWidth, req.maxTokens, req.lengthPenalty);
      job.beam = { search, seqs: [seq], offers: [] };
      const lse = this.sampler.lse(logits);
      job.beam.offers[0] = this.sampler.top(logits, search.candidatesPerBeam, lse);
      this.advanceBeams(job);
      return;
    }
    for (let i = 0; i < req.n; i++) {
      const choice: Choice = {
        index: i,
        seq: i === 0 ? seq : this.pool.fork(seq),
        rng: new Rng(choiceSeed(req.seed, i)),
        tokens: [],
        info: [],
        text: this.newText(req),
        pending: -1,
        finish: undefined,
      };
      job.choices.push(choice);
    }
    for (const c of job.choices) this.chooseNext(job, c, logits, routing);
  }

  private newText(req: Job['req']): TextTracker | undefined {
    return this.codec === undefined ? undefined : new TextTracker(this.codec, req.stop);
  }

  /** Samples a choice's next token from its row of logits and emits it (or finishes the choice). */
  private chooseNext(job: Job, c: Choice, logits: Float32Array, routing: LayerRouting[] | undefined): void {
    const req = job.req;
    const token = this.sampler.sample(logits, req, c.rng, req.logitBias);
    if (req.stopTokens.includes(token)) {
      this.finishChoice(job, c, 'stop');
      return;
    }
    const info: TokenInfo = { token };
    if (req.logprobs !== undefined) {
      const lse = this.sampler.lse(logits);
      info.logprob = logprobOf(logits[token]!, lse);
      if (req.logprobs > 0) info.top = this.sampler.top(logits, req.logprobs, lse);
    }
    if (routing !== undefined) info.routing = routing;
    c.tokens.push(token);
    c.info.push(info);
    c.pending = token;
    this.counters.generatedTokens++;
    const t = c.text?.push(token) ?? { delta: '', stopped: false };
    job.listener?.({ type: 'token', choice: c.index, info, text: t.delta });
    if (t.stopped) this.finishChoice(job, c, 'stop');
    else if (c.tokens.length >= req.maxTokens) this.finishChoice(job, c, 'length');
  }

  private finishChoice(job: Job, c: Choice, reason: FinishReason): void {
    c.finish = reason;
    this.pool.release(c.seq);
    job.listener?.({ type: 'finish', choice: c.index, finishReason: reason, text: c.text?.flush() ?? '' });
  }

  private advanceBeams(job: Job): void {
    const b = job.beam!;
    const req = job.req;
    const ending = (beam: number, token: number): Ending => {
      if (req.stopTokens.includes(token)) return 'stop-token';
      if (req.stop.length > 0 && this.codec !== undefined) {
        const live = b.search.live[beam]!;
        const text = this.codec.decode([...live.tokens, token]);
        if (req.stop.some((s) => text.includes(s))) return 'stop-string';
      }
      return 'none';
    };
    const parents = b.search.advance(b.offers, ending);
    this.counters.generatedTokens += parents.length;
    // New beams take over their parents' caches: the first child of a parent takes it, the others fork.
    const taken = new Set<number>();
    const seqs: KvSequence[] = [];
    for (const [p] of parents) {
      if (taken.has(p)) seqs.push(this.pool.fork(b.seqs[p]!));
      else {
        taken.add(p);
        seqs.push(b.seqs[p]!);
      }
    }
    b.seqs.forEach((s, i) => {
      if (!taken.has(i)) this.pool.release(s);
    });
    b.seqs = seqs;
    b.offers = [];
    if (b.search.done) {
      for (const s of b.seqs) this.pool.release(s);
      b.seqs = [];
      job.state = 'done';
    }
  }

  private reapCancelled(): void {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const job = this.queue[i]!;
      if (!job.cancelled) continue;
      this.queue.splice(i, 1);
      job.state = 'done';
      this.end(job);
    }
    for (const job of this.running) {
      if (!job.cancelled || job.state === 'done') continue;
      for (const c of job.choices) {
        if (c.finish === undefined) this.finishChoice(job, c, 'cancelled');
      }
      job.state = 'done';
    }
  }

  /** Ends the requests that are done: frees their caches and reservations, sends their results. */
  private retire(): void {
    for (let i = 0; i < this.running.length; i++) {
      const job = this.running[i]!;
      if (
        job.state === 'decode' &&
        job.beam === undefined &&
        job.choices.every((c) => c.finish !== undefined)
      ) {
        job.state = 'done';
      }
      if (job.state !== 'done') continue;
      this.running.splice(i--, 1);
      this.end(job);
    }
  }

  private finishIdle(): boolean {
    const before = this.running.length + this.queue.length;
    this.retire();
    return before !== this.running.length + this.queue.length;
  }

  private end(job: Job): void {
    if (job.prefillSeq !== undefined) this.pool.release(job.prefillSeq);
    for (const c of job.choices) this.pool.release(c.seq);
    if (job.beam !== undefined) for (const s of job.beam.seqs) this.pool.release(s);
    if (job.reservation !== undefined) this.pool.unreserve(job.reservation);
    const result = this.resultOf(job);
    job.listener?.({ type: 'end', result });
    job.resolve(result);
  }

  private resultOf(job: Job): GenerationResult {
    const req = job.req;
    const withInfo = req.logprobs !== undefined || req.trace;
    let choices: GenerationChoice[];
    if (job.beam !== undefined) {
      choices = job.beam.search.best(req.n).map((h, i) => ({
        index: i,
        tokens: h.tokens,
        text: this.beamText(req, h.tokens),
        finishReason: job.cancelled ? 'cancelled' : h.finishReason,
        logprob: h.logprob,
        score: h.score,
      }));
    } else if (job.choices.length === 0) {
      // Cancelled before generating, or max_tokens 0.
      const reason: FinishReason = job.cancelled ? 'cancelled' : 'length';
      choices = Array.from({ length: req.n }, (_, i) => ({
        index: i,
        tokens: [],
        text: '',
        finishReason: reason,
      }));
    } else {
      choices = job.choices.map((c) => ({
        index: c.index,
        tokens: c.tokens,
        text: c.text?.current ?? '',
        finishReason: c.finish ?? 'cancelled',
        ...(withInfo ? { info: c.info } : {}),
      }));
    }
    const completion = choices.reduce((a, c) => a + c.tokens.length, 0);
    return {
      promptTokens: req.prompt.length,
      completionTokens: completion,
      ...(req.echo ? { prompt: job.promptInfo } : {}),
      choices,
    };
  }

  /** A finished beam's text, cut at the first stop string. */
  private beamText(req: Job['req'], tokens: number[]): string {
    if (this.codec === undefined) return '';
    const text = this.codec.decode(tokens);
    let cut = text.length;
    for (const s of req.stop) {
      const at = text.indexOf(s);
      if (at >= 0 && at < cut) cut = at;
    }
    return text.slice(0, cut);
  }
}

function liveSequences(job: Job): number {
  if (job.state === 'prefill') return 1;
  if (job.beam !== undefined) return job.beam.seqs.length;
  return job.choices.filter((c) => c.finish === undefined).length;
}

function routingOf(trace: RoutingTrace, row: number): LayerRouting[] {
  return trace.layers.map((layer, i) => ({
    layer,
    experts: [trace.first[i]![row]!, trace.second[i]![row]!],
    gates: [trace.gate1[i]![row]!, trace.gate2[i]![row]!],
    kept: [trace.kept1[i]![row] === 1, trace.kept2[i]![row] === 1],
  }));
}

/** Choice i's seed: the request's seed for the first, a mix of (seed, i) for the others. */
export function choiceSeed(seed: number, i: number): number {
  if (i === 0) return seed;
  let z = (Math.floor(seed) + Math.imul(i, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  return (z ^ (z >>> 13)) >>> 0;
}

function checkIds(ids: ArrayLike<number>, vocab: number, what: string): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new InvalidRequestError(
        `${what}: token ${JSON.stringify(id)} at position ${i} is not an id in the vocabulary [0, ${vocab})`,
        what === 'prompt' ? 'prompt' : what.startsWith('stop') ? 'stop_token_ids' : 'prompt',
      );
    }
  }
}

function emptyScore(): ContinuationLogprobs {
  return { logprob: 0, greedy: true, tokenLogprobs: [] };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
