/**
 * A float64 reference forward of the GLaM model, written as plain loops straight
 * from docs/model.md "Forward pass" and independently of the layer code. It is the oracle
 * the tests hold the float32 model and its hand-written gradients against
 * (by finite differences); it is slow and meant for tiny shapes.
 */

import { type GlamConfig, isMoeLayer } from '../../src/model/config.js';
import type { Rng } from '../../src/util/rng.js';

export type Params64 = Map<string, Float64Array>;

/** T5 unidirectional bucket of distance n = i - j >= 0. */
export function bucket64(n: number, buckets: number, maxDistance: number): number {
  const maxExact = Math.floor(buckets / 2);
  if (n < maxExact) return n;
  const v =
    maxExact + Math.floor((Math.log(n / maxExact) / Math.log(maxDistance / maxExact)) * (buckets - maxExact));
  return Math.min(buckets - 1, v);
}

/** x[rows, cols] / sqrt(mean(x²) + eps) · scale. */
export function rmsnorm64(
  x: Float64Array,
  scale: Float64Array,
  rows: number,
  cols: number,
  eps: number,
): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += x[r * cols + c]! ** 2;
    const inv = 1 / Math.sqrt(ss / cols + eps);
    for (let c = 0; c < cols; c++) y[r * cols + c] = x[r * cols + c]! * inv * scale[c]!;
  }
  return y;
}

/** x[rows, k]·w[k, n], with w starting at offset wOff. */
export function matmul64(
  x: Float64Array,
  w: Float64Array,
  rows: number,
  k: number,
  n: number,
  wOff = 0,
): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += x[r * k + i]! * w[wOff + i * n + j]!;
      y[r * n + j] = s;
    }
  }
  return y;
}

export function gelu64(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

export interface Attention64Weights {
  wq: Float64Array;
  wk: Float64Array;
  wv: Float64Array;
  wo: Float64Array;
  relBias: Float64Array;
}

export interface Attention64Dims {
  batch: number;
  seqLen: number;
  dModel: number;
  heads: number;
  dHead: number;
  relBuckets: number;
  relMaxDistance: number;
}

/** Causal multi-head attention with the relative bias; returns concat(o)·Wo [B·T, D] (no residual). */
export function attention64(a: Float64Array, w: Attention64Weights, d: Attention64Dims): Float64Array {
  const { batch: B, seqLen: T, dModel: D, heads: H, dHead: Dh } = d;
  const HD = H * Dh;
  const N = B * T;
  const q = matmul64(a, w.wq, N, D, HD);
  const k = matmul64(a, w.wk, N, D, HD);
  const v = matmul64(a, w.wv, N, D, HD);
  const o = new Float64Array(N * HD);
  const s = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        const qi = (b * T + i) * HD + h * Dh;
        let mx = -Infinity;
        for (let j = 0; j <= i; j++) {
          const kj = (b * T + j) * HD + h * Dh;
          let dot = 0;
          for (let c = 0; c < Dh; c++) dot += q[qi + c]! * k[kj + c]!;
          s[j] = dot / Math.sqrt(Dh) + w.relBias[bucket64(i - j, d.relBuckets, d.relMaxDistance) * H + h]!;
          mx = Math.max(mx, s[j]!);
        }
        let z = 0;
        for (let j = 0; j <= i; j++) {
          s[j] = Math.exp(s[j]! - mx);
          z += s[j]!;
        }
        for (let j = 0; j <= i; j++) {
          const vj = (b * T + j) * HD + h * Dh;
          for (let c = 0; c < Dh; c++) o[qi + c] = o[qi + c]! + (s[j]! / z) * v[vj + c]!;
        }
      }
    }
  }
  return matmul64(o, w.wo, N, HD, D);
}

/** (gelu(f·wi0) ⊙ (f·wi1))·wo for rows of f. */
export function gatedFfn64(
  f: Float64Array,
  wi0: Float64Array,
  wi1: Float64Array,
  wo: Float64Array,
  rows: number,
  dModel: number,
  dFf: number,
): Float64Array {
  const a = matmul64(f, wi0, rows, dModel, dFf);
  const b = matmul64(f, wi1, rows, dModel, dFf);
  for (let i = 0; i < a.length; i++) a[i] = gelu64(a[i]!) * b[i]!;
  return matmul64(a, wo, rows, dFf, dModel);
}

export interface Moe64Weights {
  router: Float64Array;
  /** wi, or wi_0 when gated. */
  wi: Float64Array;
  wi1: Float64Array | null;
  wo: Float64Array;
}

export interface Moe64Options {
  experts: number;
  dModel: number;
  dFf: number;
  capacityFactor: number;
  numGroups: number;
  policy: 'all' | 'random';
  rng?: Rng;
}

