/**
 * The safetensors format (as written by Hugging Face's `safetensors` library):
 *
 *   8 bytes   N, the header length, unsigned 64-bit little-endian
 *   N bytes   a UTF-8 JSON object: {name: {dtype, shape, data_offsets: [begin, end]}, ...,
 *             "__metadata__"?: {string: string}}, padded with spaces
 *   rest      the data section; offsets are relative to its start, little-endian values,
 *             row-major, tensors laid end to end with no gaps
 *
 * We write F32 and BF16 (bf16 checkpoints: `glam convert`). We read F32, and convert F16, BF16
 * and F64 to F32 on read (F64 rounds to the nearest float32; F16/BF16 widen exactly), so files
 * saved in half precision by other tools load too; readSafetensorsStored keeps BF16 tensors as
 * bf16 instead (what bf16 inference computes on). Integer and boolean tensors are recognised
 * (the header validates) but cannot be read as float tensors.
 */
import { fstatSync, readSync } from 'node:fs';
import { alignedFloat32 } from '../backend/index.js';
import { type AnyTensor, Bf16Tensor } from '../tensor/bf16.js';
import { shapeString, Tensor } from '../tensor/tensor.js';
import { atomicWriteSync, writeFullySync } from '../util/atomic.js';
import { briefValue, withRegularFile } from '../util/files.js';

export const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;

export type Dtype = keyof typeof DTYPE_BYTES;

/** Dtypes readSafetensors can turn into float32 tensors. */
export const FLOAT_DTYPES: readonly Dtype[] = ['F32', 'F16', 'BF16', 'F64'];

export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte offsets within the data section, [begin, end). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Entries in file (offset) order. */
  entries: TensorEntry[];
  metadata: Record<string, string>;
  /** Absolute file offset of the data section (8 + header length). */
  dataStart: number;
  dataLength: number;
}

export interface ReadOptions {
  /** Refuse any tensor that is not F32 instead of converting it. */
  requireF32?: boolean;
  /** Read only these tensors (the whole header is still validated). */
  names?: Iterable<string>;
  /**
   * Storage for a tensor's data (read straight into it, e.g. a view of a model's flat weight buffer);
   * undefined gives a fresh aligned array. Its length must equal the tensor's element count.
   */
  into?: (name: string) => Float32Array | undefined;
}

function storageFor(e: TensorEntry, opts: ReadOptions, source: string): Float32Array {
  const n = (e.end - e.begin) / DTYPE_BYTES[e.dtype];
  const dest = opts.into?.(e.name);
  if (dest === undefined) return alignedFloat32(n);
  if (dest.length !== n) {
    throw new Error(`${source}: tensor '${e.name}' has ${n} elements, its destination ${dest.length}`);
  }
  return dest;
}

