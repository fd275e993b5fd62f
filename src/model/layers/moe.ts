import { kernels, mat, transpose } from '../../backend/index.js';
import type { Arena } from '../../tensor/arena.js';
import { linearForward, linearInputGrad, linearWeightGrad } from './linear.js';
import { type RoutingOptions, Top2Routing } from './routing.js';

export type { RoutingOptions } from './routing.js';
export { Top2Routing } from './routing.js';

export interface MoeDims {
  dModel: number;
  /** Expert hidden width (d_ff_expert). */
  dFf: number;
  experts: number;
  /** Experts are gelu(x·wi_0) ⊙ (x·wi_1) instead of gelu(x·wi). */
  gated: boolean;
}

export interface MoeWeights {
  /** [D, E]. */
  router: Float32Array;
  /** [E, D, F]: wi, or wi_0 when gated. */
  wi: Float32Array;
  /** [E, D, F]: wi_1 when gated, else null. */
  wi1: Float32Array | null;
  /** [E, F, D]. */
  wo: Float32Array;
}

/** What an MoE layer reports of one forward pass (docs/model.md "Load and drop statistics"). */
export interface MoeStats {
  /** The layer's index in the stack. */
  layer: number;
  /** Kept assignments per expert (after capacity): the tokens each expert processed. */
  load: number[];
  /** Assignments that reached each expert's capacity check (the load before capacity). */
  routedLoad: number[];
  /** Assignments dropped for lack of capacity: Σ (routedLoad − load). */
  dropped: number;
  /** dropped / (2 · tokens): the share of all top-2 assignments lost to capacity. */
  droppedFraction: number;
  routerEntropy: number;
  aux: number;
}

/**
 * The GLaM/GShard top-2 mixture-of-experts feed-forward sublayer, computed
 * sparsely: each expert's kept tokens are gathered into one contiguous block,
 * multiplied by that expert's weights only, and scattered back weighted by
 * their gates. Cost follows the kept assignments, not the number of experts.
 */
export class MoeLayer {
  readonly routing: Top2Routing;
  private f: Float32Array = new Float32Array(0);
  private p: Float32Array = new Float32Array(0);
  private x: Float32Array = new Float32Array(0);
  private h0: Float32Array = new Float32Array(0);
  private h1: Float32Array = new Float32Array(0);
  private act: Float32Array = new Float32Array(0);
  private y: Float32Array = new Float32Array(0);
  private rows = 0;
  private readonly auxCoef: Float64Array;

  constructor(
    readonly dims: MoeDims,
    /** The layer's index in the stack, for its stats. */
    readonly layer = 0,
  ) {
    this.routing = new Top2Routing(dims.experts);
    this.auxCoef = new Float64Array(dims.experts);
  }

  /** out += MoE(f) (adds into the residual stream). Buffers are sized for 2 assignments per token so arena use is stable. */
  forward(
    arena: Arena,
    f: Float32Array,
    w: MoeWeights,
    rows: number,
    opts: RoutingOptions,
    out: Float32Array,
  ): MoeStats {
    const { dModel: D, dFf: F, experts: E, gated } = this.dims;
    const K = kernels();
    this.f = f;
    this.rows = rows;
    const logits = arena.alloc([rows, E]).data;
    this.p = arena.alloc([rows, E]).data;
    linearForward(f, w.router, rows, D, E, logits);
    K.softmaxRows(mat(logits, rows, E), mat(this.p, rows, E));
    const r = this.routing.route(this.p, rows, opts, logits);

    const cap = 2 * rows;
    this.x = arena.alloc([cap, D]).data;
    this.h0 = arena.alloc([cap, F]).data;
    this.h1 = gated ? arena.alloc([cap, F]).data : this.h1;
    this.act = arena.alloc([cap, F]).data;
    this.y = arena.alloc([cap, D]).data;
    const A = r.assignments;
    const token = r.token.subarray(0, A);
    const x = mat(this.x, A, D);
    K.gatherRows(mat(f, rows, D), token, x);
    // One grouped product per weight matrix: every expert's rows at once.
    const off = this.routing.offsets;
    K.sgemmGrouped(off, 1, x, mat(w.wi, D, F), D * F, 0, mat(this.h0, A, F), 0);
    if (gated) K.sgemmGrouped(off, 1, x, mat(w.wi1!, D, F), D * F, 0, mat(this.h1, A, F), 0);
    const h0 = this.h0.subarray(0, A * F);
    const act = this.act.subarray(0, A * F);
    if (gated) K.gatedGelu(h0, this.h1.subarray(0, A * F), act);
    else K.gelu(h0, act);
    K.sgemmGrouped(off, 1, mat(this.act, A, F), mat(w.wo, F, D), F * D, 0, mat(this.y, A, D), 0);
    K.scatterAddRows(mat(this.y, A, D), token, r.gate.subarray(0, A), mat(out, rows, D));

    return {
      layer: this.layer,
      load: Array.from(r.load),
      routedLoad: Array.from(r.routed),
      dropped: r.dropped,
      droppedFraction: rows > 0 ? r.dropped / (2 * rows) : 0,
      routerEntropy: r.entropy,
      aux: r.aux,
    };
  }

