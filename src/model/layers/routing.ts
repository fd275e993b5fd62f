import { kernels, mat } from '../../backend/index.js';
import type { Rng } from '../../util/rng.js';

const NO_COINS = new Float64Array(0);

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
 * probabilities p [rows, E] (the top2Route kernel does the work; this holds its buffers). Kept assignments come out grouped by expert
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

  private coins = new Float64Array(0);
  private readonly stats = new Float64Array(4);

  constructor(readonly experts: number) {
    if (experts < 2) throw new Error(`top-2 routing needs at least 2 experts, got ${experts}`);
    this.offsets = new Int32Array(experts + 1);
    this.load = new Int32Array(experts);
    this.routed = new Int32Array(experts);
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
   * Routes `rows` tokens from their router probabilities p [rows, E] and logits [rows, E] (for the
   * entropy) with the top2Route kernel.
   */
  route(p: Float32Array, rows: number, opts: RoutingOptions, logits: Float32Array): this {
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
    // Policy 'random': one uniform per token, in token order (group after group).
    let coins = NO_COINS;
    if (opts.policy === 'random' && opts.rng !== undefined) {
      if (this.coins.length !== rows) this.coins = new Float64Array(rows);
      for (let t = 0; t < rows; t++) this.coins[t] = opts.rng.uniform();
      coins = this.coins;
    }
    const st = this.stats;
    kernels().top2Route(
      mat(p, rows, E),
      mat(logits, rows, E),
      G,
      C,
      coins,
      this.first,
      this.second,
      this.gate1,
      this.gate2,
      this.slot1,
      this.slot2,
      this.offsets,
      this.token,
      this.gate,
      this.load,
      this.routed,
      this.firstCounts,
      st,
    );
    this.entropy = st[0]!;
    this.aux = st[1]!;
    this.dropped = st[2]!;
    this.assignments = st[3]!;
    return this;
  }
}
