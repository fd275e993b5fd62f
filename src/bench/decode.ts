/**
 * `glam bench decode`: decode throughput of the inference engine against the memory-bandwidth bound.
 *
 * A round runs `batch` greedy requests of `promptLen` random prompt tokens and `newTokens` new tokens
 * through the engine (continuous batching, KV cache, expert-grouped MoE steps). Only the decode steps
 * are timed (every sequence past its prompt, one token each per step). For each step it counts the
 * bytes of weights the step reads: every weight that is not an expert once (the tied embedding whole,
 * for the logits), and in each MoE layer the experts that step's tokens were routed to, each once
 * however many tokens chose it. Bytes per generated token = bytes per step / batch.
 *
 * The bound on decode is the time the fastest plain loop takes to read those bytes. Right after each
 * timed step the probe loop (all threads, each an equal contiguous share) reads exactly the weights that
 * step read, where they lie in memory: every non-expert weight and the routed experts' slices. The
 * fraction of the bound is the probes' time over the steps' time. Each step is paired with its own probe
 * because this machine's memory bandwidth moves between levels (about 30 and 60 GB/s on two cores) for a
 * second or so at a time, and because on a virtual machine one allocation can read 1.3x slower than
 * another in the same second: a probe of some other buffer, or at another moment, says little about the
 * memory a step reads. Such a probe is still run before the first round, between rounds and after the
 * last (a buffer of its own, far larger than the caches), and the fractions against it are reported
 * beside: the median tokens/s over the bound at the run's best pass, and each round against the better
 * of the probes just before and after it. A step whose weights fit in the caches leaves them there for
 * its probe: for such small models the bound is the caches', not the memory's.
 * Key/value cache reads are reported beside (they grow with the context; with short prompts they are
 * small next to the weights).
 */
import { freemem } from 'node:os';
import { kernels, loadNative, type NativeKernels, toBf16 } from '../backend/index.js';
import { InferenceEngine } from '../infer/engine.js';
import type { WeightSource } from '../infer/forward.js';
import { DEFAULT_BLOCK_SIZE } from '../infer/kv-cache.js';
import { BF16_KINDS } from '../model/checkpoint.js';
import type { GlamConfig } from '../model/config.js';
import { initStd } from '../model/init.js';
import { paramSpecs } from '../model/params.js';
import { type AnyTensor, Bf16Tensor } from '../tensor/bf16.js';
import { Tensor } from '../tensor/tensor.js';
import { type Summary, summarize } from './stats.js';

export type DecodeDtype = 'f32' | 'bf16';

export interface DecodeBenchOptions {
  config: GlamConfig;
  /** Weights of a checkpoint; random weights of the config when absent. */
  weights?: WeightSource;
  dtype: DecodeDtype;
  batch: number;
  promptLen: number;
  newTokens: number;
  rounds: number;
  /**
   * Buffer of the bandwidth probe (default 1024 MiB), its duration before the first round and after the
   * last (default 2 s) and between rounds (default 0.5 s).
   */
  bandwidthMiB?: number;
  bandwidthSeconds?: number;
  betweenRoundsSeconds?: number;
  log?: (line: string) => void;
}

export interface DecodeRound {
  tokensPerSecond: number;
  seconds: number;
  steps: number;
  weightBytesPerToken: number;
  /** Of which experts' weights. */
  expertBytesPerToken: number;
  kvBytesPerToken: number;
  /** Mean over MoE layers and steps of the experts a step reads. */
  expertsPerLayer: number;
  /**
   * CPU time of this process during the timed steps over wall time × threads: below 1 when the
   * machine is shared and the kernel threads wait for a core (or the main thread works alone).
   */
  cpuShare: number;
  /** Best pass of the own-buffer probes just before and after this round, GB/s. */
  bandwidthGBs: number;
  /** tokens/s over the bound at that bandwidth. */
  fractionOfBound: number;
  /** The rate at which the probe loop read each step's weights right after the step, GB/s. */
  weightsBandwidthGBs: number;
  /** The probes' time over the steps' time: the fraction of the bound. */
  fractionOfWeightsBound: number;
}

