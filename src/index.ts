/**
 * glam-moe: GLaM sparse Mixture-of-Experts language models in TypeScript.
 * The library's public API, layer by layer (each layer uses only those above it).
 */

// Compute core: kernels (native C++ or the TypeScript reference) and aligned storage.
export {
  alignedFloat32,
  type Kernels,
  kernels,
  type Mat,
  mat,
  OPS,
  referenceKernels,
  transpose,
  useKernels,
} from './backend/index.js';
// Data pipeline.
export * from './data/index.js';
// Evaluation: GLaM's protocol on its 29 tasks over any Scorer.
export { loadTaskData, type TaskData } from './eval/data.js';
export {
  averages,
  type EvalSettings,
  evaluateTask,
  type Prediction,
  type TaskResult,
} from './eval/evaluate.js';
export type { ChoiceExample, Example, GenExample, LmExample } from './eval/examples.js';
export { ModelScorer } from './eval/model-scorer.js';
export type { ContinuationScore, GenerateRequest, ScoreRequest, Scorer } from './eval/scorer.js';
export { getTask, TASKS, type TaskSpec } from './eval/tasks.js';
// Inference.
export * from './infer/index.js';
// Model: config, presets, parameters, the GLaM stack, checkpoints, accounting.
export { accounting, type ModelAccounting } from './model/accounting.js';
export { loadCheckpoint, loadTensors, saveCheckpoint } from './model/checkpoint.js';
export { CHECKPOINT_FORMAT, type GlamConfig, isMoeLayer, parseConfig } from './model/config.js';
export { type Batch, type ForwardOptions, GlamModel, type LossParts, type MoeStats } from './model/glam.js';
export { initParams } from './model/init.js';
export { type ParamSpec, type Params, paramSpecs } from './model/params.js';
export { getPreset, presetNames, resolveConfig } from './model/presets.js';
export { readSafetensors, writeSafetensors } from './model/safetensors.js';
export { Grads, ParamLayout, Weights } from './model/weights.js';
export { Workspace } from './model/workspace.js';
// Optimisers and schedules.
export * from './optim/index.js';
// Tensors and the per-step arena.
export { Arena } from './tensor/arena.js';
export { type Shape, Tensor } from './tensor/tensor.js';
export {
  loadTrainingCheckpoint,
  saveTrainingCheckpoint,
  type TrainerState,
} from './train/checkpoints.js';
// Training.
export { type StepContext, type StepResult, trainStep } from './train/step.js';
export {
  type BatchSource,
  DEFAULT_TRAIN_SETTINGS,
  type StepRecord,
  type TrainHooks,
  type TrainResult,
  type TrainRun,
  type TrainSettings,
  train,
} from './train/trainer.js';
export { Rng, type RngState } from './util/rng.js';
