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
  /** [E, D, F]: wi, or wi_0 when gated (E: the experts this process holds, see ExpertExchange). */
  wi: Float32Array;
  /** [E, D, F]: wi_1 when gated, else null. */
  wi1: Float32Array | null;
  /** [E, F, D]. */
  wo: Float32Array;
}

/**
 * Expert parallelism (GShard): the layer's experts are spread over processes, this one holding
 * experts [first, first + count). After routing, the kept assignments' rows (grouped by expert, as the
 * counting sort lays them out) travel to the processes holding their experts and the results come
 * back; backward sends the output gradients the same way. Every process of the group must call these
 * in the same order (they are collective).
 */
export interface ExpertExchange {
  readonly first: number;
  readonly count: number;
  /**
   * Learns the layout of an exchange from this process's routing (offsets [E+1] of its assignments
   * by expert) and returns the offsets [count+1], by local expert, of the rows it will receive.
   */
  plan(offsets: Int32Array): Int32Array;
  /** Sends this process's assignment rows [A, cols] to their experts; receives its experts' rows. */
  toExperts(src: Float32Array, cols: number, dst: Float32Array): void;
  /** The reverse: sends rows back in the order they came and receives this process's [A, cols]. */
  fromExperts(src: Float32Array, cols: number, dst: Float32Array): void;
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
  /** Rows the experts processed (local assignments, or what the exchange brought) and their offsets. */
  private expertRows = 0;
  private expertOffsets: Int32Array;

  constructor(
    readonly dims: MoeDims,
    /** The layer's index in the stack, for its stats. */
    readonly layer = 0,
    /** Set under expert parallelism; null when this process holds every expert. */
    readonly exchange: ExpertExchange | null = null,
  ) {
    this.expertOffsets = new Int32Array(dims.experts + 1);
    this.routing = new Top2Routing(dims.experts);
  }

