export { Adafactor, type AdafactorOptions, adafactorBeta2 } from './adafactor.js';
export { AdamW, type AdamWOptions } from './adamw.js';
export { createOptimizer, type OptimizerConfig } from './create.js';
export {
  decayMatricesOnly,
  type Optimizer,
  type OptimizerKind,
  optimizerMetadata,
  type ParamShapes,
  restoreOptimizer,
} from './optimizer.js';
export { GLAM_SCHEDULE, type LrSchedule, learningRate } from './schedule.js';
