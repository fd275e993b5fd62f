#!/usr/bin/env node
/**
 * The products of one decode step of glam-0.1b-64e (d_model 768, d_ff 3072, 64 experts of 3072, a 256k
 * vocabulary), each timed on its own, as GB/s of weights read: an m-row product against 768x3072 and
 * 3072x768 weights (the dense feed-forward; 24 copies in turn, so every call reads from memory) and
 * against 768x768 ones (the attention projections, 96 copies), the tied-embedding logits (x · Eᵀ, E
 * 256000x768), the expert products of 2 routed experts (16 expert pairs in turn from 64, m rows each),
 * and those of a whole step of m tokens routed at random (top-2 of 64 experts, 3 layers' worth of
 * weights in turn: about 41 experts chosen for 32 tokens, each streamed once). With --against DIST (the
 * dist/ folder of another build of this project, e.g. an older commit's, built), both builds run in one
 * process, alternating in blocks of 7 calls over 4 rounds, and the ratio of the medians is printed (this
 * build over that one).
 *
 * With --dtype bf16 the weights are bf16 (gemmBf16, gemmGroupedBf16: half the bytes). With --probe each
 * product's line also gives the read bandwidth probed just before it (0.3 s, best pass): this machine's
 * bandwidth moves between levels for seconds at a time, and a product's rate means little without it.
 *
 *   node bench/decode_products.mjs [--against DIST] [--threads 2] [--rows 1,4] [--dtype f32|bf16] [--probe]
 *
 * Run it under `nice -n -10` on a quiet machine; needs this tree built.
 */
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    against: { type: 'string' },
    threads: { type: 'string', default: '2' },
    rows: { type: 'string', default: '1,4' },
    dtype: { type: 'string', default: 'f32' },
    probe: { type: 'boolean', default: false },
  },
});
const threads = Number(opt.threads);
if (opt.dtype !== 'f32' && opt.dtype !== 'bf16')
  throw new Error(`decode_products: --dtype must be f32 or bf16, got ${opt.dtype}`);
