import { kernels, mat } from '../backend/index.js';
import { Arena } from '../tensor/arena.js';
import { sameShape, shapeString, Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { type GlamConfig, isMoeLayer } from './config.js';
import { AttentionLayer, type AttentionWeights } from './layers/attention.js';
import { TiedEmbedding } from './layers/embedding.js';
import { GatedFfnLayer, type GatedFfnWeights } from './layers/ffn.js';
import { LossLayer } from './layers/loss.js';
import { MoeLayer, type MoeWeights } from './layers/moe.js';
import { RmsNormLayer } from './layers/rmsnorm.js';
import { type Params, paramSpecs } from './params.js';

export interface MoeLayerStats {
  layer: number;
  /** Kept assignments per expert. */
  load: number[];
  /** Assignments dropped for lack of capacity. */
  dropped: number;
  /** dropped / (2 · tokens). */
  droppedFraction: number;
  /** Mean over tokens of -Σ_e p log p (nats). */
  routerEntropy: number;
  aux: number;
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
  moe: MoeLayerStats[];
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

interface Block {
  attnNorm: RmsNormLayer;
  attn: AttentionLayer;
  ffnNorm: RmsNormLayer;
  ffn: GatedFfnLayer | null;
  moe: MoeLayer | null;
}

/** What backward needs from the last forward. */
interface StepState {
  rows: number;
  validRows: number;
  /** Token rows of the targets >= 0, when some are padding; null when all count. */
  validIdx: Int32Array | null;
}

/**
 * The GLaM decoder stack (SPEC.md "Model") with hand-written backward passes.
 * Activations live in an arena reused from step to step; forward keeps what
 * backward needs, and backward's per-layer temporaries share one scratch arena.
 */
export class GlamModel {
  readonly grads: Params;
  private readonly arena = new Arena();
  private readonly scratch = new Arena();
  private readonly embed: TiedEmbedding;
  private readonly blocks: Block[];
  private readonly finalNorm: RmsNormLayer;
  private readonly loss: LossLayer;
  private state: StepState | null = null;
  private validIdx = new Int32Array(0);
  private validTargets = new Int32Array(0);

  /** Checks every parameter's name and shape against paramSpecs(config); grads start at zero. */
  constructor(
    readonly config: GlamConfig,
    readonly params: Params,
  ) {
    const specs = paramSpecs(config);
    const expected = new Set(specs.map((s) => s.name));
    for (const name of params.keys()) {
      if (!expected.has(name)) throw new Error(`GlamModel: unexpected parameter '${name}' for this config`);
    }
    this.grads = new Map();
    for (const s of specs) {
      const t = params.get(s.name);
      if (t === undefined) {
        throw new Error(`GlamModel: missing parameter '${s.name}' ${shapeString(s.shape)}`);
      }
      if (!sameShape(t.shape, s.shape)) {
        throw new Error(
          `GlamModel: parameter '${s.name}' has shape ${shapeString(t.shape)}, expected ${shapeString(s.shape)}`,
        );
      }
      this.grads.set(s.name, Tensor.zeros(s.shape));
    }
    const c = config;
    this.embed = new TiedEmbedding(c.vocab_size, c.d_model);
    this.blocks = [];
    for (let l = 0; l < c.n_layers; l++) {
      const moe = isMoeLayer(c, l);
      this.blocks.push({
        attnNorm: new RmsNormLayer(c.d_model, c.norm_eps),
        attn: new AttentionLayer({
          dModel: c.d_model,
          heads: c.n_heads,
          dHead: c.d_head,
          relBuckets: c.rel_buckets,
          relMaxDistance: c.rel_max_distance,
        }),
        ffnNorm: new RmsNormLayer(c.d_model, c.norm_eps),
        ffn: moe ? null : new GatedFfnLayer(c.d_model, c.d_ff),
        moe: moe
          ? new MoeLayer({
              dModel: c.d_model,
              dFf: c.d_ff_expert,
              experts: c.n_experts,
              gated: c.expert_gated,
            })
          : null,
      });
    }
    this.finalNorm = new RmsNormLayer(c.d_model, c.norm_eps);
    this.loss = new LossLayer(c.vocab_size);
  }

  zeroGrads(): void {
    const k = kernels();
    for (const g of this.grads.values()) k.fill(g.data, 0);
  }

  /** Floats of activation storage held (grows to the peak step, then stays). */
  get activationFloats(): number {
    return this.arena.capacity + this.scratch.capacity;
  }

  /**
   * inputs/targets: [batch·seqLen] token ids (targets < 0 are padding and ignored).
   * Returns the loss parts and keeps the activations for backward().
   */
  forward(
    inputs: Int32Array,
    targets: Int32Array,
    batch: number,
    seqLen: number,
    opts: ForwardOptions = {},
  ): LossParts {
    const cfg = this.config;
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
    let valid = 0;
    for (let i = 0; i < N; i++) {
      const t = targets[i]!;
      if (t >= cfg.vocab_size) {
        throw new Error(
          `forward: target id ${t} at position ${i} is outside the vocabulary [0, ${cfg.vocab_size})`,
        );
      }
      if (t >= 0) valid++;
    }

    this.state = null;
    const { x, moe } = this.trunk(
      inputs,
      batch,
      seqLen,
      opts.capacityFactor ?? cfg.capacity_factor,
      opts.rng,
    );

    // Padding rows (target < 0) are left out before the output projection. The
    // targets are copied so callers may reuse their arrays before backward.
    let xv = x;
    if (this.validIdx.length < N) {
      this.validIdx = new Int32Array(N);
      this.validTargets = new Int32Array(N);
    }
    const tv = this.validTargets.subarray(0, valid);
    let validIdx: Int32Array | null = null;
    if (valid === N) {
      tv.set(targets);
    } else {
      validIdx = this.validIdx.subarray(0, valid);
      for (let i = 0, k = 0; i < N; i++) {
        if (targets[i]! >= 0) {
          validIdx[k] = i;
          tv[k++] = targets[i]!;
        }
      }
      xv = this.arena.alloc([valid, cfg.d_model]).data;
      kernels().gatherRows(mat(x, N, cfg.d_model), validIdx, mat(xv, valid, cfg.d_model));
    }
    const table = this.param('embed.weight');
    const logits = this.embed.project(this.arena, table, xv, valid);
    const sums = this.loss.forward(this.arena, logits, tv, valid);
    this.state = { rows: N, validRows: valid, validIdx };

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

  /** Accumulates d(total·scale)/dθ into grads; consumes the last forward(). */
  backward(scale = 1): void {
    const st = this.state;
    if (st === null) {
      throw new Error('backward: needs a forward() first (logits() and backward() consume it)');
    }
    this.state = null;
    const cfg = this.config;
    const D = cfg.d_model;
    const N = st.rows;
    const K = kernels();
    const valid = st.validRows;
    const dlogits = this.loss.backward(
      valid > 0 ? scale / valid : 0,
      valid > 0 ? (scale * cfg.z_loss_weight) / valid : 0,
    );
    const dTable = this.grad('embed.weight');
    const dxv = this.embed.projectBackward(this.arena, this.param('embed.weight'), dlogits, dTable);
    let dh = dxv;
    if (st.validIdx !== null) {
      dh = this.arena.zeros([N, D]).data;
      const ones = this.arena.alloc([valid]).fill(1).data;
      K.scatterAddRows(mat(dxv, valid, D), st.validIdx, ones, mat(dh, N, D));
    }
    this.finalNorm.backward(this.param('final_norm.scale'), dh, this.grad('final_norm.scale'));

    const auxGrad = scale * cfg.aux_loss_weight;
    for (let l = cfg.n_layers - 1; l >= 0; l--) {
      const b = this.blocks[l]!;
      const p = `layers.${l}`;
      this.scratch.reset();
      const df = this.scratch.alloc([N, D]).data;
      if (b.moe !== null) {
        b.moe.backward(this.scratch, this.moeWeights(l, false), this.moeWeights(l, true), dh, df, auxGrad);
      } else {
        b.ffn!.backward(this.scratch, this.ffnWeights(l, false), this.ffnWeights(l, true), dh, df);
      }
      b.ffnNorm.backward(this.param(`${p}.ffn_norm.scale`), df, this.grad(`${p}.ffn_norm.scale`));
      K.add(dh, df, dh);
      const da = this.scratch.alloc([N, D]).data;
      b.attn.backward(this.scratch, this.attnWeights(l, false), this.attnWeights(l, true), dh, da);
      b.attnNorm.backward(this.param(`${p}.attn_norm.scale`), da, this.grad(`${p}.attn_norm.scale`));
      K.add(dh, da, dh);
    }
    this.embed.lookupBackward(this.scratch, dh, dTable);
  }

  /**
   * Logits [batch·seqLen, vocab] (a fresh array) without a loss, at
   * cfg.eval_capacity_factor unless opts.capacityFactor. Discards forward()'s activations.
   */
  logits(inputs: Int32Array, batch: number, seqLen: number, opts: ForwardOptions = {}): Float32Array {
    this.checkTokens(inputs, batch, seqLen);
    this.state = null;
    const { x } = this.trunk(
      inputs,
      batch,
      seqLen,
      opts.capacityFactor ?? this.config.eval_capacity_factor,
      opts.rng,
    );
    return this.embed.project(this.arena, this.param('embed.weight'), x, batch * seqLen).slice();
  }

  /** Embedding, every block, final norm; returns the normed final hidden rows [N, D]. */
  private trunk(
    inputs: Int32Array,
    batch: number,
    seqLen: number,
    capacityFactor: number,
    rng: Rng | undefined,
  ): { x: Float32Array; moe: MoeLayerStats[] } {
    const cfg = this.config;
    const N = batch * seqLen;
    const D = cfg.d_model;
    if (cfg.n_experts > 0 && N % cfg.num_groups !== 0) {
      throw new Error(`num_groups (${cfg.num_groups}) must divide the number of tokens batch·seqLen = ${N}`);
    }
    this.arena.reset();
    const moe: MoeLayerStats[] = [];
    let h = this.embed.lookup(this.arena, this.param('embed.weight'), inputs);
    for (let l = 0; l < cfg.n_layers; l++) {
      const b = this.blocks[l]!;
      const p = `layers.${l}`;
      this.scratch.reset();
      const a = b.attnNorm.forward(this.arena, h, this.param(`${p}.attn_norm.scale`), N);
      const hMid = this.arena.alloc([N, D]).data;
      hMid.set(h);
      b.attn.forward(this.arena, this.scratch, a, this.attnWeights(l, false), batch, seqLen, hMid);
      const f = b.ffnNorm.forward(this.arena, hMid, this.param(`${p}.ffn_norm.scale`), N);
      const hOut = this.arena.alloc([N, D]).data;
      hOut.set(hMid);
      if (b.moe !== null) {
        const opts = { capacityFactor, numGroups: cfg.num_groups, policy: cfg.second_expert_policy, rng };
        const s = b.moe.forward(this.arena, f, this.moeWeights(l, false), N, opts, hOut);
        moe.push({ layer: l, ...s });
      } else {
        b.ffn!.forward(this.arena, f, this.ffnWeights(l, false), N, hOut);
      }
      h = hOut;
    }
    const x = this.finalNorm.forward(this.arena, h, this.param('final_norm.scale'), N);
    return { x, moe };
  }

  private checkTokens(inputs: Int32Array, batch: number, seqLen: number): void {
    const cfg = this.config;
    if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be an integer >= 1, got ${batch}`);
    if (!Number.isInteger(seqLen) || seqLen < 1) {
      throw new Error(`seqLen must be an integer >= 1, got ${seqLen}`);
    }
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

  private param(name: string): Float32Array {
    const t = this.params.get(name);
    if (t === undefined) throw new Error(`GlamModel: parameter '${name}' is missing`);
    return t.data;
  }

  private grad(name: string): Float32Array {
    return this.grads.get(name)!.data;
  }

  private attnWeights(l: number, grads: boolean): AttentionWeights {
    const get = (n: string) =>
      grads ? this.grad(`layers.${l}.attn.${n}`) : this.param(`layers.${l}.attn.${n}`);
    return { wq: get('wq'), wk: get('wk'), wv: get('wv'), wo: get('wo'), relBias: get('rel_bias') };
  }

  private ffnWeights(l: number, grads: boolean): GatedFfnWeights {
    const get = (n: string) =>
      grads ? this.grad(`layers.${l}.ffn.${n}`) : this.param(`layers.${l}.ffn.${n}`);
    return { wi0: get('wi_0'), wi1: get('wi_1'), wo: get('wo') };
  }

  private moeWeights(l: number, grads: boolean): MoeWeights {
    const get = (n: string) =>
      grads ? this.grad(`layers.${l}.moe.${n}`) : this.param(`layers.${l}.moe.${n}`);
    const gated = this.config.expert_gated;
    return {
      router: get('router'),
      wi: get(gated ? 'wi_0' : 'wi'),
      wi1: gated ? get('wi_1') : null,
      wo: get('wo'),
    };
  }
}
