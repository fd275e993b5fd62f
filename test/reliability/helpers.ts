/** Shared set-up of the reliability tests: the real CLI, a tiny corpus, a tiny dataset. */
import assert from 'node:assert/strict';
import { type SpawnSyncOptions, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { joinNegativeValues } from '../../src/cli/args.js';
import { Rng } from '../../src/util/rng.js';

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

/** Writes a small text corpus and its data config into `dir`; returns the config's path. */
export function writeTinyCorpus(dir: string, docs = 80, words = 60): string {
  const rng = new Rng(5);
  const vocab = 'the old ship sailed across a quiet sea while sailors sang of home and distant shores'.split(
    ' ',
  );
  const text = Array.from({ length: docs }, (_, i) => {
    const w = Array.from({ length: words }, () => vocab[rng.int(vocab.length)]!);
    return `Chapter ${i}. ${w.join(' ')}.`;
  });
  writeFileSync(path.join(dir, 'book.txt'), text.join('\n\n'));
  const config = path.join(dir, 'data.json');
  writeFileSync(
    config,
    JSON.stringify({
      sources: [{ path: 'book.txt', category: 'books', split: 'paragraph' }],
      vocab_size: 400,
      valid_fraction: 0.1,
      min_category_tokens: 0,
      quality: { enabled: false },
    }),
  );
  return config;
}

/** `glam train` options for a tiny, fast run on `data`. */
export function tinyTrain(data: string, out: string, ...more: string[]): string[] {
  return [
    'train',
    '--config',
    'tiny',
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
