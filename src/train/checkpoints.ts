/**
 * A run's checkpoints: OUT/checkpoints/step-000123/ holding config.json,
 * model.safetensors, tokenizer.json, optimizer.safetensors and trainer-state.json.
 *
 * Each checkpoint is written into a hidden temporary directory and renamed into
 * place only once every file is on disk (fsync'd), so a crash or `kill -9` at any
 * moment leaves either the complete new checkpoint or none of it; the previous
 * one stays loadable. The newest complete directory is the latest checkpoint.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { CONFIG_FILE, loadCheckpoint, saveCheckpoint, saveTensors } from '../model/checkpoint.js';
import type { GlamConfig } from '../model/config.js';
import type { Params } from '../model/params.js';
import { readSafetensors } from '../model/safetensors.js';
import { type Optimizer, optimizerMetadata, restoreOptimizer } from '../optim/optimizer.js';
import { atomicWriteJsonSync, fsyncDir } from '../util/atomic.js';
import type { RngState } from '../util/rng.js';

export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_FILE = 'trainer-state.json';
const STEP_DIR = /^step-(\d+)$/;

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
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  saveCheckpoint(tmp, c.config, c.params, c.tokenizer === undefined ? {} : { tokenizer: c.tokenizer });
  saveTensors(path.join(tmp, OPTIMIZER_FILE), c.optimizer.stateTensors(), optimizerMetadata(c.optimizer));
  atomicWriteJsonSync(path.join(tmp, TRAINER_STATE_FILE), c.state);
  fsyncDir(tmp);
  // Replacing an existing checkpoint of the same step: move the old one aside first.
  if (existsSync(final)) {
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

/** Remove all but the newest `keep` checkpoints, and stale temporaries of dead writers. */
export function pruneCheckpoints(outDir: string, keep: number): void {
  const steps = listCheckpointSteps(outDir);
  for (const step of steps.slice(0, Math.max(0, steps.length - Math.max(1, keep)))) {
    rmSync(stepDir(outDir, step), { recursive: true, force: true });
  }
  const root = checkpointsDir(outDir);
  for (const name of readdirSync(root)) {
    if (name.startsWith('.tmp-') && !name.includes(`-${process.pid}`)) {
      rmSync(path.join(root, name), { recursive: true, force: true });
    }
  }
}

export interface LoadedTrainingCheckpoint {
  dir: string;
  config: GlamConfig;
  params: Params;
  state: TrainerState;
}

function parseTrainerState(file: string, raw: unknown): TrainerState {
  const s = raw as Partial<TrainerState> | null;
  const ok =
    typeof s === 'object' &&
    s !== null &&
    Number.isInteger(s.step) &&
    typeof s.tokensSeen === 'number' &&
    typeof s.skippedSteps === 'number' &&
    typeof s.rollbacks === 'number' &&
    typeof s.elapsedSeconds === 'number' &&
    Array.isArray(s.rng?.s);
  if (!ok)
    throw new Error(`${file}: not a valid trainer state (needs step, tokensSeen, skippedSteps, rng, ...)`);
  return s as TrainerState;
}

/** Load a training checkpoint and restore the optimizer's state into `optimizer`. */
export function loadTrainingCheckpoint(dir: string, optimizer?: Optimizer): LoadedTrainingCheckpoint {
  const { config, params } = loadCheckpoint(dir);
  const stateFile = path.join(dir, TRAINER_STATE_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(stateFile, 'utf8'));
  } catch (err) {
    throw new Error(`${stateFile}: cannot read trainer state (${(err as Error).message})`);
  }
  const state = parseTrainerState(stateFile, raw);
  if (optimizer !== undefined) {
    const file = path.join(dir, OPTIMIZER_FILE);
    const { tensors, metadata } = readSafetensors(file, { requireF32: true });
    restoreOptimizer(optimizer, tensors, metadata);
  }
  return { dir, config, params, state };
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
