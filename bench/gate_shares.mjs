#!/usr/bin/env node
/**
 * How much of each MoE layer's output the second expert carries: for every checkpoint given, the
 * validation shards of a prepared dataset (the first `--windows` windows of 128 tokens of each category)
 * are run through the inference engine (dropless, as validation routes) with the routing traced, and
 * per MoE layer it prints the mean share of the second expert's gate in the pair (g2 / (g1 + g2)) and
 * the fraction of positions where that share is under 0.1 (the token is then close to top-1: one expert
 * of d_ff_expert width instead of two).
 *
 *   node bench/gate_shares.mjs --data DIR [--windows 8] CKPT...
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { InferenceEngine } from '../dist/src/infer/engine.js';
import { loadCheckpoint } from '../dist/src/model/checkpoint.js';

const { values: opt, positionals: checkpoints } = parseArgs({
  allowPositionals: true,
  options: { data: { type: 'string' }, windows: { type: 'string', default: '8' } },
});
if (opt.data === undefined || checkpoints.length === 0) {
  console.error('usage: gate_shares.mjs --data DIR [--windows 8] CKPT...');
  process.exit(2);
}
const manifest = JSON.parse(readFileSync(path.join(opt.data, 'manifest.json'), 'utf8'));
const Elements = manifest.dtype === 'uint32' ? Uint32Array : Uint16Array;
const T = 128;
const windows = [];
for (const info of Object.values(manifest.splits.valid ?? {})) {
  const file = readFileSync(path.join(opt.data, info.shards[0].file));
  const tokens = new Elements(file.buffer, file.byteOffset, file.byteLength / Elements.BYTES_PER_ELEMENT);
  for (let w = 0; w < Number(opt.windows) && (w + 1) * T <= tokens.length; w++) {
    windows.push(Array.from(tokens.subarray(w * T, (w + 1) * T)));
  }
}
for (const dir of checkpoints) {
  const { config, weights } = loadCheckpoint(dir);
  const engine = new InferenceEngine(config, weights, { kvCacheBytes: 64 * 2 ** 20, capacityFactor: 0 });
  const layers = new Map();
  for (const prompt of windows) {
    engine.submit({ prompt, maxTokens: 0, echo: true, trace: true }, (e) => {
      if (e.type !== 'prompt') return;
      for (const info of e.info) {
        for (const r of info.routing ?? []) {
          const share = r.gates[1] / (r.gates[0] + r.gates[1]);
          const s = layers.get(r.layer) ?? { sum: 0, low: 0, n: 0 };
          s.sum += share;
          s.low += share < 0.1 ? 1 : 0;
          s.n++;
          layers.set(r.layer, s);
        }
      }
    });
    while (engine.pending > 0) engine.step();
  }
  const cols = [...layers].map(
    ([l, s]) =>
      `layer ${l}: second gate ${(s.sum / s.n).toFixed(3)}, under 0.1 ${((100 * s.low) / s.n).toFixed(1)}%`,
  );
  console.log(`${dir}  (${windows.length} windows)  ${cols.join('  ')}`);
}
