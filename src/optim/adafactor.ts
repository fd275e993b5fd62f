/**
 * Adafactor (Shazeer & Stern 2018, Algorithm 4) as GLaM trains with it
 * (docs/model.md "Adafactor"): no first moment (β1 = 0), β2_t = 1 − t^−0.8,
 * ε1 = 1e-30 added to g², factored second moments, update clipping at RMS 1,
 * absolute learning rate.
 *
 * Which tensors are factored: every tensor of rank >= 2 is read as a stack of
 * matrices over its last two dimensions (leading dimensions index the stack, so
 * an expert tensor [E,D,F] is E matrices [D,F]). A matrix is factored when both
 * of its dimensions are >= `minDimToFactor` (default 2): that covers the
 * embedding [V,D], projections, the router, rel_bias and every expert. Vectors
 * (norm scales) and matrices with a dimension below the minimum keep a full
 * second moment.
 *
 * Factored statistics of a matrix G [n,m]:
 *   R ← β2 R + (1−β2)·rowsum(G² + ε1)   (length n, state '<name>.v_row')
 *   C ← β2 C + (1−β2)·colsum(G² + ε1)   (length m, state '<name>.v_col')
 *   V̂_ij = R_i C_j / Σ_k R_k,  U = G / sqrt(V̂)
 * Full statistics: V ← β2 V + (1−β2)(G² + ε1) (state '<name>.v'), U = G / sqrt(V).
 * Then U ← U / max(1, RMS(U)/d) and θ ← θ − lr·U.
 *
 * RMS scope: with `rmsScope: 'matrix'` (default) clipping and the optional
 * parameter scale use the RMS of each matrix of a stack, so an [E,D,F] tensor
 * is updated exactly as E separate [D,F] matrices would be. `'tensor'` takes the
 * RMS over the whole tensor instead, as praxis' sharded Adafactor does.
 *
 * Precision: state is float32 (exact checkpoint round trip); sums and the update
 * itself are computed in float64 and rounded once when stored.
 *
 * The passes over the data run in the kernels (`adafactorFactoredStats/Apply`,
 * `adafactorFullStats/Apply`: native and threaded when the addon is loaded, the
 * TypeScript reference otherwise); this class only computes the per-slice step sizes.
 */
import { kernels } from '../backend/index.js';
import type { Params } from '../model/params.js';
import type { Shape, Tensor } from '../tensor/tensor.js';
import {
  checkStepArgs,
  decayMatricesOnly,
  type LrScales,
  type Optimizer,
  OptimizerState,
  type ParamShapes,
  resolveLrScales,
  snapshotShapes,
} from './optimizer.js';

export interface AdafactorOptions {
  /** β2_t = 1 − t^(−decayExponent); GLaM: 0.8. */
  decayExponent?: number;
  /** ε1, added to g² before it enters the statistics. */
  epsilon1?: number;
  /** Update clipping threshold d; Infinity turns clipping off. */
  clipThreshold?: number;
  /** A matrix is factored only when both of its dimensions are at least this. */
  minDimToFactor?: number;
  /** Where clipping (and parameter scale) take their RMS; see the module comment. */
  rmsScope?: 'matrix' | 'tensor';
  /** Scale the step by max(ε2, RMS(θ)) (Adafactor's relative step size); off in GLaM. */
  multiplyByParameterScale?: boolean;
  /** ε2, the floor of the parameter scale. */
  epsilon2?: number;
  /** Decoupled weight decay: θ ← θ − lr·wd·θ on top of the update. 0 (off) by default. */
  weightDecay?: number;
  /** Which parameters weight decay applies to; default: rank >= 2. */
  shouldDecay?: (name: string, shape: Shape) => boolean;
  /** Learning-rate multipliers by parameter name (absent: 1). */
  lrScales?: LrScales;
}

type ResolvedOptions = Required<AdafactorOptions>;

