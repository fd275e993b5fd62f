#!/usr/bin/env node
/**
 * End-to-end decode of this build against another one (DIST: the dist/ folder of another build of this
 * tree, built) in one process, over the same random weights: blocks of `glam bench decode` rounds (2 rounds
 * each), the two builds alternating and taking turns to go first, each block with its own bandwidth
 * probes. Prints every block (tokens/s, the probes' best pass) and the medians with the per-block ratios.
 *
 *   nice -n -10 node bench/decode_against.mjs DIST [--config glam-0.1b-64e] [--batch 1] [--blocks 6]
 *       [--threads 2]
 *
 * Needs this tree built and the weights' memory free (8.3 GB in f32 for glam-0.1b-64e, built once).
 */
import { parseArgs } from 'node:util';

const { values: v, positionals } = parseArgs({
  options: {
    config: { type: 'string', default: 'glam-0.1b-64e' },
    batch: { type: 'string', default: '1' },
    blocks: { type: 'string', default: '6' },
    threads: { type: 'string', default: '2' },
  },
  allowPositionals: true,
  strict: true,
});
if (positionals.length !== 1) throw new Error('decode_against: give the dist/ folder of the other build');
const dists = [new URL('../dist', import.meta.url).pathname, positionals[0]];
const sides = [];
for (const d of dists) {
  const bench = await import(`${d}/src/bench/decode.js`);
  const backend = await import(`${d}/src/backend/index.js`);
  backend.kernels().setThreads(Number(v.threads));
  sides.push(bench);
}
const { resolveConfig } = await import(`${dists[0]}/src/model/presets.js`);
const config = resolveConfig(v.config);
sides[0].checkMemory(config, 'f32');
const weights = sides[0].randomWeights(config, 'f32');
const names = ['this', 'other'];
const tps = [[], []];
for (let block = 0; block < Number(v.blocks); block++) {
  for (const s of block % 2 === 0 ? [0, 1] : [1, 0]) {
    const r = sides[s].benchDecode({
      config,
      weights,
      dtype: 'f32',
      batch: Number(v.batch),
      promptLen: 32,
      newTokens: 32,
      rounds: 2,
      bandwidthSeconds: 0.3,
    });
    tps[s].push(r.tokensPerSecond.median);
    console.log(
      `block ${block + 1} ${names[s].padEnd(5)} ${r.tokensPerSecond.median.toFixed(2)} tokens/s, probe best ${r.bandwidthGBs.toFixed(1)} GB/s`,
    );
  }
}
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
const ratios = tps[0].map((x, i) => (x / tps[1][i]).toFixed(2));
console.log(
  `this ${median(tps[0]).toFixed(2)}, other ${median(tps[1]).toFixed(2)} tokens/s (medians); this/other per block ${ratios.join(' ')}`,
);
