/** Shared set-up of the reliability tests: the real CLI, a tiny corpus, a tiny dataset. */
import assert from 'node:assert/strict';
import { type SpawnSyncOptions, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { joinNegativeValues } from '../../src/cli/args.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BIN = path.resolve(here, '../../../bin/glam.js');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `glam ARGS` as a user would (one compute thread, so parallel tests do not crowd the cores). */
export function glam(args: string[], opts: SpawnSyncOptions = {}): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    ...opts,
    env: { ...process.env, GLAM_THREADS: '1', ...opts.env },
  });
  return { code: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

export function tempRoot(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `glam-rel-${prefix}-`));
}

/** `glam train` options for a tiny, fast run on `data`. */
export function tinyTrain(data: string, out: string, ...more: string[]): string[] {
  return tinyTrainOf('tiny', data, out, ...more);
}

/** The same for the model `config` (a preset name or a config file). */
export function tinyTrainOf(config: string, data: string, out: string, ...more: string[]): string[] {
  return [
    'train',
    '--config',
    config,
    '--data',
    data,
    '--seq-len',
    '16',
    '--batch-size',
    '2',
    '--out',
    out,
    ...more,
  ];
}

/** The process id of a process that has exited (for stale locks and leftovers). */
export function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
}

/**
 * Run `glam ARGS` in this process (the command's own run(), after the same argument handling
 * as bin/glam.js): for refusals, which must throw before doing anything, without the cost of
 * starting a process.
 */
export async function glamInProcess(args: string[]): Promise<void> {
  const [cmd, ...rest] = args;
  const mod = (await import(`../../src/cli/${cmd}.js`)) as { run(a: string[]): Promise<void> };
  await mod.run(joinNegativeValues(rest));
}

/** `glam ARGS` (in this process) must refuse with an error matching `pattern`. */
export async function refuses(args: string[], pattern: RegExp): Promise<void> {
  await assert.rejects(glamInProcess(args), pattern, args.join(' '));
}
