#!/usr/bin/env node
/**
 * Training throughput, glam-moe against PyTorch (CPU) on the same model, in one run.
 *
 * For each round and each thread count, runs `glam bench train --json` and
 * bench/train_torch.py one after the other (the order alternates between rounds,
 * so drifts in machine load hit both alike), then prints per thread count the
 * median tokens/s of each side over the rounds with its spread, the ratio
 * ours/torch (goal >= 1.5) and our MFU.
 *
 *   node bench/train_vs_torch.mjs [--config small-moe] [--batch 8] [--seq 128]
 *        [--steps 8] [--warmup 2] [--rounds 3] [--threads 1,2] [--json-out FILE]
 *
 * Needs the TypeScript build (npx tsc -p .) and Debian's torch (/usr/bin/python3).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PYTHON = '/usr/bin/python3';

const { values } = parseArgs({
  options: {
    config: { type: 'string', default: 'small-moe' },
    batch: { type: 'string', default: '8' },
    seq: { type: 'string', default: '128' },
    steps: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string', default: '1,2' },
    'json-out': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (values.help) {
  console.log(
    'usage: node bench/train_vs_torch.mjs [--config NAME|FILE] [--batch B] [--seq T] [--steps N] [--warmup W] [--rounds R] [--threads 1,2] [--json-out FILE]',
  );
  process.exit(0);
}
const int = (name, v) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be an integer >= 0, got '${v}'`);
  return n;
};
const batch = int('batch', values.batch);
const seq = int('seq', values.seq);
const steps = int('steps', values.steps);
const warmup = int('warmup', values.warmup);
const rounds = int('rounds', values.rounds);
const threadCounts = values.threads.split(',').map((t) => int('threads', t));

// The config both sides train: resolved by our code (preset or file), dumped with every key.
const { resolveConfig } = await import(path.join(root, 'dist/src/model/presets.js'));
const cfg = resolveConfig(values.config);
const work = mkdtempSync(path.join(tmpdir(), 'glam-train-vs-torch-'));
const cfgFile = path.join(work, 'config.json');
writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));

/** Run a command that prints one JSON object as its last stdout line; throw with its stderr on failure. */
function runJson(cmd, args, env) {
  const r = spawnSync(cmd, args, { cwd: root, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}${r.stdout}`);
  }
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

function ours(threads) {
  const args = [path.join(root, 'bin/glam.js'), 'bench', 'train', '--config', cfgFile, '--json'];
  args.push('--batch', String(batch), '--seq', String(seq), '--steps', String(steps));
  args.push('--warmup', String(warmup), '--threads', String(threads));
  // Native kernels or nothing: a silent fall-back to the reference kernels would time the wrong thing.
  const r = runJson(process.execPath, args, { GLAM_BACKEND: 'native', ...process.env });
  return { tps: r.tokensPerSec.median, params: r.params, mfu: r.mfu, peak: r.peakGflops, raw: r };
}

function torch(threads) {
  // OpenBLAS tuning variables this machine may set slow OpenBLAS down: unset them for torch only.
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const args = [path.join(root, 'bench/train_torch.py'), '--config', cfgFile];
  args.push('--batch', String(batch), '--seq', String(seq), '--steps', String(steps));
  args.push('--warmup', String(warmup), '--threads', String(threads));
  const r = runJson(PYTHON, args, env);
  return { tps: r.tokens_per_s_median, params: r.params, raw: r };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
const range = (xs) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;

const runs = new Map(threadCounts.map((t) => [t, { ours: [], torch: [] }]));
try {
  for (let round = 0; round < rounds; round++) {
    for (const t of threadCounts) {
      const rec = runs.get(t);
      const order = round % 2 === 0 ? ['ours', 'torch'] : ['torch', 'ours'];
      for (const side of order) {
        const r = side === 'ours' ? ours(t) : torch(t);
        rec[side].push(r);
        const extra = side === 'ours' && r.mfu !== null ? `, MFU ${(100 * r.mfu).toFixed(1)}%` : '';
        console.error(
          `round ${round + 1}/${rounds}, ${t} thread(s), ${side}: ${r.tps.toFixed(0)} tokens/s${extra}`,
        );
      }
      const o = rec.ours[rec.ours.length - 1];
      const p = rec.torch[rec.torch.length - 1];
      if (o.params !== p.params) {
        throw new Error(`parameter counts differ: ours ${o.params}, torch ${p.params}; not the same model`);
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const kernelsSeen = [...new Set([...runs.values()].flatMap((rec) => rec.ours.map((r) => r.raw.kernels)))];
console.log(`\nour kernels: ${kernelsSeen.join(' | ')}`);
console.log(
  `${values.config}: batch ${batch} × seq ${seq}, ${steps} timed steps after ${warmup} warm-up, ${rounds} rounds (median of per-run medians, min–max over runs)`,
);
const summary = [];
for (const [t, rec] of runs) {
  const o = rec.ours.map((r) => r.tps);
  const p = rec.torch.map((r) => r.tps);
  const paired = o.map((v, i) => v / p[i]);
  const ratio = median(o) / median(p);
  const mfus = rec.ours.map((r) => r.mfu).filter((m) => m !== null);
  const mfu = mfus.length > 0 ? median(mfus) : null;
  const phase = (rs, keys) => Object.fromEntries(keys.map((k) => [k, median(rs.map((r) => r.raw[k]))]));
  const op = phase(rec.ours, ['forwardMs', 'backwardMs', 'gradCheckMs', 'optimizerMs']);
  const tp = phase(rec.torch, [
    'forward_s_median',
    'backward_s_median',
    'gradcheck_s_median',
    'optimizer_s_median',
  ]);
  console.log(
    `${t} thread(s): ours ${median(o).toFixed(0)} tok/s [${range(o)}], torch ${median(p).toFixed(0)} tok/s [${range(p)}], ` +
      `ours/torch ${ratio.toFixed(2)}x (per round ${Math.min(...paired).toFixed(2)}–${Math.max(...paired).toFixed(2)}; goal >= 1.5), ` +
      `MFU ${mfu === null ? 'n/a' : `${(100 * mfu).toFixed(1)}%`}`,
  );
  const ms = (xs) => xs.map((x) => x.toFixed(0)).join(' / ');
  console.log(
    `  step phases, median ms (forward / backward / grad check / Adafactor): ours ${ms(Object.values(op))}, ` +
      `torch ${ms(Object.values(tp).map((x) => 1000 * x))}`,
  );
  summary.push({
    threads: t,
    ours_tokens_per_s: o,
    torch_tokens_per_s: p,
    ours_median: median(o),
    torch_median: median(p),
    ratio,
    paired_ratios: paired,
    mfu,
    ours_phases_ms: op,
    torch_phases_s: tp,
    params: rec.ours[0]?.params,
  });
}
if (values['json-out'] !== undefined) {
  writeFileSync(
    values['json-out'],
    JSON.stringify({ config: values.config, batch, seq, steps, warmup, rounds, results: summary }, null, 2),
  );
}
