/** Shared helpers of the model I/O tests. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the tests run compiled from dist/test/model/io). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'test'))) return dir;
    dir = resolve(dir, '..');
  }
  throw new Error('repository root not found above the test file');
}

export function fixture(...parts: string[]): string {
  return join(repoRoot(), 'test', 'fixtures', ...parts);
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'glam-io-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** JSON fixtures write inf/nan as strings. */
export function jsonFloat(v: number | string): number {
  if (v === 'inf') return Number.POSITIVE_INFINITY;
  if (v === '-inf') return Number.NEGATIVE_INFINITY;
  if (v === 'nan') return Number.NaN;
  if (typeof v !== 'number') throw new Error(`not a float: ${JSON.stringify(v)}`);
  return v;
}
