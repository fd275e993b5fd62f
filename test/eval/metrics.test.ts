/** Answer normalisation, EM/F1, DROP's F1, the assignment solver, aggregation and the bootstrap. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  dropMax,
  dropNormalize,
  dropScores,
  exactMatch,
  maxAssignment,
  maxOverGolds,
  normalizeAnswer,
  tokenF1,
} from '../../src/eval/answers.js';
import type { ChoiceExample, Example, GenExample } from '../../src/eval/examples.js';
import {
  argmax,
  bootstrap95,
  choiceOutcome,
  genOutcome,
  macroF1,
  type Outcome,
  scoreUnits,
  taskMetricValues,
} from '../../src/eval/metrics.js';
import { getTask } from '../../src/eval/tasks.js';
import { Rng } from '../../src/util/rng.js';

test('SQuAD normalisation: case, punctuation, articles, spaces', () => {
  assert.equal(normalizeAnswer('  The  Eiffel-Tower, Paris! '), 'eiffeltower paris');
  assert.equal(normalizeAnswer('An apple a day'), 'apple day');
  assert.equal(normalizeAnswer('theatre'), 'theatre', 'articles only as whole words');
  assert.equal(exactMatch('the Sun', 'Sun.'), 1);
  assert.equal(exactMatch('Sun', 'Moon'), 0);
});

test('token F1 counts repeated words once each and treats two empty answers as a match', () => {
  assert.equal(tokenF1('red red car', 'red car'), (2 * (2 / 3) * 1) / (2 / 3 + 1));
  assert.equal(tokenF1('blue', 'red car'), 0);
  assert.equal(tokenF1('', ''), 1);
  assert.equal(tokenF1('the', 'a'), 1, 'both normalise to nothing');
  assert.equal(tokenF1('car', ''), 0);
  assert.equal(maxOverGolds(tokenF1, 'big red car', ['car', 'red car']), 0.8);
  assert.equal(maxOverGolds(exactMatch, '', []), 1, 'no gold answers: only no answer matches');
  assert.equal(maxOverGolds(exactMatch, 'something', []), 0);
});

test('generated answers: trimmed, "unanswerable" predicts no answer', () => {
  const ex: GenExample = { type: 'gen', id: '0', context: 'c', answers: [] };
  assert.equal(genOutcome(ex, ' unanswerable').em, 1);
  assert.equal(genOutcome(ex, 'Paris').f1, 0);
  const ex2: GenExample = { type: 'gen', id: '1', context: 'c', answers: ['Paris', 'City of Paris'] };
  const o = genOutcome(ex2, ' paris ');
  assert.deepEqual([o.text, o.em, o.f1], ['paris', 1, 1]);
});

test('DROP: numbers compared as numbers, spans aligned one to one, a wrong number scores 0', () => {
  assert.equal(dropNormalize('The 2.0 Bears-Team'), '2 bears team');
  assert.deepEqual(dropScores(['21'], ['21.0']), { em: 1, f1: 1 });
  assert.deepEqual(
    dropScores(['22 points'], ['21 points']),
    { em: 0, f1: 0 },
    'number mismatch zeroes the bag',
  );
  assert.deepEqual(dropScores(['Jones', 'Smith'], ['Smith', 'Jones']), { em: 1, f1: 1 });
  // One predicted span against two gold spans: F1 1 for the matched one, 0 for the other, mean over 2.
  assert.deepEqual(dropScores(['Smith'], ['Smith', 'Jones']), { em: 0, f1: 0.5 });
  assert.deepEqual(dropScores(['John Smith'], ['Smith']), { em: 0, f1: 0.67 });
  assert.deepEqual(dropMax('21', [{ spans: ['20'] }, { spans: ['21'] }]), { em: 1, f1: 1 });
});

test('the assignment solver finds the maximum-weight matching (brute force on random matrices)', () => {
  const rng = new Rng(3);
  const perms = (n: number): number[][] =>
    n === 0
      ? [[]]
      : perms(n - 1).flatMap((p) =>
          Array.from({ length: n }, (_, k) => [...p.slice(0, k), n - 1, ...p.slice(k)]),
        );
  for (let trial = 0; trial < 40; trial++) {
    const rows = 1 + rng.int(4);
    const cols = 1 + rng.int(4);
    const w = Array.from({ length: rows }, () =>
      Array.from({ length: cols }, () => Math.round(rng.uniform() * 10) / 10),
    );
    const n = Math.max(rows, cols);
    let best = 0;
    for (const p of perms(n)) {
      let s = 0;
      for (let i = 0; i < rows; i++) if (p[i]! < cols) s += w[i]![p[i]!]!;
      best = Math.max(best, s);
    }
    const a = maxAssignment(w);
    assert.equal(new Set(a.filter((j) => j >= 0)).size, a.filter((j) => j >= 0).length, 'one-to-one');
    const got = a.reduce((s, j, i) => s + (j >= 0 ? w[i]![j]! : 0), 0);
    assert.ok(Math.abs(got - best) < 1e-9, `trial ${trial}: ${got} vs ${best}`);
  }
});

test('rank classification: per-token (GLaM), unnormalised and per-character predictions; ties to the first', () => {
  const ex: ChoiceExample = {
    type: 'choice',
    id: '0',
    context: 'c',
    continuations: [' ab', ' abcdefgh'],
    gold: 1,
  };
  // logprobs -2 (1 token) and -3 (3 tokens): per token -2 vs -1; per char -2/3 vs -3/9.
  const o = choiceOutcome(ex, [-2, -3], [1, 3], false);
  assert.deepEqual([o.pred, o.predLm, o.predNorm], [1, 0, 1]);
  assert.equal(choiceOutcome(ex, [-2, -3], [1, 3], true).pred, 0, 'unnormalised (COPA, ReCoRD)');
  assert.equal(argmax([1, 3, 3]), 1);
});

test('task metrics: accuracy, CB macro F1, MultiRC F1a and exact match, ReCoRD max over answers', () => {
  const mk = (gold: number, group?: string): ChoiceExample => ({
    type: 'choice',
    id: 'x',
    context: 'c',
    continuations: [' no', ' yes'],
    gold,
    group,
  });
  const out = (pred: number): Outcome => ({
    type: 'choice',
    logprobs: [0, 0],
    tokens: [1, 1],
    pred,
    predLm: pred,
    predNorm: pred,
  });
  // MultiRC: question A has options gold [1, 0], predicted [1, 1]; question B gold [1], predicted [0].
  const exs = [mk(1, 'A'), mk(0, 'A'), mk(1, 'B')];
  const outs = [out(1), out(1), out(0)];
  const m = taskMetricValues(getTask('multirc'), exs, outs);
  // tp 1, fp 1, fn 1: F1a = 2/(2+1+1) = 0.5; no question fully right.
  assert.equal(m.f1a, 50);
  assert.equal(m.em, 0);
  assert.ok(Math.abs(m.acc! - 100 / 3) < 1e-9);
  assert.equal(macroF1([0, 1, 2, 2], [0, 1, 2, 1], 3), (1 + 2 / 3 + 2 / 3) / 3);
  const rec: ChoiceExample = { ...mk(0), entities: ['Alice', 'Bob'], answers: ['Bob', 'bob.'] };
  const r = taskMetricValues(getTask('record'), [rec], [out(1)]);
  assert.deepEqual(r, { em: 100, f1: 100 });
});

test('scores and their bootstrap interval: a constant score has a zero-width interval; an interval covers the mean', () => {
  const task = getTask('piqa');
  const exs: Example[] = Array.from({ length: 200 }, (_, i) => ({
    type: 'choice',
    id: String(i),
    context: 'c',
    continuations: [' a', ' b'],
    gold: i % 2,
  }));
  const outs: Outcome[] = exs.map((_, i) => ({
    type: 'choice',
    logprobs: [0, 0],
    tokens: [1, 1],
    pred: i % 4 === 0 ? 1 : 0,
    predLm: 0,
    predNorm: 0,
  }));
  const { units, score } = scoreUnits(task, exs, outs);
  const total = units.reduce((s, u) => [s[0]! + u[0]!, s[1]! + u[1]!], [0, 0]);
  const acc = score(total);
  assert.equal(acc, taskMetricValues(task, exs, outs).acc);
  const [lo, hi] = bootstrap95(units, score);
  assert.ok(lo < acc && acc < hi && hi - lo < 20, `[${lo}, ${hi}] around ${acc}`);
  const same = bootstrap95(
    units.map(() => [1, 1]),
    score,
  );
  assert.deepEqual(same, [100, 100]);
});
