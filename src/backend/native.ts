/**
 * The native compute core (C++ through Node-API, built by node-gyp into build/Release/glam_native.node),
 * wrapped as a `Kernels` object. The addon checks every call itself (native/core/ops.cc), with the same
 * messages as the reference kernels; the wrapper only passes matrix views as the six arguments the
 * addon reads (data, offset, rows, cols, ld, trans).
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Mat } from './mat.js';
import { type ArgKind, type KernelOps, type Kernels, OP_NAMES, OPS, type OpName, opArgs } from './ops.js';

/** The instruction sets the native core has kernels for, fastest first. */
export type IsaKey = 'avx512' | 'avx2' | 'portable';

export interface NativeInfo {
  /** Code path in use: 'avx512', 'avx2+fma' or 'portable'. */
  isa: string;
  /** Its key, as GLAM_ISA and setIsa take it. */
  isaKey: IsaKey;
  /** The paths this CPU (and OS) can run, fastest first; the portable one always. */
  isas: IsaKey[];
  /** The bf16 product kernel in use: 'vdpbf16ps' (AVX512-BF16) or 'widening'. */
  bf16: string;
  /** Why that path was chosen, e.g. "forced by GLAM_FORCE_PORTABLE". */
  reason: string;
  threads: number;
  /** Cores this process may run on. */
  cores: number;
  /** Whether the CPU supports the AVX2/FMA path. */
  avx2Fma: boolean;
  /** Whether the CPU supports the AVX-512 path (F, BW, DQ, VL, with the OS saving the registers). */
  avx512: boolean;
  /** Whether it also has AVX512-BF16 (vdpbf16ps). */
  avx512Bf16: boolean;
}

export interface BandwidthResult {
  /** GB/s of the fastest trial (one pass over the buffer by all threads at once). */
  gbps: number;
  /** GB/s of the median trial. */
  median: number;
  threads: number;
  trials: number;
  /** Bytes one pass read. */
  bytes: number;
}

export interface PeakResult {
  /**
   * Aggregate multiply-add throughput of all threads in the fastest ~20 ms trial: the machine's
   * capability (other load only ever slows a trial down).
   */
  gflops: number;
  /** The median trial, for a sense of the current load. */
  median: number;
  trials: number;
  threads: number;
  isa: string;
}

/** The raw addon: the ops (matrix views flattened to six arguments) and what only the native core has. */
export interface NativeAddon {
  /** The addon's op table: name → "arg:kind ..." (it must equal OPS). */
  readonly ops: Readonly<Record<string, string>>;
  /** Resizes the thread pool; returns the size in effect. */
  setThreads(n: number): number;
  getThreads(): number;
  /** Switches to the named path ('' = the default choice); false, changing nothing, if the CPU lacks it. */
  selectIsa(isa: string): boolean;
  selectBf16Widening(widen: boolean): void;
  info(): NativeInfo;
  /** Runs independent FMA chains on `threads` threads in ~20 ms trials for about `seconds`. */
  peak(threads: number, seconds: number): PeakResult;
  /** Address of the (Shared)ArrayBuffer's data modulo 64. */
  addressMod64(buffer: ArrayBufferLike): number;
  /** Read bandwidth of `threads` threads streaming a `mib` MiB buffer, in trials for about `seconds`. */
  readBandwidth(threads: number, mib: number, seconds: number): BandwidthResult;
  /** Read bandwidth of `threads` threads reading the memory of `views` (each whole), `trials` passes. */
  readBandwidthOf(threads: number, views: readonly ArrayBufferView[], trials: number): BandwidthResult;
  readonly [op: string]: unknown;
}

/** The native kernels plus what only the native core has. */
export interface NativeKernels extends Kernels {
  readonly name: 'native';
  readonly addon: NativeAddon;
  info(): NativeInfo;
  peak(threads: number, seconds: number): PeakResult;
  /** Memory read bandwidth of `threads` threads streaming a `mib` MiB buffer for about `seconds`. */
  readBandwidth(threads: number, mib: number, seconds: number): BandwidthResult;
  /**
   * Memory read bandwidth of `threads` threads reading the memory `views` occupy (each whole, the threads
   * taking equal contiguous shares of them end to end), best and median of `trials` passes: the rate of
   * the memory some data, a model's weights, actually lives in.
   */
  readBandwidthOf(threads: number, views: readonly ArrayBufferView[], trials: number): BandwidthResult;
  /**
   * Selects a code path: 'avx512', 'avx2', 'portable', or undefined for the default choice (the fastest
   * the CPU has, or GLAM_ISA's). Returns false, changing nothing, when the CPU lacks that path.
   */
  setIsa(isa: IsaKey | undefined): boolean;
  /** Uses the widening bf16 kernel (true) or the path's own (false: vdpbf16ps where the CPU has it). */
  setBf16Widening(widen: boolean): void;
}

export type NativeLoad =
  | { ok: true; kernels: NativeKernels; path: string }
  | { ok: false; path: string; reason: string };

