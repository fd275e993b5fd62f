/** `glam eval` through the real CLI: --list, --json, the cache across runs, and bad input. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { evalFixture, repoRoot } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'glam-eval-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function glam(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(repoRoot(), 'bin', 'glam.js'), 'eval', ...args], {
    encoding: 'utf8',
    env: { ...process.env, GLAM_THREADS: '1' },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

interface Report {
  results: Record<
    string,
    {
      n: number;
      shots: number;
      score: number;
      metrics: Record<string, number>;
      ci95: [number, number];
      cached: number;
    }
  >;
  averages: Record<string, number>;
  tokens: { computed: number };
}

test('--list names the 29 tasks with metrics and formats', () => {
  const r = glam('--list', '--json');
  assert.equal(r.code, 0, r.stderr);
  const tasks = JSON.parse(r.stdout) as Array<{ id: string; metrics: string[]; formats: string[] }>;
  assert.equal(tasks.length, 29);
  const multirc = tasks.find((t) => t.id === 'multirc')!;
  assert.equal(multirc.metrics[0], 'f1a');
  assert.ok(glam('--list').stdout.includes('SuperGLUE ReCoRD JSONL'));
});

test('--json report; a second run is served from the cache with the same scores', () => {
  const model = evalFixture('tiny-moe');
  const data = [
    '--data',
    `copa=${evalFixture('formats', 'superglue_copa.jsonl')}`,
    '--data',
    `nq=${evalFixture('formats', 'nq_open.jsonl')}`,
  ];
  const args = [
    '--model',
    model,
    '--tasks',
    'copa,nq',
    ...data,
    '--cache',
    join(dir, 'cache'),
    '--json',
    '--max-gen-tokens',
    '4',
  ];
  const first = glam(...args);
  assert.equal(first.code, 0, first.stderr);
  const a = JSON.parse(first.stdout) as Report;
  assert.deepEqual(Object.keys(a.results), ['copa', 'nq']);
  assert.equal(a.results.copa!.n, 2);
  assert.equal(a.results.copa!.cached, 0);
  assert.ok('lmeval_acc_norm' in a.results.copa!.metrics);
  assert.ok('em' in a.results.nq!.metrics && 'f1' in a.results.nq!.metrics);
  assert.deepEqual(Object.keys(a.averages), ['NLG', 'NLU', 'overall']);
  assert.ok(a.tokens.computed > 0);
  const second = JSON.parse(glam(...args).stdout) as Report;
  assert.equal(second.results.copa!.cached, 2);
  assert.equal(second.results.nq!.cached, 1);
  assert.equal(second.tokens.computed, 0, 'nothing recomputed');
  assert.equal(second.results.copa!.score, a.results.copa!.score);
  assert.deepEqual(second.results.copa!.ci95, a.results.copa!.ci95);
});

test('bad input: unknown task, missing data, unrecognised file, bad option values', () => {
  const model = evalFixture('tiny-moe');
  let r = glam('--model', model, '--tasks', 'piqa,nope', '--data', dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unknown task 'nope'; the tasks are: triviaqa, nq/);
  r = glam('--model', model, '--tasks', 'piqa');
  assert.match(r.stderr, /--data is required/);
  const junk = join(dir, 'junk.txt');
  writeFileSync(junk, 'just some words\n');
  r = glam('--model', model, '--tasks', 'piqa', '--data', junk);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /junk\.txt: not a format piqa accepts/);
  r = glam('--model', model, '--tasks', 'piqa', '--data', junk, '--shots', 'many');
  assert.match(r.stderr, /--shots must be an integer >= 0, got 'many'/);
  r = glam(
    '--model',
    join(dir, 'missing'),
    '--tasks',
    'copa',
    '--data',
    evalFixture('formats', 'superglue_copa.jsonl'),
  );
  assert.equal(r.code, 1);
  assert.match(r.stderr, /does not exist/);
});
