/**
 * Training throughput: tokens/s of real optimizer steps (forward, backward, the
 * trainer's finite check and gradient norm, Adafactor) on synthetic token batches,
 * and model FLOPs utilisation against the machine's measured peak.
 *
 * MFU = train FLOPs per token (src/model/accounting.ts, with the benchmark's
 * sequence length as the attention context) × tokens/s ÷ peak FLOP/s measured for
 * the same thread count. The accounting counts the full attention window, as
 * PaLM's 6N + 12·L·H·Q·T does, so MFU is comparable with published figures.
 *
 * `glam bench train` prints it; bench/train_vs_torch.mjs runs it against PyTorch.
 */
import { kernels, loadNative, type Precision, useKernels, withPrecision } from '../backend/index.js';
import { accounting } from '../model/accounting.js';
import type { GlamConfig } from '../model/config.js';
import { type Batch, GlamModel } from '../model/glam.js';
import { initParams } from '../model/init.js';
import { resolveConfig } from '../model/presets.js';
import { RECIPE_OPTIMIZERS } from '../optim/create.js';
import { GLAM_SCHEDULE } from '../optim/schedule.js';
import { newStepContext, trainStep } from '../train/step.js';
import { Rng } from '../util/rng.js';
import { benchPeak } from './gemm.js';
import { percent, type Summary, summarize } from './stats.js';

export interface TrainBenchOptions {
  /** Preset name or config file (default 'small-moe'). */
  config?: string;
  /** Sequences per step (default 8). */
  batch?: number;
  /** Tokens per sequence (default 128). */
  seqLen?: number;
  /** Timed steps (default 10). */
  steps?: number;
  /** Untimed steps first: arenas grow, code warms up (default 3). */
  warmup?: number;
  /** Kernel threads (default: what the backend uses now). */
  threads?: number;
  /** Matrix-product precision (default fp32; bf16: operands rounded to bf16, float32 sums). */
  precision?: Precision;
  /** Seed of the parameters and the synthetic tokens (default 1). */
  seed?: number;
  /**
   * Peak GFLOP/s to compare against. Default: measured by `measurePeak` for the
   * thread count after the timed steps; null leaves MFU out.
   */
  peakGflops?: number | null;
  /** Measures the machine's peak GFLOP/s for a thread count; null when it cannot. Default: `nativePeakGflops`. */
  measurePeak?: (threads: number) => number | null;
  /** Called after every step (warm-up included) with its milliseconds. */
  onStep?: (index: number, ms: number, timed: boolean) => void;
}

export interface TrainBenchResult {
  precision: Precision;
  config: string;
  kernels: string;
  threads: number;
  batch: number;
  seqLen: number;
  tokensPerStep: number;
  steps: number;
  warmup: number;
  params: number;
  activeParams: number;
  /** accounting(cfg, seqLen).train_flops_per_token. */
  trainFlopsPerToken: number;
  /** Milliseconds of each timed step. */
  stepMs: number[];
  tokensPerSec: Summary;
  /** Median milliseconds per phase of a step; forward includes zeroing the gradients. */
  forwardMs: number;
  backwardMs: number;
  /** Finite check and global gradient norm, as the trainer does before each update. */
  gradCheckMs: number;
  optimizerMs: number;
  /** Model FLOP/s at the median tokens/s, in GFLOP/s. */
  achievedGflops: number;
  peakGflops: number | null;
  /**
   * achievedGflops / peakGflops, or null without a peak or when the achieved rate exceeds the peak
   * (the peak measurement was wrong: `mfuRefused` says so; MFU is never over 100%).
   */
  mfu: number | null;
  /** Why MFU is null although a peak was measured. */
  mfuRefused?: string;
  /**
   * Model FLOP/s per core of CPU time: flops of a step ÷ (the process's CPU seconds in the step ÷ threads),
   * median over the timed steps. On a shared machine the wall clock also counts other processes' turns on
   * the cores; this counts only the time the step's threads ran (spin-waits included, so it errs low),
   * the way the peak is measured. Null when the CPU clock saw nothing.
   */
  onCpuGflops: number | null;
  /** onCpuGflops / peakGflops (null without either, or above 1: then mfuRefused-like, not reported). */
  onCpuMfu: number | null;
  lossFirst: number;
  lossLast: number;
}

