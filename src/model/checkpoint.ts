/**
 * Checkpoint directories (docs/model.md "Checkpoint format"):
 *
 *   config.json        the model config plus "format": "glam-moe/1"
 *   model.safetensors  every parameter, named and shaped as paramSpecs(config): F32, or in a bf16
 *                      checkpoint (`glam convert --dtype bf16`) the weight matrices (embedding,
 *                      projections, experts) BF16 and the rest (norm scales, relative bias, router) F32
 *   tokenizer.json     optional
 *
 * Each file is written atomically. config.json is written last, so a directory
 * whose config.json exists was completely written once; a crash while
 * overwriting an existing checkpoint can leave new weights beside the old config
 * (the trainer writes each checkpoint into a fresh directory for that reason).
 *
 * loadTensors is the same machinery for other tensor files (the trainer's optimizer.safetensors,
 * written with writeSafetensors).
 */
import { lstatSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { kernels } from '../backend/index.js';
import { type AnyTensor, Bf16Tensor } from '../tensor/bf16.js';
import { Tensor } from '../tensor/tensor.js';
import { atomicWriteFileSync, atomicWriteJsonSync } from '../util/atomic.js';
import { READ_LIMITS, readJsonFile, readTextFile } from '../util/files.js';
import { CHECKPOINT_FORMAT, configToJson, type GlamConfig, parseConfig } from './config.js';
import { checkTensorSet, type Params, paramSpecs, type TensorExpectation } from './params.js';
import {
  type ReadOptions,
  readSafetensors,
  readSafetensorsHeader,
  readSafetensorsStored,
  writeSafetensors,
} from './safetensors.js';
import { type BufferOptions, Weights } from './weights.js';

export const CONFIG_FILE = 'config.json';
export const MODEL_FILE = 'model.safetensors';
export const TOKENIZER_FILE = 'tokenizer.json';

/** How a checkpoint stores its weights: all float32, or the matrices in bf16 (inference). */
export type WeightsDtype = 'f32' | 'bf16';
export const WEIGHTS_DTYPES: readonly WeightsDtype[] = ['f32', 'bf16'];

/** The parameters a bf16 checkpoint stores in bf16. */
export const BF16_KINDS: ReadonlySet<string> = new Set(['embedding', 'projection', 'expert']);

export interface SaveExtras {
  /** tokenizer.json contents: JSON text or a JSON-serialisable object. */
  tokenizer?: string | object;
  /**
   * 'bf16' stores the weight matrices (embedding, projections, experts: the bytes decode streams) rounded
   * to bf16 (nearest even), the rest float32 (the router too: routing decisions are sensitive to it and it
   * is small); default 'f32'.
   */
  dtype?: WeightsDtype;
}

export interface LoadedCheckpoint {
  config: GlamConfig;
  weights: Weights;
  /** Path of tokenizer.json when the checkpoint has one. */
  tokenizerPath?: string;
}

/** A checkpoint's weights as stored: bf16 matrices stay bf16 (for the bf16 products). */
export interface StoredCheckpoint {
  config: GlamConfig;
  weights: Map<string, AnyTensor>;
  /** 'bf16' when any weight is stored in bf16. */
  dtype: WeightsDtype;
  tokenizerPath?: string;
}

/** Parameters must be exactly those of the config (names and shapes). */
export function validateParams(cfg: GlamConfig, params: Params, source = 'params'): void {
  checkTensorSet(new Map([...params].map(([n, t]) => [n, t.shape])), paramSpecs(cfg), source);
}

/**
 * Refuse tensors holding NaN or Inf, naming the file, the tensor and the first such element.
 * One native pass per tensor (the float64 sum of squares of float32 values is finite exactly
 * when every value is); the element is looked for only on failure.
 */
export function checkFinite(tensors: Params, file: string): void {
  const k = kernels();
  for (const [name, t] of tensors) {
    if (Number.isFinite(k.sumSquares(t.data))) continue;
    const i = t.data.findIndex((v) => !Number.isFinite(v));
    throw new Error(
      `${file}: tensor '${name}' holds ${t.data[i]} at element ${i}: the checkpoint is corrupt (non-finite weights)`,
    );
  }
}

/** Checks a file's header against expectations (names, shapes, dtypes: F32, and BF16 when allowed). */
function checkHeader(file: string, expected: readonly TensorExpectation[], allowBf16: boolean): void {
  const header = readSafetensorsHeader(file);
  checkTensorSet(new Map(header.entries.map((e) => [e.name, e.shape])), expected, file);
  for (const e of header.entries) {
    if (e.dtype !== 'F32' && !(allowBf16 && e.dtype === 'BF16'))
      throw new Error(
        `${file}: tensor '${e.name}' has dtype ${e.dtype}, expected F32${allowBf16 ? ' or BF16' : ''}`,
      );
  }
}

/**
 * Read an F32 safetensors file (with allowBf16, BF16 tensors too, widened exactly to float32) and check
 * every value is finite. With `expected`, the header is checked first (names, shapes, dtype) so a wrong
 * file fails before any data is read. With `into`, each tensor is read straight into the storage it gives
 * (a view of a model's flat buffer).
 */
export function loadTensors(
  file: string,
  expected?: readonly TensorExpectation[],
  into?: ReadOptions['into'],
  allowBf16 = false,
): Map<string, Tensor> {
  if (expected !== undefined) checkHeader(file, expected, allowBf16);
  const opts: ReadOptions = { requireF32: !allowBf16 };
  if (into !== undefined) opts.into = into;
  const tensors = readSafetensors(file, opts).tensors;
  checkFinite(tensors, file);
  return tensors;
}

function requireDirectory(dir: string): void {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(dir);
  } catch {
    throw new Error(`checkpoint directory '${dir}' does not exist`);
  }
  if (!st.isDirectory()) throw new Error(`checkpoint '${dir}' is not a directory`);
}

