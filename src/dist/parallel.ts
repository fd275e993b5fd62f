/**
 * Data- and expert-parallel training over a communicator: the TrainParallel hooks of one rank.
 *
 * Data parallel: every rank holds all the weights and trains on its rows of each global batch; the
 * gradients are all-reduced (summed) in buckets, one per layer, posted as backward completes each layer
 * so the reduction of layer l overlaps the backward of the layers below it.
 *
 * Expert parallel (GShard): rank q holds experts [q·E/R, (q+1)·E/R) of every MoE layer and only
 * those; tokens travel to their experts by alltoallv (CommExpertExchange). The batch is still split by
 * rows, so the dense weights (everything but the experts) are all-reduced over all ranks, while an
 * expert's gradient is complete on its one holder already (it saw every rank's tokens). Checkpoints
 * keep the one-process format: rank 0 gathers the experts (and their optimizer state) to write them,
 * and every rank takes its slice when loading, so a run can resume on any number of ranks.
 */
import { kernels } from '../backend/index.js';
import type { GlamConfig } from '../model/config.js';
import type { GlamModel, LossParts, ModelShard } from '../model/glam.js';
import type { ExpertRange, Params } from '../model/params.js';
import type { Grads, ParamLayout, Weights } from '../model/weights.js';
import type { Optimizer } from '../optim/optimizer.js';
import { Tensor } from '../tensor/tensor.js';
import {
  type LoadedTrainingCheckpoint,
  loadTrainingCheckpoint,
  type SaveTrainingCheckpoint,
  saveTrainingCheckpoint,
  stepDir,
} from '../train/checkpoints.js';
import type { TrainParallel } from '../train/parallel.js';
import type { Communicator } from './comm.js';
import { CommExpertExchange } from './expert-exchange.js';

export type ParallelMode = 'data' | 'expert';

/** A [start, end) range of floats of the parameter buffer. */
type Range = [number, number];

export interface CommTimes {
  /** Wall ms the step waited for gradient reductions after its last backward (the exposed part). */
  waitMs: number;
  /** Collectives' own wall ms on the communication thread (hidden behind compute or not). */
  commMs: number;
}

/** The model shard of this rank (what GlamModel needs) for a parallel mode. */
export function modelShard(comm: Communicator, config: GlamConfig, mode: ParallelMode): ModelShard {
  if (mode === 'data') return { ranks: comm.size };
  if (config.n_experts === 0) throw new Error('--parallel expert needs a model with experts (n_experts > 0)');
  const probe = new CommExpertExchange(comm, config.n_experts); // validates E % R
  return {
    ranks: comm.size,
    experts: {
      first: probe.first,
      count: probe.count,
      exchange: () => new CommExpertExchange(comm, config.n_experts),
    },
  };
}

/** 32-bit FNV-1a over the float words of some ranges of a buffer. */
function checksum(data: Float32Array, ranges: readonly Range[]): number {
  const words = new Uint32Array(data.buffer, data.byteOffset, data.length);
  let h = 0x811c9dc5;
  for (const [a, b] of ranges) {
    for (let i = a; i < b; i++) h = Math.imul(h ^ words[i]!, 0x01000193) >>> 0;
  }
  return h;
}

/** Merges adjacent ranges. */
function merge(ranges: Range[]): Range[] {
  const out: Range[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last !== undefined && last[1] === r[0]) last[1] = r[1];
    else out.push([r[0], r[1]]);
  }
  return out;
}

export class RankParallel implements TrainParallel {
  readonly rank: number;
  readonly size: number;
  readonly expertRanks: number;
  readonly description: string;
  /** Replicated (all-reduced) parameter ranges by layer; -1: the rest (embedding), reduced last. */
  private readonly buckets = new Map<number, Range[]>();
  private readonly replicated: Range[];
  private readonly experts: Range[];
  private pending: Promise<void>[] = [];
  private posted = new Set<number>();
  private readonly times: CommTimes = { waitMs: 0, commMs: 0 };

  private readonly layout: ParamLayout;
  private readonly expertRange: ExpertRange | undefined;

  /** Busy seconds of the communication thread when this step's first gradient bucket was posted. */
  private busyMark: number | null = null;

