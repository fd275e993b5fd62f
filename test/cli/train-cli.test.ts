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
import { fileURLToPath } from 'node:url';
import { listCheckpointSteps } from '../../src/train/checkpoints.js';
import { prepareBookDataset } from '../train/helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(here, '../../../bin/glam.js');
const root = mkdtempSync(path.join(tmpdir(), 'glam-cli-train-'));
const data = path.join(root, 'data');
const run = path.join(root, 'run');

function glam(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, GLAM_THREADS: '1' },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

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

const TRAIN = [
  '--config',
  'tiny',
  '--data',
  data,
  '--seq-len',
  '16',
  '--batch-size',
  '2',
  '--checkpoint-every',
  '3',
];

before(() => {
  prepareBookDataset(root, data, {
    seed: 5,
    words: 'the old ship sailed across a quiet sea while sailors sang of home and distant shores',
    docs: 80,
    wordsPerDoc: 60,
    heading: 'Chapter',
  });
});

after(() => rmSync(root, { recursive: true, force: true }));

test('train writes metrics and checkpoints, refuses to overwrite, resumes', () => {
  const r = glam('train', ...TRAIN, '--max-steps', '6', '--out', run);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /glam generate --model/);
  assert.deepEqual(metricSteps(run), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(listCheckpointSteps(run).slice(-1), [6]);

  const again = glam('train', ...TRAIN, '--max-steps', '6', '--out', run);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already holds checkpoints.*--resume/);

  const resumed = glam('train', ...TRAIN, '--max-steps', '8', '--out', run, '--resume');
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(metricSteps(run), [1, 2, 3, 4, 5, 6, 7, 8]);
});

test('generate samples from a run directory and plot renders an SVG', () => {
  const g = glam(
    'generate',
    '--model',
    run,
    '--prompt',
    'the old',
    '--max-tokens',
    '8',
    '--temperature',
    '0',
  );
  assert.equal(g.code, 0, g.stderr);
  assert.ok(g.stdout.startsWith('the old'));
  assert.ok(g.stdout.length > 'the old\n'.length);
  const greedyAgain = glam(
    'generate',
    '--model',
    run,
    '--prompt',
    'the old',
    '--max-tokens',
    '8',
    '--temperature',
    '0',
  );
  assert.equal(greedyAgain.stdout, g.stdout);
  const p = glam('plot', run);
  assert.equal(p.code, 0, p.stderr);
  const svg = readFileSync(path.join(run, 'curves.svg'), 'utf8');
  assert.match(svg, /^<svg/);
  assert.match(svg, /polyline/);
});

test('SIGINT stops training after the current step with a checkpoint', async () => {
  const out = path.join(root, 'interrupted');
  const child = spawn(process.execPath, [BIN, 'train', ...TRAIN, '--max-steps', '100000', '--out', out], {
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
    [['train', ...TRAIN, '--max-steps', '0', '--out', path.join(root, 'x')], /--max-steps/],
    [
      ['train', '--config', 'tiny', '--data', path.join(root, 'missing'), '--max-steps', '1'],
      /no prepared dataset/,
    ],
    [['train', ...TRAIN, '--max-steps', '2', '--out', path.join(root, 'y'), '--resume'], /no checkpoint/],
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
    const r = glam(...args);
    assert.equal(r.code, 1, `${args.join(' ')} should fail`);
    assert.match(r.stderr, pattern, `${args.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
  }
});

test('--overwrite starts afresh: no checkpoint or metrics of the earlier run survive', () => {
  const r = glam('train', ...TRAIN, '--max-steps', '2', '--out', run, '--overwrite');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(metricSteps(run), [1, 2]);
  assert.ok(listCheckpointSteps(run).every((s) => s <= 2));
  assert.equal(listCheckpointSteps(run).at(-1), 2);
});
