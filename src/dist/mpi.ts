/**
 * The MPI backend: a separate Node-API addon (native/mpi/, built by node-gyp into
 * build/Release/glam_mpi.node only when mpi.h is found) whose one dedicated thread makes every MPI call
 * (MPI_THREAD_FUNNELED), so compute threads keep running while collectives progress.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import {
  type CommArray,
  type CommStats,
  type Communicator,
  checkSendCounts,
  type Exchanged,
  type ReduceArray,
} from './comm.js';

export const MPI_ADDON_PATH = fileURLToPath(new URL('../../../build/Release/glam_mpi.node', import.meta.url));

/** How to get the MPI addon, for every message that needs it. */
export const MPI_HOWTO =
  'install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev) and rebuild the addons ' +
  '(npm run install, i.e. node-gyp rebuild): glam_mpi.node is built only when mpi.h is found';

interface MpiAddon {
  init(): { rank: number; size: number; threadLevel: number; library: string; version: string };
  allreduce(buffer: ReduceArray): Promise<void>;
  allreduceSync(buffer: ReduceArray): void;
  alltoallv(send: CommArray, counts: Int32Array, recv: CommArray | null): Promise<Exchanged<CommArray>>;
  alltoallvSync(send: CommArray, counts: Int32Array, recv: CommArray | null): Exchanged<CommArray>;
  broadcast(buffer: CommArray, root: number): Promise<void>;
  barrier(): Promise<void>;
  flushSync(): void;
  finalize(): Promise<void>;
  stats(): CommStats;
}

export type MpiLoad = { ok: true; addon: MpiAddon } | { ok: false; reason: string };

let loaded: MpiLoad | undefined;

export function loadMpiAddon(): MpiLoad {
  if (loaded !== undefined) return loaded;
  try {
    const require = createRequire(import.meta.url);
    loaded = { ok: true, addon: require(MPI_ADDON_PATH) as MpiAddon };
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    loaded = { ok: false, reason: msg };
  }
  return loaded;
}

let instance: MpiComm | undefined;

/** MPI can be initialised once per process: every call returns the same communicator. */
export function openMpi(): MpiComm {
  if (instance !== undefined) return instance;
  const load = loadMpiAddon();
  if (!load.ok) throw new Error(`the MPI addon is not available (${load.reason}): ${MPI_HOWTO}`);
  instance = new MpiComm(load.addon);
  return instance;
}

export class MpiComm implements Communicator {
  readonly kind = 'mpi';
  readonly rank: number;
  readonly size: number;
  readonly description: string;
  /** MPI_Get_library_version's text. */
  readonly version: string;

  constructor(private readonly addon: MpiAddon) {
    const info = addon.init();
    this.rank = info.rank;
    this.size = info.size;
    this.version = info.version.trim();
    const short = this.version.split(/[,\n]/)[0]!;
    this.description = `MPI rank ${this.rank} of ${this.size} (${short})`;
  }

  allreduce(buffer: ReduceArray): Promise<void> {
    return this.addon.allreduce(buffer);
  }

  allreduceSync(buffer: ReduceArray): void {
    this.addon.allreduceSync(buffer);
  }

  alltoallv<T extends CommArray>(send: T, sendCounts: Int32Array, recv?: T): Promise<Exchanged<T>> {
    checkSendCounts('alltoallv', send.length, sendCounts, this.size);
    return this.addon.alltoallv(send, sendCounts, recv ?? null) as Promise<Exchanged<T>>;
  }

  alltoallvSync<T extends CommArray>(send: T, sendCounts: Int32Array, recv?: T): Exchanged<T> {
    checkSendCounts('alltoallv', send.length, sendCounts, this.size);
    return this.addon.alltoallvSync(send, sendCounts, recv ?? null) as Exchanged<T>;
  }

  flushSync(): void {
    this.addon.flushSync();
  }

  broadcast(buffer: CommArray, root = 0): Promise<void> {
    return this.addon.broadcast(buffer, root);
  }

  barrier(): Promise<void> {
    return this.addon.barrier();
  }

  stats(): CommStats {
    return this.addon.stats();
  }

  close(): Promise<void> {
    return this.addon.finalize();
  }
}
