/**
 * `glam serve`: an OpenAI-compatible HTTP server over the inference engine.
 *
 * The HTTP thread parses, validates, tokenizes, queues and streams; the engine runs in a worker thread
 * (worker.ts), so /health and /metrics answer while a batch is generating. Requests beyond the
 * engine's `parallel` sequences wait in a bounded queue (429 with Retry-After beyond it). A client
 * that disconnects cancels its request, queued or running. `shutdown()` (SIGTERM) stops accepting,
 * lets in-flight requests finish for up to `drainSeconds`, cancels what is left, and resolves.
 *
 * Endpoints: POST /v1/completions, GET /v1/models, GET /health, GET /metrics, GET /tokenizer_info,
 * POST /tokenize, POST /detokenize (the remote tokenizer of lm-evaluation-harness), GET / (the
 * playground page). With an API key, /v1/* needs `Authorization: Bearer KEY`; the rest stays public.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Tokenizer } from '../data/tokenizer.js';
import type {
  EngineStats,
  GenerationEvent,
  GenerationRequest,
  GenerationResult,
  TokenInfo,
} from '../infer/engine.js';
import { loadCheckpointConfig, TOKENIZER_FILE } from '../model/checkpoint.js';
import type { GlamConfig } from '../model/config.js';
import type { ExpertSnapshot, FromWorker, ModelInfo, ToWorker, WorkerOptions } from './messages.js';
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, Registry } from './metrics.js';
import {
  ApiError,
  bodyObject,
  type CompletionChoice,
  type CompletionParams,
  contextLengthError,
  engineRequest,
  type LogprobsObject,
  parseCompletionRequest,
  usageOf,
} from './protocol.js';
import { ServerTokens } from './tokens.js';

export interface ServeOptions {
  /** A checkpoint directory (resolved). */
  modelDir: string;
  /** The name /v1/models reports and responses carry. */
  modelName: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Sequences generating at once (default 8). */
  parallel?: number;
  /** Requests waiting beyond those (default 64); more get 429. */
  maxQueue?: number;
  apiKey?: string;
  /** Seconds in-flight requests may take to finish on shutdown (default 30). */
  drainSeconds?: number;
  /** KV cache bytes (default: room for `parallel` sequences of the model's whole context). */
  kvCacheBytes?: number;
  /** Largest request body (default 4 MiB); larger gets 413. */
  maxBodyBytes?: number;
  /** Time to receive a request body (default 30 s); slower gets 408. */
  bodyTimeoutMs?: number;
  /** Rows per engine step (default 512). */
  maxStepTokens?: number;
  log?: (line: string) => void;
}

const PLAYGROUND = fileURLToPath(new URL('../../../static/playground.html', import.meta.url));

interface Pending {
  onEvent(e: GenerationEvent): void;
  onRejected(err: ApiError): void;
}

/** One prompt of a completion request, as the engine runs it. */
interface PromptRun {
  engineId: number;
  ids: number[];
  /** The prompt's text (for echo). */
  text: string;
  result: GenerationResult | undefined;
  firstTokenAt: number | undefined;
  lastTokenAt: number[];
}

export class GlamServer {
  readonly http: Server;
  readonly config: GlamConfig;
  private readonly tokens: ServerTokens;
  private readonly worker: Worker;
  private readonly opts: Required<Omit<ServeOptions, 'apiKey' | 'log'>> &
    Pick<ServeOptions, 'apiKey' | 'log'>;
  private info: ModelInfo | undefined;
  private failure: string | undefined;
  private draining = false;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Engine requests submitted and not ended. */
  private inFlight = 0;
  private readonly created = Math.floor(Date.now() / 1000);
  private readonly metrics = new Registry();
  private readonly m;
  private workerExited: Promise<void>;