const bf16 = opt.dtype === 'bf16';
const builds = [new URL('../dist/', import.meta.url).pathname, ...(opt.against ? [opt.against] : [])];
const sides = [];
for (const d of builds) {
  const B = await import(`${d}/src/backend/index.js`);
  const K = B.kernels();
  if (K.name !== 'native') throw new Error(`decode_products: ${d} has no native kernels (${K.describe()})`);
  K.setThreads(threads);
  sides.push({ B, K });
}
const { mat, bmat, transpose } = sides[0].B;
const filled = (n) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += 97) a[i] = Math.random();
  return a;
};
// Weights: float32, or bf16 (every element 0.5: the values do not change the time).
const weights = (n) => (bf16 ? new Uint16Array(n).fill(0x3f00) : filled(n));
const wbytes = bf16 ? 2 : 4;
// y = alpha·x·W, W [k, n] (or its transpose viewed from [n, k]) in the chosen dtype.
const product = (K, x, w, k, n, y, trans = false) => {
  const v = bf16 ? bmat(w, trans ? n : k, trans ? k : n) : mat(w, trans ? n : k, trans ? k : n);
  const b = trans ? transpose(v) : v;
  if (bf16) K.gemmBf16(1, x, b, 0, y);
  else K.sgemm(1, x, b, 0, y);
};
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
function time(label, bytes, fn) {
  const probe = opt.probe
    ? `  probe ${sides[0].K.readBandwidth(threads, 1024, 0.3).gbps.toFixed(1)} GB/s`
    : '';
  const ms = sides.map(() => []);
  for (let round = 0; round < 4; round++) {
    for (let s = 0; s < sides.length; s++) {
      fn(sides[s].K);
      for (let r = 0; r < 7; r++) {
        const t0 = performance.now();
        fn(sides[s].K);
        ms[s].push(performance.now() - t0);
      }
    }
  }
  const gbs = ms.map((t) => bytes / median(t) / 1e6);
  const cols = gbs.map((g, s) => `${s === 0 ? 'this' : 'against'} ${g.toFixed(1).padStart(5)} GB/s`);
  const ratio = gbs.length > 1 ? `  this/against ${(gbs[0] / gbs[1]).toFixed(2)}` : '';
  console.log(`${label.padEnd(34)} ${cols.join('  ')}${ratio}${probe}`);
}
const [D, F, V, E] = [768, 3072, 256000, 64];
console.log(`decode products, ${opt.dtype} weights, ${threads} threads; this: ${sides[0].K.describe()}`);
for (const m of opt.rows.split(',').map(Number)) {
  const x = filled(m * F);
  const y = filled(m * F);
  const copies = Array.from({ length: 24 }, () => weights(D * F));
  let i = 0;
  // The two weight shapes of a layer: d_model -> d_ff and d_ff -> d_model.
  const shapes = [
    [D, F],
    [F, D],
  ];
  for (const [k, n] of shapes) {
    time(`rows ${m}: x · W [${k}x${n}]`, D * F * wbytes, (K) =>
      product(K, mat(x, m, k), copies[i++ % 24], k, n, mat(y, m, n)),
    );
  }
  // The attention projections (d_model -> d_model), 96 copies in turn (226 MB in float32).
  const square = Array.from({ length: 96 }, () => weights(D * D));
  let q = 0;
  time(`rows ${m}: x · W [${D}x${D}]`, D * D * wbytes, (K) =>
    product(K, mat(x, m, D), square[q++ % 96], D, D, mat(y, m, D)),
  );
  const emb = weights(V * D);
  const logits = new Float32Array(m * V);
  time(`rows ${m}: logits x · Eᵀ`, V * D * wbytes, (K) =>
    product(K, mat(x, m, D), emb, D, V, mat(logits, m, V), true),
  );
  const experts = weights(E * D * F);
  // 16 pairs of experts, each getting the m rows.
  const offsets = Array.from({ length: 16 }, (_, p) => {
    const [e1, e2] = [(p * 7) % 32, 32 + ((p * 13) % 32)];
    return Int32Array.from({ length: E + 1 }, (_, e) => (e > e1 ? m : 0) + (e > e2 ? m : 0));
  });
  let o = 0;
  const xa = filled(2 * m * F);
  const ya = filled(2 * m * F);
  for (const [k, n] of shapes) {
    time(`rows ${m}: 2 experts [${k}x${n}]`, 2 * D * F * wbytes, (K) =>
      bf16
        ? K.gemmGroupedBf16(
            offsets[o++ % 16],
            1,
            mat(xa, 2 * m, k),
            bmat(experts, k, n),
            D * F,
            0,
            mat(ya, 2 * m, n),
            0,
          )
        : K.sgemmGrouped(
            offsets[o++ % 16],
            1,
            mat(xa, 2 * m, k),
            mat(experts, k, n),
            D * F,
            0,
            mat(ya, 2 * m, n),
            0,
          ),
    );
  }
  // The expert products of a decode step of m tokens: each token routed to 2 of the 64 experts at
  // random (24 routings in turn), every expert chosen streamed once, as the engine groups them. The GB/s
  // count the chosen experts' weights.
  const routings = Array.from({ length: 24 }, () => {
    const count = new Array(E).fill(0);
    for (let t = 0; t < m; t++) {
      const first = Math.floor(Math.random() * E);
      const second = (first + 1 + Math.floor(Math.random() * (E - 1))) % E;
      count[first]++;
      count[second]++;
    }
    const offsets = new Int32Array(E + 1);
    for (let e = 0; e < E; e++) offsets[e + 1] = offsets[e] + count[e];
    return { offsets, chosen: count.filter((c) => c > 0).length };
  });
  const meanChosen = routings.reduce((a, r) => a + r.chosen, 0) / routings.length;
  const layers = Array.from({ length: 3 }, () => weights(E * D * F));
  let s = 0;
  for (const [k, n] of shapes) {
    time(`rows ${m}: routed step [${k}x${n}]`, meanChosen * D * F * wbytes, (K) => {
      const { offsets } = routings[s % 24];
      const w = layers[s++ % 3];
      if (bf16)
        K.gemmGroupedBf16(offsets, 1, mat(xa, 2 * m, k), bmat(w, k, n), D * F, 0, mat(ya, 2 * m, n), 0);
      else K.sgemmGrouped(offsets, 1, mat(xa, 2 * m, k), mat(w, k, n), D * F, 0, mat(ya, 2 * m, n), 0);
    });
  }
}
const bw = sides[0].K.readBandwidth(threads, 1024, 2);
console.log(
  `memory read bandwidth (this run): best ${bw.gbps.toFixed(1)} GB/s, median ${bw.median.toFixed(1)} GB/s`,
);