/** β2 at the 1-based step t: 1 − t^(−exponent); 0 at t = 1, so the first statistics are g² itself. */
export function adafactorBeta2(t: number, exponent = 0.8): number {
  return 1 - t ** -exponent;
}

/** One parameter: a stack of `slices` matrices [rows, cols] (a vector is one 1×n matrix). */
interface Slot {
  name: string;
  slices: number;
  rows: number;
  cols: number;
  factored: boolean;
  decays: boolean;
  /** The parameter's learning-rate multiplier. */
  lrScale: number;
  /** Factored: row sums [slices·rows] and column sums [slices·cols]; full: v [size]. Others empty. */
  vRow: Float32Array;
  vCol: Float32Array;
  v: Float32Array;
}

const EMPTY = new Float32Array(0);

export class Adafactor implements Optimizer {
  readonly kind = 'adafactor' as const;
  stepCount = 0;
  readonly options: Readonly<ResolvedOptions>;
  private readonly shapes: Map<string, Shape>;
  private readonly slots: Slot[] = [];
  private readonly state = new OptimizerState('Adafactor');
  // Per-slice Σ U² and step sizes, sized for the deepest stack, so step() allocates nothing.
  private readonly sliceSumSq: Float64Array;
  private readonly sliceSteps: Float64Array;

  constructor(params: ParamShapes, options: AdafactorOptions = {}) {
    this.options = resolveOptions(options);
    this.shapes = snapshotShapes(params);
    const scales = resolveLrScales('Adafactor', this.shapes, this.options.lrScales);
    let maxSlices = 1;
    for (const [name, shape] of this.shapes) {
      const slot = this.makeSlot(name, shape, scales.get(name) ?? 1);
      this.slots.push(slot);
      maxSlices = Math.max(maxSlices, slot.slices);
    }
    this.sliceSumSq = new Float64Array(maxSlices);
    this.sliceSteps = new Float64Array(maxSlices);
  }

  /** True when the parameter's second moment is factored into row and column statistics. */
  isFactored(name: string): boolean {
    const slot = this.slots.find((s) => s.name === name);
    if (slot === undefined) throw new Error(`Adafactor: no parameter '${name}'`);
    return slot.factored;
  }

  step(params: Params, grads: Params, lr: number): void {
    checkStepArgs('Adafactor.step', this.shapes, params, grads, lr);
    const k = kernels();
    const t = this.stepCount + 1;
    const mix = t ** -this.options.decayExponent;
    const beta2 = 1 - mix;
    const { epsilon1, weightDecay } = this.options;
    const sumSq = this.sliceSumSq;
    const steps = this.sliceSteps;
    for (const slot of this.slots) {
      const g = grads.get(slot.name)!.data;
      const p = params.get(slot.name)!.data;
      if (p.length === 0) continue;
      const { slices, rows, cols } = slot;
      const n = rows * cols;
      const lrp = lr * slot.lrScale;
      if (slot.factored) {
        k.adafactorFactoredStats(g, slot.vRow, slot.vCol, slices, rows, cols, beta2, mix, epsilon1, sumSq);
      } else {
        k.adafactorFullStats(g, slot.v, slices, n, beta2, mix, epsilon1, sumSq);
      }
      if (this.options.rmsScope === 'matrix' || slices === 1) {
        for (let s = 0; s < slices; s++) {
          steps[s] = this.stepSize(lrp, this.paramScale(p, s * n, n), sumSq[s]!, n);
        }
      } else {
        let total = 0;
        for (let s = 0; s < slices; s++) total += sumSq[s]!;
        steps.fill(this.stepSize(lrp, this.paramScale(p, 0, p.length), total, p.length), 0, slices);
      }
      const decay = slot.decays ? lrp * weightDecay : 0;
      if (slot.factored) {
        k.adafactorFactoredApply(g, slot.vRow, slot.vCol, p, slices, rows, cols, steps, decay);
      } else {
        k.adafactorFullApply(g, slot.v, p, slices, n, steps, decay);
      }
    }
    this.stepCount = t;
  }

  stateTensors(): Map<string, Tensor> {
    return this.state.views();
  }

