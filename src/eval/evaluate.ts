/**
 * GLaM's evaluation protocol over a Scorer: few-shot prompts, rank classification
 * for NLU, generation for NLG, per-example caching, metrics and bootstrap intervals.
 */
import { Rng } from '../util/rng.js';
import { hashKey, type ResultCache } from './cache.js';
import {
  type ChoiceExample,
  demonstration,
  type Example,
  type GenExample,
  type LmExample,
} from './examples.js';
import {
  bootstrap95,
  type ChoiceOutcome,
  choiceOutcome,
  genOutcome,
  type Outcome,
  scoreUnits,
  taskMetricValues,
} from './metrics.js';
import type { ScoreRequest, Scorer } from './scorer.js';
import type { TaskSpec } from './tasks.js';

export interface EvalSettings {
  /** Demonstrations per prompt; 'paper' uses the task's few-shot K from the paper. */
  shots: number | 'paper';
  /** Seed of the demonstration draw. */
  seed: number;
  /** Evaluate only the first N examples. */
  limit?: number;
  /** 1 greedy, k > 1 beam search (GLaM: 4). */
  beam: number;
  /** Longest generated answer, in tokens. */
  maxGenTokens: number;
  /** The model's context window in tokens: demonstrations that do not fit are left out. */
  contextTokens: number;
  /** Token count of a text (fitting demonstrations into the window). */
  countTokens: (text: string) => number;
  /** Examples per scorer call (and cache write). */
  chunk?: number;
}

export interface TaskInput {
  task: TaskSpec;
  examples: Example[];
  /** The train split, when given: the demonstrations come from it. */
  train?: Example[];
  source: string;
  format: string;
}

export interface Prediction {
  task: string;
  id: string;
  /** The context as scored (one per candidate for schema tasks). */
  context: string | string[];
  candidates?: Array<{ text: string; logprob: number; tokens: number }>;
  generated?: string;
  prediction: number | string;
  gold: number | string | string[];
}

export interface TaskResult {
  task: string;
  name: string;
  group: 'NLG' | 'NLU';
  n: number;
  /** Demonstrations asked for, and the mean actually used (fewer where the window is full). */
  shots: number;
  shots_used: number;
  /** Where demonstrations came from. */
  demonstrations: 'train split' | 'evaluated split (excluding the example)' | 'none';
  score: number;
  metric: string;
  metrics: Record<string, number>;
  ci95: [number, number];
  data: { source: string; format: string };
  cached: number;
  seconds: number;
}

export interface EvalHooks {
  onStart?(task: TaskSpec, total: number): void;
  onProgress?(task: TaskSpec, done: number, total: number): void;
}

const SEP = '\n\n';

/** The demonstrations for example i: K drawn without replacement, never the example itself or its group. */
function drawDemos(pool: Example[], ex: Example, k: number, rng: Rng): Example[] {
  const group = (e: Example) => (e.type === 'lm' ? undefined : e.group);
  const ok = (e: Example) => e !== ex && (group(ex) === undefined || group(e) !== group(ex));
  const picked: Example[] = [];
  const seen = new Set<number>();
  // Rejection sampling while the pool is large; an explicit shuffle when it is small.
  if (pool.length > 4 * (k + 1)) {
    for (let tries = 0; picked.length < k && tries < 20 * (k + 1); tries++) {
      const j = rng.int(pool.length);
      if (seen.has(j)) continue;
      seen.add(j);
      if (ok(pool[j]!)) picked.push(pool[j]!);
    }
    if (picked.length === k) return picked;
    picked.length = 0;
  }
  return rng.shuffle(pool.filter(ok)).slice(0, k);
}

/** The scoring texts of an example after its demonstrations. */
function withPrefix(ex: Example, prefix: string): Example {
  if (prefix === '') return ex;
  if (ex.type === 'choice') {
    const context = typeof ex.context === 'string' ? prefix + ex.context : ex.context.map((c) => prefix + c);
    return { ...ex, context };
  }
  return { ...ex, context: prefix + ex.context };
}

function longestContinuation(ex: Example): string {
  if (ex.type === 'choice') return ex.continuations.reduce((a, b) => (b.length > a.length ? b : a), '');
  if (ex.type === 'lm') return ex.continuation;
  return '';
}

