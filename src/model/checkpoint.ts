/**
 * Checkpoint directories (docs/model.md "Checkpoint format"):
 *
 *   config.json        the model config plus "format": "glam-moe/1"
 *   model.safetensors  every parameter as F32, named and shaped as paramSpecs(config)
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
import { mkdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { kernels } from '../backend/index.js';
import { sameShape, shapeString, type Tensor } from '../tensor/tensor.js';
import { atomicWriteFileSync, atomicWriteJsonSync } from '../util/atomic.js';
import { READ_LIMITS, readJsonFile } from '../util/files.js';
import { CHECKPOINT_FORMAT, configToJson, type GlamConfig, parseConfig } from './config.js';
import { type Params, paramSpecs } from './params.js';
import { type ReadOptions, readSafetensors, readSafetensorsHeader, writeSafetensors } from './safetensors.js';
import { type BufferOptions, Weights } from './weights.js';

export const CONFIG_FILE = 'config.json';
export const MODEL_FILE = 'model.safetensors';
export const TOKENIZER_FILE = 'tokenizer.json';

export interface SaveExtras {
  /** tokenizer.json contents: JSON text or a JSON-serialisable object. */
  tokenizer?: string | object;
}

export interface LoadedCheckpoint {
  config: GlamConfig;
  weights: Weights;
  /** Path of tokenizer.json when the checkpoint has one. */
  tokenizerPath?: string;
}

/** Expected name and shape of one tensor of a tensor file. */
export interface TensorExpectation {
  name: string;
  shape: readonly number[];
}

/** Names listed for an error message, at most `max` of them. */
function listNames(names: string[], max = 5): string {
  const shown = names.slice(0, max).map((n) => `'${n}'`);
  if (names.length > max) shown.push(`and ${names.length - max} more`);
  return shown.join(', ');
}

/**
 * Check a set of named tensors against expectations: every expected name present,
 * no other names, shapes equal. `source` and `what` phrase the errors.
 */
export function checkTensorSet(
  actual: Map<string, readonly number[]>,
  expected: readonly TensorExpectation[],
  source: string,
): void {
  const want = new Map(expected.map((e) => [e.name, e.shape]));
  const missing = [...want.keys()].filter((n) => !actual.has(n));
  if (missing.length > 0) throw new Error(`${source}: missing tensor ${listNames(missing)}`);
  const unexpected = [...actual.keys()].filter((n) => !want.has(n));
  if (unexpected.length > 0) throw new Error(`${source}: unexpected tensor ${listNames(unexpected)}`);
  for (const [name, shape] of want) {
    const got = actual.get(name)!;
    if (!sameShape(got, shape)) {
      throw new Error(
        `${source}: tensor '${name}' has shape ${shapeString(got)}, expected ${shapeString(shape)}`,
      );
    }
  }
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

/**
 * Read an F32 safetensors file and check every value is finite. With `expected`, the header is
 * checked first (names, shapes, dtype) so a wrong file fails before any data is read. With `into`,
 * each tensor is read straight into the storage it gives (a view of a model's flat buffer).
 */
export function loadTensors(
  file: string,
  expected?: readonly TensorExpectation[],
  into?: ReadOptions['into'],
): Map<string, Tensor> {
  if (expected !== undefined) {
    const header = readSafetensorsHeader(file);
    checkTensorSet(new Map(header.entries.map((e) => [e.name, e.shape])), expected, file);
    for (const e of header.entries) {
      if (e.dtype !== 'F32')
        throw new Error(`${file}: tensor '${e.name}' has dtype ${e.dtype}, expected F32`);
    }
  }
  const tensors = readSafetensors(
    file,
    into === undefined ? { requireF32: true } : { requireF32: true, into },
  ).tensors;
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
  const ordered = paramSpecs(cfg).map((s) => [s.name, params.get(s.name)!] as const);
  writeSafetensors(path.join(dir, MODEL_FILE), ordered, { format: CHECKPOINT_FORMAT });
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

/**
 * Load a checkpoint: config.json, then model.safetensors checked against paramSpecs(config) for names,
 * shapes and dtype before its data is read, straight into the flat buffer of the returned Weights.
 */
export function loadCheckpoint(dir: string, opts: BufferOptions = {}): LoadedCheckpoint {
  const config = loadCheckpointConfig(dir);
  const weights = new Weights(config, opts);
  loadTensors(path.join(dir, MODEL_FILE), paramSpecs(config), (name) => weights.get(name).data);
  const tokenizerPath = path.join(dir, TOKENIZER_FILE);
  let hasTokenizer = false;
  try {
    hasTokenizer = statSync(tokenizerPath).isFile();
  } catch {}
  return hasTokenizer ? { config, weights, tokenizerPath } : { config, weights };
}