  /**
   * out += MoE(f) (adds into the residual stream). Without an exchange, buffers are sized for 2
   * assignments per token so arena use is stable; with one, the rows this process's experts receive
   * vary from step to step.
   */
  forward(
    arena: Arena,
    f: Float32Array,
    w: MoeWeights,
    rows: number,
    opts: RoutingOptions,
    out: Float32Array,
  ): MoeStats {
    const { dModel: D, experts: E } = this.dims;
    const K = kernels();
    this.f = f;
    this.rows = rows;
    const logits = arena.alloc([rows, E]).data;
    this.p = arena.alloc([rows, E]).data;
    linearForward(f, w.router, rows, D, E, logits);
    K.softmaxRows(mat(logits, rows, E), mat(this.p, rows, E));
    const r = this.routing.route(this.p, rows, opts, logits);

    const cap = 2 * rows;
    const A = r.assignments;
    const token = r.token.subarray(0, A);
    const assigned = arena.alloc([cap, D]).data;
    K.gatherRows(mat(f, rows, D), token, mat(assigned, A, D));
    // The experts' side: these rows, or those the exchange brings from every process to the experts here.
    const ex = this.exchange;
    let M = A;
    if (ex === null) {
      this.x = assigned;
      this.expertOffsets.set(r.offsets);
    } else {
      this.expertOffsets = ex.plan(r.offsets);
      M = this.expertOffsets[ex.count]!;
      this.x = arena.alloc([M, D]).data;
      ex.toExperts(assigned, D, this.x);
    }
    this.expertRows = M;
    const ye = this.expertsForward(arena, w, ex === null ? cap : M);
    if (ex === null) {
      this.y = ye;
    } else {
      this.y = arena.alloc([cap, D]).data;
      ex.fromExperts(ye, D, this.y);
    }
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
   * The experts' products on the rows in this.x (grouped by expert: this.expertOffsets), keeping
   * h0, h1 and act for backward; returns the output rows [M, D]. One grouped product per weight
   * matrix: every expert's rows at once.
   */
  private expertsForward(arena: Arena, w: MoeWeights, capRows: number): Float32Array {
    const { dModel: D, dFf: F, gated } = this.dims;
    const K = kernels();
    const M = this.expertRows;
    const off = this.expertOffsets;
    this.h0 = arena.alloc([capRows, F]).data;
    this.h1 = gated ? arena.alloc([capRows, F]).data : this.h1;
    this.act = arena.alloc([capRows, F]).data;
    const y = arena.alloc([capRows, D]).data;
    const x = mat(this.x, M, D);
    K.sgemmGrouped(off, 1, x, mat(w.wi, D, F), D * F, 0, mat(this.h0, M, F), 0);
    if (gated) K.sgemmGrouped(off, 1, x, mat(w.wi1!, D, F), D * F, 0, mat(this.h1, M, F), 0);
    const h0 = this.h0.subarray(0, M * F);
    const act = this.act.subarray(0, M * F);
    if (gated) K.gatedGelu(h0, this.h1.subarray(0, M * F), act);
    else K.gelu(h0, act);
    K.sgemmGrouped(off, 1, mat(this.act, M, F), mat(w.wo, F, D), F * D, 0, mat(y, M, D), 0);
    return y;
  }

  /**
   * Backward of expertsForward: from the output rows' gradient dy [M, D] accumulates the expert
   * weight grads and overwrites dy with the input rows' gradient.
   */
  private expertsBackward(
    scratch: Arena,
    w: MoeWeights,
    g: MoeWeights,
    dy: Float32Array,
    capRows: number,
  ): void {
    const { dModel: D, dFf: F, gated } = this.dims;
    const K = kernels();
    const M = this.expertRows;
    const off = this.expertOffsets;
    const dyM = mat(dy, M, D);
    const dAct = scratch.alloc([capRows, F]).data;
    // g.wo_e += act_eᵀ·dy_e; dAct_e = dy_e·wo_eᵀ (grouped over the experts).
    K.sgemmGrouped(off, 1, transpose(mat(this.act, M, F)), dyM, 0, 1, mat(g.wo, F, D), F * D);
    K.sgemmGrouped(off, 1, dyM, transpose(mat(w.wo, F, D)), F * D, 0, mat(dAct, M, F), 0);
    let dh0 = dAct;
    const dh1 = gated ? scratch.alloc([capRows, F]).data : dAct;
    if (gated) {
      dh0 = scratch.alloc([capRows, F]).data;
      K.gatedGeluBackward(
        this.h0.subarray(0, M * F),
        this.h1.subarray(0, M * F),
        dAct.subarray(0, M * F),
        dh0.subarray(0, M * F),
        dh1.subarray(0, M * F),
      );
    } else {
      K.geluBackward(this.h0.subarray(0, M * F), dAct.subarray(0, M * F), dAct.subarray(0, M * F));
    }
    const dx = dyM; // dy is spent: reuse its rows for the expert input grads
    const xT = transpose(mat(this.x, M, D));
    K.sgemmGrouped(off, 1, xT, mat(dh0, M, F), 0, 1, mat(g.wi, D, F), D * F);
    K.sgemmGrouped(off, 1, mat(dh0, M, F), transpose(mat(w.wi, D, F)), D * F, 0, dx, 0);
    if (gated) {
      K.sgemmGrouped(off, 1, xT, mat(dh1, M, F), 0, 1, mat(g.wi1!, D, F), D * F);
      K.sgemmGrouped(off, 1, mat(dh1, M, F), transpose(mat(w.wi1!, D, F)), D * F, 1, dx, 0);
    }
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
    const { dModel: D, experts: E } = this.dims;
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

    // Through the experts, here or where the exchange sends the rows.
    const ex = this.exchange;
    let dx = dyA;
    if (ex === null) {
      this.expertsBackward(scratch, w, g, dy, cap);
    } else {
      const dye = scratch.alloc([this.expertRows, D]).data;
      ex.toExperts(dy, D, dye);
      this.expertsBackward(scratch, w, g, dye, this.expertRows);
      dx = mat(scratch.alloc([cap, D]).data, A, D);
      ex.fromExperts(dye, D, dx.data);
    }

    // Router: the gates g1 = p1/(p1+p2), g2 = p2/(p1+p2) (a dropped choice has zero gate gradient but
    // still shapes the other gate), plus the aux loss through p only.
    const p = this.p;
    const dp = scratch.alloc([rows, E]).data;
    K.routerGrad(
      mat(p, rows, E),
      r.first,
      r.second,
      r.slot1,
      r.slot2,
      dGate.subarray(0, A),
      r.firstCounts,
      r.groups,
      auxGrad,
      mat(dp, rows, E),
    );
    const dpm = mat(dp, rows, E);
    K.softmaxRowsBackward(mat(p, rows, E), dpm, dpm);
    linearWeightGrad(this.f, dp, rows, D, E, g.router);
    linearInputGrad(dp, w.router, rows, D, E, df);
    const ones = scratch.alloc([A]).fill(1).data;
    K.scatterAddRows(dx, token, ones, mat(df, rows, D));
  }
}
