import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { kernels, roundToBf16 } from '../../src/backend/index.js';
import type { GlamConfig } from '../../src/model/config.js';
import { type Batch, GlamModel } from '../../src/model/glam.js';
import { initParams } from '../../src/model/init.js';
import { getPreset } from '../../src/model/presets.js';
import { readSafetensors } from '../../src/model/safetensors.js';
import type { Weights } from '../../src/model/weights.js';
import { createOptimizer } from '../../src/optim/create.js';
import {
  latestCheckpoint,
  listCheckpointSteps,
  loadTrainingCheckpoint,
  OPTIMIZER_FILE,
} from '../../src/train/checkpoints.js';
import {
  DEFAULT_TRAIN_SETTINGS,
  METRICS_FILE,
  type StepRecord,
  type TrainSettings,
  train,
} from '../../src/train/trainer.js';
import { assertClose } from '../optim/helpers.js';
import { PatternSource } from './helpers.js';

const CFG: GlamConfig = {
  ...getPreset('tiny-moe'),
  n_layers: 2,
  max_seq_len: 16,
  second_expert_policy: 'random',
};
const B = 4;
const T = 16;

function settings(over: Partial<TrainSettings>): TrainSettings {
  return {
    ...DEFAULT_TRAIN_SETTINGS,
    seed: 3,
    checkpointEvery: 4,
    keepLast: 2,
    evalEvery: 5,
    schedule: { kind: 'rsqrt', peak_lr: 0.01, warmup_steps: 0, decay_start: 10000 },
    ...over,
  };
}

/** The model, its weights and GLaM's optimiser, as a TrainRun takes them. */
function model(weights: Weights) {
  return { model: new GlamModel(CFG), weights, optimizer: createOptimizer(weights, { kind: 'adafactor' }) };
}

/** A run of the small model on the pattern data with these settings (seed 3 weights). */
function trainPattern(outDir: string, over: Partial<TrainSettings>, resume = false) {
  return train({
    ...model(initParams(CFG, 3)),
    data: new PatternSource(CFG.vocab_size, B, T),
    outDir,
    settings: settings(over),
    resume,
  });
}

function readRecords(dir: string): StepRecord[] {
  return readFileSync(path.join(dir, METRICS_FILE), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as StepRecord)
    .filter((r) => typeof r.loss === 'number');
}

function tmp(): string {
  return mkdtempSync(path.join(tmpdir(), 'glam-train-'));
}

