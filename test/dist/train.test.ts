/**
 * Data- and expert-parallel training under mpirun reproduce one-process training of the same global
 * batch (relative 1e-5 per step over 20 steps), and a 4-rank run resumes after kill -9 of a rank exactly as if never stopped.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadCheckpoint } from '../../src/model/checkpoint.js';
import { mpiSkipReason } from './helpers.js';
import {
  glam,
  maxRelativeDifference,
  moeConfig,
  preparedDataset,
  processesWith,
  startGlam,
  stepLines,
  trainArgs,
} from './train-helpers.js';

const TOLERANCE = 1e-5;

describe('parallel training under mpirun', () => {
  const skip = mpiSkipReason();
  let root = '';
  let data = '';
  before(() => {
    if (skip !== null) return;
    ({ root, data } = preparedDataset());
  });
  after(() => {
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('data parallel on 2 ranks reproduces one process, capacity drops included', {
    skip: skip ?? false,
    timeout: 120_000,
  }, async () => {
    // Two routing groups, one per rank; capacity factor 1 drops assignments in both.
    const config = moeConfig(root, 'dp', { num_groups: 2, capacity_factor: 1 });
    const one = path.join(root, 'dp-1');
    const two = path.join(root, 'dp-2');
    await glam(trainArgs(config, data, one));
    const r = await glam(trainArgs(config, data, two, ['--ranks', '2']));
    assert.match(r.stderr, /data parallel over 2 ranks/);
    const a = stepLines(one);
    const b = stepLines(two);
    assert.equal(a.length, 20);
    assert.ok(maxRelativeDifference(a, b) <= TOLERANCE, `losses differ by ${maxRelativeDifference(a, b)}`);
    assert.ok(maxRelativeDifference(a, b, 'val_loss') <= TOLERANCE);
    // A run that drops nothing would not test the per-rank capacity.
    const dropped = a.map((s) => (s as { dropped_fraction?: number }).dropped_fraction ?? 0);
    assert.ok(Math.max(...dropped) > 0, 'assignments were dropped');
  });

  it('expert parallel on 2 ranks (dropless) reproduces one process; its checkpoint is the full model', {
    skip: skip ?? false,
    timeout: 120_000,
  }, async () => {
    const config = moeConfig(root, 'ep', { num_groups: 2, capacity_factor: 0 });
    const one = path.join(root, 'ep-1');
    const two = path.join(root, 'ep-2');
    await glam(trainArgs(config, data, one));
    const r = await glam(trainArgs(config, data, two, ['--ranks', '2', '--parallel', 'expert']));
    assert.match(r.stderr, /expert parallel over 2 ranks/);
    const a = stepLines(one);
    const b = stepLines(two);
    assert.ok(maxRelativeDifference(a, b) <= TOLERANCE, `losses differ by ${maxRelativeDifference(a, b)}`);
    assert.ok(maxRelativeDifference(a, b, 'val_loss') <= TOLERANCE);
    // Each rank's experts' share of the kept assignments is logged, and they add up.
    for (const s of b) {
      const shares = s.rank_load![0]!;
      assert.equal(shares.length, 2);
      assert.ok(Math.abs(shares[0]! + shares[1]! - 1) < 1e-4);
    }
    // Rank 0 gathered every expert: the checkpoint is the one-process model, to float32 rounding.
    const wa = loadCheckpoint(path.join(one, 'checkpoints/step-000020')).weights;
    const wb = loadCheckpoint(path.join(two, 'checkpoints/step-000020')).weights;
    for (const [name, t] of wa) {
      const u = wb.get(name).data;
      let scale = 0;
      let diff = 0;
      for (let i = 0; i < t.data.length; i++) {
        scale = Math.max(scale, Math.abs(t.data[i]!));
        diff = Math.max(diff, Math.abs(t.data[i]! - u[i]!));
      }
      assert.ok(diff <= 1e-4 * scale, `${name}: max difference ${diff} of max ${scale}`);
    }
  });

  it('4 ranks on 2 cores (expert parallel) resume after kill -9 of a rank, as if never stopped', {
    skip: skip ?? false,
    timeout: 240_000,
  }, async () => {
    const config = moeConfig(root, 'ep4', { num_groups: 4, capacity_factor: 0 });
    const one = path.join(root, 'ep4-1');
    const whole = path.join(root, 'ep4-whole');
    const four = path.join(root, 'ep4-4');
    const steps = ['--max-steps', '40', '--checkpoint-every', '4'];
    const fourRanks = [...steps, '--ranks', '4', '--parallel', 'expert'];
    // Rounding differences between 1 and 4 ranks grow chaotically with the steps (tiny batches, high
    // learning rate: ~1e-5 by step 20 on some instruction sets), so one process is compared over 10
    // steps; the resumed run is compared with an uninterrupted 4-rank run, which it must equal exactly.
    // No cool-down for the 10-step run, so its steps are the 40-step run's first ten.
    await glam(trainArgs(config, data, one, ['--max-steps', '10', '--cooldown', '0']));
    await glam(trainArgs(config, data, whole, fourRanks));
    const run = startGlam(trainArgs(config, data, four, fourRanks));
    // Once a few checkpoints exist, kill -9 one rank: a rank process, not mpirun or the launcher.
    const deadline = Date.now() + 120_000;
    while (stepLines(four).length < 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 30));
    const ranks = processesWith([four, '--parallel', 'expert']).filter(
      (p) => p.pid !== run.pid && !/(^|\/)mpirun\s/.test(p.args),
    );
    assert.equal(ranks.length, 4, `rank processes: ${ranks.map((p) => p.args).join('\n')}`);
    const killedAt = stepLines(four).length;
    process.kill(ranks[3]!.pid, 'SIGKILL');
    const code = await run.exited;
    assert.notEqual(code, 0, 'mpirun reports the killed rank');
    // mpirun can exit while a surviving rank still writes its SIGTERM checkpoint and holds the run's
    // lock (a resume then rightly refuses): wait until every rank process is gone.
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const gone = Date.now() + 60_000;
    while (ranks.some((p) => alive(p.pid)) && Date.now() < gone) await new Promise((r) => setTimeout(r, 50));
    assert.ok(killedAt < 40, `the run was killed before it ended (step ${killedAt})`);
    await glam(trainArgs(config, data, four, [...fourRanks, '--resume']), 180_000);
    const a = stepLines(one);
    const b = stepLines(four);
    const c = stepLines(whole);
    assert.deepEqual(
      b.map((s) => s.step),
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      b.map((s) => [s.loss, s.val_loss]),
      c.map((s) => [s.loss, s.val_loss]),
      'the resumed run equals the uninterrupted one',
    );
    const first10 = b.slice(0, 10);
    assert.ok(
      maxRelativeDifference(a, first10) <= TOLERANCE,
      `losses differ by ${maxRelativeDifference(a, first10)}`,
    );
  });
});