function contextsOf(ex: Example): string[] {
  return ex.type === 'choice' && typeof ex.context !== 'string' ? ex.context : [ex.context as string];
}

/** Evaluate one task. */
export async function evaluateTask(
  input: TaskInput,
  scorer: Scorer,
  settings: EvalSettings,
  cache?: ResultCache,
  hooks: EvalHooks = {},
): Promise<{ result: TaskResult; predictions: Prediction[] }> {
  const t0 = performance.now();
  const { task } = input;
  const all = input.examples;
  const examples = settings.limit !== undefined ? all.slice(0, settings.limit) : all;
  const k = settings.shots === 'paper' ? task.fewShot : settings.shots;
  const pool = input.train ?? all;
  const genTokens = task.group === 'NLG' && task.id !== 'lambada' ? settings.maxGenTokens : 0;

  // Few-shot prompts, with as many demonstrations as fit the window.
  const demoTokens = new Map<Example, number>();
  const count = (e: Example) => {
    let n = demoTokens.get(e);
    if (n === undefined) {
      n = settings.countTokens(demonstration(e)) + 1;
      demoTokens.set(e, n);
    }
    return n;
  };
  let shotsUsed = 0;
  const prompted = examples.map((ex, i) => {
    if (k === 0) return ex;
    const rng = new Rng(settings.seed * 1_000_003 + i);
    const demos = drawDemos(pool, ex, k, rng);
    const own =
      Math.max(...contextsOf(ex).map((c) => settings.countTokens(c))) +
      settings.countTokens(longestContinuation(ex)) +
      genTokens +
      1;
    let total = own + demos.reduce((s, d) => s + count(d), 0);
    while (demos.length > 0 && total > settings.contextTokens) total -= count(demos.pop()!);
    shotsUsed += demos.length;
    return withPrefix(ex, demos.map((d) => demonstration(d) + SEP).join(''));
  });

  hooks.onStart?.(task, examples.length);
  const outcomes = new Array<Outcome>(examples.length);
  let cached = 0;
  let done = 0;
  const keyOf = (ex: Example) =>
    hashKey(
      ex.type === 'gen'
        ? { gen: ex.context, beam: settings.beam, max: settings.maxGenTokens, stop: ['\n'] }
        : ex.type === 'lm'
          ? { lm: ex.context, cont: ex.continuation }
          : { choice: ex.context, conts: ex.continuations },
    );
  const todo: number[] = [];
  const raw = new Array<unknown>(examples.length);
  prompted.forEach((ex, i) => {
    const hit = cache?.get(keyOf(ex));
    if (hit !== undefined) {
      raw[i] = hit;
      cached++;
    } else todo.push(i);
  });
  done = cached;
  hooks.onProgress?.(task, done, examples.length);

  const chunk = settings.chunk ?? 256;
  for (let c = 0; c < todo.length; c += chunk) {
    const ids = todo.slice(c, c + chunk);
    const exs = ids.map((i) => prompted[i]!);
    const progress = (n: number) => {
      done += n;
      hooks.onProgress?.(task, done, examples.length);
    };
    const values = await scoreChunk(exs, scorer, settings, progress);
    ids.forEach((i, j) => {
      raw[i] = values[j];
      cache?.put(keyOf(prompted[i]!), values[j]);
    });
  }

  prompted.forEach((ex, i) => {
    outcomes[i] = toOutcome(task, ex, raw[i]);
  });
  const metrics = taskMetricValues(task, prompted, outcomes);
  const { units, score } = scoreUnits(task, prompted, outcomes);
  const total = units.reduce(
    (s, u) => s.map((x, j) => x + u[j]!),
    new Array<number>(units[0]?.length ?? 0).fill(0),
  );
  const result: TaskResult = {
    task: task.id,
    name: task.name,
    group: task.group,
    n: examples.length,
    shots: k,
    shots_used: examples.length === 0 ? 0 : k === 0 ? 0 : shotsUsed / examples.length,
    demonstrations:
      k === 0
        ? 'none'
        : input.train !== undefined
          ? 'train split'
          : 'evaluated split (excluding the example)',
    score: units.length > 0 ? score(total) : 0,
    metric: task.metric,
    metrics,
    ci95: bootstrap95(units, score),
    data: { source: input.source, format: input.format },
    cached,
    seconds: (performance.now() - t0) / 1000,
  };
  const predictions = prompted.map((ex, i) => predictionOf(task, ex, outcomes[i]!));
  return { result, predictions };
}