export interface Moe64Result {
  out: Float64Array;
  aux: number;
  dropped: number;
  /** Kept assignments per expert. */
  load: number[];
  entropy: number;
  /** Per token: first/second choice and whether each was kept. */
  e1: number[];
  e2: number[];
  kept1: boolean[];
  kept2: boolean[];
}

/** GShard top-2 MoE over f [rows, D], token by token. */
export function moe64(f: Float64Array, w: Moe64Weights, rows: number, o: Moe64Options): Moe64Result {
  const { experts: E, dModel: D, dFf: F } = o;
  const G = o.numGroups;
  if (rows % G !== 0) throw new Error(`moe64: ${rows} tokens do not split into ${G} groups`);
  const S = rows / G;
  const C = o.capacityFactor > 0 ? Math.ceil((o.capacityFactor * S) / E) : Infinity;
  const logits = matmul64(f, w.router, rows, D, E);
  const p: number[][] = [];
  let entropy = 0;
  for (let t = 0; t < rows; t++) {
    const row = Array.from(logits.subarray(t * E, (t + 1) * E));
    const mx = Math.max(...row);
    const ex = row.map((x) => Math.exp(x - mx));
    const z = ex.reduce((s, x) => s + x, 0);
    const pt = ex.map((x) => x / z);
    p.push(pt);
    entropy -= pt.reduce((s, x) => s + (x > 0 ? x * Math.log(x) : 0), 0);
  }
  const argmaxExcept = (v: number[], skip: number): number => {
    let best = -1;
    for (let e = 0; e < v.length; e++) if (e !== skip && (best < 0 || v[e]! > v[best]!)) best = e;
    return best;
  };
  const e1 = p.map((v) => argmaxExcept(v, -1));
  const e2 = p.map((v, t) => argmaxExcept(v, e1[t]!));
  const kept1: boolean[] = new Array(rows).fill(false);
  const kept2: boolean[] = new Array(rows).fill(false);
  const load: number[] = new Array(E).fill(0);
  let dropped = 0;
  let aux = 0;
  for (let g = 0; g < G; g++) {
    const used: number[] = new Array(E).fill(0);
    for (let t = g * S; t < (g + 1) * S; t++) {
      if (used[e1[t]!]! < C) {
        used[e1[t]!]!++;
        kept1[t] = true;
      } else dropped++;
    }
    for (let t = g * S; t < (g + 1) * S; t++) {
      const g2 = p[t]![e2[t]!]! / (p[t]![e1[t]!]! + p[t]![e2[t]!]!);
      if (o.policy === 'random' && o.rng !== undefined && !(o.rng.uniform() < 2 * g2)) continue;
      if (used[e2[t]!]! < C) {
        used[e2[t]!]!++;
        kept2[t] = true;
      } else dropped++;
    }
    for (let e = 0; e < E; e++) load[e]! += used[e]!;
    let s = 0;
    for (let e = 0; e < E; e++) {
      let meanP = 0;
      let frac = 0;
      for (let t = g * S; t < (g + 1) * S; t++) {
        meanP += p[t]![e]! / S;
        if (e1[t] === e) frac += 1 / S;
      }
      s += meanP * frac;
    }
    aux += (E * s) / G;
  }

  const out = new Float64Array(rows * D);
  const expert = (e: number, x: Float64Array): Float64Array => {
    const h = matmul64(x, w.wi, 1, D, F, e * D * F);
    if (w.wi1 !== null) {
      const h1 = matmul64(x, w.wi1, 1, D, F, e * D * F);
      for (let i = 0; i < F; i++) h[i] = gelu64(h[i]!) * h1[i]!;
    } else {
      for (let i = 0; i < F; i++) h[i] = gelu64(h[i]!);
    }
    return matmul64(h, w.wo, 1, F, D, e * F * D);
  };
  for (let t = 0; t < rows; t++) {
    const x = f.subarray(t * D, (t + 1) * D);
    const pa = p[t]![e1[t]!]!;
    const pb = p[t]![e2[t]!]!;
    const add = (e: number, gate: number) => {
      const y = expert(e, x);
      for (let c = 0; c < D; c++) out[t * D + c] = out[t * D + c]! + gate * y[c]!;
    };
    if (kept1[t]) add(e1[t]!, pa / (pa + pb));
    if (kept2[t]) add(e2[t]!, pb / (pa + pb));
  }
  return { out, aux, dropped, load, entropy: entropy / rows, e1, e2, kept1, kept2 };
}

