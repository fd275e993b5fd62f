#!/usr/bin/env node
/**
 * npm's `install` step: builds the native addon with node-gyp unless build/ already holds a build of
 * the same sources, flags and Node (see build-stamp.mjs). `npm run build:native` always rebuilds.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inputsHash, isUpToDate, writeStamp } from './build-stamp.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stamp = path.join(root, 'build', 'glam-native.stamp');
const outputs = ['glam_native.node', 'glam_core_test'].map((f) => path.join(root, 'build', 'Release', f));

// MPI appearing or going away changes what binding.gyp builds, so its probe is an input too.
const mpi = execFileSync(process.execPath, [path.join(root, 'native', 'mpi', 'flags.cjs'), 'have'], {
  encoding: 'utf8',
}).trim();
const env = ['CC', 'CXX', 'CFLAGS', 'CXXFLAGS', 'LDFLAGS', 'GLAM_NO_MPI'].map(
  (k) => `${k}=${process.env[k] ?? ''}`,
);
const hash = inputsHash(
  root,
  ['binding.gyp', 'native'],
  [process.version, process.arch, `mpi=${mpi}`, ...env],
);

if (isUpToDate(stamp, hash, outputs)) {
  console.log('glam-moe: native addon up to date (GLAM_REBUILD=1 or `npm run build:native` rebuilds it)');
  process.exit(0);
}
// The project's own node-gyp when installed (a clone), else the one npm provides to install scripts.
const local = path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const [cmd, args] = existsSync(local)
  ? [process.execPath, [local, 'rebuild']]
  : process.env.npm_config_node_gyp
    ? [process.execPath, [process.env.npm_config_node_gyp, 'rebuild']]
    : ['node-gyp', ['rebuild']];
const result = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
if (result.error) throw result.error;
if (result.status !== 0) process.exit(result.status ?? 1);
writeStamp(stamp, hash);
