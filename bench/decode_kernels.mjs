#!/usr/bin/env node
/**
 * Where a decode step's time goes: batch-B greedy decode of a config with random weights (the engine, the
 * prompts and the weights as `glam bench decode` makes them), every kernel call wrapped with a timer, and
 * per step the time in the logits, the expert products, the other products and everything else (attention
 * over the cache, norms, routing, sampling, bookkeeping), with each kernel op's share. After each round the
 * probe loop of `glam bench decode` reads the weights of each kind where they lie (the embedding, the other
 * non-expert weights, and for batch 1 every expert), and each kind's products are taken against it: the
 * rate they read their weights at over the probe's (this machine's bandwidth moves between levels for
 * seconds at a time, so only a round and the probes just after it are compared).
 *
 *   nice -n -10 node bench/decode_kernels.mjs [--config glam-0.1b-64e] [--batch 1] [--new 32] [--rounds 3]
 *       [--threads 2]
 *
 * Needs this tree built and the weights' memory free (8.3 GB in f32 for glam-0.1b-64e).
 */
import { parseArgs } from 'node:util';

const { values: v } = parseArgs({
  options: {
    config: { type: 'string', default: 'glam-0.1b-64e' },
    batch: { type: 'string', default: '1' },
    new: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
  },
  strict: true,
});
const dist = new URL('../dist/src/', import.meta.url).pathname;
const { checkMemory, decodeBenchEngine, decodeBenchPrompt, randomWeights } = await import(
  `${dist}bench/decode.js`
);
const { resolveConfig } = await import(`${dist}model/presets.js`);
const B = await import(`${dist}backend/index.js`);

const cfg = resolveConfig(v.config);
const [batch, newTokens, rounds] = [Number(v.batch), Number(v.new), Number(v.rounds)];
const K = B.kernels();
if (K.name !== 'native') throw new Error(`decode_kernels: needs the native kernels (${K.describe()})`);
K.setThreads(Number(v.threads));
checkMemory(cfg, 'f32');
const weights = randomWeights(cfg, 'f32');
const { paramSpecs } = await import(`${dist}model/params.js`);
// The weights by kind, for the probes: the tied embedding (the logits), the experts, the rest.
const kinds = { embedding: [], expert: [], other: [] };
for (const s of paramSpecs(cfg)) {
  const data = weights.get(s.name).data;
  (s.kind === 'embedding' ? kinds.embedding : s.kind === 'expert' ? kinds.expert : kinds.other).push(data);
}
const bytesOf = (views) => views.reduce((a, d) => a + d.byteLength, 0);
// One expert in every MoE layer (batch 1 reads two per layer).
const expertPerLayerBytes = bytesOf(kinds.expert) / cfg.n_experts;

// Milliseconds per kernel op since the last reset.
const spent = new Map();
for (const name of B.OP_NAMES) {
  const f = K[name];
  K[name] = (...args) => {
    const t0 = performance.now();
    const r = f.apply(K, args);
    spent.set(name, (spent.get(name) ?? 0) + performance.now() - t0);
    return r;
  };
}
const promptLen = 32;
console.log(`decode ${v.config}, batch ${batch}, ${newTokens} new tokens, ${K.describe()}`);
for (let round = 0; round < rounds; round++) {
  const engine = decodeBenchEngine(cfg, weights, batch, promptLen + newTokens);
  const model = engine.model;
  const timed = { forward: 0, logits: 0 };
  for (const method of ['forward', 'logits']) {
    const f = model[method].bind(model);
    model[method] = (...args) => {
      const t0 = performance.now();
      const r = f(...args);
      timed[method] += performance.now() - t0;
      return r;
    };
  }
  for (let b = 0; b < batch; b++) {
    const prompt = decodeBenchPrompt(cfg, round, b, promptLen);
    engine.submit({ prompt, maxTokens: newTokens, temperature: 0 }, () => {});
  }
  engine.step(); // the prefill (and each sequence's first token), not timed
  timed.forward = timed.logits = 0;
  spent.clear();
  let steps = 0;
  const t0 = performance.now();
  while (engine.pending > 0) {
    engine.step();
    steps++;
  }
  const total = performance.now() - t0;
  const per = (ms) => (ms / steps).toFixed(2);
  const ops = [...spent.entries()].sort((a, b) => b[1] - a[1]).map(([k, ms]) => `${k} ${per(ms)}`);
  // The float32 products: the logits (the model's logits call), the experts (sgemmGrouped), the others.
  const [sgemm, grouped] = [spent.get('sgemm') ?? 0, spent.get('sgemmGrouped') ?? 0];
  const threads = Number(v.threads);
  const probe = (views) => K.readBandwidthOf(threads, views, 2).gbps;
  const [embeddingGBs, otherGBs] = [probe(kinds.embedding), probe(kinds.other)];
  console.log(
    `round ${round + 1}: ${steps} steps, ms per step: total ${per(total)}, logits ${per(timed.logits)}, ` +
      `expert products ${per(grouped)}, other products ${per(sgemm - timed.logits)}, everything else ` +
      `${per(total - sgemm - grouped)} (forward ${per(timed.forward)})`,
  );
  // Each kind's products: GB/s of its weights read, and that over the probe of the same weights.
  const rate = (bytes, ms) => (bytes * steps) / (ms / 1000) / 1e9;
  const against = (name, bytes, ms, probeGBs) =>
    `${name} ${rate(bytes, ms).toFixed(1)} GB/s, probe ${probeGBs.toFixed(1)} (${(rate(bytes, ms) / probeGBs).toFixed(2)}x)`;
  const parts = [
    against('logits', bytesOf(kinds.embedding), timed.logits, embeddingGBs),
    // The other products read every non-expert weight but the embedding, norms and biases (small).
    against('other products', bytesOf(kinds.other), sgemm - timed.logits, otherGBs),
  ];
  if (batch === 1) {
    parts.push(against('expert products', 2 * expertPerLayerBytes, grouped, probe(kinds.expert)));
  }
  console.log(`  ${parts.join('; ')}`);
  console.log(`  kernel ms per step: ${ops.join(', ')}`);
}
