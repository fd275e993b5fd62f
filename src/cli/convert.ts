/** `glam convert`: a copy of a checkpoint with its weights stored in another dtype (bf16 for inference). */
import { convertCheckpoint, WEIGHTS_DTYPES, type WeightsDtype } from '../model/checkpoint.js';
import { resolveModelDir } from '../train/checkpoints.js';
import { parseCommand, requireOption } from './args.js';

const HELP = `usage: glam convert --model DIR --dtype bf16|f32 --out DIR2

Write a copy of a checkpoint (config, tokenizer, weights) into DIR2 with its weights stored as:
  bf16  the weight matrices (embedding, projections, experts) rounded to bf16 (nearest even;
        half the bytes), the norm scales, relative bias and router float32:
        for inference with the bf16 kernels (products of bf16 values summed in float32)
  f32   all float32 (a bf16 checkpoint's values widen exactly)
Commands that compute in float32 (score, generate, train) load either kind; a bf16 checkpoint's
weights are then its bf16 values. DIR2 must not exist or be empty: nothing is overwritten.

options:
  --model DIR    checkpoint directory, or a run directory (its latest checkpoint)
  --dtype D      bf16 or f32
  --out DIR2     the new checkpoint directory
  -h, --help     this help`;

export async function run(args: string[]): Promise<void> {
  const values = parseCommand(
    args,
    { model: { type: 'string' }, dtype: { type: 'string' }, out: { type: 'string' } },
    HELP,
  );
  if (values === undefined) return;
  const model = resolveModelDir(requireOption('convert', 'model', values.model));
  const dtype = requireOption('convert', 'dtype', values.dtype);
  if (!(WEIGHTS_DTYPES as readonly string[]).includes(dtype)) {
    throw new Error(`convert: --dtype must be one of ${WEIGHTS_DTYPES.join(', ')}, got '${dtype}'`);
  }
  const out = requireOption('convert', 'out', values.out);
  convertCheckpoint(model, out, dtype as WeightsDtype);
  console.log(`wrote ${out} (${dtype} weights) from ${model}`);
}
