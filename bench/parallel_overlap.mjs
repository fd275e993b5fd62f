#!/usr/bin/env node
// Data-parallel training steps on 2 ranks, gradient all-reduce overlapped with backward or not, in
// interleaved rounds:
//   nice -n -10 node bench/parallel_overlap.mjs [--rounds 5] [--steps 8] [--config small-moe] [--parallel data]
//                                              [--transport shm|tcp] [--out FILE]
// Each round runs `mpirun -np 2 glam bench parallel --json --overlap both` once; the summary gives the
// median over rounds of the per-round medians, with their [min-max]. The hidden fraction of a round
// pools both ranks' timed steps.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { summarize } = await import(path.join(repo, 'dist/src/bench/stats.js'));
const { mpirunArgs } = await import(path.join(repo, 'dist/src/dist/run.js'));
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    steps: { type: 'string', default: '8' },
    config: { type: 'string', default: 'small-moe' },
    parallel: { type: 'string', default: 'data' },
    transport: { type: 'string', default: 'shm' },
    out: { type: 'string' },
  },
});
const mca = values.transport === 'tcp' ? ['--mca', 'btl', 'self,tcp'] : ['--mca', 'btl', 'self,vader'];
const rows = { on: [], off: [] };
for (let round = 0; round < Number(values.rounds); round++) {
  const out = execFileSync(
    'mpirun',
    mpirunArgs(2, [
      ...mca,
      process.execPath,
      path.join(repo, 'bin/glam.js'),
      'bench',
      'parallel',
      '--json',
      '--overlap',
      'both',
      '--config',
      values.config,
      '--parallel',
      values.parallel,
      '--steps',
      values.steps,
    ]),
    { encoding: 'utf8', maxBuffer: 1 << 24 },
  );
  for (const line of out
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))) {
    const r = JSON.parse(line);
    rows[r.overlap ? 'on' : 'off'].push(r);
  }
  process.stderr.write(`round ${round + 1} done\n`);
}
const fmt = (xs, d = 1) => {
  const s = summarize(xs);
  return `${s.median.toFixed(d)} [${s.min.toFixed(d)}-${s.max.toFixed(d)}]`;
};
const result = {};
console.log(`| overlap | step ms | tokens/s | backward ms | all-reduce busy ms | exposed ms | hidden |`);
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const k of ['on', 'off']) {
  const r = rows[k];
  result[k] = r;
  console.log(
    `| ${k} | ${fmt(r.map((x) => x.stepMs.median))} | ${fmt(
      r.map((x) => x.tokensPerSec),
      0,
    )} | ${fmt(r.map((x) => x.backwardMs))} | ` +
      `${fmt(r.map((x) => x.busyMs.median))} | ${fmt(r.map((x) => x.exposedMs.median))} | ${fmt(r.map((x) => 100 * x.hiddenFraction))}% |`,
  );
}
if (values.out) writeFileSync(values.out, `${JSON.stringify(result, null, 1)}\n`);
