/**
 * The GLaM forward pass of one inference step over the key/value cache: every sequence of the step
 * brings its next tokens (a prefill chunk or one decode token), all rows run through each layer
 * together, and each sequence's keys and values are appended to its cache before attention reads it.
 *
 * - Attention: one query row per token over the sequence's cached keys 0..i with the layer's T5
 *   relative bias of bucket(i − j) (`pagedAttention`).
 * - MoE layers: the step's tokens from all sequences are routed and grouped by expert, so each chosen
 *   expert's weights stream from memory once per step, however many sequences chose it.
 * - Only the rows asked for reach the final norm; logits are a separate product (`logits`), so a
 *   caller asks for them in chunks its memory allows (a 256k vocabulary is 1 MB per row).
 *
 * Batch invariance: every operation is row-wise (norms, attention, routing when dropless, the
 * scatter of expert outputs in expert order) except the matrix products, whose contract is that a
 * row of C does not depend on the number of rows; a sequence's results are then bitwise the same
 * whatever else runs in the step. The engine never depends on it for correctness, only for
 * reproducibility across batch compositions.
 */
import { bmat, fromBf16, type Kernels, kernels, type Mat, mat, transpose } from '../backend/index.js';
import type { GlamConfig } from '../model/config.js';
import { isMoeLayer } from '../model/config.js';
import { relativeBucket } from '../model/layers/attention.js';
import { paramSpecs } from '../model/params.js';
import { Arena } from '../tensor/arena.js';
import { type AnyTensor, Bf16Tensor } from '../tensor/bf16.js';
import { sameShape, shapeString } from '../tensor/tensor.js';
import type { KvCachePool, KvSequence } from './kv-cache.js';
import { StepRouter } from './routing.js';

/**
 * Read access to the weights by checkpoint name: today's `Params` map fits, and so does any store
 * with a `get(name)` returning a tensor (one shared weight buffer with named views). The matrices may
 * be bf16 (a bf16 checkpoint loaded as stored, `loadCheckpointStored`): their products then run on
 * bf16 operands with float32 sums (`gemmBf16`), reading half the bytes; vectors, the relative bias
 * and the router are used in float32 (widened if given in bf16).
 */
export interface WeightSource {
  get(name: string): AnyTensor | undefined;
}

/** A weight matrix as stored: float32, or bf16 bits. */
type WeightData = Float32Array | Uint16Array;

/** c = alpha·a·W + beta·c for W [rows, cols] (transposed: W stored [cols, rows]), float32 or bf16. */
function product(
  K: Kernels,
  alpha: number,
  a: Mat,
  w: WeightData,
  rows: number,
  cols: number,
  beta: number,
  c: Mat,
  trans = false,
): void {
  if (w instanceof Uint16Array) {
    const v = trans ? transpose(bmat(w, cols, rows)) : bmat(w, rows, cols);
    K.gemmBf16(alpha, a, v, beta, c);
  } else {
    const v = trans ? transpose(mat(w, cols, rows)) : mat(w, rows, cols);
    K.sgemm(alpha, a, v, beta, c);
  }
}

/** The per-expert products of an MoE layer: expert g's rows of a times W_g = w [rows, cols] moved g·rows·cols. */
function groupedProduct(
  K: Kernels,
  offsets: Int32Array,
  a: Mat,
  w: WeightData,
  rows: number,
  cols: number,
  c: Mat,
): void {
  if (w instanceof Uint16Array) K.gemmGroupedBf16(offsets, 1, a, bmat(w, rows, cols), rows * cols, 0, c, 0);
  else K.sgemmGrouped(offsets, 1, a, mat(w, rows, cols), rows * cols, 0, c, 0);
}

/** One sequence's part of a step: the tokens it feeds at positions seq.length, seq.length + 1, ... */
export interface StepSegment {
  seq: KvSequence;
  tokens: ArrayLike<number>;
}

/** Per MoE layer and row of a step: the two experts chosen, their gates, and whether each was kept. */
export interface RoutingTrace {
  /** Model layer index of each MoE layer. */
  layers: number[];
  first: Int32Array[];
  second: Int32Array[];
  gate1: Float32Array[];
  gate2: Float32Array[];
  kept1: Uint8Array[];
  kept2: Uint8Array[];
}

/** Cumulative expert statistics of one MoE layer since the model was made (or reset). */
export interface ExpertCounters {
  layer: number;
  /** Kept assignments per expert. */
  load: Float64Array;
  /** Assignments dropped for lack of capacity. */
  dropped: number;
  /** Tokens routed. */
  tokens: number;
}

