/**
 * Top-2 routing of one inference step's tokens (GLaM/GShard semantics, as the model's training-time
 * router: e1 = argmax p, e2 = argmax over the rest, ties to the lowest index, gates normalised over
 * the two). Every second choice is kept (second_expert_policy 'random' draws coins only in training).
 *
 * Capacity: eval_capacity_factor <= 0 (the default) is dropless. A positive factor applies within
 * each sequence's rows of the step (its group): C = min(S, ceil(cf·S/E)) for S rows, first choices in
 * token order, then second choices. Prefill chunks are cut at fixed positions of the sequence, so a
 * sequence's drops never depend on what else runs in the step; one decode token has S = 1 and C >= 1,
 * so decoding never drops: the capacity only binds when a prompt chunk crowds an expert.
 *
 * Kept assignments come out counting-sorted by expert (tokens ascending within an expert), so each
 * expert's rows are one contiguous block and its weights are read once for the whole step.
 */
import { type TopTwo, topTwo } from '../backend/index.js';
export class StepRouter {
  /** [E+1] prefix sums of the kept assignments per expert. */
  readonly offsets: Int32Array;
  /** Kept assignments per expert in the last step. */
  readonly load: Int32Array;
  first = new Int32Array(0);
  second = new Int32Array(0);
  gate1 = new Float32Array(0);
  gate2 = new Float32Array(0);
  /** Whether a token's first / second choice was kept. */
  kept1 = new Uint8Array(0);
  kept2 = new Uint8Array(0);
  /** Kept assignments, grouped by expert: token row and gate. */
  token = new Int32Array(0);
  gate = new Float32Array(0);
  assignments = 0;
  dropped = 0;
  private readonly used: Int32Array;
  private readonly pick: TopTwo = { e1: 0, p1: 0, e2: 0, p2: 0 };

  constructor(readonly experts: number) {
    if (experts < 2) throw new Error(`top-2 routing needs at least 2 experts, got ${experts}`);
    this.offsets = new Int32Array(experts + 1);
    this.load = new Int32Array(experts);
    this.used = new Int32Array(experts);
  }

  /**
   * Routes `rows` tokens from router probabilities p [rows, E]; `groups` lists the rows of each
   * sequence as [start, end) pairs (consecutive, covering every row), used only when cf > 0.
   */
  route(p: Float32Array, rows: number, groups: Int32Array, capacityFactor: number): void {
    const E = this.experts;
    this.ensure(rows);
    const { first, second, gate1, gate2, kept1, kept2, used, load } = this;
    const pick = this.pick;
    for (let t = 0; t < rows; t++) {
      const { e1, p1, e2, p2 } = topTwo(p, t * E, E, pick);
      first[t] = e1;
      second[t] = e2;
      gate1[t] = p1 / (p1 + p2);
      gate2[t] = p2 / (p1 + p2);
    }
    load.fill(0);
    let dropped = 0;
    if (capacityFactor <= 0) {
      kept1.fill(1, 0, rows);
      kept2.fill(1, 0, rows);
      for (let t = 0; t < rows; t++) {
        load[first[t]!]!++;
        load[second[t]!]!++;
      }
    } else {
      for (let g = 0; g + 1 < groups.length; g += 2) {
        const t0 = groups[g]!;
        const t1 = groups[g + 1]!;
        const S = t1 - t0;
        const C = Math.min(S, Math.ceil((capacityFactor * S) / E));
        used.fill(0);
        for (let t = t0; t < t1; t++) {
          const e = first[t]!;
          kept1[t] = used[e]! < C ? 1 : 0;
          if (kept1[t]) used[e]!++;
          else dropped++;
        }
        for (let t = t0; t < t1; t++) {
          const e = second[t]!;
          kept2[t] = used[e]! < C ? 1 : 0;
          if (kept2[t]) used[e]!++;
          else dropped++;
        }
        for (let e = 0; e < E; e++) load[e]! += used[e]!;
      }
    }
    this.dropped = dropped;
    const offsets = this.offsets;
    offsets[0] = 0;
    for (let e = 0; e < E; e++) offsets[e + 1] = offsets[e]! + load[e]!;
    this.assignments = offsets[E]!;
    const cursor = used;
    cursor.set(offsets.subarray(0, E));
    for (let t = 0; t < rows; t++) {
      if (kept1[t]) {
        const a = cursor[first[t]!]!++;
        this.token[a] = t;
        this.gate[a] = gate1[t]!;
      }
      if (kept2[t]) {
        const a = cursor[second[t]!]!++;
        this.token[a] = t;
        this.gate[a] = gate2[t]!;
      }
    }
  }

  private ensure(rows: number): void {
    if (this.first.length >= rows) return;
    const n = Math.max(rows, 2 * this.first.length);
    this.first = new Int32Array(n);
    this.second = new Int32Array(n);
    this.gate1 = new Float32Array(n);
    this.gate2 = new Float32Array(n);
    this.kept1 = new Uint8Array(n);
    this.kept2 = new Uint8Array(n);
    this.token = new Int32Array(2 * n);
    this.gate = new Float32Array(2 * n);
  }
}
