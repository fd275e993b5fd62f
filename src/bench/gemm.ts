/**
 * Matrix-product and FMA-peak measurements for `glam bench gemm|peak` and the bench/ scripts.
 * Timings are per call; a sample repeats short calls until it lasts about a millisecond, so timer
 * resolution never dominates. Results are medians over samples with their spread.
 */
import { totalmem } from 'node:os';
import { alignedFloat32, bmat, type Kernels, mat, toBf16, transpose } from '../backend/index.js';
import type { IsaKey, NativeKernels } from '../backend/native.js';
import { type Summary, summarize, timeSeconds } from './stats.js';

export type Trans = 'NN' | 'NT' | 'TN' | 'TT';
export const TRANS_CASES: readonly Trans[] = ['NN', 'NT', 'TN', 'TT'];

export interface GemmBenchOptions {
  m: number;
  n: number;
  k: number;
  trans?: Trans;
  /** Kernel threads (ignored by the reference kernels). Default: the backend's current count. */
  threads?: number;
  /** Timed samples (default 15). */
  repeat?: number;
  /** Untimed seconds first, so clocks ramp up and caches and scratch buffers are warm (default 0.2). */
  warmupSeconds?: number;
  /** B (the weights) in float32 (sgemm, default) or bf16 (gemmBf16: bf16 operands, float32 sums). */
  dtype?: 'f32' | 'bf16';
}

export interface GemmBenchResult {
  op: 'sgemm' | 'gemmBf16';
  dtype: 'f32' | 'bf16';
  /** Bytes of B (the weights) read per second at the median: what bounds few-row (decode) products. */
  b_gbytes_per_s: number;
  m: number;
  n: number;
  k: number;
  trans: Trans;
  threads: number;
  backend: string;
  /** Median GFLOP/s (2·m·n·k flops per call) and its extremes over the samples. */
  gflops: number;
  gflops_min: number;
  gflops_max: number;
  /**
   * Flops per second of CPU time the process spent (all its threads; median over the samples): on one
   * thread, the rate while the kernel is on a core, comparable with `glam bench peak`'s per-thread
   * CPU-time peak when other processes share the machine (the wall clock then counts their turns too).
   * Null when the samples are too short for the CPU clock.
   */
  gflops_cpu: number | null;
  /** Milliseconds per call: median, extremes, and relative spread of the middle half. */
  ms_median: number;
  ms_min: number;
  ms_max: number;
  spread_iqr: number;
  repeat: number;
  calls_per_sample: number;
}

