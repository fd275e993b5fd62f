/**
 * The protocol over a scripted Scorer: what is asked of the scorer (contexts with
 * demonstrations, candidates, generation settings), how answers become metrics,
 * the demonstration draw, fitting to the window, the cache and predictions.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ResultCache } from '../../src/eval/cache.js';
import { averages, type EvalSettings, evaluateTask } from '../../src/eval/evaluate.js';
import type { ChoiceExample, Example, GenExample } from '../../src/eval/examples.js';
import {
  type ContinuationScore,
  emptyStats,
  type GenerateRequest,
  type ScoreRequest,
  type Scorer,
} from '../../src/eval/scorer.js';
import { getTask } from '../../src/eval/tasks.js';

/** A scorer whose log-likelihood of a continuation is -(its length), minus 10 unless it contains "good". */
class ScriptedScorer implements Scorer {
  readonly description = 'scripted';
  readonly modelId = 'scripted';
  readonly stats = emptyStats();
  scored: ScoreRequest[] = [];
  generated: GenerateRequest[] = [];

  async loglikelihood(
    requests: ScoreRequest[],
    onProgress?: (n: number) => void,
  ): Promise<ContinuationScore[][]> {
    this.scored.push(...requests);
    const out = requests.map((r) =>
      r.continuations.map((c) => ({
        logprob: -c.length - (c.includes('good') ? 0 : 10),
        tokens: c.split(' ').length,
        greedy: c.includes('good'),
      })),
    );
    onProgress?.(requests.length);
    return out;
  }

  async generate(requests: GenerateRequest[], onProgress?: (n: number) => void): Promise<string[]> {
    this.generated.push(...requests);
    onProgress?.(requests.length);
    return requests.map((r) => (r.context.endsWith('capital?\nA:') ? ' Paris\n' : ' no idea'));
  }
}

const settings = (o: Partial<EvalSettings> = {}): EvalSettings => ({
  shots: 0,
  seed: 0,
  beam: 1,
  maxGenTokens: 16,
  contextTokens: 10_000,
  countTokens: (t) => t.length,
  ...o,
});

const mc = (i: number, gold: number): ChoiceExample => ({
  type: 'choice',
  id: String(i),
  context: `Q${i}:`,
  continuations: [' bad', ' good'].map((c, j) => (j === gold ? ' good' : c === ' good' ? ' bad' : c)),
  gold,
});

test('rank classification asks for each shared context once, with every candidate; predictions follow', async () => {
  const examples = [mc(0, 1), mc(1, 0), mc(2, 1)];
  const s = new ScriptedScorer();
  const { result, predictions } = await evaluateTask(
    { task: getTask('piqa'), examples, source: 'x', format: 'f' },
    s,
    settings(),
  );
  assert.deepEqual(
    s.scored.map((r) => r.context),
    ['Q0:', 'Q1:', 'Q2:'],
  );
  assert.deepEqual(s.scored[1]!.continuations, [' good', ' bad']);
  assert.equal(result.n, 3);
  assert.equal(result.score, 100);
  assert.equal(result.metrics.lmeval_acc, 100);
  assert.deepEqual(result.ci95, [100, 100]);
  assert.equal(result.demonstrations, 'none');
  assert.equal(predictions[1]!.prediction, 0);
  assert.equal(predictions[1]!.gold, 0);
  assert.deepEqual(predictions[1]!.candidates![0], { text: ' good', logprob: -5, tokens: 2 });
});

test('schema examples ask one request per candidate context', async () => {
  const ex: ChoiceExample = {
    type: 'choice',
    id: '0',
    context: ['A good', 'A bad'],
    continuations: [' end', ' end'],
    gold: 0,
  };
  const s = new ScriptedScorer();
  await evaluateTask(
    { task: getTask('winogrande'), examples: [ex], source: 'x', format: 'f' },
    s,
    settings(),
  );
  assert.deepEqual(
    s.scored.map((r) => [r.context, r.continuations]),
    [
      ['A good', [' end']],
      ['A bad', [' end']],
    ],
  );
});

