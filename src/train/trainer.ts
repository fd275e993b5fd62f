/**
 * The training loop (docs/model.md "Training recipe"): gradient accumulation, the optimiser it is
 * given on a learning-rate schedule, NaN/Inf step skipping, roll-back to the last good checkpoint when
 * the loss diverges, periodic validation, atomic checkpoints, exact resume, and a graceful stop on
 * SIGINT/SIGTERM. Each step is train/step.ts's trainStep.
 */
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { kernels, type Precision, useKernels, withPrecision } from '../backend/index.js';
import type { Batch, GlamModel, LossParts } from '../model/glam.js';
import { Grads, type Weights } from '../model/weights.js';
import type { Workspace } from '../model/workspace.js';
import { RECIPE_OPTIMIZERS } from '../optim/create.js';
import type { Optimizer } from '../optim/optimizer.js';
import {
  type Cooldown,
  checkCooldownFraction,
  cooldownOver,
  GLAM_SCHEDULE,
  type LrSchedule,
} from '../optim/schedule.js';
import { Rng } from '../util/rng.js';
import {
  type LoadedTrainingCheckpoint,
  loadNewestUsable,
  loadTrainingCheckpoint,
  saveTrainingCheckpoint,
  TRAINER_STATE_FILE,
  type TrainerState,
} from './checkpoints.js';
import type { TrainParallel } from './parallel.js';
import { appendMetrics, clearForFreshRun, lockRun, METRICS_FILE, truncateMetrics } from './run-dir.js';
import { trainStep } from './step.js';

export { METRICS_FILE } from './run-dir.js';

/** Steps between checks that every rank of a parallel run holds the same replicated weights. */
export const REPLICA_CHECK_EVERY = 50;

/** Where training batches come from; its position must be saveable for exact resume. */
export interface BatchSource {
  /** The next batch, in arrays of its own (a step may hold several). */
  next(): Batch;
  getState(): unknown;
  setState(state: unknown): void;
  /** A fixed set of held-out batches. */
  validation(): Batch[];
}

export interface TrainSettings {
  gradAccum: number;
  schedule: LrSchedule;
  maxSteps?: number;
  maxTokens?: number;
  timeMinutes?: number;
  checkpointEvery: number;
  keepLast: number;
  evalEvery: number;
  seed: number;
  /** Roll back when the loss exceeds factor × its running average for `patience` steps in a row. */
  divergenceFactor: number;
  divergencePatience: number;
  maxRollbacks: number;
  /** Matrix-product precision (backend/precision.ts); weights and optimiser state stay float32. Default fp32. */
  precision?: Precision;
  /**
   * Cool the learning rate linearly to 0 over the last fraction of the run (0: never), unless the schedule
   * has its own cool-down. With maxSteps or maxTokens the run's length is known at its first step; a run
   * limited by time alone starts its cool-down when (1 - fraction) of the time has passed, and ends it
   * (and the run) at the step the whole time gives at the pace so far.
   */
  cooldownFraction?: number;
}

/**
 * The default recipe's schedule: GLaM's inverse square root at the recipe's peak, but decaying from step 250
 * instead of 10k (GLaM's constant phase is 10B tokens; here the rate would not decay within a run), and with
 * the cool-down of DEFAULT_TRAIN_SETTINGS over the last fifth of the run. docs/results.md has the evidence.
 */
export const RECIPE_SCHEDULE: Readonly<Extract<LrSchedule, { kind: 'rsqrt' }>> = {
  ...GLAM_SCHEDULE,
  peak_lr: RECIPE_OPTIMIZERS.adafactor.lr,
  decay_start: 250,
};

/**
 * The one place of the trainer's defaults (the recipe's schedule and cool-down);
 * `glam train` takes its option defaults and help text from here.
 */
export const DEFAULT_TRAIN_SETTINGS: Readonly<Omit<TrainSettings, 'seed'>> = {
  gradAccum: 1,
  schedule: RECIPE_SCHEDULE,
  cooldownFraction: 0.2,
  checkpointEvery: 200,
  keepLast: 3,
  evalEvery: 100,
  divergenceFactor: 2,
  divergencePatience: 3,
  maxRollbacks: 5,
};

