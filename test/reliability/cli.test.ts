/**
 * The command line as a new user meets it (issue 9, items 16, 17, 19-22): errors before
 * output, negative numbers reach the range checks, a progress display that keeps validation
 * loss in view and ends where the run ended, conflicting options refused, readable plots,
 * and a default dataset that does not depend on which model was trained first.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { loadDataConfig } from '../../src/data/config.js';
import { prepareData } from '../../src/data/prepare.js';
import { SHIP_BOOK, writeBookCorpus } from '../train/helpers.js';
import { BIN, glam, refuses, tempRoot, tinyTrain } from './helpers.js';

const root = tempRoot('cli');
const data = path.join(root, 'data');
const run = path.join(root, 'run');
const tokens = path.join(root, 'tokens.json');

before(async () => {
  await prepareData({ out: data, config: loadDataConfig(writeBookCorpus(root, SHIP_BOOK)) });
  const r = glam(tinyTrain(data, run, '--max-steps', '5', '--eval-every', '2'));
  assert.equal(r.code, 0, r.stderr);
  writeFileSync(tokens, JSON.stringify([[1, 2, 3, 4]]));
});

after(() => rmSync(root, { recursive: true, force: true }));

function fails(args: string[], pattern: RegExp, env: Record<string, string> = {}): { stdout: string } {
  const r = glam(args, { env });
  assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}; ${r.stderr}`);
  assert.match(r.stderr, pattern, args.join(' '));
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
  return r;
}

test('item 16: generate checks its options before printing anything', async () => {
  const r = fails(
    ['generate', '--model', run, '--prompt', 'The', '--top-p', '0'],
    /^glam: top-p must be in \(0, 1\], got 0\n$/,
  );
  assert.equal(r.stdout, '', 'nothing on stdout');
  // The others fail at the same point, before the model is even loaded.
  for (const [flag, value, pattern] of [
    ['--temperature', 'warm', /--temperature must be a number, got 'warm'$/],
    ['--max-tokens', '1.5', /--max-tokens must be an integer >= 0, got '1\.5'$/],
  ] as const) {
    await refuses(
      ['generate', '--model', path.join(root, 'nowhere'), '--prompt', 'The', flag, value],
      pattern,
    );
  }
});

test('item 17: a negative number after a flag reaches the range check', async () => {
  fails(['info', '--config', 'tiny', '--seq-len', '-5'], /--seq-len must be an integer >= 1, got '-5'/);
  await refuses(
    tinyTrain(data, path.join(root, 'neg'), '--max-steps', '-5'),
    /--max-steps must be an integer >= 1, got '-5'/,
  );
  await refuses(tinyTrain(data, path.join(root, 'neg'), '--lr', '-0.5'), /--lr must be > 0, got -0\.5/);
  await refuses(
    ['generate', '--model', run, '--prompt', 'x', '--top-p', '-.5'],
    /top-p must be in \(0, 1\], got -0\.5/,
  );
  // A flag that takes no value still says so.
  await refuses(['info', '--config', 'tiny', '--json', '-5'], /--json/);
});

/** Run a command in a pseudo-terminal (util-linux `script`), returning everything it drew. */
function inTerminal(args: string[]): string {
  const cmd = [process.execPath, BIN, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, GLAM_THREADS: '1', COLUMNS: '200' },
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  return r.stdout;
}

test('item 19: in a terminal the bar keeps the validation loss, the summary reports it, the first ETA is right', () => {
  const out = inTerminal(tinyTrain(data, path.join(root, 'tty'), '--time', '0.04', '--eval-every', '3'));
  const frames = out.split('\r').filter((f) => f.startsWith('train '));
  assert.ok(frames.length >= 2, out);
  assert.ok(
    frames.some((f) => /\| val \d+\.\d+ @\d+/.test(f)),
    `no frame shows the validation loss:\n${frames.join('\n')}`,
  );
  assert.match(out, /done: \d+ steps, .* validation loss \d+\.\d+ \(step \d+\)/);
  // A 2.4-second budget: the estimate is what is left of it, never minutes.
  const eta = /< (\d+):(\d\d)/.exec(frames[0]!);
  assert.ok(eta !== null && Number(eta[1]) * 60 + Number(eta[2]) <= 3, `first frame: ${frames[0]}`);
});

