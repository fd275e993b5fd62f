/**
 * Child process for the kill -9 test: writes training checkpoints in a loop,
 * each with every parameter filled with its step number, and prints "saved N".
 */

import { initParams } from '../../src/model/init.js';
import { getPreset } from '../../src/model/presets.js';
import { createOptimizer } from '../../src/optim/create.js';
import {
  latestCheckpoint,
  loadTrainingCheckpoint,
  saveTrainingCheckpoint,
} from '../../src/train/checkpoints.js';
import { Rng } from '../../src/util/rng.js';

const outDir = process.argv[2]!;
const cfg = getPreset('small-moe');
const params = initParams(cfg, 1);
const optimizer = createOptimizer(params, { kind: 'adafactor' });
const latest = latestCheckpoint(outDir);
let step = latest === undefined ? 0 : loadTrainingCheckpoint(latest).state.step;
for (;;) {
  step++;
  for (const t of params.values()) t.data.fill(step);
  saveTrainingCheckpoint({
    outDir,
    config: cfg,
    params,
    optimizer,
    keepLast: 2,
    state: {
      step,
      tokensSeen: step,
      skippedSteps: 0,
      rollbacks: 0,
      rng: new Rng(step).getState(),
      data: { step },
      elapsedSeconds: 0,
      emaLoss: null,
      cooldown: null,
    },
  });
  process.stdout.write(`saved ${step}\n`);
}
