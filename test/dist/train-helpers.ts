/** A tiny prepared dataset and runs of `glam train` for the distributed training tests. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { GlamConfig } from '../../src/model/config.js';
import { getPreset } from '../../src/model/presets.js';
import { prepareBookDataset, SHIP_BOOK } from '../train/helpers.js';
import { LOOPBACK_ENV, REPO, type RunResult, runCommand } from './helpers.js';

export const BIN = path.join(REPO, 'bin/glam.js');

/** A scratch directory with a prepared 400-token-vocabulary dataset in `data`. */
export function preparedDataset(): { root: string; data: string } {
  const root = mkdtempSync(path.join(tmpdir(), 'glam-dist-'));
  const data = path.join(root, 'data');
  prepareBookDataset(root, data, SHIP_BOOK);
  return { root, data };
}

/** tiny-moe (8 experts) with overrides, written as a config file; returns its path. */
export function moeConfig(dir: string, name: string, over: Partial<GlamConfig>): string {
  const file = path.join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ ...getPreset('tiny-moe'), vocab_size: 400, ...over }));
  return file;
}

/** The training options every run of a test shares (20 steps of 4 sequences of 16 tokens). */
export function trainArgs(config: string, data: string, out: string, extra: string[] = []): string[] {
  return [
    'train',
    '--config',
    config,
    '--data',
    data,
    '--seq-len',
    '16',
    '--batch-size',
    '4',
    '--max-steps',
    '20',
    '--checkpoint-every',
    '5',
    '--eval-every',
    '10',
    // Full validation batches only: a parallel run splits each one's rows between the ranks.
    '--eval-batches',
    '2',
    '--out',
    out,
    ...extra,
  ];
}

/** Runs `glam ARGS` to completion (one thread per process); throws with its output unless it exits 0. */
export async function glam(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  const r = await runCommand(process.execPath, [BIN, ...args], {
    timeoutMs,
    env: { ...LOOPBACK_ENV, ...process.env, GLAM_THREADS: '1' },
  });
  if (r.code !== 0)
    throw new Error(`glam ${args.join(' ')} exited ${r.code ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

export interface StepLine {
  step: number;
  loss: number;
  val_loss?: number;
  rank_load?: number[][];
}

/** The step records of a run's metrics.jsonl (event lines and a line being written are skipped). */
export function stepLines(out: string): StepLine[] {
  const file = path.join(out, 'metrics.jsonl');
  if (!existsSync(file)) return [];
  const lines: StepLine[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    try {
      const r = JSON.parse(line) as StepLine;
      if (typeof r.loss === 'number') lines.push(r);
    } catch {}
  }
  return lines;
}

/** The largest relative difference of two runs' losses step by step (they must have the same steps). */
export function maxRelativeDifference(
  a: StepLine[],
  b: StepLine[],
  key: 'loss' | 'val_loss' = 'loss',
): number {
  if (a.map((r) => r.step).join() !== b.map((r) => r.step).join())
    throw new Error(`the runs logged different steps: ${a.map((r) => r.step)} vs ${b.map((r) => r.step)}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]![key];
    const y = b[i]![key];
    if (x === undefined || y === undefined) {
      if (x !== y) throw new Error(`step ${a[i]!.step}: ${key} logged by one run only`);
      continue;
    }
    worst = Math.max(worst, Math.abs(x - y) / Math.abs(x));
  }
  return worst;
}

/** Starts `glam ARGS` in the background; resolves with its exit once it ends. */
export function startGlam(args: string[]): { pid: number; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: 'ignore',
    env: { ...LOOPBACK_ENV, ...process.env, GLAM_THREADS: '1' },
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { pid: child.pid!, exited };
}

/** This host's processes (pid and command line) whose command line contains every one of `parts`. */
export function processesWith(parts: string[]): { pid: number; args: string }[] {
  const r = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter((line) => parts.every((p) => line.includes(p)))
    .map((line) => {
      const m = /^\s*(\d+)\s+(.*)$/.exec(line)!;
      return { pid: Number(m[1]), args: m[2]! };
    });
}