export interface DecodeBenchResult {
  dtype: DecodeDtype;
  batch: number;
  promptLen: number;
  newTokens: number;
  threads: number;
  kernels: string;
  parameters: number;
  weightBytes: number;
  rounds: DecodeRound[];
  tokensPerSecond: Summary;
  weightBytesPerToken: number;
  kvBytesPerToken: number;
  expertsPerLayer: number;
  /** Best pass of all the run's own-buffer bandwidth probes, GB/s, and the highest of their medians. */
  bandwidthGBs: number;
  bandwidthMedianGBs: number;
  /** bandwidth / weight bytes per token. */
  boundTokensPerSecond: number;
  /** median tokens/s over the bound. */
  fractionOfBound: number;
  /** The rounds' fractions, each against the probes around it. */
  roundFractions: Summary;
  /** Over all rounds: the steps' weights read by the probe right after each step, GB/s. */
  weightsBandwidthGBs: number;
  /** Tokens over the probes' time. */
  weightsBoundTokensPerSecond: number;
  /** The probes' time over the steps' time, all rounds. */
  fractionOfWeightsBound: number;
  /** The rounds' fractions of that bound. */
  roundWeightsFractions: Summary;
  /** Median of the rounds' CPU shares. */
  cpuShare: number;
}

/** Bytes of one stored weight. */
function bytesOf(t: AnyTensor): number {
  return t.data.byteLength;
}

function isExpertWeight(name: string): boolean {
  return /^layers\.\d+\.moe\.(wi|wi_0|wi_1|wo)$/.test(name);
}

/**
 * Random weights of a config, filled fast (uniform with each tensor's initial standard deviation: no
 * model quality is needed, only realistic routing), float32 or stored as a bf16 checkpoint stores them
 * (embedding, projections and experts in bf16; norms, relative bias and router in float32).
 */
export function randomWeights(cfg: GlamConfig, dtype: DecodeDtype, seed = 1): Map<string, AnyTensor> {
  const out = new Map<string, AnyTensor>();
  let s = (seed * 2654435761) >>> 0 || 1;
  const chunk = new Float32Array(1 << 16);
  for (const spec of paramSpecs(cfg)) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const std = spec.kind === 'norm' ? 0 : spec.kind === 'rel_bias' ? 0.1 : initStd(cfg, spec);
    const base = spec.kind === 'norm' ? 1 : 0;
    const a = std * Math.sqrt(3);
    const bf16 = dtype === 'bf16' && BF16_KINDS.has(spec.kind);
    const f32 = bf16 ? undefined : Tensor.zeros(spec.shape);
    const half = bf16 ? new Uint16Array(n) : undefined;
    for (let o = 0; o < n; o += chunk.length) {
      const m = Math.min(chunk.length, n - o);
      const dst = f32 !== undefined ? f32.data.subarray(o, o + m) : chunk.subarray(0, m);
      for (let i = 0; i < m; i++) {
        s ^= s << 13;
        s ^= s >>> 17;
        s ^= s << 5;
        dst[i] = base + a * ((s >>> 0) / 2147483648 - 1);
      }
      if (half !== undefined) toBf16(dst, half.subarray(o, o + m));
    }
    out.set(spec.name, half !== undefined ? new Bf16Tensor(half, spec.shape) : f32!);
  }
  return out;
}

/** Weights converted to the benchmark's dtype (matrices to bf16 for 'bf16'). */
function asDtype(cfg: GlamConfig, w: WeightSource, dtype: DecodeDtype): WeightSource {
  if (dtype === 'f32') return w;
  const out = new Map<string, AnyTensor>();
  for (const spec of paramSpecs(cfg)) {
    const t = w.get(spec.name)!;
    out.set(spec.name, t instanceof Tensor && BF16_KINDS.has(spec.kind) ? Bf16Tensor.fromTensor(t) : t);
  }
  return out;
}

/** Refuses a model that would not fit in the memory free now (a shared machine must not swap or OOM). */
export function checkMemory(cfg: GlamConfig, dtype: DecodeDtype): void {
  let bytes = 0;
  for (const s of paramSpecs(cfg)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    bytes += n * (dtype === 'bf16' && BF16_KINDS.has(s.kind) ? 2 : 4);
  }
  const free = freemem();
  if (bytes > 0.85 * free) {
    throw new Error(
      `bench decode: the weights need ${(bytes / 2 ** 30).toFixed(1)} GiB and ${(free / 2 ** 30).toFixed(1)} GiB of memory is free; ` +
        'free memory (another large model running?) or pick a smaller config',
    );
  }
}

