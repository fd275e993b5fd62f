/**
 * Recovery from damaged checkpoints and from divergence (issue 9, items 11-13): resume falls
 * back to the newest checkpoint that loads, score/generate name it, non-finite weights are
 * refused by name, and a roll-back never loses more than the steps since the first sign of
 * trouble.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadCheckpoint, MODEL_FILE, saveCheckpoint } from '../../src/model/checkpoint.js';
import type { GlamConfig } from '../../src/model/config.js';
import { type Batch, GlamModel } from '../../src/model/glam.js';
import { initParams } from '../../src/model/init.js';
import { getPreset } from '../../src/model/presets.js';
import type { Weights } from '../../src/model/weights.js';
import { createOptimizer } from '../../src/optim/create.js';
import {
  latestCheckpoint,
  listCheckpointSteps,
  loadTrainingCheckpoint,
  OPTIMIZER_FILE,
  stepDir,
  TRAINER_STATE_FILE,
} from '../../src/train/checkpoints.js';
import { DEFAULT_TRAIN_SETTINGS, type TrainSettings, train } from '../../src/train/trainer.js';
import { PatternSource } from '../train/helpers.js';
import { glam, tempRoot } from './helpers.js';

const CFG: GlamConfig = { ...getPreset('tiny-moe'), n_layers: 2, max_seq_len: 16 };
const B = 4;
const T = 16;
const root = tempRoot('recover');
const base = path.join(root, 'base');

/** The model, its weights and GLaM's optimiser, as a TrainRun takes them. */
function model(weights: Weights) {
  return { model: new GlamModel(CFG), weights, optimizer: createOptimizer(weights, { kind: 'adafactor' }) };
}

function settings(over: Partial<TrainSettings>): TrainSettings {
  return { ...DEFAULT_TRAIN_SETTINGS, seed: 3, checkpointEvery: 4, keepLast: 3, evalEvery: 100, ...over };
}

before(async () => {
  await train({
    ...model(initParams(CFG, 3)),
    data: new PatternSource(CFG.vocab_size, B, T),
    outDir: base,
    settings: settings({ maxSteps: 8 }),
  });
  assert.deepEqual(
    listCheckpointSteps(base).filter((s) => s > 0),
    [4, 8],
  );
});

after(() => rmSync(root, { recursive: true, force: true }));

describe('item 11: a damaged latest checkpoint', () => {
  const damages: [string, (dir: string) => void, RegExp][] = [
    [
      'truncated model.safetensors',
      (d) => truncateSync(path.join(d, MODEL_FILE), 3000),
      /model\.safetensors/,
    ],
    [
      'truncated optimizer.safetensors',
      (d) => truncateSync(path.join(d, OPTIMIZER_FILE), 500),
      /optimizer\.safetensors/,
    ],
    [
      'garbage trainer-state.json',
      (d) => writeFileSync(path.join(d, TRAINER_STATE_FILE), '{"step": 8, '),
      /trainer-state\.json: not valid JSON/,
    ],
  ];
  for (const [name, damage, why] of damages) {
    test(`--resume skips it (${name}), saying why, and continues from the previous one`, async () => {
      const run = path.join(root, `resume-${name.replace(/\W+/g, '-')}`);
      cpSync(base, run, { recursive: true });
      damage(stepDir(run, 8));
      const events: string[] = [];
      const res = await train({
        ...model(initParams(CFG, 3)),
        data: new PatternSource(CFG.vocab_size, B, T),
        outDir: run,
        settings: settings({ maxSteps: 10 }),
        resume: true,
        hooks: { onEvent: (m) => events.push(m) },
      });
      assert.equal(res.step, 10);
      const skip = events.find((e) => e.startsWith('skipping checkpoint'));
      assert.ok(skip?.includes('step-000008'), events.join(' | '));
      assert.match(skip!, why);
      assert.ok(
        events.some((e) => /resumed from .*step-000004 at step 4/.test(e)),
        events.join(' | '),
      );
    });
  }

  test('score and generate name the earlier checkpoint that loads', () => {
    const run = path.join(root, 'infer');
    cpSync(base, run, { recursive: true });
    truncateSync(path.join(stepDir(run, 8), MODEL_FILE), 3000);
    const tokens = path.join(root, 'tokens.json');
    writeFileSync(tokens, JSON.stringify([[1, 2, 3, 4]]));
    for (const args of [
      ['score', '--model', run, '--tokens', tokens],
      ['generate', '--model', run, '--prompt', 'x'],
    ]) {
      const r = glam(args);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /step-000008\/model\.safetensors/);
      assert.match(r.stderr, /the earlier checkpoint .*step-000004 loads: pass --model .*step-000004/);
    }
  });
});