  /**
   * From dOut (grad of the sublayer output) writes df and accumulates the weight
   * grads. `auxGrad` is d(objective)/d(aux) of this layer; the aux loss reaches
   * the router through p only, the gates through their normalisation into p.
   */
  backward(
    scratch: Arena,
    w: MoeWeights,
    g: MoeWeights,
    dOut: Float32Array,
    df: Float32Array,
    auxGrad: number,
  ): void {
    const { dModel: D, dFf: F, experts: E, gated } = this.dims;
    const K = kernels();
    const r = this.routing;
    const rows = this.rows;
    const A = r.assignments;
    const cap = 2 * rows;
    const token = r.token.subarray(0, A);

    // dy_a = dOut[token_a]; the gate gradient is dy_a·y_a, then dy_a is scaled by its gate.
    const dy = scratch.alloc([cap, D]).data;
    const dGate = scratch.alloc([cap]).data;
    const dyA = mat(dy, A, D);
    K.gatherRows(mat(dOut, rows, D), token, dyA);
    K.rowDotScale(dyA, mat(this.y, A, D), r.gate, dGate);

    const dAct = scratch.alloc([cap, F]).data;
    const off = r.offsets;
    // g.wo_e += act_eᵀ·dy_e; dAct_e = dy_e·wo_eᵀ (grouped over the experts).
    K.sgemmGrouped(off, 1, transpose(mat(this.act, A, F)), dyA, 0, 1, mat(g.wo, F, D), F * D);
    K.sgemmGrouped(off, 1, dyA, transpose(mat(w.wo, F, D)), F * D, 0, mat(dAct, A, F), 0);
    let dh0 = dAct;
    const dh1 = gated ? scratch.alloc([cap, F]).data : dAct;
    if (gated) {
      dh0 = scratch.alloc([cap, F]).data;
      K.gatedGeluBackward(
        this.h0.subarray(0, A * F),
        this.h1.subarray(0, A * F),
        dAct.subarray(0, A * F),
        dh0.subarray(0, A * F),
        dh1.subarray(0, A * F),
      );
    } else {
      K.geluBackward(this.h0.subarray(0, A * F), dAct.subarray(0, A * F), dAct.subarray(0, A * F));
    }
    const dx = dyA; // dy is spent: reuse its rows for the expert input grads
    const xT = transpose(mat(this.x, A, D));
    K.sgemmGrouped(off, 1, xT, mat(dh0, A, F), 0, 1, mat(g.wi, D, F), D * F);
    K.sgemmGrouped(off, 1, mat(dh0, A, F), transpose(mat(w.wi, D, F)), D * F, 0, dx, 0);
    if (gated) {
      K.sgemmGrouped(off, 1, xT, mat(dh1, A, F), 0, 1, mat(g.wi1!, D, F), D * F);
      K.sgemmGrouped(off, 1, mat(dh1, A, F), transpose(mat(w.wi1!, D, F)), D * F, 1, dx, 0);
    }

    // Router: the gates g1 = p1/(p1+p2), g2 = p2/(p1+p2) (a dropped choice has
    // zero gate gradient but still shapes the other gate), plus the aux loss
    // through p: d aux / d p_t[e] = E · firstCount_g[e] / (G · S²) for t in group g.
    const p = this.p;
    const dp = scratch.alloc([rows, E]).data;
    const S = r.groupSize;
    const G = r.groups;
    const auxCoef = this.auxCoef;
    for (let gi = 0; gi < G; gi++) {
      for (let e = 0; e < E; e++) auxCoef[e] = (auxGrad * E * r.firstCounts[gi * E + e]!) / (G * S * S);
      for (let t = gi * S; t < (gi + 1) * S; t++) {
        const o = t * E;
        for (let e = 0; e < E; e++) dp[o + e] = auxCoef[e]!;
        const e1 = r.first[t]!;
        const e2 = r.second[t]!;
        const a1 = r.slot1[t]!;
        const a2 = r.slot2[t]!;
        const dg1 = a1 >= 0 ? dGate[a1]! : 0;
        const dg2 = a2 >= 0 ? dGate[a2]! : 0;
        const p1 = p[o + e1]!;
        const p2 = p[o + e2]!;
        const s2 = (p1 + p2) * (p1 + p2);
        dp[o + e1] += (p2 * (dg1 - dg2)) / s2;
        dp[o + e2] += (p1 * (dg2 - dg1)) / s2;
      }
    }
    const dpm = mat(dp, rows, E);
    K.softmaxRowsBackward(mat(p, rows, E), dpm, dpm);
    linearWeightGrad(this.f, dp, rows, D, E, g.router);
    linearInputGrad(dp, w.router, rows, D, E, df);
    const ones = scratch.alloc([A]).fill(1).data;
    K.scatterAddRows(dx, token, ones, mat(df, rows, D));
  }
}