function bandwidth(
  native: NativeKernels | undefined,
  threads: number,
  mib: number,
  seconds: number,
): { best: number; median: number } {
  if (native === undefined) return { best: Number.NaN, median: Number.NaN };
  const r = native.readBandwidth(threads, mib, seconds);
  return { best: r.gbps, median: r.median };
}

/** Bytes of keys and values one cached token holds (float32, every layer). */
export function kvBytesPerToken(cfg: GlamConfig): number {
  return 2 * cfg.n_layers * cfg.n_heads * cfg.d_head * 4;
}

/**
 * The engine a decode benchmark runs: `batch` sequences of up to `tokens` tokens each fit in its cache,
 * and all of them decode in one step.
 */
export function decodeBenchEngine(
  cfg: GlamConfig,
  weights: WeightSource,
  batch: number,
  tokens: number,
): InferenceEngine {
  const blocks = Math.ceil(tokens / DEFAULT_BLOCK_SIZE) + 1;
  return new InferenceEngine(cfg, weights, {
    kvCacheBytes: batch * blocks * DEFAULT_BLOCK_SIZE * kvBytesPerToken(cfg),
    maxSequences: batch,
    maxStepTokens: Math.max(batch, 256),
    prefillChunk: 256,
  });
}

/** Sequence b's prompt in round `round` of a decode benchmark: `length` seeded pseudo-random token ids. */
export function decodeBenchPrompt(cfg: GlamConfig, round: number, b: number, length: number): number[] {
  let x = (round * 7919 + b * 104729 + 1) >>> 0;
  return Array.from({ length }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % cfg.vocab_size;
  });
}