/**
 * The machine's FMA peak for a thread count (`glam bench peak`'s measurement over 0.3 s), or null when
 * the native addon is not loaded or cannot run that many threads at once.
 */
export function nativePeakGflops(threads: number): number | null {
  const native = loadNative();
  if (!native.ok) return null;
  const row = benchPeak(native.kernels, [threads], 0.3).results[0];
  // A peak on fewer threads (more threads than cores, or the pool busy) is not this thread count's.
  return row !== undefined && row.threads === threads ? row.gflops : null;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1)
    throw new Error(`benchTrain: ${name} must be an integer >= 1, got ${v}`);
  return v;
}

/** `count` batches of uniform random tokens; targets are the next token of the same stream. */
function syntheticBatches(cfg: GlamConfig, batch: number, seqLen: number, count: number, rng: Rng): Batch[] {
  const out: Batch[] = [];
  for (let c = 0; c < count; c++) {
    const inputs = new Int32Array(batch * seqLen);
    const targets = new Int32Array(batch * seqLen);
    for (let b = 0; b < batch; b++) {
      let prev = rng.int(cfg.vocab_size);
      for (let t = 0; t < seqLen; t++) {
        const next = rng.int(cfg.vocab_size);
        inputs[b * seqLen + t] = prev;
        targets[b * seqLen + t] = next;
        prev = next;
      }
    }
    out.push({ inputs, targets, batch, seqLen });
  }
  return out;
}

export function benchTrain(opts: TrainBenchOptions = {}): TrainBenchResult {
  const configName = opts.config ?? 'small-moe';
  const cfg = resolveConfig(configName);
  const batch = positiveInt('batch', opts.batch ?? 8);
  const seqLen = positiveInt('seqLen', opts.seqLen ?? 128);
  const steps = positiveInt('steps', opts.steps ?? 10);
  const warmup = opts.warmup ?? 3;
  if (!Number.isSafeInteger(warmup) || warmup < 0)
    throw new Error(`benchTrain: warmup must be an integer >= 0, got ${warmup}`);
  if (seqLen > cfg.max_seq_len)
    throw new Error(`benchTrain: seqLen ${seqLen} exceeds max_seq_len ${cfg.max_seq_len}`);
  const base = kernels();
  if (opts.threads !== undefined) base.setThreads(positiveInt('threads', opts.threads));
  const precision = opts.precision ?? 'fp32';
  const K = withPrecision(base, precision);
  const threads = K.getThreads();
  useKernels(K);
  try {
    return benchSteps(opts, configName, cfg, batch, seqLen, steps, warmup, K, threads, precision);
  } finally {
    useKernels(base);
  }
}

function benchSteps(
  opts: TrainBenchOptions,
  configName: string,
  cfg: ReturnType<typeof resolveConfig>,
  batch: number,
  seqLen: number,
  steps: number,
  warmup: number,
  K: ReturnType<typeof kernels>,
  threads: number,
  precision: Precision,
): TrainBenchResult {
  const seed = opts.seed ?? 1;
  const model = new GlamModel(cfg);
  const weights = initParams(cfg, seed);
  const ctx = newStepContext(model, weights, RECIPE_OPTIMIZERS.adafactor.config, GLAM_SCHEDULE);
  const rng = new Rng(seed + 1);
  const batches = syntheticBatches(cfg, batch, seqLen, 4, rng);
  const tokensPerStep = batch * seqLen;
  // Only second_expert_policy 'random' draws from it; passing it always is harmless.
  const routeRng = new Rng(seed + 2);

  const stepMs: number[] = [];
  const cpuSecondsPerStep: number[] = [];
  const phases: number[][] = [[], [], [], []];
  let lossFirst = Number.NaN;
  let lossLast = Number.NaN;
  for (let i = 0; i < warmup + steps; i++) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const r = trainStep(ctx, [batches[i % batches.length]!], { forward: { rng: routeRng } });
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const parts = r.parts[0]!;
    if (i === 0) lossFirst = parts.total;
    lossLast = parts.total;
    const timed = i >= warmup;
    if (timed) {
      stepMs.push(ms);
      cpuSecondsPerStep.push((cpu.user + cpu.system) / 1e6);
      phases[0]!.push(r.ms.forward);
      phases[1]!.push(r.ms.backward);
      phases[2]!.push(r.ms.gradCheck);
      phases[3]!.push(r.ms.optimizer);
    }
    opts.onStep?.(i, ms, timed);
  }

  const acct = accounting(cfg, seqLen);
  const tokensPerSec = summarize(stepMs.map((ms) => (tokensPerStep * 1000) / ms));
  const achievedGflops = (acct.train_flops_per_token * tokensPerSec.median) / 1e9;
  const cpuMedian = summarize(cpuSecondsPerStep).median;
  const onCpuGflops =
    cpuMedian > 0 ? (acct.train_flops_per_token * tokensPerStep) / (cpuMedian / threads) / 1e9 : null;
  let peak: number | null = null;
  if (opts.peakGflops !== undefined) peak = opts.peakGflops;
  else peak = (opts.measurePeak ?? nativePeakGflops)(threads);
  return {
    config: configName,
    precision,
    kernels: K.describe(),
    threads,
    batch,
    seqLen,
    tokensPerStep,
    steps,
    warmup,
    params: acct.total_params,
    activeParams: acct.active_params,
    trainFlopsPerToken: acct.train_flops_per_token,
    stepMs,
    tokensPerSec,
    forwardMs: summarize(phases[0]!).median,
    backwardMs: summarize(phases[1]!).median,
    gradCheckMs: summarize(phases[2]!).median,
    optimizerMs: summarize(phases[3]!).median,
    achievedGflops,
    peakGflops: peak,
    ...mfuOf(achievedGflops, peak),
    onCpuGflops,
    onCpuMfu:
      onCpuGflops !== null && peak !== null && peak > 0 && onCpuGflops <= peak ? onCpuGflops / peak : null,
    lossFirst,
    lossLast,
  };
}