export interface SafetensorsContents {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** Headers larger than this are refused as corrupt (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------
// Header parsing and validation

/** Header length from the first 8 bytes, checked against the file size. */
function headerLength(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) {
    throw new Error(
      `${source}: file is ${fileSize} bytes, too short to be safetensors (needs an 8-byte header length)`,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(fileSize - 8)) {
    throw new Error(
      `${source}: header length ${n} exceeds the ${fileSize - 8} bytes after the length field (truncated or not safetensors)`,
    );
  }
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new Error(
      `${source}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt file?)`,
    );
  }
  if (n < 2n) throw new Error(`${source}: header length ${n} is too small for a JSON object`);
  return Number(n);
}

function isSafeNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parse and validate header JSON for a data section of `dataLength` bytes.
 * Every problem is reported with the tensor it concerns.
 */
export function parseHeader(
  headerBytes: Uint8Array,
  dataLength: number,
  source = 'safetensors',
): Omit<SafetensorsHeader, 'dataStart'> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new Error(`${source}: header is not valid UTF-8`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source}: header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error(`${source}: header must be a JSON object`);
  }
  const metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new Error(`${source}: __metadata__ must be an object of strings`);
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new Error(`${source}: __metadata__ value '${k}' must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    entries.push(parseEntry(name, value, source));
  }
  checkLayout(entries, dataLength, source);
  return { entries, metadata, dataLength };
}

function parseEntry(name: string, value: unknown, source: string): TensorEntry {
  const where = `${source}: tensor '${name.length > 200 ? `${name.slice(0, 200)}...` : name}'`;
  if (name === '') throw new Error(`${source}: a tensor has an empty name`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${where}: entry must be an object {dtype, shape, data_offsets}`);
  }
  const e = value as Record<string, unknown>;
  const dtype = e.dtype;
  if (typeof dtype !== 'string') throw new Error(`${where}: missing or non-string dtype`);
  if (!Object.hasOwn(DTYPE_BYTES, dtype)) {
    throw new Error(
      `${where}: unknown dtype '${dtype.slice(0, 40)}' (known: ${Object.keys(DTYPE_BYTES).join(', ')})`,
    );
  }
  const shape = e.shape;
  if (!Array.isArray(shape) || !shape.every(isSafeNonNegInt)) {
    throw new Error(`${where}: shape must be an array of non-negative integers, got ${briefValue(shape)}`);
  }
  const offsets = e.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSafeNonNegInt)) {
    throw new Error(`${where}: data_offsets must be [begin, end] byte offsets, got ${briefValue(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw new Error(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
  const bytes = DTYPE_BYTES[dtype as Dtype];
  let count = 1;
  for (const d of shape as number[]) count *= d;
  if (!Number.isSafeInteger(count * bytes))
    throw new Error(`${where}: shape ${shapeString(shape)} is too large`);
  if (count * bytes !== end - begin) {
    throw new Error(
      `${where}: shape ${shapeString(shape)} of ${dtype} needs ${count * bytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  return { name, dtype: dtype as Dtype, shape: shape as number[], begin, end };
}

/** Tensors must tile the data section exactly: within it, no overlap, no gap, nothing after. */
function checkLayout(entries: TensorEntry[], dataLength: number, source: string): void {
  for (const e of entries) {
    if (e.end > dataLength) {
      throw new Error(
        `${source}: tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] run past the end of the data (${dataLength} bytes): file truncated?`,
      );
    }
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let prev: TensorEntry | undefined;
  let pos = 0;
  for (const e of entries) {
    if (e.begin < pos) {
      throw new Error(
        `${source}: tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] overlap tensor '${prev!.name}' [${prev!.begin}, ${prev!.end}]`,
      );
    }
    if (e.begin > pos) {
      throw new Error(
        `${source}: tensor '${e.name}': gap of ${e.begin - pos} bytes before its data (offset ${pos})`,
      );
    }
    pos = e.end;
    prev = e;
  }
  if (pos !== dataLength) {
    throw new Error(`${source}: ${dataLength - pos} bytes of data after the last tensor (corrupt file?)`);
  }
}

// ---------------------------------------------------------------------------
// Decoding values

function decodeInto(out: Float32Array, raw: Uint8Array, dtype: Dtype): void {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const n = out.length;
  switch (dtype) {
    case 'F32':
      if (LITTLE_ENDIAN_HOST) asBytes(out).set(raw);
      else for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      return;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      return;
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const bits = new Uint32Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
      return;
    }
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
      return;
    default:
      throw new Error(`dtype ${dtype} cannot be read as float32`);
  }
}

/** IEEE 754 binary16 to number (exact). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1024 + frac) * 2 ** (exp - 25);
}

function swapBytes32(bytes: Uint8Array): void {
  for (let i = 0; i + 3 < bytes.length; i += 4) {
    const a = bytes[i]!;
    const b = bytes[i + 1]!;
    bytes[i] = bytes[i + 3]!;
    bytes[i + 1] = bytes[i + 2]!;
    bytes[i + 2] = b;
    bytes[i + 3] = a;
  }
}

function swapBytes16(bytes: Uint8Array): void {
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    const a = bytes[i]!;
    bytes[i] = bytes[i + 1]!;
    bytes[i + 1] = a;
  }
}

function asBytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function selectEntries(header: { entries: TensorEntry[] }, opts: ReadOptions, source: string): TensorEntry[] {
  let chosen = header.entries;
  if (opts.names !== undefined) {
    const want = new Set(opts.names);
    chosen = chosen.filter((e) => want.has(e.name));
    const have = new Set(chosen.map((e) => e.name));
    const missing = [...want].filter((n) => !have.has(n));
    if (missing.length > 0)
      throw new Error(`${source}: no tensor named ${missing.map((n) => `'${n}'`).join(', ')}`);
  }
  for (const e of chosen) {
    if (e.dtype === 'F32') continue;
    if (opts.requireF32) throw new Error(`${source}: tensor '${e.name}' has dtype ${e.dtype}, expected F32`);
    if (!FLOAT_DTYPES.includes(e.dtype)) {
      throw new Error(
        `${source}: tensor '${e.name}' has dtype ${e.dtype}, which cannot be read as float32 (readable: ${FLOAT_DTYPES.join(', ')})`,
      );
    }
  }
  return chosen;
}

// ---------------------------------------------------------------------------
// In-memory encode/decode

/** Decode a whole safetensors file held in memory. */
export function decodeSafetensors(
  bytes: Uint8Array,
  source = 'safetensors',
  opts: ReadOptions = {},
): SafetensorsContents {
  const n = headerLength(bytes.subarray(0, 8), bytes.length, source);
  const dataStart = 8 + n;
  const header = parseHeader(bytes.subarray(8, dataStart), bytes.length - dataStart, source);
  const tensors = new Map<string, Tensor>();
  for (const e of selectEntries(header, opts, source)) {
    const out = storageFor(e, opts, source);
    decodeInto(out, bytes.subarray(dataStart + e.begin, dataStart + e.end), e.dtype);
    tensors.set(e.name, new Tensor(out, e.shape));
  }
  return { tensors, metadata: header.metadata };
}

/** Tensors to write, in order: float32 ones as F32, bf16 ones as BF16. */
type TensorSource = Map<string, AnyTensor> | Iterable<readonly [string, AnyTensor]>;

interface Layout {
  header: Uint8Array;
  items: [string, AnyTensor][];
}

function storedBytes(t: AnyTensor): number {
  return t instanceof Bf16Tensor ? t.size * 2 : t.size * 4;
}

/** Build the padded header for tensors laid end to end in the given order. */
function layout(tensors: TensorSource, metadata?: Record<string, string>): Layout {
  const items: [string, AnyTensor][] = [...tensors].map(([k, v]) => [k, v]);
  const obj: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`safetensors metadata value '${k}' must be a string`);
    }
    obj.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, t] of items) {
    if (name === '' || name === '__metadata__') throw new Error(`safetensors: invalid tensor name '${name}'`);
    if (Object.hasOwn(obj, name)) throw new Error(`safetensors: duplicate tensor name '${name}'`);
    const bytes = storedBytes(t);
    const dtype = t instanceof Bf16Tensor ? 'BF16' : 'F32';
    obj[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(obj), 'utf8');
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  const padded = Math.ceil(json.length / 8) * 8;
  const header = Buffer.alloc(8 + padded, 0x20);
  header.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(header, 8);
  return { header, items };
}

