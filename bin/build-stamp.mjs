/**
 * Build stamps for the install steps: a hash of a build's inputs, stored beside its outputs after a
 * successful build, lets `npm ci` / `npm install` skip a build whose inputs have not changed. npm 11's
 * `npx glam` installs the checkout into npx's cache on first use, which runs these steps again; with
 * the stamps that costs a second instead of a full rebuild. GLAM_REBUILD=1 (or --force) forces
 * the builds.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

/** Files under `rel` (a file or a directory, relative to root), sorted, as root-relative paths. */
function listFiles(root, rel, keep) {
  const abs = path.join(root, rel);
  if (!existsSync(abs)) return [];
  if (!statSync(abs).isDirectory()) return keep(rel) ? [rel] : [];
  return readdirSync(abs, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .flatMap((e) => (e.isDirectory() || e.isFile() ? listFiles(root, path.join(rel, e.name), keep) : []));
}

/** SHA-256 over the named files' paths and contents and the extra strings (tool versions, flags). */
export function inputsHash(root, rels, extra, keep = () => true) {
  const h = createHash('sha256');
  for (const s of extra) h.update(`extra\0${s}\0`);
  for (const rel of rels) {
    for (const file of listFiles(root, rel, keep)) {
      h.update(`file\0${file}\0`);
      h.update(readFileSync(path.join(root, file)));
    }
  }
  return h.digest('hex');
}

/**
 * Whether the stamp records this hash and every listed output exists and is not newer than the stamp
 * (a build by other means, e.g. `npm run build` or `node-gyp build` after an edit, rewrites its outputs
 * without a stamp, so what they hold is no longer known).
 */
export function isUpToDate(stampFile, hash, outputs) {
  if (process.env.GLAM_REBUILD === '1' || process.argv.includes('--force')) return false;
  try {
    const stamped = statSync(stampFile).mtimeMs;
    if (!outputs.every((o) => existsSync(o) && statSync(o).mtimeMs <= stamped)) return false;
    return readFileSync(stampFile, 'utf8').trim() === hash;
  } catch {
    return false;
  }
}

/** Record a successful build (written to a temporary name, then renamed into place). */
export function writeStamp(stampFile, hash) {
  const tmp = `${stampFile}.${process.pid}.tmp`;
  writeFileSync(tmp, `${hash}\n`);
  renameSync(tmp, stampFile);
}
