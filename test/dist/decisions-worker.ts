/**
 * Runs under mpirun (decisions.test.ts): the decisions every rank must take alike, on RankParallel over
 * MPI. One normal step; a step whose gradients are NaN on rank 1 only (in one of its own experts under
 * expert parallelism, which no all-reduce carries to the other ranks); a flag raised on one rank; the
 * replica check before and after rank 1's copy of a dense weight drifts. One JSON line per rank.
 */
import { openCommunicator } from '../../src/dist/launch.js';
import { modelShard, type ParallelMode, RankParallel } from '../../src/dist/parallel.js';
import { shardWeights } from '../../src/dist/run.js';
import { GlamModel } from '../../src/model/glam.js';
import { initParams } from '../../src/model/init.js';
import { getPreset } from '../../src/model/presets.js';
import { GLAM_SCHEDULE } from '../../src/optim/schedule.js';
import { newStepContext, trainStep } from '../../src/train/step.js';
import { Rng } from '../../src/util/rng.js';

const mode = process.argv[2] as ParallelMode;
const comm = openCommunicator();
const { rank } = comm;
const config = { ...getPreset('tiny-moe'), vocab_size: 64 };
const model = new GlamModel(config, modelShard(comm, config, mode));
const weights = shardWeights(initParams(config, 1), model);
const parallel = new RankParallel(comm, model, mode);
const ctx = newStepContext(model, weights, { kind: 'adafactor' }, GLAM_SCHEDULE, parallel);
const rng = new Rng(7 + rank);
const seqLen = 8;
const tokens = () => Int32Array.from({ length: 2 * seqLen }, () => rng.int(config.vocab_size));
const batch = { inputs: tokens(), targets: tokens(), batch: 2, seqLen };

// The gradient rank 1 spoils: its first expert's under expert parallelism, else a dense one.
const slot = model.layout.slots.find((s) =>
  mode === 'expert' ? s.spec.kind === 'expert' : s.spec.kind !== 'expert',
)!;

const out: Record<string, unknown> = { rank, mode, slot: slot.spec.name };
const first = trainStep(ctx, [batch]);
out.first = { finite: first.finite, loss: first.parts[0]!.total };
const before = weights.data.slice();
const spoiled = trainStep(ctx, [batch], {
  afterBackward: (g) => {
    if (rank === 1) g.data[slot.offset + 3] = Number.NaN;
  },
});
out.spoiled = {
  finite: spoiled.finite,
  weightsUnchanged: weights.data.every((v, i) => Object.is(v, before[i])),
  optimizerSteps: ctx.optimizer.stepCount,
};
out.anyRank = parallel.anyRank([rank === 1, false]);
const check = (step: number): string | null => {
  try {
    parallel.checkReplicas(weights, step);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
};
out.replicasEqual = check(2);
const dense = model.layout.slots.find((s) => s.spec.kind !== 'expert')!;
if (rank === 1) weights.data[dense.offset] = weights.data[dense.offset]! + 1e-3;
out.replicasDrifted = check(3);
console.log(JSON.stringify(out));
await comm.close();
