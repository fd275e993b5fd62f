/**
 * Parallel training steps under mpirun (`mpirun -np R glam bench parallel`): step time, and how much
 * of the gradient all-reduce hides behind backward. Every rank runs trainStep on its rows of synthetic
 * global batches; per step the all-reduce buckets' time on the MPI thread (busy) and the time the step
 * waited for them after its backward (exposed) are summed; hidden fraction = 1 − exposed / busy. The
 * same steps with overlap off (every bucket posted after backward) are the comparison.
 */

import { type Summary, summarize } from '../bench/stats.js';
import type { Batch } from '../model/glam.js';
import { GlamModel } from '../model/glam.js';
import { initParams } from '../model/init.js';
import { resolveConfig } from '../model/presets.js';
import { GLAM_SCHEDULE } from '../optim/schedule.js';
import { newStepContext, trainStep } from '../train/step.js';
import { Rng } from '../util/rng.js';
import type { Communicator } from './comm.js';
import { modelShard, type ParallelMode, RankParallel } from './parallel.js';
import { shardWeights } from './run.js';

export interface ParallelBenchOptions {
  config: string;
  mode: ParallelMode;
  /** Global batch (sequences), split between the ranks. */
  batch: number;
  seqLen: number;
  steps: number;
  warmup: number;
  overlap: boolean;
}

export interface ParallelBenchResult {
  ranks: number;
  config: string;
  mode: ParallelMode;
  overlap: boolean;
  tokensPerStep: number;
  stepMs: Summary;
  /** Median per step. */
  backwardMs: number;
  busyMs: Summary;
  exposedMs: Summary;
  /** 1 − Σexposed / Σbusy over the timed steps (every rank's, pooled). */
  hiddenFraction: number;
  tokensPerSec: number;
}

export async function benchParallel(
  comm: Communicator,
  o: ParallelBenchOptions,
): Promise<ParallelBenchResult> {
  const cfg = resolveConfig(o.config);
  if (o.batch % comm.size !== 0)
    throw new Error(`bench parallel: --batch ${o.batch} must be a multiple of ${comm.size} ranks`);
  const model = new GlamModel(cfg, modelShard(comm, cfg, o.mode));
  const par = new RankParallel(comm, model, o.mode, o.overlap);
  const full = initParams(cfg, 1);
  // This rank's experts, as glam train takes them.
  const weights = shardWeights(full, model);
  const ctx = newStepContext(model, weights, { kind: 'adafactor' }, GLAM_SCHEDULE, par);
  const local = o.batch / comm.size;
  const rng = new Rng(100 + comm.rank);
  const batches: Batch[] = Array.from({ length: 4 }, () => {
    const n = local * o.seqLen;
    const inputs = Int32Array.from({ length: n }, () => rng.int(cfg.vocab_size));
    const targets = Int32Array.from({ length: n }, () => rng.int(cfg.vocab_size));
    return { inputs, targets, batch: local, seqLen: o.seqLen };
  });
  const stepMs: number[] = [];
  const backward: number[] = [];
  const busy: number[] = [];
  const exposed: number[] = [];
  const routeRng = new Rng(3);
  for (let i = 0; i < o.warmup + o.steps; i++) {
    par.takeTimes();
    const t0 = performance.now();
    const r = trainStep(ctx, [batches[i % batches.length]!], { forward: { rng: routeRng } });
    const ms = performance.now() - t0;
    const t = par.takeTimes();
    if (i < o.warmup) continue;
    stepMs.push(ms);
    backward.push(r.ms.backward);
    busy.push(t.commMs);
    exposed.push(t.waitMs);
  }
  // Pool every rank's sums for the hidden fraction; step times are rank 0's.
  const sums = Float64Array.of(
    busy.reduce((a, b) => a + b, 0),
    exposed.reduce((a, b) => a + b, 0),
  );
  comm.allreduceSync(sums);
  const step = summarize(stepMs);
  return {
    ranks: comm.size,
    config: o.config,
    mode: o.mode,
    overlap: o.overlap,
    tokensPerStep: o.batch * o.seqLen,
    stepMs: step,
    backwardMs: summarize(backward).median,
    busyMs: summarize(busy),
    exposedMs: summarize(exposed),
    hiddenFraction: sums[0]! > 0 ? Math.max(0, 1 - sums[1]! / sums[0]!) : 0,
    tokensPerSec: (o.batch * o.seqLen) / (step.median / 1000),
  };
}

export function formatParallelBench(r: ParallelBenchResult): string {
  const f = (s: Summary) => `${s.median.toFixed(1)} [${s.min.toFixed(1)}-${s.max.toFixed(1)}]`;
  return [
    `${r.mode} parallel, ${r.ranks} ranks, ${r.config}, ${r.tokensPerStep} tokens/step, overlap ${r.overlap ? 'on' : 'off'}`,
    `step ms ${f(r.stepMs)}  (${Math.round(r.tokensPerSec)} tokens/s); backward ms ${r.backwardMs.toFixed(1)}`,
    `all-reduce busy ms ${f(r.busyMs)}; exposed ms ${f(r.exposedMs)}; hidden ${(100 * r.hiddenFraction).toFixed(1)}%`,
  ].join('\n');
}