export function benchDecode(o: DecodeBenchOptions): DecodeBenchResult {
  const cfg = o.config;
  for (const [k, v] of Object.entries({
    batch: o.batch,
    promptLen: o.promptLen,
    newTokens: o.newTokens,
    rounds: o.rounds,
  })) {
    if (!(Number.isInteger(v) && v >= 1))
      throw new Error(`bench decode: ${k} must be an integer >= 1, got ${v}`);
  }
  if (o.newTokens < 2)
    throw new Error('bench decode: --new must be at least 2 (one token comes from the prefill)');
  if (o.promptLen + o.newTokens > cfg.max_seq_len) {
    throw new Error(
      `bench decode: prompt ${o.promptLen} + new ${o.newTokens} tokens exceed the model's context of ${cfg.max_seq_len}`,
    );
  }
  const log = o.log ?? (() => {});
  let weights: WeightSource;
  if (o.weights !== undefined) weights = asDtype(cfg, o.weights, o.dtype);
  else {
    checkMemory(cfg, o.dtype);
    log(`building random ${o.dtype} weights for the config...`);
    weights = randomWeights(cfg, o.dtype);
  }
  const specs = paramSpecs(cfg);
  let fixedBytes = 0;
  let weightBytes = 0;
  let parameters = 0;
  const expertBytes = new Map<number, number>();
  // What a step reads, for the probe after it: every non-expert weight, and per MoE layer each expert's
  // slice of each expert weight (experts are the leading dimension).
  const fixedViews: ArrayBufferView[] = [];
  const expertSlices = new Map<number, ArrayBufferView[][]>();
  for (const s of specs) {
    const t = weights.get(s.name)!;
    weightBytes += bytesOf(t);
    parameters += t.data.length;
    if (isExpertWeight(s.name)) {
      const layer = Number(s.name.split('.')[1]);
      expertBytes.set(layer, (expertBytes.get(layer) ?? 0) + bytesOf(t) / cfg.n_experts);
      if (!expertSlices.has(layer))
        expertSlices.set(
          layer,
          Array.from({ length: cfg.n_experts }, () => []),
        );
      const per = t.data.length / cfg.n_experts;
      expertSlices.get(layer)!.forEach((views, e) => {
        views.push(t.data.subarray(e * per, (e + 1) * per));
      });
    } else {
      fixedBytes += bytesOf(t);
      fixedViews.push(t.data);
    }
  }
  const K = kernels();
  const threads = K.getThreads();
  const native = loadNative().ok && K.name === 'native' ? (K as NativeKernels) : undefined;
  const mib = o.bandwidthMiB ?? 1024;
  const secs = o.bandwidthSeconds ?? 2;
  const betweenSecs = o.betweenRoundsSeconds ?? 0.5;
  const probes = [bandwidth(native, threads, mib, secs)];
  const kvPerToken = kvBytesPerToken(cfg);
  const rounds: DecodeRound[] = [];
  for (let round = 0; round < o.rounds; round++) {
    const engine = decodeBenchEngine(cfg, weights, o.batch, o.promptLen + o.newTokens);
    // Requests that have their first token (their prompt is read), and tokens generated while timing.
    let started = 0;
    let decoding = false;
    let tokens = 0;
    for (let b = 0; b < o.batch; b++) {
      const prompt = decodeBenchPrompt(cfg, round, b, o.promptLen);
      let first = true;
      engine.submit({ prompt, maxTokens: o.newTokens, temperature: 0 }, (e) => {
        if (e.type !== 'token') return;
        if (first) {
          first = false;
          started++;
        } else if (decoding) tokens++;
      });
    }
    const moeLayers = engine.model.counters;
    const before = moeLayers.map((c) => Float64Array.from(c.load));
    let seconds = 0;
    let cpuSeconds = 0;
    let probeSeconds = 0;
    let steps = 0;
    let bytes = 0;
    let roundExpertBytes = 0;
    let kvBytes = 0;
    let experts = 0;
    let context = o.promptLen;
    while (engine.pending > 0) {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      engine.step();
      const dt = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      if (!decoding) {
        if (started >= o.batch) {
          decoding = true;
          moeLayers.forEach((c, i) => {
            before[i]!.set(c.load);
          });
        }
        continue;
      }
      seconds += dt;
      cpuSeconds += (cpu.user + cpu.system) / 1e6;
      steps++;
      context++;
      kvBytes += o.batch * context * kvPerToken;
      const views = [...fixedViews];
      let stepBytes = fixedBytes;
      moeLayers.forEach((c, i) => {
        for (let e = 0; e < c.load.length; e++) {
          if (c.load[e]! > before[i]![e]!) {
            experts++;
            stepBytes += expertBytes.get(c.layer)!;
            roundExpertBytes += expertBytes.get(c.layer)!;
            views.push(...expertSlices.get(c.layer)![e]!);
          }
        }
        before[i]!.set(c.load);
      });
      bytes += stepBytes;
      if (native !== undefined) {
        const p = native.readBandwidthOf(threads, views, 1);
        if (p.bytes !== stepBytes)
          throw new Error(`bench decode: the probe read ${p.bytes} bytes where the step read ${stepBytes}`);
        probeSeconds += p.bytes / (p.gbps * 1e9);
      }
    }
    probes.push(bandwidth(native, threads, mib, round === o.rounds - 1 ? secs : betweenSecs));
    const roundBandwidth = Math.max(probes[round]!.best, probes[round + 1]!.best);
    const boundSeconds = native === undefined ? Number.NaN : probeSeconds;
    const r: DecodeRound = {
      tokensPerSecond: tokens / seconds,
      seconds,
      steps,
      weightBytesPerToken: bytes / tokens,
      expertBytesPerToken: roundExpertBytes / tokens,
      kvBytesPerToken: kvBytes / tokens,
      expertsPerLayer: moeLayers.length === 0 ? 0 : experts / (steps * moeLayers.length),
      cpuShare: cpuSeconds / (seconds * threads),
      bandwidthGBs: roundBandwidth,
      fractionOfBound: bytes / seconds / (roundBandwidth * 1e9),
      weightsBandwidthGBs: bytes / boundSeconds / 1e9,
      fractionOfWeightsBound: boundSeconds / seconds,
    };
    rounds.push(r);
    log(
      `round ${round + 1}/${o.rounds}: ${r.tokensPerSecond.toFixed(1)} tokens/s (${steps} steps of ${o.batch}, ${(seconds * 1000).toFixed(0)} ms), ` +
        `${(r.weightBytesPerToken / 2 ** 20).toFixed(1)} MiB of weights per token, CPU share ${(100 * r.cpuShare).toFixed(0)}%, ` +
        `${(100 * r.fractionOfWeightsBound).toFixed(1)}% of the bound (the steps' weights read at ${r.weightsBandwidthGBs.toFixed(1)} GB/s by the probes after them), ` +
        `${(100 * r.fractionOfBound).toFixed(1)}% at the own buffer's ${r.bandwidthGBs.toFixed(1)} GB/s (the probes around the round)`,
    );
  }
  const tps = summarize(rounds.map((r) => r.tokensPerSecond));
  const bytesPerToken = summarize(rounds.map((r) => r.weightBytesPerToken)).median;
  const bw = Math.max(...probes.map((p) => p.best));
  const bound = (bw * 1e9) / bytesPerToken;
  const sum = (f: (r: DecodeRound) => number) => rounds.reduce((a, r) => a + f(r), 0);
  const probeSeconds = sum((r) => r.seconds * r.fractionOfWeightsBound);
  return {
    dtype: o.dtype,
    batch: o.batch,
    promptLen: o.promptLen,
    newTokens: o.newTokens,
    threads,
    kernels: K.describe(),
    parameters,
    weightBytes,
    rounds,
    tokensPerSecond: tps,
    weightBytesPerToken: bytesPerToken,
    kvBytesPerToken: summarize(rounds.map((r) => r.kvBytesPerToken)).median,
    expertsPerLayer: summarize(rounds.map((r) => r.expertsPerLayer)).median,
    bandwidthGBs: bw,
    bandwidthMedianGBs: Math.max(...probes.map((p) => p.median)),
    boundTokensPerSecond: bound,
    fractionOfBound: tps.median / bound,
    roundFractions: summarize(rounds.map((r) => r.fractionOfBound)),
    weightsBandwidthGBs:
      sum((r) => r.weightBytesPerToken * r.tokensPerSecond * r.seconds) / probeSeconds / 1e9,
    weightsBoundTokensPerSecond: sum((r) => r.tokensPerSecond * r.seconds) / probeSeconds,
    fractionOfWeightsBound: probeSeconds / sum((r) => r.seconds),
    roundWeightsFractions: summarize(rounds.map((r) => r.fractionOfWeightsBound)),
    cpuShare: summarize(rounds.map((r) => r.cpuShare)).median,
  };
}

