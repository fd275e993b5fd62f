/** `glam score`: loss parts of a checkpoint on rows of token ids. */
import { readTokenRows, scoreTokenRows } from '../infer/score.js';
import { GlamModel } from '../model/glam.js';
import { loadModelCheckpoint } from '../train/checkpoints.js';
import { Rng } from '../util/rng.js';
import { intOption, numberOption, parseCommand, requireOption } from './args.js';

const HELP = `usage: glam score --model DIR --tokens FILE.json [--capacity-factor X] [--seed N] [--json]

Score rows of token ids with a checkpoint and print the loss parts.

FILE.json is a JSON array of rows of token ids; a row of T+1 ids gives inputs
row[0..T-1] and targets row[1..T] (2 <= T+1 <= max_seq_len+1); the file may
hold up to 64 MiB. Rows of equal length are scored together, in batches of at most
1,024-16,384 tokens (fewer for larger vocabularies) so memory stays bounded; rows
of different lengths are scored length group by length group and combined,
weighted by target tokens.

printed: lm_loss (mean cross-entropy over all target tokens), z_loss (mean
logsumexp², unweighted), aux_loss (sum over MoE layers, unweighted), total_loss
(lm + z_loss_weight·z + aux_loss_weight·aux with the config's weights), tokens,
dropped (expert assignments over capacity), and per MoE layer the expert load.

options:
  --model DIR            checkpoint directory, or a run directory (its latest checkpoint)
  --tokens FILE.json     rows of token ids
  --capacity-factor X    overrides the config's capacity_factor (0 = dropless)
  --seed N               seed for second_expert_policy "random" (default 0)
  --json                 print one JSON object
  -h, --help             this help`;

export async function run(args: string[]): Promise<void> {
  const values = parseCommand(
    args,
    {
      model: { type: 'string' },
      tokens: { type: 'string' },
      'capacity-factor': { type: 'string' },
      seed: { type: 'string', default: '0' },
      json: { type: 'boolean', default: false },
    },
    HELP,
  );
  if (values === undefined) return;
  const dir = requireOption('score', 'model', values.model);
  const tokensFile = requireOption('score', 'tokens', values.tokens);
  const cf = values['capacity-factor'];
  const capacityFactor = cf !== undefined ? numberOption('capacity-factor', cf) : undefined;
  const seed = intOption('seed', values.seed, 0);
  const { config, weights } = loadModelCheckpoint(dir);
  const rows = readTokenRows(tokensFile, config);
  const result = scoreTokenRows(new GlamModel(config), weights, rows, { capacityFactor, rng: new Rng(seed) });
  if (values.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  const f = (x: number) => x.toFixed(6);
  console.log(`lm_loss     ${f(result.lm_loss)}`);
  console.log(`z_loss      ${f(result.z_loss)}`);
  console.log(`aux_loss    ${f(result.aux_loss)}`);
  console.log(`total_loss  ${f(result.total_loss)}`);
  console.log(`tokens      ${result.tokens}  (${result.rows} rows)`);
  console.log(`dropped     ${result.dropped}  (capacity factor ${result.capacity_factor})`);
  for (const s of result.moe) {
    console.log(
      `layer ${s.layer}: load [${s.load.join(' ')}], dropped ${(100 * s.dropped_fraction).toFixed(2)}%, router entropy ${s.router_entropy.toFixed(3)}`,
    );
  }
}
