/**
 * Inference: the KV-cache engine with continuous batching, sampling, beam search and batched scoring.
 *
 * Library use (the same engine serves `glam generate`, `glam serve` and evaluation):
 *
 *   const engine = new InferenceEngine(config, weights, { kvCacheBytes: 512 << 20, codec: tokenizer });
 *
 *   // Log-likelihood of candidate continuations: each context is run once and its cache forked per
 *   // candidate; many examples share every forward step. Contexts must be non-empty.
 *   const scores = engine.scoreContinuations([
 *     { context: [2, 17, 40], continuations: [[5, 6], [9]] },
 *   ]); // scores[example][candidate] = { logprob, greedy, tokenLogprobs }
 *
 *   // Generation, batched: greedy (temperature 0), sampling, or beam search (beamWidth >= 2), with
 *   // stop tokens and stop strings (removed from the text).
 *   const [out] = engine.generate([
 *     { prompt, maxTokens: 32, temperature: 0, stopTokens: [tokenizer.eosId], stop: ['\n\n'] },
 *     { prompt, maxTokens: 32, beamWidth: 4, stopTokens: [tokenizer.eosId] },
 *   ]); // out.choices[0].text, .tokens, .finishReason
 *
 *   // Streaming and continuous batching: submit with a listener, then step() while engine.pending.
 *   const h = engine.submit({ prompt, maxTokens: 64, temperature: 0.8, seed: 1 }, (e) => ...);
 *   while (engine.pending > 0) engine.step();
 *
 * `weights` is anything with get(name) → Tensor by checkpoint name (a loaded checkpoint's params).
 * Results are deterministic: a request's output depends only on the request (and its seed), not on
 * what else is batched with it, as far as the matrix kernels keep rows independent (see forward.ts).
 */
export { type BeamHypothesis, BeamSearch } from './beam.js';
export {
  CapacityError,
  type ContinuationLogprobs,
  DEFAULT_ENGINE_OPTIONS,
  type EngineOptions,
  type EngineStats,
  type FinishReason,
  type GenerationChoice,
  type GenerationEvent,
  type GenerationHandle,
  type GenerationListener,
  type GenerationRequest,
  type GenerationResult,
  InferenceEngine,
  InvalidRequestError,
  type LayerRouting,
  type TokenInfo,
} from './engine.js';
export {
  type ExpertCounters,
  IncrementalModel,
  type RoutingTrace,
  type StepSegment,
  type WeightSource,
} from './forward.js';
export { type GenerateOptions, generateIds, generateText } from './generate.js';
export { KvCacheFullError, KvCachePool, type KvCacheUsage, KvSequence } from './kv-cache.js';
export {
  DEFAULT_SAMPLING,
  type LogitBias,
  Sampler,
  type SamplingOptions,
  type TokenLogprob,
} from './sample.js';
export { type ScoreResult, scoreTokenRows } from './score.js';
export { type TextCodec, TextTracker } from './text.js';
