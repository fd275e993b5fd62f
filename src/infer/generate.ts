/**
 * One-call generation from a GlamModel on the inference engine (the engine's batched and streaming
 * API is InferenceEngine; this is the shortcut for one prompt).
 */
import type { GlamModel } from '../model/glam.js';
import type { Weights } from '../model/weights.js';
import { InferenceEngine } from './engine.js';
import type { SamplingOptions } from './sample.js';
import type { TextCodec } from './text.js';

export interface GenerateOptions extends SamplingOptions {
  maxTokens: number;
  seed: number;
  /** Stop when this token is produced (not included in the output). */
  stopToken?: number;
  /** Called with each new token id as it is chosen. */
  onToken?(id: number): void;
}

/** Generates up to maxTokens token ids following `prompt` ids (fewer when the context fills up). */
export function generateIds(
  model: GlamModel,
  weights: Weights,
  prompt: number[],
  o: GenerateOptions,
): number[] {
  const cfg = model.config;
  const maxTokens = Math.min(o.maxTokens, Math.max(0, cfg.max_seq_len - prompt.length));
  const kvCacheBytes = 2 * cfg.n_layers * cfg.n_heads * cfg.d_head * 4 * (cfg.max_seq_len + 32);
  const engine = new InferenceEngine(cfg, weights, { kvCacheBytes });
  const [result] = engine.generate([
    {
      prompt,
      maxTokens,
      temperature: o.temperature,
      topK: o.topK,
      topP: o.topP,
      seed: o.seed,
      stopTokens: o.stopToken === undefined ? [] : [o.stopToken],
    },
  ]);
  const ids = result!.choices[0]!.tokens;
  if (o.onToken) for (const id of ids) o.onToken(id);
  return ids;
}

/** Generates text continuing `prompt`. */
export function generateText(
  model: GlamModel,
  weights: Weights,
  codec: TextCodec,
  prompt: string,
  o: GenerateOptions,
): string {
  return codec.decode(generateIds(model, weights, codec.encode(prompt), o));
}