function randomFill(a: Float32Array, seed: number): Float32Array {
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

export function parseTrans(value: string): Trans {
  const t = value.toUpperCase();
  if (!(TRANS_CASES as readonly string[]).includes(t)) {
    throw new Error(`--trans must be one of ${TRANS_CASES.join(', ')}, got '${value}'`);
  }
  return t as Trans;
}

/** Times C = A·B (with the requested transposes) on tight, 64-byte-aligned operands. */
export function benchGemm(kern: Kernels, opts: GemmBenchOptions): GemmBenchResult {
  const { m, n, k } = opts;
  for (const [name, v] of Object.entries({ m, n, k })) {
    if (!Number.isInteger(v) || v < 1)
      throw new Error(`bench gemm: ${name} must be a positive integer, got ${v}`);
  }
  const trans = opts.trans ?? 'NN';
  const repeat = opts.repeat ?? 15;
  if (!Number.isInteger(repeat) || repeat < 1)
    throw new Error(`bench gemm: repeat must be >= 1, got ${repeat}`);
  if (opts.threads !== undefined) kern.setThreads(opts.threads);
  // Refuse sizes this machine cannot hold before allocating (else only "Array buffer allocation failed").
  const bytes = 4 * (m * k + k * n + m * n);
  const largest = Math.max(m * k, k * n, m * n);
  if (bytes > 0.8 * totalmem() || largest > 2 ** 31) {
    const gb = (x: number) => `${(x / 2 ** 30).toFixed(1)} GiB`;
    throw new Error(
      `bench gemm: m=${m} n=${n} k=${k} needs ${gb(bytes)} for A, B and C (float32)` +
        (largest > 2 ** 31 ? `, one operand of ${largest} elements (at most 2^31)` : '') +
        `; this machine has ${gb(totalmem())}`,
    );
  }
  const ta = trans[0] === 'T';
  const tb = trans[1] === 'T';
  const a = randomFill(alignedFloat32(m * k), 1);
  const b = randomFill(alignedFloat32(k * n), 2);
  const c = alignedFloat32(m * n);
  const av = ta ? transpose(mat(a, k, m)) : mat(a, m, k);
  const bv = tb ? transpose(mat(b, n, k)) : mat(b, k, n);
  const cv = mat(c, m, n);
  const dtype = opts.dtype ?? 'f32';
  const b16 = dtype === 'bf16' ? toBf16(b) : new Uint16Array(0);
  const wv = tb ? transpose(bmat(b16, n, k)) : bmat(b16, k, n);
  const call = dtype === 'bf16' ? () => kern.gemmBf16(1, av, wv, 0, cv) : () => kern.sgemm(1, av, bv, 0, cv);

  const warmup = opts.warmupSeconds ?? 0.2;
  let once = timeSeconds(call);
  for (let spent = once; spent < warmup; ) {
    once = timeSeconds(call);
    spent += once;
  }
  const callsPerSample = Math.max(1, Math.ceil(1e-3 / Math.max(once, 1e-9)));
  const seconds: number[] = [];
  const cpuSeconds: number[] = [];
  for (let r = 0; r < repeat; r++) {
    const cpu0 = process.cpuUsage();
    seconds.push(
      timeSeconds(() => {
        for (let i = 0; i < callsPerSample; i++) call();
      }) / callsPerSample,
    );
    const cpu = process.cpuUsage(cpu0);
    cpuSeconds.push((cpu.user + cpu.system) / 1e6 / callsPerSample);
  }
  const flops = 2 * m * n * k;
  const t: Summary = summarize(seconds);
  const cpuMedian = summarize(cpuSeconds).median;
  return {
    op: dtype === 'bf16' ? 'gemmBf16' : 'sgemm',
    dtype,
    b_gbytes_per_s: (k * n * (dtype === 'bf16' ? 2 : 4)) / t.median / 1e9,
    m,
    n,
    k,
    trans,
    threads: kern.getThreads(),
    backend: kern.describe(),
    gflops: flops / t.median / 1e9,
    gflops_cpu: cpuMedian > 0 ? flops / cpuMedian / 1e9 : null,
    gflops_min: flops / t.max / 1e9,
    gflops_max: flops / t.min / 1e9,
    ms_median: t.median * 1e3,
    ms_min: t.min * 1e3,
    ms_max: t.max * 1e3,
    spread_iqr: t.iqrRel,
    repeat,
    calls_per_sample: callsPerSample,
  };
}

export interface PeakResultRow {
  /** The code path whose multiply-add chains ran ('avx512', 'avx2+fma', 'portable'). */
  isa: string;
  threads: number;
  /** Fastest ~20 ms trial: the machine's capability. */
  gflops: number;
  gflops_per_thread: number;
  /** Median trial: lower when other processes share the cores. */
  gflops_median: number;
  trials: number;
}

export interface PeakBenchResult {
  op: 'peak';
  /** The code path the kernels use (the one MFU figures are computed against). */
  isa: string;
  results: PeakResultRow[];
}

/**
 * FMA throughput (independent multiply-add chains held in registers, in the registers of each code
 * path: zmm for AVX-512, ymm for AVX2) for each thread count: the ceiling a kernel on that path can
 * reach on this machine, the denominator of efficiency figures. Reported as the fastest of many short
 * trials, which noise from other processes cannot inflate, with the median trial. `isas` (default: the
 * path in use) lists the paths to measure; the path in use is restored afterwards.
 */
export function benchPeak(
  kern: NativeKernels,
  threadCounts: number[],
  seconds = 0.5,
  isas?: IsaKey[],
): PeakBenchResult {
  const before = kern.getThreads();
  const info = kern.info();
  const results: PeakResultRow[] = [];
  try {
    for (const isa of isas ?? [info.isaKey]) {
      if (!kern.setIsa(isa)) throw new Error(`bench peak: this CPU cannot run the ${isa} path`);
      for (const threads of threadCounts) {
        if (!Number.isInteger(threads) || threads < 1) {
          throw new Error(`bench peak: threads must be a positive integer, got ${threads}`);
        }
        kern.setThreads(threads);
        const p = kern.peak(threads, seconds);
        results.push({
          isa: p.isa,
          threads: p.threads,
          gflops: p.gflops,
          gflops_per_thread: p.gflops / p.threads,
          gflops_median: p.median,
          trials: p.trials,
        });
      }
    }
  } finally {
    kern.setThreads(before);
    // Back to the path in use, whether it was the default choice or set by GLAM_ISA / setIsa.
    kern.setIsa(info.isaKey);
  }
  return { op: 'peak', isa: info.isa, results };
}