/**
 * The parameters as a checkpoint of `dtype` stores them, in paramSpecs order: bf16 rounds the weight
 * matrices (BF16_KINDS) to bf16. What bf16 inference reads, also without a file in between.
 */
export function storedWeights(cfg: GlamConfig, params: Params, dtype: WeightsDtype): [string, AnyTensor][] {
  return paramSpecs(cfg).map((s) => {
    const t = params.get(s.name)!;
    return [s.name, dtype === 'bf16' && BF16_KINDS.has(s.kind) ? Bf16Tensor.fromTensor(t) : t];
  });
}

/** Save a checkpoint into `dir` (created if needed). Parameters are checked against the config first. */
export function saveCheckpoint(dir: string, cfg: GlamConfig, params: Params, extras: SaveExtras = {}): void {
  validateParams(cfg, params, `saveCheckpoint(${dir})`);
  let tokenizerText: string | undefined;
  if (extras.tokenizer !== undefined) {
    tokenizerText =
      typeof extras.tokenizer === 'string' ? extras.tokenizer : `${JSON.stringify(extras.tokenizer)}\n`;
    try {
      JSON.parse(tokenizerText);
    } catch (err) {
      throw new Error(`saveCheckpoint(${dir}): tokenizer is not valid JSON (${(err as Error).message})`);
    }
  }
  mkdirSync(dir, { recursive: true });
  const metadata: Record<string, string> = { format: CHECKPOINT_FORMAT };
  if (extras.dtype === 'bf16') metadata.dtype = 'bf16';
  writeSafetensors(path.join(dir, MODEL_FILE), storedWeights(cfg, params, extras.dtype ?? 'f32'), metadata);
  if (tokenizerText !== undefined) atomicWriteFileSync(path.join(dir, TOKENIZER_FILE), tokenizerText);
  atomicWriteJsonSync(path.join(dir, CONFIG_FILE), configToJson(cfg));
}

