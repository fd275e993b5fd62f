import { kernels } from '../backend/index.js';
import type { Rng } from '../util/rng.js';
import type { GlamConfig } from './config.js';
import type { AttentionWeights } from './layers/attention.js';
import type { GatedFfnWeights } from './layers/ffn.js';
import type { ExpertExchange, MoeStats, MoeWeights } from './layers/moe.js';
import type { ExpertRange } from './params.js';
import { type Grads, type ParamBuffer, ParamLayout, type Weights } from './weights.js';
import { Workspace } from './workspace.js';

export type { MoeStats } from './layers/moe.js';

/** One batch of token rows: inputs and next-token targets, each [batch·seqLen] (targets < 0 are padding). */
export interface Batch {
  inputs: Int32Array;
  targets: Int32Array;
  batch: number;
  seqLen: number;
}

export interface LossParts {
  /** lm + z_loss_weight·z + aux_loss_weight·aux. */
  total: number;
  /** Mean cross-entropy over target tokens. */
  lm: number;
  /** Mean logsumexp(logits)² over target tokens. */
  z: number;
  /** Σ over MoE layers of their aux loss (unweighted). */
  aux: number;
  /** Target tokens (targets >= 0). */
  tokens: number;
  /** Dropped assignments summed over MoE layers. */
  dropped: number;
  moe: MoeStats[];
}

export interface ForwardOptions {
  /** Overrides cfg.capacity_factor (forward) or cfg.eval_capacity_factor (logits). */
  capacityFactor?: number;
  /**
   * Draws policy 'random''s second-choice coins: layer by layer, group by group,
   * one per token in token order. Required by forward() under that policy; without
   * it logits() keeps every second choice.
   */
  rng?: Rng;
}

export interface BackwardOptions {
  /**
   * Scale of the aux-loss gradient (default: the loss scale). They differ under data parallelism:
   * a process's LM and z losses are a token-weighted share of the global batch's, its aux loss an
   * equal share of the mean over routing groups.
   */
  auxScale?: number;
  /**
   * Called as soon as layer l's gradients are complete (l from n_layers − 1 down to 0), so their
   * reduction between processes can start while backward goes on.
   */
  onLayerGrads?(layer: number): void;
}

/**
 * How this process's model is part of a larger one (src/dist sets it up; absent: one process).
 * `ranks` processes share every global batch, each with its own rows of it. Routing groups never span
 * processes: each routes its own tokens in `groupsPerRank(num_groups, ranks)` groups.
 */
export interface ModelShard {
  ranks: number;
  /**
   * Expert parallelism: the experts this process holds (its weights hold only those) and, per MoE
   * layer of each workspace, the exchange that moves tokens to their experts' processes and back.
   */
  experts?: ExpertRange & { exchange(layer: number): ExpertExchange };
}

/**
 * Routing groups per process when `ranks` processes split each batch: num_groups / ranks when ranks
 * divides it, and one when num_groups is a divisor of ranks (the run then routes in `ranks` groups
 * in all: a group never spans processes).
 */
export function groupsPerRank(numGroups: number, ranks: number): number {
  if (numGroups % ranks === 0) return numGroups / ranks;
  if (ranks % numGroups === 0) return 1;
  throw new Error(
    `num_groups (${numGroups}) and the number of processes (${ranks}) must divide one another: routing groups never span processes`,
  );
}

/**
 * The GLaM decoder stack (docs/model.md "Model") with hand-written backward passes. The model holds
 * no weights and no activations: `forward(weights, ws, batch)` reads the weights and keeps in the
 * workspace what `backward(weights, grads, ws)` needs, so one model serves any number of workspaces
 * and weight sets of its config.
 */
export class GlamModel {
  readonly layout: ParamLayout;
  private readonly checked = new WeakSet<ParamBuffer>();

  /** Routing groups of this process's tokens. */
  private readonly groups: number;

  constructor(
    readonly config: GlamConfig,
    readonly shard: ModelShard = { ranks: 1 },
  ) {
    this.layout = ParamLayout.of(config, shard.experts);
    this.groups = config.n_experts > 0 ? groupsPerRank(config.num_groups, shard.ranks) : 1;
  }

  /** A fresh workspace for this model's passes. */
  workspace(): Workspace {
    const ex = this.shard.experts;
    return new Workspace(this.config, ex === undefined ? undefined : (l) => ex.exchange(l));
  }