test('item 19: a run stopped by Ctrl-C ends the bar where it stopped, not at 100%', async () => {
  const out = path.join(root, 'stopped');
  const child = spawn(process.execPath, [BIN, ...tinyTrain(data, out, '--max-steps', '300')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, GLAM_THREADS: '1' },
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  for (let i = 0; i < 600; i++) {
    await new Promise((r) => setTimeout(r, 25));
    const m = existsSync(path.join(out, 'metrics.jsonl'))
      ? readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
      : '';
    if (m.split('\n').length > 4) break;
  }
  child.kill('SIGINT');
  assert.equal(await exited, 130);
  const bars = stderr.split('\n').filter((l) => l.startsWith('train '));
  const last = bars[bars.length - 1]!;
  assert.match(last, /\(stopped\)/);
  const pct = Number(/(\d+)%/.exec(last)![1]);
  assert.ok(pct < 100, `the last bar line: ${last}`);
});

test('item 20: conflicting or meaningless options are refused; clear messages for the rest', async () => {
  const r = glam(
    tinyTrain(
      data,
      path.join(root, 'no-eval'),
      '--max-steps',
      '3',
      '--eval-every',
      '1',
      '--eval-batches',
      '0',
    ),
  );
  assert.equal(r.code, 0, r.stderr);
  const recs = readFileSync(path.join(root, 'no-eval', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(recs.length, 3);
  assert.ok(
    recs.every((x) => x.val_loss === undefined),
    '--eval-batches 0 runs no validation',
  );

  await refuses(
    tinyTrain(data, run, '--max-steps', '6', '--resume', '--overwrite'),
    /--resume continues a run and --overwrite starts it afresh/,
  );
  await refuses(
    tinyTrain(data, path.join(root, 'both'), '--max-steps', '2', '--max-tokens', '100'),
    /--max-steps and --max-tokens are alternatives/,
  );
  for (const bad of ['abc', '0']) {
    fails(
      ['score', '--model', run, '--tokens', tokens],
      new RegExp(`GLAM_THREADS must be an integer in \\[1, 1024\\].*got '${bad}'`),
      {
        GLAM_THREADS: bad,
      },
    );
  }
  await refuses(
    ['bench', 'gemm', '--m', '100000', '--n', '100000', '--k', '1000'],
    /bench gemm: m=100000 n=100000 k=1000 needs 38\.0 GiB for A, B and C/,
  );
  await refuses(
    ['plot', run, '--out', path.join(root, 'missing', 'dir', 'x.svg')],
    /cannot write .*x\.svg: the directory .*missing\/dir does not exist/,
  );
  const huge = path.join(root, 'huge-id.json');
  writeFileSync(huge, '[[1, 1e400]]');
  await refuses(
    ['score', '--model', run, '--tokens', huge],
    /row 0, position 1: Infinity is not an integer token id/,
  );
});

test('item 21: plots have labelled axes, legends clear of the curves, a marked log scale and whole-step ticks', () => {
  const short = path.join(root, 'short');
  assert.equal(glam(tinyTrain(data, short, '--max-steps', '5')).code, 0);
  assert.equal(glam(['plot', short]).code, 0);
  const svg = readFileSync(path.join(short, 'curves.svg'), 'utf8');
  const panels = svg.split('<g transform=').slice(1);
  assert.equal(panels.length, 3, 'loss, loss parts, learning rate (a dense model has no expert panel)');
  for (const p of panels) {
    const plotTop = Number(
      /<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="[\d.]+" fill="none"/.exec(p)![1],
    );
    const legend = [
      ...p.matchAll(
        /<text x="[\d.]+" y="([\d.]+)"[^>]*>(train loss|validation loss|lm|aux[^<]*|z|lr)<\/text>/g,
      ),
    ];
    assert.ok(legend.length > 0, p);
    for (const [, y, label] of legend)
      assert.ok(Number(y) < plotTop, `legend '${label}' at y ${y} is inside the plot (top ${plotTop})`);
    assert.match(p, /transform="rotate\(-90[^"]*"\)?>[^<]+<\/text>/, 'a y-axis label');
    const xTicks = [...p.matchAll(/text-anchor="middle">(-?[\d.e]+)<\/text>/g)].map((m) => m[1]!);
    assert.ok(xTicks.length >= 2, p);
    for (const t of xTicks) assert.ok(Number.isInteger(Number(t)), `step tick ${t}`);
  }
  assert.match(panels[1]!, /loss \(log scale\)/);
  assert.match(panels[1]!, /aux \(0, not shown\)/, 'a dense model has no aux loss to draw on a log axis');
});

test('item 22: the default dataset has its own vocabulary, whichever model is trained first', async () => {
  // An empty working directory: `glam train --config tiny` would prepare data/default.
  const cwd = path.join(root, 'fresh');
  mkdirSync(cwd);
  const child = spawn(process.execPath, [BIN, 'train', '--config', 'tiny', '--max-steps', '1'], {
    cwd,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, GLAM_THREADS: '1' },
  });
  let stderr = '';
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await new Promise<void>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('\n')) resolve();
    });
    child.on('exit', () => resolve());
  });
  child.kill('SIGKILL'); // the whole bundled corpus takes half a minute; the plan is what matters
  await exited;
  assert.match(
    stderr,
    /No prepared data in data\/default: preparing the bundled corpus \(vocabulary 4096; once\)/,
  );

  // A data/default with another vocabulary (from an older glam, or prepared with --vocab-size) is named.
  const old = path.join(root, 'old');
  mkdirSync(old);
  cpSync(data, path.join(old, 'data', 'default'), { recursive: true });
  const r = glam(['train', '--config', 'tiny', '--max-steps', '1', '--seq-len', '16', '--batch-size', '2'], {
    cwd: old,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /warning: data\/default has a 400-token vocabulary, not the default dataset's 4096 .*Run `glam prepare` to rebuild/,
  );
});
