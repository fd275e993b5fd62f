#!/usr/bin/env node
/**
 * sgemm, glam-moe's native kernels against numpy (OpenBLAS) and PyTorch (CPU), in one run.
 *
 * For each round, shape and thread count, measures the three one after the other (the order rotates
 * between rounds, so drifts in machine load hit all alike), with a pause between them so the previous
 * side's threads are idle (OpenBLAS workers spin for a while after a call). Each measurement is the
 * median of --repeat calls after a warm-up; the report gives, per shape and thread count, the median
 * over rounds with its min–max, the ratios ours/OpenBLAS and ours/torch, and the targets
 * (1 thread >= 0.95x OpenBLAS, 2 threads >= 1.0x).
 *
 *   node bench/gemm_vs_openblas.mjs [--shapes 1024x1024x1024,4096x1024x256] [--threads 1,2]
 *        [--rounds 5] [--repeat 10] [--trans NN] [--no-torch] [--json-out FILE]
 *
 * Ours runs through `glam bench gemm --json` (needs `npx tsc -p .` and the addon); the peers through
 * bench/gemm_peer.py under Debian's /usr/bin/python3 with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
 * (set on this machine, they slow OpenBLAS down). The OpenBLAS kernel in use is printed (threadpoolctl).
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PYTHON = '/usr/bin/python3';

const { values } = parseArgs({
  options: {
    shapes: { type: 'string', default: '1024x1024x1024,4096x1024x256' },
    threads: { type: 'string', default: '1,2' },
    rounds: { type: 'string', default: '5' },
    repeat: { type: 'string', default: '10' },
    trans: { type: 'string', default: 'NN' },
    pause: { type: 'string', default: '300' },
    'no-torch': { type: 'boolean', default: false },
    'json-out': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (values.help) {
  console.log(
    'usage: node bench/gemm_vs_openblas.mjs [--shapes MxNxK,...] [--threads 1,2] [--rounds R] [--repeat N] ' +
      '[--trans NN|NT|TN|TT] [--pause MS] [--no-torch] [--json-out FILE]',
  );
  process.exit(0);
}
const int = (name, v) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got '${v}'`);
  return n;
};
const shapes = values.shapes.split(',').map((s) => {
  const dims = s.split('x').map((d) => int('shapes', d));
  if (dims.length !== 3) throw new Error(`--shapes: '${s}' is not MxNxK`);
  return dims;
});
const threadCounts = values.threads.split(',').map((t) => int('threads', t));
const rounds = int('rounds', values.rounds);
const repeat = int('repeat', values.repeat);
const pauseMs = Number(values.pause);
const trans = values.trans.toUpperCase();
const sides = values['no-torch'] ? ['ours', 'numpy'] : ['ours', 'numpy', 'torch'];

/** The Python worker: one JSON request per line in, one JSON reply per line out. */
function startPeer() {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const child = spawn(PYTHON, [path.join(root, 'bench/gemm_peer.py')], {
    env,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done)
      throw new Error('gemm_peer.py exited early (is python3-numpy / python3-threadpoolctl installed?)');
    return JSON.parse(r.value);
  };
  return {
    hello: next(),
    async ask(req) {
      child.stdin.write(`${JSON.stringify(req)}\n`);
      const reply = await next();
      if (reply.error) throw new Error(`gemm_peer.py: ${reply.error}`);
      return reply;
    },
    close: () => child.stdin.end(),
  };
}

function ours(m, n, k, threads) {
  const args = [path.join(root, 'bin/glam.js'), 'bench', 'gemm', '--json'];
  args.push('--m', String(m), '--n', String(n), '--k', String(k), '--threads', String(threads));
  args.push('--trans', trans, '--repeat', String(repeat));
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
  if (r.status !== 0)
    throw new Error(`glam bench gemm failed (${r.status ?? r.signal}):\n${r.stderr}${r.stdout}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  if (!out.backend.startsWith('native'))
    throw new Error(`ours ran on '${out.backend}', not the native kernels`);
  return { gflops: out.gflops, backend: out.backend };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const fmt = (x) => x.toFixed(1);
const span = (xs) => `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`;

const peer = startPeer();
const hello = await peer.hello;
const blas = hello.blas.map(
  (b) => `${b.internal_api} ${b.version} (${b.architecture} kernel, ${b.threading_layer})`,
);
console.error(
  `peers: numpy ${hello.numpy} on ${blas.join(', ') || 'unknown BLAS'}; torch ${hello.torch ?? 'missing'}`,
);

const key = (shape, t) => `${shape.join('x')}/${t}`;
const results = new Map();
let oursBackend = '';
try {
  for (let round = 0; round < rounds; round++) {
    for (const shape of shapes) {
      for (const t of threadCounts) {
        const rec = results.get(key(shape, t)) ?? { shape, threads: t, ours: [], numpy: [], torch: [] };
        results.set(key(shape, t), rec);
        const order = sides.map((_, i) => sides[(i + round) % sides.length]);
        for (const side of order) {
          await sleep(pauseMs);
          const [m, n, k] = shape;
          let gflops;
          if (side === 'ours') {
            const r = ours(m, n, k, t);
            gflops = r.gflops;
            oursBackend = r.backend;
          } else {
            const r = await peer.ask({ lib: side, m, n, k, threads: t, repeat, trans });
            gflops = (2 * m * n * k) / (median(r.ms) / 1e3) / 1e9;
          }
          rec[side].push(gflops);
          console.error(
            `round ${round + 1}/${rounds} ${shape.join('x')} ${t} thread(s) ${side}: ${fmt(gflops)} GFLOP/s`,
          );
        }
      }
    }
  }
} finally {
  peer.close();
}

console.log(
  `\nsgemm ${trans}, GFLOP/s: median over ${rounds} rounds [min–max of the per-round medians of ${repeat} calls]` +
    `\nours: ${oursBackend.replace(/, \d+ threads?$/, '')}; OpenBLAS: ${blas.join(', ')}; torch ${hello.torch ?? 'n/a'}`,
);
const summary = [];
for (const rec of results.values()) {
  const o = median(rec.ours);
  const b = median(rec.numpy);
  const target = rec.threads === 1 ? 0.95 : 1.0;
  const ratioB = o / b;
  const line = [
    `${rec.shape.join('x').padEnd(15)} ${rec.threads} thread${rec.threads === 1 ? ' ' : 's'}:`,
    `ours ${fmt(o)} [${span(rec.ours)}]`,
    `OpenBLAS ${fmt(b)} [${span(rec.numpy)}]`,
  ];
  let ratioT = null;
  if (rec.torch.length > 0) {
    const p = median(rec.torch);
    ratioT = o / p;
    line.push(`torch ${fmt(p)} [${span(rec.torch)}]`);
  }
  line.push(
    `ours/OpenBLAS ${ratioB.toFixed(3)} (target >= ${target.toFixed(2)}: ${ratioB >= target ? 'met' : 'NOT met'})`,
  );
  if (ratioT !== null) line.push(`ours/torch ${ratioT.toFixed(3)}`);
  console.log(line.join('  '));
  summary.push({
    ...rec,
    ours_median: o,
    openblas_median: b,
    ratio_openblas: ratioB,
    ratio_torch: ratioT,
    target,
  });
}
if (values['json-out'] !== undefined) {
  writeFileSync(
    values['json-out'],
    JSON.stringify(
      { trans, rounds, repeat, blas: hello.blas, torch: hello.torch, results: summary },
      null,
      2,
    ),
  );
}
