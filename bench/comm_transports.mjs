#!/usr/bin/env node
// Collective times between 2 ranks over shared memory and over TCP, in interleaved rounds:
//   nice -n -10 node bench/comm_transports.mjs [--rounds 5] [--repeat 10] [--max-bytes 67108864] [--out FILE]
// Each round runs `mpirun -np 2 glam bench comm --json` once per transport; the table gives, per op and
// size, the median over rounds of the per-round medians and their [min-max]; the alpha-beta fit is
// redone on those medians. --out writes the whole result as JSON (the cluster projection reads it).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { fitAlphaBeta } = await import(path.join(repo, 'dist/src/dist/bench.js'));
const { summarize } = await import(path.join(repo, 'dist/src/bench/stats.js'));
const { mpirunArgs } = await import(path.join(repo, 'dist/src/dist/run.js'));

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    repeat: { type: 'string', default: '10' },
    'max-bytes': { type: 'string', default: String(64 << 20) },
    out: { type: 'string' },
  },
});
const transports = {
  shm: ['--mca', 'btl', 'self,vader'],
  tcp: ['--mca', 'btl', 'self,tcp'],
};
const runs = { shm: [], tcp: [] };
for (let round = 0; round < Number(values.rounds); round++) {
  for (const [name, mca] of Object.entries(transports)) {
    const out = execFileSync(
      'mpirun',
      mpirunArgs(2, [
        ...mca,
        process.execPath,
        path.join(repo, 'bin/glam.js'),
        'bench',
        'comm',
        '--json',
        '--repeat',
        values.repeat,
        '--max-bytes',
        values['max-bytes'],
      ]),
      { encoding: 'utf8', env: { ...process.env, GLAM_THREADS: '1' }, maxBuffer: 1 << 26 },
    );
    runs[name].push(JSON.parse(out.trim().split('\n').pop()));
    process.stderr.write(`round ${round + 1} ${name} done\n`);
  }
}

const result = {
  rounds: Number(values.rounds),
  machine: execFileSync('uname', ['-srm'], { encoding: 'utf8' }).trim(),
  transports: {},
};
const fmtTime = (s) => (s < 1e-3 ? `${(s * 1e6).toFixed(1)} us` : `${(s * 1e3).toFixed(2)} ms`);
for (const [name, list] of Object.entries(runs)) {
  const first = list[0];
  const points = first.points.map((p, i) => {
    const per = list.map((r) => r.points[i].seconds.median);
    const s = summarize(per);
    return {
      op: p.op,
      bytes: p.bytes,
      seconds: s.median,
      min: s.min,
      max: s.max,
      GBs: p.bytes / s.median / 1e9,
    };
  });
  const fits = {};
  for (const op of new Set(points.map((p) => p.op))) {
    fits[op] = fitAlphaBeta(points.filter((p) => p.op === op));
  }
  result.transports[name] = { description: first.description, points, fits };
  console.log(`\n### ${name} (${first.description.replace(/^MPI rank \d+ of \d+ /, '')})\n`);
  console.log('| op | bytes | time, median [min-max] over rounds | GB/s |');
  console.log('| --- | --- | --- | --- |');
  for (const p of points) {
    console.log(
      `| ${p.op} | ${p.bytes} | ${fmtTime(p.seconds)} [${fmtTime(p.min)}-${fmtTime(p.max)}] | ${p.GBs.toFixed(3)} |`,
    );
  }
  for (const [op, f] of Object.entries(fits)) {
    console.log(
      `\nfit ${op}: alpha ${(f.alpha * 1e6).toFixed(1)} us, 1/beta ${(1 / f.beta / 1e9).toFixed(2)} GB/s, max misfit ${(100 * f.maxRelError).toFixed(0)}%`,
    );
  }
}
if (values.out) writeFileSync(values.out, `${JSON.stringify(result, null, 1)}\n`);
