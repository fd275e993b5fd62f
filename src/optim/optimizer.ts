import type { Params } from '../model/params.js';
import { type Shape, sameShape, shapeString, Tensor } from '../tensor/tensor.js';
import { briefValue } from '../util/files.js';

export type OptimizerKind = 'adafactor' | 'adamw';

/** Parameter shapes by name; a `Params` map qualifies. */
export type ParamShapes = ReadonlyMap<string, { readonly shape: Shape }>;

/**
 * What the trainer drives. State lives in Float32Array and is exported as F32
 * tensors, so saving and loading it round-trips exactly and a resumed run
 * continues bit-for-bit like an uninterrupted one.
 */
export interface Optimizer {
  readonly kind: OptimizerKind;
  /**
   * Updates applied so far. The update `step()` is about to apply is number
   * t = stepCount + 1 (1-based), which drives β2_t and bias correction. Skipped
   * (non-finite) steps must not call `step()`, so they do not count.
   */
  stepCount: number;
  /** Apply one update in place to `params`; `grads` must hold the same names and shapes. */
  step(params: Params, grads: Params, lr: number): void;
  /**
   * The state tensors by name (e.g. 'layers.0.attn.wq.v_row'). These are views
   * of the live state: serialise them before the next `step()`. The step count
   * is not among them; see `optimizerMetadata`.
   */
  stateTensors(): Map<string, Tensor>;
  /** Copy saved state in; names and shapes must match `stateTensors()` exactly. */
  loadStateTensors(saved: ReadonlyMap<string, Tensor>): void;
}

/** For optimizer.safetensors' `__metadata__`: the kind and the step count (strings, as safetensors wants). */
export function optimizerMetadata(opt: Optimizer): Record<string, string> {
  return { optimizer: opt.kind, step: String(opt.stepCount) };
}

/** Restore state written with `stateTensors()` and `optimizerMetadata()`. */
export function restoreOptimizer(
  opt: Optimizer,
  tensors: ReadonlyMap<string, Tensor>,
  metadata: Readonly<Record<string, string>>,
): void {
  if (metadata.optimizer !== opt.kind) {
    throw new Error(
      `optimizer state is for '${metadata.optimizer ?? '(unnamed)'}', this run uses '${opt.kind}'`,
    );
  }
  const step = Number(metadata.step);
  if (metadata.step === undefined || !Number.isSafeInteger(step) || step < 0) {
    throw new Error(
      `optimizer state: 'step' must be a non-negative integer, got ${briefValue(metadata.step)}`,
    );
  }
  opt.loadStateTensors(tensors);
  opt.stepCount = step;
}

/** Throws unless `grads` and `params` hold exactly the names the optimizer was built for, with its shapes. */
export function checkStepArgs(
  op: string,
  shapes: ReadonlyMap<string, Shape>,
  params: Params,
  grads: Params,
  lr: number,
): void {
  if (!Number.isFinite(lr) || lr < 0)
    throw new Error(`${op}: learning rate must be finite and >= 0, got ${lr}`);
  if (params.size !== shapes.size || grads.size !== shapes.size) {
    throw new Error(
      `${op}: built for ${shapes.size} parameters, got ${params.size} parameters and ${grads.size} gradients`,
    );
  }
  for (const [name, shape] of shapes) {
    const p = params.get(name);
    const g = grads.get(name);
    if (p === undefined) throw new Error(`${op}: parameter '${name}' is missing`);
    if (g === undefined) throw new Error(`${op}: gradient '${name}' is missing`);
    if (!sameShape(p.shape, shape) || !sameShape(g.shape, shape)) {
      throw new Error(
        `${op}: '${name}' expected ${shapeString(shape)}, parameter is ${shapeString(p.shape)}, gradient ${shapeString(g.shape)}`,
      );
    }
  }
}

/**
 * An optimizer's state tensors by name (float32, zero at the start): allotted once per name, exported
 * as the live views, and loaded back only with the same names and shapes.
 */
export class OptimizerState {
  private readonly tensors = new Map<string, Tensor>();

  /** `owner` names the optimizer in messages (e.g. 'AdamW'). */
  constructor(private readonly owner: string) {}

  /** A new zeroed state tensor; its data. */
  add(name: string, shape: Shape): Float32Array {
    if (this.tensors.has(name)) throw new Error(`${this.owner}: state name '${name}' is taken twice`);
    const t = Tensor.zeros(shape);
    this.tensors.set(name, t);
    return t.data;
  }

  /** The state tensors (views of the live state). */
  views(): Map<string, Tensor> {
    return new Map(this.tensors);
  }

  /** Copy `saved` in (same names, same shapes, nothing extra) or throw naming the difference. */
  load(saved: ReadonlyMap<string, Tensor>): void {
    const op = `${this.owner}.loadStateTensors`;
    const own = this.tensors;
    for (const name of saved.keys()) {
      if (!own.has(name)) throw new Error(`${op}: unexpected state tensor '${name}'`);
    }
    for (const [name, t] of own) {
      const s = saved.get(name);
      if (s === undefined) throw new Error(`${op}: state tensor '${name}' is missing`);
      if (!sameShape(s.shape, t.shape)) {
        throw new Error(
          `${op}: state tensor '${name}' has shape ${shapeString(s.shape)}, expected ${shapeString(t.shape)}`,
        );
      }
    }
    for (const [name, t] of own) t.data.set(saved.get(name)!.data);
  }
}

/** Name → shape, copied, so later changes to the caller's map do not matter. */
export function snapshotShapes(params: ParamShapes): Map<string, Shape> {
  const out = new Map<string, Shape>();
  for (const [name, p] of params) out.set(name, [...p.shape]);
  return out;
}

/**
 * Learning-rate multipliers by parameter name: a parameter absent from the map steps at the
 * schedule's rate (PyTorch's parameter groups in one map; `glam train --lr-scale` fills it by kind).
 */
export type LrScales = Readonly<Record<string, number>>;

/** Each parameter's multiplier from `scales`, checked: names the optimizer holds, values finite and >= 0. */
export function resolveLrScales(
  op: string,
  shapes: ReadonlyMap<string, Shape>,
  scales: LrScales,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, scale] of Object.entries(scales)) {
    if (!shapes.has(name)) throw new Error(`${op}: lrScales names '${name}', which is not a parameter`);
    if (!(Number.isFinite(scale) && scale >= 0))
      throw new Error(`${op}: lrScales['${name}'] must be finite and >= 0, got ${briefValue(scale)}`);
    out.set(name, scale);
  }
  return out;
}

/** Default weight-decay filter: matrices (and stacks of them) decay; vectors such as norm scales do not. */
export function decayMatricesOnly(_name: string, shape: Shape): boolean {
  return shape.length >= 2;
}
