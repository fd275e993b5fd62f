#!/usr/bin/env node
/**
 * Training throughput of this tree against an earlier commit, in one run: the earlier commit is
 * exported (git archive) into a temporary directory and built there (node-gyp and tsc of this tree's
 * node_modules, which the export links to), then each round runs `glam bench train --json` of both,
 * one after the other (the order alternates between rounds, so drifts in machine load hit both alike),
 * for every thread count. Prints per thread count the median tokens/s of each side over the rounds,
 * the [min–max] of the rounds, and the ratio of the medians. The MFU each side reports is printed too.
 *
 *   node bench/train_vs_commit.mjs --base REV [--config small-moe] [--batch 8] [--seq 128]
 *        [--steps 8] [--warmup 2] [--rounds 5] [--threads 1,2] [--keep DIR] [--json-out FILE]
 *
 * Run it under `nice -n -10` on a quiet machine; needs this tree built (npm run build, the addon).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    config: { type: 'string', default: 'small-moe' },
    batch: { type: 'string', default: '8' },
    seq: { type: 'string', default: '128' },
    steps: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '5' },
    threads: { type: 'string', default: '1,2' },
    keep: { type: 'string' },
    'json-out': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (values.help || values.base === undefined) {
  console.log(
    'usage: node bench/train_vs_commit.mjs --base REV [--config NAME] [--batch B] [--seq T] [--steps N] [--warmup W] [--rounds R] [--threads 1,2] [--keep DIR] [--json-out FILE]',
  );
  process.exit(values.help ? 0 : 2);
}
const int = (name, v) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be an integer >= 0, got '${v}'`);
  return n;
};
const rounds = int('rounds', values.rounds);
const threadCounts = values.threads.split(',').map((t) => int('threads', t));
const base = execFileSync('git', ['-C', root, 'rev-parse', '--short', values.base], {
  encoding: 'utf8',
}).trim();
const head = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no'], {
  encoding: 'utf8',
}).trim();

/** The base commit, exported and built (or reused from --keep when it is already built there). */
function buildBase() {
  const dir = values.keep ?? mkdtempSync(path.join(tmpdir(), `glam-base-${base}-`));
  const built = path.join(dir, 'build/Release/glam_native.node');
  if (values.keep !== undefined && existsSync(built) && existsSync(path.join(dir, 'dist/src/cli/main.js'))) {
    return dir;
  }
  mkdirSync(dir, { recursive: true });
  console.error(`exporting ${base} into ${dir} and building it (a few minutes)`);
  execFileSync('sh', ['-c', `git -C '${root}' archive ${base} | tar -x -C '${dir}'`], { stdio: 'inherit' });
  if (!existsSync(path.join(dir, 'node_modules'))) {
    symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  }
  // Through npm, so node-gyp sees npm's configuration (nodedir and the like) as `npm ci` does.
  execFileSync('npx', ['node-gyp', 'rebuild'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync(path.join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], {
    cwd: dir,
    stdio: 'inherit',
  });
  return dir;
}

function benchOnce(dir, threads) {
  const args = [
    path.join(dir, 'bin/glam.js'),
    'bench',
    'train',
    '--config',
    values.config,
    '--batch',
    values.batch,
    '--seq',
    values.seq,
    '--steps',
    values.steps,
    '--warmup',
    values.warmup,
    '--threads',
    String(threads),
    '--json',
  ];
  const r = spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`glam bench train in ${dir} failed:\n${r.stderr}`);
  const out = JSON.parse(r.stdout);
  return { tps: out.tokensPerSec.median, mfu: out.mfu, stepMs: out.stepMs };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const baseDir = buildBase();
const sides = { base: baseDir, head: root };
const rec = Object.fromEntries(threadCounts.map((t) => [t, { base: [], head: [] }]));
try {
  for (let r = 0; r < rounds; r++) {
    for (const t of threadCounts) {
      const order = r % 2 === 0 ? ['base', 'head'] : ['head', 'base'];
      for (const side of order) {
        const res = benchOnce(sides[side], t);
        rec[t][side].push(res);
        console.error(`round ${r + 1}/${rounds}, ${t} thread(s), ${side}: ${res.tps.toFixed(0)} tokens/s`);
      }
    }
  }
} finally {
  if (values.keep === undefined) rmSync(baseDir, { recursive: true, force: true });
}

const fmt = (xs) => `${median(xs).toFixed(0)} [${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}]`;
console.log(
  `\n${values.config}, batch ${values.batch} x ${values.seq}, ${values.steps} timed steps after ${values.warmup}, ${rounds} rounds; ` +
    `base ${base}, head ${head}${dirty === '' ? '' : ' (with uncommitted changes)'}`,
);
console.log(
  'threads | base tokens/s | head tokens/s | head / base (medians) | per-round ratios | MFU base, head',
);
const summary = {};
for (const t of threadCounts) {
  const b = rec[t].base.map((x) => x.tps);
  const h = rec[t].head.map((x) => x.tps);
  const ratios = h.map((v, i) => v / b[i]);
  const mfu = (xs) => median(xs.map((x) => x.mfu ?? Number.NaN));
  console.log(
    `${t} | ${fmt(b)} | ${fmt(h)} | ${(median(h) / median(b)).toFixed(3)} | ${ratios.map((x) => x.toFixed(2)).join(' ')} | ` +
      `${(100 * mfu(rec[t].base)).toFixed(1)}%, ${(100 * mfu(rec[t].head)).toFixed(1)}%`,
  );
  summary[t] = { base: b, head: h, ratio: median(h) / median(b), ratios };
}
if (values['json-out'] !== undefined) {
  writeFileSync(
    values['json-out'],
    `${JSON.stringify({ base, head, dirty: dirty !== '', values, summary, rec }, null, 2)}\n`,
  );
}
