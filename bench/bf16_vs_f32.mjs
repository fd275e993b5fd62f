#!/usr/bin/env node
/**
 * Decode-sized products with bf16 weights against float32 weights, in one run: C = A·W for a few rows
 * of A against a weight matrix W larger than the caches (by default 4096 x 8192: 128 MiB in float32,
 * 64 MiB in bf16, both over the 32 MiB L3), so every call streams W from memory, as a decode step
 * streams the model's weights. Each round times `glam bench gemm --dtype f32` and `--dtype bf16` one
 * after the other (the order alternating between rounds); the report gives per row count and thread
 * count the median GB/s of weights read and the median over rounds of the per-round speedup
 * (f32 time / bf16 time) with its range. The target of the bf16 work is >= 1.8x (half the bytes).
 *
 *   node bench/bf16_vs_f32.mjs [--rows 1,4,16] [--k 4096] [--n 8192] [--threads 1,2] [--rounds 5]
 *        [--repeat 10] [--json-out FILE]
 *
 * Run it under `nice -n -10`: the machine is shared, and its memory bandwidth with it.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '1,4,16' },
    k: { type: 'string', default: '4096' },
    n: { type: 'string', default: '8192' },
    threads: { type: 'string', default: '1,2' },
    rounds: { type: 'string', default: '5' },
    repeat: { type: 'string', default: '10' },
    'json-out': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (values.help) {
  console.log(
    'usage: node bench/bf16_vs_f32.mjs [--rows 1,4,16] [--k K] [--n N] [--threads 1,2] [--rounds R] [--repeat N] [--json-out FILE]',
  );
  process.exit(0);
}
const int = (name, v) => {
  const x = Number(v);
  if (!Number.isSafeInteger(x) || x < 1) throw new Error(`--${name} must be a positive integer, got '${v}'`);
  return x;
};
const rowsList = values.rows.split(',').map((r) => int('rows', r));
const threadsList = values.threads.split(',').map((t) => int('threads', t));
const [k, n] = [int('k', values.k), int('n', values.n)];
const rounds = int('rounds', values.rounds);
const repeat = int('repeat', values.repeat);

function run(m, threads, dtype) {
  const args = ['bench', 'gemm', '--m', String(m), '--n', String(n), '--k', String(k)];
  args.push('--threads', String(threads), '--dtype', dtype, '--repeat', String(repeat), '--json');
  const r = spawnSync(process.execPath, [path.join(root, 'bin/glam.js'), ...args], {
    cwd: root,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`glam ${args.join(' ')} failed:\n${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};
const results = [];
let backend = '';
for (const m of rowsList) {
  for (const t of threadsList) {
    const rec = { m, k, n, threads: t, f32: [], bf16: [], speedup: [] };
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? ['f32', 'bf16'] : ['bf16', 'f32'];
      const got = {};
      for (const dtype of order) {
        got[dtype] = run(m, t, dtype);
        backend = got[dtype].backend;
      }
      rec.f32.push(got.f32.b_gbytes_per_s);
      rec.bf16.push(got.bf16.b_gbytes_per_s);
      rec.speedup.push(got.f32.ms_median / got.bf16.ms_median);
      console.error(
        `round ${round + 1}/${rounds} m=${m} ${t} thread(s): f32 ${got.f32.ms_median.toFixed(2)} ms, bf16 ${got.bf16.ms_median.toFixed(2)} ms`,
      );
    }
    results.push(rec);
  }
}
const fmt = (x) => x.toFixed(2);
console.log(`\ndecode-sized products, W ${k} x ${n}; ${backend.replace(/, \d+ threads?$/, '')}`);
for (const r of results) {
  const s = median(r.speedup);
  console.log(
    `m=${String(r.m).padEnd(3)} ${r.threads} thread${r.threads === 1 ? ' ' : 's'}: f32 ${fmt(median(r.f32))} GB/s ` +
      `[${fmt(Math.min(...r.f32))}–${fmt(Math.max(...r.f32))}]  bf16 ${fmt(median(r.bf16))} GB/s ` +
      `[${fmt(Math.min(...r.bf16))}–${fmt(Math.max(...r.bf16))}]  bf16 speedup ${fmt(s)}x ` +
      `[${fmt(Math.min(...r.speedup))}–${fmt(Math.max(...r.speedup))}] (target >= 1.8: ${s >= 1.8 ? 'met' : 'NOT met'})`,
  );
}
if (values['json-out'] !== undefined)
  writeFileSync(values['json-out'], JSON.stringify({ k, n, results }, null, 2));