interface LayerWeights {
  attnNorm: Float32Array;
  wq: WeightData;
  wk: WeightData;
  wv: WeightData;
  wo: WeightData;
  relBias: Float32Array;
  ffnNorm: Float32Array;
  /** Dense layer: wi_0, wi_1, wo. */
  dense: { wi0: WeightData; wi1: WeightData; wo: WeightData } | null;
  /** MoE layer: router, wi (or wi_0), wi_1 when gated, wo. */
  moe: { router: Float32Array; wi: WeightData; wi1: WeightData | null; wo: WeightData } | null;
}

export class IncrementalModel {
  readonly capacityFactor: number;
  readonly counters: ExpertCounters[] = [];
  private readonly embed: WeightData;
  private readonly finalNorm: Float32Array;
  private readonly layers: LayerWeights[] = [];
  private readonly routers: (StepRouter | null)[] = [];
  private readonly bucketOf: Int32Array;
  private readonly maxBlocks: number;
  private readonly arena = new Arena();
  private hidden = new Float32Array(0);

  /**
   * Checks every weight's presence and shape against the config. `capacityFactor` overrides the
   * config's eval_capacity_factor (<= 0: dropless).
   */
  constructor(
    readonly config: GlamConfig,
    weights: WeightSource,
    readonly pool: KvCachePool,
    capacityFactor?: number,
  ) {
    const c = config;
    for (const s of paramSpecs(c)) {
      const t = weights.get(s.name);
      if (t === undefined) throw new Error(`inference: missing weight '${s.name}' ${shapeString(s.shape)}`);
      if (!sameShape(t.shape, s.shape)) {
        throw new Error(
          `inference: weight '${s.name}' has shape ${shapeString(t.shape)}, expected ${shapeString(s.shape)}`,
        );
      }
    }
    if (pool.layers !== c.n_layers || pool.width !== c.n_heads * c.d_head) {
      throw new Error('inference: the KV cache pool was made for another model shape');
    }
    // Matrices as stored; vectors, the relative bias and the router in float32.
    const w = (name: string): WeightData => weights.get(name)!.data;
    const f = (name: string): Float32Array => {
      const t = weights.get(name)!;
      return t instanceof Bf16Tensor ? t.toTensor().data : t.data;
    };
    this.embed = w('embed.weight');
    this.finalNorm = f('final_norm.scale');
    for (let l = 0; l < c.n_layers; l++) {
      const p = `layers.${l}`;
      const moe = isMoeLayer(c, l);
      this.layers.push({
        attnNorm: f(`${p}.attn_norm.scale`),
        wq: w(`${p}.attn.wq`),
        wk: w(`${p}.attn.wk`),
        wv: w(`${p}.attn.wv`),
        wo: w(`${p}.attn.wo`),
        relBias: f(`${p}.attn.rel_bias`),
        ffnNorm: f(`${p}.ffn_norm.scale`),
        dense: moe ? null : { wi0: w(`${p}.ffn.wi_0`), wi1: w(`${p}.ffn.wi_1`), wo: w(`${p}.ffn.wo`) },
        moe: moe
          ? {
              router: f(`${p}.moe.router`),
              wi: w(c.expert_gated ? `${p}.moe.wi_0` : `${p}.moe.wi`),
              wi1: c.expert_gated ? w(`${p}.moe.wi_1`) : null,
              wo: w(`${p}.moe.wo`),
            }
          : null,
      });
      this.routers.push(moe ? new StepRouter(c.n_experts) : null);
      if (moe) this.counters.push({ layer: l, load: new Float64Array(c.n_experts), dropped: 0, tokens: 0 });
    }
    this.capacityFactor = capacityFactor ?? c.eval_capacity_factor;
    this.bucketOf = Int32Array.from({ length: c.max_seq_len }, (_, n) =>
      relativeBucket(n, c.rel_buckets, c.rel_max_distance),
    );
    this.maxBlocks = pool.blocksFor(c.max_seq_len);
  }

  /** Model layers that hold an MoE sublayer. */
  get moeLayers(): number[] {
    return this.counters.map((s) => s.layer);
  }

  resetCounters(): void {
    for (const s of this.counters) {
      s.load.fill(0);
      s.dropped = 0;
      s.tokens = 0;
    }
  }

