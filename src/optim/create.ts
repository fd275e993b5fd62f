import { Adafactor, type AdafactorOptions } from './adafactor.js';
import { AdamW, type AdamWOptions } from './adamw.js';
import type { Optimizer, OptimizerKind, ParamShapes } from './optimizer.js';

export type OptimizerConfig = ({ kind: 'adafactor' } & AdafactorOptions) | ({ kind: 'adamw' } & AdamWOptions);

/**
 * The default training recipe's optimiser, per kind, with its peak learning rate: the one place
 * these defaults live (the trainer, `glam train` and `glam bench train` read them).
 *
 * Adafactor scales each update by the parameter's RMS (`multiplyByParameterScale`), as the
 * original Adafactor's relative step size and its T5 / Mesh TensorFlow / lingvo / praxis
 * (optax-based) implementations do by default, so GLaM's 0.01 is a relative step. At this
 * project's CPU scale the absolute-step variant (updates of 0.01 per element against weights of
 * RMS 0.03-0.06) trains the MoE worse than dense and collapses its routers, and a relative step
 * of 0.03 learns faster than 0.01 within a 10-minute budget: docs/results.md has the measurements.
 * AdamW's rate is the usual 1e-3.
 */
export const RECIPE_OPTIMIZERS: Readonly<Record<OptimizerKind, { config: OptimizerConfig; lr: number }>> = {
  adafactor: { config: { kind: 'adafactor', multiplyByParameterScale: true }, lr: 0.03 },
  adamw: { config: { kind: 'adamw' }, lr: 1e-3 },
};

/** Build the optimizer a config names; `{ kind: 'adafactor' }` alone is Adafactor as Shazeer & Stern's absolute-step variant (see RECIPE_OPTIMIZERS). */
export function createOptimizer(params: ParamShapes, config: OptimizerConfig): Optimizer {
  switch (config.kind) {
    case 'adafactor':
      return new Adafactor(params, config);
    case 'adamw':
      return new AdamW(params, config);
    default:
      throw new Error(`unknown optimizer '${(config as { kind: unknown }).kind}'`);
  }
}