/** One line of metrics.jsonl. */
export interface StepRecord {
  step: number;
  loss: number;
  lm_loss: number;
  aux_loss: number;
  z_loss: number;
  lr: number;
  tokens: number;
  tokens_seen: number;
  tokens_per_s: number;
  elapsed_s: number;
  grad_norm: number;
  skipped: boolean;
  skipped_steps: number;
  /** Per MoE layer: fraction of kept assignments per expert. */
  expert_load: number[][];
  /** Mean over MoE layers of max expert load / mean expert load (1 = balanced). */
  load_balance: number;
  dropped_fraction: number;
  /** Expert parallelism: per MoE layer, the share of kept assignments each rank's experts processed. */
  rank_load?: number[][];
  router_entropy: number;
  /** Per MoE layer (the two above are their means). */
  layer_dropped_fraction: number[];
  layer_router_entropy: number[];
  val_loss?: number;
  val_lm_loss?: number;
  event?: string;
}

export interface TrainHooks {
  /** Called after backward with the accumulated gradients (tests inject NaN here). */
  afterBackward?(step: number, grads: Grads): void;
  onStep?(record: StepRecord): void;
  onEvent?(message: string): void;
}

export interface TrainRun {
  model: GlamModel;
  /** The weights to train, updated in place (overwritten by the checkpoint's when resuming). */
  weights: Weights;
  /** Its state is saved with every checkpoint and restored on resume and roll-back. */
  optimizer: Optimizer;
  data: BatchSource;
  outDir: string;
  settings: TrainSettings;
  tokenizer?: string;
  resume?: boolean;
  hooks?: TrainHooks;
  /** Set to true (e.g. from a signal handler) to stop after the current step with a checkpoint. */
  stopSignal?: { stop: boolean };
  /**
   * This process is one rank of a data- or expert-parallel run (src/dist): it trains on its rows of
   * each global batch (`data` yields them), rank 0 alone writes metrics and checkpoints, every rank
   * reads them. Hooks run on every rank.
   */
  parallel?: TrainParallel;
}

export interface TrainResult {
  step: number;
  lastLoss: number;
  skippedSteps: number;
  rollbacks: number;
  tokensSeen: number;
  checkpoint: string;
  stoppedBySignal: boolean;
}

function meanParts(parts: LossParts[]): {
  total: number;
  lm: number;
  z: number;
  aux: number;
  tokens: number;
} {
  const n = parts.length;
  const sum = (f: (p: LossParts) => number): number => parts.reduce((s, p) => s + f(p), 0);
  return {
    total: sum((p) => p.total) / n,
    lm: sum((p) => p.lm) / n,
    z: sum((p) => p.z) / n,
    aux: sum((p) => p.aux) / n,
    tokens: sum((p) => p.tokens),
  };
}

/** Expert-load statistics of the last micro-batch's forward. */
function moeSummary(
  parts: LossParts,
): Pick<
  StepRecord,
  | 'expert_load'
  | 'load_balance'
  | 'dropped_fraction'
  | 'router_entropy'
  | 'layer_dropped_fraction'
  | 'layer_router_entropy'
> {
  if (parts.moe.length === 0)
    return {
      expert_load: [],
      load_balance: 1,
      dropped_fraction: 0,
      router_entropy: 0,
      layer_dropped_fraction: [],
      layer_router_entropy: [],
    };
  const loads = parts.moe.map((m) => {
    const total = m.load.reduce((s, v) => s + v, 0);
    return m.load.map((v) => (total > 0 ? v / total : 0));
  });
  const balance = loads.map((l) => Math.max(...l) * l.length);
  const avg = (xs: number[]): number => xs.reduce((s, v) => s + v, 0) / xs.length;
  const dropped = parts.moe.map((m) => m.droppedFraction);
  const entropy = parts.moe.map((m) => m.routerEntropy);
  const round = (v: number): number => Number(v.toFixed(5));
  return {
    expert_load: loads.map((l) => l.map(round)),
    load_balance: avg(balance),
    dropped_fraction: avg(dropped),
    router_entropy: avg(entropy),
    layer_dropped_fraction: dropped.map(round),
    layer_router_entropy: entropy.map(round),
  };
}

/** Per MoE layer, the share of kept assignments each rank's experts processed (expert parallelism). */
function rankLoads(parts: LossParts, ranks: number): number[][] {
  return parts.moe.map((m) => {
    const total = m.load.reduce((s, v) => s + v, 0);
    const per = m.load.length / ranks;
    return Array.from({ length: ranks }, (_, q) => {
      const mine = m.load.slice(q * per, (q + 1) * per).reduce((s, v) => s + v, 0);
      return Number((total > 0 ? mine / total : 0).toFixed(5));
    });
  });
}