/** Mean cross-entropy and mean lse² over rows with target >= 0. */
export function loss64(
  logits: Float64Array,
  targets: Int32Array,
  vocab: number,
): { lm: number; z: number; tokens: number } {
  let ce = 0;
  let z = 0;
  let n = 0;
  for (let r = 0; r < targets.length; r++) {
    const tgt = targets[r]!;
    if (tgt < 0) continue;
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    let mx = -Infinity;
    for (const x of row) mx = Math.max(mx, x);
    let s = 0;
    for (const x of row) s += Math.exp(x - mx);
    const lse = mx + Math.log(s);
    ce += lse - row[tgt]!;
    z += lse * lse;
    n++;
  }
  return n > 0 ? { lm: ce / n, z: z / n, tokens: n } : { lm: 0, z: 0, tokens: 0 };
}

export interface Forward64Result {
  total: number;
  lm: number;
  z: number;
  aux: number;
  tokens: number;
  dropped: number;
  moe: { layer: number; aux: number; dropped: number; load: number[]; entropy: number }[];
  /** [B·T, vocab]. */
  logits: Float64Array;
}

/** The whole model in float64 (params by checkpoint name). */
export function glamForward64(
  cfg: GlamConfig,
  params: Params64,
  inputs: Int32Array,
  targets: Int32Array,
  batch: number,
  seqLen: number,
  opts: { capacityFactor?: number; rng?: Rng } = {},
): Forward64Result {
  const P = (name: string): Float64Array => {
    const t = params.get(name);
    if (t === undefined) throw new Error(`glamForward64: missing ${name}`);
    return t;
  };
  const D = cfg.d_model;
  const N = batch * seqLen;
  const emb = P('embed.weight');
  let h = new Float64Array(N * D);
  for (let i = 0; i < N; i++) h.set(emb.subarray(inputs[i]! * D, (inputs[i]! + 1) * D), i * D);
  const moe: Forward64Result['moe'] = [];
  let auxSum = 0;
  let dropped = 0;
  for (let l = 0; l < cfg.n_layers; l++) {
    const p = `layers.${l}`;
    const a = rmsnorm64(h, P(`${p}.attn_norm.scale`), N, D, cfg.norm_eps);
    const att = attention64(
      a,
      {
        wq: P(`${p}.attn.wq`),
        wk: P(`${p}.attn.wk`),
        wv: P(`${p}.attn.wv`),
        wo: P(`${p}.attn.wo`),
        relBias: P(`${p}.attn.rel_bias`),
      },
      {
        batch,
        seqLen,
        dModel: D,
        heads: cfg.n_heads,
        dHead: cfg.d_head,
        relBuckets: cfg.rel_buckets,
        relMaxDistance: cfg.rel_max_distance,
      },
    );
    const h1 = h.map((x, i) => x + att[i]!);
    const f = rmsnorm64(h1, P(`${p}.ffn_norm.scale`), N, D, cfg.norm_eps);
    let y: Float64Array;
    if (isMoeLayer(cfg, l)) {
      const gated = cfg.expert_gated;
      const r = moe64(
        f,
        {
          router: P(`${p}.moe.router`),
          wi: P(gated ? `${p}.moe.wi_0` : `${p}.moe.wi`),
          wi1: gated ? P(`${p}.moe.wi_1`) : null,
          wo: P(`${p}.moe.wo`),
        },
        N,
        {
          experts: cfg.n_experts,
          dModel: D,
          dFf: cfg.d_ff_expert,
          capacityFactor: opts.capacityFactor ?? cfg.capacity_factor,
          numGroups: cfg.num_groups,
          policy: cfg.second_expert_policy,
          rng: opts.rng,
        },
      );
      y = r.out;
      auxSum += r.aux;
      dropped += r.dropped;
      moe.push({ layer: l, aux: r.aux, dropped: r.dropped, load: r.load, entropy: r.entropy });
    } else {
      y = gatedFfn64(f, P(`${p}.ffn.wi_0`), P(`${p}.ffn.wi_1`), P(`${p}.ffn.wo`), N, D, cfg.d_ff);
    }
    h = h1.map((x, i) => x + y[i]!);
  }
  const x = rmsnorm64(h, P('final_norm.scale'), N, D, cfg.norm_eps);
  const V = cfg.vocab_size;
  const logits = new Float64Array(N * V);
  for (let r = 0; r < N; r++) {
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let c = 0; c < D; c++) s += x[r * D + c]! * emb[v * D + c]!;
      logits[r * V + v] = s / Math.sqrt(D);
    }
  }
  const { lm, z, tokens } = loss64(logits, targets, V);
  const total = lm + cfg.z_loss_weight * z + cfg.aux_loss_weight * auxSum;
  return { total, lm, z, aux: auxSum, tokens, dropped, moe, logits };
}
