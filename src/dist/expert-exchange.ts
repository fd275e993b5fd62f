/**
 * GShard's expert parallelism over a communicator: rank q of R holds experts
 * [q·E/R, (q+1)·E/R) of every MoE layer. The routing's counting sort already lays the kept assignments
 * out by expert, so the rows bound for each rank are contiguous: one alltoallv sends them, another
 * brings the results back. On the expert side the rows arrive source rank by source rank; they are
 * regrouped by local expert (sources in rank order: the global batch's token order, since rank r holds
 * rows r·B/R.. of it) for one grouped product per weight matrix.
 */
import { kernels, mat } from '../backend/index.js';
import type { ExpertExchange } from '../model/layers/moe.js';
import type { Communicator } from './comm.js';

export class CommExpertExchange implements ExpertExchange {
  readonly first: number;
  readonly count: number;
  private readonly size: number;
  /** Rows sent to / received from each rank in the current plan. */
  private sendRows: Int32Array;
  private recvRows: Int32Array;
  private readonly loadCounts: Int32Array;
  /** Expert-major position → index among the received rows, and the inverse. */
  private perm = new Int32Array(0);
  private inverse = new Int32Array(0);
  private sent = 0;
  private received = 0;
  private recvBuf = new Float32Array(0);
  private sendBuf = new Float32Array(0);

  constructor(
    private readonly comm: Communicator,
    readonly experts: number,
  ) {
    const R = comm.size;
    if (experts % R !== 0) {
      throw new Error(
        `expert parallelism: ${experts} experts cannot be split evenly over ${R} ranks (E must be a multiple of the rank count)`,
      );
    }
    this.size = R;
    this.count = experts / R;
    this.first = comm.rank * this.count;
    this.sendRows = new Int32Array(R);
    this.recvRows = new Int32Array(R);
    this.loadCounts = new Int32Array(R).fill(this.count);
  }

  plan(offsets: Int32Array): Int32Array {
    const { size: R, count: c, experts: E } = this;
    if (offsets.length < E + 1)
      throw new Error(`expert exchange: offsets has ${offsets.length} entries, need ${E + 1}`);
    const loads = new Int32Array(E);
    for (let e = 0; e < E; e++) loads[e] = offsets[e + 1]! - offsets[e]!;
    for (let q = 0; q < R; q++) this.sendRows[q] = offsets[(q + 1) * c]! - offsets[q * c]!;
    this.sent = offsets[E]!;
    // Each rank learns how many rows of each of its experts every source will send.
    const got = this.comm.alltoallvSync(loads, this.loadCounts).data; // [R sources][c experts]
    const local = new Int32Array(c + 1);
    let received = 0;
    const sourceStart = new Int32Array(R);
    for (let s = 0; s < R; s++) {
      sourceStart[s] = received;
      let rows = 0;
      for (let e = 0; e < c; e++) {
        rows += got[s * c + e]!;
        local[e + 1]! += got[s * c + e]!;
      }
      this.recvRows[s] = rows;
      received += rows;
    }
    for (let e = 0; e < c; e++) local[e + 1]! += local[e]!;
    this.received = received;
    if (this.perm.length < received) {
      this.perm = new Int32Array(received);
      this.inverse = new Int32Array(received);
    }
    // Rows of (source s, expert e) start after s's rows for experts < e.
    const cursor = local.slice(0, c);
    for (let s = 0; s < R; s++) {
      let at = sourceStart[s]!;
      for (let e = 0; e < c; e++) {
        const n = got[s * c + e]!;
        for (let j = 0; j < n; j++) {
          const pos = cursor[e]!++;
          this.perm[pos] = at;
          this.inverse[at] = pos;
          at++;
        }
      }
    }
    return local;
  }

  toExperts(src: Float32Array, cols: number, dst: Float32Array): void {
    const counts = scaled(this.sendRows, cols);
    const need = this.received * cols;
    if (this.recvBuf.length < need) this.recvBuf = new Float32Array(need);
    const r = this.comm.alltoallvSync(src.subarray(0, this.sent * cols), counts, this.recvBuf);
    if (r.data.length !== need)
      throw new Error(`expert exchange: received ${r.data.length} floats, planned ${need}`);
    if (this.received > 0) {
      kernels().gatherRows(
        mat(r.data, this.received, cols),
        this.perm.subarray(0, this.received),
        mat(dst, this.received, cols),
      );
    }
  }

  fromExperts(src: Float32Array, cols: number, dst: Float32Array): void {
    const need = this.received * cols;
    if (this.sendBuf.length < need) this.sendBuf = new Float32Array(need);
    if (this.received > 0) {
      kernels().gatherRows(
        mat(src, this.received, cols),
        this.inverse.subarray(0, this.received),
        mat(this.sendBuf, this.received, cols),
      );
    }
    const r = this.comm.alltoallvSync(this.sendBuf.subarray(0, need), scaled(this.recvRows, cols), dst);
    if (r.data.length !== this.sent * cols || (this.sent > 0 && r.data.buffer !== dst.buffer)) {
      throw new Error(`expert exchange: got ${r.data.length} floats back, sent ${this.sent * cols}`);
    }
  }
}

function scaled(rows: Int32Array, cols: number): Int32Array {
  const out = new Int32Array(rows.length);
  for (let i = 0; i < rows.length; i++) out[i] = rows[i]! * cols;
  return out;
}
