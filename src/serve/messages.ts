/** Messages between the HTTP thread and the engine's worker thread (structured-cloned). */
import type { EngineStats, GenerationEvent, GenerationRequest } from '../infer/engine.js';

export interface WorkerOptions {
  /** Checkpoint directory (already resolved). */
  modelDir: string;
  kvCacheBytes: number;
  /** Sequences decoding at once. */
  maxSequences: number;
  maxStepTokens: number;
}

export interface ModelInfo {
  maxSeqLen: number;
  vocabSize: number;
  moeLayers: number[];
  experts: number;
  parameters: number;
  kvCacheBytes: number;
}

export interface ExpertSnapshot {
  layer: number;
  load: number[];
  dropped: number;
  tokens: number;
}

export type ToWorker =
  | { type: 'submit'; id: number; request: GenerationRequest }
  | { type: 'cancel'; id: number }
  | { type: 'stop' };

export type FromWorker =
  | { type: 'ready'; info: ModelInfo }
  | { type: 'failed'; message: string }
  | { type: 'event'; id: number; event: GenerationEvent }
  | { type: 'rejected'; id: number; name: string; message: string; param: string | null }
  | { type: 'stats'; stats: EngineStats; experts: ExpertSnapshot[] };
