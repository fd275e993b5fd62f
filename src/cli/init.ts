/** `glam init`: write a freshly initialised checkpoint. */
import { existsSync } from 'node:fs';
import { totalmem } from 'node:os';
import * as path from 'node:path';
import { accounting, formatBytes, formatCount } from '../model/accounting.js';
import { CONFIG_FILE, MODEL_FILE, saveCheckpoint } from '../model/checkpoint.js';
import { initParams } from '../model/init.js';
import { presetNames, resolveConfig } from '../model/presets.js';
import { intOption, parseCommand, requireOption } from './args.js';

const HELP = `usage: glam init --config NAME|FILE --out DIR [--seed N] [--force]

Initialise a model (GShard-style: projections N(0, 1/fan_in), embedding N(0, 1),
router N(0, 1/d_model), norm scales 1, rel_bias 0) and save it as a checkpoint
directory (config.json, model.safetensors).

options:
  --config NAME|FILE  a preset name or a JSON config file
  --out DIR           checkpoint directory to write (created if needed)
  --seed N            initialisation seed, a non-negative integer (default 0)
  --force             overwrite an existing checkpoint in DIR
  -h, --help          this help

presets: ${presetNames().join(', ')}`;

export async function run(args: string[]): Promise<void> {
  const values = parseCommand(
    args,
    {
      config: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string', default: '0' },
      force: { type: 'boolean', default: false },
    },
    HELP,
  );
  if (values === undefined) return;
  const cfg = resolveConfig(requireOption('init', 'config', values.config));
  const out = requireOption('init', 'out', values.out);
  const seed = intOption('seed', values.seed, 0);
  if (!values.force && (existsSync(path.join(out, CONFIG_FILE)) || existsSync(path.join(out, MODEL_FILE)))) {
    throw new Error(`'${out}' already holds a checkpoint; pass --force to overwrite it`);
  }
  const a = accounting(cfg);
  // Weights plus headroom; refuse early rather than die allocating a paper-sized model.
  if (a.weight_bytes > 0.8 * totalmem()) {
    throw new Error(
      `this model's weights need ${formatBytes(a.weight_bytes)} of memory; this machine has ${formatBytes(totalmem())}`,
    );
  }
  const params = initParams(cfg, seed);
  saveCheckpoint(out, cfg, params);
  console.log(
    `wrote ${out}: ${formatCount(a.total_params)} parameters (${formatBytes(a.weight_bytes)}), seed ${seed}`,
  );
}
