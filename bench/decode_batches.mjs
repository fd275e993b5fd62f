#!/usr/bin/env node
/**
 * Decode throughput at several batch sizes in one run, over the same weights: what `glam bench decode`
 * measures (aggregate tokens/s of the timed decode steps, weight bytes per generated token, the fraction
 * of the bandwidth bound), with the rounds of the batch sizes interleaved (the order alternates between
 * rounds), so that a change in machine load hits every batch size alike and the speed-up of each batch
 * over the first is taken round by round. The bound is `glam bench decode`'s: after each timed step the
 * probe loop reads exactly the weights that step read, where they lie ("weights' bound": the probes' time
 * over the steps', per round). Beside it, against a buffer of the probe's own, probed before and after
 * every round: the run's best pass ("own buffer") and each round against the probes just before and after
 * it ("round by round"; the machine's bandwidth moves between levels for seconds at a time).
 *
 *   nice -n -10 node bench/decode_batches.mjs [--config glam-0.1b-64e] [--batches 1,32] [--rounds 5]
 *       [--threads 2] [--prompt-len 32] [--new 32] [--dtype f32|bf16] [--json]
 *
 * Needs the tree built (npm run build, the native addon) and the weights' memory free (8.3 GB in f32
 * for glam-0.1b-64e, built once).
 */
import { parseArgs } from 'node:util';
import { kernels } from '../dist/src/backend/index.js';
import { benchDecode, checkMemory, randomWeights } from '../dist/src/bench/decode.js';
import { summarize } from '../dist/src/bench/stats.js';
import { resolveConfig } from '../dist/src/model/presets.js';

const { values: v } = parseArgs({
  options: {
    config: { type: 'string', default: 'glam-0.1b-64e' },
    batches: { type: 'string', default: '1,32' },
    rounds: { type: 'string', default: '5' },
    threads: { type: 'string', default: '2' },
    'prompt-len': { type: 'string', default: '32' },
    new: { type: 'string', default: '32' },
    dtype: { type: 'string', default: 'f32' },
    json: { type: 'boolean', default: false },
  },
  strict: true,
});
const batches = v.batches.split(',').map(Number);
const rounds = Number(v.rounds);
if (!batches.every((b) => Number.isInteger(b) && b >= 1) || !(Number.isInteger(rounds) && rounds >= 1)) {
  throw new Error('decode_batches: --batches must list integers >= 1 and --rounds be an integer >= 1');
}
if (v.dtype !== 'f32' && v.dtype !== 'bf16')
  throw new Error(`decode_batches: --dtype f32|bf16, got ${v.dtype}`);
kernels().setThreads(Number(v.threads));
const config = resolveConfig(v.config);
checkMemory(config, v.dtype);
const log = v.json ? () => {} : (line) => console.error(line);
log(`building random ${v.dtype} weights of ${v.config}...`);
const weights = randomWeights(config, v.dtype);

const per = new Map(batches.map((b) => [b, []]));
let bandwidth = 0;
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? batches : [...batches].reverse();
  for (const batch of order) {
    const res = benchDecode({
      config,
      weights,
      dtype: v.dtype,
      batch,
      promptLen: Number(v['prompt-len']),
      newTokens: Number(v.new),
      rounds: 1,
      bandwidthSeconds: 1,
    });
    bandwidth = Math.max(bandwidth, res.bandwidthGBs);
    const round = res.rounds[0];
    per.get(batch).push(round);
    log(
      `round ${r + 1}/${rounds}, batch ${batch}: ${round.tokensPerSecond.toFixed(2)} tokens/s, ` +
        `${(round.weightBytesPerToken / 2 ** 20).toFixed(1)} MiB per token, CPU share ${(100 * round.cpuShare).toFixed(0)}%, ` +
        `${(100 * round.fractionOfWeightsBound).toFixed(1)}% of the weights' bound (${round.weightsBandwidthGBs.toFixed(1)} GB/s), ` +
        `own buffer ${res.bandwidthGBs.toFixed(1)} GB/s`,
    );
  }
}

const first = per.get(batches[0]);
const rows = batches.map((batch) => {
  const rs = per.get(batch);
  const tps = summarize(rs.map((x) => x.tokensPerSecond));
  const bytes = summarize(rs.map((x) => x.weightBytesPerToken)).median;
  const bound = (bandwidth * 1e9) / bytes;
  return {
    batch,
    tokensPerSecond: tps,
    weightBytesPerToken: bytes,
    boundTokensPerSecond: bound,
    weightsFractions: summarize(rs.map((x) => x.fractionOfWeightsBound)),
    weightsBandwidthGBs: summarize(rs.map((x) => x.weightsBandwidthGBs)),
    fractionOfBound: tps.median / bound,
    roundFractions: summarize(rs.map((x) => x.fractionOfBound)),
    cpuShare: summarize(rs.map((x) => x.cpuShare)).median,
    speedup: summarize(rs.map((x, i) => x.tokensPerSecond / first[i].tokensPerSecond)),
  };
});
const out = {
  config: v.config,
  dtype: v.dtype,
  threads: Number(v.threads),
  rounds,
  bandwidthGBs: bandwidth,
  rows,
};
if (v.json) console.log(JSON.stringify(out));
else {
  const f = (s, d = 2) => `${s.median.toFixed(d)} [${s.min.toFixed(d)}–${s.max.toFixed(d)}]`;
  const pct = (s) =>
    `${(100 * s.median).toFixed(1)}% [${(100 * s.min).toFixed(1)}–${(100 * s.max).toFixed(1)}%]`;
  console.log(
    `\n${v.config}, ${v.dtype}, ${v.threads} threads, ${rounds} rounds; own buffer's read bandwidth (best pass, this run) ${bandwidth.toFixed(1)} GB/s`,
  );
  console.log(
    `| batch | tokens/s | MiB of weights per token | weights' bound: GB/s | of it, by round | own buffer: bound (tokens/s) | of it | round by round | CPU share | over batch ${batches[0]} |`,
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    console.log(
      `| ${r.batch} | ${f(r.tokensPerSecond)} | ${(r.weightBytesPerToken / 2 ** 20).toFixed(1)} | ${f(r.weightsBandwidthGBs, 1)} | ${pct(r.weightsFractions)} | ${r.boundTokensPerSecond.toFixed(1)} | ` +
        `${(100 * r.fractionOfBound).toFixed(1)}% | ${pct(r.roundFractions)} | ${(100 * r.cpuShare).toFixed(0)}% | ${f(r.speedup)}x |`,
    );
  }
}
