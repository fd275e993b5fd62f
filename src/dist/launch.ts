/**
 * Which communicator this process gets: MPI when an MPI launcher (mpirun/mpiexec, Slurm's PMI) started
 * it, else a single process. Never initialises MPI on its own: a plain `node` process stays MPI-free.
 */
import { type Communicator, SingleProcessComm } from './comm.js';
import { MPI_HOWTO, openMpi } from './mpi.js';

export interface LaunchInfo {
  rank: number;
  size: number;
  /** Ranks on this host (for sizing compute thread pools). */
  localSize: number;
  launcher: string;
}

function intEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

/** What the launcher told this process through its environment, or null when none started it. */
export function launchInfo(env: NodeJS.ProcessEnv = process.env): LaunchInfo | null {
  const ompiSize = intEnv(env, 'OMPI_COMM_WORLD_SIZE');
  if (ompiSize !== undefined) {
    return {
      rank: intEnv(env, 'OMPI_COMM_WORLD_RANK') ?? 0,
      size: ompiSize,
      localSize: intEnv(env, 'OMPI_COMM_WORLD_LOCAL_SIZE') ?? 1,
      launcher: 'Open MPI',
    };
  }
  const pmiSize = intEnv(env, 'PMI_SIZE');
  if (pmiSize !== undefined) {
    return {
      rank: intEnv(env, 'PMI_RANK') ?? 0,
      size: pmiSize,
      localSize: intEnv(env, 'MPI_LOCALNRANKS') ?? 1,
      launcher: 'PMI',
    };
  }
  return null;
}

/**
 * The communicator for this process. Started by an MPI launcher: MPI (an error that says how to build
 * the addon if it is missing); otherwise one process.
 */
export function openCommunicator(env: NodeJS.ProcessEnv = process.env): Communicator {
  const launch = launchInfo(env);
  if (launch === null) return new SingleProcessComm();
  try {
    return openMpi();
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (msg.includes(MPI_HOWTO)) {
      throw new Error(
        `${launch.launcher} started this process as rank ${launch.rank} of ${launch.size}, but ${msg}`,
      );
    }
    throw err;
  }
}