export function formatDecodeBench(r: DecodeBenchResult, label: string): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const t = r.tokensPerSecond;
  const f = r.roundFractions;
  const w = r.roundWeightsFractions;
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return [
    `decode ${label}, ${r.dtype}, batch ${r.batch}, prompt ${r.promptLen}, ${r.newTokens} new tokens; ${r.kernels}`,
    `  weights: ${(r.parameters / 1e9).toFixed(3)}B parameters, ${(r.weightBytes / 2 ** 30).toFixed(2)} GiB`,
    `  tokens/s (aggregate): ${t.median.toFixed(1)} [${t.min.toFixed(1)}-${t.max.toFixed(1)}] over ${t.n} rounds`,
    `  weights read per generated token: ${mib(r.weightBytesPerToken)} (${r.expertsPerLayer.toFixed(1)} experts per MoE layer per step); KV cache read: ${mib(r.kvBytesPerToken)}`,
    `  the probe after each step read that step's weights at ${r.weightsBandwidthGBs.toFixed(1)} GB/s: bound ${r.weightsBoundTokensPerSecond.toFixed(1)} tokens/s; measured ${pct(r.fractionOfWeightsBound)} of it`,
    `    by round: ${pct(w.median)} [${pct(w.min)}-${pct(w.max)}] of the bound (median [min-max])`,
    `  a buffer of the probe's own reads at ${r.bandwidthGBs.toFixed(1)} GB/s (best pass; median ${r.bandwidthMedianGBs.toFixed(1)}): bound ${r.boundTokensPerSecond.toFixed(1)} tokens/s; measured ${pct(r.fractionOfBound)} of it`,
    `    each round against the probes just before and after it: ${pct(f.median)} [${pct(f.min)}-${pct(f.max)}] of the bound (median [min-max])`,
    `  CPU share while timed: ${(100 * r.cpuShare).toFixed(0)}% of ${r.threads} threads (median; below 100% the machine was shared)`,
  ].join('\n');
}