test('few-shot: K demonstrations with gold answers, blank-line separated, never the example itself, seeded', async () => {
  const examples = Array.from({ length: 6 }, (_, i) => mc(i, i % 2));
  const run = async (seed: number, train?: Example[]) => {
    const s = new ScriptedScorer();
    const { result } = await evaluateTask(
      { task: getTask('piqa'), examples, train, source: 'x', format: 'f' },
      s,
      settings({ shots: 3, seed }),
    );
    return { s, result };
  };
  const { s, result } = await run(0);
  assert.equal(result.shots, 3);
  assert.equal(result.shots_used, 3);
  assert.equal(result.demonstrations, 'evaluated split (excluding the example)');
  s.scored.forEach((r, i) => {
    const parts = r.context.split('\n\n');
    assert.equal(parts.length, 4);
    assert.equal(parts[3], `Q${i}:`);
    for (const d of parts.slice(0, 3)) {
      assert.match(d, /^Q\d: good$/, 'a demonstration is the context with its gold answer');
      assert.notEqual(d, `Q${i}: good`);
    }
    assert.equal(new Set(parts.slice(0, 3)).size, 3);
  });
  const again = await run(0);
  assert.deepEqual(
    again.s.scored.map((r) => r.context),
    s.scored.map((r) => r.context),
  );
  const other = await run(1);
  assert.notDeepEqual(
    other.s.scored.map((r) => r.context),
    s.scored.map((r) => r.context),
  );
  const train = [mc(90, 1), mc(91, 0), mc(92, 1)];
  const t = await run(0, train);
  assert.equal(t.result.demonstrations, 'train split');
  for (const r of t.s.scored) assert.match(r.context, /^(Q9\d: good\n\n){3}Q\d:$/);
});

test('demonstrations that do not fit the context window are left out', async () => {
  const examples = Array.from({ length: 5 }, (_, i) => mc(i, 1));
  const s = new ScriptedScorer();
  // Each demonstration "Q1: good" counts 8 + 1; the example 3 + 5 + 1 = 9: room for one demonstration in 20.
  const { result } = await evaluateTask(
    { task: getTask('piqa'), examples, source: 'x', format: 'f' },
    s,
    settings({ shots: 4, contextTokens: 20 }),
  );
  assert.equal(result.shots_used, 1);
  for (const r of s.scored) assert.equal(r.context.split('\n\n').length, 2);
});

test('generation: stop at a newline, settings passed through, EM/F1 against the golds; LAMBADA by greedy match', async () => {
  const ex: GenExample[] = [
    { type: 'gen', id: '0', context: 'Q: capital?\nA:', answers: ['Paris'] },
    { type: 'gen', id: '1', context: 'Q: other?\nA:', answers: ['yes'] },
  ];
  const s = new ScriptedScorer();
  const { result, predictions } = await evaluateTask(
    { task: getTask('nq'), examples: ex, source: 'x', format: 'f' },
    s,
    settings({ beam: 4, maxGenTokens: 7 }),
  );
  assert.deepEqual(s.generated[0], { context: 'Q: capital?\nA:', stop: ['\n'], maxTokens: 7, beam: 4 });
  assert.equal(result.score, 50);
  assert.equal(predictions[0]!.generated, 'Paris');
  const lm: Example[] = [
    { type: 'lm', id: '0', context: 'a', continuation: ' good' },
    { type: 'lm', id: '1', context: 'b', continuation: ' bad' },
  ];
  const l = await evaluateTask(
    { task: getTask('lambada'), examples: lm, source: 'x', format: 'f' },
    new ScriptedScorer(),
    settings(),
  );
  assert.equal(l.result.score, 50);
  assert.ok(Math.abs(l.result.metrics.ppl! - Math.exp((5 + 14) / 2)) < 1e-9);
});

test('results are cached per example: a second run asks the scorer nothing and reports the same', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'glam-eval-cache-'));
  try {
    const examples = Array.from({ length: 10 }, (_, i) => mc(i, i % 2));
    const input = { task: getTask('piqa'), examples, source: 'x', format: 'f' };
    const first = new ResultCache(dir, 'm', 'piqa');
    const s1 = new ScriptedScorer();
    const r1 = await evaluateTask(input, s1, settings({ limit: 4, chunk: 2 }), first);
    first.close();
    assert.equal(s1.scored.length, 4);
    const second = new ResultCache(dir, 'm', 'piqa');
    assert.equal(second.size, 4);
    const s2 = new ScriptedScorer();
    const r2 = await evaluateTask(input, s2, settings({ chunk: 2 }), second);
    second.close();
    assert.equal(s2.scored.length, 6, 'only the examples not yet cached');
    assert.equal(r2.result.cached, 4);
    assert.equal(r2.result.n, 10);
    assert.equal(r1.result.score, 100);
    // A different model never reads this model's results.
    assert.equal(new ResultCache(dir, 'other', 'piqa').size, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('averages by group and overall', () => {
  const r = (group: 'NLG' | 'NLU', score: number) =>
    ({ group, score }) as Parameters<typeof averages>[0][number];
  assert.deepEqual(averages([r('NLG', 10), r('NLU', 50), r('NLU', 70)]), {
    NLG: 10,
    NLU: 60,
    overall: 130 / 3,
  });
});
