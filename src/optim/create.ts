import { Adafactor, type AdafactorOptions } from './adafactor.js';
import { AdamW, type AdamWOptions } from './adamw.js';
import type { Optimizer, ParamShapes } from './optimizer.js';

export type OptimizerConfig = ({ kind: 'adafactor' } & AdafactorOptions) | ({ kind: 'adamw' } & AdamWOptions);

/** Build the optimizer a trainer config names; `{ kind: 'adafactor' }` alone gives GLaM's settings. */
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