  loadStateTensors(saved: ReadonlyMap<string, Tensor>): void {
    this.state.load(saved);
  }

  private makeSlot(name: string, shape: Shape, lrScale: number): Slot {
    const o = this.options;
    const rank = shape.length;
    const rows = rank >= 2 ? shape[rank - 2]! : 1;
    const cols = rank >= 1 ? shape[rank - 1]! : 1;
    const lead = shape.slice(0, Math.max(0, rank - 2));
    const slices = lead.reduce((a, b) => a * b, 1);
    const factored = rank >= 2 && rows >= o.minDimToFactor && cols >= o.minDimToFactor;
    const slot: Slot = {
      name,
      slices,
      rows,
      cols,
      factored,
      decays: o.weightDecay !== 0 && o.shouldDecay(name, shape),
      lrScale,
      vRow: EMPTY,
      vCol: EMPTY,
      v: EMPTY,
    };
    if (factored) {
      slot.vRow = this.state.add(`${name}.v_row`, [...lead, rows]);
      slot.vCol = this.state.add(`${name}.v_col`, [...lead, cols]);
    } else {
      slot.v = this.state.add(`${name}.v`, shape);
    }
    return slot;
  }

  /** lr · scale / max(1, RMS(U)/d). */
  private stepSize(lr: number, scale: number, sumSq: number, n: number): number {
    const rms = Math.sqrt(sumSq / n);
    return (lr * scale) / Math.max(1, rms / this.options.clipThreshold);
  }

  /** max(ε2, RMS(θ[off, off+n))) when parameter scaling is on, else 1. */
  private paramScale(p: Float32Array, off: number, n: number): number {
    if (!this.options.multiplyByParameterScale) return 1;
    const acc = kernels().sumSquares(p.subarray(off, off + n));
    return Math.max(this.options.epsilon2, Math.sqrt(acc / n));
  }
}

function resolveOptions(o: AdafactorOptions): ResolvedOptions {
  const r: ResolvedOptions = {
    decayExponent: o.decayExponent ?? 0.8,
    epsilon1: o.epsilon1 ?? 1e-30,
    clipThreshold: o.clipThreshold ?? 1.0,
    minDimToFactor: o.minDimToFactor ?? 2,
    rmsScope: o.rmsScope ?? 'matrix',
    multiplyByParameterScale: o.multiplyByParameterScale ?? false,
    epsilon2: o.epsilon2 ?? 1e-3,
    weightDecay: o.weightDecay ?? 0,
    shouldDecay: o.shouldDecay ?? decayMatricesOnly,
    lrScales: o.lrScales ?? {},
  };
  const check = (ok: boolean, what: string, v: unknown): void => {
    if (!ok) throw new Error(`Adafactor: ${what}, got ${String(v)}`);
  };
  check(
    Number.isFinite(r.decayExponent) && r.decayExponent > 0,
    'decayExponent must be > 0',
    r.decayExponent,
  );
  // ε1 > 0 keeps an all-zero gradient row from giving 0/0.
  check(Number.isFinite(r.epsilon1) && r.epsilon1 > 0, 'epsilon1 must be > 0', r.epsilon1);
  check(r.clipThreshold > 0, 'clipThreshold must be > 0 (Infinity: no clipping)', r.clipThreshold);
  check(
    Number.isInteger(r.minDimToFactor) && r.minDimToFactor >= 1,
    'minDimToFactor must be an integer >= 1',
    r.minDimToFactor,
  );
  check(
    r.rmsScope === 'matrix' || r.rmsScope === 'tensor',
    "rmsScope must be 'matrix' or 'tensor'",
    r.rmsScope,
  );
  check(Number.isFinite(r.epsilon2) && r.epsilon2 >= 0, 'epsilon2 must be >= 0', r.epsilon2);
  check(Number.isFinite(r.weightDecay) && r.weightDecay >= 0, 'weightDecay must be >= 0', r.weightDecay);
  return r;
}
