/**
 * Autoregressive text generation from a GlamModel (simple path: the whole
 * context is re-run for each new token; the key/value cache comes later).
 */
import type { GlamModel } from '../model/glam.js';
import type { Weights } from '../model/weights.js';
import { Rng } from '../util/rng.js';
import { type SamplingOptions, sampleToken, validateSampling } from './sample.js';

/** What generation needs of a tokenizer. */
export interface TextCodec {
  encode(text: string): number[];
  decode(ids: number[]): string;
}

export interface GenerateOptions extends SamplingOptions {
  maxTokens: number;
  seed: number;
  /** Stop when this token is produced (not included in the output). */
  stopToken?: number;
  /** Called with each new token id as it is chosen. */
  onToken?(id: number): void;
}

/** Generate up to maxTokens token ids following `prompt` ids. */
export function generateIds(
  model: GlamModel,
  weights: Weights,
  prompt: number[],
  o: GenerateOptions,
): number[] {
  validateSampling(o);
  if (!(Number.isInteger(o.maxTokens) && o.maxTokens >= 0)) {
    throw new Error(`max-tokens must be an integer >= 0, got ${o.maxTokens}`);
  }
  const { vocab_size: V, max_seq_len: maxLen } = model.config;
  if (prompt.length === 0) throw new Error('generate: the prompt encodes to no tokens');
  for (const id of prompt) {
    if (!(Number.isInteger(id) && id >= 0 && id < V))
      throw new Error(`generate: prompt token ${id} outside [0, ${V})`);
  }
  const rng = new Rng(o.seed);
  const ws = model.workspace();
  const context = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < o.maxTokens; i++) {
    const window = context.slice(-maxLen);
    const logits = model.logits(weights, ws, Int32Array.from(window), 1, window.length);
    const last = logits.subarray((window.length - 1) * V, window.length * V);
    const id = sampleToken(last, o, rng);
    if (id === o.stopToken) break;
    context.push(id);
    out.push(id);
    o.onToken?.(id);
  }
  return out;
}

/** Generate text continuing `prompt`. */
export function generateText(
  model: GlamModel,
  weights: Weights,
  codec: TextCodec,
  prompt: string,
  o: GenerateOptions,
): string {
  return codec.decode(generateIds(model, weights, codec.encode(prompt), o));
}
