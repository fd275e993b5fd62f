/**
 * The one thing the harness asks of a model: log-likelihoods of continuations given
 * a context, and text generated after a context until a stop string. Everything
 * behind it (full recompute, the KV-cache engine, an HTTP server) is a Scorer.
 */

/** One context with the candidate continuations to score after it. */
export interface ScoreRequest {
  context: string;
  continuations: string[];
}

export interface ContinuationScore {
  /** Σ log p(continuation token | everything before it), natural log. */
  logprob: number;
  /** Continuation tokens scored. */
  tokens: number;
  /** True when every continuation token is the model's most likely next token (greedy decoding gives it). */
  greedy: boolean;
}

export interface GenerateRequest {
  context: string;
  /** Stop at the first of these strings (not included in the result). */
  stop: string[];
  maxTokens: number;
  /** 1: greedy decoding; k > 1: beam search of width k. */
  beam: number;
}

/** Token counts, for comparing ways of scoring. */
export interface ScorerStats {
  /** Positions the model computed (prompt and candidate tokens, no padding). */
  computed: number;
  /** What scoring each candidate on its own, context included, would have computed. */
  separate: number;
  /** Padding positions computed in batches. */
  padding: number;
}

export interface Scorer {
  /** What the scores come from, for the report. */
  readonly description: string;
  /** Identifies the model's weights, for the result cache. */
  readonly modelId: string;
  readonly stats: ScorerStats;
  /** Scores for every continuation of every request, in order; onProgress(k): k more requests done. */
  loglikelihood(
    requests: ScoreRequest[],
    onProgress?: (done: number) => void,
  ): Promise<ContinuationScore[][]>;
  generate(requests: GenerateRequest[], onProgress?: (done: number) => void): Promise<string[]>;
  close?(): Promise<void>;
}

export function emptyStats(): ScorerStats {
  return { computed: 0, separate: 0, padding: 0 };
}

/** What scoring needs of a tokenizer. */
export interface Codec {
  encode(text: string): number[];
  decode(ids: number[]): string;
}

/**
 * Context and continuation as token ids, as lm-evaluation-harness splits them:
 * whitespace at the end of the context moves to the continuation (so " yes" keeps
 * its space), the context is encoded alone, and the continuation is what encoding
 * the whole text adds after it (or, where the tokenizer merged across the
 * boundary, the continuation encoded alone), so every candidate of a request has
 * identical context ids.
 */
export function encodePair(
  codec: Codec,
  context: string,
  continuation: string,
): { context: number[]; continuation: number[] } {
  const texts = splitPair(context, continuation);
  const ctx = codec.encode(texts.context);
  const whole = codec.encode(texts.context + texts.continuation);
  return { context: ctx, continuation: idsAfter(ctx, whole) ?? codec.encode(texts.continuation) };
}

/** The texts of a pair as encodePair splits them: trailing whitespace of the context moves to the continuation. */
export function splitPair(context: string, continuation: string): { context: string; continuation: string } {
  const trail = /\s+$/.exec(context)?.[0] ?? '';
  return { context: context.slice(0, context.length - trail.length), continuation: trail + continuation };
}

/**
 * The ids the whole text adds after the context's ids; undefined where the context's ids are not
 * a prefix of the whole's (the tokenizer merged across the boundary: encodePair then encodes the
 * continuation alone; lm-evaluation-harness would keep whole[len(context):], which can be empty).
 */
export function idsAfter(context: readonly number[], whole: readonly number[]): number[] | undefined {
  const prefix = context.length <= whole.length && context.every((id, i) => whole[i] === id);
  return prefix ? whole.slice(context.length) : undefined;
}

/** The shortest text that contains a stop string cut before it; undefined when none occurs. */
export function cutAtStop(text: string, stop: string[]): string | undefined {
  let cut = -1;
  for (const s of stop) {
    if (s === '') continue;
    const k = text.indexOf(s);
    if (k >= 0 && (cut < 0 || k < cut)) cut = k;
  }
  return cut < 0 ? undefined : text.slice(0, cut);
}