  /** Returns the loss parts and keeps in `ws` the activations backward() needs. */
  forward(weights: Weights, ws: Workspace, b: Batch, opts: ForwardOptions = {}): LossParts {
    const cfg = this.config;
    this.checkBuffers(weights, ws);
    const { inputs, targets, batch, seqLen } = b;
    this.checkTokens(inputs, batch, seqLen);
    if (targets.length !== batch * seqLen) {
      throw new Error(
        `forward: targets has ${targets.length} ids, expected batch·seqLen = ${batch}·${seqLen}`,
      );
    }
    if (cfg.n_experts > 0 && cfg.second_expert_policy === 'random' && opts.rng === undefined) {
      throw new Error("forward: second_expert_policy 'random' needs opts.rng");
    }
    const N = batch * seqLen;
    for (let i = 0; i < N; i++) {
      const t = targets[i]!;
      if (t >= cfg.vocab_size) {
        throw new Error(
          `forward: target id ${t} at position ${i} is outside the vocabulary [0, ${cfg.vocab_size})`,
        );
      }
    }

    ws.pass = null;
    const { x, moe } = this.trunk(
      weights,
      ws,
      inputs,
      batch,
      seqLen,
      opts.capacityFactor ?? cfg.capacity_factor,
      opts.rng,
    );

    // Padding rows (target < 0) go through the output projection like the others; the loss kernels give
    // them no loss and no gradient. The targets are copied so callers may reuse their arrays before backward.
    if (ws.targets.length !== N) ws.targets = new Int32Array(N);
    ws.targets.set(targets);
    const logits = ws.embed.project(ws.arena, weights.get('embed.weight').data, x, N);
    const sums = ws.loss.forward(ws.arena, logits, ws.targets, N);
    const valid = sums.count;
    ws.pass = { rows: N, validRows: valid };

    const lm = valid > 0 ? sums.ce / valid : 0;
    const z = valid > 0 ? sums.lse2 / valid : 0;
    let aux = 0;
    let dropped = 0;
    for (const s of moe) {
      aux += s.aux;
      dropped += s.dropped;
    }
    const total = lm + cfg.z_loss_weight * z + cfg.aux_loss_weight * aux;
    return { total, lm, z, aux, tokens: valid, dropped, moe };
  }

  /** Accumulates d(total·scale)/dθ into `grads`; consumes the workspace's last forward(). */
  backward(weights: Weights, grads: Grads, ws: Workspace, scale = 1, opts: BackwardOptions = {}): void {
    this.checkBuffers(weights, ws);
    this.checkBuffers(grads, ws);
    const st = ws.pass;
    if (st === null)
      throw new Error('backward: needs a forward() first (logits() and backward() consume it)');
    ws.pass = null;
    const cfg = this.config;
    const D = cfg.d_model;
    const N = st.rows;
    const K = kernels();
    const w = (name: string) => weights.get(name).data;
    const g = (name: string) => grads.get(name).data;
    const valid = st.validRows;
    const dlogits = ws.loss.backward(
      valid > 0 ? scale / valid : 0,
      valid > 0 ? (scale * cfg.z_loss_weight) / valid : 0,
    );
    const dTable = g('embed.weight');
    const dh = ws.embed.projectBackward(ws.arena, w('embed.weight'), dlogits, dTable);
    ws.finalNorm.backward(w('final_norm.scale'), dh, g('final_norm.scale'));

    const auxGrad = (opts.auxScale ?? scale) * cfg.aux_loss_weight;
    for (let l = cfg.n_layers - 1; l >= 0; l--) {
      const b = ws.blocks[l]!;
      const p = `layers.${l}`;
      ws.scratch.reset();
      const df = ws.scratch.alloc([N, D]).data;
      if (b.moe !== null) {
        b.moe.backward(
          ws.scratch,
          moeWeights(weights, l, cfg.expert_gated),
          moeWeights(grads, l, cfg.expert_gated),
          dh,
          df,
          auxGrad,
        );
      } else {
        b.ffn!.backward(ws.scratch, ffnWeights(weights, l), ffnWeights(grads, l), dh, df);
      }
      b.ffnNorm.backward(w(`${p}.ffn_norm.scale`), df, g(`${p}.ffn_norm.scale`));
      K.add(dh, df, dh);
      const da = ws.scratch.alloc([N, D]).data;
      b.attn.backward(ws.scratch, attnWeights(weights, l), attnWeights(grads, l), dh, da);
      b.attnNorm.backward(w(`${p}.attn_norm.scale`), da, g(`${p}.attn_norm.scale`));
      K.add(dh, da, dh);
      opts.onLayerGrads?.(l);
    }
    ws.embed.lookupBackward(ws.scratch, dh, dTable);
  }

  /**
   * Logits [batch·seqLen, vocab] (a fresh array) without a loss, at cfg.eval_capacity_factor unless
   * opts.capacityFactor. Discards the workspace's last forward().
   */
  logits(
    weights: Weights,
    ws: Workspace,
    inputs: Int32Array,
    batch: number,
    seqLen: number,
    opts: ForwardOptions = {},
  ): Float32Array {
    this.checkBuffers(weights, ws);
    this.checkTokens(inputs, batch, seqLen);
    ws.pass = null;
    const capacity = opts.capacityFactor ?? this.config.eval_capacity_factor;
    const { x } = this.trunk(weights, ws, inputs, batch, seqLen, capacity, opts.rng);
    return ws.embed.project(ws.arena, weights.get('embed.weight').data, x, batch * seqLen).slice();
  }