  private constructor(opts: ServeOptions) {
    this.opts = {
      host: '127.0.0.1',
      port: 8080,
      parallel: 8,
      maxQueue: 64,
      drainSeconds: 30,
      kvCacheBytes: 0,
      maxBodyBytes: 4 * 2 ** 20,
      bodyTimeoutMs: 30_000,
      maxStepTokens: 512,
      ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)),
    } as GlamServer['opts'];
    this.config = loadCheckpointConfig(opts.modelDir);
    if (this.opts.kvCacheBytes === 0)
      this.opts.kvCacheBytes = fullContextBytes(this.config, this.opts.parallel);
    this.tokens = new ServerTokens(Tokenizer.load(`${opts.modelDir}/${TOKENIZER_FILE}`));
    const reg = this.metrics;
    this.m = {
      requests: reg.add(
        new Counter('glam_http_requests_total', 'HTTP requests answered, by path and status'),
      ),
      queue: reg.add(new Gauge('glam_queue_depth', 'Requests waiting for the engine (not yet running)')),
      running: reg.add(new Gauge('glam_running_requests', 'Requests the engine is running')),
      sequences: reg.add(new Gauge('glam_active_sequences', 'Sequences in the engine (prefill and decode)')),
      promptTokens: reg.add(new Counter('glam_prompt_tokens_total', 'Prompt tokens read by the engine')),
      generated: reg.add(new Counter('glam_generation_tokens_total', 'Tokens generated')),
      steps: reg.add(new Counter('glam_engine_steps_total', 'Engine forward steps')),
      ttft: reg.add(
        new Histogram(
          'glam_time_to_first_token_seconds',
          'Time from request to first token',
          LATENCY_BUCKETS,
        ),
      ),
      itl: reg.add(
        new Histogram('glam_inter_token_latency_seconds', 'Time between tokens of a choice', LATENCY_BUCKETS),
      ),
      e2e: reg.add(
        new Histogram('glam_request_duration_seconds', 'Time from request to its end', LATENCY_BUCKETS),
      ),
      kvUsage: reg.add(new Gauge('glam_kv_cache_usage_ratio', 'KV cache blocks used over blocks held')),
      kvUsed: reg.add(new Gauge('glam_kv_cache_used_bytes', 'KV cache bytes holding tokens')),
      kvTotal: reg.add(new Gauge('glam_kv_cache_total_bytes', 'KV cache bytes held')),
      kvReserved: reg.add(
        new Gauge('glam_kv_cache_reserved_blocks', 'KV cache blocks promised to running requests'),
      ),
      load: reg.add(
        new Counter('glam_expert_load_total', 'Token assignments kept, per MoE layer and expert'),
      ),
      dropped: reg.add(
        new Counter('glam_expert_dropped_total', 'Assignments dropped for capacity, per MoE layer'),
      ),
      routed: reg.add(new Counter('glam_expert_routed_tokens_total', 'Tokens routed, per MoE layer')),
      rss: reg.add(new Gauge('process_resident_memory_bytes', 'Resident memory of the server process')),
    };
    const workerOptions: WorkerOptions = {
      modelDir: opts.modelDir,
      kvCacheBytes: this.opts.kvCacheBytes,
      maxSequences: this.opts.parallel,
      maxStepTokens: this.opts.maxStepTokens,
    };
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: workerOptions });
    this.worker.on('message', (m: FromWorker) => this.onWorker(m));
    this.worker.on('error', (err) => {
      this.failure = `the engine failed: ${err.message}`;
      this.opts.log?.(`glam serve: ${this.failure}`);
      this.failAll();
    });
    this.workerExited = new Promise((resolve) => {
      this.worker.on('exit', () => {
        if (!this.draining && this.failure === undefined) this.failure = 'the engine thread exited';
        this.failAll();
        resolve();
      });
    });
    this.http = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => this.sendError(res, err));
    });
    // Backstop for clients that never finish their request (Node answers 408 and closes).
    this.http.requestTimeout = this.opts.bodyTimeoutMs + 5000;
    this.http.headersTimeout = Math.min(60_000, this.opts.bodyTimeoutMs + 5000);
  }

  /** Starts listening at once (health answers 503 until the model is loaded). */
  static async start(opts: ServeOptions): Promise<GlamServer> {
    const s = new GlamServer(opts);
    await new Promise<void>((resolve, reject) => {
      s.http.once('error', reject);
      s.http.listen(s.opts.port, s.opts.host, () => {
        s.http.off('error', reject);
        resolve();
      });
    });
    return s;
  }

  /** Resolves when the model is loaded (rejects when loading failed). */
  ready(): Promise<ModelInfo> {
    return new Promise((resolve, reject) => {
      const poll = () => {
        if (this.info !== undefined) resolve(this.info);
        else if (this.failure !== undefined) reject(new Error(this.failure));
        else setTimeout(poll, 20);
      };
      poll();
    });
  }

  get url(): string {
    const a = this.http.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}`;
  }

  /**
   * Stops accepting, lets in-flight requests finish for up to the drain time, cancels the rest, stops
   * the engine thread and closes every connection.
   */
  async shutdown(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeIdleConnections();
    const deadline = Date.now() + this.opts.drainSeconds * 1000;
    while (this.inFlight > 0 && Date.now() < deadline) await sleep(20);
    if (this.inFlight > 0) {
      this.opts.log?.(
        `glam serve: cancelling ${this.inFlight} request(s) still running after ${this.opts.drainSeconds} s`,
      );
      for (const id of this.pending.keys()) this.toWorker({ type: 'cancel', id });
      const cancelDeadline = Date.now() + 5000;
      while (this.inFlight > 0 && Date.now() < cancelDeadline) await sleep(20);
    }
    this.toWorker({ type: 'stop' });
    const stopped = await Promise.race([this.workerExited.then(() => true), sleep(10_000).then(() => false)]);
    if (!stopped) await this.worker.terminate();
    this.http.closeAllConnections();
    await closed;
  }

  // ---- worker messages ----------------------------------------------------------------------------

  private toWorker(m: ToWorker): void {
    this.worker.postMessage(m);
  }

  private onWorker(m: FromWorker): void {
    switch (m.type) {
      case 'ready':
        this.info = m.info;
        this.opts.log?.(
          `glam serve: ${this.opts.modelName} ready (${m.info.parameters.toLocaleString('en-US')} parameters, ` +
            `KV cache ${(m.info.kvCacheBytes / 2 ** 20).toFixed(0)} MiB)`,
        );
        break;
      case 'failed':
        this.failure = `the model could not be loaded: ${m.message}`;
        this.opts.log?.(`glam serve: ${this.failure}`);
        break;
      case 'event':
        this.pending.get(m.id)?.onEvent(m.event);
        break;
      case 'rejected': {
        const status = m.name === 'InvalidRequestError' ? 400 : m.name === 'CapacityError' ? 400 : 500;
        this.pending.get(m.id)?.onRejected(new ApiError(status, m.message, undefined, m.param));
        break;
      }
      case 'stats':
        this.updateStats(m.stats, m.experts);
        break;
    }
  }

  private updateStats(s: EngineStats, experts: ExpertSnapshot[]): void {
    this.m.queue.set(s.queued);
    this.m.running.set(s.running);
    this.m.sequences.set(s.sequences);
    this.m.promptTokens.setTotal({}, s.promptTokens);
    this.m.generated.setTotal({}, s.generatedTokens);
    this.m.steps.setTotal({}, s.steps);
    this.m.kvUsage.set(s.kv.blocksTotal === 0 ? 0 : s.kv.blocksUsed / s.kv.blocksTotal);
    this.m.kvUsed.set(s.kv.bytesUsed);
    this.m.kvTotal.set(s.kv.bytesTotal);
    this.m.kvReserved.set(s.kv.blocksReserved);
    for (const e of experts) {
      const layer = String(e.layer);
      e.load.forEach((v, i) => {
        this.m.load.setTotal({ layer, expert: String(i) }, v);
      });
      this.m.dropped.setTotal({ layer }, e.dropped);
      this.m.routed.setTotal({ layer }, e.tokens);
    }
  }

  private failAll(): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.onRejected(
        new ApiError(503, this.failure ?? 'the engine stopped', 'server_error', null, 'engine_unavailable'),
      );
    }
  }

  /** Submits one engine request; events arrive on `onEvent` until 'end'. */
  private submit(request: GenerationRequest, p: Pending): number {
    const id = this.nextId++;
    this.inFlight++;
    let ended = false;
    const finish = () => {
      if (!ended) {
        ended = true;
        this.inFlight--;
        this.pending.delete(id);
      }
    };
    this.pending.set(id, {
      onEvent: (e) => {
        if (e.type === 'end') finish();
        p.onEvent(e);
      },
      onRejected: (err) => {
        finish();
        p.onRejected(err);
      },
    });
    this.toWorker({ type: 'submit', id, request });
    return id;
  }

  // ---- HTTP -----------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const route = ROUTES[path];
    res.on('finish', () =>
      this.m.requests.inc({ path: route === undefined ? 'other' : path, status: String(res.statusCode) }),
    );
    if (route === undefined)
      throw new ApiError(404, `no route ${path}`, 'invalid_request_error', null, 'not_found');
    if (req.method !== route) {
      res.setHeader('Allow', route);
      throw new ApiError(
        405,
        `${path} takes ${route}, not ${req.method}`,
        'invalid_request_error',
        null,
        'method_not_allowed',
      );
    }
    if (path === '/health') return this.health(res);
    if (path === '/metrics') return this.sendMetrics(res);
    if (path === '/') return this.playground(res);
    if (path.startsWith('/v1/')) this.authorize(req);
    if (this.draining) {
      throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
    }
    const body = req.method === 'POST' ? await this.readJson(req) : undefined;
    switch (path) {
      case '/v1/models':
        return this.models(res);
      case '/v1/completions':
        return this.completions(res, body);
      case '/tokenizer_info':
        return this.sendJson(res, 200, {
          eos_token: this.tokens.eosToken,
          bos_token: null,
          pad_token: this.tokens.padToken,
          unk_token: this.tokens.unkToken,
          model_max_length: this.config.max_seq_len,
          vocab_size: this.config.vocab_size,
          tokenizer_class: 'glam-moe-bpe',
        });
      case '/tokenize':
        return this.tokenize(res, body);
      case '/detokenize':
        return this.detokenize(res, body);
    }
  }

  private authorize(req: IncomingMessage): void {
    const key = this.opts.apiKey;
    if (key === undefined) return;
    const header = req.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    const want = Buffer.from(key);
    if (given.length !== want.length || !timingSafeEqual(given, want)) {
      throw new ApiError(
        401,
        'Incorrect API key provided.',
        'invalid_request_error',
        null,
        'invalid_api_key',
      );
    }
  }

  private health(res: ServerResponse): void {
    if (this.failure !== undefined) this.sendJson(res, 503, { status: 'failed', message: this.failure });
    else if (this.draining) this.sendJson(res, 503, { status: 'draining' });
    else if (this.info === undefined) this.sendJson(res, 503, { status: 'loading' });
    else this.sendJson(res, 200, { status: 'ok' });
  }

  private sendMetrics(res: ServerResponse): void {
    this.m.rss.set(process.memoryUsage.rss());
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(this.metrics.render());
  }

  private playground(res: ServerResponse): void {
    let html: string;
    try {
      html = readFileSync(PLAYGROUND, 'utf8');
    } catch {
      throw new ApiError(500, 'the playground page is missing from this installation', 'server_error');
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(html);
  }

  private models(res: ServerResponse): void {
    this.sendJson(res, 200, {
      object: 'list',
      data: [
        {
          id: this.opts.modelName,
          object: 'model',
          created: this.created,
          owned_by: 'glam-moe',
          max_model_len: this.config.max_seq_len,
        },
      ],
    });
  }

  private tokenize(res: ServerResponse, body: unknown): void {
    const b = bodyObject(body);
    if (typeof b.prompt !== 'string') {
      throw new ApiError(
        400,
        "'prompt' must be a string",
        'invalid_request_error',
        'prompt',
        'invalid_value',
      );
    }
    if (b.add_special_tokens !== undefined && typeof b.add_special_tokens !== 'boolean') {
      throw new ApiError(
        400,
        "'add_special_tokens' must be true or false",
        'invalid_request_error',
        'add_special_tokens',
      );
    }
    // The model was trained on documents that end in EOS, without a BOS: there is nothing to add.
    const tokens = this.tokens.encode(b.prompt);
    this.sendJson(res, 200, { tokens, count: tokens.length, max_model_len: this.config.max_seq_len });
  }

  private detokenize(res: ServerResponse, body: unknown): void {
    const b = bodyObject(body);
    const ids = b.tokens;
    const V = this.config.vocab_size;
    if (!Array.isArray(ids) || !ids.every((t) => Number.isInteger(t) && t >= 0 && t < V)) {
      throw new ApiError(
        400,
        `'tokens' must be an array of token ids in [0, ${V})`,
        'invalid_request_error',
        'tokens',
      );
    }
    this.sendJson(res, 200, { prompt: this.tokens.decode(ids as number[]) });
  }

  private async completions(res: ServerResponse, body: unknown): Promise<void> {
    if (this.failure !== undefined)
      throw new ApiError(503, this.failure, 'server_error', null, 'engine_unavailable');
    if (this.info === undefined)
      throw new ApiError(503, 'the model is still loading', 'server_error', null, 'model_loading');
    const started = performance.now();
    const p = parseCompletionRequest(body, this.config.vocab_size);
    const maxLen = this.config.max_seq_len;
    const runs: PromptRun[] = p.prompts.map((prompt) => {
      let ids = typeof prompt === 'string' ? this.tokens.encode(prompt) : prompt;
      // An empty prompt starts a document: the model saw EOS before every document.
      if (ids.length === 0) ids = [this.tokens.eosId];
      if (ids.length + p.maxTokens > maxLen) throw contextLengthError(maxLen, ids.length, p.maxTokens);
      const text = typeof prompt === 'string' ? prompt : this.tokens.decode(ids);
      return { engineId: 0, ids, text, result: undefined, firstTokenAt: undefined, lastTokenAt: [] };
    });
    if (this.inFlight + runs.length > this.opts.parallel + this.opts.maxQueue) {
      res.setHeader('Retry-After', '1');
      throw new ApiError(
        429,
        `the server is busy: ${this.inFlight} requests in flight, the queue holds ${this.opts.maxQueue} beyond ${this.opts.parallel} running; retry shortly`,
        'rate_limit_error',
        null,
        'rate_limit_exceeded',
      );
    }
    const id = `cmpl-${randomBytes(12).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const stream = new CompletionStream(this, res, p, runs, id, created);
    let abandoned = false;
    const cancelAll = () => {
      if (abandoned) return;
      abandoned = true;
      for (const r of runs)
        if (r.result === undefined && r.engineId !== 0) this.toWorker({ type: 'cancel', id: r.engineId });
    };
    // A client that goes away cancels what is still queued or running.
    res.on('close', () => {
      if (!res.writableFinished) cancelAll();
    });
    const done = runs.map(
      (run, pi) =>
        new Promise<void>((resolve, reject) => {
          run.engineId = this.submit(engineRequest(p, run.ids, this.tokens.eosId), {
            onEvent: (e) => {
              this.observe(run, e, started);
              if (p.stream) stream.event(pi, e);
              if (e.type === 'end') {
                run.result = e.result;
                resolve();
              }
            },
            onRejected: reject,
          });
        }),
    );
    try {
      await Promise.all(done);
    } catch (err) {
      cancelAll();
      if (p.stream && res.headersSent) {
        stream.fail(err);
        return;
      }
      throw err;
    }
    this.m.e2e.observe((performance.now() - started) / 1000);
    if (abandoned) return;
    if (p.stream) stream.end();
    else this.sendJson(res, 200, completionBody(this, p, runs, id, created));
  }

  private observe(run: PromptRun, e: GenerationEvent, started: number): void {
    if (e.type !== 'token') return;
    const now = performance.now();
    if (run.firstTokenAt === undefined) {
      run.firstTokenAt = now;
      this.m.ttft.observe((now - started) / 1000);
    }
    const last = run.lastTokenAt[e.choice];
    if (last !== undefined) this.m.itl.observe((now - last) / 1000);
    run.lastTokenAt[e.choice] = now;
  }

  private async readJson(req: IncomingMessage): Promise<unknown> {
    const limit = this.opts.maxBodyBytes;
    const declared = Number(req.headers['content-length'] ?? Number.NaN);
    if (declared > limit) throw tooLarge(limit);
    const chunks: Buffer[] = [];
    let size = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new ApiError(
            408,
            `the request body did not arrive within ${this.opts.bodyTimeoutMs / 1000} s`,
            'invalid_request_error',
            null,
            'timeout',
          ),
        );
      }, this.opts.bodyTimeoutMs);
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > limit) {
          clearTimeout(timer);
          reject(tooLarge(limit));
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => {
        clearTimeout(timer);
        resolve();
      });
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(new ApiError(400, `the request body could not be read: ${err.message}`));
      });
      req.on('aborted', () => {
        clearTimeout(timer);
        reject(new ApiError(400, 'the client aborted the request'));
      });
    });
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '')
      throw new ApiError(
        400,
        'the request body is empty; send a JSON object',
        'invalid_request_error',
        null,
        'invalid_json',
      );
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new ApiError(
        400,
        `the request body is not valid JSON: ${(err as Error).message}`,
        'invalid_request_error',
        null,
        'invalid_json',
      );
    }
  }

  sendJson(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private sendError(res: ServerResponse, err: unknown): void {
    const e =
      err instanceof ApiError
        ? err
        : new ApiError(
            500,
            `internal error: ${err instanceof Error ? err.message : String(err)}`,
            'server_error',
          );
    if (!(err instanceof ApiError)) this.opts.log?.(`glam serve: ${e.message}`);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // After a refused body the connection cannot be reused: the rest of the body may still be coming.
    if (e.status === 413 || e.status === 408) res.setHeader('Connection', 'close');
    this.sendJson(res, e.status, e.body());
    if (e.status === 413 || e.status === 408) res.on('finish', () => res.socket?.destroy());
  }

  /** Token display strings and text offsets (for logprobs). */
  tokenStrings(ids: number[]): string[] {
    return ids.map((id) => this.tokens.tokenString(id));
  }

  get modelName(): string {
    return this.opts.modelName;
  }
}

