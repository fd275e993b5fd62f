import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { SingleProcessComm } from '../../src/dist/comm.js';
import { launchInfo, openCommunicator } from '../../src/dist/launch.js';
import { mpirunNode, mpiSkipReason, REPO, rankLines } from './helpers.js';

const WORKER = path.join(REPO, 'dist/test/dist/comm-worker.js');
const contribution = (r: number, i: number): number => ((i % 1000) + 1) * (r + 1) * 0.25 + r;

describe('single-process communicator', () => {
  it('is what a process started without an MPI launcher gets', () => {
    assert.equal(launchInfo({}), null);
    const c = openCommunicator({});
    assert.equal(c.kind, 'single');
    assert.equal(c.rank, 0);
    assert.equal(c.size, 1);
  });

  it('reads the launcher environment of Open MPI and PMI', () => {
    assert.deepEqual(
      launchInfo({ OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_RANK: '2', OMPI_COMM_WORLD_LOCAL_SIZE: '2' }),
      { rank: 2, size: 4, localSize: 2, launcher: 'Open MPI' },
    );
    assert.deepEqual(launchInfo({ PMI_SIZE: '3', PMI_RANK: '1' }), {
      rank: 1,
      size: 3,
      localSize: 1,
      launcher: 'PMI',
    });
  });

  it('reduces as the identity and exchanges with itself', async () => {
    const c = new SingleProcessComm();
    const x = Float32Array.of(1, 2, 3);
    await c.allreduce(x);
    assert.deepEqual(Array.from(x), [1, 2, 3]);
    const r = await c.alltoallv(Int32Array.of(5, 6, 7), Int32Array.of(2));
    assert.deepEqual(Array.from(r.data), [5, 6]);
    assert.deepEqual(Array.from(r.counts), [2]);
    assert.ok(r.data instanceof Int32Array);
    const into = new Int32Array(4);
    const s = c.alltoallvSync(Int32Array.of(5, 6, 7), Int32Array.of(3), into);
    assert.equal(s.data.buffer, into.buffer);
    assert.deepEqual(Array.from(into), [5, 6, 7, 0]);
    await c.broadcast(x, 0);
    await c.barrier();
    assert.equal(c.stats().jobs, 5);
  });

  it('rejects bad counts, a bad root and use after close, naming the problem', async () => {
    const c = new SingleProcessComm();
    assert.throws(
      () => c.alltoallvSync(Float32Array.of(1), Int32Array.of(1, 1)),
      /sendCounts has 2 entries, the communicator has 1 ranks/,
    );
    assert.throws(
      () => c.alltoallvSync(Float32Array.of(1), Int32Array.of(-1)),
      /sendCounts\[0\] = -1 is negative/,
    );
    assert.throws(
      () => c.alltoallvSync(Float32Array.of(1), Int32Array.of(2)),
      /add up to 2 elements but send holds 1/,
    );
    await assert.rejects(c.broadcast(Float32Array.of(1), 1), /root must be an integer rank in \[0, 1\)/);
    await c.close();
    await assert.rejects(c.barrier(), /closed/);
  });
});

interface WorkerResult {
  rank: number;
  size: number;
  kind: string;
  f32: { head: number[]; at: [number, number] };
  f64: number[];
  i32: number[];
  flushed: number[];
  alltoallv: { data: number[]; counts: number[]; type: string };
  intoBuffer: boolean;
  intoBufferData: number[];
  intoBufferAsync: boolean;
  smallBuffer: boolean;
  empty: { length: number; counts: number[] };
  broadcast: number[];
  turnsDuringBarrier: number;
  errors: string[];
  afterClose: string;
}

/** What rank `r` of `p` must have received from alltoallv: from each q, q+r+1 values 1000q + 100r + j. */
function expectedExchange(r: number, p: number): { data: number[]; counts: number[] } {
  const data: number[] = [];
  const counts: number[] = [];
  for (let q = 0; q < p; q++) {
    counts.push(q + r + 1);
    for (let j = 0; j < q + r + 1; j++) data.push(1000 * q + 100 * r + j);
  }
  return { data, counts };
}

function checkRanks(results: WorkerResult[], p: number): void {
  assert.equal(results.filter((x) => x !== undefined).length, p, 'one result line per rank');
  for (let r = 0; r < p; r++) {
    const w = results[r]!;
    assert.equal(w.kind, 'mpi');
    assert.equal(w.size, p);
    const sum = (i: number): number => {
      let s = 0;
      for (let q = 0; q < p; q++) s += contribution(q, i);
      return s;
    };
    assert.deepEqual(w.f32.head, [0, 1, 2, 3, 4].map(sum));
    assert.deepEqual(w.f32.at, [3_000_000, sum(3_000_000)]);
    let half = 0;
    let neg = 0;
    for (let q = 0; q < p; q++) {
      half += q + 0.5;
      neg -= q;
    }
    assert.deepEqual(w.f64.slice(0, 2), [half, neg]);
    assert.ok(Math.abs(w.f64[2]! - 1e300) <= 1e285);
    assert.deepEqual(w.i32, [(p * (p - 1)) / 2, p]);
    assert.deepEqual(
      w.flushed,
      [0, 1, 2].map((k) => (p * (p - 1)) / 2 + p * k),
    );
    const ex = expectedExchange(r, p);
    assert.deepEqual(w.alltoallv, { ...ex, type: 'Float32Array' });
    assert.equal(w.intoBuffer, true);
    assert.deepEqual(w.intoBufferData, ex.data);
    assert.equal(w.intoBufferAsync, true);
    assert.equal(w.smallBuffer, true);
    assert.deepEqual(w.empty, { length: 0, counts: new Array(p).fill(0) });
    assert.deepEqual(w.broadcast, [3.5, -7, 11]);
    assert.match(w.errors[0]!, /sendCounts has \d+ entries, the communicator has \d+ ranks/);
    assert.match(w.errors[1]!, /sums Float32Array, Float64Array or Int32Array, got Uint8Array/);
    assert.match(w.afterClose, /finalised/);
  }
  // Rank 0 waited ~300 ms in its barrier for the others while its event loop kept turning (a blocking
  // call would allow one turn; a loaded machine allows fewer than the ~60 of an idle one).
  assert.ok(results[0]!.turnsDuringBarrier >= 3, `event loop turns: ${results[0]!.turnsDuringBarrier}`);
}

describe('MPI communicator (under mpirun)', () => {
  const skip = mpiSkipReason();
  it('2 ranks over shared memory', { skip: skip ?? false, timeout: 90_000 }, async () => {
    const r = await mpirunNode(2, WORKER);
    checkRanks(rankLines<WorkerResult>(r.stdout), 2);
  });
  it('2 ranks over TCP (--mca btl self,tcp)', { skip: skip ?? false, timeout: 90_000 }, async () => {
    const r = await mpirunNode(2, WORKER, [], { mpiArgs: ['--mca', 'btl', 'self,tcp'] });
    checkRanks(rankLines<WorkerResult>(r.stdout), 2);
  });
  it('3 ranks, oversubscribed', { skip: skip ?? false, timeout: 90_000 }, async () => {
    const r = await mpirunNode(3, WORKER);
    checkRanks(rankLines<WorkerResult>(r.stdout), 3);
  });
});
