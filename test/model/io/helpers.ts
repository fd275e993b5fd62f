/** Shared helpers of the model I/O tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../paths.js';

export { repoRoot };

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