/** Where node-gyp puts the addon, relative to this module (dist/src/backend/native.js). */
export const ADDON_PATH = fileURLToPath(new URL('../../../build/Release/glam_native.node', import.meta.url));

const OTHER_EXPORTS = [
  'setThreads',
  'getThreads',
  'selectIsa',
  'selectBf16Widening',
  'info',
  'peak',
  'addressMod64',
  'readBandwidth',
  'readBandwidthOf',
] as const;

/** How the addon's op table differs from OPS (empty when it implements exactly the contract). */
export function opTableDifferences(table: Readonly<Record<string, string>> | undefined): string[] {
  if (table === undefined || typeof table !== 'object') return ['no op table'];
  const diffs: string[] = [];
  for (const name of OP_NAMES) {
    const want = OPS[name].args.join(' ');
    const got = table[name];
    if (got === undefined) diffs.push(`lacks ${name}`);
    else if (got !== want) diffs.push(`${name}(${got}) instead of ${name}(${want})`);
  }
  for (const name of Object.keys(table)) {
    if (!(name in OPS)) diffs.push(`has ${name}, which the contract does not`);
  }
  return diffs;
}

let cached: NativeLoad | undefined;

/** Loads the addon once; never throws (the failure reason is returned instead). */
/** GLAM_THREADS, when set, must be a thread count: the addon would ignore a bad value without a word. */
export function checkThreadsEnv(): void {
  const threads = process.env.GLAM_THREADS;
  if (threads !== undefined && !(/^\d+$/.test(threads) && Number(threads) >= 1 && Number(threads) <= 1024)) {
    throw new Error(`GLAM_THREADS must be an integer in [1, 1024] (compute threads), got '${threads}'`);
  }
}

export function loadNative(): NativeLoad {
  checkThreadsEnv();
  if (cached) return cached;
  try {
    const require = createRequire(import.meta.url);
    const mod = require(ADDON_PATH) as NativeAddon;
    const missing = OTHER_EXPORTS.filter((name) => typeof mod[name] !== 'function');
    const diffs = opTableDifferences(mod.ops);
    if (missing.length > 0 || diffs.length > 0) {
      const all = [...missing.map((m) => `lacks ${m}`), ...diffs];
      cached = { ok: false, path: ADDON_PATH, reason: `addon ${all.join('; ')} (stale build?)` };
    } else {
      cached = { ok: true, path: ADDON_PATH, kernels: wrapAddon(mod) };
    }
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    cached = { ok: false, path: ADDON_PATH, reason: msg };
  }
  return cached;
}

/** The addon function of one op, taking matrix views as objects. */
function nativeOp(name: OpName, fn: (...args: unknown[]) => unknown): (...args: unknown[]) => unknown {
  const kinds: ArgKind[] = opArgs(name).map((a) => a.kind);
  const isView = (k: ArgKind | undefined) => k === 'mat' || k === 'bmat';
  if (!kinds.some(isView)) return fn;
  const names = opArgs(name).map((a) => a.name);
  return (...args: unknown[]) => {
    const flat: unknown[] = [];
    for (let i = 0; i < args.length; i++) {
      const v = args[i];
      if (!isView(kinds[i])) {
        flat.push(v);
        continue;
      }
      if (typeof v !== 'object' || v === null) {
        throw new Error(`${name}: ${names[i]} must be a matrix view {data, offset, rows, cols, ld, trans}`);
      }
      const m = v as Mat;
      flat.push(m.data, m.offset, m.rows, m.cols, m.ld, m.trans);
    }
    return fn(...flat);
  };
}

/** Wraps the raw addon as `Kernels`. */
export function wrapAddon(addon: NativeAddon): NativeKernels {
  const ops: Record<string, unknown> = {};
  for (const name of OP_NAMES) ops[name] = nativeOp(name, addon[name] as (...args: unknown[]) => unknown);
  return {
    ...(ops as unknown as KernelOps),
    name: 'native',
    addon,
    describe() {
      const info = addon.info();
      const threads = info.threads === 1 ? '1 thread' : `${info.threads} threads`;
      return `native ${info.isa} (${info.reason}), ${threads}`;
    },
    setThreads(n) {
      if (!Number.isInteger(n) || n < 1)
        throw new Error(`setThreads: n must be a positive integer, got ${n}`);
      addon.setThreads(n);
    },
    getThreads: () => addon.getThreads(),
    info: () => addon.info(),
    peak: (threads, seconds) => addon.peak(threads, seconds),
    setIsa: (isa) => addon.selectIsa(isa ?? ''),
    setBf16Widening: (widen) => {
      addon.selectBf16Widening(widen);
    },
    readBandwidth: (threads, mib, seconds) => addon.readBandwidth(threads, mib, seconds),
    readBandwidthOf: (threads, views, trials) => addon.readBandwidthOf(threads, views, trials),
  };
}