/** Raw scorer results of a chunk, in a form that can be cached (JSON). */
async function scoreChunk(
  exs: Example[],
  scorer: Scorer,
  settings: EvalSettings,
  progress: (n: number) => void,
): Promise<unknown[]> {
  const gens = exs.filter((e): e is GenExample => e.type === 'gen');
  if (gens.length === exs.length) {
    const texts = await scorer.generate(
      gens.map((e) => ({
        context: e.context,
        stop: ['\n'],
        maxTokens: settings.maxGenTokens,
        beam: settings.beam,
      })),
      progress,
    );
    return texts.map((text) => ({ text }));
  }
  // Requests: one per shared context; schema examples one per candidate context.
  const requests: ScoreRequest[] = [];
  const spans: Array<{ first: number; count: number }> = [];
  for (const ex of exs as Array<ChoiceExample | LmExample>) {
    const first = requests.length;
    if (ex.type === 'lm') requests.push({ context: ex.context, continuations: [ex.continuation] });
    else if (typeof ex.context === 'string')
      requests.push({ context: ex.context, continuations: ex.continuations });
    else {
      ex.context.forEach((c, j) => {
        requests.push({ context: c, continuations: [ex.continuations[j]!] });
      });
    }
    spans.push({ first, count: requests.length - first });
  }
  // Progress counts examples: an example is done when its last request is.
  const lastOf = new Set(spans.map((s) => s.first + s.count - 1));
  let seen = 0;
  const scores = await scorer.loglikelihood(requests, (n) => {
    for (let j = 0; j < n; j++) if (lastOf.has(seen++)) progress(1);
  });
  return spans.map(({ first, count }) => {
    const flat = scores.slice(first, first + count).flat();
    return {
      logprobs: flat.map((s) => s.logprob),
      tokens: flat.map((s) => s.tokens),
      greedy: flat.map((s) => s.greedy),
    };
  });
}

function toOutcome(task: TaskSpec, ex: Example, raw: unknown): Outcome {
  const r = raw as { text?: string; logprobs?: number[]; tokens?: number[]; greedy?: boolean[] };
  if (ex.type === 'gen') return genOutcome(ex, r.text ?? '');
  if (ex.type === 'lm')
    return { type: 'lm', logprob: r.logprobs![0]!, tokens: r.tokens![0]!, greedy: r.greedy![0]! };
  return choiceOutcome(ex, r.logprobs!, r.tokens!, task.unnormalised === true);
}

function predictionOf(task: TaskSpec, ex: Example, o: Outcome): Prediction {
  const base = { task: task.id, id: ex.id, context: ex.context };
  if (ex.type === 'gen' && o.type === 'gen') {
    return { ...base, generated: o.text, prediction: o.text, gold: ex.answers };
  }
  if (ex.type === 'lm' && o.type === 'lm') {
    return {
      ...base,
      candidates: [{ text: ex.continuation, logprob: o.logprob, tokens: o.tokens }],
      prediction: o.greedy ? 1 : 0,
      gold: ex.continuation,
    };
  }
  const c = ex as ChoiceExample;
  const co = o as ChoiceOutcome;
  return {
    ...base,
    candidates: c.continuations.map((text, j) => ({ text, logprob: co.logprobs[j]!, tokens: co.tokens[j]! })),
    prediction: co.pred,
    gold: c.gold,
  };
}

/** Mean scores by group (NLG, NLU) and overall, over the tasks evaluated. */
export function averages(results: TaskResult[]): Record<string, number> {
  const avg = (rs: TaskResult[]) => rs.reduce((s, r) => s + r.score, 0) / rs.length;
  const out: Record<string, number> = {};
  const nlg = results.filter((r) => r.group === 'NLG');
  const nlu = results.filter((r) => r.group === 'NLU');
  if (nlg.length > 0) out.NLG = avg(nlg);
  if (nlu.length > 0) out.NLU = avg(nlu);
  if (results.length > 0) out.overall = avg(results);
  return out;
}