function evaluate(
  model: GlamModel,
  weights: Weights,
  ws: Workspace,
  batches: Batch[],
  parallel: TrainParallel | undefined,
): { loss: number; lm: number } {
  let loss = 0;
  let lm = 0;
  // A fixed seed keeps validation deterministic and leaves the training RNG untouched.
  const rng = new Rng(0);
  // Validation is inference: MoE layers route at eval_capacity_factor (dropless by default).
  const capacityFactor = model.config.eval_capacity_factor;
  for (const b of batches) {
    const local = model.forward(weights, ws, b, { rng, capacityFactor });
    const parts = parallel === undefined ? local : parallel.reduceParts([local])[0]!;
    loss += parts.total;
    lm += parts.lm;
  }
  return { loss: loss / batches.length, lm: lm / batches.length };
}

/** Whether the run's length is set in steps or tokens (else only its time is). */
function hasKnownLength(s: TrainSettings): boolean {
  return s.maxSteps !== undefined || s.maxTokens !== undefined;
}

function isDone(s: TrainSettings, state: TrainerState): boolean {
  const { step, tokensSeen, elapsedSeconds: elapsed } = state;
  // A run limited by time alone ends with its cool-down (a run of known length by its limits).
  if (!hasKnownLength(s) && state.cooldown !== null && step >= state.cooldown.total_steps) return true;
  if (s.maxSteps !== undefined && step >= s.maxSteps) return true;
  if (s.maxTokens !== undefined && tokensSeen >= s.maxTokens) return true;
  if (s.timeMinutes !== undefined && elapsed >= s.timeMinutes * 60) return true;
  return false;
}

/** The cool-down over the last `fraction` of a run of known length (the smaller of its step and token limits). */
function cooldownForLength(s: TrainSettings, fraction: number, tokensPerStep: number): Cooldown | null {
  const limits: number[] = [];
  if (s.maxSteps !== undefined) limits.push(s.maxSteps);
  if (s.maxTokens !== undefined) limits.push(Math.ceil(s.maxTokens / tokensPerStep));
  return cooldownOver(fraction, Math.min(...limits)) ?? null;
}

/**
 * The cool-down of a run limited by time alone, fixed at `step` when (1 - fraction) of its time has passed:
 * to step / (1 - fraction), the step the whole time gives at the pace so far (the ranks of a parallel run
 * agree on it without sharing a clock).
 */
function cooldownForTime(step: number, fraction: number): Cooldown {
  return { start: step, total_steps: Math.max(step + 1, Math.round(step / (1 - fraction))) };
}

/**
 * Run (or resume) training until a limit in the settings is reached or a stop is signalled.
 * The run directory is locked meanwhile (a second trainer on it is refused, naming this one).
 */
export async function train(run: TrainRun): Promise<TrainResult> {
  const s = run.settings;
  if (s.maxSteps === undefined && s.maxTokens === undefined && s.timeMinutes === undefined) {
    throw new Error('train: set at least one of maxSteps, maxTokens or timeMinutes');
  }
  checkCooldownFraction(s.cooldownFraction ?? 0, 'train: cooldownFraction');
  mkdirSync(run.outDir, { recursive: true });
  // Ranks of a parallel run share the run directory; rank 0 holds the lock for all of them.
  if ((run.parallel?.rank ?? 0) !== 0) return trainLocked(run);
  const lock = lockRun(run.outDir, 'glam train', (m) => run.hooks?.onEvent?.(m));
  // The model's products run on the kernels in use; bf16 precision swaps in the bf16-operand ones for the run.
  const base = kernels();
  useKernels(withPrecision(base, s.precision ?? 'fp32'));
  try {
    return await trainLocked(run);
  } finally {
    useKernels(base);
    lock.release();
  }
}