/** Read and validate a checkpoint's config.json. */
export function loadCheckpointConfig(dir: string): GlamConfig {
  requireDirectory(dir);
  const file = path.join(dir, CONFIG_FILE);
  let raw: unknown;
  try {
    raw = readJsonFile(file, READ_LIMITS.json, 'model config');
  } catch (err) {
    if ((err as Error).message === `${file}: file not found`)
      throw new Error(`'${dir}' is not a checkpoint: ${CONFIG_FILE} not found`);
    throw err;
  }
  if (typeof raw === 'object' && raw !== null && !Array.isArray(raw) && !('format' in raw)) {
    throw new Error(`${file}: missing key 'format' (expected "${CHECKPOINT_FORMAT}")`);
  }
  return parseConfig(raw, file);
}

function tokenizerOf(dir: string): string | undefined {
  const tokenizerPath = path.join(dir, TOKENIZER_FILE);
  try {
    if (statSync(tokenizerPath).isFile()) return tokenizerPath;
  } catch {}
  return undefined;
}

/**
 * Load a checkpoint: config.json, then model.safetensors checked against paramSpecs(config) for names,
 * shapes and dtype before its data is read, straight into the flat buffer of the returned Weights. The
 * weights are float32 (a bf16 checkpoint's widen exactly: its values, computed on in float32).
 */
export function loadCheckpoint(dir: string, opts: BufferOptions = {}): LoadedCheckpoint {
  const config = loadCheckpointConfig(dir);
  const weights = new Weights(config, opts);
  loadTensors(path.join(dir, MODEL_FILE), paramSpecs(config), (name) => weights.get(name).data, true);
  const tokenizerPath = tokenizerOf(dir);
  return tokenizerPath !== undefined ? { config, weights, tokenizerPath } : { config, weights };
}

/** Load a checkpoint's weights as stored: the matrices of a bf16 checkpoint stay bf16. */
export function loadCheckpointStored(dir: string): StoredCheckpoint {
  const config = loadCheckpointConfig(dir);
  const file = path.join(dir, MODEL_FILE);
  checkHeader(file, paramSpecs(config), true);
  const weights = readSafetensorsStored(file).tensors;
  const floats = new Map<string, Tensor>();
  let dtype: WeightsDtype = 'f32';
  for (const [name, t] of weights) {
    if (t instanceof Tensor) {
      floats.set(name, t);
      continue;
    }
    dtype = 'bf16';
    // A bf16 value is NaN or infinite exactly when its exponent bits are all ones.
    const bad = t.data.findIndex((h) => (h & 0x7f80) === 0x7f80);
    if (bad >= 0) {
      throw new Error(
        `${file}: tensor '${name}' holds a non-finite value at element ${bad}: the checkpoint is corrupt`,
      );
    }
  }
  checkFinite(floats, file);
  const tokenizerPath = tokenizerOf(dir);
  return tokenizerPath !== undefined ? { config, weights, dtype, tokenizerPath } : { config, weights, dtype };
}

/**
 * Write a copy of the checkpoint `src` into `dst` with its weights stored as `dtype` (bf16: the matrices
 * rounded to nearest even; f32: widened back exactly). `dst` must not exist or be an empty directory:
 * nothing is overwritten.
 */
export function convertCheckpoint(src: string, dst: string, dtype: WeightsDtype): void {
  if (!WEIGHTS_DTYPES.includes(dtype))
    throw new Error(`dtype must be one of ${WEIGHTS_DTYPES.join(', ')}, got '${dtype}'`);
  let existing: ReturnType<typeof lstatSync> | undefined;
  try {
    existing = lstatSync(dst);
  } catch {}
  if (existing !== undefined) {
    if (!existing.isDirectory()) throw new Error(`'${dst}' exists and is not a directory`);
    if (readdirSync(dst).length > 0)
      throw new Error(`'${dst}' exists and is not empty: choose a new directory`);
  }
  if (path.resolve(src) === path.resolve(dst))
    throw new Error('the output must be another directory than the model');
  const { config, weights, tokenizerPath } = loadCheckpoint(src);
  const tokenizer =
    tokenizerPath !== undefined ? readTextFile(tokenizerPath, READ_LIMITS.tokenizer, 'tokenizer') : undefined;
  saveCheckpoint(dst, config, weights, tokenizer !== undefined ? { dtype, tokenizer } : { dtype });
}