  /**
   * Runs one step: appends every segment's tokens to its cache and returns the final normed hidden
   * rows [outputRows.length, d_model] of the step's rows listed in `outputRows` (indices into the
   * segments' tokens concatenated in order). The returned array is reused by the next call.
   * With `trace`, records each row's routing in every MoE layer.
   */
  forward(segments: readonly StepSegment[], outputRows: Int32Array, trace?: RoutingTrace): Float32Array {
    const c = this.config;
    const D = c.d_model;
    const H = c.n_heads;
    const Dh = c.d_head;
    const HD = H * Dh;
    const K = kernels();
    const pool = this.pool;
    let R = 0;
    for (const s of segments) {
      if (s.tokens.length === 0) throw new Error('inference: a step segment has no tokens');
      if (s.seq.length + s.tokens.length > c.max_seq_len) {
        throw new Error(
          `inference: a sequence would reach ${s.seq.length + s.tokens.length} tokens, over max_seq_len ${c.max_seq_len}`,
        );
      }
      R += s.tokens.length;
    }
    for (let i = 0; i < outputRows.length; i++) {
      const r = outputRows[i]!;
      if (!(Number.isInteger(r) && r >= 0 && r < R))
        throw new Error(`inference: output row ${r} outside [0, ${R})`);
    }
    const ids = new Int32Array(R);
    const rowSeq = new Int32Array(R);
    const rowPos = new Int32Array(R);
    const slots = new Int32Array(R);
    const groups = new Int32Array(2 * segments.length);
    let r = 0;
    segments.forEach((s, si) => {
      groups[2 * si] = r;
      for (let t = 0; t < s.tokens.length; t++) {
        const id = s.tokens[t]!;
        if (!(Number.isInteger(id) && id >= 0 && id < c.vocab_size)) {
          throw new Error(`inference: token id ${id} is outside the vocabulary [0, ${c.vocab_size})`);
        }
        ids[r + t] = id;
        rowSeq[r + t] = si;
        rowPos[r + t] = s.seq.length + t;
      }
      r += s.tokens.length;
      groups[2 * si + 1] = r;
    });
    // Slots for the new tokens (the cache grows here; K and V rows are written layer by layer below).
    r = 0;
    for (const s of segments) {
      pool.append(s.seq, s.tokens.length, slots, r);
      r += s.tokens.length;
    }
    const table = new Int32Array(segments.length * this.maxBlocks);
    segments.forEach((s, si) => {
      table.set(s.seq.blocks, si * this.maxBlocks);
    });

    const arena = this.arena;
    arena.reset();
    const h = arena.alloc([R, D]).data;
    if (this.embed instanceof Uint16Array) {
      for (let i = 0; i < R; i++)
        fromBf16(this.embed.subarray(ids[i]! * D, (ids[i]! + 1) * D), h.subarray(i * D));
    } else {
      K.gatherRows(mat(this.embed, c.vocab_size, D), ids, mat(h, R, D));
    }
    const a = arena.alloc([R, D]).data;
    const inv = arena.alloc([R]).data;
    const q = arena.alloc([R, HD]).data;
    const k = arena.alloc([R, HD]).data;
    const v = arena.alloc([R, HD]).data;
    const o = arena.alloc([R, HD]).data;
    let moeIndex = 0;
    for (let l = 0; l < c.n_layers; l++) {
      const w = this.layers[l]!;
      K.rmsnorm(mat(h, R, D), w.attnNorm, c.norm_eps, mat(a, R, D), inv);
      const am = mat(a, R, D);
      product(K, 1, am, w.wq, D, HD, 0, mat(q, R, HD));
      product(K, 1, am, w.wk, D, HD, 0, mat(k, R, HD));
      product(K, 1, am, w.wv, D, HD, 0, mat(v, R, HD));
      const kc = pool.k[l]!;
      const vc = pool.v[l]!;
      for (let i = 0; i < R; i++) {
        const src = i * HD;
        kc.set(k.subarray(src, src + HD), slots[i]! * HD);
        vc.set(v.subarray(src, src + HD), slots[i]! * HD);
      }
      const slotsTotal = pool.numBlocks * pool.blockSize;
      K.pagedAttention(
        mat(q, R, HD),
        mat(kc, slotsTotal, HD),
        mat(vc, slotsTotal, HD),
        table,
        this.maxBlocks,
        pool.blockSize,
        rowSeq,
        rowPos,
        mat(w.relBias, c.rel_buckets, H),
        this.bucketOf,
        1 / Math.sqrt(Dh),
        mat(o, R, HD),
      );
      product(K, 1, mat(o, R, HD), w.wo, HD, D, 1, mat(h, R, D));
      K.rmsnorm(mat(h, R, D), w.ffnNorm, c.norm_eps, mat(a, R, D), inv);
      if (w.dense !== null) {
        this.denseFfn(w.dense, a, R, h);
      } else {
        this.moeFfn(l, moeIndex, w.moe!, a, R, groups, h, trace);
        moeIndex++;
      }
    }
    const n = outputRows.length;
    const picked = arena.alloc([n, D]).data;
    K.gatherRows(mat(h, R, D), outputRows, mat(picked, n, D));
    if (this.hidden.length < n * D) this.hidden = new Float32Array(n * D);
    const out = this.hidden.subarray(0, n * D);
    K.rmsnorm(mat(picked, n, D), this.finalNorm, c.norm_eps, mat(out, n, D), arena.alloc([n]).data);
    return out;
  }

