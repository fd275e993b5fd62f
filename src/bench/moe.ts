/**
 * Forward+backward time of one sparse MoE layer against a dense gated-GELU
 * layer doing the same activated FLOPs per token, on the active kernels.
 * `glam bench moe` prints it; the target is MoE <= 1.25× dense.
 */
import { kernels } from '../backend/index.js';
import { GatedFfnLayer } from '../model/layers/ffn.js';
import { MoeLayer } from '../model/layers/moe.js';
import { Arena } from '../tensor/arena.js';
import { Rng } from '../util/rng.js';
import { median } from './stats.js';

export interface MoeBenchOptions {
  tokens?: number;
  dModel?: number;
  dFfExpert?: number;
  experts?: number;
  /** <= 0: dropless (every token runs exactly 2 experts, the fair FLOP match). */
  capacityFactor?: number;
  /** Timed repetitions (after one warm-up). */
  repeats?: number;
  seed?: number;
}

export interface MoeBenchResult {
  tokens: number;
  dModel: number;
  dFfExpert: number;
  experts: number;
  capacityFactor: number;
  /** Dense hidden width with the MoE's activated forward FLOPs per token. */
  denseDFf: number;
  /** Forward FLOPs per token: router + 2 experts, and the dense layer. */
  moeFlopsPerToken: number;
  denseFlopsPerToken: number;
  /** Median milliseconds of forward+backward. */
  moeMs: number;
  denseMs: number;
  /** moeMs / denseMs. */
  ratio: number;
  /** Median forward-only milliseconds. */
  moeForwardMs: number;
  denseForwardMs: number;
  /** Assignments dropped by capacity in the last MoE run, and its busiest expert's load. */
  dropped: number;
  maxLoad: number;
  kernels: string;
}

function normal(rng: Rng, n: number, std: number): Float32Array {
  const a = new Float32Array(n);
  rng.fillNormal(a, std);
  return a;
}

export function benchMoe(opts: MoeBenchOptions = {}): MoeBenchResult {
  const N = opts.tokens ?? 4096;
  const D = opts.dModel ?? 256;
  const Fe = opts.dFfExpert ?? 512;
  const E = opts.experts ?? 64;
  const cf = opts.capacityFactor ?? 0;
  const repeats = Math.max(1, opts.repeats ?? 5);
  const rng = new Rng(opts.seed ?? 1);
  // MoE: router 2·D·E + 2 experts × (2·D·Fe + 2·Fe·D); dense gated: 3 × 2·D·F.
  const moeFlops = 2 * D * E + 2 * 4 * D * Fe;
  const F = Math.max(1, Math.round(moeFlops / (6 * D)));

  const f = normal(rng, N * D, 1);
  const dOut = normal(rng, N * D, 1);
  const out = new Float32Array(N * D);
  const df = new Float32Array(N * D);
  const moe = new MoeLayer({ dModel: D, dFf: Fe, experts: E, gated: false });
  const mw = {
    router: normal(rng, D * E, 1 / Math.sqrt(D)),
    wi: normal(rng, E * D * Fe, 1 / Math.sqrt(D)),
    wi1: null,
    wo: normal(rng, E * Fe * D, 1 / Math.sqrt(Fe)),
  };
  const mg = {
    router: new Float32Array(D * E),
    wi: new Float32Array(E * D * Fe),
    wi1: null,
    wo: new Float32Array(E * Fe * D),
  };
  const dense = new GatedFfnLayer(D, F);
  const dw = {
    wi0: normal(rng, D * F, 1 / Math.sqrt(D)),
    wi1: normal(rng, D * F, 1 / Math.sqrt(D)),
    wo: normal(rng, F * D, 1 / Math.sqrt(F)),
  };
  const dg = { wi0: new Float32Array(D * F), wi1: new Float32Array(D * F), wo: new Float32Array(F * D) };

  const arena = new Arena();
  const scratch = new Arena();
  const routing = { capacityFactor: cf, numGroups: 1, policy: 'all' as const };
  let dropped = 0;
  let maxLoad = 0;
  const runMoe = (): [number, number] => {
    arena.reset();
    scratch.reset();
    const t0 = performance.now();
    const s = moe.forward(arena, f, mw, N, routing, out);
    const t1 = performance.now();
    moe.backward(scratch, mw, mg, dOut, df, 0.01);
    const t2 = performance.now();
    dropped = s.dropped;
    maxLoad = Math.max(...s.load);
    return [t2 - t0, t1 - t0];
  };
  const runDense = (): [number, number] => {
    arena.reset();
    scratch.reset();
    const t0 = performance.now();
    dense.forward(arena, f, dw, N, out);
    const t1 = performance.now();
    dense.backward(scratch, dw, dg, dOut, df);
    const t2 = performance.now();
    return [t2 - t0, t1 - t0];
  };

  runMoe();
  runDense();
  const moeT: [number, number][] = [];
  const denseT: [number, number][] = [];
  for (let i = 0; i < repeats; i++) {
    // Interleaved so drifts in machine load hit both alike.
    moeT.push(runMoe());
    denseT.push(runDense());
  }
  const moeMs = median(moeT.map((t) => t[0]));
  const denseMs = median(denseT.map((t) => t[0]));
  return {
    tokens: N,
    dModel: D,
    dFfExpert: Fe,
    experts: E,
    capacityFactor: cf,
    denseDFf: F,
    moeFlopsPerToken: moeFlops,
    denseFlopsPerToken: 6 * D * F,
    moeMs,
    denseMs,
    ratio: moeMs / denseMs,
    moeForwardMs: median(moeT.map((t) => t[1])),
    denseForwardMs: median(denseT.map((t) => t[1])),
    dropped,
    maxLoad,
    kernels: kernels().describe(),
  };
}

/** A few lines for the terminal. */
export function formatMoeBench(r: MoeBenchResult): string {
  const cf = r.capacityFactor > 0 ? `capacity factor ${r.capacityFactor}` : 'dropless';
  return [
    `MoE layer: ${r.tokens} tokens, d_model ${r.dModel}, ${r.experts} experts of d_ff ${r.dFfExpert}, top-2, ${cf}`,
    `dense gated-GELU layer: d_ff ${r.denseDFf} (${(r.denseFlopsPerToken / 1e6).toFixed(3)} vs ${(r.moeFlopsPerToken / 1e6).toFixed(3)} MFLOP/token forward)`,
    `forward+backward median: MoE ${r.moeMs.toFixed(1)} ms, dense ${r.denseMs.toFixed(1)} ms, ratio ${r.ratio.toFixed(3)} (target <= 1.25)`,
    `forward only: MoE ${r.moeForwardMs.toFixed(1)} ms, dense ${r.denseForwardMs.toFixed(1)} ms; dropped ${r.dropped}, busiest expert ${r.maxLoad} assignments`,
    `kernels: ${r.kernels}`,
  ].join('\n');
}
