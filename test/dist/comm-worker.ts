/**
 * Runs under mpirun (comm.test.ts): every collective of the MPI communicator on values that encode
 * their source rank, printing one JSON line per rank; the test checks them against values it derives.
 */
import { hostname, networkInterfaces } from 'node:os';
import { openCommunicator } from '../../src/dist/launch.js';

const comm = openCommunicator();
const { rank, size } = comm;

/** The value rank r contributes at index i (exact in float32: small multiples of 1/4). */
export const contribution = (r: number, i: number): number => ((i % 1000) + 1) * (r + 1) * 0.25 + r;

async function main(): Promise<void> {
  const out: Record<string, unknown> = { rank, size, kind: comm.kind, description: comm.description };
  out.host = hostname();
  out.addresses = Object.values(networkInterfaces())
    .flat()
    .map((a) => a?.address);

  // allreduce, three element types, one long buffer (several MiB: the large-message path).
  const n32 = 3_000_001;
  const f32 = new Float32Array(n32);
  for (let i = 0; i < n32; i++) f32[i] = contribution(rank, i);
  await comm.allreduce(f32);
  out.f32 = { head: Array.from(f32.subarray(0, 5)), at: [n32 - 1, f32[n32 - 1]] };
  const f64 = Float64Array.of(rank + 0.5, -rank, 1e300 / size);
  await comm.allreduce(f64);
  out.f64 = Array.from(f64);
  const i32 = Int32Array.of(rank, 1);
  comm.allreduceSync(i32);
  out.i32 = Array.from(i32);

  // Posted without waiting, then flushSync: the buffers are complete before the promises settle.
  const pending = [0, 1, 2].map((k) => new Float32Array(4096).fill(rank + k));
  const posted = pending.map((buf) => comm.allreduce(buf));
  comm.flushSync();
  out.flushed = pending.map((buf) => buf[4095]);
  await Promise.all(posted);

  // alltoallv with uneven counts: rank r sends r+q+1 elements to q, valued 1000r + 100q + j.
  const counts = new Int32Array(size);
  const parts: number[] = [];
  for (let q = 0; q < size; q++) {
    counts[q] = rank + q + 1;
    for (let j = 0; j < counts[q]!; j++) parts.push(1000 * rank + 100 * q + j);
  }
  const send = Float32Array.from(parts);
  const a = await comm.alltoallv(send, counts);
  out.alltoallv = { data: Array.from(a.data), counts: Array.from(a.counts), type: a.data.constructor.name };
  // Into a caller's buffer large enough (the result views it) and one too small (a fresh array).
  const big = new Float32Array(1000);
  const b = comm.alltoallvSync(send, counts, big);
  out.intoBuffer = b.data.buffer === big.buffer && b.data.byteOffset === 0;
  out.intoBufferData = Array.from(b.data);
  // The promise form into a caller's buffer, many times over (the result is built on a later turn of
  // the event loop, from references, not from the call's own handles).
  const big2 = new Float32Array(1000);
  let sameView = true;
  for (let i = 0; i < 200; i++) {
    const d = await comm.alltoallv(send, counts, big2);
    sameView &&= d.data.buffer === big2.buffer && d.data.length === b.data.length;
  }
  out.intoBufferAsync =
    sameView && Array.from(big2.subarray(0, b.data.length)).join() === Array.from(b.data).join();
  const small = new Float32Array(1);
  const c = await comm.alltoallv(send, counts, small);
  out.smallBuffer = c.data.buffer !== small.buffer;
  // Nothing to send anywhere.
  const z = await comm.alltoallv(new Int32Array(0), new Int32Array(size));
  out.empty = { length: z.data.length, counts: Array.from(z.counts) };

  // broadcast from the last rank.
  const root = size - 1;
  const bc = rank === root ? Float64Array.of(3.5, -7, 11) : new Float64Array(3);
  await comm.broadcast(bc, root);
  out.broadcast = Array.from(bc);

  // The JS thread keeps running while a collective waits on a late peer: rank 0 posts a barrier at
  // once and counts event-loop turns until it completes; the others join 300 ms later.
  if (rank !== 0) await new Promise((r) => setTimeout(r, 300));
  let turns = 0;
  let finished = false;
  const barrier = comm.barrier().then(() => {
    finished = true;
  });
  while (!finished) {
    turns++;
    await new Promise((r) => setTimeout(r, 5));
  }
  await barrier;
  out.turnsDuringBarrier = turns;

  // Bad input names the problem.
  const errors: string[] = [];
  try {
    await comm.alltoallv(send, new Int32Array(size + 1));
  } catch (e) {
    errors.push((e as Error).message);
  }
  try {
    await comm.allreduce(new Uint8Array(4) as unknown as Float32Array);
  } catch (e) {
    errors.push((e as Error).message);
  }
  out.errors = errors;
  out.stats = comm.stats();
  await comm.close();
  try {
    await comm.barrier();
  } catch (e) {
    out.afterClose = (e as Error).message;
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
