/**
 * What a training step and the training loop need from a run spread over several processes (src/dist
 * implements it over MPI; absent, the run is one process). Every process runs the same loop on its
 * own rows of each global batch; these hooks make the processes' shares add up to the one-process
 * step, and keep every decision (skip, roll back, stop) the same on all of them.
 */
import type { LossParts } from '../model/glam.js';
import type { Grads, Weights } from '../model/weights.js';
import type { Optimizer } from '../optim/optimizer.js';
import type { LoadedTrainingCheckpoint, SaveTrainingCheckpoint } from './checkpoints.js';

export interface StepParallel {
  /**
   * The gradient scales of this process's share of one of `micros` micro-batches, whose forward gave
   * `parts` (collective: learns the global batch's token count). The LM and z losses are means over
   * the global batch's tokens, the aux loss a mean over all processes' routing groups.
   */
  backwardScales(parts: LossParts, micros: number): { scale: number; auxScale: number };
  /** During the last micro-batch's backward: layer l's gradients are complete (starts reducing them). */
  onLayerGrads(layer: number, grads: Grads): void;
  /** After the last backward: makes `grads` the global batch's gradient (waits for the reductions). */
  finishGradients(grads: Grads): void;
  /** Σ g² of the global gradient, the same on every process (NaN on every process if any is NaN). */
  globalSumSquares(grads: Grads): number;
  /** The global batch's loss parts (per micro-batch) from this process's (collective). */
  reduceParts(parts: readonly LossParts[]): LossParts[];
}

export interface TrainParallel extends StepParallel {
  readonly rank: number;
  readonly size: number;
  /** Processes the experts are spread over (expert parallelism), else 1. */
  readonly expertRanks: number;
  /** One line for the log, e.g. "data parallel over 2 MPI ranks". */
  readonly description: string;
  /** Writes a checkpoint from rank 0 (gathering what only other ranks hold); returns its directory on every rank. */
  saveCheckpoint(c: SaveTrainingCheckpoint): string;
  /** Loads a checkpoint on every rank: this rank's weights (and optimizer state) from the full ones. */
  loadCheckpoint(dir: string, weights: Weights, optimizer: Optimizer): LoadedTrainingCheckpoint;
  /** For each flag, whether it is true on any rank (collective: every rank decides alike). */
  anyRank(flags: readonly boolean[]): boolean[];
  /** Throws, naming the step, unless every rank holds the same replicated weights. */
  checkReplicas(weights: Weights, step: number): void;
}