  /** logits [rows, vocab] = (x / sqrt(d_model))·Eᵀ for final hidden rows x [rows, d_model], into `out`. */
  logits(x: Float32Array, rows: number, out: Float32Array): Float32Array {
    const { d_model: D, vocab_size: V } = this.config;
    if (out.length < rows * V) throw new Error(`logits: out has ${out.length} elements, needs ${rows * V}`);
    if (rows > 0)
      product(kernels(), 1 / Math.sqrt(D), mat(x, rows, D), this.embed, D, V, 0, mat(out, rows, V), true);
    return out.subarray(0, rows * V);
  }

  /** An empty routing trace with room for `rows` rows. */
  newTrace(rows: number): RoutingTrace {
    const L = this.counters.length;
    const make = <T>(f: () => T) => Array.from({ length: L }, f);
    return {
      layers: this.moeLayers,
      first: make(() => new Int32Array(rows)),
      second: make(() => new Int32Array(rows)),
      gate1: make(() => new Float32Array(rows)),
      gate2: make(() => new Float32Array(rows)),
      kept1: make(() => new Uint8Array(rows)),
      kept2: make(() => new Uint8Array(rows)),
    };
  }

  private denseFfn(
    w: { wi0: WeightData; wi1: WeightData; wo: WeightData },
    f: Float32Array,
    R: number,
    h: Float32Array,
  ): void {
    const { d_model: D, d_ff: F } = this.config;
    const K = kernels();
    const h0 = this.arena.alloc([R, F]).data;
    const h1 = this.arena.alloc([R, F]).data;
    const fm = mat(f, R, D);
    product(K, 1, fm, w.wi0, D, F, 0, mat(h0, R, F));
    product(K, 1, fm, w.wi1, D, F, 0, mat(h1, R, F));
    const act = this.arena.alloc([R, F]).data;
    K.gatedGelu(h0, h1, act);
    product(K, 1, mat(act, R, F), w.wo, F, D, 1, mat(h, R, D));
  }

  private moeFfn(
    layer: number,
    moeIndex: number,
    w: { router: Float32Array; wi: WeightData; wi1: WeightData | null; wo: WeightData },
    f: Float32Array,
    R: number,
    groups: Int32Array,
    h: Float32Array,
    trace: RoutingTrace | undefined,
  ): void {
    const c = this.config;
    const D = c.d_model;
    const E = c.n_experts;
    const F = c.d_ff_expert;
    const K = kernels();
    const arena = this.arena;
    const p = arena.alloc([R, E]).data;
    K.sgemm(1, mat(f, R, D), mat(w.router, D, E), 0, mat(p, R, E));
    K.softmaxRows(mat(p, R, E), mat(p, R, E));
    const router = this.routers[layer]!;
    router.route(p, R, groups, this.capacityFactor);
    const A = router.assignments;
    const stats = this.counters[moeIndex]!;
    for (let e = 0; e < E; e++) stats.load[e]! += router.load[e]!;
    stats.dropped += router.dropped;
    stats.tokens += R;
    if (trace !== undefined) {
      trace.first[moeIndex]!.set(router.first.subarray(0, R));
      trace.second[moeIndex]!.set(router.second.subarray(0, R));
      trace.gate1[moeIndex]!.set(router.gate1.subarray(0, R));
      trace.gate2[moeIndex]!.set(router.gate2.subarray(0, R));
      trace.kept1[moeIndex]!.set(router.kept1.subarray(0, R));
      trace.kept2[moeIndex]!.set(router.kept2.subarray(0, R));
    }
    if (A === 0) return;
    const token = router.token.subarray(0, A);
    const x = arena.alloc([A, D]).data;
    const h0 = arena.alloc([A, F]).data;
    const act = arena.alloc([A, F]).data;
    const y = arena.alloc([A, D]).data;
    K.gatherRows(mat(f, R, D), token, mat(x, A, D));
    const off = router.offsets;
    groupedProduct(K, off, mat(x, A, D), w.wi, D, F, mat(h0, A, F));
    if (w.wi1 !== null) {
      const h1 = arena.alloc([A, F]).data;
      groupedProduct(K, off, mat(x, A, D), w.wi1, D, F, mat(h1, A, F));
      K.gatedGelu(h0, h1, act);
    } else {
      K.gelu(h0, act);
    }
    groupedProduct(K, off, mat(act, A, F), w.wo, F, D, mat(y, A, D));
    K.scatterAddRows(mat(y, A, D), token, router.gate.subarray(0, A), mat(h, R, D));
  }
}
