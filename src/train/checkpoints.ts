/**
 * A run's checkpoints: OUT/checkpoints/step-000123/ holding config.json,
 * model.safetensors, tokenizer.json, optimizer.safetensors and trainer-state.json.
 *
 * Each checkpoint is written into a hidden temporary directory and renamed into
 * place only once every file is on disk (fsync'd), so a crash or `kill -9` at any
 * moment leaves either the complete new checkpoint or none of it; the previous
 * one stays loadable. The newest complete directory is the latest checkpoint.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import {
  CONFIG_FILE,
  checkFinite,
  type LoadedCheckpoint,
  loadCheckpoint,
  loadCheckpointStored,
  MODEL_FILE,
  type StoredCheckpoint,
  saveCheckpoint,
  TOKENIZER_FILE,
} from '../model/checkpoint.js';
import type { GlamConfig } from '../model/config.js';
import type { Params } from '../model/params.js';
import { readSafetensors, writeSafetensors } from '../model/safetensors.js';
import type { Weights } from '../model/weights.js';
import { type Optimizer, optimizerMetadata, restoreOptimizer } from '../optim/optimizer.js';
import type { Cooldown } from '../optim/schedule.js';
import { ATOMIC_TEMP, atomicWriteJsonSync, fsyncDir } from '../util/atomic.js';
import { briefValue, lstatOrUndefined, READ_LIMITS, readJsonFile } from '../util/files.js';
import type { RngState } from '../util/rng.js';

export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_FILE = 'trainer-state.json';
export const STEP_DIR = /^step-(\d+)$/;
/** Temporary directories saveTrainingCheckpoint writes into: `.tmp-step-N-PID`, `...-old`. */
export const CHECKPOINT_TEMP = /^\.tmp-step-\d+-\d+(-old)?$/;
const CHECKPOINT_FILES = new Set([
  CONFIG_FILE,
  MODEL_FILE,
  TOKENIZER_FILE,
  OPTIMIZER_FILE,
  TRAINER_STATE_FILE,
]);

/**
 * Whether `dir` is provably a checkpoint directory glam wrote: a real directory holding only
 * checkpoint files (and temporaries of its atomic writes), with trainer-state.json when
 * `complete` (a finished checkpoint; its temporary directory may lack it).
 */
export function isOwnCheckpoint(dir: string, opts: { complete?: boolean } = {}): boolean {
  if (!lstatOrUndefined(dir)?.isDirectory()) return false;
  let complete = false;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isFile() && CHECKPOINT_FILES.has(e.name)) complete ||= e.name === TRAINER_STATE_FILE;
    else if (!(e.isFile() && ATOMIC_TEMP.test(e.name))) return false;
  }
  return complete || opts.complete === false;
}

/** Everything besides weights and optimizer state needed to continue a run exactly. */
export interface TrainerState {
  step: number;
  tokensSeen: number;
  skippedSteps: number;
  rollbacks: number;
  rng: RngState;
  data: unknown;
  elapsedSeconds: number;
  emaLoss: number | null;
  /** The learning-rate cool-down once the trainer has fixed it (see TrainSettings.cooldownFraction), else null. */
  cooldown: Cooldown | null;
}

export function checkpointsDir(outDir: string): string {
  return path.join(outDir, 'checkpoints');
}

