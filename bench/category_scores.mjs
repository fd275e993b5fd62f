#!/usr/bin/env node
/**
 * Validation (and training) loss of checkpoints per data category: for each category shard of a prepared
 * dataset, `--windows` windows of 129 tokens at seeded random offsets are scored with `glam score
 * --capacity-factor 0` (dropless, as inference and validation route), for every checkpoint given. Prints a
 * table: one row per (split, category), one column per checkpoint.
 *
 *   node bench/category_scores.mjs --data DIR [--splits valid,train] [--windows 48] [--seed 0] CKPT...
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
  },
});
if (opt.data === undefined || checkpoints.length === 0) {
  console.error(
    'usage: category_scores.mjs --data DIR [--splits valid,train] [--windows 48] [--seed 0] CKPT...',
  );
  process.exit(2);
}
const glam = new URL('../bin/glam.js', import.meta.url).pathname;
const manifest = JSON.parse(readFileSync(path.join(opt.data, 'manifest.json'), 'utf8'));
const Elements = manifest.dtype === 'uint32' ? Uint32Array : Uint16Array;
const T = 129;
const tmp = mkdtempSync(path.join(tmpdir(), 'glam-category-scores-'));
try {
  const rows = [];
  for (const split of opt.splits.split(',')) {
    for (const [category, info] of Object.entries(manifest.splits[split] ?? {})) {
      const file = readFileSync(path.join(opt.data, info.shards[0].file));
      const tokens = new Elements(file.buffer, file.byteOffset, file.byteLength / Elements.BYTES_PER_ELEMENT);
      if (tokens.length < 2 * T) continue; // too few tokens for a window
      let s = (Number(opt.seed) * 2654435761 + 1) >>> 0;
      const windows = Array.from({ length: Number(opt.windows) }, () => {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        const at = s % (tokens.length - T);
        return Array.from(tokens.subarray(at, at + T));
      });
      const file2 = path.join(tmp, `${split}-${category}.json`);
      writeFileSync(file2, JSON.stringify(windows));
      const losses = checkpoints.map((ckpt) => {
        const out = execFileSync(
          process.execPath,
          [glam, 'score', '--model', ckpt, '--tokens', file2, '--capacity-factor', '0', '--json'],
          { encoding: 'utf8' },
        );
        return JSON.parse(out).lm_loss;
      });
      rows.push({ split, category, tokens: tokens.length, losses });
    }
  }
  console.log(`| split | category | tokens in shard | ${checkpoints.join(' | ')} |`);
  console.log(`| --- | --- | --- | ${checkpoints.map(() => '---').join(' | ')} |`);
  for (const r of rows) {
    console.log(
      `| ${r.split} | ${r.category} | ${r.tokens} | ${r.losses.map((l) => l.toFixed(4)).join(' | ')} |`,
    );
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
