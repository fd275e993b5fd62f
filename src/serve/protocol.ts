/**
 * The OpenAI completions protocol (as OpenAI and vLLM define /v1/completions): request validation into
 * engine requests, and the response shapes. Every refusal is an ApiError that the server sends as
 * OpenAI's error object {"error": {"message", "type", "param", "code"}}.
 *
 * Accepted fields: model, prompt (string, array of strings, array of token ids, array of arrays),
 * max_tokens (default 16; 0 with echo scores the prompt), temperature, top_p, top_k (vLLM; 0 or -1 =
 * off), seed, stop (string or array), n, logprobs (top-N, 0..20), echo, logit_bias, stream,
 * stream_options.include_usage, vLLM's return_token_ids, stop_token_ids and ignore_eos, and
 * glam_routing (this server's extension: per-token expert routing). Penalties other than 0 and
 * `suffix` are refused (not implemented); other unknown fields are ignored.
 */
import type { GenerationRequest } from '../infer/engine.js';

/** An HTTP error in OpenAI's shape. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = status >= 500 ? 'server_error' : 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function badParam(param: string, message: string): ApiError {
  return new ApiError(400, message, 'invalid_request_error', param, 'invalid_value');
}

/** A validated completion request: one or more prompts, each run with n choices. */
export interface CompletionParams {
  model: string | undefined;
  /** Prompts as given: text (tokenized by the server) or token ids. */
  prompts: (string | number[])[];
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number | undefined;
  stop: string[];
  stopTokenIds: number[];
  ignoreEos: boolean;
  n: number;
  logprobs: number | undefined;
  echo: boolean;
  logitBias: Map<number, number> | undefined;
  stream: boolean;
  includeUsage: boolean;
  returnTokenIds: boolean;
  routing: boolean;
}

const MAX_PROMPTS = 256;
const MAX_N = 64;
const MAX_STOPS = 16;
const MAX_LOGPROBS = 20;

type Body = Record<string, unknown>;

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function optional<T>(body: Body, key: string, read: (v: unknown) => T, dflt: T): T {
  const v = body[key];
  return v === undefined || v === null ? dflt : read(v);
}

function integer(key: string, min: number, max: number): (v: unknown) => number {
  return (v) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw badParam(key, `'${key}' must be an integer in [${min}, ${max}], got ${describe(v)}`);
    }
    return v;
  };
}

function number(key: string, ok: (x: number) => boolean, what: string): (v: unknown) => number {
  return (v) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) {
      throw badParam(key, `'${key}' must be ${what}, got ${describe(v)}`);
    }
    return v;
  };
}

function boolean(key: string): (v: unknown) => boolean {
  return (v) => {
    if (typeof v !== 'boolean') throw badParam(key, `'${key}' must be true or false, got ${describe(v)}`);
    return v;
  };
}

function isTokenArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number');
}

/** The prompts of a request, in OpenAI's four forms. */
function readPrompts(v: unknown, vocab: number): (string | number[])[] {
  const bad = () =>
    badParam(
      'prompt',
      "'prompt' must be a string, an array of strings, an array of token ids or an array of arrays of token ids",
    );
  let prompts: (string | number[])[];
  if (typeof v === 'string') prompts = [v];
  else if (!Array.isArray(v) || v.length === 0) throw bad();
  else if (v.every((x) => typeof x === 'string')) prompts = v as string[];
  else if (isTokenArray(v)) prompts = [v];
  else if (v.every((x) => isTokenArray(x))) prompts = v as number[][];
  else throw bad();
  if (prompts.length > MAX_PROMPTS) {
    throw badParam('prompt', `at most ${MAX_PROMPTS} prompts per request, got ${prompts.length}`);
  }
  prompts.forEach((p, i) => {
    if (typeof p === 'string') return;
    p.forEach((id, j) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) {
        const where = prompts.length > 1 ? `prompt ${i}, position ${j}` : `position ${j}`;
        throw badParam(
          'prompt',
          `${where}: ${describe(id)} is not a token id in the vocabulary [0, ${vocab})`,
        );
      }
    });
  });
  return prompts;
}

function readStop(v: unknown): string[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || !list.every((s) => typeof s === 'string')) {
    throw badParam('stop', `'stop' must be a string or an array of strings, got ${describe(v)}`);
  }
  if (list.length > MAX_STOPS)
    throw badParam('stop', `at most ${MAX_STOPS} stop strings, got ${list.length}`);
  if (list.some((s) => s.length === 0)) throw badParam('stop', 'stop strings must not be empty');
  return list;
}

function readTokenIds(key: string, v: unknown, vocab: number): number[] {
  if (!Array.isArray(v) || !v.every((id) => Number.isInteger(id) && id >= 0 && id < vocab)) {
    throw badParam(key, `'${key}' must be an array of token ids in [0, ${vocab}), got ${describe(v)}`);
  }
  return v as number[];
}

function readLogitBias(v: unknown, vocab: number): Map<number, number> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw badParam(
      'logit_bias',
      `'logit_bias' must be an object mapping token ids to biases, got ${describe(v)}`,
    );
  }
  const out = new Map<number, number>();
  for (const [key, bias] of Object.entries(v)) {
    const id = Number(key);
    if (!/^\d+$/.test(key) || id >= vocab) {
      throw badParam('logit_bias', `logit_bias key ${describe(key)} is not a token id in [0, ${vocab})`);
    }
    if (typeof bias !== 'number' || !Number.isFinite(bias) || bias < -100 || bias > 100) {
      throw badParam(
        'logit_bias',
        `logit_bias of token ${key} must be a number in [-100, 100], got ${describe(bias)}`,
      );
    }
    out.set(id, bias);
  }
  return out;
}

