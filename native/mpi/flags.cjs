#!/usr/bin/env node
// Build-time probe for the optional MPI addon (binding.gyp): prints `1`/`0` (have), or the compile or
// link flags. MPI counts as present when its C compiler wrapper or pkg-config names an include
// directory holding mpi.h; GLAM_NO_MPI=1 skips the addon even then.
'use strict';
const { execFileSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

function run(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function probe() {
  if (process.env.GLAM_NO_MPI === '1') return null;
  const candidates = [
    () => {
      const c = run('mpicc', ['--showme:compile']);
      const l = run('mpicc', ['--showme:link']);
      return c !== null && l !== null ? { compile: c, link: l } : null;
    },
    () => {
      for (const pkg of ['ompi-c', 'mpi']) {
        const c = run('pkg-config', ['--cflags', pkg]);
        const l = run('pkg-config', ['--libs', pkg]);
        if (c !== null && l !== null) return { compile: c, link: l };
      }
      return null;
    },
  ];
  for (const candidate of candidates) {
    const flags = candidate();
    if (flags === null) continue;
    const includes = flags.compile
      .split(/\s+/)
      .filter((f) => f.startsWith('-I'))
      .map((f) => f.slice(2));
    if (includes.some((dir) => existsSync(path.join(dir, 'mpi.h')))) return flags;
  }
  return null;
}

const what = process.argv[2];
const flags = probe();
if (what === 'have') process.stdout.write(flags === null ? '0' : '1');
else if (what === 'compile' || what === 'link') process.stdout.write(flags === null ? '' : flags[what]);
else {
  process.stderr.write('usage: flags.cjs have|compile|link\n');
  process.exitCode = 2;
}
