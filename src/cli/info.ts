/** `glam info`: parameter, FLOP and memory accounting of a preset or config file. */
import { accounting, formatBytes, formatCount, formatFlops } from '../model/accounting.js';
import { isPreset, presetDoc, presetNames, resolveConfig } from '../model/presets.js';
import { intOption, parseCommand, requireOption } from './args.js';

const HELP = `usage: glam info --config NAME|FILE [--seq-len T] [--json]

Parameter, FLOP and memory accounting of a model config.

options:
  --config NAME|FILE  a preset name or a JSON config file (a checkpoint's config.json works)
  --seq-len T         context length for the attention FLOPs (default: the config's max_seq_len)
  --json              print the figures as one JSON object
  -h, --help          this help

presets: ${presetNames().join(', ')}

FLOPs per token: inference 2N + 4·L·H·Dh·T, training 6N + 12·L·H·Dh·T, with N the
parameters used in matrix products per token (active parameters less norms and
rel_bias; the tied embedding counts once, as the output projection).`;

export async function run(args: string[]): Promise<void> {
  const values = parseCommand(
    args,
    {
      config: { type: 'string' },
      'seq-len': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    HELP,
  );
  if (values === undefined) return;
  const name = requireOption('info', 'config', values.config);
  const cfg = resolveConfig(name);
  const seqLen =
    values['seq-len'] !== undefined ? intOption('seq-len', values['seq-len'], 1) : cfg.max_seq_len;
  const a = accounting(cfg, seqLen);
  if (values.json) {
    console.log(JSON.stringify({ config: name, ...a }, null, 2));
    return;
  }
  const moe =
    cfg.n_experts > 0
      ? `${cfg.n_experts} experts every ${cfg.moe_layer_interval} layers (top-${cfg.top_k}, d_ff_expert ${cfg.d_ff_expert}${cfg.expert_gated ? ', gated' : ''})`
      : 'dense';
  const exact = (n: number) => n.toLocaleString('en-US');
  const rows: [string, string][] = [
    ['config', isPreset(name) ? `${name}: ${presetDoc(name)}` : name],
    [
      'shape',
      `${cfg.n_layers} layers (${a.moe_layers} MoE, ${a.dense_layers} dense), d_model ${cfg.d_model}, ${cfg.n_heads} heads × ${cfg.d_head}, d_ff ${cfg.d_ff}, vocab ${cfg.vocab_size}`,
    ],
    ['experts', moe],
    ['total params', `${formatCount(a.total_params)}  (${exact(a.total_params)})`],
    ['active params / token', `${formatCount(a.active_params)}  (${exact(a.active_params)})`],
    ['embedding params', formatCount(a.embedding_params)],
    ['train FLOPs / token', `${formatFlops(a.train_flops_per_token)}  (T = ${a.context_len})`],
    ['infer FLOPs / token', formatFlops(a.infer_flops_per_token)],
    ['weights, F32', formatBytes(a.weight_bytes)],
    ['weights, bf16', formatBytes(a.weight_bytes_bf16)],
    ['Adafactor state', formatBytes(a.adafactor_bytes)],
    ['AdamW state', formatBytes(a.adamw_bytes)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
}
