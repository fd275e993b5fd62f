/**
 * Parameter, FLOP and memory accounting of a config.
 *
 * Parameters
 * - total: every stored parameter (paramSpecs).
 * - active per token: the embedding once, every dense-layer parameter, and in an
 *   MoE layer the router plus top_k of the E experts (top_k/E of each expert tensor).
 *
 * FLOPs per token (one multiply-add = 2 FLOPs; element-wise work such as norms,
 * softmax and GELU is left out, as is usual):
 * - N = parameters used in matrix products per token: the active parameters less
 *   norm scales and rel_bias. The embedding counts once, as the (tied) output
 *   projection; the input lookup costs nothing.
 * - attention scores and the weighted sum of values: 2 · n_layers · (n_heads · d_head) · T
 *   multiply-adds per token with T = context length (max_seq_len by default).
 *   Like PaLM's 6N + 12·L·H·Q·T this counts the full window; the causal mask
 *   would halve it on average.
 * - inference (forward) = 2·N + 4·L·H·Dh·T; training (forward + backward, the
 *   backward costing two forwards) = 6·N + 12·L·H·Dh·T.
 *
 * Memory
 * - weights: 4 bytes per parameter (F32, as stored); bf16 figure alongside.
 * - Adafactor state (β1 = 0, so second moments only): a matrix [r, c] keeps r + c
 *   float32 statistics, an expert tensor [E, r, c] keeps E·(r + c) (each expert
 *   factored on its own), a vector keeps one per element.
 * - AdamW state: two float32 moments per parameter.
 */
import type { GlamConfig } from './config.js';
import { isMoeLayer } from './config.js';
import { type ParamSpec, paramSpecs } from './params.js';

export interface ModelAccounting {
  total_params: number;
  active_params: number;
  embedding_params: number;
  non_embedding_params: number;
  /** Stored expert weights over all MoE layers (excluding routers). */
  expert_params: number;
  moe_layers: number;
  dense_layers: number;
  /** N of the FLOP formulas: parameters used in matrix products per token. */
  matmul_params_per_token: number;
  /** Context length T used for the attention term. */
  context_len: number;
  train_flops_per_token: number;
  infer_flops_per_token: number;
  weight_bytes: number;
  weight_bytes_bf16: number;
  adafactor_bytes: number;
  adamw_bytes: number;
}

function size(spec: ParamSpec): number {
  return spec.shape.reduce((a, b) => a * b, 1);
}

/** Float32 second-moment statistics Adafactor keeps for one parameter. */
export function adafactorStateElements(spec: ParamSpec): number {
  const s = spec.shape;
  if (s.length < 2) return size(spec);
  const rows = s[s.length - 2]!;
  const cols = s[s.length - 1]!;
  const matrices = s.slice(0, -2).reduce((a, b) => a * b, 1);
  return matrices * (rows + cols);
}

export function accounting(cfg: GlamConfig, contextLen = cfg.max_seq_len): ModelAccounting {
  let total = 0;
  let active = 0;
  let embedding = 0;
  let elementwise = 0;
  let experts = 0;
  let adafactor = 0;
  const activeExpertFraction = cfg.n_experts > 0 ? Math.min(cfg.top_k, cfg.n_experts) / cfg.n_experts : 0;
  for (const spec of paramSpecs(cfg)) {
    const n = size(spec);
    total += n;
    adafactor += adafactorStateElements(spec);
    switch (spec.kind) {
      case 'embedding':
        embedding += n;
        active += n;
        break;
      case 'expert':
        experts += n;
        active += n * activeExpertFraction;
        break;
      case 'norm':
      case 'rel_bias':
        elementwise += n;
        active += n;
        break;
      default:
        active += n;
    }
  }
  let moeLayers = 0;
  for (let l = 0; l < cfg.n_layers; l++) if (isMoeLayer(cfg, l)) moeLayers++;
  const matmul = active - elementwise;
  const attention = cfg.n_layers * cfg.n_heads * cfg.d_head * contextLen;
  return {
    total_params: total,
    active_params: active,
    embedding_params: embedding,
    non_embedding_params: total - embedding,
    expert_params: experts,
    moe_layers: moeLayers,
    dense_layers: cfg.n_layers - moeLayers,
    matmul_params_per_token: matmul,
    context_len: contextLen,
    train_flops_per_token: 6 * matmul + 12 * attention,
    infer_flops_per_token: 2 * matmul + 4 * attention,
    weight_bytes: 4 * total,
    weight_bytes_bf16: 2 * total,
    adafactor_bytes: 4 * adafactor,
    adamw_bytes: 8 * total,
  };
}

/**
 * Short count: 'count' style uses K, M, B, T (parameters: 96.6B), 'si' style
 * K, M, G, T, P (FLOPs: 580 GFLOP). Three significant digits.
 */
export function formatCount(n: number, style: 'count' | 'si' = 'count'): string {
  const units: [number, string][] =
    style === 'si'
      ? [
          [1e15, 'P'],
          [1e12, 'T'],
          [1e9, 'G'],
          [1e6, 'M'],
          [1e3, 'K'],
        ]
      : [
          [1e12, 'T'],
          [1e9, 'B'],
          [1e6, 'M'],
          [1e3, 'K'],
        ];
  for (const [scale, suffix] of units) {
    if (Math.abs(n) >= scale) return `${(n / scale).toPrecision(3)}${suffix}`;
  }
  return String(n);
}

/** FLOPs with an SI prefix: 5.925e11 → "593 GFLOP". */
export function formatFlops(n: number): string {
  const short = formatCount(n, 'si');
  return /[A-Z]$/.test(short) ? `${short.slice(0, -1)} ${short.slice(-1)}FLOP` : `${short} FLOP`;
}

/** Bytes in binary units: 1536 → "1.50 KiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(2)} ${units[i]}`;
}