function tensorBytes(t: AnyTensor): Uint8Array {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (LITTLE_ENDIAN_HOST) return bytes;
  const copy = new Uint8Array(bytes);
  if (t instanceof Bf16Tensor) swapBytes16(copy);
  else swapBytes32(copy);
  return copy;
}

/** Encode tensors (in the given order) into one in-memory safetensors file. */
export function encodeSafetensors(tensors: TensorSource, metadata?: Record<string, string>): Uint8Array {
  const { header, items } = layout(tensors, metadata);
  let total = header.length;
  for (const [, t] of items) total += storedBytes(t);
  const out = new Uint8Array(total);
  out.set(header, 0);
  let pos = header.length;
  for (const [, t] of items) {
    out.set(tensorBytes(t), pos);
    pos += storedBytes(t);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Files (synchronous: loading and saving are one-off steps, and sync calls keep
// callers simple; `await` on them works too)

/** Read exactly `into.length` bytes at `position`, or fail naming what was being read. */
function readExactly(fd: number, into: Uint8Array, position: number, what: string): void {
  const CHUNK = 1 << 26;
  let off = 0;
  while (off < into.length) {
    const n = readSync(fd, into, off, Math.min(CHUNK, into.length - off), position + off);
    if (n === 0) throw new Error(`${what}: file ended after ${off} of ${into.length} bytes (truncated?)`);
    off += n;
  }
}

function readHeaderFrom(fd: number, source: string): SafetensorsHeader {
  const { size } = fstatSync(fd);
  const prefix = new Uint8Array(8);
  if (size >= 8) readExactly(fd, prefix, 0, `${source}: header length`);
  const n = headerLength(prefix, size, source);
  const headerBytes = new Uint8Array(n);
  readExactly(fd, headerBytes, 8, `${source}: header`);
  const parsed = parseHeader(headerBytes, size - 8 - n, source);
  return { ...parsed, dataStart: 8 + n };
}

/** Read and validate only the header of a safetensors file (cheap: no tensor data is read). */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  return withRegularFile(file, (fd) => readHeaderFrom(fd, file));
}

/**
 * Read a safetensors file into float32 tensors on aligned storage. The file is
 * read through a file descriptor, one tensor at a time, F32 data straight into
 * the tensor's storage; the whole file is never held as one buffer.
 */
export function readSafetensors(file: string, opts: ReadOptions = {}): SafetensorsContents {
  return withRegularFile(file, (fd) => {
    const header = readHeaderFrom(fd, file);
    return { tensors: readTensorData(fd, header, file, opts), metadata: header.metadata };
  });
}

/**
 * Like readSafetensors, but BF16 tensors stay bf16 (Bf16Tensor, half the memory) instead of widening:
 * what a bf16 checkpoint is read as for bf16 inference. Other float dtypes are read as float32.
 */
export function readSafetensorsStored(
  file: string,
  opts: ReadOptions = {},
): { tensors: Map<string, AnyTensor>; metadata: Record<string, string> } {
  return withRegularFile(file, (fd) => {
    const header = readHeaderFrom(fd, file);
    return { tensors: readTensorData(fd, header, file, opts, true), metadata: header.metadata };
  });
}

function readTensorData(
  fd: number,
  header: SafetensorsHeader,
  source: string,
  opts: ReadOptions,
  keepBf16: true,
): Map<string, AnyTensor>;
function readTensorData(
  fd: number,
  header: SafetensorsHeader,
  source: string,
  opts: ReadOptions,
  keepBf16?: false,
): Map<string, Tensor>;
function readTensorData(
  fd: number,
  header: SafetensorsHeader,
  source: string,
  opts: ReadOptions,
  keepBf16 = false,
): Map<string, AnyTensor> {
  const tensors = new Map<string, AnyTensor>();
  for (const e of selectEntries(header, opts, source)) {
    const what = `${source}: tensor '${e.name}'`;
    if (keepBf16 && e.dtype === 'BF16') {
      const data = new Uint16Array((e.end - e.begin) / 2);
      const bytes = new Uint8Array(data.buffer);
      readExactly(fd, bytes, header.dataStart + e.begin, what);
      if (!LITTLE_ENDIAN_HOST) swapBytes16(bytes);
      tensors.set(e.name, new Bf16Tensor(data, e.shape));
      continue;
    }
    const out = storageFor(e, opts, source);
    if (e.dtype === 'F32') {
      const bytes = asBytes(out);
      readExactly(fd, bytes, header.dataStart + e.begin, what);
      if (!LITTLE_ENDIAN_HOST) swapBytes32(bytes);
    } else {
      const raw = new Uint8Array(e.end - e.begin);
      readExactly(fd, raw, header.dataStart + e.begin, what);
      decodeInto(out, raw, e.dtype);
    }
    tensors.set(e.name, new Tensor(out, e.shape));
  }
  return tensors;
}

/**
 * Write tensors (in the given order; Bf16Tensor ones as BF16, others F32) to `file` atomically: the
 * header, then each tensor's storage directly, so no copy of the whole model is made.
 */
export function writeSafetensors(
  file: string,
  tensors: TensorSource,
  metadata?: Record<string, string>,
): void {
  const { header, items } = layout(tensors, metadata);
  atomicWriteSync(file, (fd) => {
    writeFullySync(fd, header);
    for (const [, t] of items) writeFullySync(fd, tensorBytes(t));
  });
}
