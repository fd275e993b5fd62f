/**
 * glam deletes or overwrites only what it can prove it wrote, never writes through a symbolic
 * link, and locks a run directory against a second trainer (issue 9, items 1-4, 14, 18).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { loadDataConfig } from '../../src/data/config.js';
import { prepareData } from '../../src/data/prepare.js';
import { saveCheckpoint } from '../../src/model/checkpoint.js';
import { initParams } from '../../src/model/init.js';
import { getPreset } from '../../src/model/presets.js';
import { listCheckpointSteps, stepDir } from '../../src/train/checkpoints.js';
import { acquireLock } from '../../src/util/lock.js';
import { SHIP_BOOK, writeBookCorpus } from '../train/helpers.js';
import { BIN, deadPid, glam, refuses, tempRoot, tinyTrain, tinyTrainOf } from './helpers.js';

const root = tempRoot('loss');
const data = path.join(root, 'data');
let dataConfig: string;

before(async () => {
  dataConfig = writeBookCorpus(root, SHIP_BOOK);
  await prepareData({ out: data, config: loadDataConfig(dataConfig) });
});

after(() => rmSync(root, { recursive: true, force: true }));

function fails(r: { code: number | null; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 1, `expected exit 1, got ${r.code}: ${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
}

test('item 1: prepare --out on a directory that merely has a manifest.json deletes nothing', async () => {
  const web = path.join(root, 'web');
  mkdirSync(path.join(web, 'src'), { recursive: true });
  writeFileSync(path.join(web, 'manifest.json'), '{"name":"app"}');
  writeFileSync(path.join(web, 'src', 'app.js'), 'code');
  await assert.rejects(
    prepareData({ out: web, config: loadDataConfig(dataConfig) }),
    /web is not a prepared dataset: it holds files glam prepare did not write \(manifest\.json \(not a glam-moe-data manifest\)\).*another --out/,
  );
  assert.equal(readFileSync(path.join(web, 'src', 'app.js'), 'utf8'), 'code');
  assert.equal(readFileSync(path.join(web, 'manifest.json'), 'utf8'), '{"name":"app"}');

  // A real dataset with a file of the user's added is not replaced either.
  const mine = path.join(root, 'mine');
  cpSync(data, mine, { recursive: true });
  writeFileSync(path.join(mine, 'notes.txt'), 'mine');
  await assert.rejects(prepareData({ out: mine, config: loadDataConfig(dataConfig) }), /notes\.txt/);
  assert.equal(readFileSync(path.join(mine, 'notes.txt'), 'utf8'), 'mine');

  // --out at the corpus folder itself (the corpus and the data config live there).
  const r = glam(['prepare', '--data-config', dataConfig, '--out', root]);
  fails(r, /holds files glam prepare did not write/);
  assert.ok(existsSync(path.join(root, 'book.txt')) && existsSync(dataConfig));

  // A dataset glam wrote is still replaced.
  rmSync(path.join(mine, 'notes.txt'));
  await prepareData({ out: mine, config: loadDataConfig(dataConfig), seed: 1 });
  // (Into a directory whose parent does not exist yet, as data/default on a fresh clone.)
  await prepareData({ out: path.join(root, 'copy'), config: loadDataConfig(dataConfig) });
  await prepareData({ out: path.join(root, 'new', 'nested', 'data'), config: loadDataConfig(dataConfig) });
  await prepareData({ out: path.join(root, 'copy'), config: loadDataConfig(dataConfig), seed: 2 });
});

test('item 2: a fresh train deletes nothing it did not write, and never empties metrics without --overwrite', async () => {
  // (a) a user's model kept under checkpoints/
  const a = path.join(root, 'run-a');
  mkdirSync(path.join(a, 'checkpoints', 'my-model'), { recursive: true });
  writeFileSync(path.join(a, 'checkpoints', 'my-model', 'w.bin'), 'weights');
  writeFileSync(path.join(a, 'metrics.jsonl'), '');
  for (const extra of [[], ['--overwrite']]) {
    await refuses(
      tinyTrain(data, a, '--max-steps', '1', ...extra),
      /holds files glam train did not write \(checkpoints\/my-model\)/,
    );
  }
  assert.equal(readFileSync(path.join(a, 'checkpoints', 'my-model', 'w.bin'), 'utf8'), 'weights');

  // (b) a `glam init` checkpoint placed as checkpoints/step-000500
  const b = path.join(root, 'run-b');
  const cfg = { ...getPreset('tiny'), vocab_size: 400 };
  saveCheckpoint(stepDir(b, 500), cfg, initParams(cfg, 0));
  await refuses(tinyTrain(data, b, '--max-steps', '1', '--overwrite'), /checkpoints\/step-000500/);
  fails(glam(tinyTrain(data, b, '--max-steps', '1')), /checkpoints\/step-000500/);
  assert.ok(existsSync(path.join(stepDir(b, 500), 'model.safetensors')));

  // (c) metrics of an earlier run whose checkpoints were deleted
  const c = path.join(root, 'run-c');
  mkdirSync(c);
  const metrics = `${JSON.stringify({ step: 1, loss: 6.5 })}\n${JSON.stringify({ step: 2, loss: 6.1 })}\n`;
  writeFileSync(path.join(c, 'metrics.jsonl'), metrics);
  fails(glam(tinyTrain(data, c, '--max-steps', '1')), /metrics of an earlier run \(2 steps\).*--overwrite/);
  assert.equal(readFileSync(path.join(c, 'metrics.jsonl'), 'utf8'), metrics);
  // ... and a metrics.jsonl that is not ours is never replaced, even with --overwrite.
  writeFileSync(path.join(c, 'metrics.jsonl'), 'my notes\n');
  await refuses(tinyTrain(data, c, '--max-steps', '1', '--overwrite'), /not a metrics file glam wrote/);
  assert.equal(readFileSync(path.join(c, 'metrics.jsonl'), 'utf8'), 'my notes\n');
});

test('item 3: symbolic links are never written through (metrics.jsonl, curves.svg)', async () => {
  const run = path.join(root, 'run-link');
  mkdirSync(run);
  const important = path.join(root, 'important.txt');
  writeFileSync(important, 'precious');
  symlinkSync('../important.txt', path.join(run, 'metrics.jsonl'));
  fails(glam(tinyTrain(data, run, '--max-steps', '1')), /metrics\.jsonl is a symbolic link/);
  await refuses(tinyTrain(data, run, '--max-steps', '1', '--overwrite'), /metrics\.jsonl is a symbolic link/);
  assert.equal(readFileSync(important, 'utf8'), 'precious');

  // plot: a symbolic link or another program's file at the output is refused.
  rmSync(path.join(run, 'metrics.jsonl'));
  assert.equal(glam(tinyTrain(data, run, '--max-steps', '2')).code, 0);
  symlinkSync('../important.txt', path.join(run, 'curves.svg'));
  fails(glam(['plot', run]), /curves\.svg is a symbolic link/);
  await refuses(['plot', run, '--force'], /curves\.svg is a symbolic link/);
  assert.equal(readFileSync(important, 'utf8'), 'precious');
  rmSync(path.join(run, 'curves.svg'));
  writeFileSync(path.join(run, 'curves.svg'), 'my drawing');
  await refuses(['plot', run], /not written by glam plot; pass --force/);
  assert.equal(readFileSync(path.join(run, 'curves.svg'), 'utf8'), 'my drawing');
  assert.equal(glam(['plot', run, '--force']).code, 0);
  assert.equal(glam(['plot', run]).code, 0, 'its own plot is replaced');
  // The same for resume: metrics.jsonl is rewritten atomically, never through a link.
  rmSync(path.join(run, 'metrics.jsonl'));
  symlinkSync('../important.txt', path.join(run, 'metrics.jsonl'));
  await refuses(tinyTrain(data, run, '--max-steps', '3', '--resume'), /metrics\.jsonl/);
  assert.equal(readFileSync(important, 'utf8'), 'precious');
});

test('item 4: a second trainer on the same --out is refused, naming the holder; stale locks are taken over', async () => {
  const run = path.join(root, 'run-lock');
  const first = spawn(
    process.execPath,
    [BIN, ...tinyTrain(data, run, '--max-steps', '100000', '--checkpoint-every', '2')],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, GLAM_THREADS: '1' },
    },
  );
  const exited = new Promise((resolve) => first.on('exit', resolve));
  try {
    for (let i = 0; i < 400 && listCheckpointSteps(run).length === 0; i++)
      await new Promise((r) => setTimeout(r, 25));
    assert.ok(listCheckpointSteps(run).length > 0, 'the first trainer wrote a checkpoint');
    const second = glam(tinyTrain(data, run, '--max-steps', '100000', '--resume'));
    fails(second, new RegExp(`run directory .*run-lock is in use by pid ${first.pid} on host .*glam train`));
  } finally {
    first.kill('SIGKILL');
    await exited;
  }
  // The killed trainer's lock is stale: the next run takes it over and says so.
  const r = glam(tinyTrain(data, run, '--time', '0.001', '--resume'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`stale lock .* from pid ${first.pid} .*no longer exists`));
  assert.ok(!existsSync(path.join(run, '.glam-lock')), 'released at exit');

  // A lock of a dead process, and one from another host (which cannot be checked).
  writeFileSync(
    path.join(run, '.glam-lock'),
    JSON.stringify({
      format: 'glam-moe-lock/1',
      pid: deadPid(),
      host: hostname(),
      command: 'glam train',
      since: 'then',
      token: 'x',
    }),
  );
  assert.equal(glam(tinyTrain(data, run, '--time', '0.001', '--resume')).code, 0);
  writeFileSync(
    path.join(run, '.glam-lock'),
    JSON.stringify({
      format: 'glam-moe-lock/1',
      pid: 1,
      host: 'elsewhere',
      command: 'glam train',
      since: 'then',
      token: 'x',
    }),
  );
  fails(
    glam(tinyTrain(data, run, '--time', '0.001', '--resume')),
    /in use by pid 1 on host elsewhere.*remove .*\.glam-lock/,
  );
});

test('item 14: what a killed prepare leaves is cleaned by the next one; a negative step makes no stray directory', async () => {
  // A bigger corpus, so prepare is still running when killed.
  const big = path.join(root, 'big');
  mkdirSync(big);
  const cfg = writeBookCorpus(big, { ...SHIP_BOOK, docs: 3000, wordsPerDoc: 200 });
  const out = path.join(root, 'killed');
  const child = spawn(process.execPath, [BIN, 'prepare', '--data-config', cfg, '--out', out], {
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const tmp = `${out}.tmp-${child.pid}`;
  for (let i = 0; i < 2000 && !existsSync(path.join(tmp, 'spool.jsonl')); i++)
    await new Promise((r) => setTimeout(r, 5));
  child.kill('SIGKILL');
  await exited;
  assert.ok(existsSync(tmp), 'the killed prepare left its build directory');
  // Someone else's directory with a similar name is left alone.
  const foreign = `${out}.tmp-${deadPid()}`;
  mkdirSync(foreign);
  writeFileSync(path.join(foreign, 'x'), 'x');
  const r = glam(['prepare', '--data-config', dataConfig, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!existsSync(tmp), 'the leftover is removed');
  assert.match(r.stderr, /removed .*killed\.tmp-\d+, left by an interrupted glam prepare/);
  assert.ok(existsSync(path.join(foreign, 'x')));

  // A negative step in trainer-state.json: refused by name, no step-0000-2 directory.
  const run = path.join(root, 'run-neg');
  assert.equal(glam(tinyTrain(data, run, '--max-steps', '2')).code, 0);
  const state = path.join(stepDir(run, 2), 'trainer-state.json');
  writeFileSync(state, JSON.stringify({ ...JSON.parse(readFileSync(state, 'utf8')), step: -2 }));
  fails(
    glam(tinyTrain(data, run, '--max-steps', '4', '--resume')),
    /'step' must be a non-negative integer, got -2/,
  );
  assert.deepEqual(
    readdirSync(path.join(run, 'checkpoints')).filter((n) => n.includes('-0')),
    ['step-000002'],
  );
});

test('item 18: a run that fails at its first step leaves nothing that blocks the same command', () => {
  const run = path.join(root, 'run-fail');
  const config = path.join(root, 'groups.json');
  // 2 x 16 tokens are not divisible by 3 groups: the first forward pass fails.
  writeFileSync(config, JSON.stringify({ ...getPreset('tiny-moe'), num_groups: 3 }));
  const args = tinyTrainOf(config, data, run, '--max-steps', '3');
  fails(glam(args), /num_groups \(3\) must divide/);
  fails(glam(args), /num_groups \(3\) must divide/);
  assert.deepEqual(listCheckpointSteps(run), []);
});

test('item 4: the lock takes over only its own stale files and never removes anything else', () => {
  const dir = path.join(root, 'locks');
  mkdirSync(dir);
  const file = path.join(dir, '.glam-lock');
  const opts = { command: 'test', what: 'the test directory' };
  // Held by this process: shared, released when the last holder lets go.
  const a = acquireLock(file, opts);
  const b = acquireLock(file, opts);
  b.release();
  assert.ok(existsSync(file));
  a.release();
  assert.ok(!existsSync(file));
  // Another program's file, a FIFO or a symbolic link where the lock goes: refused, left alone.
  writeFileSync(file, 'my notes');
  assert.throws(() => acquireLock(file, opts), /\.glam-lock is not a glam lock file \(a regular file\)/);
  assert.equal(readFileSync(file, 'utf8'), 'my notes');
  rmSync(file);
  assert.equal(spawnSync('mkfifo', [file]).status, 0);
  assert.throws(() => acquireLock(file, opts), /not a glam lock file \(a FIFO/);
  assert.ok(lstatSync(file).isFIFO());
  rmSync(file);
  symlinkSync('../important.txt', file);
  assert.throws(() => acquireLock(file, opts), /not a glam lock file \(a symbolic link\)/);
  rmSync(file);
  // An empty lock (a holder killed between creating and writing it): new, wait; old, taken over.
  writeFileSync(file, '');
  assert.throws(() => acquireLock(file, opts), /is being locked by another process/);
  const old = new Date(Date.now() - 60_000);
  utimesSync(file, old, old);
  const notes: string[] = [];
  acquireLock(file, { ...opts, onStale: (m) => notes.push(m) }).release();
  assert.match(notes.join(), /an empty lock file left by a crash/);
});