/** Steps of the complete checkpoints under OUT, ascending. */
export function listCheckpointSteps(outDir: string): number[] {
  const dir = checkpointsDir(outDir);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((name) => STEP_DIR.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .filter((step) => existsSync(path.join(stepDir(outDir, step), TRAINER_STATE_FILE)))
    .sort((a, b) => a - b);
}

export function stepDir(outDir: string, step: number): string {
  if (!Number.isSafeInteger(step) || step < 0) throw new Error(`invalid checkpoint step ${step}`);
  return path.join(checkpointsDir(outDir), `step-${String(step).padStart(6, '0')}`);
}

/** The latest complete checkpoint directory of a run, or undefined. */
export function latestCheckpoint(outDir: string): string | undefined {
  const steps = listCheckpointSteps(outDir);
  return steps.length === 0 ? undefined : stepDir(outDir, steps[steps.length - 1]!);
}

export interface SaveTrainingCheckpoint {
  outDir: string;
  config: GlamConfig;
  params: Params;
  optimizer: Optimizer;
  state: TrainerState;
  tokenizer?: string;
  keepLast: number;
}

/** Write a complete checkpoint atomically, then prune all but the newest `keepLast`. Returns its directory. */
export function saveTrainingCheckpoint(c: SaveTrainingCheckpoint): string {
  const root = checkpointsDir(c.outDir);
  mkdirSync(root, { recursive: true });
  const final = stepDir(c.outDir, c.state.step);
  const tmp = path.join(root, `.tmp-${path.basename(final)}-${process.pid}`);
  if (existsSync(tmp)) {
    // Left by an earlier process that had this pid and died mid-write.
    if (!isOwnCheckpoint(tmp, { complete: false }))
      throw new Error(`${tmp} holds files glam did not write; move it away`);
    rmSync(tmp, { recursive: true, force: true });
  }
  mkdirSync(tmp);
  saveCheckpoint(tmp, c.config, c.params, c.tokenizer === undefined ? {} : { tokenizer: c.tokenizer });
  writeSafetensors(
    path.join(tmp, OPTIMIZER_FILE),
    c.optimizer.stateTensors(),
    optimizerMetadata(c.optimizer),
  );
  atomicWriteJsonSync(path.join(tmp, TRAINER_STATE_FILE), c.state);
  fsyncDir(tmp);
  // Replacing an existing checkpoint of the same step: move the old one aside first.
  if (lstatOrUndefined(final) !== undefined) {
    if (!isOwnCheckpoint(final)) {
      rmSync(tmp, { recursive: true, force: true });
      throw new Error(
        `${final} exists and is not a checkpoint glam wrote; it will not be replaced (move it away)`,
      );
    }
    const old = `${tmp}-old`;
    renameSync(final, old);
    renameSync(tmp, final);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(tmp, final);
  }
  fsyncDir(root);
  pruneCheckpoints(c.outDir, c.keepLast);
  return final;
}

/**
 * Remove all but the newest `keep` checkpoints, and temporaries of dead writers (the run's
 * lock guarantees no other writer is alive). Only directories glam provably wrote are removed.
 */
export function pruneCheckpoints(outDir: string, keep: number): void {
  const steps = listCheckpointSteps(outDir).filter((step) => isOwnCheckpoint(stepDir(outDir, step)));
  for (const step of steps.slice(0, Math.max(0, steps.length - Math.max(1, keep)))) {
    rmSync(stepDir(outDir, step), { recursive: true, force: true });
  }
  const root = checkpointsDir(outDir);
  for (const name of readdirSync(root)) {
    const dir = path.join(root, name);
    if (
      CHECKPOINT_TEMP.test(name) &&
      !name.includes(`-${process.pid}`) &&
      isOwnCheckpoint(dir, { complete: false })
    ) {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

export interface LoadedTrainingCheckpoint {
  dir: string;
  config: GlamConfig;
  weights: Weights;
  state: TrainerState;
}

function parseTrainerState(file: string, raw: unknown): TrainerState {
  const bad = (msg: string): never => {
    throw new Error(`${file}: not a valid trainer state: ${msg}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('expected a JSON object');
  const s = raw as Record<string, unknown>;
  const count = (key: string): void => {
    const v = s[key];
    if (!Number.isSafeInteger(v) || (v as number) < 0)
      bad(`'${key}' must be a non-negative integer, got ${briefValue(v)}`);
  };
  count('step');
  count('tokensSeen');
  count('skippedSteps');
  count('rollbacks');
  if (typeof s.elapsedSeconds !== 'number' || !Number.isFinite(s.elapsedSeconds) || s.elapsedSeconds < 0)
    bad(`'elapsedSeconds' must be a non-negative number, got ${briefValue(s.elapsedSeconds)}`);
  if (s.emaLoss !== null && (typeof s.emaLoss !== 'number' || !Number.isFinite(s.emaLoss)))
    bad(`'emaLoss' must be a number or null, got ${briefValue(s.emaLoss)}`);
  const rng = s.rng as { s?: unknown } | null;
  if (typeof rng !== 'object' || rng === null || !Array.isArray(rng.s))
    bad(`'rng' must be an RNG state {"s": [...]}, got ${briefValue(s.rng)}`);
  if (typeof s.data !== 'object' || s.data === null)
    bad(`'data' must be the data reader's position (an object), got ${briefValue(s.data)}`);
  // States written before cool-downs existed have none.
  if (s.cooldown === undefined) s.cooldown = null;
  const c = s.cooldown as { start?: unknown; total_steps?: unknown } | null;
  if (
    c !== null &&
    (typeof c !== 'object' ||
      !Number.isSafeInteger(c.start) ||
      !Number.isSafeInteger(c.total_steps) ||
      !((c.start as number) >= 0 && (c.start as number) <= (c.total_steps as number)))
  )
    bad(
      `'cooldown' must be null or {"start", "total_steps"} with 0 <= start <= total_steps, got ${briefValue(c)}`,
    );
  return s as unknown as TrainerState;
}

/** Load a training checkpoint and restore the optimizer's state into `optimizer`. */
export function loadTrainingCheckpoint(dir: string, optimizer?: Optimizer): LoadedTrainingCheckpoint {
  const { config, weights } = loadCheckpoint(dir);
  const stateFile = path.join(dir, TRAINER_STATE_FILE);
  const state = parseTrainerState(stateFile, readJsonFile(stateFile, READ_LIMITS.json, 'trainer state'));
  if (optimizer !== undefined) {
    const file = path.join(dir, OPTIMIZER_FILE);
    const { tensors, metadata } = readSafetensors(file, { requireF32: true });
    checkFinite(tensors, file);
    restoreOptimizer(optimizer, tensors, metadata);
  }
  return { dir, config, weights, state };
}

/**
 * Resume from the newest checkpoint of a run that `load` accepts, falling back to older ones:
 * each one skipped is reported through `onSkip` with the reason. Returns what `load` returned
 * and the directory used; throws when none loads, giving each one's reason.
 */
export function loadNewestUsable<T>(
  outDir: string,
  load: (dir: string) => T,
  onSkip?: (dir: string, reason: string) => void,
): { dir: string; value: T } {
  const steps = listCheckpointSteps(outDir);
  if (steps.length === 0) throw new Error(`no checkpoint in ${checkpointsDir(outDir)}`);
  const reasons: string[] = [];
  for (const step of [...steps].reverse()) {
    const dir = stepDir(outDir, step);
    try {
      return { dir, value: load(dir) };
    } catch (err) {
      const reason = (err as Error).message;
      reasons.push(reason);
      onSkip?.(dir, reason);
    }
  }
  throw new Error(`no usable checkpoint in ${checkpointsDir(outDir)}:\n  ${reasons.join('\n  ')}`);
}

/** The run directory a checkpoint directory `RUN/checkpoints/step-N` belongs to, if it is one. */
function runOf(dir: string): string | undefined {
  const parent = path.dirname(path.resolve(dir));
  return STEP_DIR.test(path.basename(dir)) && path.basename(parent) === 'checkpoints'
    ? path.dirname(parent)
    : undefined;
}

/**
 * Load a model for inference from a checkpoint directory or a run directory (its latest
 * checkpoint). When a run's checkpoint does not load, the error names the newest earlier
 * checkpoint of the run that does, so the user can pass it instead.
 */
export function loadModelCheckpoint(dirOrRun: string): LoadedCheckpoint & { dir: string } {
  return loadModelWith(dirOrRun, loadCheckpoint);
}

/**
 * The same, with the weights as stored: a bf16 checkpoint's matrices stay bf16, for the inference
 * engine's bf16 products.
 */
export function loadModelCheckpointStored(dirOrRun: string): StoredCheckpoint & { dir: string } {
  return loadModelWith(dirOrRun, loadCheckpointStored);
}

function loadModelWith<T>(dirOrRun: string, load: (dir: string) => T): T & { dir: string } {
  const dir = resolveModelDir(dirOrRun);
  try {
    return { dir, ...load(dir) };
  } catch (err) {
    const run = runOf(dir);
    if (run === undefined) throw err;
    const failed = Number(STEP_DIR.exec(path.basename(dir))![1]);
    const earlier = listCheckpointSteps(run)
      .filter((s) => s < failed)
      .map((s) => stepDir(run, s))
      .reverse();
    for (const d of earlier) {
      try {
        load(d);
      } catch {
        continue;
      }
      throw new Error(`${(err as Error).message}\nthe earlier checkpoint ${d} loads: pass --model ${d}`);
    }
    throw err;
  }
}

/** A checkpoint directory, or the latest checkpoint of a run directory. */
export function resolveModelDir(dir: string): string {
  if (!existsSync(dir)) throw new Error(`checkpoint directory '${dir}' does not exist`);
  if (existsSync(path.join(dir, CONFIG_FILE))) return dir;
  const latest = latestCheckpoint(dir);
  if (latest === undefined)
    throw new Error(`${dir}: neither a checkpoint (config.json) nor a run with checkpoints`);
  return latest;
}