  /**
   * The hooks of this rank for `model`, built with modelShard(comm, config, mode). `overlap` false
   * posts every gradient bucket after backward instead of as each layer completes (for measuring).
   */
  constructor(
    private readonly comm: Communicator,
    private readonly model: GlamModel,
    readonly mode: ParallelMode,
    private readonly overlap = true,
  ) {
    this.layout = model.layout;
    this.expertRange = model.shard.experts;
    const layout = this.layout;
    this.rank = comm.rank;
    this.size = comm.size;
    this.expertRanks = mode === 'expert' ? comm.size : 1;
    this.description = `${mode} parallel over ${comm.size} ranks (${comm.description.replace(/^MPI rank \d+ of \d+ /, '')})`;
    const replicated: Range[] = [];
    const experts: Range[] = [];
    for (const s of layout.slots) {
      const range: Range = [s.offset, s.offset + s.size];
      if (mode === 'expert' && s.spec.kind === 'expert') {
        experts.push(range);
        continue;
      }
      replicated.push(range);
      // final_norm's gradient is complete before the last layer's: it rides in that layer's bucket.
      const m = /^layers\.(\d+)\./.exec(s.spec.name);
      const layer = m !== null ? Number(m[1]) : s.spec.name === 'final_norm.scale' ? lastLayer(layout) : -1;
      const list = this.buckets.get(layer) ?? [];
      list.push(range);
      this.buckets.set(layer, list);
    }
    for (const [k, v] of this.buckets) this.buckets.set(k, merge(v));
    this.replicated = merge(replicated);
    this.experts = merge(experts);
  }

  /** Communication times summed since the last call (then reset). */
  takeTimes(): CommTimes {
    const t = { ...this.times };
    this.times.waitMs = 0;
    this.times.commMs = 0;
    return t;
  }

  backwardScales(parts: LossParts, micros: number): { scale: number; auxScale: number } {
    const n = Float64Array.of(parts.tokens);
    this.comm.allreduceSync(n);
    const total = n[0]!;
    return { scale: total > 0 ? parts.tokens / (total * micros) : 0, auxScale: 1 / (this.size * micros) };
  }

  private post(layer: number, grads: Grads): void {
    if (this.posted.has(layer)) return;
    this.posted.add(layer);
    this.busyMark ??= this.comm.stats().busySeconds;
    for (const [a, b] of this.buckets.get(layer) ?? []) {
      const p = this.comm.allreduce(grads.data.subarray(a, b));
      // Failures surface through flushSync; this only keeps the promise from going unhandled.
      p.catch(() => {});
      this.pending.push(p);
    }
  }

  onLayerGrads(layer: number, grads: Grads): void {
    if (this.overlap) this.post(layer, grads);
  }

  finishGradients(grads: Grads): void {
    for (const layer of this.buckets.keys()) this.post(layer, grads);
    const t0 = performance.now();
    this.comm.flushSync();
    // Exposed: what the step waited after its backward; busy: the buckets' time on the MPI thread.
    this.times.waitMs += performance.now() - t0;
    this.times.commMs += (this.comm.stats().busySeconds - (this.busyMark ?? 0)) * 1000;
    this.busyMark = null;
    this.pending = [];
    this.posted.clear();
  }

  globalSumSquares(grads: Grads): number {
    const K = kernels();
    const sum = (ranges: Range[]): number =>
      ranges.reduce((s, [a, b]) => s + K.sumSquares(grads.data.subarray(a, b)), 0);
    // Replicated gradients are equal on every rank; each rank's experts are its own.
    const parts = Float64Array.of(sum(this.replicated), sum(this.experts));
    this.comm.allreduceSync(parts);
    return parts[0]! / this.size + parts[1]!;
  }

  reduceParts(parts: readonly LossParts[]): LossParts[] {
    // Per micro-batch: lm·tokens, z·tokens, tokens, then per MoE layer aux, dropped, dropped fraction,
    // router entropy and the load per expert. Every rank has as many rows, so per-rank means are exact.
    const layers = parts[0]?.moe ?? [];
    const E = layers[0]?.load.length ?? 0;
    const per = 3 + layers.length * (4 + E);
    const buf = new Float64Array(per * parts.length);
    parts.forEach((p, i) => {
      let o = i * per;
      buf[o++] = p.lm * p.tokens;
      buf[o++] = p.z * p.tokens;
      buf[o++] = p.tokens;
      for (const m of p.moe) {
        buf[o++] = m.aux;
        buf[o++] = m.dropped;
        buf[o++] = m.droppedFraction;
        buf[o++] = m.routerEntropy;
        for (let e = 0; e < E; e++) buf[o++] = m.load[e]!;
      }
    });
    this.comm.allreduceSync(buf);
    const R = this.size;
    return parts.map((p, i) => {
      let o = i * per;
      const lmSum = buf[o++]!;
      const zSum = buf[o++]!;
      const tokens = buf[o++]!;
      const moe = p.moe.map((m) => {
        const aux = buf[o++]! / R;
        const dropped = buf[o++]!;
        const droppedFraction = buf[o++]! / R;
        const routerEntropy = buf[o++]! / R;
        const load = Array.from(buf.subarray(o, o + E));
        o += E;
        return { ...m, aux, dropped, droppedFraction, routerEntropy, load };
      });
      const lm = tokens > 0 ? lmSum / tokens : 0;
      const z = tokens > 0 ? zSum / tokens : 0;
      const aux = moe.reduce((s, m) => s + m.aux, 0);
      const dropped = moe.reduce((s, m) => s + m.dropped, 0);
      const cfg = this.model.config;
      const total = lm + cfg.z_loss_weight * z + cfg.aux_loss_weight * aux;
      return { ...p, lm, z, aux, dropped, tokens, moe, total };
    });
  }

