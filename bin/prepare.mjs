#!/usr/bin/env node
/**
 * npm's `prepare` step (after `npm ci` / `npm install` in a clone): compiles the TypeScript and links
 * node_modules/.bin/glam to bin/glam.js, so `npx glam ...` runs this checkout at once instead of
 * installing the project into npx's cache and rebuilding it there.
 *
 * npx also runs this step when it is asked for `glam` in a clone that has not been installed yet
 * (it then tries to install the clone itself). There is nothing to build with then; saying so and
 * succeeding leaves npx a working entry (bin/glam.js, which repeats the advice) instead of a broken one.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, symlinkSync, unlinkSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inputsHash, isUpToDate, writeStamp } from './build-stamp.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');

if (!existsSync(tsc)) {
  console.error(
    `glam-moe: the dependencies of ${root} are not installed, so nothing is built.\n` +
      `Run \`npm ci\` there first; then \`npx glam ...\` runs at once.`,
  );
  process.exit(0);
}
// Skipped when dist/ holds a compile of the same sources by the same compiler (build-stamp.mjs).
const stamp = path.join(root, 'dist', '.glam-build.stamp');
const tscVersion = JSON.parse(
  readFileSync(path.join(root, 'node_modules', 'typescript', 'package.json'), 'utf8'),
).version;
const hash = inputsHash(root, ['tsconfig.json', 'src', 'test', 'bench'], [`typescript=${tscVersion}`], (f) =>
  f.endsWith('.ts'),
);
if (isUpToDate(stamp, hash, [path.join(root, 'dist', 'src', 'cli', 'main.js')])) {
  console.log('glam-moe: dist/ up to date (GLAM_REBUILD=1 or `npm run build` recompiles it)');
} else {
  execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
  writeStamp(stamp, hash);
}

// The package's own bin, beside its dependencies' (npm links bins of dependencies only).
const binDir = path.join(root, 'node_modules', '.bin');
const link = path.join(binDir, 'glam');
mkdirSync(binDir, { recursive: true });
const target = path.relative(binDir, path.join(root, 'bin', 'glam.js'));
let existing;
try {
  existing = lstatSync(link);
} catch {}
if (existing === undefined || existing.isSymbolicLink()) {
  if (existing !== undefined) unlinkSync(link); // a link (ours from an earlier install, or npm's)
  symlinkSync(target, link);
} else {
  console.error(
    `glam-moe: ${link} exists and is not a link; left alone (npx glam may not run this checkout)`,
  );
}
