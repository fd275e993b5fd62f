/**
 * Communication benchmark (`mpirun -np R glam bench comm`): time per collective over message sizes,
 * through the same communicator training uses (so the JS-to-MPI-thread hand-off is included), and an
 * alpha-beta fit t(n) = alpha + beta·n per operation for the cluster projection.
 */
import { type Summary, summarize } from '../bench/stats.js';
import type { Communicator } from './comm.js';

export type CommOp = 'allreduce' | 'allreduceSync' | 'alltoallv' | 'alltoallvSync';
export const COMM_OPS: readonly CommOp[] = ['allreduce', 'allreduceSync', 'alltoallv', 'alltoallvSync'];

export interface CommBenchOptions {
  ops: readonly CommOp[];
  /** Message sizes in bytes: the buffer allreduced, or the bytes each rank sends in an alltoallv. */
  sizes: readonly number[];
  /** Timed samples per (op, size). */
  repeat: number;
}

export interface CommPoint {
  op: CommOp;
  bytes: number;
  /** Collectives per sample (small messages are timed in batches). */
  iterations: number;
  /** Seconds per collective, over the samples (each sample the mean over ranks). */
  seconds: Summary;
  /** Algorithm bandwidth bytes / median seconds (GB/s). */
  algGBs: number;
}

export interface AlphaBeta {
  /** Seconds per collective at zero bytes. */
  alpha: number;
  /** Seconds per byte. */
  beta: number;
  /** Largest relative misfit over the sizes fitted. */
  maxRelError: number;
}

export interface CommBenchResult {
  ranks: number;
  description: string;
  points: CommPoint[];
  fits: Partial<Record<CommOp, AlphaBeta>>;
}

/** 8 B to maxBytes in steps of 8x, and maxBytes itself. */
export function defaultSizes(maxBytes = 64 << 20): number[] {
  const sizes: number[] = [];
  for (let n = 8; n < maxBytes; n *= 8) sizes.push(n);
  sizes.push(maxBytes);
  return sizes;
}

/**
 * Least squares of t = alpha + beta·n weighted by 1/t² (relative errors), so microsecond latencies
 * and long transfers both count.
 */
export function fitAlphaBeta(points: readonly { bytes: number; seconds: number }[]): AlphaBeta {
  if (points.length < 2) throw new Error('fitAlphaBeta: needs at least two message sizes');
  let sw = 0;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  for (const p of points) {
    const w = 1 / (p.seconds * p.seconds);
    sw += w;
    sx += w * p.bytes;
    sy += w * p.seconds;
    sxx += w * p.bytes * p.bytes;
    sxy += w * p.bytes * p.seconds;
  }
  const det = sw * sxx - sx * sx;
  let beta = (sw * sxy - sx * sy) / det;
  let alpha = (sy - beta * sx) / sw;
  // Physical constraints: neither term negative (refit the other alone).
  if (beta < 0) {
    beta = 0;
    alpha = sy / sw;
  } else if (alpha < 0) {
    alpha = 0;
    beta = sxy / sxx;
  }
  let maxRelError = 0;
  for (const p of points) {
    maxRelError = Math.max(maxRelError, Math.abs(alpha + beta * p.bytes - p.seconds) / p.seconds);
  }
  return { alpha, beta, maxRelError };
}

/** Collectives per timed sample: enough that a sample of small messages lasts about a millisecond. */
function iterationsFor(bytes: number): number {
  return Math.max(1, Math.min(200, Math.ceil((1 << 20) / Math.max(bytes, 1) / 4)));
}

async function runOnce(
  comm: Communicator,
  op: CommOp,
  buf: Float32Array,
  counts: Int32Array,
  recv: Float32Array,
) {
  switch (op) {
    case 'allreduce':
      return comm.allreduce(buf);
    case 'allreduceSync':
      return comm.allreduceSync(buf);
    case 'alltoallv':
      return void (await comm.alltoallv(buf, counts, recv));
    case 'alltoallvSync':
      return void comm.alltoallvSync(buf, counts, recv);
  }
}

/** Runs on every rank of `comm` (all with the same options); every rank gets the same result. */
export async function benchComm(comm: Communicator, opts: CommBenchOptions): Promise<CommBenchResult> {
  const p = comm.size;
  const points: CommPoint[] = [];
  const sample = new Float64Array(1);
  for (const op of opts.ops) {
    for (const bytes of opts.sizes) {
      // Whole float32 elements, and for alltoallv the same share for every destination.
      const perRank = op.startsWith('alltoallv') ? Math.max(1, Math.floor(bytes / 4 / p)) : 0;
      const n = op.startsWith('alltoallv') ? perRank * p : Math.max(1, Math.floor(bytes / 4));
      const buf = new Float32Array(n).fill(1 / 1024);
      const recv = new Float32Array(n);
      const counts = new Int32Array(p).fill(perRank);
      const iterations = iterationsFor(n * 4);
      for (let w = 0; w < 2; w++) await runOnce(comm, op, buf, counts, recv);
      const times: number[] = [];
      for (let s = 0; s < opts.repeat; s++) {
        await comm.barrier();
        const t0 = performance.now();
        for (let i = 0; i < iterations; i++) await runOnce(comm, op, buf, counts, recv);
        sample[0] = (performance.now() - t0) / 1000 / iterations;
        await comm.allreduce(sample);
        times.push(sample[0] / p);
      }
      const seconds = summarize(times);
      points.push({ op, bytes: n * 4, iterations, seconds, algGBs: (n * 4) / seconds.median / 1e9 });
    }
  }
  const fits: Partial<Record<CommOp, AlphaBeta>> = {};
  for (const op of opts.ops) {
    const mine = points
      .filter((q) => q.op === op)
      .map((q) => ({ bytes: q.bytes, seconds: q.seconds.median }));
    if (mine.length >= 2) fits[op] = fitAlphaBeta(mine);
  }
  return { ranks: p, description: comm.description, points, fits };
}

function bytesLabel(n: number): string {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(n % (1 << 20) === 0 ? 0 : 1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(n % (1 << 10) === 0 ? 0 : 1)} KiB`;
  return `${n} B`;
}

export function formatCommBench(r: CommBenchResult): string {
  const lines = [`${r.ranks} ranks, ${r.description.replace(/^MPI rank \d+ of \d+ /, '')}`];
  lines.push('op             size      time (median [min-max])           GB/s');
  for (const q of r.points) {
    const us = (x: number): string => (x * 1e6).toFixed(x < 1e-4 ? 1 : 0);
    lines.push(
      `${q.op.padEnd(14)} ${bytesLabel(q.bytes).padStart(8)}  ${`${us(q.seconds.median)} us [${us(q.seconds.min)}-${us(q.seconds.max)}]`.padEnd(32)}  ${q.algGBs.toFixed(3)}`,
    );
  }
  for (const [op, f] of Object.entries(r.fits)) {
    lines.push(
      `fit ${op}: alpha ${(f.alpha * 1e6).toFixed(1)} us, 1/beta ${(1 / f.beta / 1e9).toFixed(2)} GB/s (max misfit ${(100 * f.maxRelError).toFixed(0)}%)`,
    );
  }
  return lines.join('\n');
}
