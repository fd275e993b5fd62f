/**
 * An llm.c-style trajectory test: ten training steps of GLaM's recipe (Adafactor, the GLaM schedule,
 * z and load-balancing losses, an MoE model that drops tokens) from the weights and on the batches of
 * test/fixtures/trajectory, against the same ten steps of the PyTorch oracle (tools/torch_glam.py
 * make-trajectory: float64 model, Adafactor written from docs/model.md). Every step's loss parts must
 * agree within 1e-4 relative and the dropped assignments exactly; the final parameters by their sums
 * and L2 norms. Float32 against float64 over ten steps differs by about 1e-6 here: a missing term, a
 * wrong factor or a mis-ordered routing rule moves these numbers by far more.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint } from '../../src/model/checkpoint.js';
import { type Batch, GlamModel } from '../../src/model/glam.js';
import { Grads } from '../../src/model/weights.js';
import { createOptimizer } from '../../src/optim/create.js';
import { GLAM_SCHEDULE } from '../../src/optim/schedule.js';
import { trainStep } from '../../src/train/step.js';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/trajectory');

interface Expected {
  steps: number;
  losses: { total: number; lm: number; z: number; aux: number; dropped: number }[];
  final_checksums: Record<string, { sum: number; l2: number; abs_sum: number }>;
}

const LOSS_RTOL = 1e-4;

test('ten Adafactor steps follow the PyTorch oracle: losses and final parameters', () => {
  const expected = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
  const rows = JSON.parse(readFileSync(path.join(dir, 'batches.json'), 'utf8')) as number[][][];
  assert.equal(rows.length, expected.steps);
  const { config, weights } = loadCheckpoint(dir);
  const model = new GlamModel(config);
  const ctx = {
    model,
    weights,
    grads: Grads.like(weights),
    ws: model.workspace(),
    optimizer: createOptimizer(weights, { kind: 'adafactor' }),
    schedule: GLAM_SCHEDULE,
  };
  let worst = 0;
  rows.forEach((batchRows, step) => {
    const B = batchRows.length;
    const T = batchRows[0]!.length - 1;
    const batch: Batch = {
      inputs: new Int32Array(B * T),
      targets: new Int32Array(B * T),
      batch: B,
      seqLen: T,
    };
    batchRows.forEach((row, b) => {
      batch.inputs.set(row.slice(0, T), b * T);
      batch.targets.set(row.slice(1), b * T);
    });
    const r = trainStep(ctx, [batch]);
    assert.ok(r.finite, `step ${step + 1}: non-finite gradients`);
    const got = r.parts[0]!;
    const want = expected.losses[step]!;
    assert.equal(got.dropped, want.dropped, `step ${step + 1}: dropped assignments`);
    for (const key of ['total', 'lm', 'z', 'aux'] as const) {
      const rel = Math.abs(got[key] - want[key]) / Math.abs(want[key]);
      worst = Math.max(worst, rel);
      assert.ok(
        rel <= LOSS_RTOL,
        `step ${step + 1}: ${key} ${got[key]} vs oracle ${want[key]} (rel ${rel.toExponential(2)})`,
      );
    }
  });
  assert.equal(ctx.optimizer.stepCount, expected.steps);
  for (const [name, want] of Object.entries(expected.final_checksums)) {
    const d = weights.get(name).data;
    let sum = 0;
    let sq = 0;
    for (const v of d) {
      sum += v;
      sq += v * v;
    }
    const l2 = Math.sqrt(sq);
    assert.ok(Math.abs(l2 - want.l2) <= LOSS_RTOL * want.l2, `${name}: L2 ${l2} vs oracle ${want.l2}`);
    assert.ok(
      Math.abs(sum - want.sum) <= LOSS_RTOL * want.abs_sum,
      `${name}: sum ${sum} vs oracle ${want.sum}`,
    );
  }
  assert.ok(worst < LOSS_RTOL);
});
