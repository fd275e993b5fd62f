/**
 * The parallel-training pieces that need no MPI: routing groups per rank, a rank's rows of a batch,
 * and the whole parallel path (expert exchange, loss and gradient reduction, checkpoints gathered and
 * sliced) on a one-rank communicator, which must train exactly like no parallelism at all.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { openDataset } from '../../src/data/dataset.js';
import { SingleProcessComm } from '../../src/dist/comm.js';
import { setupRank } from '../../src/dist/run.js';
import type { GlamConfig } from '../../src/model/config.js';
import { GlamModel, groupsPerRank } from '../../src/model/glam.js';
import { initParams } from '../../src/model/init.js';
import { getPreset } from '../../src/model/presets.js';
import { createOptimizer } from '../../src/optim/create.js';
import { DEFAULT_TRAIN_SETTINGS, type StepRecord, train } from '../../src/train/trainer.js';
import { PatternSource } from '../train/helpers.js';
import { preparedDataset } from './train-helpers.js';

describe('parallel training without MPI', () => {
  it('routes each rank’s tokens in groups of its own', () => {
    assert.equal(groupsPerRank(4, 2), 2);
    assert.equal(groupsPerRank(1, 4), 1);
    assert.equal(groupsPerRank(2, 4), 1);
    assert.equal(groupsPerRank(3, 1), 3);
    assert.throws(
      () => groupsPerRank(3, 2),
      /num_groups \(3\) and the number of processes \(2\) must divide/,
    );
  });

  it('a rank reads its rows of each batch, and the position moves past the whole batch', () => {
    const { root, data } = preparedDataset();
    const ds = openDataset(data);
    try {
      const whole = ds.initialPosition(9);
      const mine = ds.initialPosition(9);
      for (let step = 0; step < 3; step++) {
        const all = ds.nextBatch(whole, 4, 16);
        const part = ds.nextBatch(mine, 4, 16, { from: 1, to: 3 });
        assert.equal(part.rows, 2);
        assert.deepEqual(Array.from(part.tokens), Array.from(all.tokens.subarray(17, 3 * 17)));
        assert.deepEqual(part.categories, all.categories.slice(1, 3));
        assert.deepEqual(mine, whole);
      }
      assert.throws(() => ds.nextBatch(mine, 4, 16, { from: 2, to: 2 }), /rows to keep \[2, 2\)/);
    } finally {
      ds.close();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('expert parallelism on one rank trains exactly like one process, checkpoints and resume included', async () => {
    const cfg: GlamConfig = { ...getPreset('tiny-moe'), max_seq_len: 16, capacity_factor: 1.25 };
    const settings = {
      ...DEFAULT_TRAIN_SETTINGS,
      seed: 3,
      checkpointEvery: 3,
      keepLast: 2,
      evalEvery: 4,
    };
    // Runs of 8 steps (the default recipe cools the rate over the last two); b is stopped after step 5,
    // as Ctrl-C stops it, and resumed.
    const records = async (out: string, parallel: boolean, resume = false, stopAfter?: number) => {
      const full = initParams(cfg, 5);
      const comm = new SingleProcessComm();
      const rank = parallel ? setupRank(comm, cfg, 'expert') : undefined;
      const weights = rank === undefined ? full : rank.weights(full);
      const seen: StepRecord[] = [];
      const stopSignal = { stop: false };
      await train({
        model: rank?.model ?? new GlamModel(cfg),
        weights,
        optimizer: createOptimizer(weights, { kind: 'adafactor' }),
        data: new PatternSource(cfg.vocab_size, 4, 16),
        outDir: out,
        settings: { ...settings, maxSteps: 8 },
        resume,
        stopSignal,
        hooks: {
          onStep: (r) => {
            seen.push(r);
            stopSignal.stop = r.step === stopAfter;
          },
        },
        ...(rank === undefined ? {} : { parallel: rank.parallel }),
      });
      return seen;
    };
    const root = mkdtempSync(path.join(tmpdir(), 'glam-par-'));
    try {
      const a = await records(path.join(root, 'a'), false);
      const b = await records(path.join(root, 'b'), true, false, 5);
      // The first run stops with a checkpoint at step 5; the resumed one goes on to 8.
      b.push(...(await records(path.join(root, 'b'), true, true)));
      assert.deepEqual(
        b.map((r) => r.step),
        [1, 2, 3, 4, 5, 6, 7, 8],
      );
      for (const r of b) {
        const ref = a[r.step - 1]!;
        assert.ok(
          Math.abs(r.loss - ref.loss) <= 1e-12 * ref.loss,
          `step ${r.step}: ${r.loss} vs ${ref.loss}`,
        );
        assert.equal(r.dropped_fraction, ref.dropped_fraction);
        assert.deepEqual(r.rank_load, undefined, 'one rank: no per-rank load');
      }
      assert.ok(
        a.some((r) => r.dropped_fraction > 0),
        'capacity drops were exercised',
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
