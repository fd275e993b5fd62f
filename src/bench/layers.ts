/**
 * Per-layer compute: forward + backward time of each kind of layer (attention, dense FFN, MoE, output
 * projection with the loss) at one shape, and the training FLOP/s each achieves. The cluster projection
 * (src/dist/projection.ts) prices every layer of a large model at these rates.
 *
 * FLOPs per token and layer, as in src/model/accounting.ts (multiply-add = 2, backward = 2 forwards):
 * attention 6·4·D·HD + 12·HD·T, FFN 6·3·D·F, MoE 6·D·E + 6·k·m·D·Fe (m = 2 or 3 expert matrices),
 * output 6·V·D.
 */
import { kernels } from '../backend/index.js';
import { AttentionLayer } from '../model/layers/attention.js';
import { TiedEmbedding } from '../model/layers/embedding.js';
import { GatedFfnLayer } from '../model/layers/ffn.js';
import { LossLayer } from '../model/layers/loss.js';
import { MoeLayer } from '../model/layers/moe.js';
import { Arena } from '../tensor/arena.js';
import { Rng } from '../util/rng.js';
import { type Summary, summarize } from './stats.js';

export interface LayerShape {
  dModel: number;
  heads: number;
  dHead: number;
  dFf: number;
  experts: number;
  dFfExpert: number;
  vocab: number;
  batch: number;
  seqLen: number;
}

export type LayerKindName = 'attention' | 'ffn' | 'moe' | 'output';

export interface LayerTiming {
  kind: LayerKindName;
  /** Training FLOPs of one forward + backward of the layer over the batch. */
  flops: number;
  ms: Summary;
  /** flops / median seconds. */
  flopsPerSec: number;
}

export interface LayerBenchResult {
  shape: LayerShape;
  threads: number;
  kernels: string;
  layers: LayerTiming[];
  /** Achieved training FLOP/s per layer kind: the input of `glam bench cluster --compute`. */
  rates: Record<LayerKindName, number>;
}

function randomArray(rng: Rng, n: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng.uniform() * 2 - 1) * scale;
  return a;
}

/** Times `rounds` forward+backward passes of every layer kind (after one untimed warm-up each). */
export function benchLayers(s: LayerShape, rounds: number, seed = 1): LayerBenchResult {
  const rng = new Rng(seed);
  const D = s.dModel;
  const HD = s.heads * s.dHead;
  const N = s.batch * s.seqLen;
  const arena = new Arena();
  const scratch = new Arena();
  const x = randomArray(rng, N * D, 1);
  const dOut = randomArray(rng, N * D, 1e-3);
  const out = new Float32Array(N * D);
  const dIn = new Float32Array(N * D);
  const w = (n: number, fanIn: number) => randomArray(rng, n, 1 / Math.sqrt(fanIn));
  const z = (n: number) => new Float32Array(n);

  const passes: Record<LayerKindName, { flops: number; run(): void }> = {
    attention: (() => {
      const layer = new AttentionLayer({
        dModel: D,
        heads: s.heads,
        dHead: s.dHead,
        relBuckets: 32,
        relMaxDistance: 128,
      });
      const weights = {
        wq: w(D * HD, D),
        wk: w(D * HD, D),
        wv: w(D * HD, D),
        wo: w(HD * D, HD),
        relBias: w(32 * s.heads, 1),
      };
      const grads = { wq: z(D * HD), wk: z(D * HD), wv: z(D * HD), wo: z(HD * D), relBias: z(32 * s.heads) };
      return {
        flops: N * (6 * 4 * D * HD + 12 * HD * s.seqLen),
        run() {
          layer.forward(arena, scratch, x, weights, s.batch, s.seqLen, out);
          layer.backward(scratch, weights, grads, dOut, dIn);
        },
      };
    })(),
    ffn: (() => {
      const layer = new GatedFfnLayer(D, s.dFf);
      const weights = { wi0: w(D * s.dFf, D), wi1: w(D * s.dFf, D), wo: w(s.dFf * D, s.dFf) };
      const grads = { wi0: z(D * s.dFf), wi1: z(D * s.dFf), wo: z(s.dFf * D) };
      return {
        flops: N * 6 * 3 * D * s.dFf,
        run() {
          layer.forward(arena, x, weights, N, out);
          layer.backward(scratch, weights, grads, dOut, dIn);
        },
      };
    })(),
    moe: (() => {
      const E = s.experts;
      const F = s.dFfExpert;
      const layer = new MoeLayer({ dModel: D, dFf: F, experts: E, gated: false });
      const weights = { router: w(D * E, D), wi: w(E * D * F, D), wi1: null, wo: w(E * F * D, F) };
      const grads = { router: z(D * E), wi: z(E * D * F), wi1: null, wo: z(E * F * D) };
      return {
        flops: N * (6 * D * E + 6 * 2 * 2 * D * F),
        run() {
          layer.forward(arena, x, weights, N, { capacityFactor: 0, numGroups: 1, policy: 'all' }, out);
          layer.backward(scratch, weights, grads, dOut, dIn, 0.01);
        },
      };
    })(),
    output: (() => {
      const embed = new TiedEmbedding(s.vocab, D);
      const loss = new LossLayer(s.vocab);
      const table = w(s.vocab * D, D);
      const dTable = z(s.vocab * D);
      const targets = Int32Array.from({ length: N }, () => rng.int(s.vocab));
      return {
        flops: N * 6 * s.vocab * D,
        run() {
          const logits = embed.project(arena, table, x, N);
          loss.forward(arena, logits, targets, N);
          const dlogits = loss.backward(1 / N, 1e-4 / N);
          embed.projectBackward(arena, table, dlogits, dTable);
        },
      };
    })(),
  };

  const layers: LayerTiming[] = [];
  for (const kind of Object.keys(passes) as LayerKindName[]) {
    const p = passes[kind];
    const times: number[] = [];
    for (let r = 0; r <= rounds; r++) {
      arena.reset();
      scratch.reset();
      const t0 = performance.now();
      p.run();
      const ms = performance.now() - t0;
      if (r > 0) times.push(ms);
    }
    const ms = summarize(times);
    layers.push({ kind, flops: p.flops, ms, flopsPerSec: p.flops / (ms.median / 1000) });
  }
  const rates = Object.fromEntries(layers.map((l) => [l.kind, l.flopsPerSec])) as Record<
    LayerKindName,
    number
  >;
  const k = kernels();
  return { shape: s, threads: k.getThreads?.() ?? 1, kernels: k.describe(), layers, rates };
}

export function formatLayerBench(r: LayerBenchResult): string {
  const s = r.shape;
  const lines = [
    `layers at d_model ${s.dModel}, ${s.heads}x${s.dHead} heads, d_ff ${s.dFf}, ${s.experts} experts of ${s.dFfExpert}, vocab ${s.vocab}, ${s.batch}x${s.seqLen} tokens; ${r.kernels}`,
    'layer        fwd+bwd ms (median [min-max])     GFLOP/s',
  ];
  for (const l of r.layers) {
    lines.push(
      `${l.kind.padEnd(12)} ${`${l.ms.median.toFixed(1)} [${l.ms.min.toFixed(1)}-${l.ms.max.toFixed(1)}]`.padEnd(32)} ${(l.flopsPerSec / 1e9).toFixed(1)}`,
    );
  }
  return lines.join('\n');
}
