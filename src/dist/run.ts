/**
 * Setting up one rank of a parallel training run (glam train --parallel, under mpirun), and starting
 * such a run on this host (glam train --ranks R starts mpirun).
 */
import { execFileSync, spawn } from 'node:child_process';
import { availableParallelism, cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { kernels } from '../backend/index.js';
import type { GlamConfig } from '../model/config.js';
import { GlamModel } from '../model/glam.js';
import { Weights } from '../model/weights.js';
import type { Communicator } from './comm.js';
import { launchInfo } from './launch.js';
import { loadMpiAddon, MPI_HOWTO } from './mpi.js';
import { modelShard, type ParallelMode, RankParallel } from './parallel.js';

export const PARALLEL_MODES: readonly ParallelMode[] = ['data', 'expert'];

export function parseParallelMode(v: string): ParallelMode {
  if (!(PARALLEL_MODES as readonly string[]).includes(v))
    throw new Error(`--parallel must be 'data' or 'expert', got '${v}'`);
  return v as ParallelMode;
}

export interface RankSetup {
  model: GlamModel;
  parallel: RankParallel;
  /** This rank's weights from the full ones (its experts only under expert parallelism). */
  weights(full: Weights): Weights;
}

/** The model and training hooks of this rank of a `mode`-parallel run over `comm`. */
export function setupRank(comm: Communicator, config: GlamConfig, mode: ParallelMode): RankSetup {
  const model = new GlamModel(config, modelShard(comm, config, mode));
  const parallel = new RankParallel(comm, model, mode);
  return { model, parallel, weights: (full) => shardWeights(full, model) };
}

/** The weights a rank of `model` holds, from the full ones: all of them, or its experts' slices. */
export function shardWeights(full: Weights, model: GlamModel): Weights {
  const range = model.shard.experts;
  if (range === undefined) return full;
  const mine = new Weights(model.config, { experts: range });
  for (const s of mine.layout.slots) {
    const src = full.get(s.spec.name).data;
    if (s.spec.kind !== 'expert') {
      mine.get(s.spec.name).data.set(src);
      continue;
    }
    const inner = s.size / range.count;
    mine.get(s.spec.name).data.set(src.subarray(range.first * inner, (range.first + range.count) * inner));
  }
  return mine;
}

/**
 * Compute threads per rank when the user did not choose: the cores of this host shared by its ranks
 * (mpirun binds each rank to its own core when there are enough; oversubscribed, it does not).
 */
export function shareCores(): void {
  if (process.env.GLAM_THREADS !== undefined) return;
  const local = launchInfo()?.localSize ?? 1;
  const mine = availableParallelism(); // the cores this process may run on
  const all = cpus().length;
  // Bound to fewer cores than the host has: those are this rank's; else an equal share of the host.
  kernels().setThreads(mine < all ? mine : Math.max(1, Math.floor(all / local)));
}

function mpirunPath(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v mpirun'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/** mpirun's options for np ranks on this host: root needs --allow-run-as-root, more ranks than cores --oversubscribe. */
export function mpirunArgs(np: number, extra: readonly string[] = []): string[] {
  const args = ['-np', String(np)];
  if (process.getuid?.() === 0) args.push('--allow-run-as-root');
  if (np > availableParallelism()) args.push('--oversubscribe');
  return [...args, ...extra];
}

/**
 * `glam train --ranks R ...` on one host: runs `mpirun -np R glam train ... --parallel MODE` and
 * returns its exit status. As root mpirun needs --allow-run-as-root; more ranks than cores,
 * --oversubscribe: both are added.
 */
export function launchLocalRanks(ranks: number, trainArgs: string[], mode: ParallelMode): Promise<number> {
  if (mpirunPath() === null)
    throw new Error(`--ranks ${ranks} starts mpirun, which is not installed: ${MPI_HOWTO}`);
  const addon = loadMpiAddon();
  if (!addon.ok)
    throw new Error(`--ranks ${ranks}: the MPI addon is not available (${addon.reason}): ${MPI_HOWTO}`);
  const glam = fileURLToPath(new URL('../../../bin/glam.js', import.meta.url));
  const args = mpirunArgs(ranks, [process.execPath, glam, 'train', ...trainArgs, '--parallel', mode]);
  process.stderr.write(`glam: mpirun ${args.join(' ')}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn('mpirun', args, { stdio: 'inherit' });
    // mpirun forwards these to every rank, which agree to stop after the same step.
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal !== null ? 128 + 15 : 1));
    });
  });
}
