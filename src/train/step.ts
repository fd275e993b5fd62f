/**
 * One training step, the only one (the trainer and `glam bench train` both run it): zero the gradients,
 * forward and backward over the micro-batches (each scaled 1/count, so the gradient is their mean),
 * the finite check and global norm in one pass over the gradient buffer, and the optimiser's update,
 * which is skipped (and not counted by the optimiser) when a gradient is NaN or ±Infinity.
 */
import type { Batch, ForwardOptions, GlamModel, LossParts } from '../model/glam.js';
import { Grads, type Weights } from '../model/weights.js';
import type { Workspace } from '../model/workspace.js';
import { createOptimizer, type OptimizerConfig } from '../optim/create.js';
import type { Optimizer } from '../optim/optimizer.js';
import { type LrSchedule, learningRate } from '../optim/schedule.js';
import type { StepParallel } from './parallel.js';

/** What a step works on; the caller owns all of it. */
export interface StepContext {
  model: GlamModel;
  weights: Weights;
  grads: Grads;
  ws: Workspace;
  optimizer: Optimizer;
  schedule: LrSchedule;
  /** Set when this process is one of several sharing each batch (data or expert parallelism). */
  parallel?: StepParallel;
}

/** A context over `weights`: fresh gradients and workspace, and a new optimiser built from `optimizer`. */
export function newStepContext(
  model: GlamModel,
  weights: Weights,
  optimizer: OptimizerConfig,
  schedule: LrSchedule,
  parallel?: StepParallel,
): StepContext {
  return {
    model,
    weights,
    grads: Grads.like(weights),
    ws: model.workspace(),
    optimizer: createOptimizer(weights, optimizer),
    schedule,
    ...(parallel !== undefined ? { parallel } : {}),
  };
}

export interface StepOptions {
  /** Routing options of the forward passes (policy 'random' needs the rng). */
  forward?: ForwardOptions;
  /** Called after backward with the accumulated gradients (tests inject NaN here). */
  afterBackward?(grads: Grads): void;
  /** Called after the gradient check, before the update (the trainer keeps a roll-back target here). */
  beforeUpdate?(parts: readonly LossParts[], finite: boolean): void;
}

export interface StepResult {
  /** One per micro-batch (of the global batch when the step is parallel). */
  parts: LossParts[];
  /** Σ g² over every gradient (float64): finite exactly when every gradient is. */
  gradSumSquares: number;
  /** sqrt(gradSumSquares), NaN when a gradient is not finite. */
  gradNorm: number;
  /** False when the update was skipped for non-finite gradients. */
  finite: boolean;
  /** The learning rate of this update (schedule at optimizer.stepCount + 1). */
  lr: number;
  /** Milliseconds per phase: forward (with zeroing the gradients), backward, gradient check, update. */
  ms: { forward: number; backward: number; gradCheck: number; optimizer: number };
}

export function trainStep(ctx: StepContext, batches: readonly Batch[], opts: StepOptions = {}): StepResult {
  const { model, weights, grads, ws, optimizer } = ctx;
  if (batches.length === 0) throw new Error('trainStep: needs at least one batch');
  const ms = { forward: 0, backward: 0, gradCheck: 0, optimizer: 0 };
  let t = performance.now();
  const lap = (): number => {
    const now = performance.now();
    const dt = now - t;
    t = now;
    return dt;
  };
  const par = ctx.parallel;
  grads.zero();
  let parts: LossParts[] = [];
  for (let i = 0; i < batches.length; i++) {
    const local = model.forward(weights, ws, batches[i]!, opts.forward);
    parts.push(local);
    ms.forward += lap();
    if (par === undefined) {
      model.backward(weights, grads, ws, 1 / batches.length);
    } else {
      const { scale, auxScale } = par.backwardScales(local, batches.length);
      const last = i === batches.length - 1;
      model.backward(weights, grads, ws, scale, {
        auxScale,
        ...(last ? { onLayerGrads: (l: number) => par.onLayerGrads(l, grads) } : {}),
      });
    }
    ms.backward += lap();
  }
  par?.finishGradients(grads);
  opts.afterBackward?.(grads);
  const gradSumSquares = par === undefined ? grads.sumSquares() : par.globalSumSquares(grads);
  const finite = Number.isFinite(gradSumSquares);
  if (par !== undefined) parts = par.reduceParts(parts);
  ms.gradCheck = lap();
  opts.beforeUpdate?.(parts, finite);
  const lr = learningRate(ctx.schedule, optimizer.stepCount + 1);
  lap();
  if (finite) optimizer.step(weights, grads, lr);
  ms.optimizer = lap();
  return { parts, gradSumSquares, gradNorm: finite ? Math.sqrt(gradSumSquares) : Number.NaN, finite, lr, ms };
}
