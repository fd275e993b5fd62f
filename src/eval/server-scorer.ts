/**
 * A Scorer over any OpenAI-compatible completions server (`/v1/completions`, e.g.
 * `glam serve` or vLLM) that returns prompt log-probabilities with `echo`.
 *
 * Prompts are token ids when the server exposes its tokenizer the way vLLM and
 * `glam serve` do (GET /tokenizer_info with an `eos_token`, POST /tokenize giving
 * `tokens`; the probe lm-evaluation-harness's local-completions makes), text otherwise.
 *
 * Token-id prompts are the sequences the local scorers score, so the scores equal
 * `glam eval --model`'s: the end-of-text token that starts a document, then context and
 * continuation split as lm-evaluation-harness splits a pair (encodePair in scorer.ts:
 * trailing whitespace of the context moves to the continuation, the context is encoded
 * alone, the continuation is what encoding the whole text adds after it). Two
 * departures from the harness, both those of the local scorers: where the tokenizer
 * merges context and continuation across the boundary, the continuation is encoded
 * alone (the harness keeps whole[len(context):], which can then be empty or start
 * inside a merged token); and every prompt starts with the end-of-text token (the
 * harness adds it only to an empty context). The continuation's scores are those of
 * the last tokens of the echo. A sequence longer than the server's context is
 * left-truncated to it (the harness's rule; the server refuses longer prompts), one
 * token less than the local scorers keep, who also score the token past the window.
 *
 * Text prompts are context + continuation as one text, tokenized by the server with
 * its own document-start handling; the continuation's tokens are those that end past
 * the end of the context by their `text_offset`s (a token the server merged across the
 * boundary counts as the continuation's). The server must accept the prompt whole.
 *
 * Either way a prompt is scored with echo, max_tokens 0 and logprobs 1, and a token is
 * greedy when its log-probability is its position's top one. Generation: temperature
 * 0, or beam search for beam > 1 (`use_beam_search` with `best_of`, vLLM's extension;
 * a server without it, such as `glam serve`, refuses `best_of` other than n); stop
 * strings are passed through and applied again to the text returned.
 */
import {
  type ContinuationScore,
  cutAtStop,
  emptyStats,
  type GenerateRequest,
  idsAfter,
  type ScoreRequest,
  type Scorer,
  type ScorerStats,
  splitPair,
} from './scorer.js';

export interface ServerScorerOptions {
  /** Model name sent in requests (default: the first of /v1/models). */
  model?: string;
  /** Requests in flight at once (default 8). */
  concurrency?: number;
  /** Milliseconds before a request is abandoned (default 300000). */
  timeoutMs?: number;
  /** Sent as "Authorization: Bearer KEY" (OpenAI's header). */
  apiKey?: string;
  /** 'auto' (default): token ids when the server has tokenizer endpoints; 'text' or 'tokens' to insist. */
  prompts?: 'auto' | 'text' | 'tokens';
}

interface CompletionLogprobs {
  tokens?: string[];
  token_logprobs?: Array<number | null>;
  top_logprobs?: Array<Record<string, number> | null>;
  text_offset?: number[];
}

interface CompletionResponse {
  choices?: Array<{ text?: string; logprobs?: CompletionLogprobs | null }>;
  usage?: { total_tokens?: unknown };
  error?: { message?: string };
}

/** An answer with an HTTP error status. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Statuses worth waiting out: busy (429), loading or draining (503). */
const RETRY_STATUSES = new Set([429, 503]);
const MAX_RETRIES = 30;
/** Texts whose token ids are kept (contexts recur across candidates). */
const ENCODE_CACHE = 4096;

export class ServerScorer implements Scorer {
  readonly stats: ScorerStats = emptyStats();
  private model = '';
  /** The model's context length, where /v1/models or /tokenize tell it (vLLM's max_model_len). */
  contextLength: number | undefined;
  /** The end-of-text id when prompts go as token ids; undefined for text prompts. */
  private eosId: number | undefined;
  /** Why prompts go as text, for the description. */
  private textReason = '';
  private readonly base: string;
  private readonly encoded = new Map<string, Promise<number[]>>();

  private constructor(
    url: string,
    private readonly opts: ServerScorerOptions,
  ) {
    this.base = url.replace(/\/+$/, '').replace(/\/v1$/, '');
  }

  /** True when prompts are sent as token ids of the server's tokenizer. */
  get tokenPrompts(): boolean {
    return this.eosId !== undefined;
  }

  get description(): string {
    const how = this.tokenPrompts ? 'token-id prompts' : `text prompts${this.textReason}`;
    return `OpenAI-compatible server at ${this.base}, ${how}`;
  }

  get modelId(): string {
    return `server-${this.base}-${this.model}-${this.tokenPrompts ? 'ids' : 'text'}`;
  }

