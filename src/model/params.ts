import { sameShape, shapeString, type Tensor } from '../tensor/tensor.js';
import { type GlamConfig, isMoeLayer } from './config.js';

/**
 * Named tensors by their checkpoint names (docs/model.md "Checkpoint format"): a model's weights or
 * gradients (Weights and Grads implement it over one flat buffer), or any map of tensors.
 */
export type Params = ReadonlyMap<string, Tensor>;

/** Every kind of parameter, in the order `--lr-scale` lists them. */
export const PARAM_KINDS = ['embedding', 'projection', 'router', 'expert', 'norm', 'rel_bias'] as const;

/** What a parameter is, for initialisation, optimiser factoring and per-kind learning rates. */
export type ParamKind = (typeof PARAM_KINDS)[number];

/** Learning-rate multipliers by parameter name from multipliers by kind (kinds left out: none). */
export function lrScalesByKind(
  cfg: GlamConfig,
  byKind: Readonly<Partial<Record<ParamKind, number>>>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const spec of paramSpecs(cfg)) {
    const scale = byKind[spec.kind];
    if (scale !== undefined) out[spec.name] = scale;
  }
  return out;
}

export interface ParamSpec {
  name: string;
  shape: number[];
  kind: ParamKind;
}

/**
 * Under expert parallelism, the experts of every MoE layer a process holds: [first, first + count)
 * of the n_experts (its expert tensors are [count, ...] slices of the full ones).
 */
export interface ExpertRange {
  first: number;
  count: number;
}

/**
 * Every parameter of a config, in canonical (checkpoint) order; with `experts`, the expert tensors
 * of a process that holds only that range of them.
 */
export function paramSpecs(cfg: GlamConfig, experts?: ExpertRange): ParamSpec[] {
  if (experts !== undefined) {
    const { first, count } = experts;
    if (!(Number.isInteger(first) && Number.isInteger(count) && first >= 0 && count >= 1))
      throw new Error(`expert range must be integers first >= 0, count >= 1, got ${first}, ${count}`);
    if (first + count > cfg.n_experts)
      throw new Error(`expert range [${first}, ${first + count}) exceeds the ${cfg.n_experts} experts`);
  }
  const D = cfg.d_model;
  const HD = cfg.n_heads * cfg.d_head;
  const specs: ParamSpec[] = [{ name: 'embed.weight', shape: [cfg.vocab_size, D], kind: 'embedding' }];
  for (let l = 0; l < cfg.n_layers; l++) {
    const p = `layers.${l}`;
    specs.push(
      { name: `${p}.attn_norm.scale`, shape: [D], kind: 'norm' },
      { name: `${p}.attn.wq`, shape: [D, HD], kind: 'projection' },
      { name: `${p}.attn.wk`, shape: [D, HD], kind: 'projection' },
      { name: `${p}.attn.wv`, shape: [D, HD], kind: 'projection' },
      { name: `${p}.attn.wo`, shape: [HD, D], kind: 'projection' },
      { name: `${p}.attn.rel_bias`, shape: [cfg.rel_buckets, cfg.n_heads], kind: 'rel_bias' },
      { name: `${p}.ffn_norm.scale`, shape: [D], kind: 'norm' },
    );
    if (isMoeLayer(cfg, l)) {
      const E = cfg.n_experts;
      const F = cfg.d_ff_expert;
      specs.push({ name: `${p}.moe.router`, shape: [D, E], kind: 'router' });
      const held = experts?.count ?? E;
      if (cfg.expert_gated) {
        specs.push(
          { name: `${p}.moe.wi_0`, shape: [held, D, F], kind: 'expert' },
          { name: `${p}.moe.wi_1`, shape: [held, D, F], kind: 'expert' },
        );
      } else {
        specs.push({ name: `${p}.moe.wi`, shape: [held, D, F], kind: 'expert' });
      }
      specs.push({ name: `${p}.moe.wo`, shape: [held, F, D], kind: 'expert' });
    } else {
      specs.push(
        { name: `${p}.ffn.wi_0`, shape: [D, cfg.d_ff], kind: 'projection' },
        { name: `${p}.ffn.wi_1`, shape: [D, cfg.d_ff], kind: 'projection' },
        { name: `${p}.ffn.wo`, shape: [cfg.d_ff, D], kind: 'projection' },
      );
    }
  }
  specs.push({ name: 'final_norm.scale', shape: [D], kind: 'norm' });
  return specs;
}

/** Expected name and shape of one tensor of a tensor file. */
export interface TensorExpectation {
  name: string;
  shape: readonly number[];
}

/** Quoted names listed for an error message, at most `max` of them. */
function listNames(names: string[], max = 5): string {
  const shown = names.slice(0, max);
  if (names.length > max) shown.push(`and ${names.length - max} more`);
  return shown.join(', ');
}

/**
 * The one check of a set of named tensors (a checkpoint file's header, parameters to save, parameters
 * copied into Weights): every expected name present, no other names, shapes equal; `source` begins
 * each message.
 */
export function checkTensorSet(
  actual: Map<string, readonly number[]>,
  expected: readonly TensorExpectation[],
  source: string,
): void {
  const want = new Map(expected.map((e) => [e.name, e.shape]));
  const missing = [...want]
    .filter(([n]) => !actual.has(n))
    .map(([n, shape]) => `'${n}' ${shapeString(shape)}`);
  if (missing.length > 0) throw new Error(`${source}: missing tensor ${listNames(missing)}`);
  const unexpected = [...actual.keys()].filter((n) => !want.has(n)).map((n) => `'${n}'`);
  if (unexpected.length > 0) throw new Error(`${source}: unexpected tensor ${listNames(unexpected)}`);
  for (const [name, shape] of want) {
    const got = actual.get(name)!;
    if (!sameShape(got, shape)) {
      throw new Error(
        `${source}: tensor '${name}' has shape ${shapeString(got)}, expected ${shapeString(shape)}`,
      );
    }
  }
}