/** MFU, refused (with the reason) when the achieved rate exceeds the peak: a peak that low was mismeasured. */
export function mfuOf(
  achievedGflops: number,
  peakGflops: number | null,
): { mfu: number | null; mfuRefused?: string } {
  if (peakGflops === null || !(peakGflops > 0)) return { mfu: null };
  if (achievedGflops > peakGflops) {
    return {
      mfu: null,
      mfuRefused: `achieved ${achievedGflops.toFixed(1)} GFLOP/s exceeds the measured peak ${peakGflops.toFixed(1)}: the peak measurement is wrong`,
    };
  }
  return { mfu: achievedGflops / peakGflops };
}

/** A few lines for the terminal. */
export function formatTrainBench(r: TrainBenchResult): string {
  const t = r.tokensPerSec;
  const mfu =
    r.mfu !== null && r.peakGflops !== null
      ? `MFU ${percent(r.mfu)} (${r.achievedGflops.toFixed(1)} of ${r.peakGflops.toFixed(1)} GFLOP/s peak)`
      : `${r.achievedGflops.toFixed(1)} GFLOP/s (${r.mfuRefused ?? 'no peak measured'}; MFU unknown)`;
  return [
    `${r.config}: ${(r.params / 1e6).toFixed(2)}M params (${(r.activeParams / 1e6).toFixed(2)}M active), batch ${r.batch} × seq ${r.seqLen} = ${r.tokensPerStep} tokens/step, ${(r.trainFlopsPerToken / 1e6).toFixed(1)} MFLOP/token`,
    `${r.steps} timed steps after ${r.warmup} warm-up, ${r.threads} thread(s), kernels: ${r.kernels}`,
    `tokens/s median ${t.median.toFixed(0)} (min ${t.min.toFixed(0)}, max ${t.max.toFixed(0)}, IQR/median ${percent(t.iqrRel)}, range/median ${percent(t.rangeRel)})`,
    `step median ${((r.tokensPerStep * 1000) / t.median).toFixed(1)} ms: forward ${r.forwardMs.toFixed(1)}, backward ${r.backwardMs.toFixed(1)}, grad check ${r.gradCheckMs.toFixed(1)}, Adafactor ${r.optimizerMs.toFixed(1)}`,
    mfu,
    ...(r.onCpuGflops !== null
      ? [
          `on-CPU rate ${r.onCpuGflops.toFixed(1)} GFLOP/s per core of CPU time` +
            (r.onCpuMfu !== null
              ? ` (MFU on CPU time ${percent(r.onCpuMfu)}; other processes' turns excluded)`
              : ''),
        ]
      : []),
    `loss ${r.lossFirst.toFixed(3)} → ${r.lossLast.toFixed(3)}`,
  ].join('\n');
}
