/** `glam generate`: sample text from a checkpoint (or the latest checkpoint of a run directory). */
import { parseArgs } from 'node:util';
import { Tokenizer } from '../data/tokenizer.js';
import { generateIds } from '../infer/generate.js';
import { validateSampling } from '../infer/sample.js';
import { TOKENIZER_FILE } from '../model/checkpoint.js';
import { GlamModel } from '../model/glam.js';
import { loadModelCheckpoint } from '../train/checkpoints.js';
import { intOption, numberOption, requireOption } from './args.js';

const HELP = `usage: glam generate --model DIR --prompt TEXT [--max-tokens N] [--temperature T]
                     [--top-k K] [--top-p P] [--seed N]

Continues TEXT with the model in DIR: a checkpoint directory, or a training run
directory (its latest checkpoint is used). Temperature 0 is greedy decoding.

options:
  --max-tokens N    tokens to generate (default 64)
  --temperature T   sampling temperature (default 0.8; 0 = greedy)
  --top-k K         sample from the K most likely tokens (default 0 = all)
  --top-p P         nucleus sampling mass (default 0.95)
  --seed N          sampling seed (default 0)`;

export async function run(args: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string' },
      'max-tokens': { type: 'string', default: '64' },
      temperature: { type: 'string', default: '0.8' },
      'top-k': { type: 'string', default: '0' },
      'top-p': { type: 'string', default: '0.95' },
      seed: { type: 'string', default: '0' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    console.log(HELP);
    return;
  }
  const prompt = requireOption('generate', 'prompt', v.prompt);
  // Every option is checked before anything is printed: an error never follows the prompt on stdout.
  const sampling = {
    maxTokens: intOption('max-tokens', v['max-tokens'], 0),
    temperature: numberOption('temperature', v.temperature),
    topK: intOption('top-k', v['top-k'], 0),
    topP: numberOption('top-p', v['top-p']),
    seed: intOption('seed', v.seed, 0),
  };
  validateSampling(sampling);
  const ck = loadModelCheckpoint(requireOption('generate', 'model', v.model));
  const dir = ck.dir;
  if (ck.tokenizerPath === undefined)
    throw new Error(`${dir}: no ${TOKENIZER_FILE}; cannot turn text into tokens`);
  const tokenizer = Tokenizer.load(ck.tokenizerPath);
  if (tokenizer.vocabSize !== ck.config.vocab_size) {
    throw new Error(`${dir}: tokenizer has ${tokenizer.vocabSize} ids, the model ${ck.config.vocab_size}`);
  }
  const model = new GlamModel(ck.config);
  const ids = tokenizer.encode(prompt);
  if (ids.length === 0) throw new Error('generate: the prompt encodes to no tokens');
  process.stdout.write(prompt);
  // Decode the whole continuation each time and print the new suffix, so multi-byte
  // characters split across byte-fallback tokens come out whole.
  const produced: number[] = [];
  let printed = '';
  generateIds(model, ck.weights, ids, {
    ...sampling,
    stopToken: tokenizer.eosId,
    onToken(id) {
      produced.push(id);
      const text = tokenizer.decode(produced);
      const stable = text.endsWith('\uFFFD') ? text.slice(0, -1) : text;
      if (stable.length > printed.length && stable.startsWith(printed)) {
        process.stdout.write(stable.slice(printed.length));
        printed = stable;
      }
    },
  });
  const final = tokenizer.decode(produced);
  if (final.startsWith(printed)) process.stdout.write(final.slice(printed.length));
  process.stdout.write('\n');
}
