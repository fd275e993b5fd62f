/**
 * AdamW (Loshchilov & Hutter 2019), for comparison with Adafactor:
 *   m ← β1 m + (1−β1) g,  v ← β2 v + (1−β2) g²
 *   θ ← θ − lr·wd·θ − lr · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + ε)
 * with t the 1-based step. Weight decay is decoupled from the gradient and, by
 * default, applies to matrices only (not norm scales). State '<name>.m' and
 * '<name>.v' is float32; arithmetic is float64, rounded once when stored.
 */
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

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** Decoupled weight decay coefficient (PyTorch's default 0.01). */
  weightDecay?: number;
  /** Which parameters weight decay applies to; default: rank >= 2. */
  shouldDecay?: (name: string, shape: Shape) => boolean;
  /** Learning-rate multipliers by parameter name (absent: 1). */
  lrScales?: LrScales;
}

interface Slot {
  name: string;
  decays: boolean;
  /** The parameter's learning-rate multiplier. */
  lrScale: number;
  m: Float32Array;
  v: Float32Array;
}

export class AdamW implements Optimizer {
  readonly kind = 'adamw' as const;
  stepCount = 0;
  readonly options: Readonly<Required<AdamWOptions>>;
  private readonly shapes: Map<string, Shape>;
  private readonly slots: Slot[] = [];
  private readonly state = new OptimizerState('AdamW');

  constructor(params: ParamShapes, options: AdamWOptions = {}) {
    this.options = resolveOptions(options);
    this.shapes = snapshotShapes(params);
    const scales = resolveLrScales('AdamW', this.shapes, this.options.lrScales);
    for (const [name, shape] of this.shapes) {
      this.slots.push({
        name,
        decays: this.options.weightDecay !== 0 && this.options.shouldDecay(name, shape),
        lrScale: scales.get(name) ?? 1,
        m: this.state.add(`${name}.m`, shape),
        v: this.state.add(`${name}.v`, shape),
      });
    }
  }

  step(params: Params, grads: Params, baseLr: number): void {
    checkStepArgs('AdamW.step', this.shapes, params, grads, baseLr);
    const { beta1, beta2, epsilon, weightDecay } = this.options;
    const t = this.stepCount + 1;
    const bc1 = 1 - beta1 ** t;
    const bc2 = 1 - beta2 ** t;
    for (const slot of this.slots) {
      const g = grads.get(slot.name)!.data;
      const p = params.get(slot.name)!.data;
      const { m, v } = slot;
      const lr = baseLr * slot.lrScale;
      const decay = slot.decays ? lr * weightDecay : 0;
      for (let k = 0; k < p.length; k++) {
        const gk = g[k]!;
        m[k] = beta1 * m[k]! + (1 - beta1) * gk;
        v[k] = beta2 * v[k]! + (1 - beta2) * gk * gk;
        const u = m[k]! / bc1 / (Math.sqrt(v[k]! / bc2) + epsilon);
        const pk = p[k]!;
        p[k] = pk - decay * pk - lr * u;
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
}

function resolveOptions(o: AdamWOptions): Required<AdamWOptions> {
  const r: Required<AdamWOptions> = {
    beta1: o.beta1 ?? 0.9,
    beta2: o.beta2 ?? 0.999,
    epsilon: o.epsilon ?? 1e-8,
    weightDecay: o.weightDecay ?? 0.01,
    shouldDecay: o.shouldDecay ?? decayMatricesOnly,
    lrScales: o.lrScales ?? {},
  };
  const inUnit = (x: number): boolean => Number.isFinite(x) && x >= 0 && x < 1;
  if (!inUnit(r.beta1)) throw new Error(`AdamW: beta1 must be in [0, 1), got ${r.beta1}`);
  if (!inUnit(r.beta2)) throw new Error(`AdamW: beta2 must be in [0, 1), got ${r.beta2}`);
  if (!(Number.isFinite(r.epsilon) && r.epsilon > 0))
    throw new Error(`AdamW: epsilon must be > 0, got ${r.epsilon}`);
  if (!(Number.isFinite(r.weightDecay) && r.weightDecay >= 0)) {
    throw new Error(`AdamW: weightDecay must be >= 0, got ${r.weightDecay}`);
  }
  return r;
}
