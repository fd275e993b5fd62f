import type { Rng } from '../../util/rng.js';

/** Marks a kept choice during the capacity pass, before it gets its assignment index. */
const PENDING = -2;

export interface RoutingOptions {
  /** Capacity factor; <= 0 means no capacity limit (dropless). */
  capacityFactor: number;
  numGroups: number;
  policy: 'all' | 'random';
  /** Draws the u of policy 'random'; without it, 'random' keeps every second choice. */
  rng?: Rng;
}

/**
 * GShard/GLaM top-2 routing of `rows` tokens over E experts from router
 * probabilities p [rows, E]. Kept assignments come out grouped by expert
 * (counting sort, tokens ascending within an expert) so each expert's tokens
 * can be gathered into one contiguous block: expert e owns assignments
 * offsets[e] .. offsets[e+1]-1, each with its token and gate.
 * Buffers are reused between calls with the same sizes.
 */
export class Top2Routing {
  rows = 0;
  groups = 1;
  groupSize = 0;
  capacity = 0;
  /** First and second choice per token, and their normalised gates. */
  first = new Int32Array(0);
  second = new Int32Array(0);
  gate1 = new Float32Array(0);
  gate2 = new Float32Array(0);
  /** Assignment index of a token's first/second choice, -1 when not kept. */
  slot1 = new Int32Array(0);
  slot2 = new Int32Array(0);
  /** [E+1] prefix sums of the kept assignments per expert. */
  offsets: Int32Array;
  /** Kept assignments (first `assignments` entries used): token and gate. */
  token = new Int32Array(0);
  gate = new Float32Array(0);
  assignments = 0;
  /** Assignments refused for lack of capacity (policy refusals not counted). */
  dropped = 0;
  /** Assignments that reached the capacity check. */
  attempted = 0;
  /** Kept assignments per expert. */
  load: Int32Array;
  /** Assignments that reached each expert's capacity check (kept or dropped). */
  routed: Int32Array;
  /** [groups, E]: tokens of a group whose first choice is e (before capacity). */
  firstCounts = new Int32Array(0);
  /** Load-balancing loss, averaged over groups. */
  aux = 0;
  /** Mean over tokens of -Σ p log p. */
  entropy = 0;

  private readonly used: Int32Array;
  private readonly meanP: Float64Array;

  constructor(readonly experts: number) {
    if (experts < 2) throw new Error(`top-2 routing needs at least 2 experts, got ${experts}`);
    this.offsets = new Int32Array(experts + 1);
    this.load = new Int32Array(experts);
    this.routed = new Int32Array(experts);
    this.used = new Int32Array(experts);
    this.meanP = new Float64Array(experts);
  }

  private ensure(rows: number, groups: number): void {
    if (this.first.length !== rows) {
      this.first = new Int32Array(rows);
      this.second = new Int32Array(rows);
      this.gate1 = new Float32Array(rows);
      this.gate2 = new Float32Array(rows);
      this.slot1 = new Int32Array(rows);
      this.slot2 = new Int32Array(rows);
      this.token = new Int32Array(2 * rows);
      this.gate = new Float32Array(2 * rows);
    }
    if (this.firstCounts.length !== groups * this.experts) {
      this.firstCounts = new Int32Array(groups * this.experts);
    }
  }

