#!/usr/bin/env node
/**
 * Validation (and training) loss of checkpoints per data category: for each category shard of a prepared
 * dataset, windows of 129 tokens are scored with `glam score --capacity-factor 0` (dropless, as inference
 * and validation route) for every checkpoint given: `--windows N` at seeded random offsets, or
 * `--windows all` every window in order, as the trainer's validation cuts the shard. Prints a table: one
 * row per (split, category), one column per checkpoint. For the valid split it adds two rows: the
 * categories' losses weighted as the training mixture weighs them (renormalised over the categories
 * scored), and the loss on the windows the trainer validates on (its first `--eval-batches` batches of 8,
 * taken round-robin over the categories from the start of each: only the first few windows of each).
 *
 *   node bench/category_scores.mjs --data DIR [--splits valid,train] [--windows 48|all] [--seed 0]
 *                                  [--eval-batches 16] CKPT...
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: opt, positionals: checkpoints } = parseArgs({
  allowPositionals: true,
  options: {
    data: { type: 'string' },
    splits: { type: 'string', default: 'valid,train' },
    windows: { type: 'string', default: '48' },
    seed: { type: 'string', default: '0' },
    'eval-batches': { type: 'string', default: '16' },
  },
});
if (opt.data === undefined || checkpoints.length === 0) {
  console.error(
    'usage: category_scores.mjs --data DIR [--splits valid,train] [--windows 48|all] [--seed 0] [--eval-batches 16] CKPT...',
  );
  process.exit(2);
}
const glam = new URL('../bin/glam.js', import.meta.url).pathname;
const manifest = JSON.parse(readFileSync(path.join(opt.data, 'manifest.json'), 'utf8'));
const Elements = manifest.dtype === 'uint32' ? Uint32Array : Uint16Array;
const T = 129;
const tmp = mkdtempSync(path.join(tmpdir(), 'glam-category-scores-'));

function shardTokens(info) {
  const file = readFileSync(path.join(opt.data, info.shards[0].file));
  return new Elements(file.buffer, file.byteOffset, file.byteLength / Elements.BYTES_PER_ELEMENT);
}

/** The first `count` consecutive windows of a shard, as the trainer's validation cuts it. */
function firstWindows(tokens, count) {
  return Array.from({ length: count }, (_, w) => Array.from(tokens.subarray(w * T, (w + 1) * T)));
}

/** Windows of one shard: every window in order, or `--windows` at seeded random offsets. */
function windowsOf(tokens) {
  if (opt.windows === 'all') return firstWindows(tokens, Math.floor(tokens.length / T));
  let s = (Number(opt.seed) * 2654435761 + 1) >>> 0;
  return Array.from({ length: Number(opt.windows) }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const at = s % (tokens.length - T);
    return Array.from(tokens.subarray(at, at + T));
  });
}

/** Mean LM loss of `windows` under each checkpoint. */
function score(name, windows) {
  const file = path.join(tmp, `${name}.json`);
  writeFileSync(file, JSON.stringify(windows));
  return checkpoints.map((ckpt) => {
    const out = execFileSync(
      process.execPath,
      [glam, 'score', '--model', ckpt, '--tokens', file, '--capacity-factor', '0', '--json'],
      { encoding: 'utf8' },
    );
    return JSON.parse(out).lm_loss;
  });
}

/**
 * How many of each category's first windows the trainer's validation takes (round-robin, 8 per batch).
 * `sizes` must list the categories in the trainer's order, which is the order `glam prepare` writes them
 * to the manifest.
 */
function trainerCounts(sizes) {
  const counts = new Map([...sizes.keys()].map((c) => [c, 0]));
  let left = 8 * Number(opt['eval-batches']);
  while (left > 0) {
    const open = [...sizes].filter(([c, n]) => counts.get(c) < n);
    if (open.length === 0) break;
    for (const [c] of open) {
      if (left-- === 0) break;
      counts.set(c, counts.get(c) + 1);
    }
  }
  return counts;
}

try {
  const rows = [];
  for (const split of opt.splits.split(',')) {
    const scored = new Map();
    const shards = new Map();
    for (const [category, info] of Object.entries(manifest.splits[split] ?? {})) {
      const tokens = shardTokens(info);
      // Random offsets need room to move; every window needs one whole window, as the trainer does.
      if (tokens.length < (opt.windows === 'all' ? T : 2 * T)) continue;
      const losses = score(`${split}-${category}`, windowsOf(tokens));
      rows.push({ split, category, tokens: tokens.length, losses });
      scored.set(category, losses);
      shards.set(category, tokens);
    }
    if (split !== 'valid' || scored.size === 0) continue;
    const weights = [...scored.keys()].map((c) => manifest.weights?.[c] ?? 0);
    const total = weights.reduce((a, b) => a + b, 0);
    const mixed = checkpoints.map((_, i) =>
      [...scored.values()].reduce((sum, losses, k) => sum + (weights[k] / total) * losses[i], 0),
    );
    rows.push({ split, category: 'mixture-weighted', tokens: '', losses: mixed });
    const sizes = new Map([...shards].map(([c, tokens]) => [c, Math.floor(tokens.length / T)]));
    const counts = trainerCounts(sizes);
    const sums = checkpoints.map(() => 0);
    let windows = 0;
    for (const [category, k] of counts) {
      if (k === 0) continue;
      score(`trainer-${category}`, firstWindows(shards.get(category), k)).forEach((l, i) => {
        sums[i] += k * l;
      });
      windows += k;
    }
    rows.push({
      split,
      category: "the trainer's validation windows",
      tokens: windows * T,
      losses: sums.map((s) => s / windows),
    });
  }
  console.log(`| split | category | tokens | ${checkpoints.join(' | ')} |`);
  console.log(`| --- | --- | --- | ${checkpoints.map(() => '---').join(' | ')} |`);
  for (const r of rows) {
    console.log(
      `| ${r.split} | ${r.category} | ${r.tokens} | ${r.losses.map((l) => l.toFixed(4)).join(' | ')} |`,
    );
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