const ROUTES: Record<string, 'GET' | 'POST'> = {
  '/': 'GET',
  '/health': 'GET',
  '/metrics': 'GET',
  '/v1/models': 'GET',
  '/v1/completions': 'POST',
  '/tokenizer_info': 'GET',
  '/tokenize': 'POST',
  '/detokenize': 'POST',
};

/** KV cache bytes for `sequences` sequences of the whole context (blocks of 16 tokens). */
export function fullContextBytes(cfg: GlamConfig, sequences: number): number {
  const perToken = 2 * cfg.n_layers * cfg.n_heads * cfg.d_head * 4;
  return sequences * Math.ceil(cfg.max_seq_len / 16) * 16 * perToken;
}

function tooLarge(limit: number): ApiError {
  return new ApiError(
    413,
    `the request body exceeds ${limit} bytes`,
    'invalid_request_error',
    null,
    'request_too_large',
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The logprobs object of a list of tokens starting at text offset `offset`. */
function logprobsOf(server: GlamServer, infos: TokenInfo[], offset: number): LogprobsObject {
  const strings = server.tokenStrings(infos.map((i) => i.token));
  const out: LogprobsObject = { tokens: strings, token_logprobs: [], top_logprobs: [], text_offset: [] };
  let at = offset;
  infos.forEach((info, i) => {
    out.token_logprobs.push(info.logprob ?? null);
    if (info.logprob === null || info.logprob === undefined) out.top_logprobs.push(null);
    else {
      // The top alternatives, plus the chosen token itself (vLLM's form).
      const top: Record<string, number> = {};
      for (const t of info.top ?? []) {
        const s = server.tokenStrings([t.token])[0]!;
        if (!(s in top)) top[s] = t.logprob;
      }
      if (!(strings[i]! in top)) top[strings[i]!] = info.logprob;
      out.top_logprobs.push(top);
    }
    out.text_offset.push(at);
    at += strings[i]!.startsWith('bytes:') ? 0 : strings[i]!.length;
  });
  return out;
}

function routingOf(infos: TokenInfo[]): unknown[] {
  return infos.map((i) => i.routing ?? []);
}

/** The non-streamed response. */
function completionBody(
  server: GlamServer,
  p: CompletionParams,
  runs: PromptRun[],
  id: string,
  created: number,
) {
  const choices: CompletionChoice[] = [];
  let promptTokens = 0;
  let completionTokens = 0;
  runs.forEach((run, pi) => {
    const r = run.result!;
    promptTokens += r.promptTokens;
    completionTokens += r.completionTokens;
    for (const c of r.choices) {
      const infos = c.info ?? c.tokens.map((token) => ({ token }));
      let logprobs: LogprobsObject | null = null;
      if (p.logprobs !== undefined) {
        const all = p.echo ? [...(r.prompt ?? []), ...infos] : infos;
        logprobs = logprobsOf(server, all, 0);
      }
      const choice: CompletionChoice = {
        index: pi * p.n + c.index,
        text: (p.echo ? run.text : '') + c.text,
        logprobs,
        finish_reason: c.finishReason,
      };
      if (p.returnTokenIds) {
        choice.prompt_token_ids = run.ids;
        choice.token_ids = c.tokens;
      }
      if (p.routing) choice.glam_routing = routingOf(infos);
      choices.push(choice);
    }
  });
  return {
    id,
    object: 'text_completion',
    created,
    model: server.modelName,
    choices,
    usage: usageOf(promptTokens, completionTokens),
  };
}

/** Server-sent events of a streamed completion, chunk per token, as OpenAI sends them. */
class CompletionStream {
  private started = false;
  /** Choice indices whose finishing chunk was sent. */
  private readonly finished = new Set<number>();
  /** Text offset per choice index (for logprobs). */
  private readonly offsets = new Map<number, number>();

  constructor(
    private readonly server: GlamServer,
    private readonly res: ServerResponse,
    private readonly p: CompletionParams,
    private readonly runs: PromptRun[],
    private readonly id: string,
    private readonly created: number,
  ) {}

  private open(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
    });
  }

  private send(choice: CompletionChoice | null, usage?: ReturnType<typeof usageOf>): void {
    this.open();
    const chunk: Record<string, unknown> = {
      id: this.id,
      object: 'text_completion',
      created: this.created,
      model: this.server.modelName,
      choices: choice === null ? [] : [choice],
    };
    if (this.p.includeUsage) chunk.usage = usage ?? null;
    this.res.write(`data: ${JSON.stringify(chunk)}\n\n`);
  }

  event(pi: number, e: GenerationEvent): void {
    if (this.res.destroyed) return;
    const p = this.p;
    const run = this.runs[pi]!;
    if (e.type === 'prompt') {
      if (!p.echo) return;
      for (let c = 0; c < p.n; c++) {
        const index = pi * p.n + c;
        const choice: CompletionChoice = {
          index,
          text: run.text,
          logprobs: p.logprobs === undefined ? null : logprobsOf(this.server, e.info, 0),
          finish_reason: null,
        };
        if (p.returnTokenIds) {
          choice.prompt_token_ids = run.ids;
          choice.token_ids = [];
        }
        this.offsets.set(index, run.text.length);
        this.send(choice);
      }
      return;
    }
    if (e.type === 'token') {
      const index = pi * p.n + e.choice;
      const offset = this.offsets.get(index) ?? 0;
      const choice: CompletionChoice = {
        index,
        text: e.text,
        logprobs: p.logprobs === undefined ? null : logprobsOf(this.server, [e.info], offset),
        finish_reason: null,
      };
      if (p.returnTokenIds) choice.token_ids = [e.info.token];
      if (p.routing) choice.glam_routing = routingOf([e.info]);
      this.offsets.set(index, offset + e.text.length);
      this.send(choice);
      return;
    }
    if (e.type === 'finish') {
      if (e.finishReason === 'cancelled') return;
      this.finished.add(pi * p.n + e.choice);
      const choice: CompletionChoice = {
        index: pi * p.n + e.choice,
        text: e.text,
        logprobs: null,
        finish_reason: e.finishReason,
      };
      if (p.returnTokenIds) choice.token_ids = [];
      this.send(choice);
      return;
    }
    if (e.type === 'end') {
      // Choices that ended without a finish event (max_tokens 0) still get their finishing chunk.
      for (const c of e.result.choices) {
        const index = pi * p.n + c.index;
        if (c.finishReason === 'cancelled' || this.finished.has(index)) continue;
        this.finished.add(index);
        this.send({ index, text: '', logprobs: null, finish_reason: c.finishReason });
      }
    }
  }

  end(): void {
    if (this.res.destroyed) return;
    if (this.p.includeUsage) {
      let promptTokens = 0;
      let completionTokens = 0;
      for (const r of this.runs) {
        promptTokens += r.result?.promptTokens ?? 0;
        completionTokens += r.result?.completionTokens ?? 0;
      }
      this.send(null, usageOf(promptTokens, completionTokens));
    }
    this.open();
    this.res.end('data: [DONE]\n\n');
  }

  fail(err: unknown): void {
    if (this.res.destroyed) return;
    const e = err instanceof ApiError ? err : new ApiError(500, String(err));
    this.res.write(`data: ${JSON.stringify(e.body())}\n\n`);
    this.res.end('data: [DONE]\n\n');
  }
}