/** A parsed request body as an object, or the 400 every endpoint gives for any other JSON value. */
export function bodyObject(raw: unknown): Body {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ApiError(
      400,
      'the request body must be a JSON object',
      'invalid_request_error',
      null,
      'invalid_json',
    );
  }
  return raw as Body;
}

/** Validates a parsed /v1/completions body. */
export function parseCompletionRequest(raw: unknown, vocab: number): CompletionParams {
  const b = bodyObject(raw);
  if (b.prompt === undefined || b.prompt === null) throw badParam('prompt', "'prompt' is required");
  const model = optional(
    b,
    'model',
    (v) => {
      if (typeof v !== 'string') throw badParam('model', `'model' must be a string, got ${describe(v)}`);
      return v;
    },
    undefined as string | undefined,
  );
  for (const key of ['presence_penalty', 'frequency_penalty', 'repetition_penalty']) {
    const v = b[key];
    const neutral = key === 'repetition_penalty' ? 1 : 0;
    if (v !== undefined && v !== null && v !== neutral) {
      throw badParam(key, `'${key}' is not supported by this server (only ${neutral})`);
    }
  }
  if (b.suffix !== undefined && b.suffix !== null && b.suffix !== '') {
    throw badParam('suffix', "'suffix' is not supported by this server");
  }
  const streamOptions = b.stream_options;
  if (
    streamOptions !== undefined &&
    streamOptions !== null &&
    (typeof streamOptions !== 'object' || Array.isArray(streamOptions))
  ) {
    throw badParam('stream_options', `'stream_options' must be an object, got ${describe(streamOptions)}`);
  }
  const stream = optional(b, 'stream', boolean('stream'), false);
  const includeUsage = optional(
    (streamOptions ?? {}) as Body,
    'include_usage',
    boolean('stream_options.include_usage'),
    false,
  );
  const topK = optional(b, 'top_k', integer('top_k', -1, vocab), 0);
  const n = optional(b, 'n', integer('n', 1, MAX_N), 1);
  const bestOf = optional(b, 'best_of', integer('best_of', 1, MAX_N), n);
  if (bestOf !== n) throw badParam('best_of', "'best_of' other than n is not supported by this server");
  return {
    model,
    prompts: readPrompts(b.prompt, vocab),
    maxTokens: optional(b, 'max_tokens', integer('max_tokens', 0, 1_000_000), 16),
    temperature: optional(
      b,
      'temperature',
      number('temperature', (x) => x >= 0 && x <= 100, 'a number in [0, 100]'),
      1,
    ),
    topP: optional(
      b,
      'top_p',
      number('top_p', (x) => x > 0 && x <= 1, 'a number in (0, 1]'),
      1,
    ),
    topK: Math.max(0, topK),
    seed: optional(
      b,
      'seed',
      integer('seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
      undefined as number | undefined,
    ),
    stop: optional(b, 'stop', readStop, []),
    stopTokenIds: optional(b, 'stop_token_ids', (v) => readTokenIds('stop_token_ids', v, vocab), []),
    ignoreEos: optional(b, 'ignore_eos', boolean('ignore_eos'), false),
    n,
    logprobs: optional(b, 'logprobs', integer('logprobs', 0, MAX_LOGPROBS), undefined as number | undefined),
    echo: optional(b, 'echo', boolean('echo'), false),
    logitBias: optional(
      b,
      'logit_bias',
      (v) => readLogitBias(v, vocab),
      undefined as Map<number, number> | undefined,
    ),
    stream,
    includeUsage,
    returnTokenIds: optional(b, 'return_token_ids', boolean('return_token_ids'), false),
    routing: optional(b, 'glam_routing', boolean('glam_routing'), false),
  };
}

/** vLLM's refusal of a request longer than the context, word for word. */
export function contextLengthError(maxLen: number, promptTokens: number, maxTokens: number): ApiError {
  return new ApiError(
    400,
    `This model's maximum context length is ${maxLen} tokens. However, you requested ${promptTokens + maxTokens} tokens ` +
      `(${promptTokens} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
    'invalid_request_error',
    'max_tokens',
    'context_length_exceeded',
  );
}

/** The engine request of one prompt (token ids) of a completion request. */
export function engineRequest(p: CompletionParams, prompt: number[], eosId: number): GenerationRequest {
  const stopTokens = [...p.stopTokenIds];
  if (!p.ignoreEos) stopTokens.push(eosId);
  return {
    prompt,
    maxTokens: p.maxTokens,
    n: p.n,
    temperature: p.temperature,
    topK: p.topK,
    topP: p.topP,
    ...(p.seed === undefined ? {} : { seed: p.seed }),
    ...(p.logitBias === undefined ? {} : { logitBias: p.logitBias }),
    stopTokens,
    stop: p.stop,
    ...(p.logprobs === undefined ? {} : { logprobs: p.logprobs }),
    echo: p.echo,
    trace: p.routing,
  };
}

/** OpenAI's legacy logprobs object of one choice. */
export interface LogprobsObject {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

export interface CompletionChoice {
  index: number;
  text: string;
  logprobs: LogprobsObject | null;
  finish_reason: string | null;
  prompt_token_ids?: number[];
  token_ids?: number[];
  glam_routing?: unknown[];
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usageOf(promptTokens: number, completionTokens: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}