  /** Embedding, every block, final norm; returns the normed final hidden rows [N, D]. */
  private trunk(
    weights: Weights,
    ws: Workspace,
    inputs: Int32Array,
    batch: number,
    seqLen: number,
    capacityFactor: number,
    rng: Rng | undefined,
  ): { x: Float32Array; moe: MoeStats[] } {
    const cfg = this.config;
    const N = batch * seqLen;
    const D = cfg.d_model;
    const groups = this.groups;
    if (cfg.n_experts > 0 && N % groups !== 0) {
      const what =
        groups === cfg.num_groups ? `num_groups (${groups})` : `the routing groups per process (${groups})`;
      throw new Error(`${what} must divide the number of tokens batch·seqLen = ${N}`);
    }
    const w = (name: string) => weights.get(name).data;
    ws.arena.reset();
    const moe: MoeStats[] = [];
    let h = ws.embed.lookup(ws.arena, w('embed.weight'), inputs);
    for (let l = 0; l < cfg.n_layers; l++) {
      const b = ws.blocks[l]!;
      const p = `layers.${l}`;
      ws.scratch.reset();
      const a = b.attnNorm.forward(ws.arena, h, w(`${p}.attn_norm.scale`), N);
      const hMid = ws.arena.alloc([N, D]).data;
      hMid.set(h);
      b.attn.forward(ws.arena, ws.scratch, a, attnWeights(weights, l), batch, seqLen, hMid);
      const f = b.ffnNorm.forward(ws.arena, hMid, w(`${p}.ffn_norm.scale`), N);
      const hOut = ws.arena.alloc([N, D]).data;
      hOut.set(hMid);
      if (b.moe !== null) {
        const opts = { capacityFactor, numGroups: groups, policy: cfg.second_expert_policy, rng };
        moe.push(b.moe.forward(ws.arena, f, moeWeights(weights, l, cfg.expert_gated), N, opts, hOut));
      } else {
        b.ffn!.forward(ws.arena, f, ffnWeights(weights, l), N, hOut);
      }
      h = hOut;
    }
    const x = ws.finalNorm.forward(ws.arena, h, w('final_norm.scale'), N);
    return { x, moe };
  }

  /** The buffers must have this model's layout and the workspace its config (checked once per buffer). */
  private checkBuffers(buf: ParamBuffer, ws: Workspace): void {
    if (ws.config !== this.config && JSON.stringify(ws.config) !== JSON.stringify(this.config)) {
      throw new Error('GlamModel: the workspace was made for another config');
    }
    if (this.checked.has(buf)) return;
    const mine = this.layout.slots;
    const theirs = buf.layout.slots;
    const same =
      mine.length === theirs.length &&
      mine.every((s, i) => {
        const o = theirs[i]!;
        return (
          o.spec.name === s.spec.name && o.offset === s.offset && o.spec.shape.join() === s.spec.shape.join()
        );
      });
    if (!same)
      throw new Error(
        "GlamModel: weights or gradients of another model (their layout differs from this config's)",
      );
    this.checked.add(buf);
  }

  private checkTokens(inputs: Int32Array, batch: number, seqLen: number): void {
    const cfg = this.config;
    if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be an integer >= 1, got ${batch}`);
    if (!Number.isInteger(seqLen) || seqLen < 1)
      throw new Error(`seqLen must be an integer >= 1, got ${seqLen}`);
    if (seqLen > cfg.max_seq_len) throw new Error(`seqLen ${seqLen} exceeds max_seq_len ${cfg.max_seq_len}`);
    if (inputs.length !== batch * seqLen) {
      throw new Error(`inputs has ${inputs.length} ids, expected batch·seqLen = ${batch}·${seqLen}`);
    }
    for (let i = 0; i < inputs.length; i++) {
      const t = inputs[i]!;
      if (!(t >= 0 && t < cfg.vocab_size)) {
        throw new Error(`token id ${t} at position ${i} is outside the vocabulary [0, ${cfg.vocab_size})`);
      }
    }
  }
}

function attnWeights(buf: ParamBuffer, l: number): AttentionWeights {
  const get = (n: string) => buf.get(`layers.${l}.attn.${n}`).data;
  return { wq: get('wq'), wk: get('wk'), wv: get('wv'), wo: get('wo'), relBias: get('rel_bias') };
}

function ffnWeights(buf: ParamBuffer, l: number): GatedFfnWeights {
  const get = (n: string) => buf.get(`layers.${l}.ffn.${n}`).data;
  return { wi0: get('wi_0'), wi1: get('wi_1'), wo: get('wo') };
}

function moeWeights(buf: ParamBuffer, l: number, gated: boolean): MoeWeights {
  const get = (n: string) => buf.get(`layers.${l}.moe.${n}`).data;
  return {
    router: get('router'),
    wi: get(gated ? 'wi_0' : 'wi'),
    wi1: gated ? get('wi_1') : null,
    wo: get('wo'),
  };
}