test('training lowers the loss and writes metrics and checkpoints', async () => {
  const out = tmp();
  try {
    const res = await train({
      ...model(initParams(CFG, 3)),
      data: new PatternSource(CFG.vocab_size, B, T),
      outDir: out,
      settings: settings({ maxSteps: 12 }),
    });
    const recs = readRecords(out);
    assert.equal(recs.length, 12);
    assert.equal(res.step, 12);
    assert.ok(recs[11]!.loss < recs[0]!.loss - 0.5, `loss ${recs[0]!.loss} -> ${recs[11]!.loss}`);
    for (const key of [
      'loss',
      'lm_loss',
      'aux_loss',
      'z_loss',
      'lr',
      'tokens_per_s',
      'load_balance',
      'dropped_fraction',
    ]) {
      assert.ok(Number.isFinite((recs[5] as unknown as Record<string, number>)[key]), key);
    }
    assert.equal(recs[5]!.expert_load.length, 1);
    assert.ok(recs.some((r) => r.val_loss !== undefined));
    assert.deepEqual(listCheckpointSteps(out), [8, 12]);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('resume from a checkpoint reproduces the uninterrupted losses exactly', async () => {
  const a = tmp();
  const b = tmp();
  try {
    // Run b is stopped after step 5 (as Ctrl-C stops it) and resumed: the default recipe's cool-down over
    // steps 9-10 comes back with it.
    const run = (out: string, resume: boolean, stopAfter?: number) => {
      const stopSignal = { stop: false };
      return train({
        ...model(initParams(CFG, 7)),
        data: new PatternSource(CFG.vocab_size, B, T),
        outDir: out,
        settings: settings({ maxSteps: 10 }),
        resume,
        stopSignal,
        hooks: { onStep: (r) => (stopSignal.stop = r.step === stopAfter) },
      });
    };
    await run(a, false);
    const stopped = await run(b, false, 5);
    assert.equal(stopped.step, 5);
    await run(b, true);
    const ra = readRecords(a);
    const rb = readRecords(b);
    assert.equal(rb.length, 10);
    for (let i = 0; i < 10; i++) {
      assert.equal(rb[i]!.step, ra[i]!.step);
      assert.ok(
        Math.abs(rb[i]!.loss - ra[i]!.loss) <= 1e-6,
        `step ${i + 1}: ${ra[i]!.loss} vs ${rb[i]!.loss}`,
      );
    }
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});

test('a cool-down over the last fraction of a run of known length, kept in its checkpoints', async () => {
  const out = tmp();
  try {
    await trainPattern(out, { maxSteps: 10, cooldownFraction: 0.2 });
    const lrs = readRecords(out).map((r) => r.lr);
    assertClose(lrs, [...Array(8).fill(0.01), 0.01 * (2 / 3), 0.01 * (1 / 3)], 1e-12);
    assert.deepEqual(loadTrainingCheckpoint(latestCheckpoint(out)!).state.cooldown, {
      start: 8,
      total_steps: 10,
    });
    // Resumed with a longer run, the cool-down moves to the end of the new length.
    await trainPattern(out, { maxSteps: 20, cooldownFraction: 0.2 }, true);
    assertClose(
      readRecords(out)
        .slice(10)
        .map((r) => r.lr),
      [...Array(6).fill(0.01), 0.008, 0.006, 0.004, 0.002],
      1e-12,
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('a run limited by time alone starts its cool-down at (1 - fraction) of the time and ends it', async () => {
  const out = tmp();
  try {
    const res = await trainPattern(out, { timeMinutes: 1.5 / 60, cooldownFraction: 0.5 });
    const recs = readRecords(out);
    const { cooldown } = loadTrainingCheckpoint(latestCheckpoint(out)!).state;
    assert.ok(cooldown !== null && cooldown.start >= 1, `cool-down fixed: ${JSON.stringify(cooldown)}`);
    // Fixed when half the time had passed, as long again as the steps before it.
    const start = recs.find((r) => r.elapsed_s >= 0.75)!.step;
    assert.deepEqual(cooldown, { start, total_steps: Math.max(start + 1, Math.round(start / 0.5)) });
    assert.ok(res.step <= cooldown.total_steps);
    const n = cooldown.total_steps + 1 - cooldown.start;
    assertClose(
      recs.map((r) => r.lr),
      recs.map((r) => (r.step <= start ? 0.01 : (0.01 * (cooldown.total_steps + 1 - r.step)) / n)),
      1e-12,
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('a step whose gradients hold NaN is skipped and counted; training goes on', async () => {
  const out = tmp();
  try {
    const params = initParams(CFG, 3);
    const watched = params.get('layers.0.attn.wk').data;
    let snapshot: Float32Array | undefined;
    let unchangedBySkippedStep = false;
    const events: string[] = [];
    const res = await train({
      ...model(params),
      data: new PatternSource(CFG.vocab_size, B, T),
      outDir: out,
      settings: settings({ maxSteps: 8 }),
      hooks: {
        afterBackward(step, grads) {
          if (step === 4) {
            grads.get('layers.1.attn.wq').data[5] = Number.NaN;
            snapshot = Float32Array.from(watched);
          }
        },
        onStep(r) {
          if (r.step === 4) unchangedBySkippedStep = watched.every((v, i) => v === snapshot![i]);
        },
        onEvent: (m) => events.push(m),
      },
    });
    assert.ok(unchangedBySkippedStep, 'parameters changed during the skipped step');
    const recs = readRecords(out);
    assert.equal(recs[3]!.skipped, true);
    assert.equal(recs[3]!.skipped_steps, 1);
    assert.equal(recs.filter((r) => r.skipped).length, 1);
    assert.equal(res.skippedSteps, 1);
    assert.equal(res.step, 8);
    assert.ok(Number.isFinite(recs[7]!.loss));
    assert.ok(events.some((e) => e.includes('NaN')));
    // The skipped step is not an optimizer update: 7 updates in 8 steps.
    const file = path.join(latestCheckpoint(out)!, OPTIMIZER_FILE);
    assert.equal(readSafetensors(file).metadata.step, '7');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('a diverging loss rolls back to the last good checkpoint and skips the bad data', async () => {
  const out = tmp();
  try {
    // After 24 batches, 6 batches of uniformly random tokens: the loss jumps far above its average.
    class SpikySource extends PatternSource {
      private served = 0;
      override next(): Batch {
        const b = super.next();
        this.served++;
        if (this.served > 24 && this.served <= 30) {
          for (let i = 0; i < b.inputs.length; i++) {
            b.inputs[i] = (i * 7919 + this.served * 104729) % CFG.vocab_size;
            b.targets[i] = (i * 6271 + this.served * 15485863) % CFG.vocab_size;
          }
        }
        return b;
      }
    }
    const events: string[] = [];
    const res = await train({
      ...model(initParams(CFG, 3)),
      data: new SpikySource(CFG.vocab_size, B, T),
      outDir: out,
      settings: settings({ maxSteps: 34, divergenceFactor: 1.5, divergencePatience: 2 }),
      hooks: { onEvent: (m) => events.push(m) },
    });
    assert.ok(res.rollbacks >= 1, `rollbacks ${res.rollbacks}; events: ${events.join(' | ')}`);
    assert.ok(events.some((e) => e.includes('rolling back')));
    assert.equal(res.step, 34);
    assert.ok(Number.isFinite(res.lastLoss));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('kill -9 during checkpoint writes always leaves the previous checkpoint loadable', async () => {
  const out = tmp();
  const writer = path.join(path.dirname(fileURLToPath(import.meta.url)), 'checkpoint-writer.js');
  try {
    for (const delayMs of [30, 170, 320, 90]) {
      const child = spawn(process.execPath, [writer, out], { stdio: ['ignore', 'pipe', 'inherit'] });
      // Wait for one complete checkpoint of this child, then kill it at an arbitrary moment of the next writes.
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('saved')) resolve();
        });
        child.on('exit', (code) => reject(new Error(`writer exited early with ${code}`)));
      });
      await new Promise((r) => setTimeout(r, delayMs));
      child.kill('SIGKILL');
      await new Promise((r) => child.on('exit', r));
      const dir = latestCheckpoint(out);
      assert.ok(dir !== undefined);
      const ck = loadTrainingCheckpoint(dir);
      // Every tensor holds the step it was written at: nothing from a half-written newer checkpoint.
      for (const [name, t] of ck.weights) {
        assert.ok(
          t.data.every((v: number) => v === ck.state.step),
          `${name} mixes data from another step`,
        );
      }
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('--precision bf16: bf16 products, float32 master weights; losses track the fp32 run', async () => {
  const a = tmp();
  const b = tmp();
  try {
    const before = kernels();
    const run = async (out: string, precision: 'fp32' | 'bf16') => {
      const m = model(initParams(CFG, 11));
      await train({
        ...m,
        data: new PatternSource(CFG.vocab_size, B, T),
        outDir: out,
        settings: settings({ maxSteps: 12, precision, cooldownFraction: 0 }),
      });
      return m.weights;
    };
    await run(a, 'fp32');
    const w16 = await run(b, 'bf16');
    assert.equal(kernels(), before, 'the kernels in use are restored after the run');
    const ra = readRecords(a);
    const rb = readRecords(b);
    assert.equal(rb.length, 12);
    assert.ok(rb[11]!.loss < rb[0]!.loss - 0.5, `bf16 loss ${rb[0]!.loss} -> ${rb[11]!.loss}`);
    for (let i = 0; i < 12; i++) {
      // Different roundings, the same training: within 2% of the loss at every step, and not identical.
      assert.ok(
        Math.abs(ra[i]!.loss - rb[i]!.loss) < 0.02 * ra[i]!.loss,
        `step ${i + 1}: ${ra[i]!.loss} vs ${rb[i]!.loss}`,
      );
    }
    assert.ok(
      ra.some((r, i) => r.loss !== rb[i]!.loss),
      'bf16 products change the numbers',
    );
    // The master weights are float32: updates are not rounded to bf16.
    const w = w16.get('layers.0.attn.wq').data;
    assert.ok(
      w.some((v) => v !== roundToBf16(v)),
      'weights hold values bf16 cannot',
    );
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});
