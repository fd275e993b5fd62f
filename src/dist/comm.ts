/**
 * The communicator: the collectives distributed training needs, over MPI (mpi.ts) or, for one process,
 * over nothing (SingleProcessComm). Buffers are typed arrays; a buffer handed to a collective must be
 * left alone until its promise settles (MPI's own rule).
 */

/** Arrays allreduce sums. */
export type ReduceArray = Float32Array | Float64Array | Int32Array;
/** Arrays the other collectives move. */
export type CommArray =
  | ReduceArray
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** What alltoallv delivered: the received elements, source rank by source rank, and how many came from each. */
export interface Exchanged<T extends CommArray> {
  data: T;
  counts: Int32Array;
}

export interface CommStats {
  /** Collectives completed. */
  jobs: number;
  /** Wall seconds spent inside them (on the communication thread, overlapping compute or not). */
  busySeconds: number;
}

export interface Communicator {
  readonly rank: number;
  readonly size: number;
  /** 'single' (one process, no communication) or 'mpi'. */
  readonly kind: 'single' | 'mpi';
  /** One line for logs, e.g. "MPI rank 0 of 2 (Open MPI v4.1.4)". */
  readonly description: string;
  /** Element-wise sum over all ranks, in place. */
  allreduce(buffer: ReduceArray): Promise<void>;
  /** allreduce, waiting on the calling thread (for code that cannot continue without the result). */
  allreduceSync(buffer: ReduceArray): void;
  /**
   * Sends sendCounts[q] consecutive elements of `send` to rank q (in rank order); the counts each rank
   * receives are exchanged first with an alltoall. Received data lands in `recv` when it is large enough,
   * else in a fresh array.
   */
  alltoallv<T extends CommArray>(send: T, sendCounts: Int32Array, recv?: T): Promise<Exchanged<T>>;
  /** alltoallv, waiting on the calling thread. */
  alltoallvSync<T extends CommArray>(send: T, sendCounts: Int32Array, recv?: T): Exchanged<T>;
  /**
   * Waits on the calling thread until every collective posted so far is done (their buffers are then
   * complete, though their promises settle only on a later turn of the event loop); throws if one of
   * them failed.
   */
  flushSync(): void;
  /** Copies root's buffer into every rank's buffer (same length everywhere). */
  broadcast(buffer: CommArray, root?: number): Promise<void>;
  barrier(): Promise<void>;
  stats(): CommStats;
  /** Ends communication (MPI_Finalize). Every rank must call it; nothing may follow. */
  close(): Promise<void>;
}

/** Checks alltoallv's counts the way the MPI binding does, so both backends fail alike. */
export function checkSendCounts(op: string, sendLength: number, sendCounts: Int32Array, size: number): void {
  if (!(sendCounts instanceof Int32Array)) throw new Error(`${op}: sendCounts must be an Int32Array`);
  if (sendCounts.length !== size) {
    throw new Error(`${op}: sendCounts has ${sendCounts.length} entries, the communicator has ${size} ranks`);
  }
  let total = 0;
  for (let q = 0; q < size; q++) {
    const c = sendCounts[q]!;
    if (c < 0) throw new Error(`${op}: sendCounts[${q}] = ${c} is negative`);
    total += c;
  }
  if (total > sendLength) {
    throw new Error(`${op}: sendCounts add up to ${total} elements but send holds ${sendLength}`);
  }
}

function sameKind(a: CommArray, b: CommArray): boolean {
  return Object.getPrototypeOf(a) === Object.getPrototypeOf(b);
}

/** One process: reductions are identities and alltoallv a copy to itself. */
export class SingleProcessComm implements Communicator {
  readonly rank = 0;
  readonly size = 1;
  readonly kind = 'single';
  readonly description = 'single process';
  private jobs = 0;
  private closed = false;

  private use(op: string): void {
    if (this.closed) throw new Error(`${op}: the communicator is closed`);
    this.jobs++;
  }

  async allreduce(buffer: ReduceArray): Promise<void> {
    this.allreduceSync(buffer);
  }

  allreduceSync(_buffer: ReduceArray): void {
    this.use('allreduce');
  }

  async alltoallv<T extends CommArray>(send: T, sendCounts: Int32Array, recv?: T): Promise<Exchanged<T>> {
    return this.alltoallvSync(send, sendCounts, recv);
  }

  alltoallvSync<T extends CommArray>(send: T, sendCounts: Int32Array, recv?: T): Exchanged<T> {
    this.use('alltoallv');
    checkSendCounts('alltoallv', send.length, sendCounts, 1);
    if (recv !== undefined && !sameKind(send, recv))
      throw new Error('alltoallv: recv and send differ in type');
    const n = sendCounts[0]!;
    const out =
      recv !== undefined && recv.length >= n
        ? recv
        : (new (send.constructor as new (length: number) => T)(n) as T);
    // Both T: the casts only restate what the constructor check above guarantees.
    (out as unknown as { set(src: ArrayLike<number | bigint>): void }).set(
      send.subarray(0, n) as ArrayLike<number>,
    );
    return { data: out.subarray(0, n) as T, counts: Int32Array.of(n) };
  }

  flushSync(): void {
    if (this.closed) throw new Error('flushSync: the communicator is closed');
  }

  async broadcast(_buffer: CommArray, root = 0): Promise<void> {
    this.use('broadcast');
    if (root !== 0) throw new Error(`broadcast: root must be an integer rank in [0, 1), got ${root}`);
  }

  async barrier(): Promise<void> {
    this.use('barrier');
  }

  stats(): CommStats {
    return { jobs: this.jobs, busySeconds: 0 };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
