/**
 * Per-example outcomes and their aggregation into a task's metrics (0-100), with a
 * percentile-bootstrap 95% interval of the task's score.
 */
import { Rng } from '../util/rng.js';
import { dropMax, exactMatch, maxOverGolds, normalizeAnswer, tokenF1 } from './answers.js';
import { type ChoiceExample, type Example, type GenExample, NO_ANSWER } from './examples.js';
import type { TaskSpec } from './tasks.js';

export interface ChoiceOutcome {
  type: 'choice';
  logprobs: number[];
  tokens: number[];
  /** GLaM's prediction: log-likelihood per token (unnormalised for COPA and ReCoRD). */
  pred: number;
  /** lm-evaluation-harness's acc: unnormalised log-likelihood. */
  predLm: number;
  /** lm-evaluation-harness's acc_norm: log-likelihood per character of the continuation. */
  predNorm: number;
}

export interface LmOutcome {
  type: 'lm';
  logprob: number;
  tokens: number;
  greedy: boolean;
}

export interface GenOutcome {
  type: 'gen';
  /** The generated answer, cut at the stop string and trimmed. */
  text: string;
  em: number;
  f1: number;
}

export type Outcome = ChoiceOutcome | LmOutcome | GenOutcome;

/** Index of the largest value; exact ties go to the lowest index. */
export function argmax(xs: number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

export function choiceOutcome(
  ex: ChoiceExample,
  logprobs: number[],
  tokens: number[],
  unnormalised: boolean,
): ChoiceOutcome {
  const perToken = logprobs.map((lp, i) => lp / Math.max(1, tokens[i]!));
  const perChar = logprobs.map((lp, i) => lp / Math.max(1, ex.continuations[i]!.length));
  return {
    type: 'choice',
    logprobs,
    tokens,
    pred: argmax(unnormalised ? logprobs : perToken),
    predLm: argmax(logprobs),
    predNorm: argmax(perChar),
  };
}

/** A generated answer scored against the golds: "unanswerable" (or nothing) predicts no answer. */
export function genOutcome(ex: GenExample, generated: string): GenOutcome {
  const text = generated.trim();
  const answer = normalizeAnswer(text) === NO_ANSWER ? '' : text;
  if (ex.drop !== undefined) {
    const s = dropMax(answer, ex.drop);
    return { type: 'gen', text, em: s.em, f1: s.f1 };
  }
  return {
    type: 'gen',
    text,
    em: maxOverGolds(exactMatch, answer, ex.answers),
    f1: maxOverGolds(tokenF1, answer, ex.answers),
  };
}

/** ReCoRD: EM and F1 of the predicted entity, max over the gold answers. */
function recordScores(ex: ChoiceExample, pred: number): { em: number; f1: number } {
  const entity = ex.entities?.[pred] ?? '';
  const golds = ex.answers ?? [];
  return { em: maxOverGolds(exactMatch, entity, golds), f1: maxOverGolds(tokenF1, entity, golds) };
}

const mean = (xs: number[]) => (xs.length === 0 ? 0 : xs.reduce((s, x) => s + x, 0) / xs.length);

/** Macro-averaged F1 over classes 0..k-1 (CB). */
export function macroF1(preds: number[], golds: number[], k: number): number {
  let sum = 0;
  for (let c = 0; c < k; c++) {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    preds.forEach((p, i) => {
      if (p === c && golds[i] === c) tp++;
      else if (p === c) fp++;
      else if (golds[i] === c) fn++;
    });
    sum += tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
  }
  return sum / k;
}

/**
 * Bootstrap units of a task's score: each unit a vector of sums, the score a
 * function of the units' total. Examples are the units, except for MultiRC, whose
 * questions are (F1a over answer options, from true/false positive and negative counts).
 */
export function scoreUnits(
  task: TaskSpec,
  examples: Example[],
  outcomes: Outcome[],
): { units: number[][]; score: (sum: number[]) => number } {
  if (task.metric === 'f1a') {
    const groups = new Map<string, number[]>();
    examples.forEach((ex, i) => {
      const o = outcomes[i] as ChoiceOutcome;
      const g = (ex as ChoiceExample).group ?? ex.id;
      const u = groups.get(g) ?? [0, 0, 0];
      const gold = (ex as ChoiceExample).gold;
      if (o.pred === 1 && gold === 1) u[0]!++;
      else if (o.pred === 1) u[1]!++;
      else if (gold === 1) u[2]!++;
      groups.set(g, u);
    });
    return {
      units: [...groups.values()],
      score: ([tp, fp, fn]) => (tp! === 0 ? 0 : (100 * 2 * tp!) / (2 * tp! + fp! + fn!)),
    };
  }
  const value = (ex: Example, o: Outcome): number => {
    if (o.type === 'lm') return o.greedy ? 1 : 0;
    if (o.type === 'gen') return task.metric === 'em' ? o.em : o.f1;
    const c = ex as ChoiceExample;
    if (task.id === 'record') return recordScores(c, o.pred).em;
    return o.pred === c.gold ? 1 : 0;
  };
  return {
    units: examples.map((ex, i) => [value(ex, outcomes[i]!), 1]),
    score: ([s, n]) => (n! === 0 ? 0 : (100 * s!) / n!),
  };
}

/** Percentile bootstrap (resampling units with replacement) of score; [2.5%, 97.5%]. */
export function bootstrap95(
  units: number[][],
  score: (sum: number[]) => number,
  rounds = 1000,
  seed = 1234,
): [number, number] {
  if (units.length === 0) return [0, 0];
  const rng = new Rng(seed);
  const width = units[0]!.length;
  const scores: number[] = [];
  const sum = new Array<number>(width);
  for (let r = 0; r < rounds; r++) {
    sum.fill(0);
    for (let i = 0; i < units.length; i++) {
      const u = units[rng.int(units.length)]!;
      for (let k = 0; k < width; k++) sum[k]! += u[k]!;
    }
    scores.push(score(sum));
  }
  scores.sort((a, b) => a - b);
  const at = (q: number) => scores[Math.min(rounds - 1, Math.max(0, Math.round(q * (rounds - 1))))]!;
  return [at(0.025), at(0.975)];
}

/** Every metric of a task (0-100, perplexity as is), computed from all its examples. */
export function taskMetricValues(
  task: TaskSpec,
  examples: Example[],
  outcomes: Outcome[],
): Record<string, number> {
  const pct = (xs: number[]) => 100 * mean(xs);
  if (outcomes.length === 0) return {};
  const first = outcomes[0]!;
  if (first.type === 'lm') {
    const lm = outcomes as LmOutcome[];
    return {
      acc: pct(lm.map((o) => (o.greedy ? 1 : 0))),
      ppl: Math.exp(-mean(lm.map((o) => o.logprob))),
    };
  }
  if (first.type === 'gen') {
    const gen = outcomes as GenOutcome[];
    return { em: pct(gen.map((o) => o.em)), f1: pct(gen.map((o) => o.f1)) };
  }
  const ch = outcomes as ChoiceOutcome[];
  const exs = examples as ChoiceExample[];
  const hit = (pick: (o: ChoiceOutcome) => number) =>
    pct(ch.map((o, i) => (pick(o) === exs[i]!.gold ? 1 : 0)));
  if (task.id === 'record') {
    const s = ch.map((o, i) => recordScores(exs[i]!, o.pred));
    return { em: pct(s.map((x) => x.em)), f1: pct(s.map((x) => x.f1)) };
  }
  const out: Record<string, number> = {
    acc: hit((o) => o.pred),
    lmeval_acc: hit((o) => o.predLm),
    lmeval_acc_norm: hit((o) => o.predNorm),
  };
  if (task.id === 'cb') {
    out.f1 =
      100 *
      macroF1(
        ch.map((o) => o.pred),
        exs.map((e) => e.gold),
        3,
      );
  }
  if (task.metric === 'f1a') {
    const { units, score } = scoreUnits(task, examples, outcomes);
    const total = units.reduce((s, u) => s.map((x, k) => x + u[k]!), [0, 0, 0]);
    out.f1a = score(total);
    // Exact match: every answer option of a question judged right.
    const groups = new Map<string, boolean>();
    ch.forEach((o, i) => {
      const g = exs[i]!.group ?? exs[i]!.id;
      groups.set(g, (groups.get(g) ?? true) && o.pred === exs[i]!.gold);
    });
    out.em = pct([...groups.values()].map((b) => (b ? 1 : 0)));
  }
  return out;
}
