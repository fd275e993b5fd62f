/**
 * The training commands end to end through the real CLI (node bin/glam.js), on a
 * tiny custom corpus: prepare, train, resume, Ctrl-C, generate, plot, and bad input.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { listCheckpointSteps } from '../../src/train/checkpoints.js';
import { BIN, glam, tinyTrain } from '../reliability/helpers.js';
import { prepareBookDataset, SHIP_BOOK } from '../train/helpers.js';

const root = mkdtempSync(path.join(tmpdir(), 'glam-cli-train-'));
const data = path.join(root, 'data');
const run = path.join(root, 'run');

/** Steps logged in metrics.jsonl (a line being written by a running trainer is skipped). */
function metricSteps(dir: string): number[] {
  const steps: number[] = [];
  for (const line of readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').split('\n')) {
    try {
      const r = JSON.parse(line) as { step: number; loss?: number };
      if (r.loss !== undefined) steps.push(r.step);
    } catch {}
  }
  return steps;
}

/** `glam train` of the tiny model on `data` into `out`, a checkpoint every 3 steps. */
const train = (out: string, ...more: string[]) => tinyTrain(data, out, '--checkpoint-every', '3', ...more);

before(() => {
  prepareBookDataset(root, data, SHIP_BOOK);
});

after(() => rmSync(root, { recursive: true, force: true }));

test('train writes metrics and checkpoints, refuses to overwrite, resumes', () => {
  const r = glam(train(run, '--max-steps', '6'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /glam generate --model/);
  assert.deepEqual(metricSteps(run), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(listCheckpointSteps(run).slice(-1), [6]);

  const again = glam(train(run, '--max-steps', '6'));
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already holds checkpoints.*--resume/);

  const resumed = glam(train(run, '--max-steps', '8', '--resume'));
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(metricSteps(run), [1, 2, 3, 4, 5, 6, 7, 8]);
});

test('generate samples from a run directory and plot renders an SVG', () => {
  const greedy = [
    'generate',
    '--model',
    run,
    '--prompt',
    'the old',
    '--max-tokens',
    '8',
    '--temperature',
    '0',
  ];
  const g = glam(greedy);
  assert.equal(g.code, 0, g.stderr);
  assert.ok(g.stdout.startsWith('the old'));
  assert.ok(g.stdout.length > 'the old\n'.length);
  const greedyAgain = glam(greedy);
  assert.equal(greedyAgain.stdout, g.stdout);
  const p = glam(['plot', run]);
  assert.equal(p.code, 0, p.stderr);
  const svg = readFileSync(path.join(run, 'curves.svg'), 'utf8');
  assert.match(svg, /^<svg/);
  assert.match(svg, /polyline/);
});

test('SIGINT stops training after the current step with a checkpoint', async () => {
  const out = path.join(root, 'interrupted');
  const child = spawn(process.execPath, [BIN, ...train(out, '--max-steps', '100000')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, GLAM_THREADS: '1' },
  });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
    // Wait until a few steps are logged, then interrupt.
    for (let i = 0; i < 600; i++) {
      await new Promise((r) => setTimeout(r, 50));
      if (existsSync(path.join(out, 'metrics.jsonl')) && metricSteps(out).length >= 3) break;
    }
    child.kill('SIGINT');
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const code = await exited;
  assert.equal(code, 130);
  assert.match(stdout, /stopped: \d+ steps/);
  const steps = metricSteps(out);
  assert.equal(listCheckpointSteps(out).at(-1), steps.at(-1), 'a checkpoint at the last completed step');
});

test('bad input gets clear errors', () => {
  const cases: [string[], RegExp][] = [
    [['train', '--config', 'no-such-preset', '--data', data, '--max-steps', '1'], /no-such-preset/],
    [train(path.join(root, 'x'), '--max-steps', '0'), /--max-steps/],
    [
      ['train', '--config', 'tiny', '--data', path.join(root, 'missing'), '--max-steps', '1'],
      /no prepared dataset/,
    ],
    [train(path.join(root, 'y'), '--max-steps', '2', '--resume'), /no checkpoint/],
    [['generate', '--model', path.join(root, 'nowhere'), '--prompt', 'x'], /does not exist/],
    [['generate', '--model', root, '--prompt', 'x'], /neither a checkpoint/],
    [['generate', '--model', run, '--prompt', 'x', '--top-p', '0'], /top-p/],
  ];
  const badConfig = path.join(root, 'bad-config.json');
  writeFileSync(badConfig, '{"d_model": 8');
  cases.push([['train', '--config', badConfig, '--data', data, '--max-steps', '1'], /bad-config\.json/]);
  // A checkpoint whose weights are cut short.
  const broken = path.join(root, 'broken');
  spawnSync('cp', ['-r', path.join(run, 'checkpoints', `step-${String(8).padStart(6, '0')}`), broken]);
  const weights = path.join(broken, 'model.safetensors');
  writeFileSync(weights, readFileSync(weights).subarray(0, 5000));
  cases.push([['generate', '--model', broken, '--prompt', 'x'], /model\.safetensors/]);
  for (const [args, pattern] of cases) {
    const r = glam(args);
    assert.equal(r.code, 1, `${args.join(' ')} should fail`);
    assert.match(r.stderr, pattern, `${args.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
  }
});

test('--overwrite starts afresh: no checkpoint or metrics of the earlier run survive', () => {
  const r = glam(train(run, '--max-steps', '2', '--overwrite'));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(metricSteps(run), [1, 2]);
  assert.ok(listCheckpointSteps(run).every((s) => s <= 2));
  assert.equal(listCheckpointSteps(run).at(-1), 2);
});
