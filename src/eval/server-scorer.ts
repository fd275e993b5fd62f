/**
 * A Scorer over any OpenAI-compatible completions server (`/v1/completions`, e.g.
 * `glam serve` or vLLM) that returns prompt log-probabilities with `echo`.
 *
 * Log-likelihoods: the prompt is context + continuation (trailing whitespace of the
 * context moved to the continuation, as the other scorers do), sent with echo,
 * max_tokens 0 and logprobs 1; the continuation's tokens are those whose text
 * offset is at or past the end of the context, and a token is greedy when its
 * log-probability is its position's top one. The server's own tokenization and
 * document-start handling apply. Generation: temperature 0, or beam search
 * (`use_beam_search` with `best_of`, vLLM's and glam serve's extension) for
 * beam > 1; stop strings are passed through.
 */
import {
  type ContinuationScore,
  cutAtStop,
  emptyStats,
  type GenerateRequest,
  type ScoreRequest,
  type Scorer,
  type ScorerStats,
} from './scorer.js';

export interface ServerScorerOptions {
  /** Model name sent in requests (default: the first of /v1/models). */
  model?: string;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Milliseconds before a request is abandoned (default 300000). */
  timeoutMs?: number;
}

interface CompletionLogprobs {
  tokens?: string[];
  token_logprobs?: Array<number | null>;
  top_logprobs?: Array<Record<string, number> | null>;
  text_offset?: number[];
}

interface CompletionResponse {
  choices?: Array<{ text?: string; logprobs?: CompletionLogprobs | null }>;
  error?: { message?: string };
}

export class ServerScorer implements Scorer {
  readonly stats: ScorerStats = emptyStats();
  readonly description: string;
  private model = '';
  /** The model's context length, where /v1/models tells it (vLLM's max_model_len). */
  contextLength: number | undefined;
  private readonly base: string;

  private constructor(
    url: string,
    private readonly opts: ServerScorerOptions,
  ) {
    this.base = url.replace(/\/+$/, '').replace(/\/v1$/, '');
    this.description = `OpenAI-compatible server at ${this.base}`;
  }

  get modelId(): string {
    return `server-${this.base}-${this.model}`;
  }

  /** Connects and learns the model name (from /v1/models unless given). */
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
    if (typeof entry?.max_model_len === 'number') s.contextLength = entry.max_model_len;
    return s;
  }

  private async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const url = `${this.base}${path}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 300_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(`${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`${url}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`);
    }
    if (!res.ok) {
      const msg = (json as CompletionResponse).error?.message ?? text.slice(0, 200);
      throw new Error(`${url}: HTTP ${res.status}: ${msg}`);
    }
    return json;
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
    await Promise.all(Array.from({ length: Math.min(items.length, this.opts.concurrency ?? 4) }, worker));
    return out;
  }

  async loglikelihood(
    requests: ScoreRequest[],
    onProgress?: (done: number) => void,
  ): Promise<ContinuationScore[][]> {
    return this.pool(
      requests,
      async (req) => {
        const out: ContinuationScore[] = [];
        for (const cont of req.continuations) out.push(await this.scoreOne(req.context, cont));
        return out;
      },
      onProgress,
    );
  }

  private async scoreOne(context: string, continuation: string): Promise<ContinuationScore> {
    const trail = /\s+$/.exec(context)?.[0] ?? '';
    const ctx = context.slice(0, context.length - trail.length);
    const prompt = ctx + trail + continuation;
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
    const logprobs = lp?.token_logprobs;
    const offsets = lp?.text_offset;
    if (!Array.isArray(tokens) || !Array.isArray(logprobs) || !Array.isArray(offsets)) {
      throw new Error(
        `${this.base}/v1/completions: the response has no prompt logprobs (tokens, token_logprobs, text_offset); the server must support echo with logprobs`,
      );
    }
    // Offsets count characters of the prompt; the continuation starts at the context's end.
    const start = ctx.length;
    let logprob = 0;
    let n = 0;
    let greedy = true;
    for (let i = 0; i < tokens.length; i++) {
      if (offsets[i]! < start) continue;
      const l = logprobs[i];
      if (typeof l !== 'number') {
        throw new Error(`${this.base}/v1/completions: no log-probability for continuation token ${i}`);
      }
      logprob += l;
      n++;
      const top = lp!.top_logprobs?.[i];
      if (top) {
        const best = Math.max(...Object.values(top));
        if (l < best) greedy = false;
      } else greedy = false;
    }
    if (n === 0)
      throw new Error(`${this.base}: the continuation ${JSON.stringify(continuation)} got no tokens`);
    this.stats.computed += tokens.length;
    this.stats.separate += tokens.length;
    return { logprob, tokens: n, greedy };
  }

  async generate(requests: GenerateRequest[], onProgress?: (done: number) => void): Promise<string[]> {
    return this.pool(
      requests,
      async (r) => {
        const body: Record<string, unknown> = {
          model: this.model,
          prompt: r.context.replace(/\s+$/, ''),
          max_tokens: r.maxTokens,
          temperature: 0,
          stop: r.stop,
        };
        if (r.beam > 1) {
          body.use_beam_search = true;
          body.best_of = r.beam;
        }
        const res = (await this.request('POST', '/v1/completions', body)) as CompletionResponse;
        const text = res.choices?.[0]?.text;
        if (typeof text !== 'string')
          throw new Error(`${this.base}/v1/completions: the response has no text`);
        return cutAtStop(text, r.stop) ?? text;
      },
      onProgress,
    );
  }
}
