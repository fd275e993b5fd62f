import { kernels } from '../../backend/index.js';
import type { Arena } from '../../tensor/arena.js';
import { linearForward, linearInputGrad, linearWeightGrad } from './linear.js';

export interface GatedFfnWeights {
  wi0: Float32Array;
  wi1: Float32Array;
  wo: Float32Array;
}

/** The dense feed-forward sublayer: y = (gelu(f·wi_0) ⊙ (f·wi_1))·wo. */
export class GatedFfnLayer {
  private f: Float32Array = new Float32Array(0);
  private h0: Float32Array = new Float32Array(0);
  private h1: Float32Array = new Float32Array(0);
  private act: Float32Array = new Float32Array(0);
  private rows = 0;

  constructor(
    readonly dModel: number,
    readonly dFf: number,
  ) {}

  /** out += FFN(f): adds into `out` (the residual stream). */
  forward(arena: Arena, f: Float32Array, w: GatedFfnWeights, rows: number, out: Float32Array): void {
    const D = this.dModel;
    const F = this.dFf;
    this.f = f;
    this.rows = rows;
    this.h0 = arena.alloc([rows, F]).data;
    this.h1 = arena.alloc([rows, F]).data;
    this.act = arena.alloc([rows, F]).data;
    linearForward(f, w.wi0, rows, D, F, this.h0);
    linearForward(f, w.wi1, rows, D, F, this.h1);
    kernels().gatedGelu(this.h0, this.h1, this.act);
    linearForward(this.act, w.wo, rows, F, D, out, 1);
  }

  /** From dOut (grad of the sublayer output) writes df and accumulates the weight grads. */
  backward(
    scratch: Arena,
    w: GatedFfnWeights,
    g: GatedFfnWeights,
    dOut: Float32Array,
    df: Float32Array,
  ): void {
    const D = this.dModel;
    const F = this.dFf;
    const rows = this.rows;
    const dAct = scratch.alloc([rows, F]).data;
    const dh0 = scratch.alloc([rows, F]).data;
    const dh1 = scratch.alloc([rows, F]).data;
    linearWeightGrad(this.act, dOut, rows, F, D, g.wo);
    linearInputGrad(dOut, w.wo, rows, F, D, dAct);
    kernels().gatedGeluBackward(this.h0, this.h1, dAct, dh0, dh1);
    linearWeightGrad(this.f, dh0, rows, D, F, g.wi0);
    linearWeightGrad(this.f, dh1, rows, D, F, g.wi1);
    linearInputGrad(dh0, w.wi0, rows, D, F, df);
    linearInputGrad(dh1, w.wi1, rows, D, F, df, 1);
  }
}
