/**
 * GLaM model configuration (docs/model.md "Configuration"): the keys of a checkpoint's config.json.
 */
import { briefValue } from '../util/files.js';
export interface GlamConfig {
  vocab_size: number;
  d_model: number;
  n_layers: number;
  n_heads: number;
  d_head: number;
  d_ff: number;
  /** 0 = dense model. */
  n_experts: number;
  d_ff_expert: number;
  moe_layer_interval: number;
  top_k: number;
  expert_gated: boolean;
  /** <= 0: no capacity limit (dropless). */
  capacity_factor: number;
  eval_capacity_factor: number;
  second_expert_policy: 'all' | 'random';
  num_groups: number;
  rel_buckets: number;
  rel_max_distance: number;
  norm_eps: number;
  aux_loss_weight: number;
  z_loss_weight: number;
  max_seq_len: number;
}

export const CHECKPOINT_FORMAT = 'glam-moe/1';

const REQUIRED_INT = [
  'vocab_size',
  'd_model',
  'n_layers',
  'n_heads',
  'd_head',
  'd_ff',
  'n_experts',
  'max_seq_len',
] as const;

/**
 * Upper bounds of the sizes, checked before anything is allocated per layer or per expert:
 * generous (the paper's largest models use a tenth or less of each) but finite, so a corrupt
 * or hostile config.json gets an error naming the key instead of exhausting memory.
 */
export const CONFIG_LIMITS = {
  vocab_size: 1 << 21,
  d_model: 1 << 16,
  n_layers: 1024,
  n_heads: 1024,
  d_head: 4096,
  d_ff: 1 << 20,
  d_ff_expert: 1 << 20,
  n_experts: 4096,
  moe_layer_interval: 1024,
  top_k: 64,
  num_groups: 1 << 20,
  rel_buckets: 4096,
  rel_max_distance: 1 << 20,
  max_seq_len: 1 << 20,
} as const;

const DEFAULTS = {
  moe_layer_interval: 2,
  top_k: 2,
  expert_gated: false,
  capacity_factor: 2.0,
  eval_capacity_factor: 0,
  second_expert_policy: 'all',
  num_groups: 1,
  rel_buckets: 32,
  rel_max_distance: 128,
  norm_eps: 1e-6,
  aux_loss_weight: 0.01,
  z_loss_weight: 1e-4,
} as const;

/** True when layer l holds an MoE feed-forward sublayer. */
export function isMoeLayer(cfg: GlamConfig, l: number): boolean {
  return cfg.n_experts > 0 && l % cfg.moe_layer_interval === 0;
}

/**
 * Validate a parsed config.json (or preset) and fill defaults. `source` names
 * the file in error messages. Unknown keys are refused so typos do not pass silently.
 */
export function parseConfig(raw: unknown, source = 'config'): GlamConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error(`${source}: expected a JSON object`);
  }
  const obj = raw as Record<string, unknown>;
  const known = new Set<string>([...REQUIRED_INT, ...Object.keys(DEFAULTS), 'd_ff_expert', 'format', 'name']);
  for (const key of Object.keys(obj)) {
    if (!known.has(key)) throw new Error(`${source}: unknown key '${key}'`);
  }
  if (obj.format !== undefined && obj.format !== CHECKPOINT_FORMAT) {
    const got = typeof obj.format === 'string' ? `'${obj.format.slice(0, 60)}'` : briefValue(obj.format);
    throw new Error(`${source}: format ${got} is not '${CHECKPOINT_FORMAT}'`);
  }
  const num = (key: string, dflt?: number): number => {
    const v = obj[key] ?? dflt;
    if (v === undefined) throw new Error(`${source}: missing required key '${key}'`);
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new Error(`${source}: '${key}' must be a finite number, got ${briefValue(v)}`);
    }
    return v;
  };
  const int = (key: keyof typeof CONFIG_LIMITS, min: number, dflt?: number): number => {
    const v = num(key, dflt);
    if (!Number.isInteger(v) || v < min)
      throw new Error(`${source}: '${key}' must be an integer >= ${min}, got ${v}`);
    if (v > CONFIG_LIMITS[key])
      throw new Error(`${source}: '${key}' is ${v}, over the limit of ${CONFIG_LIMITS[key]}`);
    return v;
  };
  const bool = (key: string, dflt: boolean): boolean => {
    const v = obj[key] ?? dflt;
    if (typeof v !== 'boolean')
      throw new Error(`${source}: '${key}' must be true or false, got ${briefValue(v)}`);
    return v;
  };
  const policy = obj.second_expert_policy ?? DEFAULTS.second_expert_policy;
  if (policy !== 'all' && policy !== 'random') {
    throw new Error(`${source}: 'second_expert_policy' must be "all" or "random", got ${briefValue(policy)}`);
  }
  const d_ff = int('d_ff', 1);
  const cfg: GlamConfig = {
    vocab_size: int('vocab_size', 1),
    d_model: int('d_model', 1),
    n_layers: int('n_layers', 1),
    n_heads: int('n_heads', 1),
    d_head: int('d_head', 1),
    d_ff,
    n_experts: int('n_experts', 0),
    d_ff_expert: int('d_ff_expert', 1, d_ff),
    moe_layer_interval: int('moe_layer_interval', 1, DEFAULTS.moe_layer_interval),
    top_k: int('top_k', 1, DEFAULTS.top_k),
    expert_gated: bool('expert_gated', DEFAULTS.expert_gated),
    capacity_factor: num('capacity_factor', DEFAULTS.capacity_factor),
    eval_capacity_factor: num('eval_capacity_factor', DEFAULTS.eval_capacity_factor),
    second_expert_policy: policy,
    num_groups: int('num_groups', 1, DEFAULTS.num_groups),
    rel_buckets: int('rel_buckets', 2, DEFAULTS.rel_buckets),
    rel_max_distance: int('rel_max_distance', 1, DEFAULTS.rel_max_distance),
    norm_eps: num('norm_eps', DEFAULTS.norm_eps),
    aux_loss_weight: num('aux_loss_weight', DEFAULTS.aux_loss_weight),
    z_loss_weight: num('z_loss_weight', DEFAULTS.z_loss_weight),
    max_seq_len: int('max_seq_len', 1),
  };
  if (cfg.norm_eps <= 0) throw new Error(`${source}: 'norm_eps' must be > 0, got ${cfg.norm_eps}`);
  if (cfg.n_experts > 0 && cfg.top_k !== 2) {
    throw new Error(`${source}: only top_k = 2 (GLaM's top-2 gating) is supported, got ${cfg.top_k}`);
  }
  if (cfg.n_experts === 1)
    throw new Error(`${source}: 'n_experts' must be 0 (dense) or >= 2 for top-2 gating`);
  if (cfg.rel_max_distance <= cfg.rel_buckets / 2) {
    throw new Error(`${source}: 'rel_max_distance' (${cfg.rel_max_distance}) must exceed rel_buckets / 2`);
  }
  return cfg;
}

/** The config as written to config.json (with the format tag). */
export function configToJson(cfg: GlamConfig): Record<string, unknown> {
  return { format: CHECKPOINT_FORMAT, ...cfg };
}