  /** Connects, learns the model name (from /v1/models unless given) and whether the tokenizer is served. */
  static async connect(url: string, opts: ServerScorerOptions = {}): Promise<ServerScorer> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`--server: '${url}' is not a URL (e.g. http://127.0.0.1:8000)`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new Error(`--server: '${url}' must be an http(s) URL`);
    }
    const s = new ServerScorer(url, opts);
    const models = (await s.request('GET', '/v1/models')) as {
      data?: Array<{ id?: string; max_model_len?: number }>;
    };
    const entry = opts.model !== undefined ? models.data?.find((m) => m.id === opts.model) : models.data?.[0];
    const id = opts.model ?? entry?.id;
    if (typeof id !== 'string') throw new Error(`${s.base}/v1/models lists no model`);
    s.model = id;
    if (isLength(entry?.max_model_len)) s.contextLength = entry.max_model_len;
    if (opts.prompts === 'text') s.textReason = ' (asked for)';
    else await s.probeTokenizer(opts.prompts === 'tokens');
    return s;
  }

  /** Token-id prompts when /tokenizer_info names an EOS token that /tokenize turns into one id. */
  private async probeTokenizer(required: boolean): Promise<void> {
    let reason: string;
    try {
      const info = (await this.request('GET', '/tokenizer_info')) as { eos_token?: unknown };
      if (typeof info?.eos_token !== 'string') {
        reason = '/tokenizer_info names no eos_token';
      } else {
        const r = (await this.request('POST', '/tokenize', {
          prompt: info.eos_token,
          add_special_tokens: false,
        })) as { tokens?: unknown; max_model_len?: unknown };
        const ids = r?.tokens;
        if (!Array.isArray(ids) || ids.length !== 1 || !Number.isInteger(ids[0])) {
          reason = `/tokenize does not give one id for the eos_token ${JSON.stringify(info.eos_token)}`;
        } else {
          this.eosId = ids[0] as number;
          if (this.contextLength === undefined && isLength(r.max_model_len))
            this.contextLength = r.max_model_len;
          return;
        }
      }
    } catch (err) {
      // A server without the endpoints answers an error status (404, 405, ...) or something not JSON.
      if (!(err instanceof HttpError)) throw err;
      reason = err.message;
    }
    if (required) throw new Error(`${this.base}: no usable tokenizer endpoints: ${reason}`);
    this.textReason = ' (no tokenizer endpoints)';
  }

  private async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const url = `${this.base}${path}`;
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.opts.apiKey !== undefined) headers.authorization = `Bearer ${this.opts.apiKey}`;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.opts.timeoutMs ?? 300_000),
        });
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        throw new Error(`${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
      }
      const text = await res.text();
      if (RETRY_STATUSES.has(res.status) && attempt < MAX_RETRIES) {
        const after = Number(res.headers.get('retry-after'));
        await new Promise((r) => setTimeout(r, 1000 * (after > 0 ? Math.min(after, 10) : 1)));
        continue;
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new HttpError(res.status, `${url}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`);
      }
      if (!res.ok) {
        const msg = (json as CompletionResponse).error?.message ?? text.slice(0, 200);
        throw new HttpError(res.status, `${url}: HTTP ${res.status}: ${msg}`);
      }
      return json;
    }
  }

  /** Token ids of text by the server's tokenizer (no special tokens added). */
  private encode(text: string): Promise<number[]> {
    let ids = this.encoded.get(text);
    if (ids === undefined) {
      ids = (
        this.request('POST', '/tokenize', { prompt: text, add_special_tokens: false }) as Promise<{
          tokens?: unknown;
        }>
      ).then((r) => {
        const t = r?.tokens;
        if (!Array.isArray(t) || !t.every((id) => Number.isInteger(id))) {
          throw new Error(`${this.base}/tokenize: the response has no "tokens" list of ids`);
        }
        return t as number[];
      });
      if (this.encoded.size >= ENCODE_CACHE) this.encoded.delete(this.encoded.keys().next().value!);
      this.encoded.set(text, ids);
    }
    return ids;
  }

  /** Run `fn` over items with at most `concurrency` in flight; results in order. */
  private async pool<T, R>(
    items: T[],
    fn: (item: T) => Promise<R>,
    onDone?: (n: number) => void,
  ): Promise<R[]> {
    const out = new Array<R>(items.length);
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
        onDone?.(1);
      }
    };
    await Promise.all(Array.from({ length: Math.min(items.length, this.opts.concurrency ?? 8) }, worker));
    return out;
  }

  async loglikelihood(
    requests: ScoreRequest[],
    onProgress?: (done: number) => void,
  ): Promise<ContinuationScore[][]> {
    return this.pool(
      requests,
      (req) =>
        Promise.all(
          req.continuations.map((cont) =>
            this.tokenPrompts ? this.scoreIds(req.context, cont) : this.scoreText(req.context, cont),
          ),
        ),
      onProgress,
    );
  }

  /** Echo + logprobs of one prompt, checked to hold what scoring reads. */
  private async echo(prompt: string | number[]): Promise<Required<CompletionLogprobs>> {
    const res = (await this.request('POST', '/v1/completions', {
      model: this.model,
      prompt,
      max_tokens: 0,
      echo: true,
      logprobs: 1,
      temperature: 0,
    })) as CompletionResponse;
    const lp = res.choices?.[0]?.logprobs;
    const tokens = lp?.tokens;
    if (!Array.isArray(tokens) || !Array.isArray(lp?.token_logprobs) || !Array.isArray(lp?.text_offset)) {
      throw new Error(
        `${this.base}/v1/completions: the response has no prompt logprobs (tokens, token_logprobs, text_offset); the server must support echo with logprobs`,
      );
    }
    this.stats.computed += tokens.length;
    this.stats.separate += tokens.length;
    return {
      tokens,
      token_logprobs: lp.token_logprobs,
      top_logprobs: lp.top_logprobs ?? [],
      text_offset: lp.text_offset,
    };
  }

  private async scoreIds(context: string, continuation: string): Promise<ContinuationScore> {
    const texts = splitPair(context, continuation);
    const ctx = await this.encode(texts.context);
    const cont =
      idsAfter(ctx, await this.encode(texts.context + texts.continuation)) ??
      (await this.encode(texts.continuation));
    if (cont.length === 0)
      throw new Error(`continuation ${JSON.stringify(continuation)} encodes to no tokens`);
    let seq = [this.eosId!, ...ctx, ...cont];
    if (this.contextLength !== undefined) seq = seq.slice(-this.contextLength);
    const n = Math.min(cont.length, seq.length - 1);
    const lp = await this.echo(seq);
    if (lp.tokens.length !== seq.length) {
      throw new Error(
        `${this.base}/v1/completions: echoed ${lp.tokens.length} tokens of a ${seq.length}-token prompt`,
      );
    }
    return this.sum(lp, seq.length - n, continuation);
  }

  private async scoreText(context: string, continuation: string): Promise<ContinuationScore> {
    const texts = splitPair(context, continuation);
    const prompt = texts.context + texts.continuation;
    const lp = await this.echo(prompt);
    // Token i spans [offset_i, offset_i+1); the first that ends past the context starts the continuation.
    const end = (i: number) => (i + 1 < lp.text_offset.length ? lp.text_offset[i + 1]! : prompt.length);
    let first = 0;
    while (first < lp.tokens.length && end(first) <= texts.context.length) first++;
    return this.sum(lp, first, continuation);
  }

  /** The score of the echoed tokens from `first` on. */
  private sum(lp: Required<CompletionLogprobs>, first: number, continuation: string): ContinuationScore {
    const n = lp.tokens.length - first;
    if (n <= 0)
      throw new Error(`${this.base}: the continuation ${JSON.stringify(continuation)} got no tokens`);
    let logprob = 0;
    let greedy = true;
    for (let i = first; i < lp.tokens.length; i++) {
      const l = lp.token_logprobs[i];
      if (typeof l !== 'number') {
        throw new Error(`${this.base}/v1/completions: no log-probability for continuation token ${i}`);
      }
      logprob += l;
      const top = lp.top_logprobs[i];
      if (top == null || l < Math.max(...Object.values(top))) greedy = false;
    }
    return { logprob, tokens: n, greedy };
  }

  async generate(requests: GenerateRequest[], onProgress?: (done: number) => void): Promise<string[]> {
    return this.pool(
      requests,
      async (r) => {
        const text = r.context.replace(/\s+$/, '');
        let prompt: string | number[] = text;
        if (this.tokenPrompts) {
          // As the engine scorer: a document start, the context's end where the answer must fit.
          const ids = [this.eosId!, ...(await this.encode(text))];
          prompt =
            this.contextLength === undefined
              ? ids
              : ids.slice(-Math.max(1, this.contextLength - r.maxTokens));
        }
        const body: Record<string, unknown> = {
          model: this.model,
          prompt,
          max_tokens: r.maxTokens,
          temperature: 0,
          stop: r.stop,
        };
        if (r.beam > 1) {
          body.use_beam_search = true;
          body.best_of = r.beam;
        }
        const res = (await this.request('POST', '/v1/completions', body)) as CompletionResponse;
        const out = res.choices?.[0]?.text;
        if (typeof out !== 'string') throw new Error(`${this.base}/v1/completions: the response has no text`);
        // Positions the server computed, where it says (OpenAI's usage block).
        const used = res.usage?.total_tokens;
        if (typeof used === 'number' && Number.isFinite(used)) {
          this.stats.computed += used;
          this.stats.separate += used;
        }
        return cutAtStop(out, r.stop) ?? out;
      },
      onProgress,
    );
  }
}

function isLength(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 1e9;
}
