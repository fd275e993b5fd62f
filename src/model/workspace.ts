/**
 * The memory of one forward/backward pass: the activation arenas, what each layer keeps for its
 * backward (inputs, attention probabilities, routing), and the last pass's bookkeeping. A workspace
 * belongs to one caller at a time; many workspaces can run over one read-only `Weights` (a server with
 * several batches in flight, an evaluation beside training, worker threads).
 *
 * Arenas grow to the largest pass they have served and then stay, so steady-state steps allocate nothing.
 */
import { Arena } from '../tensor/arena.js';
import { type GlamConfig, isMoeLayer } from './config.js';
import { AttentionLayer } from './layers/attention.js';
import { TiedEmbedding } from './layers/embedding.js';
import { GatedFfnLayer } from './layers/ffn.js';
import { LossLayer } from './layers/loss.js';
import { type ExpertExchange, MoeLayer } from './layers/moe.js';
import { RmsNormLayer } from './layers/rmsnorm.js';

/** The layers of one transformer block, each holding its saved activations. */
export interface BlockState {
  attnNorm: RmsNormLayer;
  attn: AttentionLayer;
  ffnNorm: RmsNormLayer;
  /** The dense feed-forward sublayer, or null in an MoE layer. */
  ffn: GatedFfnLayer | null;
  moe: MoeLayer | null;
}

/** What backward needs from the last forward. */
export interface PassState {
  rows: number;
  /** Rows whose target is >= 0 (the loss is their mean). */
  validRows: number;
}

export class Workspace {
  /** Activations kept from forward to backward. */
  readonly arena = new Arena();
  /** Per-layer temporaries, reset for every layer. */
  readonly scratch = new Arena();
  readonly embed: TiedEmbedding;
  readonly blocks: BlockState[] = [];
  readonly finalNorm: RmsNormLayer;
  readonly loss: LossLayer;
  /** Set by forward, consumed by backward. */
  pass: PassState | null = null;
  /** The last forward's targets (a copy: callers may reuse theirs before backward). */
  targets = new Int32Array(0);

  /**
   * `exchange(l)`, under expert parallelism: the expert exchange of MoE layer l for this workspace's
   * passes (it keeps the layout of the last forward for the backward).
   */
  constructor(
    readonly config: GlamConfig,
    exchange?: (layer: number) => ExpertExchange,
  ) {
    const c = config;
    this.embed = new TiedEmbedding(c.vocab_size, c.d_model);
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
          ? new MoeLayer(
              { dModel: c.d_model, dFf: c.d_ff_expert, experts: c.n_experts, gated: c.expert_gated },
              l,
              exchange?.(l) ?? null,
            )
          : null,
      });
    }
    this.finalNorm = new RmsNormLayer(c.d_model, c.norm_eps);
    this.loss = new LossLayer(c.vocab_size);
  }

  /** Floats of activation storage held (grows to the largest pass, then stays). */
  get activationFloats(): number {
    return this.arena.capacity + this.scratch.capacity;
  }
}