test('item 15: malformed fields of trainer-state.json are named', () => {
  const run = path.join(root, 'state-fields');
  cpSync(base, run, { recursive: true });
  const file = path.join(stepDir(run, 8), TRAINER_STATE_FILE);
  const state = JSON.parse(readFileSync(file, 'utf8'));
  for (const [field, value, pattern] of [
    ['data', null, /'data' must be the data reader's position \(an object\), got null/],
    ['step', -2, /'step' must be a non-negative integer, got -2/],
    ['rng', { s: 'x' }, /'rng' must be an RNG state/],
  ] as const) {
    writeFileSync(file, JSON.stringify({ ...state, [field]: value }));
    assert.throws(
      () => loadTrainingCheckpoint(stepDir(run, 8)),
      (err: Error) =>
        err.message.startsWith(`${file}: not a valid trainer state: `) && pattern.test(err.message),
    );
  }
});

test('item 12: NaN or Inf weights are refused at load, naming the tensor', () => {
  const dir = path.join(root, 'nan');
  const params = initParams(CFG, 1);
  params.get('layers.1.attn.wq')!.data[5] = Number.NaN;
  saveCheckpoint(dir, CFG, params);
  assert.throws(
    () => loadCheckpoint(dir),
    /model\.safetensors: tensor 'layers\.1\.attn\.wq' holds NaN at element 5: the checkpoint is corrupt/,
  );
  params.get('layers.1.attn.wq')!.data[5] = 0;
  params.get('embed.weight')!.data[0] = Number.NEGATIVE_INFINITY;
  saveCheckpoint(dir, CFG, params);
  assert.throws(() => loadCheckpoint(dir), /tensor 'embed\.weight' holds -Infinity at element 0/);
  const r = glam(['score', '--model', dir, '--tokens', path.join(root, 'tokens.json')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /holds -Infinity/);
});

test('item 13: a run that keeps diverging never loses more than the steps since the first sign of trouble', async () => {
  // From the 25th batch on, every batch is uniformly random tokens: the loss jumps and stays up.
  class BrokenSource extends PatternSource {
    private served = 0;
    override next(): Batch {
      const b = super.next();
      if (++this.served > 24) {
        for (let i = 0; i < b.inputs.length; i++) {
          b.inputs[i] = (i * 7919 + this.served * 104729) % CFG.vocab_size;
          b.targets[i] = (i * 6271 + this.served * 15485863) % CFG.vocab_size;
        }
      }
      return b;
    }
  }
  const run = path.join(root, 'diverge');
  const events: string[] = [];
  await assert.rejects(
    train({
      ...model(initParams(CFG, 3)),
      data: new BrokenSource(CFG.vocab_size, B, T),
      outDir: run,
      // Checkpoints far apart: before the fix every roll-back went to step 0.
      settings: settings({
        maxSteps: 80,
        checkpointEvery: 100_000,
        divergenceFactor: 1.5,
        divergencePatience: 2,
        maxRollbacks: 2,
      }),
      hooks: { onEvent: (m) => events.push(m) },
    }),
    /giving up .*The last good state is .*step-000024/,
  );
  assert.equal(latestCheckpoint(run), stepDir(run, 24));
  assert.ok(
    events.every((e) => !e.includes('rolling back') || e.includes('step-000024')),
    events.join(' | '),
  );
  const state = JSON.parse(readFileSync(path.join(stepDir(run, 24), TRAINER_STATE_FILE), 'utf8'));
  assert.equal(state.step, 24);
});