  /**
   * Routes `rows` tokens from their router probabilities p [rows, E]. With the
   * router logits too, the entropy takes one log per token instead of one per
   * expert: log p_e = (l_e - l_e1) + log p_e1.
   */
  route(p: Float32Array, rows: number, opts: RoutingOptions, logits?: Float32Array): this {
    const E = this.experts;
    const G = opts.numGroups;
    if (!Number.isInteger(G) || G < 1) throw new Error(`MoE: num_groups must be an integer >= 1, got ${G}`);
    if (rows % G !== 0) {
      throw new Error(`MoE: num_groups (${G}) must divide the number of tokens batch·seqLen (${rows})`);
    }
    if (p.length < rows * E) {
      throw new Error(`MoE: router probabilities have ${p.length} elements, need ${rows * E}`);
    }
    this.ensure(rows, G);
    const S = rows / G;
    // Each token sends at most one assignment to an expert, so capacity S never drops.
    const C = opts.capacityFactor > 0 ? Math.min(S, Math.ceil((opts.capacityFactor * S) / E)) : S;
    this.rows = rows;
    this.groups = G;
    this.groupSize = S;
    this.capacity = C;
    const first = this.first;
    const second = this.second;
    const gate1 = this.gate1;
    const gate2 = this.gate2;
    const slot1 = this.slot1;
    const slot2 = this.slot2;
    const firstCounts = this.firstCounts;
    const used = this.used; // slots taken per expert in the current group
    const load = this.load;
    const routed = this.routed;
    const meanP = this.meanP;
    const rng = opts.policy === 'random' ? opts.rng : undefined;
    load.fill(0);
    routed.fill(0);
    firstCounts.fill(0);
    let entropy = 0;
    let aux = 0;
    let dropped = 0;
    let attempted = 0;
    for (let g = 0; g < G; g++) {
      const t0 = g * S;
      const t1 = t0 + S;
      // Top-2 in one scan (strict > keeps the lowest index on ties), with the
      // group's mean probabilities and the entropy on the way.
      meanP.fill(0);
      for (let t = t0; t < t1; t++) {
        const o = t * E;
        let b1 = 0;
        let v1 = p[o]!;
        let b2 = -1;
        let v2 = -Infinity;
        meanP[0] += v1;
        for (let e = 1; e < E; e++) {
          const v = p[o + e]!;
          meanP[e] += v;
          if (v > v1) {
            b2 = b1;
            v2 = v1;
            b1 = e;
            v1 = v;
          } else if (v > v2) {
            b2 = e;
            v2 = v;
          }
        }
        if (logits !== undefined) {
          const l1 = logits[o + b1]!;
          const log1 = Math.log(v1);
          for (let e = 0; e < E; e++) entropy -= p[o + e]! * (logits[o + e]! - l1 + log1);
        } else {
          for (let e = 0; e < E; e++) {
            const v = p[o + e]!;
            if (v > 0) entropy -= v * Math.log(v);
          }
        }
        first[t] = b1;
        second[t] = b2;
        gate1[t] = v1 / (v1 + v2);
        gate2[t] = v2 / (v1 + v2);
        firstCounts[g * E + b1]!++;
      }
      // aux_g = E · Σ_e mean_t(p_t[e]) · (fraction of first choices on e).
      let s = 0;
      for (let e = 0; e < E; e++) s += (meanP[e]! / S) * (firstCounts[g * E + e]! / S);
      aux += E * s;

      // Capacity: all first choices in token order, then the second choices.
      used.fill(0);
      for (let t = t0; t < t1; t++) {
        const e = first[t]!;
        attempted++;
        routed[e]!++;
        if (used[e]! < C) {
          used[e]!++;
          slot1[t] = PENDING;
        } else {
          slot1[t] = -1;
          dropped++;
        }
      }
      for (let t = t0; t < t1; t++) {
        if (rng !== undefined && !(rng.uniform() < 2 * gate2[t]!)) {
          slot2[t] = -1;
          continue;
        }
        const e = second[t]!;
        attempted++;
        routed[e]!++;
        if (used[e]! < C) {
          used[e]!++;
          slot2[t] = PENDING;
        } else {
          slot2[t] = -1;
          dropped++;
        }
      }
      for (let e = 0; e < E; e++) load[e]! += used[e]!;
    }
    this.entropy = rows > 0 ? entropy / rows : 0;
    this.aux = aux / G;
    this.dropped = dropped;
    this.attempted = attempted;

    // Counting sort of the kept assignments by expert (tokens ascending within each).
    const offsets = this.offsets;
    offsets[0] = 0;
    for (let e = 0; e < E; e++) offsets[e + 1] = offsets[e]! + load[e]!;
    this.assignments = offsets[E]!;
    const cursor = used;
    cursor.set(offsets.subarray(0, E));
    const token = this.token;
    const gate = this.gate;
    for (let t = 0; t < rows; t++) {
      if (slot1[t] === PENDING) {
        const a = cursor[first[t]!]!++;
        token[a] = t;
        gate[a] = gate1[t]!;
        slot1[t] = a;
      }
      if (slot2[t] === PENDING) {
        const a = cursor[second[t]!]!++;
        token[a] = t;
        gate[a] = gate2[t]!;
        slot2[t] = a;
      }
    }
    return this;
  }
}