  anyRank(flags: readonly boolean[]): boolean[] {
    const buf = Int32Array.from(flags, (f) => (f ? 1 : 0));
    this.comm.allreduceSync(buf);
    return Array.from(buf, (v) => v > 0);
  }

  checkReplicas(weights: Weights, step: number): void {
    const h = checksum(weights.data, this.replicated);
    const buf = Float64Array.of(h, step);
    this.comm.allreduceSync(buf);
    if (buf[0] !== h * this.size || buf[1] !== step * this.size) {
      throw new Error(
        `step ${step}: the replicated weights differ between ranks (checksum ${h.toString(16)} on rank ${this.rank}); ` +
          'the run cannot go on consistently',
      );
    }
  }

  saveCheckpoint(c: SaveTrainingCheckpoint): string {
    let write = c;
    if (this.mode === 'expert') {
      const params = this.gatherExperts(c.params);
      const state = this.gatherExperts(c.optimizer.stateTensors());
      const opt = c.optimizer;
      const full: Optimizer = {
        kind: opt.kind,
        stepCount: opt.stepCount,
        step: () => {
          throw new Error('a gathered optimizer state only saves');
        },
        stateTensors: () => state,
        loadStateTensors: () => {
          throw new Error('a gathered optimizer state only saves');
        },
      };
      write = { ...c, params, optimizer: full };
    }
    let dir = stepDir(c.outDir, c.state.step);
    const ok = Int32Array.of(1);
    if (this.rank === 0) {
      try {
        dir = saveTrainingCheckpoint(write);
      } catch (err) {
        ok[0] = -this.size; // tell the others before failing
        this.comm.allreduceSync(ok);
        throw err;
      }
    }
    // Nobody reads the checkpoint (a roll-back) before rank 0 has written it.
    this.comm.allreduceSync(ok);
    if (ok[0]! <= 0) throw new Error(`rank 0 could not write the checkpoint ${dir}`);
    return dir;
  }

  loadCheckpoint(dir: string, weights: Weights, optimizer: Optimizer): LoadedTrainingCheckpoint {
    if (this.mode === 'data') {
      const ck = loadTrainingCheckpoint(dir, optimizer);
      weights.copyFrom(ck.weights, dir);
      return ck;
    }
    // The checkpoint holds every expert: take this rank's slice of the expert tensors and their state.
    const slice = (tensors: ReadonlyMap<string, Tensor>): Map<string, Tensor> =>
      new Map([...tensors].map(([name, t]) => [name, this.isExpert(name) ? this.sliceExperts(t) : t]));
    const proxy: Optimizer = {
      kind: optimizer.kind,
      get stepCount() {
        return optimizer.stepCount;
      },
      set stepCount(v: number) {
        optimizer.stepCount = v;
      },
      step: () => {
        throw new Error('a slicing optimizer only loads');
      },
      stateTensors: () => optimizer.stateTensors(),
      loadStateTensors: (saved) => optimizer.loadStateTensors(slice(saved)),
    };
    const ck = loadTrainingCheckpoint(dir, proxy);
    weights.copyFrom(slice(ck.weights), dir);
    return ck;
  }

  /** Whether a weight or optimizer-state name belongs to an expert tensor. */
  private isExpert(name: string): boolean {
    for (const s of this.layout.slots) {
      if (s.spec.kind === 'expert' && (name === s.spec.name || name.startsWith(`${s.spec.name}.`)))
        return true;
    }
    return false;
  }

  private sliceExperts(t: Tensor): Tensor {
    const { first, count } = this.expertRange!;
    const inner = t.shape.slice(1).reduce((a, b) => a * b, 1);
    return new Tensor(t.data.slice(first * inner, (first + count) * inner), [count, ...t.shape.slice(1)]);
  }

  /** Rank 0 gets every expert tensor whole (slices concatenated in rank order); other tensors as they are. */
  private gatherExperts(tensors: Params): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const counts = new Int32Array(this.size);
    for (const [name, t] of tensors) {
      if (!this.isExpert(name)) {
        out.set(name, t);
        continue;
      }
      counts[0] = t.data.length;
      const got = this.comm.alltoallvSync(t.data, counts).data;
      if (this.rank === 0)
        out.set(name, new Tensor(got.slice(), [t.shape[0]! * this.size, ...t.shape.slice(1)]));
    }
    return out;
  }
}

function lastLayer(layout: ParamLayout): number {
  let last = -1;
  for (const s of layout.slots) {
    const m = /^layers\.(\d+)\./.exec(s.spec.name);
    if (m !== null) last = Math.max(last, Number(m[1]));
  }
  return last;
}