async function trainLocked(run: TrainRun): Promise<TrainResult> {
  const { settings: s, data, outDir, hooks = {} } = run;
  const metricsFile = path.join(outDir, METRICS_FILE);
  const { model, weights, optimizer, parallel } = run;
  const isRoot = (parallel?.rank ?? 0) === 0;
  const grads = Grads.like(weights);
  const ws = model.workspace();
  let state: TrainerState = {
    step: 0,
    tokensSeen: 0,
    skippedSteps: 0,
    rollbacks: 0,
    rng: new Rng(s.seed).getState(),
    data: data.getState(),
    elapsedSeconds: 0,
    emaLoss: null,
    cooldown: null,
  };

  const restore = (dir: string, keepDataPosition: boolean): void => {
    let ck: LoadedTrainingCheckpoint;
    if (parallel !== undefined) ck = parallel.loadCheckpoint(dir, weights, optimizer);
    else {
      ck = loadTrainingCheckpoint(dir, optimizer);
      weights.copyFrom(ck.weights, dir);
    }
    const dataState = data.getState();
    state = { ...ck.state };
    if (keepDataPosition) state.data = dataState;
    else {
      try {
        data.setState(state.data);
      } catch (err) {
        throw new Error(`${path.join(dir, TRAINER_STATE_FILE)}: 'data': ${(err as Error).message}`);
      }
    }
  };

  let lastCheckpoint: string | undefined;
  if (run.resume) {
    // The newest checkpoint that loads; a damaged one is skipped, saying why.
    lastCheckpoint = loadNewestUsable(
      outDir,
      (dir) => restore(dir, false),
      (dir, why) => hooks.onEvent?.(`skipping checkpoint ${dir}: ${why}`),
    ).dir;
    if (isRoot) truncateMetrics(metricsFile, state.step);
    // Every rank chose its newest loadable checkpoint on its own: they must agree.
    parallel?.checkReplicas(weights, state.step);
    hooks.onEvent?.(`resumed from ${lastCheckpoint} at step ${state.step}`);
  } else if (isRoot) {
    // A fresh run replaces what an earlier run left in OUT, only what glam wrote (the CLI asks
    // for --overwrite first).
    clearForFreshRun(outDir);
  }
  const rng = Rng.fromState(state.rng);
  const validation = data.validation();

  const checkpoint = (): string => {
    state.rng = rng.getState();
    state.data = data.getState();
    const c = {
      outDir,
      config: model.config,
      params: weights,
      optimizer,
      state,
      keepLast: s.keepLast,
      ...(run.tokenizer === undefined ? {} : { tokenizer: run.tokenizer }),
    };
    return parallel === undefined ? saveTrainingCheckpoint(c) : parallel.saveCheckpoint(c);
  };
  // The newest state known to be good: a roll-back target, kept on disk. A fresh run writes
  // none at step 0 (nothing to lose there); one is written at the first sign of trouble.
  let lastCheckpointStep = run.resume ? state.step : -1;
  const keepGoodState = (): void => {
    if (lastCheckpointStep === state.step) return;
    lastCheckpoint = checkpoint();
    lastCheckpointStep = state.step;
  };

  // A schedule with its own cool-down keeps it. A run of known length places the cool-down from this
  // session's limits: now when resumed (they may have changed), else after its first step, which gives the
  // tokens per step.
  const cooldownFraction =
    s.schedule.kind === 'rsqrt' && s.schedule.cooldown === undefined ? (s.cooldownFraction ?? 0) : 0;
  const knownLength = hasKnownLength(s);
  if (cooldownFraction > 0 && knownLength && state.step > 0)
    state.cooldown = cooldownForLength(s, cooldownFraction, state.tokensSeen / state.step);
  const startTime = performance.now();
  const elapsedBefore = state.elapsedSeconds;
  let lastLoss = Number.NaN;
  let badSteps = 0;
  let stoppedBySignal = false;

  // Ranks of a parallel run see the clock and signals at different moments: they stop together.
  const agreed = (flags: boolean[]): boolean[] => (parallel === undefined ? flags : parallel.anyRank(flags));
  for (;;) {
    const [finished, stop] = agreed([isDone(s, state), run.stopSignal?.stop === true]);
    if (finished) break;
    if (stop) {
      stoppedBySignal = true;
      break;
    }
    const t0 = performance.now();
    const step = state.step + 1;
    const batches: Batch[] = [];
    for (let micro = 0; micro < s.gradAccum; micro++) batches.push(data.next());
    const schedule: LrSchedule =
      state.cooldown === null || s.schedule.kind !== 'rsqrt'
        ? s.schedule
        : { ...s.schedule, cooldown: state.cooldown };
    let diverged = false;
    const { parts, finite, gradNorm, lr } = trainStep(
      { model, weights, grads, ws, optimizer, schedule, ...(parallel ? { parallel } : {}) },
      batches,
      {
        forward: { rng },
        afterBackward: (g) => hooks.afterBackward?.(step, g),
        beforeUpdate: (p) => {
          // Divergence: a loss far above its running average (or non-finite) for several steps in a row.
          const total = meanParts([...p]).total;
          diverged =
            !Number.isFinite(total) || (state.emaLoss !== null && total > s.divergenceFactor * state.emaLoss);
          // First sign of trouble: keep the state before this step's update, so a roll-back loses
          // at most the steps since (not everything since the last periodic checkpoint).
          if (diverged && badSteps === 0) keepGoodState();
        },
      },
    );
    const m = meanParts(parts);
    if (!finite) state.skippedSteps++;

    state.step = step;
    state.tokensSeen += m.tokens;
    const dt = (performance.now() - t0) / 1000;
    state.elapsedSeconds = elapsedBefore + (performance.now() - startTime) / 1000;
    // (Also after a roll-back to a state from before the cool-down was fixed.) A run limited by time alone
    // fixes it once, when the ranks agree that (1 - fraction) of the time has passed; checkpoints keep it.
    if (cooldownFraction > 0 && state.cooldown === null) {
      if (knownLength) state.cooldown = cooldownForLength(s, cooldownFraction, state.tokensSeen / state.step);
      else {
        const [due] = agreed([state.elapsedSeconds >= (1 - cooldownFraction) * (s.timeMinutes ?? 0) * 60]);
        if (due) state.cooldown = cooldownForTime(state.step, cooldownFraction);
      }
    }
    lastLoss = m.total;
    const record: StepRecord = {
      step,
      loss: m.total,
      lm_loss: m.lm,
      aux_loss: m.aux,
      z_loss: m.z,
      lr,
      tokens: m.tokens,
      tokens_seen: state.tokensSeen,
      tokens_per_s: m.tokens / dt,
      elapsed_s: state.elapsedSeconds,
      grad_norm: gradNorm,
      skipped: !finite,
      skipped_steps: state.skippedSteps,
      ...moeSummary(parts[parts.length - 1]!),
      ...(parallel !== undefined && parallel.expertRanks > 1
        ? { rank_load: rankLoads(parts[parts.length - 1]!, parallel.expertRanks) }
        : {}),
    };
    if (!finite) {
      record.event = 'skipped: non-finite gradients';
      hooks.onEvent?.(`step ${step}: gradients hold NaN/Inf, update skipped (${state.skippedSteps} so far)`);
    }

    badSteps = diverged ? badSteps + 1 : 0;
    if (!diverged && finite)
      state.emaLoss = state.emaLoss === null ? m.total : 0.9 * state.emaLoss + 0.1 * m.total;

    const [done] = agreed([isDone(s, state)]);
    if (validation.length > 0 && (step % s.evalEvery === 0 || done)) {
      const v = evaluate(model, weights, ws, validation, parallel);
      record.val_loss = v.loss;
      record.val_lm_loss = v.lm;
    }
    if (isRoot) appendMetrics(metricsFile, record);
    hooks.onStep?.(record);

    if (badSteps >= s.divergencePatience && lastCheckpoint !== undefined) {
      if (state.rollbacks >= s.maxRollbacks) {
        throw new Error(
          `training diverged ${state.rollbacks + 1} times; giving up (last loss ${m.total}). ` +
            `The last good state is ${lastCheckpoint}`,
        );
      }
      const rollbacks = state.rollbacks + 1;
      const skipped = state.skippedSteps;
      hooks.onEvent?.(`step ${step}: loss ${m.total.toFixed(4)} diverged; rolling back to ${lastCheckpoint}`);
      // Keep the data position: replaying the batches that diverged would diverge again.
      restore(lastCheckpoint, true);
      rng.setState(state.rng);
      state.rollbacks = rollbacks;
      state.skippedSteps = skipped;
      badSteps = 0;
      if (isRoot) appendMetrics(metricsFile, { step: state.step, event: `rollback to ${lastCheckpoint}` });
      continue;
    }
    if (step % s.checkpointEvery === 0 && badSteps === 0) keepGoodState();
    if (parallel !== undefined && step % REPLICA_CHECK_EVERY === 0) parallel.checkReplicas(weights, step);
    // Let signal handlers run between steps.
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (badSteps === 0 || stoppedBySignal || lastCheckpoint === undefined) keepGoodState();
  return {
    step: state.step,
    lastLoss,
    skippedSteps: state.skippedSteps,
    rollbacks: state.rollbacks,
    tokensSeen: state.tokensSeen,
    checkpoint: lastCheckpoint!,
    stoppedBySignal,
  };
}
